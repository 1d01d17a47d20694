"""The report's SQL: the aggregate queries behind each section of a campaign report.

A report reads the send states (:func:`read_activity`), what became of the messages Meta took
(:func:`message_outcomes`: one grouped pass over ``sends`` joined to ``statuses`` gives the delivery
groups read by the delivery, routing, click and delivery-error sections, the cost rows of
:mod:`~airflow_provider_wamm.campaign.report_cost` and the latency buckets of
:mod:`~airflow_provider_wamm.campaign.report_latency`) and the refused requests
(:func:`send_error_rows`). :func:`delivery_groups` reads the delivery groups alone. Each takes an open
read connection, the ledger (for its tables) and the campaign ids and returns small Python values:
nothing loads a campaign's rows, so a million sends are aggregated in the database.
:mod:`~airflow_provider_wamm.campaign.report` turns the results into a report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger import (
    DELIVERED_TO_META,
    FAILED,
    SETTLED_STATUSES,
    DeliveryStatus,
    Ledger,
    as_utc,
    naive_utc,
)
from airflow_provider_wamm.campaign.report_latency import computed_once, latency_bucket, seconds_to_deliver

#: Routing categories listed in every report.
ROUTING_CATEGORIES = ("marketing_lite", "marketing", "unknown")
#: The delivery status of a message Meta took that no webhook has reported yet.
PENDING = "pending"


def sends_with_statuses(ledger: Ledger) -> Any:
    """``sends`` left-joined to ``statuses`` by wamid (a send without a webhook yet has no status)."""
    return ledger.sends.outerjoin(ledger.statuses, ledger.statuses.c.wamid == ledger.sends.c.wamid)


@dataclass(frozen=True)
class CampaignActivity:
    """Recipients by send state, when the campaign sent, and with which template (``sends`` table)."""

    states: dict[str, int]
    """Recipients by send state (only states that occur)."""
    first_send_at: datetime | None
    """Earliest claim of a recipient (``None``: nothing was ever recorded)."""
    last_send_at: datetime | None
    """Latest change of a send row: the last claim, acceptance or refusal."""
    template_name: str | None
    """The template the campaign sent (the greatest name if several)."""
    language: str | None
    """The template's language code."""
    in_experiment: int = 0
    """Recipients with an experiment group (a ``variant``): without any, a report has no variants."""


def read_activity(conn: Connection, ledger: Ledger, ids: list[str]) -> CampaignActivity:
    """The send states, send times, template and experiment of the campaigns (one grouped query)."""
    s = ledger.sends.c
    rows = conn.execute(
        sa.select(
            s.state,
            sa.func.count(),
            sa.func.min(sa.func.coalesce(s.claimed_at, s.updated_at)),
            sa.func.max(s.updated_at),
            sa.func.max(s.template_name),
            sa.func.max(s.language),
            sa.func.count(s.variant),
        )
        .where(s.campaign_id.in_(ids))
        .group_by(s.state)
    ).all()
    states: dict[str, int] = {}
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    templates: list[str] = []
    languages: list[str] = []
    in_experiment = 0
    for state, n, first, last, template, language, grouped in rows:
        states[str(state)] = int(n)
        in_experiment += int(grouped or 0)
        if (value := as_utc(first)) is not None:
            firsts.append(value)
        if (value := as_utc(last)) is not None:
            lasts.append(value)
        if template:
            templates.append(str(template))
        if language:
            languages.append(str(language))
    return CampaignActivity(
        states=states,
        first_send_at=min(firsts) if firsts else None,
        last_send_at=max(lasts) if lasts else None,
        template_name=max(templates) if templates else None,
        language=max(languages) if languages else None,
        in_experiment=in_experiment,
    )


def unsettled_count(
    conn: Connection, ledger: Ledger, ids: list[str], *, accepted_before: datetime | None = None
) -> int:
    """Messages Meta took that have no final delivery status yet (only those accepted before
    ``accepted_before``, when given: past a time-to-live, Meta dropped them without a webhook)."""
    s, t = ledger.sends.c, ledger.statuses.c
    conditions = [
        s.campaign_id.in_(ids),
        s.state.in_(DELIVERED_TO_META),
        sa.or_(t.status.is_(None), t.status.not_in(SETTLED_STATUSES)),
    ]
    if accepted_before is not None:
        conditions.append(s.accepted_at < naive_utc(accepted_before))
    waiting = conn.execute(
        sa.select(sa.func.count()).select_from(sends_with_statuses(ledger)).where(*conditions)
    ).scalar()
    return int(waiting or 0)


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """Failures of one error code at one stage, as aggregated in SQL."""

    code: int | None
    """The Graph error code (``None`` when the failure had none)."""
    count: int
    """How many recipients or messages failed with it."""
    title: str | None
    """A stored title (Meta's, as the API or webhook sent it)."""
    details: str | None
    """One example of the stored details."""


