"""Who later campaigns must leave alone: the ``suppressions`` table and the frequency cap.

Opt-outs (131050) are kept for ever and Meta's per-user limit (131049) for a day; every campaign
checks them before it claims a recipient. The frequency cap looks at what other campaigns sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger.records import (
    DELIVERED_TO_META,
    Suppression,
    as_utc,
    naive_utc,
    utcnow,
)
from airflow_provider_wamm.campaign.ledger.schema import LedgerTables, chunks, upsert
from airflow_provider_wamm.campaign.ledger.transactions import Transactions


class SuppressionList:
    """Add, lift and look up suppressions; find recipients messaged recently by any campaign.

    :param tables: the ledger's tables (``suppressions``, and ``sends`` for the frequency cap).
    :param tx: the ledger's transaction runner.
    """

    def __init__(self, tables: LedgerTables, tx: Transactions) -> None:
        self.tables = tables
        self.tx = tx

    def add_suppressions(self, entries: Sequence[Suppression], *, now: datetime | None = None) -> None:
        """Add or extend suppressions (one executemany).

        A suppression for ever is never shortened; otherwise the later ``until`` wins.
        """
        if not entries:
            return
        db_now = naive_utc(now or utcnow())
        rows = [
            {
                "recipient": e.recipient,
                "reason": e.reason,
                "error_code": e.error_code,
                "campaign_id": e.campaign_id,
                "until": naive_utc(e.until),
                "created_at": db_now,
                "updated_at": db_now,
            }
            for e in sorted(entries, key=lambda item: item.recipient)
        ]
        t = self.tables.suppressions.c

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

        def work(conn: Connection) -> None:
            upsert(conn, self.tables.suppressions, rows, key=("recipient",), update=merge)

        self.tx.write(work)

    def remove_suppressions(self, recipients: Sequence[str]) -> int:
        """Lift suppressions (e.g. a user opted back in); returns how many were removed."""
        table = self.tables.suppressions

        def work(conn: Connection) -> int:
            removed = 0
            for chunk in chunks(sorted(recipients)):
                result = conn.execute(table.delete().where(table.c.recipient.in_(chunk)))
                removed += int(result.rowcount or 0)
            return removed

        return int(self.tx.write(work))

    def active_suppressions(
        self, recipients: Sequence[str], *, now: datetime | None = None
    ) -> dict[str, Suppression]:
        """Suppressions in force at ``now`` for any of ``recipients``, by recipient."""
        if not recipients:
            return {}
        db_now = naive_utc(now or utcnow())
        t = self.tables.suppressions.c
        out: dict[str, Suppression] = {}
        with self.tx.read() as conn:
            for chunk in chunks(list(recipients)):
                rows = conn.execute(
                    sa.select(t.recipient, t.reason, t.error_code, t.until, t.campaign_id).where(
                        t.recipient.in_(chunk), sa.or_(t.until.is_(None), t.until > db_now)
                    )
                )
                for recipient, reason, code, until, campaign in rows:
                    out[recipient] = Suppression(recipient, reason, code, as_utc(until), campaign)
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
        s = self.tables.sends.c
        found: set[str] = set()
        with self.tx.read() as conn:
            for chunk in chunks(list(recipients)):
                query = (
                    sa.select(s.recipient)
                    .distinct()
                    .where(
                        s.recipient.in_(chunk),
                        s.updated_at >= naive_utc(since),
                        s.state.in_(DELIVERED_TO_META),
                    )
                )
                if exclude_campaign_id is not None:
                    query = query.where(s.campaign_id != exclude_campaign_id)
                found.update(conn.execute(query).scalars())
        return found


__all__ = ["SuppressionList"]
