"""A deduplicated log of dated signals in one table, the ground of the template and account logs.

Each row is keyed by a hash of everything Meta said (times included), so a webhook delivered twice is
stored once; "newest" means newest by Meta's time, else by arrival, so out-of-order webhooks never
make an old state current again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger.records import as_utc, naive_utc
from airflow_provider_wamm.campaign.ledger.rows import row_values
from airflow_provider_wamm.campaign.ledger.schema import datetime_type, row_id_type, upsert
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

_EventT = TypeVar("_EventT")


def event_key(values: dict[str, Any]) -> str:
    """The deduplication key of a stored event: a hash of everything Meta said, times included."""
    raw = json.dumps(values, sort_keys=True, default=str, ensure_ascii=True).encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


#: The columns of an event log's table that the log fills itself, not the event.
_LOG_COLUMNS = ("id", "event_key", "received_at")


def define_event_table(
    metadata: sa.MetaData,
    name: str,
    index_prefix: str,
    columns: Sequence[sa.Column[Any]],
    indexes: Sequence[sa.Index] = (),
) -> sa.Table:
    """A table an :class:`EventLog` keeps: a row id and the deduplication key, then ``columns``, then
    Meta's time of the event and its arrival (indexed as ``<index_prefix>_received``)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", row_id_type(), primary_key=True, autoincrement=True),
        sa.Column("event_key", sa.String(32), nullable=False, unique=True),
        *columns,
        sa.Column("event_at", datetime_type()),
        sa.Column("received_at", datetime_type(), nullable=False),
        *indexes,
        sa.Index(f"{index_prefix}_received", "received_at"),
    )


class EventLog(Generic[_EventT]):
    """Store events in ``table`` and read them back, newest first or in arrival order.

    :param table: a table made by :func:`define_event_table`.
    :param tx: the ledger's transaction runner.
    :param from_row: a stored row read back.
    :param stored: the values of one event's columns stored otherwise than as they are (see
        :func:`~airflow_provider_wamm.campaign.ledger.rows.row_values`).
    """

    def __init__(
        self,
        table: sa.Table,
        tx: Transactions,
        from_row: Callable[[Any], _EventT],
        stored: Callable[[_EventT], dict[str, Any]] = lambda _event: {},
    ) -> None:
        self.table = table
        self.tx = tx
        self._from_row = from_row
        self._stored = stored

    def _to_row(self, event: _EventT) -> dict[str, Any]:
        """The bound values of one event (without ``event_key`` and ``received_at``)."""
        return row_values(self.table, event, skip=_LOG_COLUMNS, **self._stored(event))

    def record_in(self, conn: Connection, events: Sequence[_EventT], at: datetime) -> int:
        """Store ``events`` (deduplicated) in the caller's transaction; returns how many distinct ones."""
        rows: dict[str, dict[str, Any]] = {}
        for event in events:
            row = self._to_row(event)
            key = event_key(row)
            rows[key] = {**row, "event_key": key, "received_at": naive_utc(at)}
        upsert(conn, self.table, [rows[k] for k in sorted(rows)], key=("event_key",))
        return len(rows)

    def _by_meta_time(self) -> Any:
        """Meta's time of a row, else its arrival."""
        t = self.table.c
        return sa.func.coalesce(t.event_at, t.received_at)

    def newest(self, *where: Any) -> _EventT | None:
        """The newest event (by Meta's time, else arrival) matching ``where``."""
        t = self.table.c
        query = (
            sa.select(self.table).where(*where).order_by(self._by_meta_time().desc(), t.id.desc()).limit(1)
        )
        with self.tx.read() as conn:
            row = conn.execute(query).first()
        return self._from_row(row) if row is not None else None

    def in_meta_order(self, *where: Any) -> list[_EventT]:
        """Every event matching ``where``, oldest first by Meta's time."""
        query = sa.select(self.table).where(*where).order_by(self._by_meta_time(), self.table.c.id)
        with self.tx.read() as conn:
            return [self._from_row(r) for r in conn.execute(query)]

    def since(
        self,
        since: datetime | None,
        *where: Any,
        after_id: int | None = None,
        kinds: Iterable[str] | None = None,
        limit: int,
    ) -> list[_EventT]:
        """Events received at or after ``since`` (and after row ``after_id``, of ``kinds``, matching
        ``where``), oldest first, at most ``limit``."""
        t = self.table.c
        clauses: list[Any] = list(where)
        if since is not None:
            clauses.append(t.received_at >= naive_utc(as_utc(since)))
        if after_id is not None:
            clauses.append(t.id > after_id)
        if kinds is not None:
            clauses.append(t.kind.in_([str(k).lower() for k in kinds]))
        query = sa.select(self.table).where(*clauses).order_by(t.id).limit(limit)
        with self.tx.read() as conn:
            return [self._from_row(r) for r in conn.execute(query)]


__all__ = ["EventLog", "define_event_table", "event_key"]
