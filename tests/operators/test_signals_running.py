"""A running campaign acts on Meta's template signals: the sandbox pauses the template mid-run and sends
the signed webhook, the receiver stores it in the campaign's ledger, the operator stops, defers, waits for
the approval and resumes; nobody gets a second message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
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
from tests.plugins.sandbox_fixtures import FAST_WEBHOOKS, SANDBOX_SECRET

CAMPAIGN = "wamm_ops.send.manual__2026-05-01T10:00:00+00:00"


def operator(**kwargs: Any) -> MarketingMessageOperator:
    return send_operator(
        **{
            "signal_poll_interval": 0.1,
            "max_messages_per_second": 300,
            "batch_size": 50,
            "campaign_options": dict(FAST_RETRIES),
            **kwargs,
        }
    )


def signal(sandbox: Sandbox, **step: Any) -> None:
    response = requests.post(f"{sandbox.url}/_sandbox/signals", json=step, timeout=5)
    assert response.status_code == 200, response.text
    assert sandbox.wait_webhooks_idle(10)


def wire(sandbox: Sandbox, url: str, **config: Any) -> None:
    """The sandbox sends its webhooks to the receiver, which writes to the operator's ledger."""
    sandbox.configure(webhook_url=url, app_secret=SANDBOX_SECRET, latency_s=0.002, **FAST_WEBHOOKS, **config)


def first_event(trigger: CampaignResumeTrigger, *, meanwhile: Callable[[], None] | None = None) -> Any:
    """Run the trigger; check it waits for 0.5 s, then do ``meanwhile`` and return its event."""

    async def watch() -> Any:
        gen = trigger.run()
        first = asyncio.ensure_future(anext(gen))  # type: ignore[arg-type]
        await asyncio.sleep(0.5)
        assert not first.done(), "the trigger fired before anything changed"
        if meanwhile is not None:
            await asyncio.to_thread(meanwhile)
        event = await asyncio.wait_for(first, 15)
        await gen.aclose()  # type: ignore[attr-defined]
        return event.payload

    return asyncio.run(watch())


@pytest.mark.usefixtures("wa_sandbox")
def test_paused_mid_run_defers_and_resumes_after_approval_everyone_once(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger], ledger: Ledger
) -> None:
    url, _ = live_receiver
    wire(sandbox, url, signal_steps=["pause_template:spring_sale/en_US@sends=300"])
    op = operator(recipients=rows(1000))
    context = make_context()
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    # No message was taken after the pause: the sandbox answers 132015 from then on.
    assert len(sandbox.messages) == 300
    deferred = context["ti"].xcoms[DEFERRED_RESULT_KEY]
    assert deferred["trip"]["kind"] == "template_paused" and deferred["trip"]["status"] == "PAUSED"
    assert deferred["result"]["accepted"] == 300 and deferred["result"]["released"] > 0
    assert send_counts(ledger, CAMPAIGN) == {"accepted": 300}  # nothing left claimed
    trigger = info.value.trigger
    assert isinstance(trigger, CampaignResumeTrigger) and info.value.method_name == "execute_complete"
    assert trigger.template_name == "spring_sale" and trigger.recheck_at is not None
    payload = first_event(
        trigger,
        meanwhile=lambda: signal(sandbox, action="approve_template", target="spring_sale", language="en_US"),
    )
    assert payload["status"] == "resume" and "APPROVED" in payload["message"]
    summary = op.execute_complete(context, payload)
    assert summary["accepted"] == 700 and summary["already_done"] == 300
    per = sandbox.sends_per_recipient()
    assert len(per) == 1000 and set(per.values()) == {1}
    assert send_counts(ledger, CAMPAIGN) == {"accepted": 1000}


@pytest.mark.usefixtures("wa_sandbox")
def test_paused_mid_run_with_fail_fails_with_the_counts(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger], ledger: Ledger
) -> None:
    url, _ = live_receiver
    wire(sandbox, url, signal_steps=["pause_template:spring_sale/en_US@sends=100"])
    op = operator(recipients=rows(600), on_template_paused="fail")
    context = make_context()
    with pytest.raises(AirflowFailException) as info:
        op.execute(context)
    message = str(info.value)
    assert "PAUSED" in message and "after 100 messages" in message
    assert "on_template_paused='defer'" in message and "nobody gets a second message" in message
    assert len(sandbox.messages) == 100
    assert context["ti"].xcoms[DEFERRED_RESULT_KEY]["result"]["accepted"] == 100
    assert send_counts(ledger, CAMPAIGN) == {"accepted": 100}


@pytest.mark.usefixtures("wa_sandbox")
def test_a_template_disabled_mid_run_fails_even_with_defer(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger], ledger: Ledger
) -> None:
    url, _ = live_receiver
    wire(sandbox, url, signal_steps=["disable_template:spring_sale/en_US@sends=100"])
    with pytest.raises(AirflowFailException, match="DISABLED"):
        operator(recipients=rows(600)).execute(make_context())
    assert len(sandbox.messages) == 100


@pytest.mark.usefixtures("wa_sandbox")
def test_a_template_paused_before_the_run_defers_at_once_and_a_disable_while_waiting_fails(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger], ledger: Ledger
) -> None:
    url, _ = live_receiver
    wire(sandbox, url)
    signal(sandbox, action="pause_template", target="spring_sale", language="en_US")
    op = operator(recipients=rows(50))
    context = make_context()
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    assert sandbox.messages == [] and not sandbox.errors()  # the preflight saw the pause
    assert context["ti"].xcoms[DEFERRED_RESULT_KEY]["result"] is None
    payload = first_event(
        info.value.trigger,
        meanwhile=lambda: signal(sandbox, action="disable_template", target="spring_sale", language="en_US"),
    )
    assert payload["status"] == "failed"
    with pytest.raises(AirflowFailException, match=r"cannot resume: .*DISABLED"):
        op.execute_complete(context, payload)
    assert sandbox.messages == []


@pytest.mark.usefixtures("wa_sandbox")
def test_without_the_receiver_a_132015_answer_defers_too(sandbox: Sandbox, ledger: Ledger) -> None:
    sandbox.configure(latency_s=0.002, signal_steps=["pause_template:spring_sale/en_US@sends=100"])
    context = make_context()
    with pytest.raises(TaskDeferred):
        operator(recipients=rows(400)).execute(context)
    assert len(sandbox.messages) == 100
    trip = context["ti"].xcoms[DEFERRED_RESULT_KEY]["trip"]
    assert trip["kind"] == "template_paused" and "132015" in trip["message"]
    assert send_counts(ledger, CAMPAIGN) == {"accepted": 100}


def test_option_values_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="on_template_paused"):
        operator(recipients=rows(1), on_template_paused="wait")
    with pytest.raises(ValueError, match="on_messaging_limit"):
        operator(recipients=rows(1), on_messaging_limit="ignore")
    with pytest.raises(ValueError, match="signal_poll_interval"):
        operator(recipients=rows(1), signal_poll_interval=0)
