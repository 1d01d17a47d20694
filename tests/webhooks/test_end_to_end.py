"""End to end without Airflow: a campaign sent to the sandbox, whose signed status webhooks reach the
receiver over real HTTP, and the report built from what the receiver stored."""

from __future__ import annotations

import collections
from datetime import timedelta
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.report import build_report, settle_state
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.sandbox import Sandbox
from tests.plugins.sandbox_fixtures import SANDBOX_SECRET


def test_sandbox_webhooks_settle_a_campaign(sandbox: Sandbox, live_receiver: tuple[str, Ledger]) -> None:
    url, ledger = live_receiver
    sandbox.configure(
        webhook_url=url,
        app_secret=SANDBOX_SECRET,
        webhook_duplicate_rate=0.3,
        webhook_reorder_rate=0.5,
        webhook_statuses_per_change=7,
        webhook_batch_size=50,
    )
    recipients = [{"phone": f"+49 151 {10000000 + i}", "name": f"N{i}"} for i in range(120)]
    settings = CampaignSettings(
        campaign_id="e2e",
        template_name="welcome_named",
        language="en_US",
        personaliser=Personaliser(body_parameters={"first_name": "{name}"}),
        max_messages_per_second=1000,
    )
    with GraphClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        waba_id=sandbox.config.waba_id,
        base_url=sandbox.url,
    ) as client:
        result = run_campaign(recipients, client=client, ledger=ledger, settings=settings)
    assert result.accepted == 120
    assert sandbox.wait_webhooks_idle(30)

    state = settle_state(ledger, "e2e", settle_timeout=timedelta(hours=1))
    assert state.settled, state
    report = build_report(ledger, "e2e")
    outcomes = collections.Counter(m.outcome for m in sandbox.messages)
    routes = collections.Counter(
        m.pricing_category for m in sandbox.messages if not m.outcome.startswith("failed")
    )
    failed = {int(k.split(":")[1]): v for k, v in outcomes.items() if k.startswith("failed:")}
    assert report.accepted == 120
    assert report.read == outcomes["read"]
    assert report.delivered == outcomes["read"] + outcomes["delivered"]
    assert report.delivery_failed == sum(failed.values())
    assert {e["code"]: e["count"] for e in report.errors if e["stage"] == "delivery"} == failed
    assert report.routing["marketing_lite"] == routes["marketing_lite"]
    assert report.routing["marketing"] == routes["marketing"]
    assert report.time_to_deliver_s["count"] == report.delivered


def test_sandbox_prices_and_user_ids_reach_the_report_and_the_identities(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger]
) -> None:
    """The sandbox's statuses carry ``recipient_user_id`` and, with ``webhook_cost``, ``pricing.cost``:
    the report sums Meta's cost of the delivered messages, and a stop naming only a user id (as a
    username's webhook would) keeps that number out of the next campaign."""
    from airflow_provider_wamm.campaign.ledger import PreferenceChange, PreferenceValue
    from airflow_provider_wamm.sandbox.webhooks import sandbox_user_id

    url, ledger = live_receiver
    sandbox.configure(webhook_url=url, app_secret=SANDBOX_SECRET, webhook_cost=True, price_per_message=0.025)
    recipients = [{"phone": f"+49 151 {20000000 + i}", "name": f"N{i}"} for i in range(30)]

    def run(campaign_id: str) -> Any:
        settings = CampaignSettings(
            campaign_id=campaign_id,
            template_name="welcome_named",
            language="en_US",
            personaliser=Personaliser(body_parameters={"first_name": "{name}"}),
        )
        with GraphClient(
            sandbox.config.access_token,
            phone_number_id=sandbox.config.phone_number_id,
            waba_id=sandbox.config.waba_id,
            base_url=sandbox.url,
        ) as client:
            return run_campaign(recipients, client=client, ledger=ledger, settings=settings)

    assert run("priced").accepted == 30
    assert sandbox.wait_webhooks_idle(30)
    report = build_report(ledger, "priced")
    assert report.costed == report.delivered > 0
    assert report.attributed_cost == {"USD": round(0.025 * report.delivered, 6)}

    first = sandbox.messages[0].to
    user_id = sandbox_user_id(first)
    assert first in ledger.person_keys([user_id])[user_id]
    stop = PreferenceChange(user_id, PreferenceValue.STOP, report_time(), user_id=user_id)
    ledger.record_preferences([stop])
    held = len(ledger.active_suppressions([m.to for m in sandbox.messages[1:30]]))  # 131049/131050 webhooks
    again = run("priced-2")
    assert again.suppressed == held + 1 and first not in [m.to for m in sandbox.messages[30:]]


def report_time() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
