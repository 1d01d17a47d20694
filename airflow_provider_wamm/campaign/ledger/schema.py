"""The ledger's tables and what differs between databases: key types, upserts, SQLite set-up, retries.

Portable to SQLite, PostgreSQL and MySQL/MariaDB. The only identifiers that vary (table prefix,
schema) are validated here before any table is defined, so they can never carry SQL. Tables made by
an earlier version get the nullable columns added since (:func:`add_missing_columns`).
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from airflow_provider_wamm.campaign.ledger.records import clip
from airflow_provider_wamm.graph.errors import ConfigurationError

if TYPE_CHECKING:
    from airflow_provider_wamm.campaign.ledger.signal_tables import SignalTables

#: Prefix of the ledger's table names unless another is given (``wamm_sends``, ``wamm_statuses``...).
DEFAULT_TABLE_PREFIX = "wamm_"


def default_ledger_path() -> pathlib.Path:
    """The SQLite file used when no ledger database is configured: ``$AIRFLOW_HOME/wamm/ledger.db``.

    ``AIRFLOW_HOME`` defaults to ``~/airflow`` as in Airflow itself; one machine only.
    """
    home = os.environ.get("AIRFLOW_HOME") or str(pathlib.Path.home() / "airflow")
    return pathlib.Path(home) / "wamm" / "ledger.db"


#: Longest stored template name (Meta's limit).
TEMPLATE_NAME_MAX = 512
#: Longest stored error title.
TITLE_MAX = 255
#: Longest callback key (``wamm1.``, 16 hex digits, ``.``, a campaign id of at most 255 characters).
CALLBACK_KEY_MAX = 278
#: Longest stored error details.
DETAILS_MAX = 2000
#: Most values in one ``IN (...)`` list or one batch of a bulk statement.
CHUNK_SIZE = 500

#: Longest ``owner`` of an attempt (an opaque name such as ``dag_id.task_id.run_id.map_index``).
OWNER_MAX = 1024

#: Helper threads SQLite may use for one large sort (one fewer than the processors, at most 2).
SORTER_THREADS = max(0, min(2, (os.cpu_count() or 1) - 1))

_log = logging.getLogger(__name__)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_ItemsT = TypeVar("_ItemsT")


def validate_table_prefix(table_prefix: str) -> None:
    """Refuse a table prefix that is not a plain identifier (the empty prefix is allowed).

    :raises ConfigurationError: for anything but letters, digits and ``_`` (at most 32 characters).
    """
    if table_prefix != "" and not _IDENTIFIER.match(table_prefix):
        raise ConfigurationError(
            f"invalid ledger table prefix {table_prefix!r}: use letters, digits and '_' only, "
            "starting with a letter or '_', at most 32 characters"
        )


def validate_schema_name(schema: str | None) -> None:
    """Refuse a schema name that is not a plain identifier (``None`` means the default schema)."""
    if schema is not None and not _IDENTIFIER.match(schema):
        raise ConfigurationError(f"invalid ledger schema name {schema!r}: use letters, digits and '_' only")


def chunks(items: Sequence[_ItemsT], size: int = CHUNK_SIZE) -> Iterator[Sequence[_ItemsT]]:
    """``items`` in consecutive slices of at most ``size`` (bounded ``IN`` lists and batches)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- column types and tables -------------------------------------------------------------------


