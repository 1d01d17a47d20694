"""Meta's conversion metrics (``template_analytics``) beside the attribution, per template sent."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.operators.attribution import ConversionAttributionOperator
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import (
    CRM_CONN_ID,
    LEDGER_CONN_ID,
    WHATSAPP_CONN_ID,
    make_context,
    rows,
    seed_crm,
)
from tests.operators.test_experiment_operator import VARIANTS, add_v2, operator


def attribution(**kwargs: Any) -> ConversionAttributionOperator:
    args: dict[str, Any] = {
        "task_id": "attribute",
        "campaign_id": "meta-conv",
        "conversions_sql": "SELECT phone, converted_at FROM orders",
        "sql_conn_id": CRM_CONN_ID,
        "ledger_conn_id": LEDGER_CONN_ID,
        "window": timedelta(days=7),
        "include_analytics": True,
        "whatsapp_conn_id": WHATSAPP_CONN_ID,
    }
    return ConversionAttributionOperator(**(args | kwargs))


def test_meta_conversions_per_template_beside_the_attribution(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    add_v2(sandbox)
    sandbox.configure(pair_limit=False, click_rate=0.6)
    operator(recipients=rows(300), campaign_id="meta-conv", holdout=0.2, variants=VARIANTS).execute(
        make_context()
    )
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    seed_crm(
        crm, [{"phone": f"+{m.to}", "converted_at": soon} for m in sandbox.messages[:40]], table="orders"
    )
    report = attribution().execute(make_context())
    assert {g["group"] for g in report["groups"]} == {"holdout", "A", "B"}  # the attribution itself
    meta = report["meta_analytics"]
    assert "error" not in meta, meta
    by_template = {t["template_name"]: t for t in meta["templates"]}
    assert {(t, e["groups"][0]) for t, e in by_template.items()} == {
        ("spring_sale", "A"),
        ("spring_sale_v2", "B"),
    }
    for name, entry in by_template.items():
        mine = [
            m
            for m in sandbox.messages
            if m.template == name
            and m.pricing_category == "marketing_lite"
            and not m.outcome.startswith("failed")
        ]
        clicked = sum(1 for m in mine if m.clicked)
        assert clicked > 0
        assert entry["delivered"] == sum(1 for m in mine if m.outcome in ("delivered", "read"))
        assert entry["conversions"]["website_purchases"] == int(clicked * 0.5)
        assert entry["conversions"]["website_add_to_cart"] == clicked
        assert entry["website_purchases_per_delivered"] == pytest.approx(
            int(clicked * 0.5) / entry["delivered"]
        )
        assert "website_purchases_conversion_value_per_delivered" not in entry
    assert meta["scope"].startswith("template and days")


def test_meta_analytics_problems_are_noted_not_fatal(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    operator(recipients=rows(20), campaign_id="meta-conv").execute(make_context())
    seed_crm(
        crm, [{"phone": "+4915100000001", "converted_at": datetime.now(UTC).isoformat()}], table="orders"
    )
    wa_sandbox(waba_id=None)
    report = attribution().execute(make_context())
    assert report["meta_analytics"] == {"error": f"connection {WHATSAPP_CONN_ID!r} has no waba_id"}
    assert report["groups"][0]["recipients"] == 20


def test_analytics_metrics_must_be_meta_conversion_metrics() -> None:
    with pytest.raises(ValueError, match="READ"):
        attribution(analytics_metrics=["WEBSITE_PURCHASES", "READ"])
