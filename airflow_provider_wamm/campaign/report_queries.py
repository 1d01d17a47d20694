"""The report's SQL: one aggregate query per section of a campaign report, over the ledger's tables.

Each function takes an open read connection, the ledger (for its tables) and the campaign ids, and
returns small Python values; nothing loads a campaign's rows, so a million sends are aggregated in
the database. :mod:`~airflow_provider_wamm.campaign.report` turns the results into a report.
"""

from __future__ import annotations

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


def unsettled_count(conn: Connection, ledger: Ledger, ids: list[str]) -> int:
    """Messages Meta took that have no final delivery status yet."""
    s, t = ledger.sends.c, ledger.statuses.c
    waiting = conn.execute(
        sa.select(sa.func.count())
        .select_from(sends_with_statuses(ledger))
        .where(
            s.campaign_id.in_(ids),
            s.state.in_(DELIVERED_TO_META),
            sa.or_(t.status.is_(None), t.status.not_in(SETTLED_STATUSES)),
        )
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


def delivery_status_counts(conn: Connection, ledger: Ledger, ids: list[str]) -> dict[str, int]:
    """Messages Meta took, by latest delivery status (``pending``: no webhook yet)."""
    s, t = ledger.sends.c, ledger.statuses.c
    status = sa.func.coalesce(t.status, PENDING)
    rows = conn.execute(
        sa.select(status, sa.func.count())
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id.in_(ids), s.state.in_(DELIVERED_TO_META))
        .group_by(status)
    )
    return {str(name): int(n) for name, n in rows}


def routing_counts(conn: Connection, ledger: Ledger, ids: list[str]) -> dict[str, int]:
    """Messages Meta took, by pricing category (``unknown``: no priced status yet)."""
    s, t = ledger.sends.c, ledger.statuses.c
    rows = conn.execute(
        sa.select(t.pricing_category, sa.func.count())
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id.in_(ids), s.state.in_(DELIVERED_TO_META))
        .group_by(t.pricing_category)
    )
    routing: dict[str, int] = dict.fromkeys(ROUTING_CATEGORIES, 0)
    for category, n in rows:
        route = str(category) if category else "unknown"
        routing[route] = routing.get(route, 0) + int(n)
    return routing


def click_counts(conn: Connection, ledger: Ledger, ids: list[str]) -> tuple[int, int]:
    """``(messages with a click, clicks in total)`` of the messages Meta took."""
    s, t = ledger.sends.c, ledger.statuses.c
    clicked, clicks = conn.execute(
        sa.select(sa.func.count(t.clicked_at), sa.func.coalesce(sa.func.sum(t.click_count), 0))
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id.in_(ids), s.state.in_(DELIVERED_TO_META))
    ).one()
    return int(clicked or 0), int(clicks or 0)


def send_error_rows(conn: Connection, ledger: Ledger, ids: list[str]) -> list[ErrorRow]:
    """Requests the API refused (``failed`` sends), by error code."""
    s = ledger.sends.c
    rows = conn.execute(
        sa.select(s.error_code, sa.func.count(), sa.func.max(s.error_title), sa.func.max(s.error_details))
        .where(s.campaign_id.in_(ids), s.state == FAILED)
        .group_by(s.error_code)
    )
    return [ErrorRow(code, int(n), title, details) for code, n, title, details in rows]


def delivery_error_rows(conn: Connection, ledger: Ledger, ids: list[str]) -> list[ErrorRow]:
    """Messages Meta took that later failed (a ``failed`` webhook), by error code."""
    s, t = ledger.sends.c, ledger.statuses.c
    rows = conn.execute(
        sa.select(t.error_code, sa.func.count(), sa.func.max(t.error_title), sa.func.max(t.error_details))
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id.in_(ids), s.state.in_(DELIVERED_TO_META), t.status == DeliveryStatus.FAILED)
        .group_by(t.error_code)
    )
    return [ErrorRow(code, int(n), title, details) for code, n, title, details in rows]


__all__ = [
    "PENDING",
    "ROUTING_CATEGORIES",
    "CampaignActivity",
    "ErrorRow",
    "click_counts",
    "delivery_error_rows",
    "delivery_status_counts",
    "read_activity",
    "routing_counts",
    "send_error_rows",
    "sends_with_statuses",
    "unsettled_count",
]
