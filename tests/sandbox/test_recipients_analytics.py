"""Recipients by BSUID, the answer's contacts, template TTLs and analytics of both product types."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_wamm.graph import GraphClient, TemplateSpec
from airflow_provider_wamm.graph.analytics import (
    ANALYTICS_PRODUCT_TYPES,
    CONVERSION_METRIC_TYPES,
    PRODUCT_TYPE_CLOUD_API,
    PRODUCT_TYPE_MARKETING_MESSAGES,
    conversions,
    product_type_of,
)
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.sandbox.analytics import CONVERSION_METRICS
from airflow_provider_wamm.sandbox.send import whatsapp_id
from tests.sandbox.conftest import PHONE, TOKEN, WABA, Graph, message, number

BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"


@pytest.mark.parametrize(
    ("extra", "contact"),
    [
        ({"to": None, "recipient": BSUID}, {"input": BSUID, "user_id": BSUID}),
        ({"to": None, "recipient": PARENT}, {"input": PARENT, "user_id": PARENT}),
        ({"to": "+4915123456789", "recipient": BSUID}, {"input": "+4915123456789", "wa_id": "4915123456789"}),
    ],
)
def test_the_answer_names_the_recipient(graph: Graph, extra: dict[str, Any], contact: dict[str, str]) -> None:
    response = graph.send(message(**extra))
    assert response.status_code == 200, response.text
    assert response.json()["contacts"] == [contact]


@pytest.mark.parametrize("recipient", ["us.1349", "US 1349", "US." + "1" * 129, "", 42, "4915123456789"])
def test_malformed_bsuids_are_refused(graph: Graph, recipient: object) -> None:
    error = graph.error(graph.send(message(to=None, recipient=recipient)))
    assert error["code"] == 100 and "recipient" in error["error_data"]["details"]


def test_biz_opaque_callback_data(graph: Graph) -> None:
    assert graph.send(message(biz_opaque_callback_data="order-42")).status_code == 200
    error = graph.error(graph.send(message(biz_opaque_callback_data="x" * 513)))
    assert error["code"] == 100 and "biz_opaque_callback_data" in error["error_data"]["details"]


@pytest.mark.parametrize(
    ("sent", "answered"),
    [
        ("+55 11 98765-4321", "551187654321"),  # Brazil: the mobile ninth digit goes
        ("5511987654321", "551187654321"),
        ("551133334444", "551133334444"),  # a Brazilian landline keeps its digits
        ("+52 55 1234 5678", "5215512345678"),  # Mexico: the mobile 1 comes in
        ("5215512345678", "5215512345678"),
        ("+4915123456789", "4915123456789"),
    ],
)
def test_brazilian_and_mexican_numbers_are_rewritten_in_wa_id(graph: Graph, sent: str, answered: str) -> None:
    response = graph.send(message(to=sent))
    assert response.json()["contacts"] == [{"input": sent, "wa_id": answered}]
    assert whatsapp_id("".join(ch for ch in sent if ch.isdigit())) == answered


def test_templates_carry_their_ttl(sandbox: Sandbox) -> None:
    with GraphClient(TOKEN, waba_id=WABA, base_url=sandbox.url) as client:
        templates = {t["name"]: t for t in client.list_templates()}
    assert templates["product_spotlight"]["message_send_ttl_seconds"] == 172_800
    assert "message_send_ttl_seconds" not in templates["spring_sale"]  # Meta's default
    assert TemplateSpec.from_api(templates["product_spotlight"]).message_send_ttl_seconds == 172_800
    assert TemplateSpec.from_api(templates["spring_sale"]).message_send_ttl_seconds is None


def test_both_readings_list_the_same_conversion_metrics() -> None:
    assert set(CONVERSION_METRIC_TYPES) == CONVERSION_METRICS


def test_analytics_of_both_product_types(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(
        click_rate=1.0, cloud_api_fallback_rate=0.5, forced_outcomes={number(i): "read" for i in range(40)}
    )
    for i in range(40):
        assert graph.send(to=number(i)).status_code == 200
    template_id = sandbox.config.templates["spring_sale"].id
    today = dt.datetime.now(dt.UTC).date()
    with GraphClient(TOKEN, phone_number_id=PHONE, waba_id=WABA, base_url=sandbox.url) as client:
        data = client.template_analytics(
            template_ids=[template_id],
            start=today,
            end=today + dt.timedelta(days=1),
            metric_types=["SENT", "CLICKED", "WEBSITE_PURCHASES", "WEBSITE_PURCHASES_CONVERSION_VALUE"],
            product_type=ANALYTICS_PRODUCT_TYPES,
        )
    by_type = {product_type_of(series["product_type"]): series["data_points"][0] for series in data}
    mm, cloud = by_type[PRODUCT_TYPE_MARKETING_MESSAGES], by_type[PRODUCT_TYPE_CLOUD_API]
    assert mm["sent"] + cloud["sent"] == 40 and mm["sent"] > 0 and cloud["sent"] > 0
    clicks = sum(c["count"] for c in mm["clicked"])
    assert conversions(mm) == {
        "website_purchases": clicks // 2,
        "website_purchases_conversion_value": 20.0 * (clicks // 2),
    }
    assert conversions(cloud) == {}  # conversions are a Marketing Messages API metric


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"metric_types": "[SENT,BOUNCED]"}, "metric_types"),
        ({"product_type": "WHATSAPP_ADS"}, "product_type"),
    ],
)
def test_analytics_refuses_unknown_names(
    sandbox: Sandbox, graph: Graph, params: dict[str, str], words: str
) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    query = {"start": today, "end": today, "template_ids": f"[{sandbox.config.templates['spring_sale'].id}]"}
    error = graph.error(graph.get(f"{WABA}/template_analytics", {**query, **params}))
    assert error["code"] == 100 and words in error["error_data"]["details"]
