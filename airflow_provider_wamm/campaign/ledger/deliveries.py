"""What happened after Meta took a message: webhook statuses (``statuses``) and link clicks (``clicks``).

Statuses are stored by wamid and applied monotonically, so Meta's redeliveries and out-of-order
batches are harmless; a status may arrive before its send row and joins it later by wamid. A failed
status that says the user opted out (131050) or hit Meta's per-user limit (131049) feeds the
suppression list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger.identities import IdentityLink, IdentitySource, links_of
from airflow_provider_wamm.campaign.ledger.records import (
    DELIVERED_TO_META,
    PER_USER_LIMIT_WAIT,
    STATUS_RANKS,
    ClickEvent,
    DeliveryStatus,
    StatusUpdate,
    Suppression,
    as_utc,
    clip,
    naive_utc,
    suppression_for_error,
    utcnow,
)
from airflow_provider_wamm.campaign.ledger.resolution import resolve_unknown
from airflow_provider_wamm.campaign.ledger.schema import (
    CALLBACK_KEY_MAX,
    LedgerTables,
    chunks,
    datetime_type,
    error_values,
    upsert,
)
from airflow_provider_wamm.campaign.ledger.suppressions import SuppressionList
from airflow_provider_wamm.campaign.ledger.transactions import Transactions
from airflow_provider_wamm.campaign.limit_rules import retry_blocked
from airflow_provider_wamm.graph.errors import CODE_PER_USER_LIMIT

_STATUS_TIME_COLUMNS = (
    "status_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "clicked_at",
    "updated_at",
)


@dataclass
class _StatusBatch:
    """Webhook statuses folded into one row of bound values per wamid."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: set[tuple[str, str]] = field(default_factory=set)
    suppressions: list[Suppression] = field(default_factory=list)
    limited: dict[str, datetime] = field(default_factory=dict)
    """Wamids failed with Meta's per-user limit (131049) worth a retry, with the status's time."""


def _empty_row(wamid: str) -> dict[str, Any]:
    """The bound values of a wamid before any of its statuses is folded in."""
    row: dict[str, Any] = dict.fromkeys(
        (
            "b_status",
            "b_status_at",
            "b_recipient_id",
            "b_pricing_category",
            "b_pricing_model",
            "b_error_code",
            "b_error_title",
            "b_error_details",
            "b_sent_at",
            "b_delivered_at",
            "b_read_at",
            "b_failed_at",
            "b_callback_key",
            "b_recipient_user_id",
            "b_pricing_type",
            "b_cost_amount",
            "b_cost_currency",
        )
    )
    row.update(b_wamid=wamid, b_rank=0)
    return row


def _fold(row: dict[str, Any], update: StatusUpdate, rank: int) -> None:
    """Fold one status into its wamid's row: higher rank wins, each per-status time keeps its earliest."""
    ts = naive_utc(update.timestamp)
    if rank > row["b_rank"] or (rank == row["b_rank"] and ts is not None and ts < row["b_status_at"]):
        row["b_rank"], row["b_status"], row["b_status_at"] = rank, update.status, ts
    col = "b_read_at" if update.status == DeliveryStatus.PLAYED else f"b_{update.status}_at"
    if row[col] is None or ts < row[col]:
        row[col] = ts
    row["b_recipient_id"] = row["b_recipient_id"] or clip(update.recipient_id, 64)
    row["b_callback_key"] = row["b_callback_key"] or clip(update.callback_key, CALLBACK_KEY_MAX)
    row["b_pricing_category"] = update.pricing_category or row["b_pricing_category"]
    row["b_pricing_model"] = update.pricing_model or row["b_pricing_model"]
    row["b_recipient_user_id"] = row["b_recipient_user_id"] or clip(update.recipient_user_id, 191)
    row["b_pricing_type"] = clip(update.pricing_type, 32) or row["b_pricing_type"]
    if update.cost_amount is not None:
        row["b_cost_amount"], row["b_cost_currency"] = update.cost_amount, clip(update.cost_currency, 8)
    if update.status == DeliveryStatus.FAILED and row["b_error_code"] is None:
        row.update(error_values(update.error_code, update.error_title, update.error_details, prefix="b_"))


