"""Guards of a running campaign: conditions outside the campaign that stop it between two hand-overs.

A guard is asked now and then (every ``interval_s``, between two claims) whether the campaign may go on:
a template paused by Meta, a messaging limit used up. When one trips, the run stops claiming, records
the answers of the requests in flight, releases what it claimed and did not send, and raises
:class:`CampaignDeferred` (or a subclass) with the counts and the :class:`Trip`, so that the caller
defers or fails. A later run of the same campaign resumes it: nobody gets a second message.

A guard may also give a budget (:meth:`Guard.allowance`): how many more recipients this run may claim.
A run at its budget with more to send trips (the budget guard says why, through :meth:`Guard.exhausted`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.graph.errors import GraphError, WammError

#: Why a guard stopped a campaign.
TripKind = Literal[
    "template_paused",
    "template_disabled",
    "template_recategorised",
    "messaging_limit",
]

#: Seconds between two looks of the guards, by default.
DEFAULT_GUARD_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class Trip:
    """Why a campaign stopped, and whether waiting can help."""

    kind: TripKind
    """What tripped."""
    message: str
    """What happened, for people (no personal data)."""
    final: bool = False
    """Waiting does not help (a disabled or re-categorised template): the task fails."""
    status: str | None = None
    """The template status behind it, if any (``PAUSED``, ``DISABLED``...)."""
    resume_at: datetime | None = None
    """The earliest time a resumed run can go on (the messaging-limit window rolling over), if known."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (XCom, trigger arguments)."""
        return {
            **asdict(self),
            "resume_at": self.resume_at.isoformat() if self.resume_at is not None else None,
        }


class Guard(Protocol):
    """One condition a running campaign checks between hand-overs."""

    def check(self) -> Trip | None:
        """``None`` while the campaign may go on; else why it must stop (called every few seconds)."""
        ...

    def allowance(self) -> int | None:
        """How many more recipients this run may claim (``None``: no budget)."""
        ...

    def claimed(self, count: int) -> None:
        """``count`` new recipients were claimed (never retries of the same one)."""
        ...

    def exhausted(self) -> Trip | None:
        """Why the run stops when its budget is used up and more recipients wait (``None``: no budget)."""
        ...


class BaseGuard:
    """A guard without a budget: subclasses implement :meth:`check`."""

    def check(self) -> Trip | None:
        """Never trips."""
        return None

    def allowance(self) -> int | None:
        """No budget."""
        return None

    def claimed(self, count: int) -> None:
        """Nothing to count."""

    def exhausted(self) -> Trip | None:
        """No budget to use up."""
        return None


class Guards:
    """The guards of one run, looked at every ``interval_s`` (the first look is at once).

    :param guards: the conditions; empty means the run is never stopped by one.
    :param interval_s: seconds between two looks (each look may read the ledger).
    """

    def __init__(self, guards: Sequence[Guard] = (), interval_s: float = DEFAULT_GUARD_INTERVAL_S) -> None:
        self.guards = list(guards)
        self.interval_s = interval_s
        self._next = 0.0

    def __bool__(self) -> bool:
        return bool(self.guards)

    def check(self, now: float | None = None) -> Trip | None:
        """The first guard that trips, when a look is due; ``None`` otherwise."""
        now = time.monotonic() if now is None else now
        if not self.guards or now < self._next:
            return None
        self._next = now + self.interval_s
        for guard in self.guards:
            trip = guard.check()
            if trip is not None:
                return trip
        return None

    def poll(self, now: float, *, waiting: bool) -> Trip | None:
        """Why the run stops now, if it does: a guard's condition (when a look is due), or its budget
        used up while recipients are ``waiting`` (ready, with nothing in flight, so all of it is used)."""
        trip = self.check(now)
        if trip is None and waiting and self.allowance() == 0:
            trip = self.exhausted()
        return trip

    def allowance(self) -> int | None:
        """The smallest budget left (``None``: none of the guards has one)."""
        left = [a for a in (g.allowance() for g in self.guards) if a is not None]
        return max(0, min(left)) if left else None

    def claimed(self, count: int) -> None:
        """Tell every guard that ``count`` new recipients were claimed."""
        if count:
            for guard in self.guards:
                guard.claimed(count)

    def exhausted(self) -> Trip | None:
        """Why the run stops with its budget used up (the first guard with a reason)."""
        for guard in self.guards:
            trip = guard.exhausted()
            if trip is not None:
                return trip
        return None


class CampaignDeferred(WammError):
    """A guard stopped the campaign: nothing more was sent, answers in flight were recorded, unsent
    claims released. A later run of the same campaign resumes it without sending anyone twice.

    :param trip: why it stopped.
    :param result: the counts of the run up to the stop (``None`` when it stopped before starting).
    """

    _init_args = ("trip", "result")

    def __init__(self, trip: Trip, result: CampaignResult | None = None) -> None:
        where = (
            f"campaign {result.campaign_id!r} stopped after {result.sent} messages" if result else "stopped"
        )
        super().__init__(f"{where}: {trip.message}")
        #: Why the campaign stopped.
        self.trip = trip
        #: Counts of the run up to the stop.
        self.result = result


class TemplatePaused(CampaignDeferred):
    """The campaign's template was paused, disabled or re-categorised away from MARKETING."""


class MessagingLimitReached(CampaignDeferred):
    """Sending more would take the business past its messaging limit in the current 24-hour window."""


#: Halting codes that say the template was paused, disabled or re-categorised: a guard that tripped on
#: the same cause explains them better.
TEMPLATE_HALT_CODES = frozenset({132015, 132016, 134100})


def trip_explains(halt: GraphError | None) -> bool:
    """Whether a guard's trip, rather than a halt, is what a stopped run reports: no halt, or one on a
    template code the guard has the story of."""
    return halt is None or halt.code in TEMPLATE_HALT_CODES


def deferred_error(trip: Trip, result: CampaignResult | None = None) -> CampaignDeferred:
    """The exception that names ``trip``'s kind."""
    cls = MessagingLimitReached if trip.kind == "messaging_limit" else TemplatePaused
    return cls(trip, result)


__all__ = [
    "DEFAULT_GUARD_INTERVAL_S",
    "TEMPLATE_HALT_CODES",
    "BaseGuard",
    "CampaignDeferred",
    "Guard",
    "Guards",
    "MessagingLimitReached",
    "TemplatePaused",
    "Trip",
    "TripKind",
    "deferred_error",
    "trip_explains",
]
