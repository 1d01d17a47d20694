"""template_analytics: both product types, conversion metrics, and the typed answer."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_wamm.graph.analytics import (
    ANALYTICS_PRODUCT_TYPES,
    CONVERSION_METRIC_TYPES,
    PRODUCT_TYPE_CLOUD_API,
    PRODUCT_TYPE_MARKETING_MESSAGES,
    conversions,
    product_type_of,
)
from airflow_provider_wamm.graph.client import DEFAULT_TEMPLATE_FIELDS, GraphClient
from tests.graph.conftest import GRAPH, WABA_ID

MakeClient = Callable[..., GraphClient]

URL = f"{GRAPH}/{WABA_ID}/template_analytics"


def qs(request: Any) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)


def answer(request: Any, context: Any) -> dict[str, Any]:
    kind = qs(request).get("product_type", ["CLOUD_API"])[0]
    point = {"template_id": "1001", "start": 1, "end": 2, "sent": 2 if kind == "CLOUD_API" else 5}
    if kind != "CLOUD_API":
        point["website_purchases"] = 1
    return {"data": [{"granularity": "DAILY", "product_type": kind.lower(), "data_points": [point]}]}


def test_both_product_types_are_asked_for(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.get(URL, json=answer)
    ids = [str(1000 + i) for i in range(12)]
    data = make_client().template_analytics(
        template_ids=ids, start="2026-11-01", end="2026-11-30", product_type=ANALYTICS_PRODUCT_TYPES
    )
    asked = [
        (qs(r)["product_type"][0], json.loads(qs(r)["template_ids"][0]))
        for r in requests_mock.request_history
    ]
    assert asked == [
        (PRODUCT_TYPE_MARKETING_MESSAGES, ids[:10]),
        (PRODUCT_TYPE_MARKETING_MESSAGES, ids[10:]),
        (PRODUCT_TYPE_CLOUD_API, ids[:10]),
        (PRODUCT_TYPE_CLOUD_API, ids[10:]),
    ]
    assert [product_type_of(series["product_type"]) for series in data] == [
        PRODUCT_TYPE_MARKETING_MESSAGES,
        PRODUCT_TYPE_MARKETING_MESSAGES,
        PRODUCT_TYPE_CLOUD_API,
        PRODUCT_TYPE_CLOUD_API,
    ]
    sent = sum(p.get("sent", 0) for series in data for p in series.get("data_points", []))
    assert sent == 14  # fallback sends are counted too
    assert conversions(data[0]["data_points"][0]) == {"website_purchases": 1.0}


def test_one_product_type_or_none(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.get(URL, json=answer)
    client = make_client()
    client.template_analytics(template_ids=[1], start=1, end=2, product_type=PRODUCT_TYPE_MARKETING_MESSAGES)
    assert qs(requests_mock.last_request)["product_type"] == [PRODUCT_TYPE_MARKETING_MESSAGES]
    client.template_analytics(template_ids=[1], start=1, end=2)
    assert "product_type" not in qs(requests_mock.last_request)  # Meta's default: Cloud API only
    client.template_analytics(template_ids=[1], start=1, end=2, product_type="MARKETING_MESSAGES_LITE_API")
    assert qs(requests_mock.last_request)["product_type"] == ["MARKETING_MESSAGES_LITE_API"]


def test_conversion_metrics_are_asked_for(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.get(URL, json=answer)
    metrics = ["sent", "website_purchases", "WEBSITE_PURCHASES_CONVERSION_VALUE"]
    make_client().template_analytics(template_ids=[1], start=1, end=2, metric_types=metrics)
    asked = json.loads(qs(requests_mock.last_request)["metric_types"][0])
    assert asked == ["SENT", "WEBSITE_PURCHASES", "WEBSITE_PURCHASES_CONVERSION_VALUE"]
    assert set(asked[1:]) <= set(CONVERSION_METRIC_TYPES)
    assert len(CONVERSION_METRIC_TYPES) == 25


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cloud_api", PRODUCT_TYPE_CLOUD_API),
        ("CLOUD_API", PRODUCT_TYPE_CLOUD_API),
        ("marketing_messages_api_for_whatsapp", PRODUCT_TYPE_MARKETING_MESSAGES),
        ("MARKETING_MESSAGES_LITE_API", PRODUCT_TYPE_MARKETING_MESSAGES),
        ("something_else", None),
        (None, None),
    ],
)
def test_product_types_in_answers(value: object, expected: str | None) -> None:
    assert product_type_of(value) == expected


def test_conversions_take_numbers_only() -> None:
    point = {"sent": 3, "website_purchases": 2, "app_purchases_conversion_value": 12.5, "website_lead": True}
    assert conversions(point) == {"website_purchases": 2.0, "app_purchases_conversion_value": 12.5}


def test_templates_are_read_with_their_ttl() -> None:
    assert "message_send_ttl_seconds" in DEFAULT_TEMPLATE_FIELDS