def _merge(updates: Sequence[StatusUpdate]) -> _StatusBatch:
    """Fold a batch of statuses per wamid; unknown status names and empty wamids are dropped."""
    batch = _StatusBatch()
    for update in updates:
        rank = STATUS_RANKS.get(update.status)
        if rank is None or not update.wamid:
            continue
        batch.events.add((update.wamid, update.status))
        if update.status == DeliveryStatus.FAILED and update.recipient_id:
            suppression = suppression_for_error(update.recipient_id, update.error_code, update.timestamp)
            if suppression is not None:
                batch.suppressions.append(suppression)
            if update.error_code == CODE_PER_USER_LIMIT and retry_blocked(update.recipient_id) is None:
                batch.limited.setdefault(update.wamid, update.timestamp)
        row = batch.rows.get(update.wamid)
        if row is None:
            row = batch.rows[update.wamid] = _empty_row(update.wamid)
        _fold(row, update, rank)
    return batch


def _earliest(column: sa.Column[Any], name: str) -> Any:
    """The bound time ``name`` when it is earlier than the stored one (or none is stored)."""
    new = sa.bindparam(name, type_=datetime_type())
    return sa.case((sa.and_(new.is_not(None), sa.or_(column.is_(None), new < column)), new), else_=column)


def _status_statement(statuses: sa.Table, db_now: datetime | None) -> sa.Update:
    """Apply one folded row to its stored status: monotonic, earliest times, first error kept."""
    t = statuses.c
    new_rank = sa.bindparam("b_rank", type_=sa.Integer())
    higher = new_rank > t.status_rank

    def first(column: sa.Column[Any], name: str, type_: Any) -> Any:
        return sa.func.coalesce(column, sa.bindparam(name, type_=type_))

    def latest(column: sa.Column[Any], name: str) -> Any:
        return sa.func.coalesce(sa.bindparam(name, type_=sa.String()), column)

    return (
        statuses.update()
        .where(t.wamid == sa.bindparam("b_wamid"))
        .values(
            {
                # Every expression below reads only its own column or status_rank, and status_rank
                # is assigned last (MySQL applies SET clauses left to right).
                t.status: sa.case((higher, sa.bindparam("b_status", type_=sa.String())), else_=t.status),
                t.status_at: sa.case(
                    (higher, sa.bindparam("b_status_at", type_=datetime_type())), else_=t.status_at
                ),
                t.sent_at: _earliest(t.sent_at, "b_sent_at"),
                t.delivered_at: _earliest(t.delivered_at, "b_delivered_at"),
                t.read_at: _earliest(t.read_at, "b_read_at"),
                t.failed_at: _earliest(t.failed_at, "b_failed_at"),
                t.recipient_id: first(t.recipient_id, "b_recipient_id", sa.String()),
                t.callback_key: first(t.callback_key, "b_callback_key", sa.String()),
                t.pricing_category: latest(t.pricing_category, "b_pricing_category"),
                t.pricing_model: latest(t.pricing_model, "b_pricing_model"),
                t.pricing_type: latest(t.pricing_type, "b_pricing_type"),
                t.recipient_user_id: first(t.recipient_user_id, "b_recipient_user_id", sa.String()),
                t.cost_amount: sa.func.coalesce(
                    sa.bindparam("b_cost_amount", type_=sa.Float()), t.cost_amount
                ),
                t.cost_currency: latest(t.cost_currency, "b_cost_currency"),
                t.error_code: first(t.error_code, "b_error_code", sa.Integer()),
                t.error_title: first(t.error_title, "b_error_title", sa.String()),
                t.error_details: first(t.error_details, "b_error_details", sa.Text()),
                t.updated_at: db_now,
                t.status_rank: sa.case((higher, new_rank), else_=t.status_rank),
            }
        )
    )