def key_type(length: int) -> sa.types.TypeEngine[str]:
    """A string column compared byte for byte (MySQL/MariaDB default collations ignore case)."""
    return sa.String(length).with_variant(
        mysql_dialect.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


#: The width of each key the ledger's tables and the run log name a row by: a campaign id (as long as
#: the campaign settings allow), an attempt id, a recipient, Meta's message id.
KEY_WIDTHS = {"campaign_id": 255, "attempt_id": 64, "recipient": 64, "wamid": 191}


def key_column(name: str, **options: Any) -> sa.Column[str]:
    """The key column ``name`` (one of :data:`KEY_WIDTHS`) at its width, compared byte for byte."""
    return sa.Column(name, key_type(KEY_WIDTHS[name]), **options)


def datetime_type() -> sa.types.TypeEngine[datetime]:
    """A naive-UTC datetime column type with microseconds on MySQL too."""
    return sa.DateTime().with_variant(mysql_dialect.DATETIME(fsp=6), "mysql", "mariadb")


def row_id_type() -> sa.types.TypeEngine[int]:
    """An auto-incrementing row id: BIGINT, except on SQLite (where only INTEGER auto-increments)."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def template_columns() -> list[sa.Column[Any]]:
    """The message template a row is about: ``template_name`` (Meta's limit) and ``language``."""
    return [sa.Column("template_name", sa.String(TEMPLATE_NAME_MAX)), sa.Column("language", sa.String(32))]


def error_columns() -> list[sa.Column[Any]]:
    """Meta's error on a row: ``error_code``, ``error_title`` and ``error_details``."""
    return [
        sa.Column("error_code", sa.Integer),
        sa.Column("error_title", sa.String(TITLE_MAX)),
        sa.Column("error_details", sa.Text),
    ]


def error_values(
    code: int | None, title: str | None, details: str | None, *, prefix: str = ""
) -> dict[str, Any]:
    """The values of :func:`error_columns` for Meta's error, title and details cut to what is kept,
    under ``<prefix><column>`` (``b_``: the bound parameters of an executemany update)."""
    return {
        f"{prefix}error_code": code,
        f"{prefix}error_title": clip(title, TITLE_MAX),
        f"{prefix}error_details": clip(details, DETAILS_MAX),
    }


@dataclass(frozen=True)
class LedgerTables:
    """The ledger's tables, defined in one :class:`sqlalchemy.MetaData`."""

    metadata: sa.MetaData
    """Holds every table (``create_all`` creates the missing ones)."""
    sends: sa.Table
    """One row per ``(campaign_id, recipient)``: the send state and Meta's answer."""
    statuses: sa.Table
    """One row per wamid: the latest delivery status, per-status times, pricing, clicks."""
    clicks: sa.Table
    """One row per link click (by Meta's click id)."""
    suppressions: sa.Table
    """One row per recipient that later campaigns must skip."""
    runs: sa.Table
    """One row per attempt of a campaign (one shard of it)."""
    senders: sa.Table
    """One row per running sender of a phone number (the number's cap is shared between them)."""
    signals: SignalTables
    """Meta's other signals: the suppression audit, template events, account signals."""
    identities: sa.Table
    """One row per key Meta used for a person (number, rewritten number, user id): the person's group."""


def _sends_table(metadata: sa.MetaData, p: str) -> sa.Table:
    dt = datetime_type
    return sa.Table(
        f"{p}sends",
        metadata,
        key_column("campaign_id", primary_key=True),
        key_column("recipient", primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        key_column("attempt_id", nullable=False),
        sa.Column("shard_index", sa.Integer, nullable=False, default=0),
        *template_columns(),
        key_column("wamid"),
        sa.Column("message_status", sa.String(64)),
        *error_columns(),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("not_before", dt()),
        sa.Column("claimed_at", dt()),
        sa.Column("accepted_at", dt()),
        sa.Column("updated_at", dt(), nullable=False),
        # Meta's per-user marketing limit (131049): answers so far, the first one, the next try.
        sa.Column("limited_tries", sa.Integer),
        sa.Column("limited_since", dt()),
        sa.Column("retry_after", dt()),
        # Added later (nullable): the experiment group of the recipient (a variant's name,
        # ``holdout``, ``global_control`` or ``rest``); NULL for a campaign without an experiment.
        sa.Column("variant", sa.String(64)),
        # Added later (nullable): who Meta's answer says the message went to: ``contacts[].wa_id`` (may
        # differ from the number sent in Brazil and Mexico) and ``contacts[].user_id`` (a send by BSUID).
        sa.Column("wa_id", key_type(64)),
        sa.Column("user_id", key_type(191)),
        sa.Index(f"ix_{p}sends_wamid", "wamid"),
        sa.Index(f"ix_{p}sends_recipient_updated", "recipient", "updated_at"),
        sa.Index(f"ix_{p}sends_campaign_state", "campaign_id", "state"),
    )


def _statuses_table(metadata: sa.MetaData, p: str) -> sa.Table:
    dt = datetime_type
    return sa.Table(
        f"{p}statuses",
        metadata,
        key_column("wamid", primary_key=True),
        sa.Column("recipient_id", sa.String(64)),
        sa.Column("status", sa.String(16)),
        sa.Column("status_rank", sa.Integer, nullable=False, default=0),
        sa.Column("status_at", dt()),
        sa.Column("sent_at", dt()),
        sa.Column("delivered_at", dt()),
        sa.Column("read_at", dt()),
        sa.Column("failed_at", dt()),
        sa.Column("pricing_category", sa.String(40)),
        sa.Column("pricing_model", sa.String(16)),
        *error_columns(),
        sa.Column("clicked_at", dt()),
        sa.Column("click_count", sa.Integer, nullable=False, default=0),
        sa.Column("updated_at", dt(), nullable=False),
        # Added later (nullable): the send's callback key echoed in biz_opaque_callback_data, which
        # resolves an unknown send whose wamid was never recorded.
        sa.Column("callback_key", key_type(CALLBACK_KEY_MAX)),
        # Added later (nullable): the recipient's business-scoped user id (``recipient_user_id``),
        # ``pricing.type`` (``regular``, ``free_entry_point``...) and ``pricing.cost`` (Meta's amount in
        # the currency's base unit, and the currency) of a message sent with a max price.
        sa.Column("recipient_user_id", sa.String(191)),
        sa.Column("pricing_type", sa.String(32)),
        sa.Column("cost_amount", sa.Float),
        sa.Column("cost_currency", sa.String(8)),
        sa.Index(f"ix_{p}statuses_callback", "callback_key"),
    )


def _clicks_table(metadata: sa.MetaData, p: str) -> sa.Table:
    return sa.Table(
        f"{p}clicks",
        metadata,
        sa.Column("click_id", key_type(191), primary_key=True),
        key_column("wamid"),
        key_column("recipient"),
        sa.Column("click_component", sa.String(32)),
        sa.Column("product_id", sa.String(191)),
        sa.Column("tracking_token", sa.String(255)),
        sa.Column("clicked_at", datetime_type(), nullable=False),
        sa.Column("created_at", datetime_type(), nullable=False),
        sa.Index(f"ix_{p}clicks_wamid", "wamid"),
    )


def _suppressions_table(metadata: sa.MetaData, p: str) -> sa.Table:
    return sa.Table(
        f"{p}suppressions",
        metadata,
        key_column("recipient", primary_key=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("error_code", sa.Integer),
        key_column("campaign_id"),
        sa.Column("until", datetime_type()),
        sa.Column("created_at", datetime_type(), nullable=False),
        sa.Column("updated_at", datetime_type(), nullable=False),
    )


def _runs_table(metadata: sa.MetaData, p: str) -> sa.Table:
    return sa.Table(
        f"{p}runs",
        metadata,
        key_column("attempt_id", primary_key=True),
        key_column("campaign_id", nullable=False),
        sa.Column("shard_index", sa.Integer, nullable=False, default=0),
        sa.Column("shard_count", sa.Integer, nullable=False, default=1),
        sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", datetime_type(), nullable=False),
        sa.Column("heartbeat_at", datetime_type()),
        sa.Column("finished_at", datetime_type()),
        sa.Column("summary", sa.Text),
        # Added later (nullable, so that existing ledgers get them with ALTER TABLE ... ADD COLUMN):
        # the task instance the attempt belongs to, and which try of it this is.
        sa.Column("owner", key_type(OWNER_MAX)),
        sa.Column("try_number", sa.Integer),
        sa.Index(f"ix_{p}runs_campaign", "campaign_id"),
    )


def define_tables(table_prefix: str = DEFAULT_TABLE_PREFIX, schema: str | None = None) -> LedgerTables:
    """Define the ledger's tables (nothing is created yet) after validating the prefix and schema.

    :raises ConfigurationError: for a prefix or schema name that is not a plain identifier.
    """
    from airflow_provider_wamm.campaign.ledger.identities import identities_table  # uses key_type
    from airflow_provider_wamm.campaign.ledger.senders import senders_table  # uses key_type
    from airflow_provider_wamm.campaign.ledger.signal_tables import define_signal_tables  # uses key_type

    validate_table_prefix(table_prefix)
    validate_schema_name(schema)
    metadata = sa.MetaData(schema=schema)
    return LedgerTables(
        metadata=metadata,
        sends=_sends_table(metadata, table_prefix),
        statuses=_statuses_table(metadata, table_prefix),
        clicks=_clicks_table(metadata, table_prefix),
        suppressions=_suppressions_table(metadata, table_prefix),
        runs=_runs_table(metadata, table_prefix),
        senders=senders_table(metadata, table_prefix),
        signals=define_signal_tables(metadata, table_prefix),
        identities=identities_table(metadata, table_prefix),
    )


def add_missing_columns(engine: Engine, metadata: sa.MetaData) -> list[str]:
    """Add the columns a table of ``metadata`` lacks in the database; returns ``table.column`` of each.

    Tables created by an earlier version of the ledger lack the columns added since; every such column
    is nullable, so ``ALTER TABLE ... ADD COLUMN`` adds it on SQLite, PostgreSQL and MySQL/MariaDB alike
    (existing rows read ``NULL``). Tables that do not exist are left to ``create_all``. Two processes
    adding the same column at once is fine: the one that loses finds the column there.

    :raises ConfigurationError: a missing column is not nullable (it cannot be added to existing rows).
    """
    added: list[str] = []
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name, schema=table.schema):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name, schema=table.schema)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise ConfigurationError(
                    f"the ledger table {table.name} lacks the column {column.name}, which cannot be "
                    "added to existing rows; create the ledger's tables anew (another table_prefix)"
                )
            _add_column(engine, table, column)
            added.append(f"{table.name}.{column.name}")
    if added:
        _log.info("ledger tables upgraded: added columns %s", ", ".join(added))
    return added


def _add_column(engine: Engine, table: sa.Table, column: sa.Column[Any]) -> None:
    """``ALTER TABLE <table> ADD COLUMN <column>`` (identifiers quoted by the dialect, no values)."""
    dialect = engine.dialect
    name = dialect.identifier_preparer.format_table(table)
    spec = sa.schema.CreateColumn(column).compile(dialect=dialect)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {spec}")
    except sa.exc.DBAPIError:
        columns = sa.inspect(engine).get_columns(table.name, schema=table.schema)
        if column.name not in {c["name"] for c in columns}:
            raise  # not a concurrent upgrade that got there first


# --- statements that differ per database -------------------------------------------------------


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    update: Callable[[Any], Mapping[str, Any]] | None = None,
) -> None:
    """Insert ``rows`` (one executemany); on a key conflict do nothing, or apply ``update``.

    ``update`` receives the "new row" column collection (``excluded`` on SQLite/PostgreSQL,
    ``inserted`` on MySQL) and returns ``{column: expression}``; expressions may also use the
    table's own columns (the existing values). On MySQL the assignments run in dict order and later
    ones see earlier results, so list a column after every expression that reads it.
    """
    if not rows:
        return
    stmt = upsert_statement(conn.dialect.name, table, key=key, update=update)
    conn.execute(stmt, list(rows))


def upsert_statement(
    dialect_name: str,
    table: sa.Table,
    *,
    key: Sequence[str],
    update: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Any:
    """The insert of :func:`upsert` for the database ``dialect_name`` (its values still to be given).

    :raises ConfigurationError: for a database other than SQLite, PostgreSQL and MySQL/MariaDB.
    """
    name = dialect_name
    stmt: Any
    if name in ("sqlite", "postgresql"):
        stmt = sqlite_dialect.insert(table) if name == "sqlite" else pg_dialect.insert(table)
        if update is None:
            return stmt.on_conflict_do_nothing(index_elements=list(key))
        return stmt.on_conflict_do_update(index_elements=list(key), set_=dict(update(stmt.excluded)))
    if name in ("mysql", "mariadb"):
        stmt = mysql_dialect.insert(table)
        if update is None:
            return stmt.on_duplicate_key_update({key[0]: table.c[key[0]]})
        return stmt.on_duplicate_key_update(list(update(stmt.inserted).items()))
    raise ConfigurationError(
        f"the ledger supports SQLite, PostgreSQL and MySQL/MariaDB, not {name!r}; "
        "point the ledger connection at one of those"
    )


def is_retryable(exc: sa.exc.DBAPIError) -> bool:
    """Deadlock, serialization failure, lock timeout or a busy SQLite database."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in ("40001", "40P01", "55P03"):
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in (1205, 1213):  # MySQL lock wait timeout, deadlock
        return True
    return "database is locked" in str(orig).lower()


# --- engines -----------------------------------------------------------------------------------


def is_sqlite_memory(url: sa.engine.URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def configure_sqlite(engine: Engine, *, memory: bool) -> None:
    """WAL, busy timeout, ``BEGIN IMMEDIATE`` and sorter threads for engines of :func:`ledger_engine`."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        # Sorts too big for memory (a report grouping a million messages) use helper threads.
        cursor.execute(f"PRAGMA threads = {SORTER_THREADS}")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (no deadlock between two deferred transactions that
        # both want to write); readers do not, so they never hold writers up.
        read_only = conn.get_execution_options().get("wamm_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def ledger_engine(url: str | sa.engine.URL, **engine_kwargs: Any) -> Engine:
    """An engine for a ledger URL, with SQLite made safe for concurrent use.

    SQLite gets a shared connection for ``:memory:`` (so every thread sees the same database), and
    for files WAL journaling, a 30 s busy timeout and ``BEGIN IMMEDIATE`` transactions, so concurrent
    writers wait for each other instead of failing. Other databases get ``pool_pre_ping``.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine_kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, **engine_kwargs)
    connect_args = dict(engine_kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    memory = is_sqlite_memory(parsed)
    if memory:
        engine_kwargs.setdefault("poolclass", StaticPool)
    engine = sa.create_engine(parsed, connect_args=connect_args, **engine_kwargs)
    configure_sqlite(engine, memory=memory)
    return engine


__all__ = [
    "CALLBACK_KEY_MAX",
    "CHUNK_SIZE",
    "DEFAULT_TABLE_PREFIX",
    "DETAILS_MAX",
    "KEY_WIDTHS",
    "OWNER_MAX",
    "SORTER_THREADS",
    "TEMPLATE_NAME_MAX",
    "TITLE_MAX",
    "LedgerTables",
    "add_missing_columns",
    "chunks",
    "configure_sqlite",
    "datetime_type",
    "define_tables",
    "error_columns",
    "error_values",
    "is_retryable",
    "is_sqlite_memory",
    "key_column",
    "key_type",
    "ledger_engine",
    "row_id_type",
    "template_columns",
    "upsert",
    "upsert_statement",
    "validate_schema_name",
    "validate_table_prefix",
]
