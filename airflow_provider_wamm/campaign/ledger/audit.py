"""The suppression audit: every change of a person's suppression as a dated row, with its signal.

The ``suppressions`` table holds what is in force; this table keeps how it got there: a stop or resume
webhook (with Meta's timestamp), a failed status webhook or a send's error (with the code and the
campaign), or the business itself. Rows are only ever added. The newest stop or resume of a person
also decides whether a late webhook is stale (an older event never overrides a newer one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger.records import (
    SUPPRESS_PER_USER_LIMIT,
    SUPPRESS_STOPPED_MARKETING,
    PreferenceValue,
    SuppressionAction,
    SuppressionChange,
    SuppressionSource,
    as_utc,
)
from airflow_provider_wamm.campaign.ledger.rows import record_from_row, row_values
from airflow_provider_wamm.campaign.ledger.schema import (
    chunks,
    datetime_type,
    key_column,
    key_type,
    row_id_type,
)
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

#: Longest stored note of an audit row.
AUDIT_DETAIL_MAX = 255


def define_suppression_audit(metadata: sa.MetaData, p: str) -> sa.Table:
    """The ``suppression_audit`` table of a ledger with table prefix ``p``."""
    return sa.Table(
        f"{p}suppression_audit",
        metadata,
        sa.Column("id", row_id_type(), primary_key=True, autoincrement=True),
        key_column("recipient", nullable=False),
        sa.Column("user_id", key_type(64)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("preference", sa.String(16)),
        sa.Column("error_code", sa.Integer),
        key_column("campaign_id"),
        sa.Column("waba_id", sa.String(64)),
        sa.Column("until", datetime_type()),
        sa.Column("detail", sa.String(AUDIT_DETAIL_MAX)),
        sa.Column("event_at", datetime_type()),
        sa.Column("recorded_at", datetime_type(), nullable=False),
        sa.Index(f"ix_{p}supaudit_recipient", "recipient", "id"),
        sa.Index(f"ix_{p}supaudit_user", "user_id"),
    )


def _change(row: Any) -> SuppressionChange:
    """An audit row read back."""
    return record_from_row(
        SuppressionChange,
        row,
        action=SuppressionAction(row.action),
        source=SuppressionSource(row.source),
        preference=PreferenceValue(row.preference) if row.preference else None,
    )


class SuppressionAudit:
    """Write audit rows inside a suppression change's transaction; read a person's history.

    :param table: the ``suppression_audit`` table.
    :param tx: the ledger's transaction runner (for reads).
    """

    def __init__(self, table: sa.Table, tx: Transactions) -> None:
        self.table = table
        self.tx = tx

    def write(self, conn: Connection, changes: Sequence[SuppressionChange]) -> None:
        """Add ``changes`` (one executemany) in the caller's transaction."""
        if changes:
            rows = [
                # The keys are kept whole: they name the person as the suppressions table does.
                row_values(self.table, c, skip=("id",), recipient=c.recipient, campaign_id=c.campaign_id)
                for c in changes
            ]
            conn.execute(self.table.insert(), rows)

    def latest_stop_or_resume(self, conn: Connection, recipients: Iterable[str]) -> dict[str, datetime]:
        """Meta's time of the newest stop or resume applied to each recipient (stale ones excluded).

        A stop from a 131050 error counts like a ``user_preferences`` stop; a manual lift of a stop
        counts as a resume.
        """
        t = self.table.c
        when = sa.func.coalesce(t.event_at, t.recorded_at)
        out: dict[str, datetime] = {}
        for chunk in chunks(sorted(set(recipients))):
            rows = conn.execute(
                sa.select(t.recipient, sa.func.max(when))
                .where(
                    t.recipient.in_(chunk),
                    t.reason == SUPPRESS_STOPPED_MARKETING,
                    t.action != str(SuppressionAction.STALE),
                )
                .group_by(t.recipient)
            )
            for recipient, latest in rows:
                value = as_utc(latest)
                if value is not None:
                    out[recipient] = value
        return out

    def open_wait(self, conn: Connection, recipient: str, now: datetime) -> SuppressionChange | None:
        """The per-user-limit wait (131049) last added for ``recipient``, if it runs past ``now`` and was
        not lifted since."""
        t = self.table.c
        row = conn.execute(
            sa.select(self.table)
            .where(
                t.recipient == recipient,
                t.reason == SUPPRESS_PER_USER_LIMIT,
                t.action.in_([str(SuppressionAction.ADDED), str(SuppressionAction.LIFTED)]),
            )
            .order_by(t.id.desc())
            .limit(1)
        ).first()
        if row is None or row.action != SuppressionAction.ADDED:
            return None
        until = as_utc(row.until)
        return _change(row) if until is not None and until > now else None

    def history(self, recipient: str) -> list[SuppressionChange]:
        """Every recorded change of ``recipient`` (phone digits or business-scoped user id), oldest first."""
        t = self.table.c
        with self.tx.read() as conn:
            rows = conn.execute(
                sa.select(self.table)
                .where(sa.or_(t.recipient == recipient, t.user_id == recipient))
                .order_by(t.id)
            ).all()
        return [_change(r) for r in rows]


__all__ = ["AUDIT_DETAIL_MAX", "SuppressionAudit", "define_suppression_audit", "row_id_type"]