def _limited_statement(sends: sa.Table) -> sa.Update:
    """A send Meta took and then failed with its per-user limit: one more try counted, a retry due a
    day later. Once per message: a redelivered status finds the retry already set."""
    s = sends.c
    at = sa.bindparam("b_at", type_=datetime_type())
    return (
        sends.update()
        .where(
            s.wamid == sa.bindparam("b_wamid"),
            s.retry_after.is_(None),
            # Not IN (...): an expanding list cannot be bound in an executemany.
            sa.or_(*(s.state == state for state in DELIVERED_TO_META)),
        )
        .values(
            limited_tries=sa.func.coalesce(s.limited_tries, 0) + 1,
            limited_since=sa.func.coalesce(s.limited_since, at),
            retry_after=sa.bindparam("b_retry_after", type_=datetime_type()),
        )
    )


def _limited_params(limited: dict[str, datetime]) -> list[dict[str, Any]]:
    return [
        {"b_wamid": w, "b_at": naive_utc(at), "b_retry_after": naive_utc(at + PER_USER_LIMIT_WAIT)}
        for w, at in sorted(limited.items())
    ]


def _placeholders(wamids: Sequence[str], db_now: datetime | None) -> list[dict[str, Any]]:
    """Empty ``statuses`` rows for wamids that have none yet (inserted if absent, then updated)."""
    return [{"wamid": w, "status_rank": 0, "click_count": 0, "updated_at": db_now} for w in wamids]