@dataclass(frozen=True, slots=True)
class DeliveryGroup:
    """Messages Meta took that share a latest status, pricing category and error code."""

    status: str | None
    """The latest delivery status (``None``: no webhook yet)."""
    pricing_category: str | None
    """``marketing_lite``, ``marketing``, or ``None`` (no priced status yet)."""
    error_code: int | None
    """The error code of a ``failed`` status."""
    count: int
    """Messages in the group."""
    clicked: int
    """Messages of the group with at least one link click."""
    clicks: int
    """Link clicks on the group's messages."""
    error_title: str | None
    """A stored error title of the group."""
    error_details: str | None
    """One example of the group's stored error details."""


def delivery_groups(conn: Connection, ledger: Ledger, ids: list[str]) -> list[DeliveryGroup]:
    """What became of the messages Meta took: one grouped pass over ``sends`` joined to ``statuses``.

    The delivery statuses, routing, clicks and delivery errors of a report are sums over these groups
    (:func:`status_counts`, :func:`routing_counts`, :func:`click_counts`, :func:`delivery_error_rows`),
    so the join runs once however many sections read it.
    """
    s, t = ledger.sends.c, ledger.statuses.c
    rows = conn.execute(
        sa.select(
            t.status,
            t.pricing_category,
            t.error_code,
            sa.func.count(),
            sa.func.count(t.clicked_at),
            sa.func.coalesce(sa.func.sum(t.click_count), 0),
            sa.func.max(t.error_title),
            sa.func.max(t.error_details),
        )
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id.in_(ids), s.state.in_(DELIVERED_TO_META))
        .group_by(t.status, t.pricing_category, t.error_code)
    )
    return [
        DeliveryGroup(status, category, code, int(n), int(clicked or 0), int(clicks or 0), title, details)
        for status, category, code, n, clicked, clicks, title, details in rows
    ]


@dataclass(frozen=True)
class MessageOutcomes:
    """What became of the messages Meta took, from one grouped pass (:func:`message_outcomes`)."""

    groups: list[DeliveryGroup]
    """As :func:`delivery_groups` returns them."""
    costs: list[tuple[str | None, str | None, int, int, float | None]]
    """Messages by pricing type and currency: ``(pricing_type, currency, messages, costed, amount)``
    (:func:`~airflow_provider_wamm.campaign.report_cost.cost_from_rows`)."""
    buckets: list[tuple[int, int, float, float]]
    """Delivered messages by latency bucket: ``(bucket, messages, seconds in total, longest)``
    (:func:`~airflow_provider_wamm.campaign.report_latency.stats_from_buckets`)."""


def _key_order(key: Sequence[Any]) -> tuple[tuple[bool, Any], ...]:
    """Sort key of a group key: ``None`` first, as SQLite groups (each part has one type)."""
    return tuple((part is not None, part) for part in key)


def message_outcomes(conn: Connection, ledger: Ledger, ids: list[str]) -> MessageOutcomes:
    """The delivery groups, the cost rows and the latency buckets of the messages Meta took, in one
    grouped pass over ``sends`` joined to ``statuses`` (by latency bucket, latest status, pricing
    category, error code, pricing type and currency); each part is then added up from its columns.

    The time to deliver of a message is computed once per row (see
    :func:`~airflow_provider_wamm.campaign.report_latency.computed_once`).
    """
    groups: dict[tuple[Any, ...], list[DeliveryGroup]] = {}
    costs: dict[tuple[Any, ...], tuple[int, int, float | None]] = {}
    buckets: list[tuple[int, int, float, float]] = []
    for key, status, category, code, kind, currency, n, clicked, clicks, *rest in _outcome_rows(
        conn, ledger, ids
    ):
        title, details, costed, amount, seconds, longest = rest
        groups.setdefault((status, category, code), []).append(
            DeliveryGroup(status, category, code, int(n), int(clicked or 0), int(clicks or 0), title, details)
        )
        seen, priced, total = costs.get((kind, currency), (0, 0, None))
        if amount is not None:
            total = float(amount) + (total or 0.0)
        costs[(kind, currency)] = (seen + int(n), priced + int(costed or 0), total)
        if key is not None:
            buckets.append((int(key), int(n), float(seconds or 0), float(longest or 0)))
    return MessageOutcomes(
        groups=[_added_up(groups[k]) for k in sorted(groups, key=_key_order)],
        costs=[(k[0], k[1], *costs[k]) for k in sorted(costs, key=_key_order)],
        buckets=buckets,
    )


