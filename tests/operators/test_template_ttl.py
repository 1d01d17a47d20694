"""A template's time-to-live: read in preflight, recorded with the run, used by the report (``expired``)
and by the sensor (its default settle timeout)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.report import add_ttl, build_report
from airflow_provider_wamm.campaign.ttl import recorded_ttl_s, ttl_of
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox, SandboxTemplate, default_templates
from airflow_provider_wamm.sensors.responses import DEFAULT_SETTLE_TIMEOUT, MarketingResponsesSensor
from tests.operators.conftest import LEDGER_CONN_ID, WHATSAPP_CONN_ID, make_context, rows

#: The shortest time-to-live Meta allows a marketing template (12 hours).
TTL_S = 43_200


def short_lived(sandbox: Sandbox) -> None:
    """``spring_sale`` with a 12-hour time-to-live."""
    spring = default_templates()["spring_sale"]
    fields: dict[str, Any] = {**spring.__dict__, "message_send_ttl_seconds": TTL_S}
    sandbox.configure(templates={**default_templates(), "spring_sale": SandboxTemplate(**fields)})


def send(**kwargs: Any) -> MarketingMessageOperator:
    return MarketingMessageOperator(
        task_id="send",
        whatsapp_conn_id=WHATSAPP_CONN_ID,
        ledger_conn_id=LEDGER_CONN_ID,
        template_name="spring_sale",
        language="en_US",
        body_parameters=["{name}", "{discount}"],
        buttons=[{"type": "url", "index": 0, "text": "{slug}"}],
        preflight=True,
        **kwargs,
    )


def sensor(**kwargs: Any) -> MarketingResponsesSensor:
    return MarketingResponsesSensor(
        task_id="report", campaign_id="ttl", ledger_conn_id=LEDGER_CONN_ID, **kwargs
    )


def test_ttl_of() -> None:
    assert ttl_of({"message_send_ttl_seconds": 43200}) == 43200.0
    assert ttl_of({"message_send_ttl_seconds": "86400"}) == 86400.0
    assert ttl_of({"message_send_ttl_seconds": None}) is None
    assert ttl_of({"message_send_ttl_seconds": -1}) is None and ttl_of({}) is None


def test_preflight_records_the_ttl_and_the_report_names_the_expired(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    """No status webhook ever comes (the sandbox sends none here): 12 hours after the send, every
    message Meta took outlived its time-to-live undelivered."""
    short_lived(sandbox)
    summary = send(recipients=rows(5), campaign_id="ttl").execute(make_context())
    assert summary["template_ttl_s"] == TTL_S and summary["accepted"] == 5
    assert recorded_ttl_s(ledger, ["ttl"]) == TTL_S

    now = add_ttl(build_report(ledger, "ttl"), ledger)
    assert now.ttl_s == TTL_S and now.expired == 0 and now.unsettled == 5
    later = add_ttl(build_report(ledger, "ttl"), ledger, now=utcnow() + timedelta(seconds=TTL_S + 60))
    assert later.expired == 5 and "5 outlived the template's TTL undelivered" in later.summary()
    assert later.to_dict()["expired"] == 5


def test_sensor_waits_for_the_recorded_ttl(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    short_lived(sandbox)
    send(recipients=rows(2), campaign_id="ttl").execute(make_context())
    assert sensor()._settle_timeout(ledger, ["ttl"]) == timedelta(seconds=TTL_S)
    explicit = timedelta(hours=2)
    assert sensor(settle_timeout=explicit)._settle_timeout(ledger, ["ttl"]) == explicit
    assert sensor()._settle_timeout(ledger, ["other"]) == DEFAULT_SETTLE_TIMEOUT


def test_template_without_ttl_keeps_meta_default(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    summary = send(recipients=rows(2), campaign_id="ttl").execute(make_context())
    assert summary["template_ttl_s"] is None
    assert add_ttl(build_report(ledger, "ttl"), ledger).ttl_s is None
    assert sensor()._settle_timeout(ledger, ["ttl"]) == DEFAULT_SETTLE_TIMEOUT
