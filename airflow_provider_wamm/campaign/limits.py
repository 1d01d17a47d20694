"""The messaging limit as a campaign budget: send up to it, then stop until the 24-hour window rolls over.

:class:`MessagingLimitGuard` is a :mod:`~airflow_provider_wamm.campaign.guards` guard whose budget is the
business's limit minus the unique recipients the ledger saw messaged in the last 24 hours
(:mod:`~airflow_provider_wamm.campaign.ledger.window`), counting each recipient this run claims. When
the budget is used up and recipients wait, it trips with the time the window has room again. A
``business_capability_update`` webhook stored while the campaign runs changes the limit at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from airflow_provider_wamm.campaign.guards import BaseGuard, Trip
from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.ledger.window import messaged_in_window, window_frees_at
from airflow_provider_wamm.graph.account_health import tier_users


@dataclass(frozen=True, slots=True)
class LimitPlan:
    """What a campaign will take of the messaging limit, before it sends."""

    limit: int
    """Unique users per 24 hours."""
    used: int
    """Unique recipients the ledger saw messaged in the last 24 hours."""
    planned: int | None
    """Recipients this campaign may still message (an upper bound; ``None``: unknown)."""

    @property
    def left(self) -> int:
        """Room left in the window."""
        return max(0, self.limit - self.used)

    @property
    def exceeds(self) -> bool:
        """Whether the campaign would go past the limit."""
        return self.planned is not None and self.planned > self.left

    def describe(self) -> str:
        """One line for the log."""
        takes = f"this campaign takes up to {self.planned}" if self.planned is not None else "size unknown"
        return (
            f"messaging limit {self.limit} unique users per 24 h; {self.used} messaged in the last 24 h "
            f"(this ledger); {takes}; {self.left} left"
        )


class MessagingLimitGuard(BaseGuard):
    """A budget of recipients from the messaging limit, refreshed by stored limit webhooks.

    :param ledger: the ledger every campaign of the portfolio's numbers writes to.
    :param limit: unique users per 24 hours, as read before the run.
    :param planned: recipients the campaign may still message (for the resume time), if known.
    :param waba_id: the account whose ``business_capability_update`` webhooks refresh the limit.
    :param phone_number: else the number (as displayed) whose limit webhooks refresh it.
    :param clock: the current time (a test moves it).
    """

    def __init__(
        self,
        ledger: Ledger,
        limit: int,
        *,
        planned: int | None = None,
        waba_id: str | None = None,
        phone_number: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.ledger = ledger
        self.limit: int | None = limit
        self.planned = planned
        self.waba_id = waba_id
        self.phone_number = phone_number
        self.clock = clock
        self.started = utcnow()
        self.used = messaged_in_window(ledger, clock())
        self.claims = 0

    def plan(self) -> LimitPlan:
        """The budget as it stands."""
        return LimitPlan(self.limit or 0, self.used + self.claims, self.planned)

    def check(self) -> Trip | None:
        """Take a limit webhook stored since the run started (never trips by itself)."""
        signal = self.ledger.latest_messaging_limit(waba_id=self.waba_id, phone_number=self.phone_number)
        if signal is None or signal.received_at is None or signal.received_at < self.started:
            return None
        _, users, known = tier_users(signal.messaging_limit)
        if known and users != self.limit:
            self.limit = users  # None: unlimited from now on
        return None

    def allowance(self) -> int | None:
        """Recipients this run may still claim (``None``: unlimited)."""
        if self.limit is None:
            return None
        return max(0, self.limit - self.used - self.claims)

    def claimed(self, count: int) -> None:
        """Count new recipients claimed by this run."""
        self.claims += count

    def exhausted(self) -> Trip | None:
        """The limit is used up: resume when the window has room for what is left (at most the limit)."""
        limit, now = self.limit or 0, self.clock()
        pending = limit if self.planned is None else max(1, self.planned - self.claims)
        room = max(0, limit - messaged_in_window(self.ledger, now))
        resume_at = window_frees_at(self.ledger, now, min(limit, pending) - room)
        message = (
            f"the messaging limit of {limit} unique users per 24 h is reached ({self.used} messaged before "
            f"this run, {self.claims} by it); the window has room again at {resume_at:%Y-%m-%d %H:%M} UTC"
        )
        return Trip("messaging_limit", message, resume_at=resume_at)


__all__ = ["LimitPlan", "MessagingLimitGuard"]
