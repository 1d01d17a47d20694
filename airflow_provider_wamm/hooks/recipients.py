"""Where a campaign's recipients come from: a list (or an XCom value), or rows of a SQL query.

A :class:`RecipientSource` is a context manager: entering it opens the recipients and yields them as an
iterable, leaving it closes whatever it opened. :class:`SqlRecipientSource` runs the query on any
common.sql connection and streams the rows ``batch_size`` at a time (server-side cursors where the
driver needs asking), so a query over millions of customers is never loaded whole. Before streaming,
it counts the query's rows once (``SELECT COUNT(*)`` over the query), so that the progress lines can
show a total and an ETA.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseHook

from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.sources import FieldUses, iter_cursor_rows

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

log = logging.getLogger(__name__)

#: What a ``sql_conn_id`` must be, said in the errors about one that is not.
SQL_CONNECTION_TYPES = (
    "use a connection whose type has a common.sql hook, such as postgres, mysql, sqlite, mssql, oracle, "
    "snowflake, trino or google_cloud_platform (BigQuery), with its provider installed"
)


class RecipientSource(ABC):
    """A context manager yielding an iterable of recipients and closing what it opened."""

    total: int | None = None
    """How many rows the source holds, once entered, when it knows (for the progress ETA)."""

    @abstractmethod
    def __enter__(self) -> Iterable[Any]:
        """Open the recipients."""

    def __exit__(self, *exc: object) -> None:
        """Close what :meth:`__enter__` opened (nothing by default)."""
        return None

    def settings_with_total(self, settings: CampaignSettings) -> CampaignSettings:
        """``settings`` with :attr:`total` as ``total_hint``, unless unknown or a hint was given."""
        if self.total is None or settings.total_hint is not None:
            return settings
        return dataclasses.replace(settings, total_hint=self.total)


class ListRecipientSource(RecipientSource):
    """Recipients given as a list of phone numbers or of dicts (e.g. an upstream task's XCom value).

    :param recipients: the rendered ``recipients`` argument; ``None`` means no recipients.
    """

    def __init__(self, recipients: Any) -> None:
        self.recipients = recipients

    def __enter__(self) -> Iterable[Any]:
        """The recipients; :class:`AirflowFailException` saying what is wrong when they are not a list."""
        recipients = self.recipients
        if recipients is None:
            return []
        if isinstance(recipients, (str, bytes)):
            raise AirflowFailException(
                "'recipients' rendered to a string, not a list. Pass the XComArg itself "
                "(e.g. recipients=get_recipients()) or set render_template_as_native_obj=True on the DAG."
            )
        if isinstance(recipients, Mapping) or not isinstance(recipients, Iterable):
            raise AirflowFailException(
                f"'recipients' must be a list of phone numbers or of dicts, got {type(recipients).__name__}."
            )
        return recipients


class PrefetchingCursor:
    """A cursor whose ``description`` is only known after the first fetch (e.g. named cursors).

    The first ``batch_size`` rows are fetched at once and handed out by the first :meth:`fetchmany`.
    """

    def __init__(self, cursor: Any, batch_size: int) -> None:
        self._cursor = cursor
        self._first: list[Any] | None = list(cursor.fetchmany(batch_size))
        self.description = cursor.description

    def fetchmany(self, size: int) -> Sequence[Any]:
        """The next rows: the prefetched ones first."""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        rows: Sequence[Any] = self._cursor.fetchmany(size)
        return rows


def sql_hook(conn_id: str) -> DbApiHook:
    """The common.sql hook of connection ``conn_id``; :class:`AirflowFailException` naming the
    connection, its type and what works when it has none (before anything is read or sent)."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    connection = BaseHook.get_connection(conn_id)
    conn_type = connection.conn_type
    try:
        hook = connection.get_hook()
    except (AirflowException, AttributeError, ImportError) as exc:
        # No hook registered for the type ("Unknown hook type"), one registered without a class
        # (generic, email: Airflow then fails with an AttributeError), or one that cannot be imported.
        if isinstance(exc, AirflowException) and "Unknown hook type" not in str(exc):
            raise  # the hook exists but refused the connection: its own message says why
        detail = f" (its hook cannot be imported: {exc})" if isinstance(exc, ImportError) else ""
        raise AirflowFailException(
            f"sql_conn_id {conn_id!r} is a connection of type {conn_type!r}, which has no SQL hook"
            f"{detail}: {SQL_CONNECTION_TYPES}."
        ) from exc
    if not isinstance(hook, DbApiHook):
        raise AirflowFailException(
            f"sql_conn_id {conn_id!r} is a {type(hook).__name__}, not a SQL database connection "
            f"(common.sql DbApiHook); its type is {conn_type!r}: {SQL_CONNECTION_TYPES}."
        )
    return hook


def count_query(sql: str) -> str:
    """``SELECT COUNT(*)`` over ``sql`` (a trailing ``;`` dropped; new lines keep a trailing comment
    from swallowing the parenthesis; no ``AS`` before the alias, which Oracle refuses)."""
    body = sql.strip().rstrip(";").rstrip()
    return f"SELECT COUNT(*) FROM (\n{body}\n) wamm_rows"


def count_rows(db: Any, sql: str, parameters: Any) -> int | None:
    """How many rows ``sql`` returns, counted by the database; ``None`` (with a warning) when the
    count query fails: the campaign then goes on without a total (its transaction is rolled back,
    so that PostgreSQL accepts the real query after a failed one)."""
    started = time.monotonic()
    cursor = db.cursor()
    try:
        if parameters is None:
            cursor.execute(count_query(sql))
        else:
            cursor.execute(count_query(sql), parameters)
        row = cursor.fetchone()
        total = int(row[0]) if row is not None else 0
    except Exception as exc:
        log.warning(
            "Could not count the rows of 'sql' for the progress ETA (%s: %s); going on without a total.",
            type(exc).__name__,
            exc,
        )
        rollback = getattr(db, "rollback", None)
        if rollback is not None:
            rollback()
        return None
    finally:
        cursor.close()
    log.info(
        "'sql' returns %s rows (counted in %.1f s; count_rows=False skips the count).",
        total,
        time.monotonic() - started,
    )
    return total


def streaming_cursor(db: Any) -> Any:
    """A cursor that fetches rows from the server as they are read, where the driver needs asking."""
    driver = type(db).__module__.split(".", 1)[0]
    if driver in ("psycopg", "psycopg2"):
        return db.cursor(name=f"wamm_recipients_{uuid.uuid4().hex[:12]}")
    if driver == "pymysql":
        import pymysql.cursors

        return db.cursor(pymysql.cursors.SSCursor)
    if driver == "MySQLdb":
        import MySQLdb.cursors

        return db.cursor(MySQLdb.cursors.SSCursor)
    return db.cursor()  # sqlite3 and most others already stream with fetchmany


class SqlRecipientSource(RecipientSource):
    """Stream the rows of ``sql`` from a common.sql connection, ``batch_size`` rows at a time.

    :param conn_id: any connection whose hook is a common.sql ``DbApiHook``.
    :param sql: a query returning one row per recipient.
    :param parameters: bound query parameters (never formatted into the query), or ``None``.
    :param batch_size: rows per fetch.
    :param recipient_field: the column holding the phone number (it must be in the result).
    :param required_fields: the columns the personalisation uses, with where (they must be in the
        result too).
    :param count: count the rows first (one ``SELECT COUNT(*)`` over the query) to set :attr:`total`;
        turn it off for queries too expensive to run twice.
    """

    def __init__(
        self,
        conn_id: str,
        sql: str,
        parameters: Any,
        *,
        batch_size: int,
        recipient_field: str,
        required_fields: FieldUses | None = None,
        count: bool = True,
    ) -> None:
        self.conn_id = conn_id
        self.sql = sql
        self.parameters = parameters
        self.batch_size = batch_size
        self.recipient_field = recipient_field
        self.required_fields = required_fields
        self.count = count
        self._closers: list[Callable[[], Any]] = []

    def __enter__(self) -> Iterator[dict[str, Any]]:
        """Run the query; the rows as dicts with lower-cased column names."""
        try:
            db = sql_hook(self.conn_id).get_conn()
            self._closers.append(db.close)
            if self.count:
                self.total = count_rows(db, self.sql, self.parameters)
            cursor = streaming_cursor(db)
            self._closers.append(cursor.close)
            if self.parameters is None:
                cursor.execute(self.sql)
            else:
                cursor.execute(self.sql, self.parameters)
            if cursor.description is None:
                cursor = PrefetchingCursor(cursor, self.batch_size)
            if cursor.description is None:
                raise AirflowFailException(
                    "'sql' returned no result set: it must be a SELECT returning one row per recipient."
                )
            return iter_cursor_rows(
                cursor,
                batch_size=self.batch_size,
                required_field=self.recipient_field,
                required_fields=self.required_fields,
            )
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        """Close the cursor and the database connection."""
        while self._closers:
            close = self._closers.pop()
            try:
                close()
            except Exception:  # closing a cursor of a failed query must not hide the real error
                continue


__all__ = [
    "SQL_CONNECTION_TYPES",
    "ListRecipientSource",
    "PrefetchingCursor",
    "RecipientSource",
    "SqlRecipientSource",
    "count_query",
    "count_rows",
    "sql_hook",
    "streaming_cursor",
]
