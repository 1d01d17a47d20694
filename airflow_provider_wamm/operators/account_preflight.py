"""The operator's account check before the first send: can the number send, is the account onboarded,
and how much of the messaging limit will the campaign take?

Read-only: the phone number's ``health_status`` and messaging limit, and the WABA's Marketing Messages
onboarding status (:mod:`airflow_provider_wamm.graph.account_health`). A number Meta ``BLOCKED`` or a
WABA that is not onboarded (its sends would fall back to the Cloud API at the regular marketing price)
fails the task with what to do. The messaging limit becomes the campaign's budget
(:class:`~airflow_provider_wamm.campaign.limits.MessagingLimitGuard`), by ``on_messaging_limit``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.limits import MessagingLimitGuard
from airflow_provider_wamm.campaign.progress import expected_rows
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.graph.account_health import (
    HEALTH_PHONE_FIELDS,
    AccountHealth,
    account_health,
    onboarding_problem,
    tier_users,
)
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook
from airflow_provider_wamm.operators.preflight import guarded_read

if TYPE_CHECKING:
    from airflow_provider_wamm.operators.signals import OnMessagingLimit


def now() -> datetime:
    """The time the messaging-limit window is counted at (a test moves it)."""
    return utcnow()


def _read(hook: WhatsAppHook, *, explicit: bool, log: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The phone number and the WABA (empty without a WABA id); ``None`` when the token may not read
    them and the check was not asked for explicitly."""
    client = hook.get_conn()

    def read() -> tuple[dict[str, Any], dict[str, Any]]:
        return client.get_phone_number(HEALTH_PHONE_FIELDS), (client.get_waba() if hook.waba_id else {})

    return guarded_read(
        read,
        what="reading the account",
        denied=lambda exc: f"Preflight: the access token may not read the phone number or the WABA ({exc})",
        skipping="%s; sending without the account check.",
        explicit=explicit,
        log=log,
    )


def check_account(hook: WhatsAppHook, *, explicit: bool, log: Any) -> AccountHealth | None:
    """Fail the task before the first send when the number cannot send or the account is not onboarded;
    the health and messaging limit read (``None`` when they could not be read)."""
    found = _read(hook, explicit=explicit, log=log)
    if found is None:
        return None
    phone, waba = found
    health = account_health(phone)
    problems = "; ".join(health.problems) or "no reason given"
    if health.can_send == "BLOCKED":
        raise AirflowFailException(
            f"Preflight: phone number {hook.phone_number_id} cannot send messages (health_status BLOCKED): "
            f"{problems}. Fix it in WhatsApp Manager (Account tools > Phone numbers). Nothing was sent."
        )
    if health.can_send == "LIMITED":
        log.warning("Preflight: phone number %s may send with limits: %s", hook.phone_number_id, problems)
    onboarding = onboarding_problem(waba, hook.waba_id)
    if onboarding is not None:
        raise AirflowFailException(f"Preflight: {onboarding} Nothing was sent.")
    return health


def _planned(ledger: Ledger, settings: CampaignSettings, recipients: Iterable[Any]) -> int | None:
    """Recipients this shard may still message (an upper bound): its share of the rows, less what the
    campaign already recorded for it."""
    expected = expected_rows(recipients, settings)
    if expected is None:
        return None
    done = sum(send_counts(ledger, settings.campaign_id).values())
    return max(0, expected - math.ceil(done / max(1, settings.shard_count)))


def _limit_of(health: AccountHealth | None, ledger: Ledger, waba_id: str | None) -> tuple[bool, int | None]:
    """``(known, users)``: the limit read by the preflight, else the newest one a webhook stored."""
    if health is not None and health.limit_known:
        return True, health.limit
    signal = ledger.latest_messaging_limit(waba_id=waba_id)
    if signal is None:
        return False, None
    _, users, known = tier_users(signal.messaging_limit)
    return known, users


def limit_guard(
    on_limit: OnMessagingLimit,
    ledger: Ledger,
    settings: CampaignSettings,
    health: AccountHealth | None,
    *,
    recipients: Iterable[Any],
    waba_id: str | None,
    log: Any,
) -> MessagingLimitGuard | None:
    """Say what the campaign takes of the messaging limit; fail before sending when it would go past it
    and ``on_limit`` is ``"fail"``; the budget guard for ``"defer"`` and ``"fail"`` (``None``: no
    limit known, unlimited, or ``"warn"``)."""
    if settings.dry_run:
        return None
    known, users = _limit_of(health, ledger, waba_id)
    if not known or users is None:
        log.info("Messaging limit: %s.", "unlimited" if known else "not known (no read, no webhook)")
        return None
    guard = MessagingLimitGuard(
        ledger, users, planned=_planned(ledger, settings, recipients), waba_id=waba_id, clock=now
    )
    plan = guard.plan()
    log.info("Campaign %s: %s.", settings.campaign_id, plan.describe())
    if not plan.exceeds:
        return None if on_limit == "warn" else guard
    if on_limit == "fail":
        raise AirflowFailException(
            f"Campaign {settings.campaign_id!r} would go past the messaging limit: {plan.describe()}. "
            "Set on_messaging_limit='defer' to send up to the limit and resume when the window rolls "
            "over, or 'warn' to send anyway. Nothing was sent."
        )
    if on_limit == "warn":
        log.warning(
            "Campaign %s goes past the messaging limit (on_messaging_limit='warn').", settings.campaign_id
        )
        return None
    log.warning(
        "Campaign %s: sends %d now and defers the rest until the 24-hour window has room.",
        settings.campaign_id,
        plan.left,
    )
    return guard


__all__ = ["check_account", "limit_guard", "now"]
