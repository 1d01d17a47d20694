"""GraphClient's read endpoints against a mocked Graph API (requests-mock): fields, paging, analytics."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_provider_wamm.graph import (
    GraphClient,
    build_marketing_message,
)
from tests.graph.conftest import GRAPH, PHONE_NUMBER_ID, TOKEN, WABA_ID

MakeClient = Callable[..., GraphClient]


def qs(request: Any) -> dict[str, list[str]]:
    """The query string of a recorded request (requests-mock's own ``.qs`` lower-cases values)."""
    return parse_qs(urlsplit(request.url).query)


PAYLOAD = build_marketing_message(
    to="4915123456789",
    template_name="spring_sale",
    language="en_US",
    components=[{"type": "body", "parameters": [{"type": "text", "text": "Anna"}]}],
)


# --------------------------------------------------------------------------------------------
# Read endpoints
# --------------------------------------------------------------------------------------------


def test_get_phone_number_and_waba_fields(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.get(f"{GRAPH}/{PHONE_NUMBER_ID}", json={"id": PHONE_NUMBER_ID, "quality_rating": "GREEN"})
    requests_mock.get(
        f"{GRAPH}/{WABA_ID}", json={"id": WABA_ID, "marketing_messages_onboarding_status": "ONBOARDED"}
    )
    client = make_client()

    assert client.get_phone_number()["quality_rating"] == "GREEN"
    assert "quality_rating" in qs(requests_mock.last_request)["fields"][0].split(",")
    assert client.get_waba()["marketing_messages_onboarding_status"] == "ONBOARDED"
    assert "marketing_messages_onboarding_status" in qs(requests_mock.last_request)["fields"][0].split(",")
    client.get_phone_number(fields=["id", "throughput"])
    assert qs(requests_mock.last_request)["fields"] == ["id,throughput"]


def test_list_templates_follows_cursor_paging(make_client: MakeClient, requests_mock: Any) -> None:
    url = f"{GRAPH}/{WABA_ID}/message_templates"
    page1 = {
        "data": [{"name": "a", "language": "en"}, {"name": "b", "language": "en"}],
        "paging": {"cursors": {"before": "B0", "after": "CURSOR1"}, "next": f"{url}?after=CURSOR1"},
    }
    page2 = {
        "data": [{"name": "c", "language": "de"}],
        "paging": {"cursors": {"before": "CURSOR1", "after": "CURSOR2"}, "next": f"{url}?after=CURSOR2"},
    }
    page3 = {
        "data": [{"name": "d", "language": "en"}],
        "paging": {"cursors": {"before": "CURSOR2", "after": "X"}},
    }
    requests_mock.get(url, [{"json": page1}, {"json": page2}, {"json": page3}])

    names = [
        t["name"] for t in make_client().list_templates(status="APPROVED", category=["MARKETING"], limit=2)
    ]

    assert names == ["a", "b", "c", "d"]
    history = requests_mock.request_history
    assert len(history) == 3
    assert "after" not in qs(history[0])
    assert qs(history[1])["after"] == ["CURSOR1"]
    assert qs(history[2])["after"] == ["CURSOR2"]
    for request in history:
        assert qs(request)["status"] == ["APPROVED"]
        assert qs(request)["category"] == ["MARKETING"]
        assert qs(request)["limit"] == ["2"]
        assert "components" in qs(request)["fields"][0]
        assert "access_token" not in qs(request)  # the token travels in the header only


def test_list_templates_stops_on_repeated_cursor(make_client: MakeClient, requests_mock: Any) -> None:
    url = f"{GRAPH}/{WABA_ID}/message_templates"
    page = {"data": [{"name": "a"}], "paging": {"cursors": {"after": "SAME"}, "next": f"{url}?after=SAME"}}
    requests_mock.get(url, json=page)
    assert len(list(make_client().list_templates())) == 2
    assert requests_mock.call_count == 2


def test_get_template_matches_name_and_language_exactly(make_client: MakeClient, requests_mock: Any) -> None:
    url = f"{GRAPH}/{WABA_ID}/message_templates"
    data = [
        {"name": "spring_sale_v2", "language": "en_US"},
        {"name": "spring_sale", "language": "en_US", "status": "APPROVED"},
    ]
    requests_mock.get(url, json={"data": data})
    client = make_client()
    assert client.get_template("spring_sale", "en_US") == data[1]
    assert qs(requests_mock.last_request)["name"] == ["spring_sale"]
    assert qs(requests_mock.last_request)["language"] == ["en_US"]
    requests_mock.get(url, json={"data": []})
    assert client.get_template("spring_sale", "de") is None


def test_template_analytics_chunks_ids(make_client: MakeClient, requests_mock: Any) -> None:
    url = f"{GRAPH}/{WABA_ID}/template_analytics"
    requests_mock.get(url, json={"data": [{"granularity": "DAILY", "data_points": [{"sent": 3}]}]})
    ids = [str(1000 + i) for i in range(12)]

    data = make_client().template_analytics(
        template_ids=ids, start=1700000000, end="2026-01-31", metric_types=["sent", "DELIVERED"]
    )

    assert len(data) == 2
    first, second = requests_mock.request_history
    assert json.loads(qs(first)["template_ids"][0]) == ids[:10]
    assert json.loads(qs(second)["template_ids"][0]) == ids[10:]
    assert qs(first)["granularity"] == ["DAILY"]
    assert qs(first)["start"] == ["1700000000"]
    assert qs(first)["end"] == ["2026-01-31"]
    assert json.loads(qs(first)["metric_types"][0]) == ["SENT", "DELIVERED"]


def test_debug_token_uses_app_token(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.get(f"{GRAPH}/debug_token", json={"data": {"is_valid": True, "expires_at": 0}})
    data = make_client().debug_token(app_id="123", app_secret="APPSECRETxyz")
    assert data == {"is_valid": True, "expires_at": 0}
    request = requests_mock.last_request
    assert request.headers["Authorization"] == "Bearer 123|APPSECRETxyz"
    assert qs(request)["input_token"] == [TOKEN]
