"""``include_analytics``: Meta's template analytics fetched from the sandbox and attached to the report."""

from __future__ import annotations

import collections
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor
from tests.report.seed import seed_sends, seed_statuses
from tests.sensors.conftest import LEDGER_CONN_ID


def test_analytics_from_the_sandbox(
    sandbox: Sandbox, ledger: Ledger, whatsapp_connection: Callable[..., str], context: dict[str, Any]
) -> None:
    sandbox.configure(price_per_message=0.05, click_rate=0.5)
    conn_id = whatsapp_connection("wa_analytics", host=sandbox.url, access_token=sandbox.config.access_token)
    settings = CampaignSettings(
        campaign_id="an",
        template_name="welcome_named",
        language="en_US",
        personaliser=Personaliser(body_parameters={"first_name": "{name}"}),
        max_messages_per_second=1000,
    )
    recipients = [{"phone": f"+49 151 {20000000 + i}", "name": "A"} for i in range(40)]
    with GraphClient(
        sandbox.config.access_token, phone_number_id=sandbox.config.phone_number_id, base_url=sandbox.url
    ) as c:
        assert run_campaign(recipients, client=c, ledger=ledger, settings=settings).accepted == 40
    mm = [m for m in sandbox.messages if m.pricing_category == "marketing_lite"]
    outcomes = collections.Counter(m.outcome for m in mm)

    sensor = MarketingResponsesSensor(
        task_id="responses",
        campaign_id="an",
        ledger_conn_id=LEDGER_CONN_ID,
        whatsapp_conn_id=conn_id,
        include_analytics=True,
        settle_timeout=timedelta(0),  # report at once
    )
    report = sensor.poke(context).xcom_value
    analytics = report["analytics"]
    assert "error" not in analytics, analytics
    assert analytics["sent"] == len(mm) - sum(v for k, v in outcomes.items() if k.startswith("failed"))
    assert analytics["delivered"] == outcomes["delivered"] + outcomes["read"]
    assert analytics["clicked"] == sum(1 for m in mm if m.clicked and not m.outcome.startswith("failed"))
    assert analytics["cost"] == round(analytics["delivered"] * 0.05, 6)
    assert analytics["template_id"] and analytics["product_type"] == "MARKETING_MESSAGES_LITE_API"


def test_analytics_problems_are_noted_not_fatal(
    ledger: Ledger, whatsapp_connection: Callable[..., str], context: dict[str, Any]
) -> None:
    seed_sends(ledger, "c1", now=utcnow())
    seed_statuses(ledger, settle=True)
    conn_id = whatsapp_connection("wa_no_waba", waba_id=None)
    sensor = MarketingResponsesSensor(
        task_id="responses",
        campaign_id="c1",
        ledger_conn_id=LEDGER_CONN_ID,
        whatsapp_conn_id=conn_id,
        include_analytics=True,
    )
    report = sensor.poke(context).xcom_value
    assert report["analytics"] == {"error": "connection 'wa_no_waba' has no waba_id"}
    assert report["settled"] is True
