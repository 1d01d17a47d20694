"""The status part of the run log: what Meta's status webhooks said about each message after its run.

A run's ``run_changes`` rows record what the run did (sent, skipped, failed...); what happened to a
message afterwards (delivered, read, failed with Meta's code, title and details) arrives later, as
status webhooks the receiver stores in the ledger's ``statuses``. This module copies those into
``<prefix>run_status_changes``: one row per message and status it reached, keyed
``(wamid, status)``, carrying the ``attempt_id`` of the run that sent it (so it joins
``run_changes`` and ``run_summaries``).

The rows are derived from each message's latest status, as the campaign report counts it: a message
read was ``delivered`` and ``read``; a message whose latest status is ``failed`` has a ``failed`` row.
So, per campaign, the rows of each status equal the report's ``delivered``, ``read`` and
``delivery_failed``. Written whenever a task logs them (the send task at the end of its run, the
responses sensor when it reports); idempotent, so writing again adds only what changed. A send task
that is one shard of a campaign logs only the messages of its own shard (see :func:`iter_messages`),
so N shards ending together do not each read and write the whole campaign's statuses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import DELIVERED_TO_META, Ledger
from airflow_provider_wamm.campaign.ledger.records import naive_utc
from airflow_provider_wamm.campaign.ledger.schema import (
    DETAILS_MAX,
    datetime_type,
    error_columns,
    key_column,
    template_columns,
)

#: The statuses a ``run_status_changes`` row records (its ``status`` column).
LOGGED_STATUSES = ("delivered", "read", "failed")
#: Latest statuses that mean the message was delivered, and read (``played``: a voice message).
_DELIVERED = frozenset({"delivered", "read", "played"})
_READ = frozenset({"read", "played"})


def define_status_changes(metadata: sa.MetaData, table_prefix: str) -> sa.Table:
    """``<prefix>run_status_changes`` in ``metadata`` (the prefix is validated by the caller)."""
    p = table_prefix
    return sa.Table(
        f"{p}run_status_changes",
        metadata,
        key_column("wamid", primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        key_column("recipient", nullable=False),
        key_column("campaign_id", nullable=False),
        key_column("attempt_id", nullable=False),
        sa.Column("shard_index", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(64)),
        *template_columns(),
        sa.Column("pricing_category", sa.String(40)),
        *error_columns(),
        sa.Column("status_at", datetime_type()),
        sa.Column("logged_at", datetime_type(), nullable=False),
        sa.Index(f"ix_{p}run_status_changes_campaign", "campaign_id", "status"),
        sa.Index(f"ix_{p}run_status_changes_attempt", "attempt_id"),
    )


def logged_details(value: Any) -> str | None:
    """Meta's error details as the run log keeps them: cut to the ledger's length, empty as ``None``."""
    return None if value in (None, "") else str(value)[:DETAILS_MAX]


def _at(*values: Any) -> datetime | None:
    """The first of ``values`` that is a time (naive UTC for storage)."""
    for value in values:
        if isinstance(value, datetime):
            return naive_utc(value)
        if isinstance(value, str) and value:
            return naive_utc(datetime.fromisoformat(value))
    return None


def status_rows(message: Mapping[str, Any], logged_at: datetime) -> list[dict[str, Any]]:
    """The ``run_status_changes`` rows of one message (a ``sends`` row joined to its status)."""
    latest = message.get("status")
    base = {
        "wamid": message["wamid"],
        "recipient": message["recipient"],
        "campaign_id": message["campaign_id"],
        "attempt_id": message["attempt_id"],
        "shard_index": message.get("shard_index") or 0,
        "variant": message.get("variant"),
        "template_name": message.get("template_name"),
        "language": message.get("language"),
        "pricing_category": message.get("pricing_category"),
        "error_code": None,
        "error_title": None,
        "error_details": None,
        "logged_at": logged_at,
    }
    rows = []
    if latest in _DELIVERED:
        at = _at(message.get("delivered_at"), message.get("read_at"), message.get("status_at"))
        rows.append(base | {"status": "delivered", "status_at": at})
    if latest in _READ:
        rows.append(
            base | {"status": "read", "status_at": _at(message.get("read_at"), message.get("status_at"))}
        )
    if latest == "failed":
        rows.append(
            base
            | {
                "status": "failed",
                "status_at": _at(message.get("failed_at"), message.get("status_at")),
                "error_code": message.get("error_code"),
                "error_title": message.get("error_title"),
                "error_details": logged_details(message.get("error_details")),
            }
        )
    return rows


def iter_messages(
    ledger: Ledger,
    campaign_ids: Sequence[str],
    *,
    batch_size: int = 1000,
    shard: tuple[int, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """The campaigns' messages Meta took that have a status, with it, streamed in key order.

    :param shard: ``(shard_index, shard_count)``: only the messages that shard owns, those whose
        ``sends`` row has ``shard_index % shard_count == shard_index`` (every row has exactly one owner,
        also rows an earlier run wrote with another shard count). ``None``: every message.
    """
    s, t = ledger.sends.c, ledger.statuses.c
    owned: sa.ColumnElement[bool] = sa.true()
    if shard is not None and shard[1] > 1:
        owned = (s.shard_index % shard[1]) == shard[0]
    columns = [
        s.campaign_id,
        s.recipient,
        s.attempt_id,
        s.shard_index,
        s.variant,
        s.template_name,
        s.language,
        s.wamid,
        t.status,
        t.status_at,
        t.delivered_at,
        t.read_at,
        t.failed_at,
        t.pricing_category,
        t.error_code,
        t.error_title,
        t.error_details,
    ]
    join = ledger.sends.join(ledger.statuses, t.wamid == s.wamid)
    for campaign_id in campaign_ids:
        last = ""
        while True:
            query = (
                sa.select(*columns)
                .select_from(join)
                .where(
                    s.campaign_id == campaign_id,
                    s.recipient > last,
                    s.state.in_(DELIVERED_TO_META),
                    owned,
                )
                .order_by(s.recipient)
                .limit(batch_size)
            )
            with ledger.read() as conn:
                rows = [dict(r) for r in conn.execute(query).mappings()]
            yield from rows
            if len(rows) < batch_size:
                break
            last = rows[-1]["recipient"]


__all__ = ["LOGGED_STATUSES", "define_status_changes", "iter_messages", "status_rows"]
