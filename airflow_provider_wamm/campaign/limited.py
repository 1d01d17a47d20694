"""Retries after Meta's per-user marketing limit (131049): who is due, and whether retrying still pays.

When Meta answers 131049 (at once, or in a failed status webhook) the ledger counts one more
``limited_tries`` for the recipient, keeps ``limited_since`` (the first one) and sets ``retry_after`` a
day later (never for US numbers: Meta delivers no marketing templates there, so 131049 is final).
A retry run (``retry_limited``) reads the campaign's rows and sends only to the recipients that are
*due*: ``retry_after`` has passed, fewer than ``max_limited_tries`` sends so far, and the first 131049
is less than ``limited_retry_for`` (7 days) old. The ledger's claims make sure nobody gets two messages.

The *recovery rate* says whether retrying still pays: of the recipients retried so far, the share
Meta then took without a new 131049. Under ``min_recovery_rate`` (once ``min_recovery_sample``
were retried) the retries of the campaign stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.graph.errors import CODE_PER_USER_LIMIT


@dataclass
class LimitedRetryPlan:
    """What a retry run found in the ledger for one campaign."""

    due: set[str] = field(default_factory=set)
    """Recipients to send to now."""
    waiting: int = 0
    """Limited recipients whose ``retry_after`` has not passed (none is sent before it)."""
    exhausted: int = 0
    """Limited recipients out of tries or past ``limited_retry_for``: left alone for good."""
    never: int = 0
    """131049 answers that are never retried (US numbers)."""
    retried: int = 0
    """Recipients sent again after a 131049 so far."""
    recovered: int = 0
    """Of those, the ones Meta then took without a new 131049."""
    stopped: str | None = None
    """Why the campaign's retries stopped (a recovery rate under the threshold), if they did."""

    @property
    def recovery_rate(self) -> float | None:
        """``recovered / retried`` (``None`` before any retry)."""
        return self.recovered / self.retried if self.retried else None

    def to_dict(self) -> dict[str, Any]:
        """Counts for XCom."""
        rate = self.recovery_rate
        return {
            "due": len(self.due),
            "waiting": self.waiting,
            "exhausted": self.exhausted,
            "never_retried": self.never,
            "retried": self.retried,
            "recovered": self.recovered,
            "recovery_rate": round(rate, 4) if rate is not None else None,
            "stopped": self.stopped,
        }


def plan_limited_retries(ledger: Ledger, settings: CampaignSettings, *, now: datetime) -> LimitedRetryPlan:
    """Read the campaign's rows once: the recipients due for a retry, and the recovery so far."""
    plan = LimitedRetryPlan()
    for row in ledger.iter_sends(settings.campaign_id):
        _count_row(plan, row, settings, now)
    s = settings
    rate = plan.recovery_rate
    if rate is not None and plan.retried >= s.min_recovery_sample and rate < s.min_recovery_rate:
        plan.stopped = (
            f"recovery rate {rate:.1%} of {plan.retried} retried is under min_recovery_rate "
            f"{s.min_recovery_rate:.1%}: retrying after Meta's per-user limit does not pay for this campaign"
        )
        plan.due = set()
    return plan


def _count_row(plan: LimitedRetryPlan, row: Mapping[str, Any], s: CampaignSettings, now: datetime) -> None:
    """Fold one ``sends`` row into the plan."""
    tries = int(row.get("limited_tries") or 0)
    state, retry_after = row["state"], row.get("retry_after")
    if tries == 0:
        if row.get("error_code") == CODE_PER_USER_LIMIT:
            plan.never += 1  # answered 131049 and never scheduled: a US number
        return
    taken = state in L.DELIVERED_TO_META and retry_after is None
    if taken or tries >= 2:
        plan.retried += 1
        plan.recovered += int(taken)
    if retry_after is None:
        if not taken:
            plan.never += 1
        return
    since = row.get("limited_since") or retry_after
    if tries >= s.max_limited_tries or now - since > s.limited_retry_for:
        plan.exhausted += 1
    elif retry_after > now:
        plan.waiting += 1
    else:
        plan.due.add(row["recipient"])


__all__ = ["LimitedRetryPlan", "plan_limited_retries"]
