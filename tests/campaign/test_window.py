"""The messaging-limit window read from the ledger: unique recipients reached in 24 hours, across
campaigns, and when they leave it; the budget guard built on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow_provider_wamm.campaign.guards import Guards
from airflow_provider_wamm.campaign.ledger import (
    AccountSignal,
    AccountSignalKind,
    Ledger,
    SendOutcome,
    SendState,
)
from airflow_provider_wamm.campaign.ledger.window import messaged_in_window, window_frees_at
from airflow_provider_wamm.campaign.limits import LimitPlan, MessagingLimitGuard

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def reach(ledger: Ledger, campaign: str, recipients: list[str], at: datetime, state: SendState) -> None:
    ledger.claim(campaign, recipients, attempt_id="a", now=at)
    outcomes = [SendOutcome(r, state, wamid=f"w-{campaign}-{r}", accepted_at=at) for r in recipients]
    ledger.record_results(campaign, outcomes, attempt_id="a", now=at)


def test_unique_recipients_of_every_campaign_in_the_last_24_hours(sqlite_ledger: Ledger) -> None:
    led = sqlite_ledger
    led.ensure_schema()
    reach(led, "c1", ["1", "2", "3"], T0, SendState.ACCEPTED)
    reach(led, "c2", ["3", "4"], T0 + timedelta(hours=2), SendState.HELD)  # "3" twice: one person
    reach(led, "c3", ["5"], T0 + timedelta(hours=3), SendState.UNKNOWN)  # may have reached Meta
    reach(led, "c4", ["6"], T0 + timedelta(hours=3), SendState.FAILED)  # did not
    reach(led, "old", ["7"], T0 - timedelta(hours=30), SendState.ACCEPTED)  # out of the window
    now = T0 + timedelta(hours=4)
    assert messaged_in_window(led, now) == 5
    # "1" and "2" leave at T0 + 24 h; "3" and "4" only at T0 + 26 h (their last message).
    assert window_frees_at(led, now, 1) == T0 + timedelta(hours=24)
    assert window_frees_at(led, now, 3) == T0 + timedelta(hours=26)
    assert window_frees_at(led, now, 5) == T0 + timedelta(hours=27)
    assert window_frees_at(led, now, 50) == now  # never that many: room already
    assert messaged_in_window(led, T0 + timedelta(hours=26, minutes=1)) == 1


def test_the_guard_budget_trip_and_a_stored_limit_change(sqlite_ledger: Ledger) -> None:
    led = sqlite_ledger
    led.ensure_schema()
    now = datetime.now(UTC)
    reach(led, "before", [str(i) for i in range(200)], now - timedelta(hours=1), SendState.ACCEPTED)
    guard = MessagingLimitGuard(led, 250, planned=1000, waba_id="200", clock=lambda: now)
    assert guard.plan() == LimitPlan(250, 200, 1000) and guard.plan().left == 50 and guard.plan().exceeds
    guards = Guards([guard])
    assert guards.allowance() == 50
    guards.claimed(50)
    assert guards.poll(0.0, waiting=True) is not None  # check() first (no news), then exhausted
    trip = guard.exhausted()
    assert trip is not None and trip.kind == "messaging_limit" and "250" in trip.message
    assert trip.resume_at is not None and trip.resume_at > now + timedelta(hours=22)
    led.record_account_signals(
        [AccountSignal(AccountSignalKind.CAPABILITY_UPDATE, waba_id="200", messaging_limit="TIER_2K")]
    )
    assert guard.check() is None and guard.allowance() == 2000 - 250
    led.record_account_signals(
        [AccountSignal(AccountSignalKind.CAPABILITY_UPDATE, waba_id="200", messaging_limit="TIER_UNLIMITED")]
    )
    guard.check()
    assert guard.allowance() is None


def test_an_old_stored_limit_does_not_override_the_read(sqlite_ledger: Ledger) -> None:
    led = sqlite_ledger
    led.ensure_schema()
    led.record_account_signals(
        [AccountSignal(AccountSignalKind.CAPABILITY_UPDATE, waba_id="200", messaging_limit="TIER_50")],
        now=datetime.now(UTC) - timedelta(days=3),
    )
    guard = MessagingLimitGuard(led, 2000, waba_id="200")
    guard.check()
    assert guard.allowance() == 2000
