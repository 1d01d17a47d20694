"""Accepted sends: the answer's shape, what gets recorded, held and paused templates."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wamm.sandbox import Sandbox, SandboxConfig, SandboxTemplate
from tests.sandbox.conftest import Graph, message, number


def test_send_is_answered_and_recorded(sandbox: Sandbox, graph: Graph, spec_validator: Any) -> None:
    response = graph.send(to="+49 151 2345-6789")

    assert response.status_code == 200
    body = response.json()
    assert spec_validator(body, "MarketingMessageResponsePayload") == []
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+49 151 2345-6789", "wa_id": "4915123456789"}]
    [msg_answer] = body["messages"]
    assert msg_answer["id"].startswith("wamid.")
    assert msg_answer["message_status"] == "accepted"

    [recorded] = sandbox.messages
    assert recorded.wamid == msg_answer["id"]
    assert recorded.to == "4915123456789"
    assert recorded.input == "+49 151 2345-6789"
    assert (recorded.template, recorded.language) == ("spring_sale", "en_US")
    assert recorded.template_id == sandbox.config.templates["spring_sale"].id
    assert recorded.payload["template"]["components"][0]["parameters"][0]["text"] == "Ana"
    assert recorded.outcome == sandbox.expected_outcome("4915123456789")
    assert recorded.pricing_category == "marketing_lite"
    assert recorded.timestamp > 1.6e9 and recorded.monotonic > 0
    assert recorded.answer == "ok"


def test_wamids_are_unique_and_sends_are_counted_per_recipient(sandbox: Sandbox, graph: Graph) -> None:
    ids = set()
    for i in range(5):
        ids.add(graph.send(to=number(i)).json()["messages"][0]["id"])
    ids.add(graph.send(to=number(0)).json()["messages"][0]["id"])

    assert len(ids) == 6
    counts = sandbox.sends_per_recipient()
    assert counts[number(0)] == 2
    assert counts[number(1)] == 1
    assert sum(counts.values()) == 6


@pytest.mark.parametrize("template", ["spring_sale", "welcome_named", "coupon_offer", "image_promo"])
def test_each_default_marketing_template_accepts_its_parameters(graph: Graph, template: str) -> None:
    response = graph.send(template=template)
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["message_status"] == "accepted"


def test_send_by_business_scoped_user_id(sandbox: Sandbox, graph: Graph) -> None:
    response = graph.send(message(to=None, recipient="US.13491208655302741918"))

    assert response.status_code == 200
    assert response.json()["contacts"] == [
        {"input": "US.13491208655302741918", "user_id": "US.13491208655302741918"}
    ]
    assert sandbox.messages[0].to == "US.13491208655302741918"


def test_optional_fields_are_accepted(graph: Graph) -> None:
    payload = message(product_policy="STRICT", message_activity_sharing=False)
    payload["template"]["language"]["policy"] = "deterministic"
    assert graph.send(payload).status_code == 200


def test_paced_template_is_held_for_quality_assessment(sandbox: Sandbox, graph: Graph) -> None:
    response = graph.send(template="paced_promo")

    assert response.status_code == 200
    assert response.json()["messages"][0]["message_status"] == "held_for_quality_assessment"
    assert sandbox.messages[0].message_status == "held_for_quality_assessment"


def test_template_configured_as_paused_answers_paused(sandbox: Sandbox, graph: Graph) -> None:
    paused = SandboxTemplate(name="slow_lane", body_text="Hi {{1}}", message_status="paused")
    sandbox.configure(templates={**sandbox.config.templates, "slow_lane": paused})

    response = graph.send(
        template="slow_lane", components=[{"type": "body", "parameters": [{"type": "text", "text": "A"}]}]
    )

    assert response.json()["messages"][0]["message_status"] == "paused"


def test_forced_status_for_one_recipient(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(forced_outcomes={number(1): "held"})

    assert graph.send(to=number(1)).json()["messages"][0]["message_status"] == "held_for_quality_assessment"
    assert graph.send(to=number(2)).json()["messages"][0]["message_status"] == "accepted"


def test_template_in_second_language(sandbox: Sandbox, graph: Graph) -> None:
    german = SandboxTemplate(name="spring_sale", language="de", body_text="Hallo {{1}}, {{2}} Rabatt!")
    sandbox.configure(templates={**sandbox.config.templates, "spring_sale:de": german})
    body = [
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "20%"}]}
    ]

    assert graph.send(template="spring_sale", language="de", components=body).status_code == 200
    assert sandbox.messages[0].template_id == german.id != sandbox.config.templates["spring_sale"].id


def test_not_onboarded_waba_routes_to_cloud_api(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.reset(SandboxConfig(onboarding_status="ELIGIBLE"))
    graph.send()
    assert sandbox.messages[0].pricing_category == "marketing"


def test_template_outcomes_give_one_template_its_own_read_and_click_rates(
    sandbox: Sandbox, graph: Graph
) -> None:
    sandbox.configure(
        pair_limit=False,
        outcomes={"delivered": 1.0},
        click_rate=0.0,
        template_outcomes={"coupon_offer": {"read": 1.0, "click_rate": 1.0}},
    )
    for i in range(20):
        assert graph.send(to=number(i), template="spring_sale").status_code == 200
        assert graph.send(to=number(100 + i), template="coupon_offer").status_code == 200
    by_template: dict[str, set[tuple[str, bool]]] = {}
    for m in sandbox.messages:
        by_template.setdefault(m.template, set()).add((m.outcome, m.clicked))
    assert by_template == {"spring_sale": {("delivered", False)}, "coupon_offer": {("read", True)}}


@pytest.mark.parametrize(
    "value", [{"x": {"read": -1.0}}, {"x": {"read": 0.0}}, {"x": {"read": 1.0, "click_rate": 2.0}}]
)
def test_template_outcomes_are_checked(value: dict[str, dict[str, float]]) -> None:
    with pytest.raises(ValueError, match="template_outcomes"):
        SandboxConfig(template_outcomes=value)