class Deliveries:
    """Record webhook statuses and clicks, and read one message's status.

    :param tables: the ledger's tables (``statuses``, ``clicks``).
    :param tx: the ledger's transaction runner.
    :param suppression_list: where failed statuses that call for a suppression are added.
    """

    def __init__(self, tables: LedgerTables, tx: Transactions, suppression_list: SuppressionList) -> None:
        self.tables = tables
        self.tx = tx
        self.suppression_list = suppression_list

    def record_statuses(self, updates: Sequence[StatusUpdate], *, now: datetime | None = None) -> int:
        """Apply webhook statuses; returns the number of distinct (wamid, status) events applied.

        Idempotent and order-independent: duplicates are ignored, a status never replaces one of a
        higher rank (``sent`` < ``delivered`` < ``read``; ``failed`` is terminal and keeps its error),
        each per-status timestamp keeps its earliest value. A status whose wamid has no send row (yet)
        is stored anyway and joins its send later by wamid. Unknown status names are ignored.
        A failed status for an opt-out (131050) or Meta's per-user limit (131049) adds a suppression.
        """
        batch = _merge(updates)
        if not batch.rows:
            return 0
        db_now = naive_utc(now or utcnow())
        wamids = sorted(batch.rows)
        stmt = _status_statement(self.tables.statuses, db_now)
        params = [batch.rows[w] for w in wamids]

        campaign_ids = sorted({u.callback_key.split(".", 2)[2] for u in updates if u.callback_key})
        recipients = sorted({r for u in updates for r in (u.recipient_id, u.recipient_user_id) if r})
        identities = self.suppression_list.identities

        def work(conn: Connection) -> None:
            upsert(conn, self.tables.statuses, _placeholders(wamids, db_now), key=("wamid",))
            conn.execute(stmt, params)
            if batch.limited:
                conn.execute(_limited_statement(self.tables.sends), _limited_params(batch.limited))
            # Sends recorded unknown (a lost answer) that these statuses belong to become accepted.
            resolve_unknown(conn, self.tables, campaign_ids=campaign_ids, recipients=recipients, now=db_now)
            if identities is not None:
                identities.link_in(
                    conn, _status_links(conn, self.tables.sends, updates), as_utc(db_now) or utcnow()
                )

        self.tx.write(work)
        self.suppression_list.add_suppressions(batch.suppressions, now=now)
        return len(batch.events)

    def record_clicks(self, clicks: Sequence[ClickEvent], *, now: datetime | None = None) -> int:
        """Store link clicks (deduplicated by click id); returns how many distinct clicks were given.

        Clicks that name their message update its ``clicked_at`` (first click) and ``click_count``.
        """
        unique = {c.click_id: c for c in clicks}
        if not unique:
            return 0
        db_now = naive_utc(now or utcnow())
        rows = [_click_row(c, db_now) for c in sorted(unique.values(), key=lambda item: item.click_id)]
        wamids = sorted({c.wamid for c in unique.values() if c.wamid})
        k, t = self.tables.clicks.c, self.tables.statuses.c
        count_q = sa.select(sa.func.count()).where(k.wamid == t.wamid).scalar_subquery()
        first_q = sa.select(sa.func.min(k.clicked_at)).where(k.wamid == t.wamid).scalar_subquery()

        def work(conn: Connection) -> None:
            upsert(conn, self.tables.clicks, rows, key=("click_id",))
            if not wamids:
                return
            upsert(conn, self.tables.statuses, _placeholders(wamids, db_now), key=("wamid",))
            for chunk in chunks(wamids):
                conn.execute(
                    self.tables.statuses.update()
                    .where(t.wamid.in_(chunk))
                    .values(click_count=count_q, clicked_at=first_q, updated_at=db_now)
                )

        self.tx.write(work)
        return len(unique)

    def resolve_unknown(self, campaign_ids: Sequence[str], *, now: datetime | None = None) -> int:
        """Resolve the campaigns' ``unknown`` sends that stored statuses belong to (by callback key,
        else by recipient and time: :mod:`~.resolution`); returns how many became ``accepted``."""
        tables, db_now = self.tables, naive_utc(now or utcnow())
        return int(
            self.tx.write(lambda conn: resolve_unknown(conn, tables, campaign_ids=campaign_ids, now=db_now))
        )

    def status_of(self, wamid: str) -> dict[str, Any] | None:
        """The stored delivery status row of one message (``None`` if no webhook came yet)."""
        statuses = self.tables.statuses
        with self.tx.read() as conn:
            row = conn.execute(sa.select(statuses).where(statuses.c.wamid == wamid)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        for col in _STATUS_TIME_COLUMNS:
            out[col] = as_utc(out[col])
        return out


def _status_links(conn: Connection, sends: sa.Table, updates: Sequence[StatusUpdate]) -> list[IdentityLink]:
    """The keys a status names for its message's recipient (``recipient_id``, ``recipient_user_id``),
    tied to the key the message was sent to (its send row, found by wamid)."""
    named = {u.wamid: u for u in updates if u.wamid and (u.recipient_id or u.recipient_user_id)}
    if not named:
        return []
    s = sends.c
    sent_to: dict[str, str] = {}
    for chunk in chunks(sorted(named)):
        sent_to.update(
            (w, r) for w, r in conn.execute(sa.select(s.wamid, s.recipient).where(s.wamid.in_(chunk)))
        )
    links: list[IdentityLink] = []
    for wamid, u in named.items():
        recipient = sent_to.get(wamid)
        keys = (
            recipient if recipient and not recipient.startswith("!") else None,
            u.recipient_id,
            u.recipient_user_id,
        )
        links.extend(links_of(keys, IdentitySource.STATUS_WEBHOOK, u.timestamp))
    return links


def _click_row(click: ClickEvent, db_now: datetime | None) -> dict[str, Any]:
    """The ``clicks`` row of one click event."""
    return {
        "click_id": click.click_id,
        "wamid": click.wamid,
        "recipient": clip(click.recipient, 64),
        "click_component": clip(click.click_component, 32),
        "product_id": clip(click.product_id, 191),
        "tracking_token": clip(click.tracking_token, 255),
        "clicked_at": naive_utc(click.timestamp),
        "created_at": db_now,
    }


__all__ = ["Deliveries"]
