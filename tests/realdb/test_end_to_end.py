"""A campaign on each real database: sends, signed status webhooks stored by the receiver, then the
responses sensor (and its trigger) reporting from the same ledger, reached through Airflow connections.
"""

from __future__ import annotations

import asyncio
import collections
import json
import pathlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import parse_table_name, report_table
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor
from airflow_provider_wamm.triggers.responses import MarketingResponsesTrigger
from airflow_provider_wamm.webhooks import WebhookSettings, create_app
from tests.reliability.harness import audience, digits, fast_settings, sandbox_client
from tests.webhooks.conftest import ASGIClient, signed
from tests.webhooks.test_hostile_input import bodies as hostile_bodies

APP_SECRET = "realdb-app-secret-5f2a"


def _first_event(trigger: MarketingResponsesTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout=30))


def test_campaign_webhooks_and_report(
    backend: str,
    sandbox: Sandbox,
    ledger: Ledger,
    prefix: str,
    ledger_conn: str,
    serve: Callable[[WebhookSettings], str],
    tmp_path: pathlib.Path,
) -> None:
    n = 150
    stopped = {digits(i) for i in range(0, n, 30)}
    url = serve(WebhookSettings(app_secret=APP_SECRET, verify_token="v", ledger=ledger))
    sandbox.configure(
        mps_cap=None,
        webhook_url=url,
        app_secret=APP_SECRET,
        webhook_duplicate_rate=0.2,
        webhook_reorder_rate=0.3,
        webhook_batch_size=40,
        forced_outcomes={r: "error:131050" for r in stopped},
    )
    crowd = audience(n, extras=False)
    campaign_id = f"realdb-{backend}"
    with sandbox_client(sandbox, timeout=5.0) as client:
        result = run_campaign(crowd.rows, client=client, ledger=ledger, settings=fast_settings(campaign_id))
    assert result.accepted == n - len(stopped) == len(sandbox.messages)
    assert sandbox.wait_webhooks_idle(30)

    # The receiver stored every status, monotonically, joined to its send by wamid.
    messages = {m.wamid: m for m in sandbox.messages}
    for wamid, message in messages.items():
        stored = ledger.status_of(wamid)
        assert stored is not None
        expected = message.outcome.split(":")[0]
        assert stored["status"] == expected, (message.outcome, stored["status"])
        if expected == "failed":
            assert stored["error_code"] == int(message.outcome.split(":")[1])
    assert set(ledger.active_suppressions(sorted(stopped))) == stopped

    # The trigger, reading through the Airflow connection, sees the campaign settled.
    trigger = MarketingResponsesTrigger(
        campaign_ids=[campaign_id],
        ledger_conn_id=ledger_conn,
        ledger_table_prefix=prefix,
        settle_timeout=3600,
        poll_interval=0.1,
    )
    event = _first_event(trigger)
    assert event["status"] == "settled", event

    # The sensor reports, writes its table next to the ledger and an HTML page.
    html = tmp_path / "report.html"
    sensor = MarketingResponsesSensor(
        task_id="report",
        campaign_id=campaign_id,
        ledger_conn_id=ledger_conn,
        ledger_table_prefix=prefix,
        settle_timeout=timedelta(hours=1),
        report_table=f"{prefix}report",
        html_report_path=str(html),
    )
    poked = sensor.poke({})
    assert poked.is_done
    report: dict[str, Any] = dict(poked.xcom_value or {})
    outcomes = collections.Counter(m.outcome for m in sandbox.messages)
    assert report["accepted"] == result.accepted
    assert report["sends"][L.FAILED] == len(stopped)
    assert report["read"] == outcomes["read"]
    assert report["delivered"] == outcomes["read"] + outcomes["delivered"]
    assert report["delivery_failed"] == sum(v for k, v in outcomes.items() if k.startswith("failed"))
    assert {(e["stage"], e["code"]) for e in report["errors"]} >= {("send", 131050)}
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    table = report_table(f"{prefix}report")
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.campaign_id == campaign_id)).mappings().all()
    summary = [r for r in rows if r["row_key"] == "summary"]
    assert len(summary) == 1 and summary[0]["accepted"] == result.accepted
    assert {r["row_key"] for r in rows} >= {"summary", "error:send:131050"}
    assert parse_table_name(f"{prefix}report") == (None, f"{prefix}report")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=hostile_bodies)
def test_signed_hostile_webhooks_never_give_5xx_on_the_database(ledger: Ledger, payload: Any) -> None:
    """Over-long ids, odd types and huge numbers are cut or skipped before they reach the columns."""
    client = ASGIClient(create_app(WebhookSettings(app_secret=APP_SECRET, verify_token="v", ledger=ledger)))
    raw = json.dumps(payload).encode()
    response = client.post("/", content=raw, headers=signed(raw, APP_SECRET))
    assert response.status_code in (200, 400), response.text
