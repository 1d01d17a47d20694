"""The messaging-limit window: unique recipients messaged in the last 24 hours, from the ledger.

Meta's messaging limit counts the unique users a business portfolio reaches with business-initiated
messages in a moving 24 hours. The ledger knows every message it sent, across all campaigns (and every
number of the portfolio that shares the ledger), so it can say how many people the window already
holds and when each of them leaves it. A recipient counts from Meta taking a message for them
(``accepted``, ``held``, ``paused``) or a request that may have reached Meta (``unknown``) until 24 hours
after the last such message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger.records import DELIVERED_TO_META, SendState, as_utc, naive_utc

if TYPE_CHECKING:
    from airflow_provider_wamm.campaign.ledger.facade import Ledger

#: Meta's moving window.
WINDOW = timedelta(hours=24)
#: States whose recipient may have been reached.
REACHED_STATES: tuple[str, ...] = tuple(str(s) for s in (*DELIVERED_TO_META, SendState.UNKNOWN))


def _last_reached(ledger: Ledger, since: datetime) -> sa.Subquery:
    """Each recipient reached since ``since``, with the time of their last message."""
    s = ledger.sends.c
    when = sa.func.coalesce(s.accepted_at, s.updated_at)
    return (
        sa.select(s.recipient, sa.func.max(when).label("last"))
        .where(s.state.in_(REACHED_STATES), when >= naive_utc(since))
        .group_by(s.recipient)
        .subquery()
    )


def messaged_in_window(ledger: Ledger, now: datetime) -> int:
    """Unique recipients reached in the 24 hours before ``now``, across every campaign of the ledger."""
    reached = _last_reached(ledger, as_utc(now) - WINDOW)
    with ledger.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(reached)).scalar_one())


def window_frees_at(ledger: Ledger, now: datetime, count: int) -> datetime:
    """When ``count`` people have left the window (24 hours after their last message): then that many
    more may be messaged. ``now`` when the window already has room for them (or holds fewer people)."""
    now = as_utc(now)
    if count <= 0:
        return now
    reached = _last_reached(ledger, now - WINDOW)
    query = sa.select(reached.c.last).order_by(reached.c.last).limit(1).offset(count - 1)
    with ledger.read() as conn:
        last = conn.execute(query).scalar()
    if last is None:
        return now
    left = as_utc(last)
    return max(now, left + WINDOW) if left is not None else now


__all__ = ["REACHED_STATES", "WINDOW", "messaged_in_window", "window_frees_at"]
