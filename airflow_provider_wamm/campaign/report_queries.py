"""The report's SQL: the aggregate queries behind each section of a campaign report.

Four queries cover a report: the send states (:func:`read_activity`), what became of the messages Meta
took (:func:`delivery_groups`, read by the delivery, routing, click and delivery-error sections), the
refused requests (:func:`send_error_rows`) and the time to deliver
(:mod:`~airflow_provider_wamm.campaign.report_latency`). Each takes an open read connection, the
ledger (for its tables) and the campaign ids and returns small Python values: nothing loads a
campaign's rows, so a million sends are aggregated in the database.
:mod:`~airflow_provider_wamm.campaign.report` turns the results into a report.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def read_activity(conn: Connection, ledger: Ledger, ids: list[str]) -> CampaignActivity:
    """The send states, send times and template of the campaigns (one grouped query)."""
    s = ledger.sends.c
    rows = conn.execute(
        sa.select(
            s.state,
            sa.func.count(),
            sa.func.min(sa.func.coalesce(s.claimed_at, s.updated_at)),
            sa.func.max(s.updated_at),
            sa.func.max(s.template_name),
            sa.func.max(s.language),
        )
        .where(s.campaign_id.in_(ids))
        .group_by(s.state)
    ).all()
    states: dict[str, int] = {}
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    templates: list[str] = []
    languages: list[str] = []
    for state, n, first, last, template, language in rows:
        states[str(state)] = int(n)
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
    "click_counts",
    "delivery_error_rows",
    "delivery_groups",
    "read_activity",
    "routing_counts",
    "send_error_rows",
    "sends_with_statuses",
    "status_counts",
    "unsettled_count",
]
