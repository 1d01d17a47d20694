"""The messaging limit and the account's health before and while a campaign sends.

The sandbox reports the limit (``whatsapp_business_manager_messaging_limit``) and the number's
``health_status``; the ledger knows who was messaged in the last 24 hours. A test moves the clock the
window is counted at."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.operators import account_preflight
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.operators.signals import DEFERRED_RESULT_KEY
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.triggers.resume import CampaignResumeTrigger
from tests.operators.conftest import (
    FAST_RETRIES,
    make_context,
    rows,
    send_operator,
)
from tests.operators.test_fail_early import Logs, log_lines
from tests.plugins.sandbox_fixtures import FAST_WEBHOOKS, SANDBOX_SECRET


def operator(**kwargs: Any) -> MarketingMessageOperator:
    return send_operator(
        **{
            "signal_poll_interval": 0.1,
            "max_messages_per_second": 400,
            "batch_size": 50,
            "campaign_options": dict(FAST_RETRIES),
            **kwargs,
        }
    )


def already_messaged(count: int) -> None:
    """Another campaign messaged ``count`` people (numbers far from the test's own) just now."""
    summary = operator(recipients=rows(count, start=500_000), campaign_id="earlier").execute(make_context())
    assert summary["accepted"] == count


class Clock:
    """The time the window is counted at, moved by the test."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(account_preflight, "now", c)
    return c


@pytest.mark.usefixtures("wa_sandbox")
def test_250_with_200_used_sends_50_defers_and_finishes_as_the_window_rolls(
    sandbox: Sandbox, ledger: Ledger, clock: Clock
) -> None:
    sandbox.configure(messaging_limit="TIER_250")
    already_messaged(200)
    op = operator(recipients=rows(1000))
    context = make_context()
    sent: list[int] = []
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    sent.append(len(sandbox.messages) - 200)
    deferred = context["ti"].xcoms[DEFERRED_RESULT_KEY]
    assert deferred["trip"]["kind"] == "messaging_limit" and deferred["result"]["accepted"] == 50
    trigger = info.value.trigger
    assert isinstance(trigger, CampaignResumeTrigger) and trigger.template_name is None
    # Room again once all 250 people of the window have left it: 24 hours after the last of them.
    assert trigger.resume_at is not None and trigger.resume_at > utcnow() + timedelta(hours=23, minutes=59)
    campaign = "wamm_ops.send.manual__2026-05-01T10:00:00+00:00"
    assert send_counts(ledger, campaign) == {"accepted": 50}
    for _ in range(10):
        clock.offset += timedelta(hours=24, minutes=1)  # the window rolls over
        before = len(sandbox.messages)
        try:
            summary = op.execute_complete(context, {"status": "resume", "campaign_id": campaign})
        except TaskDeferred:
            sent.append(len(sandbox.messages) - before)
            continue
        sent.append(len(sandbox.messages) - before)
        break
    assert sent == [50, 250, 250, 250, 200]
    assert summary["accepted"] == 200 and summary["already_done"] == 800
    per = sandbox.sends_per_recipient()
    assert len(per) == 1200 and set(per.values()) == {1}
    assert send_counts(ledger, campaign) == {"accepted": 1000}


@pytest.mark.usefixtures("wa_sandbox")
def test_fail_stops_before_the_first_send_and_warn_sends_everyone(
    sandbox: Sandbox, ledger: Ledger, clock: Clock, airflow_logs: Logs
) -> None:
    sandbox.configure(messaging_limit="TIER_250")
    already_messaged(200)
    with pytest.raises(AirflowFailException) as info:
        operator(recipients=rows(1000), on_messaging_limit="fail").execute(make_context())
    message = str(info.value)
    assert "messaging limit 250 unique users per 24 h; 200 messaged in the last 24 h" in message
    assert "this campaign takes up to 1000; 50 left" in message and message.endswith("Nothing was sent.")
    assert len(sandbox.messages) == 200
    summary = operator(recipients=rows(1000), on_messaging_limit="warn").execute(make_context())
    assert summary["accepted"] == 1000 and summary["deferred"] is None
    assert any("past the messaging limit (on_messaging_limit='warn')" in x for x in log_lines(airflow_logs))


@pytest.mark.usefixtures("wa_sandbox")
def test_a_campaign_within_the_limit_is_not_held_back(sandbox: Sandbox, ledger: Ledger, clock: Clock) -> None:
    sandbox.configure(messaging_limit="TIER_1K")
    already_messaged(200)
    assert operator(recipients=rows(800)).execute(make_context())["accepted"] == 800


@pytest.mark.usefixtures("wa_sandbox")
def test_a_limit_raised_by_webhook_mid_run_lets_the_campaign_finish(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger], ledger: Ledger, clock: Clock
) -> None:
    url, _ = live_receiver
    sandbox.configure(messaging_limit="TIER_250")
    already_messaged(200)
    sandbox.configure(
        webhook_url=url,
        app_secret=SANDBOX_SECRET,
        signal_steps=["messaging_limit:TIER_2K@sends=210"],
        **FAST_WEBHOOKS,
    )
    options = {**FAST_RETRIES, "min_messages_per_second": 10.0}
    op = operator(recipients=rows(300), max_messages_per_second=40, campaign_options=options)
    summary = op.execute(make_context())
    assert summary["accepted"] == 300 and summary["deferred"] is None
    assert len(sandbox.messages) == 500


@pytest.mark.usefixtures("wa_sandbox")
def test_a_blocked_number_fails_before_the_first_send(sandbox: Sandbox, ledger: Ledger) -> None:
    sandbox.configure(health_status="BLOCKED")
    with pytest.raises(AirflowFailException) as info:
        operator(recipients=rows(5)).execute(make_context())
    message = str(info.value)
    assert "cannot send messages (health_status BLOCKED)" in message
    assert "The sandbox's phone number is BLOCKED" in message and "what to do:" in message
    assert message.endswith("Nothing was sent.") and sandbox.messages == []


@pytest.mark.usefixtures("wa_sandbox")
def test_a_limited_number_warns_and_sends(sandbox: Sandbox, ledger: Ledger, airflow_logs: Logs) -> None:
    sandbox.configure(health_status="LIMITED")
    assert operator(recipients=rows(5)).execute(make_context())["accepted"] == 5
    assert any("may send with limits" in line for line in log_lines(airflow_logs))


@pytest.mark.usefixtures("wa_sandbox")
def test_an_account_not_onboarded_fails_with_what_to_do(sandbox: Sandbox, ledger: Ledger) -> None:
    sandbox.configure(onboarding_status="ELIGIBLE")
    with pytest.raises(AirflowFailException) as info:
        operator(recipients=rows(5)).execute(make_context())
    message = str(info.value)
    assert "is not onboarded to the Marketing Messages API (status ELIGIBLE)" in message
    assert "accept the Marketing Messages API terms" in message and "regular marketing" in message
    assert sandbox.messages == []


def test_the_resume_trigger_waits_for_the_window(
    ledger: Ledger, airflow_connection: Callable[..., str]
) -> None:
    import asyncio

    ledger.ensure_schema()
    conn_id = airflow_connection("limit_ledger", conn_type="sqlite", host=str(ledger.engine.url.database))

    def first(resume_at: datetime) -> Any:
        trigger = CampaignResumeTrigger(
            campaign_id="c",
            stopped_at=utcnow(),
            resume_at=resume_at,
            ledger_conn_id=conn_id,
            poll_interval=0.05,
        )

        async def run() -> Any:
            gen = trigger.run()
            try:
                return (await asyncio.wait_for(anext(gen), 1.0)).payload  # type: ignore[arg-type]
            except TimeoutError:
                return None
            finally:
                await gen.aclose()  # type: ignore[attr-defined]

        return asyncio.run(run())

    assert first(utcnow() + timedelta(seconds=0.3))["status"] == "resume"
    assert first(utcnow() + timedelta(hours=1)) is None
    kwargs = CampaignResumeTrigger(campaign_id="c", stopped_at=utcnow(), resume_at=utcnow()).serialize()[1]
    assert CampaignResumeTrigger(**kwargs).resume_at is not None
