"""What Meta says a campaign cost: ``pricing.cost`` and ``pricing.type`` of its status webhooks.

Status webhooks carry ``pricing.type`` (``regular``: billable; ``free_entry_point``: inside a 72 h free
entry-point window; ``free_customer_service``) since v24.0, and for messages sent with a max price
``pricing.cost {amount, currency}``, Meta's amount in the currency's base unit, on ``delivered`` and
``read`` ("Status messages webhook reference",
``developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status``,
May 21, 2026; "Set a max price for marketing messages (BETA)",
``…/whatsapp/marketing-messages/pricing``, Jun 26, 2026). The ledger keeps both per message
(``statuses.pricing_type``, ``cost_amount``, ``cost_currency``); this module sums them for the report
(one grouped query) and lists, for the spend guard, what a campaign's messages cost so far: Meta's
amount where a webhook gave one, else nothing (the guard prices those with its rate card).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger import DELIVERED_TO_META, DeliveryStatus, Ledger
from airflow_provider_wamm.campaign.report_queries import sends_with_statuses


@dataclass
class CostSection:
    """The attributable cost of one or several campaigns."""

    cost: dict[str, float] = field(default_factory=dict)
    """Meta's ``pricing.cost`` summed by currency (messages with a max price only)."""
    costed: int = 0
    """Messages Meta gave a cost for."""
    pricing_types: dict[str, int] = field(default_factory=dict)
    """Messages by ``pricing.type`` (``regular``, ``free_entry_point``...; ``unknown``: none yet)."""

    def report_fields(self) -> dict[str, Any]:
        """The report's fields of this section (``attributed_cost``, ``costed``, ``pricing_types``)."""
        return {"attributed_cost": self.cost, "costed": self.costed, "pricing_types": self.pricing_types}


def cost_section(conn: Connection, ledger: Ledger, ids: list[str]) -> CostSection:
    """Sum the cost and count the pricing types of the messages Meta took for the campaigns."""
    s, t = ledger.sends.c, ledger.statuses.c
    rows = conn.execute(
        sa.select(
            t.pricing_type,
            t.cost_currency,
            sa.func.count(),
            sa.func.count(t.cost_amount),
            sa.func.sum(t.cost_amount),
        )
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id.in_(ids), s.state.in_(DELIVERED_TO_META))
        .group_by(t.pricing_type, t.cost_currency)
    ).all()
    return cost_from_rows(rows)


#: Messages of one pricing type and currency: ``(pricing_type, currency, messages, costed, amount)``.
CostRow = tuple[str | None, str | None, int, int, float | None]


def cost_from_rows(rows: Iterable[Sequence[Any]]) -> CostSection:
    """The cost section from messages counted by pricing type and currency (rows of :data:`CostRow`,
    in the order the database grouped them)."""
    out = CostSection()
    for pricing_type, currency, n, costed, total in rows:
        kind = str(pricing_type) if pricing_type else "unknown"
        out.pricing_types[kind] = out.pricing_types.get(kind, 0) + int(n)
        if costed:
            key = str(currency or "unknown").upper()
            out.cost[key] = round(out.cost.get(key, 0.0) + float(total or 0.0), 6)
            out.costed += int(costed)
    return out


@dataclass(frozen=True, slots=True)
class TakenMessage:
    """One message Meta took for a campaign, with what Meta says it cost (if it said)."""

    recipient: str
    """The send's recipient key."""
    amount: float | None
    """Meta's ``pricing.cost.amount`` (``None``: no webhook gave one yet)."""
    currency: str | None
    """Its currency."""
    failed: bool
    """A ``failed`` webhook came: Meta charges on delivery, so it costs nothing."""


def taken_messages(
    ledger: Ledger, campaign_id: str, *, shard_index: int | None = None, batch_size: int = 5000
) -> Iterator[TakenMessage]:
    """Stream the messages Meta took for a campaign (one shard of it, when given), with their cost."""
    s, t = ledger.sends.c, ledger.statuses.c
    query: Any = (
        sa.select(s.recipient, t.cost_amount, t.cost_currency, t.status)
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id == campaign_id, s.state.in_(DELIVERED_TO_META))
    )
    if shard_index is not None:
        query = query.where(s.shard_index == shard_index)
    with ledger.read() as conn:
        result = conn.execution_options(yield_per=batch_size).execute(query)
        for recipient, amount, currency, status in result:
            failed = status == DeliveryStatus.FAILED
            yield TakenMessage(str(recipient), None if amount is None else float(amount), currency, failed)


__all__ = ["CostRow", "CostSection", "TakenMessage", "cost_from_rows", "cost_section", "taken_messages"]
