"""The send ledger: every campaign send written down, so nothing is ever sent twice.

The Graph API has no idempotency key, so a task retry, a crash or a re-run would otherwise message
the same person again. Each recipient of a campaign is *claimed* in the ``sends`` table (one row per
``(campaign_id, recipient)``, guarded by the table's primary key) before its request leaves, and the
outcome is recorded in batches afterwards. A ``claimed`` row left behind by a crashed attempt becomes
``unknown``: the request may or may not have reached Meta, so it is not sent again unless asked.

Webhook statuses land in ``statuses`` (by wamid, applied monotonically), link clicks in ``clicks``,
opt-outs and per-user limits in ``suppressions`` (honoured by every later campaign), and each attempt
of a campaign in ``runs``.

SQLAlchemy Core only, portable to SQLite, PostgreSQL and MySQL/MariaDB. Values are always bound, never
formatted into SQL; the only identifiers that vary (table prefix, schema) are validated first. Batch
operations are one ``executemany`` round trip per batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from airflow_provider_wamm.graph.errors import (
    CODE_PER_USER_LIMIT,
    CODE_STOPPED_MARKETING,
    ConfigurationError,
    error_title,
)

# --- send states -------------------------------------------------------------------------------

CLAIMED = "claimed"
"""Claimed by a running attempt; the request is about to leave or is in flight."""
ACCEPTED = "accepted"
"""Meta answered with ``message_status`` ``accepted``."""
HELD = "held"
"""Meta answered ``held_for_quality_assessment`` (template or portfolio pacing)."""
PAUSED = "paused"
"""Meta answered ``paused``."""
FAILED = "failed"
"""Meta refused the message (the error code and details are kept)."""
SKIPPED = "skipped"
"""Not sent, because suppressed or inside the frequency cap (re-checked on a later run)."""
INVALID = "invalid"
"""Not sent, because the row had no usable phone number or could not be personalised (re-checked later)."""
UNKNOWN = "unknown"
"""The request went out but no answer came back, or a crashed attempt left it claimed."""

SEND_STATES = (CLAIMED, ACCEPTED, HELD, PAUSED, FAILED, SKIPPED, INVALID, UNKNOWN)
#: States in which Meta took the message (a frequency cap counts these).
DELIVERED_TO_META = (ACCEPTED, HELD, PAUSED)
#: States that say the campaign is done with a recipient (nothing in flight).
FINAL_STATES = (ACCEPTED, HELD, PAUSED, FAILED, SKIPPED, INVALID, UNKNOWN)

#: Delivery statuses from webhooks, by rank: a status only ever replaces one of lower rank.
STATUS_RANKS: dict[str, int] = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 10}
#: Delivery statuses after which nothing more is expected for the report.
SETTLED_STATUSES = ("delivered", "read", "played", "failed")

SUPPRESS_STOPPED_MARKETING = "stopped_marketing"
#: How long Meta's per-user marketing limit (131049) keeps a recipient out of later campaigns.
PER_USER_LIMIT_WAIT = timedelta(hours=24)
SUPPRESS_PER_USER_LIMIT = "per_user_limit"
SUPPRESS_MANUAL = "manual"

_TX_RETRIES = 6
_T = TypeVar("_T")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_CHUNK = 500
_TITLE_MAX = 255
_DETAILS_MAX = 2000


# --- time --------------------------------------------------------------------------------------


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _to_db(value: datetime | None) -> datetime | None:
    """Aware or naive-UTC datetime -> naive UTC (what every backend stores the same way)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _from_db(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite through raw SQL
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _timestamp(value: Any) -> datetime:
    """A webhook ``timestamp`` (unix seconds, as string or number) or a datetime -> aware UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"invalid timestamp {value!r}: expected unix seconds") from exc


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExistingSend:
    """What the ledger already knows about one recipient of a campaign."""

    state: str
    """The send state (one of :data:`SEND_STATES`)."""
    attempt_id: str
    """The attempt that wrote the row last."""
    not_before: datetime | None = None
    """Earliest time a failed send may be retried by a later run."""

    def reclaimable(self, now: datetime, *, resend_unknown: bool = False) -> bool:
        """Whether a new attempt may claim this recipient again.

        ``skipped`` and ``invalid`` rows never reached Meta and are re-evaluated; ``failed`` rows
        with a ``not_before`` that has passed (transient failures, Meta's 24 h per-user limit) are
        retried; ``unknown`` only when ``resend_unknown`` is set.
        """
        if self.state in (SKIPPED, INVALID):
            return True
        if self.state == FAILED:
            return self.not_before is not None and self.not_before <= now
        return self.state == UNKNOWN and resend_unknown


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The outcome of one recipient, written by :meth:`Ledger.record_results` and friends."""

    recipient: str
    """Recipient key (E.164 digits, or ``!<row>`` for a row without a usable number)."""
    state: str
    """The new send state."""
    wamid: str | None = None
    """Meta's message id when the message was accepted."""
    message_status: str | None = None
    """Meta's ``message_status`` (``accepted``, ``held_for_quality_assessment``, ``paused``)."""
    error_code: int | None = None
    """Graph error code of a failure (or of the suppression that caused a skip)."""
    error_title: str | None = None
    """Meta's short title for the error."""
    error_details: str | None = None
    """What went wrong, in words (Meta's ``error_data.details`` or the reason a row was skipped)."""
    attempts: int = 0
    """Requests made for this recipient by this attempt."""
    not_before: datetime | None = None
    """Earliest time a later run may retry this recipient (failures worth retrying only)."""
    accepted_at: datetime | None = None
    """When Meta accepted the message (defaults to the recording time for accepted states)."""


@dataclass(frozen=True, slots=True)
class Suppression:
    """A recipient later campaigns must skip, for ever (``until`` is ``None``) or until a time."""

    recipient: str
    """E.164 digits."""
    reason: str
    """Why (``stopped_marketing`` for 131050, ``per_user_limit`` for 131049, ``manual``...)."""
    error_code: int | None = None
    """The Graph error code that caused it, if any."""
    until: datetime | None = None
    """End of the suppression; ``None`` means for ever."""
    campaign_id: str | None = None
    """The campaign whose send revealed it."""


def _suppression_for(recipient: str, code: int | None, at: datetime) -> Suppression | None:
    """The suppression an error code calls for: 131050 for ever, 131049 for a day; else none."""
    if code == CODE_STOPPED_MARKETING:
        return Suppression(recipient, SUPPRESS_STOPPED_MARKETING, code)
    if code == CODE_PER_USER_LIMIT:
        return Suppression(recipient, SUPPRESS_PER_USER_LIMIT, code, at + PER_USER_LIMIT_WAIT)
    return None


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One delivery status of a message, as a status webhook reports it."""

    wamid: str
    """Meta's message id (``statuses[].id``)."""
    status: str
    """``sent``, ``delivered``, ``read``, ``failed`` (``played`` for voice)."""
    timestamp: datetime
    """When it happened (aware UTC)."""
    recipient_id: str | None = None
    """The recipient's WhatsApp id (digits)."""
    pricing_category: str | None = None
    """``marketing_lite`` (went through the Marketing Messages API) or ``marketing`` (Cloud API)."""
    pricing_model: str | None = None
    """``PMP`` (per-message pricing) or ``CBP``."""
    error_code: int | None = None
    """The error code of a ``failed`` status."""
    error_title: str | None = None
    """Meta's title of the error of a ``failed`` status."""
    error_details: str | None = None
    """The ``error_data.details`` (or message) of a ``failed`` status."""

    @classmethod
    def from_webhook(cls, status: Mapping[str, Any]) -> StatusUpdate:
        """Build from one ``value.statuses[]`` object of a ``messages`` webhook."""
        raw_pricing = status.get("pricing")
        pricing: Mapping[str, Any] = raw_pricing if isinstance(raw_pricing, Mapping) else {}
        errors = status.get("errors") or []
        error: Mapping[str, Any] = errors[0] if errors and isinstance(errors[0], Mapping) else {}
        raw_data = error.get("error_data")
        error_data: Mapping[str, Any] = raw_data if isinstance(raw_data, Mapping) else {}
        code = error.get("code")
        try:
            error_code = int(code) if code is not None else None
        except (TypeError, ValueError):
            error_code = None
        return cls(
            wamid=str(status["id"]),
            status=str(status["status"]).lower(),
            timestamp=_timestamp(status.get("timestamp")),
            recipient_id=str(status["recipient_id"]) if status.get("recipient_id") else None,
            pricing_category=pricing.get("category"),
            pricing_model=pricing.get("pricing_model"),
            error_code=error_code,
            error_title=error.get("title") or (error_title(error_code) if error_code is not None else None),
            error_details=error_data.get("details") or error.get("message"),
        )


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """A link click on a marketing message (``user_actions[]`` of a ``messages`` webhook)."""

    click_id: str
    """Meta's click id (the deduplication key)."""
    timestamp: datetime
    """When the click happened (aware UTC)."""
    wamid: str | None = None
    """The clicked message, when known (joins the click to its campaign)."""
    recipient: str | None = None
    """The clicking user's digits, when known."""
    click_component: str | None = None
    """``cta`` or ``body``."""
    product_id: str | None = None
    """The catalogue product, if any."""
    tracking_token: str | None = None
    """Meta's tracking token."""

    @classmethod
    def from_webhook(
        cls, action: Mapping[str, Any], *, wamid: str | None = None, recipient: str | None = None
    ) -> ClickEvent:
        """Build from one ``value.user_actions[]`` object of type ``marketing_messages_link_click``."""
        data = action.get("marketing_messages_link_click_data")
        data = data if isinstance(data, Mapping) else {}
        click_id = data.get("click_id")
        if not click_id:  # no id from Meta: derive a stable one so redeliveries still deduplicate
            raw = json.dumps(action, sort_keys=True, default=str).encode()
            click_id = "h:" + hashlib.blake2b(raw, digest_size=16).hexdigest()
        return cls(
            click_id=str(click_id),
            timestamp=_timestamp(action.get("timestamp")),
            wamid=wamid or action.get("id") or action.get("wamid"),
            recipient=recipient or action.get("from") or action.get("recipient_id"),
            click_component=data.get("click_component"),
            product_id=data.get("product_id"),
            tracking_token=data.get("tracking_token"),
        )


# --- SQL helpers -------------------------------------------------------------------------------


def _key(length: int) -> sa.types.TypeEngine[str]:
    """A string column compared byte for byte (MySQL/MariaDB default collations ignore case)."""
    return sa.String(length).with_variant(
        mysql_dialect.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def _dt() -> sa.types.TypeEngine[datetime]:
    """A naive-UTC datetime column type with microseconds on MySQL too."""
    return sa.DateTime().with_variant(mysql_dialect.DATETIME(fsp=6), "mysql", "mariadb")


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
    name = conn.dialect.name
    stmt: Any
    if name in ("sqlite", "postgresql"):
        stmt = sqlite_dialect.insert(table) if name == "sqlite" else pg_dialect.insert(table)
        if update is None:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
        else:
            stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=dict(update(stmt.excluded)))
    elif name in ("mysql", "mariadb"):
        stmt = mysql_dialect.insert(table)
        if update is None:
            stmt = stmt.on_duplicate_key_update({key[0]: table.c[key[0]]})
        else:
            stmt = stmt.on_duplicate_key_update(list(update(stmt.inserted).items()))
    else:
        raise ConfigurationError(
            f"the ledger supports SQLite, PostgreSQL and MySQL/MariaDB, not {name!r}; "
            "point the ledger connection at one of those"
        )
    conn.execute(stmt, list(rows))


def _is_retryable(exc: sa.exc.DBAPIError) -> bool:
    """Deadlock, serialization failure, lock timeout or a busy SQLite database."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in ("40001", "40P01", "55P03"):
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in (1205, 1213):  # MySQL lock wait timeout, deadlock
        return True
    return "database is locked" in str(orig).lower()


def _sqlite_memory(url: sa.engine.URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


# --- the ledger --------------------------------------------------------------------------------


class Ledger:
    """Campaign bookkeeping in any SQLAlchemy database (SQLite, PostgreSQL, MySQL/MariaDB).

    :param engine: a SQLAlchemy engine; the tables are created on first use if they do not exist.
    :param table_prefix: prefix of every table name (letters, digits, ``_``; at most 32 characters),
        so several ledgers can share a database.
    :param schema: optional database schema (PostgreSQL) holding the tables.
    """

    def __init__(self, engine: Engine, *, table_prefix: str = "wamm_", schema: str | None = None) -> None:
        if table_prefix != "" and not _IDENTIFIER.match(table_prefix):
            raise ConfigurationError(
                f"invalid ledger table prefix {table_prefix!r}: use letters, digits and '_' only, "
                "starting with a letter or '_', at most 32 characters"
            )
        if schema is not None and not _IDENTIFIER.match(schema):
            raise ConfigurationError(
                f"invalid ledger schema name {schema!r}: use letters, digits and '_' only"
            )
        self.engine = engine
        self.table_prefix = table_prefix
        self.schema = schema
        self._ready = False
        self._init_lock = threading.Lock()
        # SQLite has a single writer anyway; serialising here avoids "database is locked" surprises
        # and makes a shared in-memory connection (StaticPool) safe across threads.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        self.metadata = sa.MetaData(schema=schema)
        p = table_prefix
        self.sends = sa.Table(
            f"{p}sends",
            self.metadata,
            sa.Column("campaign_id", _key(255), primary_key=True),
            sa.Column("recipient", _key(64), primary_key=True),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("attempt_id", _key(64), nullable=False),
            sa.Column("shard_index", sa.Integer, nullable=False, default=0),
            sa.Column("template_name", sa.String(512)),
            sa.Column("language", sa.String(32)),
            sa.Column("wamid", _key(191)),
            sa.Column("message_status", sa.String(64)),
            sa.Column("error_code", sa.Integer),
            sa.Column("error_title", sa.String(_TITLE_MAX)),
            sa.Column("error_details", sa.Text),
            sa.Column("attempts", sa.Integer, nullable=False, default=0),
            sa.Column("not_before", _dt()),
            sa.Column("claimed_at", _dt()),
            sa.Column("accepted_at", _dt()),
            sa.Column("updated_at", _dt(), nullable=False),
            sa.Index(f"ix_{p}sends_wamid", "wamid"),
            sa.Index(f"ix_{p}sends_recipient_updated", "recipient", "updated_at"),
            sa.Index(f"ix_{p}sends_campaign_state", "campaign_id", "state"),
        )
        self.statuses = sa.Table(
            f"{p}statuses",
            self.metadata,
            sa.Column("wamid", _key(191), primary_key=True),
            sa.Column("recipient_id", sa.String(64)),
            sa.Column("status", sa.String(16)),
            sa.Column("status_rank", sa.Integer, nullable=False, default=0),
            sa.Column("status_at", _dt()),
            sa.Column("sent_at", _dt()),
            sa.Column("delivered_at", _dt()),
            sa.Column("read_at", _dt()),
            sa.Column("failed_at", _dt()),
            sa.Column("pricing_category", sa.String(40)),
            sa.Column("pricing_model", sa.String(16)),
            sa.Column("error_code", sa.Integer),
            sa.Column("error_title", sa.String(_TITLE_MAX)),
            sa.Column("error_details", sa.Text),
            sa.Column("clicked_at", _dt()),
            sa.Column("click_count", sa.Integer, nullable=False, default=0),
            sa.Column("updated_at", _dt(), nullable=False),
        )
        self.clicks = sa.Table(
            f"{p}clicks",
            self.metadata,
            sa.Column("click_id", _key(191), primary_key=True),
            sa.Column("wamid", _key(191)),
            sa.Column("recipient", _key(64)),
            sa.Column("click_component", sa.String(32)),
            sa.Column("product_id", sa.String(191)),
            sa.Column("tracking_token", sa.String(255)),
            sa.Column("clicked_at", _dt(), nullable=False),
            sa.Column("created_at", _dt(), nullable=False),
            sa.Index(f"ix_{p}clicks_wamid", "wamid"),
        )
        self.suppressions = sa.Table(
            f"{p}suppressions",
            self.metadata,
            sa.Column("recipient", _key(64), primary_key=True),
            sa.Column("reason", sa.String(64), nullable=False),
            sa.Column("error_code", sa.Integer),
            sa.Column("campaign_id", _key(255)),
            sa.Column("until", _dt()),
            sa.Column("created_at", _dt(), nullable=False),
            sa.Column("updated_at", _dt(), nullable=False),
        )
        self.runs = sa.Table(
            f"{p}runs",
            self.metadata,
            sa.Column("attempt_id", _key(64), primary_key=True),
            sa.Column("campaign_id", _key(255), nullable=False),
            sa.Column("shard_index", sa.Integer, nullable=False, default=0),
            sa.Column("shard_count", sa.Integer, nullable=False, default=1),
            sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("started_at", _dt(), nullable=False),
            sa.Column("heartbeat_at", _dt()),
            sa.Column("finished_at", _dt()),
            sa.Column("summary", sa.Text),
            sa.Index(f"ix_{p}runs_campaign", "campaign_id"),
        )

    @classmethod
    def from_url(
        cls, url: str | sa.engine.URL, *, table_prefix: str = "wamm_", **engine_kwargs: Any
    ) -> Ledger:
        """Create a ledger from a SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://...``).

        SQLite gets sensible defaults: a shared connection for ``:memory:`` (so every thread sees the
        same database), and for files WAL journaling, a 30 s busy timeout and ``BEGIN IMMEDIATE``
        transactions, so concurrent writers wait for each other instead of failing.
        """
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            connect_args = dict(engine_kwargs.pop("connect_args", {}))
            connect_args.setdefault("check_same_thread", False)
            if _sqlite_memory(parsed):
                engine_kwargs.setdefault("poolclass", StaticPool)
            engine = sa.create_engine(parsed, connect_args=connect_args, **engine_kwargs)
            _configure_sqlite(engine, memory=_sqlite_memory(parsed))
        else:
            engine_kwargs.setdefault("pool_pre_ping", True)
            engine = sa.create_engine(parsed, **engine_kwargs)
        return cls(engine, table_prefix=table_prefix)

    def __repr__(self) -> str:
        return f"Ledger(dialect={self.engine.dialect.name!r}, table_prefix={self.table_prefix!r})"

    def dispose(self) -> None:
        """Close the engine's pooled connections (call when done with a ledger made by :meth:`from_url`)."""
        self.engine.dispose()

    # -- plumbing -------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables and indexes that do not exist yet (safe to call any number of times)."""
        if self._ready:
            return
        with self._init_lock:
            if self._ready:
                return
            for attempt in range(_TX_RETRIES):
                try:
                    self.metadata.create_all(self.engine, checkfirst=True)
                    break
                except sa.exc.DBAPIError:
                    # Another process created one of the tables between the check and the CREATE
                    # (shards starting together race through all of them): check again.
                    if attempt == _TX_RETRIES - 1:
                        raise
                    time.sleep(random.uniform(0.01, 0.1) * (attempt + 1))
            self._ready = True

    def _write(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in one transaction, retried when the database reports a deadlock.

        Concurrent claims of overlapping recipients can deadlock on PostgreSQL and MySQL (each waits
        for a key the other inserted); the database aborts one transaction and it is simply redone.
        """
        self.ensure_schema()
        for attempt in range(_TX_RETRIES):
            try:
                with self._lock, self.engine.begin() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if attempt == _TX_RETRIES - 1 or not _is_retryable(exc):
                    raise
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (SQLite: no write lock is taken, so webhooks keep flowing)."""
        self.ensure_schema()
        with self._lock, self.engine.connect() as raw:
            yield raw.execution_options(wamm_read_only=True)

    # -- runs -----------------------------------------------------------------------------------

    def start_run(
        self,
        campaign_id: str,
        attempt_id: str,
        *,
        shard_index: int = 0,
        shard_count: int = 1,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> None:
        """Record that an attempt of a campaign (one shard of it) started."""

        def _work(conn: Connection) -> Any:
            conn.execute(
                self.runs.insert(),
                {
                    "attempt_id": attempt_id,
                    "campaign_id": campaign_id,
                    "shard_index": shard_index,
                    "shard_count": shard_count,
                    "dry_run": dry_run,
                    "state": "running",
                    "started_at": _to_db(now or utcnow()),
                    "heartbeat_at": _to_db(now or utcnow()),
                },
            )

        self._write(_work)

    def heartbeat(self, attempt_id: str, *, now: datetime | None = None) -> None:
        """Record that a running attempt is alive (its claims are not abandoned)."""

        def _work(conn: Connection) -> Any:
            conn.execute(
                self.runs.update()
                .where(self.runs.c.attempt_id == attempt_id)
                .values(heartbeat_at=_to_db(now or utcnow()))
            )

        self._write(_work)

    def finish_run(
        self, attempt_id: str, *, state: str, summary: Mapping[str, Any], now: datetime | None = None
    ) -> None:
        """Record how an attempt ended (``finished``, ``halted``, ``error``) with its counts."""

        def _work(conn: Connection) -> Any:
            conn.execute(
                self.runs.update()
                .where(self.runs.c.attempt_id == attempt_id)
                .values(
                    state=state,
                    finished_at=_to_db(now or utcnow()),
                    summary=json.dumps(summary, sort_keys=True, default=str),
                )
            )

        self._write(_work)

    def list_runs(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every recorded attempt of a campaign, oldest first, with its summary decoded."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(self.runs)
                .where(self.runs.c.campaign_id == campaign_id)
                .order_by(self.runs.c.started_at, self.runs.c.attempt_id)
            ).mappings()
            out = []
            for row in rows:
                item = dict(row)
                item["summary"] = json.loads(item["summary"]) if item["summary"] else None
                item["started_at"] = _from_db(item["started_at"])
                item["finished_at"] = _from_db(item["finished_at"])
                out.append(item)
            return out

    # -- sends ----------------------------------------------------------------------------------

    def mark_stale_claims(
        self,
        campaign_id: str,
        *,
        attempt_id: str,
        shard_index: int | None = None,
        live_within: timedelta | None = None,
        now: datetime | None = None,
    ) -> int:
        """Turn ``claimed`` rows of other, abandoned attempts into ``unknown``; returns how many.

        Called when an attempt starts. An attempt still ``running`` whose last heartbeat is within
        ``live_within`` is alive (two runs of one campaign at once): its claims are left to it.
        Restrict it to the attempt's own ``shard_index`` when shards of the same campaign run
        concurrently.
        """
        s, r = self.sends.c, self.runs.c
        cond = sa.and_(s.campaign_id == campaign_id, s.state == CLAIMED, s.attempt_id != attempt_id)
        if shard_index is not None:
            cond = sa.and_(cond, s.shard_index == shard_index)
        if live_within is not None:
            cutoff = _to_db((now or utcnow()) - live_within)
            live = sa.select(r.attempt_id).where(
                r.campaign_id == campaign_id,
                r.state == "running",
                sa.func.coalesce(r.heartbeat_at, r.started_at) >= cutoff,
            )
            cond = sa.and_(cond, s.attempt_id.not_in(live))

        def _work(conn: Connection) -> Any:
            result = conn.execute(
                self.sends.update()
                .where(cond)
                .values(
                    state=UNKNOWN,
                    error_details="claimed by an attempt that did not finish: the message may or may not "
                    "have been sent",
                    updated_at=_to_db(now or utcnow()),
                )
            )
            return int(result.rowcount or 0)

        return self._write(_work)

    def existing_sends(self, campaign_id: str, recipients: Sequence[str]) -> dict[str, ExistingSend]:
        """The ledger rows of ``recipients`` in this campaign (absent ones are missing from the dict)."""
        s = self.sends.c
        out: dict[str, ExistingSend] = {}
        if not recipients:
            return out
        with self.read() as conn:
            for chunk in _chunks(list(recipients)):
                rows = conn.execute(
                    sa.select(s.recipient, s.state, s.attempt_id, s.not_before).where(
                        s.campaign_id == campaign_id, s.recipient.in_(chunk)
                    )
                )
                for recipient, state, attempt, not_before in rows:
                    out[recipient] = ExistingSend(state, attempt, _from_db(not_before))
        return out

    def claim(
        self,
        campaign_id: str,
        recipients: Sequence[str],
        *,
        attempt_id: str,
        shard_index: int = 0,
        template_name: str | None = None,
        language: str | None = None,
        known: Mapping[str, ExistingSend] | None = None,
        resend_unknown: bool = False,
        now: datetime | None = None,
    ) -> set[str]:
        """Claim ``recipients`` for this attempt; returns those actually claimed by it.

        Absent recipients are inserted as ``claimed`` (insert-if-absent: the primary key makes sure
        two attempts or shards never both claim one); recipients whose row may be re-sent (see
        :meth:`ExistingSend.reclaimable`) are taken over with a conditional update that only succeeds
        if the row is still as it was seen. ``known`` is the result of :meth:`existing_sends` for
        these recipients if the caller already has it (saves a query).
        """
        if not recipients:
            return set()
        now = now or utcnow()
        if known is None:
            known = self.existing_sends(campaign_id, recipients)
        db_now = _to_db(now)
        fresh: list[dict[str, Any]] = []
        retake: list[dict[str, Any]] = []
        for recipient in sorted(set(recipients)):
            prior = known.get(recipient)
            if prior is None:
                fresh.append(
                    {
                        "campaign_id": campaign_id,
                        "recipient": recipient,
                        "state": CLAIMED,
                        "attempt_id": attempt_id,
                        "shard_index": shard_index,
                        "template_name": template_name,
                        "language": language,
                        "attempts": 0,
                        "claimed_at": db_now,
                        "updated_at": db_now,
                    }
                )
            elif prior.reclaimable(now, resend_unknown=resend_unknown):
                retake.append(
                    {
                        "b_recipient": recipient,
                        "b_state": prior.state,
                        "b_prior_attempt": prior.attempt_id,
                    }
                )
        s = self.sends.c

        def _work(conn: Connection) -> Any:
            upsert(conn, self.sends, fresh, key=("campaign_id", "recipient"))
            if retake:
                conn.execute(
                    self.sends.update()
                    .where(
                        s.campaign_id == campaign_id,
                        s.recipient == sa.bindparam("b_recipient"),
                        s.state == sa.bindparam("b_state"),
                        s.attempt_id == sa.bindparam("b_prior_attempt"),
                    )
                    .values(
                        state=CLAIMED,
                        attempt_id=attempt_id,
                        shard_index=shard_index,
                        template_name=template_name,
                        language=language,
                        wamid=None,
                        message_status=None,
                        error_code=None,
                        error_title=None,
                        error_details=None,
                        attempts=0,
                        not_before=None,
                        claimed_at=db_now,
                        accepted_at=None,
                        updated_at=db_now,
                    ),
                    retake,
                )
            claimed: set[str] = set()
            for chunk in _chunks(list(recipients)):
                claimed.update(
                    conn.execute(
                        sa.select(s.recipient).where(
                            s.campaign_id == campaign_id,
                            s.recipient.in_(chunk),
                            s.attempt_id == attempt_id,
                            s.state == CLAIMED,
                        )
                    ).scalars()
                )
            return claimed

        result: set[str] = self._write(_work)
        return result

    def record_unsent(
        self,
        campaign_id: str,
        outcomes: Sequence[SendOutcome],
        *,
        attempt_id: str,
        shard_index: int = 0,
        template_name: str | None = None,
        language: str | None = None,
        known: Mapping[str, ExistingSend] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record recipients that were not sent (``skipped``/``invalid``) with the reason.

        Only absent rows and rows that never reached Meta (``skipped``, ``invalid``) are written; a
        row recording a real send is never overwritten.
        """
        if not outcomes:
            return
        db_now = _to_db(now or utcnow())
        if known is None:
            known = self.existing_sends(campaign_id, [o.recipient for o in outcomes])
        fresh: list[dict[str, Any]] = []
        rewrite: list[dict[str, Any]] = []
        for o in sorted(outcomes, key=lambda item: item.recipient):
            values = {
                "state": o.state,
                "error_code": o.error_code,
                "error_title": _clip(o.error_title, _TITLE_MAX),
                "error_details": _clip(o.error_details, _DETAILS_MAX),
            }
            prior = known.get(o.recipient)
            if prior is None:
                fresh.append(
                    {
                        "campaign_id": campaign_id,
                        "recipient": o.recipient,
                        "attempt_id": attempt_id,
                        "shard_index": shard_index,
                        "template_name": template_name,
                        "language": language,
                        "attempts": 0,
                        "updated_at": db_now,
                        **values,
                    }
                )
            elif prior.state in (SKIPPED, INVALID):
                rewrite.append(
                    {
                        "b_recipient": o.recipient,
                        "b_prior_state": prior.state,
                        **{f"b_{k}": v for k, v in values.items()},
                    }
                )
        s = self.sends.c

        def _work(conn: Connection) -> Any:
            upsert(conn, self.sends, fresh, key=("campaign_id", "recipient"))
            if rewrite:
                conn.execute(
                    self.sends.update()
                    .where(
                        s.campaign_id == campaign_id,
                        s.recipient == sa.bindparam("b_recipient"),
                        s.state == sa.bindparam("b_prior_state"),
                    )
                    .values(
                        state=sa.bindparam("b_state"),
                        error_code=sa.bindparam("b_error_code"),
                        error_title=sa.bindparam("b_error_title"),
                        error_details=sa.bindparam("b_error_details"),
                        attempt_id=attempt_id,
                        updated_at=db_now,
                    ),
                    rewrite,
                )

        self._write(_work)

    def record_results(
        self,
        campaign_id: str,
        outcomes: Sequence[SendOutcome],
        *,
        attempt_id: str,
        now: datetime | None = None,
    ) -> int:
        """Write the outcomes of claimed recipients (one executemany); returns rows updated.

        Only rows claimed by ``attempt_id`` are touched.
        """
        if not outcomes:
            return 0
        db_now = _to_db(now or utcnow())
        params = [
            {
                "b_recipient": o.recipient,
                "b_state": o.state,
                "b_wamid": o.wamid,
                "b_message_status": o.message_status,
                "b_error_code": o.error_code,
                "b_error_title": _clip(o.error_title, _TITLE_MAX),
                "b_error_details": _clip(o.error_details, _DETAILS_MAX),
                "b_attempts": o.attempts,
                "b_not_before": _to_db(o.not_before),
                "b_accepted_at": _to_db(o.accepted_at) or (db_now if o.state in DELIVERED_TO_META else None),
            }
            for o in sorted(outcomes, key=lambda item: item.recipient)
        ]
        s = self.sends.c
        stmt = (
            self.sends.update()
            .where(
                s.campaign_id == campaign_id,
                s.recipient == sa.bindparam("b_recipient"),
                s.attempt_id == attempt_id,
            )
            .values(
                state=sa.bindparam("b_state"),
                wamid=sa.bindparam("b_wamid"),
                message_status=sa.bindparam("b_message_status"),
                error_code=sa.bindparam("b_error_code"),
                error_title=sa.bindparam("b_error_title"),
                error_details=sa.bindparam("b_error_details"),
                attempts=sa.bindparam("b_attempts"),
                not_before=sa.bindparam("b_not_before", type_=_dt()),
                accepted_at=sa.bindparam("b_accepted_at", type_=_dt()),
                updated_at=db_now,
            )
        )

        def _work(conn: Connection) -> Any:
            result = conn.execute(stmt, params)
            return int(result.rowcount or 0) if result.rowcount is not None and result.rowcount >= 0 else 0

        return self._write(_work)

    def release_claims(self, campaign_id: str, *, attempt_id: str) -> int:
        """Delete this attempt's rows still ``claimed`` (never sent), so a later run sends them.

        Used when a campaign halts: results of in-flight requests must be recorded first.
        """
        s = self.sends.c

        def _work(conn: Connection) -> Any:
            result = conn.execute(
                self.sends.delete().where(
                    s.campaign_id == campaign_id, s.attempt_id == attempt_id, s.state == CLAIMED
                )
            )
            return int(result.rowcount or 0)

        return self._write(_work)

    def iter_sends(
        self, campaign_id: str, *, states: Iterable[str] | None = None, batch_size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Stream the ``sends`` rows of a campaign (optionally only some states), in key order."""
        s = self.sends.c
        last = ""
        state_list = list(states) if states is not None else None
        while True:
            query = sa.select(self.sends).where(s.campaign_id == campaign_id, s.recipient > last)
            if state_list is not None:
                query = query.where(s.state.in_(state_list))
            with self.read() as conn:
                rows = [
                    dict(r) for r in conn.execute(query.order_by(s.recipient).limit(batch_size)).mappings()
                ]
            for row in rows:
                for col in ("not_before", "claimed_at", "accepted_at", "updated_at"):
                    row[col] = _from_db(row[col])
                yield row
            if len(rows) < batch_size:
                return
            last = rows[-1]["recipient"]

    def iter_final_recipients(
        self, campaign_id: str, *, states: Iterable[str] = FINAL_STATES
    ) -> Iterator[str]:
        """Stream the recipients of a campaign whose send is in a final state."""
        for row in self.iter_sends(campaign_id, states=states):
            yield row["recipient"]

    # -- suppressions and frequency cap ---------------------------------------------------------

    def add_suppressions(self, entries: Sequence[Suppression], *, now: datetime | None = None) -> None:
        """Add or extend suppressions (one executemany).

        A suppression for ever is never shortened; otherwise the later ``until`` wins.
        """
        if not entries:
            return
        db_now = _to_db(now or utcnow())
        rows = [
            {
                "recipient": e.recipient,
                "reason": e.reason,
                "error_code": e.error_code,
                "campaign_id": e.campaign_id,
                "until": _to_db(e.until),
                "created_at": db_now,
                "updated_at": db_now,
            }
            for e in sorted(entries, key=lambda item: item.recipient)
        ]
        t = self.suppressions.c

        def merge(new: Any) -> dict[str, Any]:
            # An existing row wins when it is for ever, or lasts longer than the new one.
            keep_old = sa.or_(t.until.is_(None), sa.and_(new.until.is_not(None), t.until >= new.until))
            return {
                "reason": sa.case((keep_old, t.reason), else_=new.reason),
                "error_code": sa.case((keep_old, t.error_code), else_=new.error_code),
                "campaign_id": sa.case((keep_old, t.campaign_id), else_=new.campaign_id),
                "updated_at": new.updated_at,
                "until": sa.case((keep_old, t.until), else_=new.until),  # last: MySQL order
            }

        def _work(conn: Connection) -> Any:
            upsert(conn, self.suppressions, rows, key=("recipient",), update=merge)

        self._write(_work)

    def remove_suppressions(self, recipients: Sequence[str]) -> int:
        """Lift suppressions (e.g. a user opted back in); returns how many were removed."""

        def _work(conn: Connection) -> int:
            removed = 0
            for chunk in _chunks(sorted(recipients)):
                result = conn.execute(
                    self.suppressions.delete().where(self.suppressions.c.recipient.in_(chunk))
                )
                removed += int(result.rowcount or 0)
            return removed

        return int(self._write(_work))

    def active_suppressions(
        self, recipients: Sequence[str], *, now: datetime | None = None
    ) -> dict[str, Suppression]:
        """Suppressions in force at ``now`` for any of ``recipients``, by recipient."""
        if not recipients:
            return {}
        db_now = _to_db(now or utcnow())
        t = self.suppressions.c
        out: dict[str, Suppression] = {}
        with self.read() as conn:
            for chunk in _chunks(list(recipients)):
                rows = conn.execute(
                    sa.select(t.recipient, t.reason, t.error_code, t.until, t.campaign_id).where(
                        t.recipient.in_(chunk), sa.or_(t.until.is_(None), t.until > db_now)
                    )
                )
                for recipient, reason, code, until, campaign in rows:
                    out[recipient] = Suppression(recipient, reason, code, _from_db(until), campaign)
        return out

    def recently_messaged(
        self,
        recipients: Sequence[str],
        *,
        since: datetime,
        exclude_campaign_id: str | None = None,
    ) -> set[str]:
        """Recipients Meta took a message for (accepted/held/paused) in any campaign since ``since``."""
        if not recipients:
            return set()
        s = self.sends.c
        found: set[str] = set()
        with self.read() as conn:
            for chunk in _chunks(list(recipients)):
                query = (
                    sa.select(s.recipient)
                    .distinct()
                    .where(
                        s.recipient.in_(chunk), s.updated_at >= _to_db(since), s.state.in_(DELIVERED_TO_META)
                    )
                )
                if exclude_campaign_id is not None:
                    query = query.where(s.campaign_id != exclude_campaign_id)
                found.update(conn.execute(query).scalars())
        return found

    # -- webhook statuses and clicks ------------------------------------------------------------

    def record_statuses(self, updates: Sequence[StatusUpdate], *, now: datetime | None = None) -> int:
        """Apply webhook statuses; returns the number of distinct (wamid, status) events applied.

        Idempotent and order-independent: duplicates are ignored, a status never replaces one of a
        higher rank (``sent`` < ``delivered`` < ``read``; ``failed`` is terminal and keeps its error),
        each per-status timestamp keeps its earliest value. A status whose wamid has no send row (yet)
        is stored anyway and joins its send later by wamid. Unknown status names are ignored.
        """
        merged: dict[str, dict[str, Any]] = {}
        events: set[tuple[str, str]] = set()
        suppressions: list[Suppression] = []
        for u in updates:
            rank = STATUS_RANKS.get(u.status)
            if rank is None or not u.wamid:
                continue
            events.add((u.wamid, u.status))
            if u.status == "failed" and u.recipient_id:
                suppression = _suppression_for(u.recipient_id, u.error_code, u.timestamp)
                if suppression is not None:
                    suppressions.append(suppression)
            ts = _to_db(u.timestamp)
            m = merged.get(u.wamid)
            if m is None:
                m = merged[u.wamid] = {
                    "b_wamid": u.wamid,
                    "b_rank": 0,
                    "b_status": None,
                    "b_status_at": None,
                    "b_recipient_id": None,
                    "b_pricing_category": None,
                    "b_pricing_model": None,
                    "b_error_code": None,
                    "b_error_title": None,
                    "b_error_details": None,
                    "b_sent_at": None,
                    "b_delivered_at": None,
                    "b_read_at": None,
                    "b_failed_at": None,
                }
            if rank > m["b_rank"] or (rank == m["b_rank"] and ts is not None and ts < m["b_status_at"]):
                m["b_rank"], m["b_status"], m["b_status_at"] = rank, u.status, ts
            col = {"played": "b_read_at"}.get(u.status, f"b_{u.status}_at")
            if m[col] is None or ts < m[col]:
                m[col] = ts
            m["b_recipient_id"] = m["b_recipient_id"] or _clip(u.recipient_id, 64)
            m["b_pricing_category"] = u.pricing_category or m["b_pricing_category"]
            m["b_pricing_model"] = u.pricing_model or m["b_pricing_model"]
            if u.status == "failed" and m["b_error_code"] is None:
                m["b_error_code"] = u.error_code
                m["b_error_title"] = _clip(u.error_title, _TITLE_MAX)
                m["b_error_details"] = _clip(u.error_details, _DETAILS_MAX)
        if not merged:
            return 0
        db_now = _to_db(now or utcnow())
        t = self.statuses.c
        dt = _dt()

        def earliest(column: sa.Column[Any], name: str) -> Any:
            new = sa.bindparam(name, type_=dt)
            return sa.case(
                (sa.and_(new.is_not(None), sa.or_(column.is_(None), new < column)), new), else_=column
            )

        new_rank = sa.bindparam("b_rank", type_=sa.Integer())
        higher = new_rank > t.status_rank
        stmt = (
            self.statuses.update()
            .where(t.wamid == sa.bindparam("b_wamid"))
            .values(
                {
                    # Every expression below reads only its own column or status_rank, and status_rank
                    # is assigned last (MySQL applies SET clauses left to right).
                    t.status: sa.case((higher, sa.bindparam("b_status", type_=sa.String())), else_=t.status),
                    t.status_at: sa.case((higher, sa.bindparam("b_status_at", type_=dt)), else_=t.status_at),
                    t.sent_at: earliest(t.sent_at, "b_sent_at"),
                    t.delivered_at: earliest(t.delivered_at, "b_delivered_at"),
                    t.read_at: earliest(t.read_at, "b_read_at"),
                    t.failed_at: earliest(t.failed_at, "b_failed_at"),
                    t.recipient_id: sa.func.coalesce(
                        t.recipient_id, sa.bindparam("b_recipient_id", type_=sa.String())
                    ),
                    t.pricing_category: sa.func.coalesce(
                        sa.bindparam("b_pricing_category", type_=sa.String()), t.pricing_category
                    ),
                    t.pricing_model: sa.func.coalesce(
                        sa.bindparam("b_pricing_model", type_=sa.String()), t.pricing_model
                    ),
                    t.error_code: sa.func.coalesce(
                        t.error_code, sa.bindparam("b_error_code", type_=sa.Integer())
                    ),
                    t.error_title: sa.func.coalesce(
                        t.error_title, sa.bindparam("b_error_title", type_=sa.String())
                    ),
                    t.error_details: sa.func.coalesce(
                        t.error_details, sa.bindparam("b_error_details", type_=sa.Text())
                    ),
                    t.updated_at: db_now,
                    t.status_rank: sa.case((higher, new_rank), else_=t.status_rank),
                }
            )
        )
        params = [merged[w] for w in sorted(merged)]

        def _work(conn: Connection) -> Any:
            upsert(
                conn,
                self.statuses,
                [
                    {"wamid": w, "status_rank": 0, "click_count": 0, "updated_at": db_now}
                    for w in sorted(merged)
                ],
                key=("wamid",),
            )
            conn.execute(stmt, params)

        self._write(_work)
        self.add_suppressions(suppressions, now=now)
        return len(events)

    def record_clicks(self, clicks: Sequence[ClickEvent], *, now: datetime | None = None) -> int:
        """Store link clicks (deduplicated by click id); returns how many distinct clicks were given.

        Clicks that name their message update its ``clicked_at`` (first click) and ``click_count``.
        """
        unique = {c.click_id: c for c in clicks}
        if not unique:
            return 0
        db_now = _to_db(now or utcnow())
        rows = [
            {
                "click_id": c.click_id,
                "wamid": c.wamid,
                "recipient": _clip(c.recipient, 64),
                "click_component": _clip(c.click_component, 32),
                "product_id": _clip(c.product_id, 191),
                "tracking_token": _clip(c.tracking_token, 255),
                "clicked_at": _to_db(c.timestamp),
                "created_at": db_now,
            }
            for c in sorted(unique.values(), key=lambda item: item.click_id)
        ]
        wamids = sorted({c.wamid for c in unique.values() if c.wamid})
        k = self.clicks.c
        t = self.statuses.c

        def _work(conn: Connection) -> Any:
            upsert(conn, self.clicks, rows, key=("click_id",))
            if wamids:
                upsert(
                    conn,
                    self.statuses,
                    [{"wamid": w, "status_rank": 0, "click_count": 0, "updated_at": db_now} for w in wamids],
                    key=("wamid",),
                )
                count_q = sa.select(sa.func.count()).where(k.wamid == t.wamid).scalar_subquery()
                first_q = sa.select(sa.func.min(k.clicked_at)).where(k.wamid == t.wamid).scalar_subquery()
                for chunk in _chunks(wamids):
                    conn.execute(
                        self.statuses.update()
                        .where(t.wamid.in_(chunk))
                        .values(click_count=count_q, clicked_at=first_q, updated_at=db_now)
                    )

        self._write(_work)
        return len(unique)

    def status_of(self, wamid: str) -> dict[str, Any] | None:
        """The stored delivery status row of one message (``None`` if no webhook came yet)."""
        with self.read() as conn:
            row = (
                conn.execute(sa.select(self.statuses).where(self.statuses.c.wamid == wamid))
                .mappings()
                .first()
            )
        if row is None:
            return None
        out = dict(row)
        for col in (
            "status_at",
            "sent_at",
            "delivered_at",
            "read_at",
            "failed_at",
            "clicked_at",
            "updated_at",
        ):
            out[col] = _from_db(out[col])
        return out

    # -- report queries -------------------------------------------------------------------------

    def _joined(self) -> Any:
        return self.sends.outerjoin(self.statuses, self.statuses.c.wamid == self.sends.c.wamid)

    def send_counts(self, campaign_id: str) -> dict[str, int]:
        """Number of recipients by send state."""
        s = self.sends.c
        with self.read() as conn:
            rows = conn.execute(
                sa.select(s.state, sa.func.count()).where(s.campaign_id == campaign_id).group_by(s.state)
            )
            return {state: int(n) for state, n in rows}

    def delivery_counts(self, campaign_id: str) -> dict[str, int]:
        """Messages Meta took (accepted/held/paused) by latest delivery status (``pending`` = none yet)."""
        s, t = self.sends.c, self.statuses.c
        status = sa.func.coalesce(t.status, "pending")
        with self.read() as conn:
            rows = conn.execute(
                sa.select(status, sa.func.count())
                .select_from(self._joined())
                .where(s.campaign_id == campaign_id, s.state.in_(DELIVERED_TO_META))
                .group_by(status)
            )
            return {str(name): int(n) for name, n in rows}

    def error_counts(self, campaign_id: str) -> list[dict[str, Any]]:
        """Failures by error code, most frequent first.

        Each item: ``code``, ``title``, ``count``, ``stage`` (``send`` for a refused request,
        ``delivery`` for a ``failed`` webhook), and one example ``details``.
        """
        s, t = self.sends.c, self.statuses.c
        out: list[dict[str, Any]] = []
        with self.read() as conn:
            send_rows = conn.execute(
                sa.select(
                    s.error_code, sa.func.max(s.error_title), sa.func.count(), sa.func.max(s.error_details)
                )
                .where(s.campaign_id == campaign_id, s.state == FAILED)
                .group_by(s.error_code)
            )
            for code, title, n, details in send_rows:
                out.append(
                    {
                        "code": code,
                        "title": title or error_title(code),
                        "count": int(n),
                        "stage": "send",
                        "details": details,
                    }
                )
            delivery_rows = conn.execute(
                sa.select(
                    t.error_code, sa.func.max(t.error_title), sa.func.count(), sa.func.max(t.error_details)
                )
                .select_from(self._joined())
                .where(s.campaign_id == campaign_id, s.state.in_(DELIVERED_TO_META), t.status == "failed")
                .group_by(t.error_code)
            )
            for code, title, n, details in delivery_rows:
                out.append(
                    {
                        "code": code,
                        "title": title or error_title(code),
                        "count": int(n),
                        "stage": "delivery",
                        "details": details,
                    }
                )
        out.sort(key=lambda item: (-item["count"], item["stage"], item["code"] or 0))
        return out


def _configure_sqlite(engine: Engine, *, memory: bool) -> None:
    """WAL, busy timeout and ``BEGIN IMMEDIATE`` for SQLite engines made by :meth:`Ledger.from_url`."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
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


__all__ = [
    "ACCEPTED",
    "CLAIMED",
    "DELIVERED_TO_META",
    "FAILED",
    "FINAL_STATES",
    "HELD",
    "INVALID",
    "PAUSED",
    "SEND_STATES",
    "SKIPPED",
    "STATUS_RANKS",
    "SUPPRESS_MANUAL",
    "SUPPRESS_PER_USER_LIMIT",
    "SUPPRESS_STOPPED_MARKETING",
    "UNKNOWN",
    "ClickEvent",
    "ExistingSend",
    "Ledger",
    "SendOutcome",
    "StatusUpdate",
    "Suppression",
    "upsert",
    "utcnow",
]
