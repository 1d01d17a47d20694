"""Account signals: the ``account_signals`` table and the latest messaging limit or quality of a number.

Account updates (Marketing Messages terms signed, restrictions, bans...), capability updates (the
portfolio's messaging limit), phone-number quality updates (a number's limit, throughput, quality
flag) and account alerts are kept as dated rows, deduplicated. "Latest" always means newest by
Meta's time (else by arrival), so out-of-order webhooks never make an old limit current again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger.event_log import EventLog, define_event_table
from airflow_provider_wamm.campaign.ledger.rows import record_from_row
from airflow_provider_wamm.campaign.ledger.schema import key_type
from airflow_provider_wamm.campaign.ledger.signal_records import AccountSignal, AccountSignalKind
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

#: Longest stored JSON of a signal's other fields.
ACCOUNT_DETAILS_MAX = 4000
#: Most signals one query returns unless told otherwise.
DEFAULT_SIGNAL_LIMIT = 1000


def define_account_signals(metadata: sa.MetaData, p: str) -> sa.Table:
    """The ``account_signals`` table of a ledger with table prefix ``p``."""
    columns: list[sa.Column[Any]] = [
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("event", sa.String(64)),
        sa.Column("waba_id", key_type(64)),
        sa.Column("phone_number", key_type(32)),
        sa.Column("messaging_limit", sa.String(32)),
        sa.Column("previous_limit", sa.String(32)),
        sa.Column("max_phone_numbers", sa.Integer),
        sa.Column("details", sa.Text),
    ]
    indexes = [
        sa.Index(f"ix_{p}acctsig_phone", "phone_number", "kind"),
        sa.Index(f"ix_{p}acctsig_waba", "waba_id", "kind"),
    ]
    return define_event_table(metadata, f"{p}account_signals", f"ix_{p}acctsig", columns, indexes)


def _details_column(signal: AccountSignal) -> dict[str, Any]:
    """The ``details`` column of a signal: its details as compact JSON, or a note that they were too
    large to keep (``None`` without details)."""
    details = signal.details
    if not details:
        return {"details": None}
    text = json.dumps(details, sort_keys=True, default=str, separators=(",", ":"))
    if len(text) > ACCOUNT_DETAILS_MAX:
        text = json.dumps({"truncated": True, "keys": sorted(details)[:50]})[:ACCOUNT_DETAILS_MAX]
    return {"details": text}


def _signal(row: Any) -> AccountSignal:
    """A stored row read back."""
    details: dict[str, Any] = {}
    if row.details:
        try:
            loaded = json.loads(row.details)
        except ValueError:
            loaded = None
        details = loaded if isinstance(loaded, dict) else {}
    return record_from_row(AccountSignal, row, kind=AccountSignalKind(row.kind), details=details)


class AccountLog(EventLog[AccountSignal]):
    """Store account signals and answer "latest messaging limit / quality of number X".

    :param table: the ``account_signals`` table.
    :param tx: the ledger's transaction runner.
    """

    def __init__(self, table: sa.Table, tx: Transactions) -> None:
        super().__init__(table, tx, _signal, _details_column)

    def latest_messaging_limit(
        self, *, phone_number: str | None = None, waba_id: str | None = None
    ) -> AccountSignal | None:
        """The newest signal that reported a messaging limit (``messaging_limit`` holds the tier), for a
        phone number (as displayed, digits compared) and/or an account; ``None`` when none did."""
        t = self.table.c
        where: list[Any] = [t.messaging_limit.is_not(None)]
        if phone_number is not None:
            where.append(t.phone_number == _digits(phone_number))
        if waba_id is not None:
            where.append(t.waba_id == str(waba_id))
        return self.newest(*where)

    def phone_number_quality(self, phone_number: str) -> AccountSignal | None:
        """The newest ``phone_number_quality_update`` of a number (its ``event``: ``FLAGGED``,
        ``UNFLAGGED``, ``THROUGHPUT_UPGRADE``...; its limit), or ``None``."""
        t = self.table.c
        return self.newest(
            t.kind == str(AccountSignalKind.PHONE_NUMBER_QUALITY), t.phone_number == _digits(phone_number)
        )

    def latest_signal(
        self, kind: str, *, waba_id: str | None = None, events: Iterable[str] | None = None
    ) -> AccountSignal | None:
        """The newest signal of one kind (``account_update``...), optionally of one account and event."""
        t = self.table.c
        where: list[Any] = [t.kind == str(kind)]
        if waba_id is not None:
            where.append(t.waba_id == str(waba_id))
        if events is not None:
            where.append(t.event.in_([str(e).upper() for e in events]))
        return self.newest(*where)

    def signals_since(
        self,
        since: datetime | None = None,
        *,
        after_id: int | None = None,
        kinds: Iterable[str] | None = None,
        waba_id: str | None = None,
        limit: int = DEFAULT_SIGNAL_LIMIT,
    ) -> list[AccountSignal]:
        """Account signals received at or after ``since`` (and after row ``after_id``), oldest first."""
        where = [] if waba_id is None else [self.table.c.waba_id == str(waba_id)]
        return self.since(since, *where, after_id=after_id, kinds=kinds, limit=limit)


def _digits(phone_number: str) -> str:
    """The digits of a displayed phone number (``+1 555-010-0001`` -> ``15550100001``)."""
    return "".join(ch for ch in str(phone_number) if ch.isdigit())


__all__ = [
    "ACCOUNT_DETAILS_MAX",
    "DEFAULT_SIGNAL_LIMIT",
    "AccountLog",
    "define_account_signals",
]
