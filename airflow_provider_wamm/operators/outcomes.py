"""What the operator says when a campaign ends unsettled, is stopped from outside, or halts.

Each message names the counts the ledger recorded and what a person can do next; the operator logs it
and fails the task with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.campaign.breaker import CircuitBreakerTripped
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignStopped
from airflow_provider_wamm.graph.errors import (
    AuthenticationError,
    PermissionDeniedError,
    TemplateError,
    advice_for,
)
from airflow_provider_wamm.operators.arguments import OnUnknown

#: Where the docs explain ``unknown`` outcomes and how to resolve them.
UNKNOWN_DOCS = "the reliability page of the provider's docs, section 'Resolving unknown'"


def check_unsettled(summary: Mapping[str, Any], on_unknown: OnUnknown, log: Any) -> None:
    """Warn, or fail the task (``on_unknown="fail"``), when the run left outcomes open: ``unknown``
    recipients or recipients another attempt still holds claimed."""
    unknown = int(summary.get("unknown", 0)) + int(summary.get("stale_unknown", 0))
    held = int(summary.get("foreign_claimed", 0))
    if not unknown and not held:
        return
    message = (
        f"Campaign {summary.get('campaign_id')!r} ended with {unknown} unknown outcomes "
        f"({summary.get('unknown', 0)} requests without an answer, {summary.get('stale_unknown', 0)} "
        f"claims taken over from an attempt that was over) and {held} recipients still claimed by "
        "another attempt (foreign_claimed). An unknown recipient may or may not have the message and is "
        "not sent again unless resend_unknown=True; recipients still claimed are settled by a later "
        f"run once the other attempt ends. To resolve them see {UNKNOWN_DOCS}."
    )
    if on_unknown == "fail":
        raise AirflowFailException(message + " (on_unknown='fail')")
    log.warning("%s", message)


def set_outlet_extra(context: Mapping[str, Any], outlets: Sequence[Any], summary: Mapping[str, Any]) -> None:
    """Put the campaign's main counts in the extra of each asset event the task emits."""
    outlet_events = context.get("outlet_events")
    # Not ``not outlet_events``: Airflow's accessor mapping is lazy, so it is empty (falsy) until used.
    if outlet_events is None or not outlets:
        return
    extra = {k: summary[k] for k in ("campaign_id", "total", "accepted", "failed") if k in summary}
    for outlet in outlets:
        try:
            outlet_events[outlet].extra = extra
        except (KeyError, TypeError):  # pragma: no cover - non-asset outlets
            continue


def stop_message(stopped: CampaignStopped) -> str:
    """What a campaign stopped from outside (a killed task) recorded, and how to resume it."""
    r = stopped.result
    return (
        f"Campaign {r.campaign_id!r} was stopped ({r.stop_reason}) after {r.sent} messages: "
        f"{r.unknown} requests had no answer in time and are recorded unknown, {r.released} recipients "
        f"were released unsent, {r.foreign_claimed} are still claimed by another attempt. Clear the "
        "task (same campaign_id) to resume: nobody gets a second message. For the unknown ones see "
        f"{UNKNOWN_DOCS}."
    )


def fails_without_retry(halted: CampaignHalted) -> bool:
    """Whether an Airflow retry of a halted campaign would fail the same way (token, permission,
    template, or the circuit breaker's error shared by every recipient): the task then fails at once."""
    if isinstance(halted, CircuitBreakerTripped):
        return True
    return isinstance(halted.error, (AuthenticationError, PermissionDeniedError, TemplateError))


def halt_message(halted: CampaignHalted) -> str:
    """What happened and what to fix, for a campaign stopped by an account-level error or its circuit
    breaker."""
    error, result = halted.error, halted.result
    advice = advice_for(error)
    text = (
        f"Campaign {result.campaign_id!r} halted after {result.sent} messages on Graph error {error.code} "
        f"({error.title}): {error}."
    )
    if isinstance(halted, CircuitBreakerTripped):
        text += (
            f" Circuit breaker: {halted.reason}; this is the campaign's problem (a parameter, a link or "
            "the template every row shares), not the recipients'."
        )
    if advice:
        text += f" {advice}"
    return text + (
        f" {result.released} claimed recipients were released unsent. After fixing this, clear the task "
        "(same campaign_id): the campaign resumes and nobody gets a second message."
    )


__all__ = [
    "UNKNOWN_DOCS",
    "check_unsettled",
    "fails_without_retry",
    "halt_message",
    "set_outlet_extra",
    "stop_message",
]
