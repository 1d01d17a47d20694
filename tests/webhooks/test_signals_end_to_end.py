"""End to end without Airflow's scheduler: the sandbox sends Meta's signals over real HTTP, signed; the
receiver stores them; the ledger answers; the template trigger fires on what was stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import requests

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.triggers.templates import TemplateEventTrigger
from tests.plugins.sandbox_fixtures import FAST_WEBHOOKS, SANDBOX_SECRET
from tests.sandbox.conftest import Graph

USER = "4915123456789"


def signal(sandbox: Sandbox, **step: Any) -> dict[str, Any]:
    response = requests.post(f"{sandbox.url}/_sandbox/signals", json=step, timeout=5)
    assert response.status_code == 200, response.text
    assert sandbox.wait_webhooks_idle(10)
    return dict(response.json())


def test_stop_then_resume_from_the_sandbox(sandbox: Sandbox, live_receiver: tuple[str, Ledger]) -> None:
    url, ledger = live_receiver
    sandbox.configure(webhook_url=url, app_secret=SANDBOX_SECRET, **FAST_WEBHOOKS)
    signal(sandbox, action="stop", target=USER)
    assert ledger.active_suppressions([USER])[USER].reason == "stopped_marketing"
    # The sandbox behaves as Meta does: a send to the stopped user is accepted, then fails with 131050.
    graph = Graph(sandbox)
    assert graph.send(to="+" + USER).status_code == 200
    assert sandbox.wait_webhooks_idle(10)
    wamid = sandbox.messages[-1].wamid
    status = ledger.status_of(wamid)
    assert status is not None and (status["status"], status["error_code"]) == ("failed", 131050)
    signal(sandbox, action="resume", target=USER)
    assert ledger.active_suppressions([USER]) == {}
    history = [(c.action, c.source) for c in ledger.suppression_history(USER)]
    assert history == [
        ("added", "user_preferences"),
        ("unchanged", "status_webhook"),
        ("lifted", "user_preferences"),
    ]
    assert sandbox.expected_outcome(USER) != "failed:131050"


def test_a_scripted_pause_reaches_the_ledger_and_fires_the_trigger(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger], airflow_connection: Callable[..., str]
) -> None:
    url, ledger = live_receiver
    sandbox.configure(
        webhook_url=url,
        app_secret=SANDBOX_SECRET,
        signal_steps=["pause_template:spring_sale@sends=2"],
        **FAST_WEBHOOKS,
    )
    airflow_connection("e2e_ledger", conn_type="sqlite", host=str(ledger.engine.url.database))
    trigger = TemplateEventTrigger(
        events=["PAUSED"],
        template_name="spring_sale",
        language="en_US",
        ledger_conn_id="e2e_ledger",
        poll_interval=0.05,
    )

    async def watch() -> dict[str, Any]:
        gen = trigger.run()
        first = asyncio.ensure_future(anext(gen))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        graph = Graph(sandbox)
        codes = []
        for i in range(3):
            response = await asyncio.to_thread(graph.send, to=f"+4915100000{i:03d}")
            codes.append(response.json()["error"]["code"] if response.status_code != 200 else 200)
        assert codes == [200, 200, 132015]  # paused after exactly two sends
        event = await asyncio.wait_for(first, 10)
        await gen.aclose()  # type: ignore[attr-defined]
        return dict(event.payload)

    payload = asyncio.run(watch())
    assert (payload["event"], payload["template_name"], payload["reason"]) == (
        "PAUSED",
        "spring_sale",
        "NONE",
    )
    state = ledger.template_state(name="spring_sale", language="en_US")
    assert state is not None and state.status == "PAUSED" and state.category == "MARKETING"
    signal(sandbox, action="approve_template", target="spring_sale", language="en_US")
    state = ledger.template_state(name="spring_sale", language="en_US")
    assert state is not None and state.status == "APPROVED"
    assert Graph(sandbox).send(to="+4915100000999").status_code == 200


def test_limit_and_quality_changes_reach_the_ledger(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger]
) -> None:
    url, ledger = live_receiver
    sandbox.configure(webhook_url=url, app_secret=SANDBOX_SECRET, **FAST_WEBHOOKS)
    signal(sandbox, action="messaging_limit", target="TIER_250")
    signal(sandbox, action="quality", target="RED")
    number = sandbox.config.display_phone_number
    limit = ledger.latest_messaging_limit(phone_number=number)
    assert limit is not None and limit.messaging_limit == "TIER_250"
    capability = ledger.latest_messaging_limit(waba_id=sandbox.config.waba_id)
    assert capability is not None and capability.messaging_limit == "TIER_250"
    quality = ledger.phone_number_quality(number)
    assert quality is not None and quality.event == "FLAGGED"
    signal(sandbox, action="account_update", target="MM_LITE_TERMS_SIGNED")
    terms = ledger.latest_account_signal("account_update", events=["MM_LITE_TERMS_SIGNED"])
    assert terms is not None and terms.waba_id == sandbox.config.waba_id
    signal(sandbox, action="template_category", target="coupon_offer", value="UTILITY")
    state = ledger.template_state(name="coupon_offer", language="en_US")
    assert state is not None and state.category == "UTILITY"
    assert sandbox.webhook_stats()["signals"] == 5
