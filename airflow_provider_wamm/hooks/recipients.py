"""Where a campaign's recipients come from: a list (or an XCom value), or rows of a SQL query.

A :class:`RecipientSource` is a context manager: entering it opens the recipients and yields them as an
iterable, leaving it closes whatever it opened. :class:`SqlRecipientSource` runs the query on any
common.sql connection and streams the rows ``batch_size`` at a time (server-side cursors where the
driver needs asking), so a query over millions of customers is never loaded whole.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseHook

from airflow_provider_wamm.campaign.sources import iter_cursor_rows


class RecipientSource(ABC):
    """A context manager yielding an iterable of recipients and closing what it opened."""

    @abstractmethod
    def __enter__(self) -> Iterable[Any]:
        """Open the recipients."""

    def __exit__(self, *exc: object) -> None:
        """Close what :meth:`__enter__` opened (nothing by default)."""
        return None


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
    """

    def __init__(
        self, conn_id: str, sql: str, parameters: Any, *, batch_size: int, recipient_field: str
    ) -> None:
        self.conn_id = conn_id
        self.sql = sql
        self.parameters = parameters
        self.batch_size = batch_size
        self.recipient_field = recipient_field
        self._closers: list[Callable[[], Any]] = []

    def __enter__(self) -> Iterator[dict[str, Any]]:
        """Run the query; the rows as dicts with lower-cased column names."""
        try:
            db = self._open_database()
            self._closers.append(db.close)
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
            return iter_cursor_rows(cursor, batch_size=self.batch_size, required_field=self.recipient_field)
        except BaseException:
            self.__exit__()
            raise

    def _open_database(self) -> Any:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = BaseHook.get_connection(self.conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise AirflowFailException(
                f"sql_conn_id {self.conn_id!r} is a {type(hook).__name__}, not a SQL database connection "
                "(common.sql DbApiHook)."
            )
        return hook.get_conn()

    def __exit__(self, *exc: object) -> None:
        """Close the cursor and the database connection."""
        while self._closers:
            close = self._closers.pop()
            try:
                close()
            except Exception:  # closing a cursor of a failed query must not hide the real error
                continue


__all__ = [
    "ListRecipientSource",
    "PrefetchingCursor",
    "RecipientSource",
    "SqlRecipientSource",
    "streaming_cursor",
]
