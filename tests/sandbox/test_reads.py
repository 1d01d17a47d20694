"""The read endpoints: phone number, WABA, message templates (paging, filters), analytics, debug_token."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from airflow_provider_wamm.sandbox import Sandbox, SandboxConfig, SandboxTemplate
from tests.sandbox.conftest import PHONE, WABA, Graph, number


def test_phone_number_default_fields(graph: Graph) -> None:
    body = graph.get(PHONE).json()
    assert body["id"] == PHONE
    assert body["display_phone_number"] == "+1 555-010-0001"
    assert body["verified_name"] == "WAMM Sandbox Shop"
    assert body["quality_rating"] == "GREEN"
    assert body["throughput"] == {"level": "STANDARD"}


def test_phone_number_requested_fields(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(quality_rating="YELLOW")
    body = graph.get(
        PHONE, {"fields": "quality_rating,health_status{can_send_message},messaging_limit_tier"}
    ).json()
    assert set(body) == {"id", "quality_rating", "health_status", "messaging_limit_tier"}
    assert body["quality_rating"] == "YELLOW"
    assert body["health_status"]["can_send_message"] == "AVAILABLE"


def test_unknown_field_is_code_100(graph: Graph) -> None:
    response = graph.get(PHONE, {"fields": "id,colour"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert "colour" in response.json()["error"]["message"]


def test_waba(sandbox: Sandbox, graph: Graph) -> None:
    assert graph.get(WABA).json() == {
        "id": WABA,
        "name": "WAMM Sandbox",
        "timezone_id": "1",
        "message_template_namespace": "sandbox_namespace",
    }
    sandbox.configure(onboarding_status="PENDING_VALID_PAYMENT_METHOD")
    body = graph.get(WABA, {"fields": "marketing_messages_onboarding_status,name"}).json()
    assert body == {
        "id": WABA,
        "name": "WAMM Sandbox",
        "marketing_messages_onboarding_status": "PENDING_VALID_PAYMENT_METHOD",
    }


def test_unknown_node_and_wrong_token(graph: Graph) -> None:
    response = graph.get("12345")
    assert (response.status_code, response.json()["error"]["code"]) == (400, 100)
    response = graph.get(WABA, token="nope")
    assert (response.status_code, response.json()["error"]["code"]) == (401, 190)


def test_access_token_query_parameter_is_accepted(graph: Graph) -> None:
    assert graph.get(PHONE, {"access_token": "sandbox-token"}, token=None).status_code == 200


def test_template_listing_pages_with_metas_cursors(sandbox: Sandbox, graph: Graph) -> None:
    url: str | None = f"{graph.base}/{WABA}/message_templates?limit=2"
    pages = []
    while url:
        response = graph.session.get(url, headers=graph.headers("sandbox-token"))
        assert response.status_code == 200
        body = response.json()
        pages.append(body)
        assert set(body["paging"]["cursors"]) == {"before", "after"}
        url = body["paging"].get("next")
    count = len(sandbox.config.templates)
    assert [len(p["data"]) for p in pages] == [2] * (count // 2) + [1] * (count % 2)
    names = [t["name"] for p in pages for t in p["data"]]
    assert sorted(names) == sorted(t.name for t in sandbox.config.templates.values())
    assert "previous" in pages[1]["paging"] and "previous" not in pages[0]["paging"]

    after = pages[0]["paging"]["cursors"]["after"]
    again = graph.get(f"{WABA}/message_templates", {"limit": 2, "after": after}).json()
    assert again["data"] == pages[1]["data"]


def test_bad_cursor(graph: Graph) -> None:
    response = graph.get(f"{WABA}/message_templates", {"after": "!!!"})
    assert response.json()["error"]["code"] == 100


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "UTILITY"}, {"utility_notice"}),
        ({"category": "MARKETING", "name": "promo"}, {"image_promo", "paced_promo"}),
        ({"name": "spring_sale", "language": "en_US"}, {"spring_sale"}),
        ({"language": "de"}, set()),
        ({"status": "APPROVED,PAUSED", "name": "welcome"}, {"welcome_named"}),
        ({"status": "REJECTED"}, set()),
    ],
)
def test_template_filters(graph: Graph, params: dict[str, str], expected: set[str]) -> None:
    body = graph.get(f"{WABA}/message_templates", params).json()
    assert {t["name"] for t in body["data"]} == expected


def test_template_components_in_metas_format(graph: Graph) -> None:
    templates = {t["name"]: t for t in graph.get(f"{WABA}/message_templates", {"limit": 100}).json()["data"]}

    spring = templates["spring_sale"]
    assert (
        spring["status"] == "APPROVED" and spring["category"] == "MARKETING" and spring["language"] == "en_US"
    )
    assert spring["parameter_format"] == "POSITIONAL"
    body = next(c for c in spring["components"] if c["type"] == "BODY")
    assert "{{1}}" in body["text"] and "{{2}}" in body["text"]
    assert body["example"]["body_text"] == [["Ana", "20%"]]
    buttons = next(c for c in spring["components"] if c["type"] == "BUTTONS")["buttons"]
    assert buttons[0]["type"] == "URL" and buttons[0]["url"].endswith("{{1}}")

    named = templates["welcome_named"]
    assert named["parameter_format"] == "NAMED"
    named_body = next(c for c in named["components"] if c["type"] == "BODY")
    assert named_body["example"]["body_text_named_params"] == [{"param_name": "first_name", "example": "Ana"}]

    header = next(c for c in templates["image_promo"]["components"] if c["type"] == "HEADER")
    assert header["format"] == "IMAGE" and header["example"]["header_handle"]
    coupon = next(c for c in templates["coupon_offer"]["components"] if c["type"] == "BUTTONS")
    assert coupon["buttons"][0]["type"] == "COPY_CODE"


def test_template_fields_are_honoured(graph: Graph) -> None:
    body = graph.get(f"{WABA}/message_templates", {"fields": "name,status", "limit": 1}).json()
    assert set(body["data"][0]) == {"name", "status", "id"}


def test_template_analytics_from_recorded_outcomes(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(
        click_rate=1.0,
        forced_outcomes={
            number(0): "read",
            number(1): "delivered",
            number(2): "failed:131026",
            number(3): "sent",
        },
    )
    for i in range(4):
        assert graph.send(to=number(i)).status_code == 200
    template_id = sandbox.config.templates["spring_sale"].id
    today = dt.datetime.now(dt.UTC).date()

    params = {
        "start": today.isoformat(),
        "end": (today + dt.timedelta(days=1)).isoformat(),
        "granularity": "DAILY",
        "template_ids": f"[{template_id}]",
        "product_type": "MARKETING_MESSAGES_LITE_API",
    }
    body = graph.get(f"{WABA}/template_analytics", params).json()

    [series] = body["data"]
    assert series["granularity"] == "DAILY"
    assert series["product_type"] == "marketing_messages_lite_api"
    [point] = series["data_points"]
    assert point["template_id"] == template_id
    assert (point["sent"], point["delivered"], point["read"]) == (3, 2, 1)
    assert point["clicked"] == [{"type": "url_button", "button_content": "Shop now", "count": 1}]
    assert point["end"] - point["start"] == 86400
    assert "cursors" in body["paging"]

    cloud = graph.get(f"{WABA}/template_analytics", {**params, "product_type": "CLOUD_API"}).json()
    assert cloud["data"][0]["data_points"][0]["sent"] == 0  # nothing was routed to Cloud API


def test_template_analytics_requires_template_ids(graph: Graph) -> None:
    response = graph.get(f"{WABA}/template_analytics", {"start": int(time.time()), "end": int(time.time())})
    assert response.json()["error"]["code"] == 100
    assert "template_ids" in response.json()["error"]["error_data"]["details"]


def test_debug_token(sandbox: Sandbox, graph: Graph) -> None:
    app_token = "300000000000001|sandbox-app-secret"
    data = graph.get(
        "debug_token", {"input_token": "sandbox-token", "access_token": app_token}, token=None
    ).json()["data"]
    assert data["is_valid"] is True
    assert data["expires_at"] == 0
    assert data["app_id"] == "300000000000001"
    assert "whatsapp_business_messaging" in data["scopes"]

    invalid = graph.get("debug_token", {"input_token": "other"}).json()["data"]
    assert invalid["is_valid"] is False

    sandbox.configure(token_expired=True)
    expired = graph.get(
        "debug_token", {"input_token": "sandbox-token", "access_token": app_token}, token=None
    )
    assert expired.json()["data"]["is_valid"] is False
    assert 0 < expired.json()["data"]["expires_at"] < time.time()

    wrong_app = graph.get("debug_token", {"input_token": "sandbox-token", "access_token": "1|x"}, token=None)
    assert (wrong_app.status_code, wrong_app.json()["error"]["code"]) == (401, 190)


def test_debug_token_reports_configured_expiry() -> None:
    config = SandboxConfig(token_expires_at=1900000000, token_scopes=("whatsapp_business_messaging",))
    with Sandbox(config) as sb:
        data = Graph(sb).get("debug_token", {"input_token": "sandbox-token"}).json()["data"]
    assert data["expires_at"] == 1900000000
    assert data["scopes"] == ["whatsapp_business_messaging"]


def test_templates_from_metas_format_round_trip() -> None:
    original = SandboxConfig().templates["spring_sale"]
    copy = SandboxTemplate.from_meta(original.to_meta())
    assert copy.to_meta() == original.to_meta()
    assert (copy.body_param_count, copy.parameter_format) == (2, "POSITIONAL")


def test_unserved_path_answers_a_graph_error(graph: Graph) -> None:
    response = graph.session.post(
        f"{graph.base}/{PHONE}/messages", json={}, headers=graph.headers("sandbox-token")
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert "/messages" in response.json()["error"]["message"]


def test_debug_token_with_app_token_and_expired_bearer(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(token_expired=True)
    params = {"input_token": "sandbox-token", "access_token": "300000000000001|sandbox-app-secret"}
    response = graph.get("debug_token", params)  # the expired token also rides in the header
    assert response.status_code == 200
    assert response.json()["data"]["is_valid"] is False