def _outcome_rows(conn: Connection, ledger: Ledger, ids: list[str]) -> list[Any]:
    """The grouped rows behind :func:`message_outcomes`."""
    s, t = ledger.sends.c, ledger.statuses.c
    taken = (
        sa.select(
            t.status,
            t.pricing_category,
            t.error_code,
            t.pricing_type,
            t.cost_currency,
            t.clicked_at,
            t.click_count,
            t.error_title,
            t.error_details,
            t.cost_amount,
            seconds_to_deliver(s, t).label("seconds"),
        )
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id.in_(ids), s.state.in_(DELIVERED_TO_META))
    )
    m = computed_once(taken, conn.dialect.name).subquery().c
    bucket = latency_bucket(m.seconds).label("bucket")
    # The bucket first: SQLite sorts the rows to group them, and most comparisons end at this integer.
    keys = (bucket, m.status, m.pricing_category, m.error_code, m.pricing_type, m.cost_currency)
    return list(
        conn.execute(
            sa.select(
                *keys,
                sa.func.count(),
                sa.func.count(m.clicked_at),
                sa.func.coalesce(sa.func.sum(m.click_count), 0),
                sa.func.max(m.error_title),
                sa.func.max(m.error_details),
                sa.func.count(m.cost_amount),
                sa.func.sum(m.cost_amount),
                sa.func.sum(m.seconds),
                sa.func.max(m.seconds),
            ).group_by(*keys)
        )
    )


def _added_up(parts: list[DeliveryGroup]) -> DeliveryGroup:
    """One delivery group from its parts (the same status, pricing category and error code)."""
    first = parts[0]
    return DeliveryGroup(
        first.status,
        first.pricing_category,
        first.error_code,
        sum(p.count for p in parts),
        sum(p.clicked for p in parts),
        sum(p.clicks for p in parts),
        max((p.error_title for p in parts if p.error_title is not None), default=None),
        max((p.error_details for p in parts if p.error_details is not None), default=None),
    )


def status_counts(groups: Iterable[DeliveryGroup]) -> dict[str, int]:
    """Messages by latest delivery status (``pending``: no webhook yet); only statuses that occur."""
    counts: dict[str, int] = {}
    for group in groups:
        name = str(group.status) if group.status is not None else PENDING
        counts[name] = counts.get(name, 0) + group.count
    return counts


def routing_counts(groups: Iterable[DeliveryGroup]) -> dict[str, int]:
    """Messages by pricing category, every category listed (``unknown``: no priced status yet)."""
    routing: dict[str, int] = dict.fromkeys(ROUTING_CATEGORIES, 0)
    for group in groups:
        route = str(group.pricing_category) if group.pricing_category else "unknown"
        routing[route] = routing.get(route, 0) + group.count
    return routing


def click_counts(groups: Iterable[DeliveryGroup]) -> tuple[int, int]:
    """``(messages with a click, clicks in total)``."""
    items = list(groups)
    return sum(g.clicked for g in items), sum(g.clicks for g in items)


def delivery_error_rows(groups: Iterable[DeliveryGroup]) -> list[ErrorRow]:
    """Messages Meta took that later failed (a ``failed`` webhook), by error code."""
    by_code: dict[int | None, list[DeliveryGroup]] = {}
    for group in groups:
        if group.status == DeliveryStatus.FAILED:
            by_code.setdefault(group.error_code, []).append(group)
    return [
        ErrorRow(
            code,
            sum(g.count for g in items),
            max((g.error_title for g in items if g.error_title is not None), default=None),
            max((g.error_details for g in items if g.error_details is not None), default=None),
        )
        for code, items in by_code.items()
    ]


def send_error_rows(conn: Connection, ledger: Ledger, ids: list[str]) -> list[ErrorRow]:
    """Requests the API refused (``failed`` sends), by error code."""
    s = ledger.sends.c
    rows = conn.execute(
        sa.select(s.error_code, sa.func.count(), sa.func.max(s.error_title), sa.func.max(s.error_details))
        .where(s.campaign_id.in_(ids), s.state == FAILED)
        .group_by(s.error_code)
    )
    return [ErrorRow(code, int(n), title, details) for code, n, title, details in rows]


__all__ = [
    "PENDING",
    "ROUTING_CATEGORIES",
    "CampaignActivity",
    "DeliveryGroup",
    "ErrorRow",
    "MessageOutcomes",
    "click_counts",
    "delivery_error_rows",
    "delivery_groups",
    "message_outcomes",
    "read_activity",
    "routing_counts",
    "send_error_rows",
    "sends_with_statuses",
    "status_counts",
    "unsettled_count",
]
