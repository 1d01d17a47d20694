"""Who sends from a phone number right now: the ``senders`` table, one row per running sender.

Meta's cap belongs to a phone number, not to a task. Every run that shares the cap
(:mod:`~airflow_provider_wamm.campaign.cap_share`) registers here under the number's key, beats a
heartbeat about once a second with the most it may send per second until its next beat (its
``share``), and deletes its row when it ends. A row whose heartbeat is older than the expiry belongs
to a sender that died: the others stop counting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger.records import naive_utc, utcnow
from airflow_provider_wamm.campaign.ledger.schema import LedgerTables, datetime_type, key_column, key_type
from airflow_provider_wamm.campaign.ledger.transactions import Transactions


def senders_table(metadata: sa.MetaData, p: str) -> sa.Table:
    """The ``senders`` table: one row per running sender of a phone number."""
    return sa.Table(
        f"{p}senders",
        metadata,
        sa.Column("sender_id", key_type(64), primary_key=True),
        sa.Column("cap_key", key_type(255), nullable=False),
        key_column("campaign_id", nullable=False),
        sa.Column("number_cap", sa.Float, nullable=False),
        sa.Column("max_rate", sa.Float, nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("started_at", datetime_type(), nullable=False),
        sa.Column("heartbeat_at", datetime_type(), nullable=False),
        sa.Index(f"ix_{p}senders_key", "cap_key"),
    )


@dataclass(frozen=True, slots=True)
class SenderRow:
    """One live sender of a phone number, as the registry reads it."""

    sender_id: str
    campaign_id: str
    number_cap: float
    """The number's cap as this sender knows it."""
    max_rate: float
    """The most this sender itself wants to send per second."""
    share: float
    """The most it may send per second until its next heartbeat."""
    started_at: datetime


class SenderRegistry:
    """Register, beat, list and remove the senders of phone numbers.

    :param tables: the ledger's tables (``senders``).
    :param tx: the ledger's transaction runner.
    """

    def __init__(self, tables: LedgerTables, tx: Transactions) -> None:
        self.table = tables.senders
        self.tx = tx

    def register(
        self,
        sender_id: str,
        cap_key: str,
        *,
        campaign_id: str,
        number_cap: float,
        max_rate: float,
        share: float,
        now: datetime | None = None,
    ) -> None:
        """Record a new sender of ``cap_key`` that may send up to ``share`` per second for now."""
        at = naive_utc(now or utcnow())
        row = {
            "sender_id": sender_id,
            "cap_key": cap_key,
            "campaign_id": campaign_id,
            "number_cap": float(number_cap),
            "max_rate": float(max_rate),
            "share": float(share),
            "started_at": at,
            "heartbeat_at": at,
        }

        def work(conn: Connection) -> None:
            conn.execute(self.table.delete().where(self.table.c.sender_id == sender_id))
            conn.execute(self.table.insert(), row)

        self.tx.write(work)

    def beat(self, sender_id: str, share: float, *, now: datetime | None = None) -> None:
        """Record that a sender is alive and may send up to ``share`` per second until its next beat."""
        stmt = (
            self.table.update()
            .where(self.table.c.sender_id == sender_id)
            .values(share=float(share), heartbeat_at=naive_utc(now or utcnow()))
        )

        def work(conn: Connection) -> None:
            conn.execute(stmt)

        self.tx.write(work)

    def live(self, cap_key: str, *, within: timedelta, now: datetime | None = None) -> list[SenderRow]:
        """The senders of ``cap_key`` whose heartbeat is younger than ``within``, oldest first."""
        c = self.table.c
        horizon = naive_utc((now or utcnow()) - within)
        query = (
            sa.select(c.sender_id, c.campaign_id, c.number_cap, c.max_rate, c.share, c.started_at)
            .where(c.cap_key == cap_key, c.heartbeat_at >= horizon)
            .order_by(c.started_at, c.sender_id)
        )
        with self.tx.read() as conn:
            return [
                SenderRow(r.sender_id, r.campaign_id, r.number_cap, r.max_rate, r.share, r.started_at)
                for r in conn.execute(query)
            ]

    def leave(self, sender_id: str) -> None:
        """Remove a sender that ended (the others take its share back at their next beat)."""

        def work(conn: Connection) -> None:
            conn.execute(self.table.delete().where(self.table.c.sender_id == sender_id))

        self.tx.write(work)

    def forget_dead(self, cap_key: str, *, older_than: timedelta, now: datetime | None = None) -> int:
        """Delete the rows of ``cap_key`` whose heartbeat is older than ``older_than``; how many."""
        c = self.table.c
        horizon = naive_utc((now or utcnow()) - older_than)
        stmt = self.table.delete().where(c.cap_key == cap_key, c.heartbeat_at < horizon)

        def work(conn: Connection) -> int:
            return int(conn.execute(stmt).rowcount or 0)

        return self.tx.write(work)


__all__ = ["SenderRegistry", "SenderRow", "senders_table"]
