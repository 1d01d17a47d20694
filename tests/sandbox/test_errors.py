"""Every error the sandbox answers, in Graph's envelope with the code Meta uses."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wamm.graph.errors import parse_error_envelope
from airflow_provider_wamm.sandbox import Sandbox, SandboxTemplate
from tests.sandbox.conftest import Graph, message


def _assert_envelope(
    response: Any, status: int, code: int, spec_validator: Any | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    if spec_validator is not None:
        assert spec_validator(body, "GraphAPIError") == []
    error = body["error"]
    assert error["code"] == code
    assert error["type"] in ("OAuthException", "GraphMethodException")
    assert error["message"]
    assert error["fbtrace_id"]
    return error


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_missing_or_wrong_token_is_401_code_190(
    sandbox: Sandbox, graph: Graph, spec_validator: Any, token: str | None
) -> None:
    error = _assert_envelope(graph.send(token=token), 401, 190, spec_validator)
    assert error["type"] == "OAuthException"
    assert sandbox.messages == []
    assert sandbox.errors()[190] == 1
    assert "sandbox-token" not in str(error)


def test_token_expiring_mid_campaign(sandbox: Sandbox, graph: Graph) -> None:
    assert graph.send().status_code == 200
    sandbox.configure(token_expired=True)

    error = _assert_envelope(graph.send(), 401, 190)
    assert error["error_subcode"] == 463
    assert "expired" in error["message"]
    _assert_envelope(graph.get("100000000000001"), 401, 190)
    assert len(sandbox.messages) == 1
    parsed = parse_error_envelope(graph.send().json(), http_status=401)
    assert parsed.code == 190 and parsed.action == "halt"

    sandbox.configure(token_expired=False)
    assert graph.send().status_code == 200


def test_unknown_phone_number_id(graph: Graph) -> None:
    error = _assert_envelope(graph.send(phone="999"), 400, 100)
    assert error["error_subcode"] == 33
    assert "999" in error["message"]


def _drop(path: str) -> dict[str, Any]:
    payload = message()
    *parents, last = path.split(".")
    node: Any = payload
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[last]
    return payload


def _set(path: str, value: Any) -> dict[str, Any]:
    payload = message()
    *parents, last = path.split(".")
    node: Any = payload
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return payload


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_drop("messaging_product"), "messaging_product"),
        (_set("messaging_product", "sms"), "messaging_product"),
        (_drop("recipient_type"), "recipient_type"),
        (_set("recipient_type", "group"), "recipient_type"),
        (_set("type", "text"), "template message"),
        (_drop("to"), "to"),
        (_set("to", "not-a-number"), "to"),
        (_set("to", "12"), "to"),
        (_drop("template"), "template"),
        (_drop("template.name"), "template.name"),
        (_set("template.name", "Spring Sale"), "template.name"),
        (_drop("template.language.code"), "template.language.code"),
        (_set("template.language", "en_US"), "template.language"),
        (_set("template.components", {"type": "body"}), "template.components"),
        (_set("template.components.0.type", "bodyy"), "template.components[0].type"),
        (
            _set("template.components.0.parameters.1", {"type": "text"}),
            "template.components[0].parameters[1].text",
        ),
        (
            _set("template.components.0.parameters.1", {"type": "emoji", "emoji": "x"}),
            "template.components[0].parameters[1].type",
        ),
        (
            _set("template.components.0.parameters.0", {"type": "currency", "currency": {"code": "EUR"}}),
            "template.components[0].parameters[0].currency.fallback_value",
        ),
        (_set("template.components.1.index", "first"), "template.components[1].index"),
        (_drop("template.components.1.sub_type"), "template.components[1].sub_type"),
        (
            _set("template.components.1.parameters.0", {"type": "payload", "payload": "x"}),
            "template.components[1].parameters[0].type",
        ),
        (_set("product_policy", "SOMETIMES"), "product_policy"),
        (_set("message_activity_sharing", "yes"), "message_activity_sharing"),
        (_set("unexpected_key", 1), "unexpected_key"),
    ],
)
def test_invalid_payload_is_400_code_100_naming_the_field(
    sandbox: Sandbox, graph: Graph, payload: dict[str, Any], field: str
) -> None:
    error = _assert_envelope(graph.send(payload), 400, 100)
    assert error["message"] == "(#100) Invalid parameter"
    assert field in error["error_data"]["details"]
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert sandbox.messages == []


def test_body_that_is_not_json(graph: Graph) -> None:
    response = graph.session.post(
        f"{graph.base}/100000000000001/marketing_messages",
        data=b"{not json",
        headers={**graph.headers("sandbox-token"), "Content-Type": "application/json"},
    )
    assert "JSON" in _assert_envelope(response, 400, 100)["error_data"]["details"]


def test_coupon_code_longer_than_20(graph: Graph) -> None:
    payload = message(template="coupon_offer")
    payload["template"]["components"][1]["parameters"][0]["coupon_code"] = "X" * 21
    assert "coupon_code" in _assert_envelope(graph.send(payload), 400, 100)["error_data"]["details"]


@pytest.mark.parametrize(("template", "language"), [("autumn_sale", "en_US"), ("spring_sale", "fr")])
def test_unknown_template_or_language_is_132001(graph: Graph, template: str, language: str) -> None:
    error = _assert_envelope(graph.send(template=template, language=language, components=[]), 400, 132001)
    assert template in error["error_data"]["details"] and language in error["error_data"]["details"]


def test_pending_template_is_132001(sandbox: Sandbox, graph: Graph) -> None:
    pending = SandboxTemplate(name="draft", body_text="Hi", status="PENDING")
    sandbox.configure(templates={"draft": pending})
    _assert_envelope(graph.send(template="draft", components=[]), 400, 132001)


@pytest.mark.parametrize(("status", "code"), [("PAUSED", 132015), ("DISABLED", 132016)])
def test_paused_or_disabled_template(sandbox: Sandbox, graph: Graph, status: str, code: int) -> None:
    sandbox.configure(templates={"t": SandboxTemplate(name="old_promo", body_text="Hi", status=status)})
    _assert_envelope(graph.send(template="old_promo", components=[]), 400, code)


def test_utility_template_is_refused_with_134100(sandbox: Sandbox, graph: Graph) -> None:
    error = _assert_envelope(graph.send(template="utility_notice"), 400, 134100)
    assert "UTILITY" in error["error_data"]["details"]
    assert sandbox.messages == []


BODY1 = [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]


@pytest.mark.parametrize(
    ("template", "components", "code", "hint"),
    [
        ("spring_sale", [BODY1[0], message()["template"]["components"][1]], 132000, "(1) does not match"),
        ("spring_sale", [message()["template"]["components"][0]], 132000, "button at index 0"),
        ("spring_sale", [], 132000, "body"),
        (
            "welcome_named",
            [{"type": "body", "parameters": [{"type": "text", "parameter_name": "name", "text": "A"}]}],
            132000,
            "first_name",
        ),
        ("welcome_named", BODY1, 132000, "first_name"),
        ("image_promo", BODY1, 132000, "header"),
        (
            "image_promo",
            [{"type": "header", "parameters": [{"type": "text", "text": "Hi"}]}, BODY1[0]],
            132012,
            "IMAGE",
        ),
        (
            "coupon_offer",
            [message(template="coupon_offer")["template"]["components"][0]],
            132000,
            "COPY_CODE",
        ),
        (
            "coupon_offer",
            [
                *message(template="coupon_offer")["template"]["components"],
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": 3,
                    "parameters": [{"type": "payload", "payload": "x"}],
                },
            ],
            132000,
            "index 3",
        ),
        (
            "spring_sale",
            [
                message()["template"]["components"][0],
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": 0,
                    "parameters": [{"type": "payload", "payload": "x"}],
                },
            ],
            132012,
            "URL",
        ),
        ("utility_notice", BODY1, 134100, "UTILITY"),
    ],
)
def test_parameters_must_match_the_template(
    graph: Graph, template: str, components: list[dict[str, Any]], code: int, hint: str
) -> None:
    error = _assert_envelope(graph.send(template=template, components=components), 400, code)
    assert hint in error["error_data"]["details"]


def test_newline_in_body_parameter_is_132018(graph: Graph) -> None:
    payload = message()
    payload["template"]["components"][0]["parameters"][0]["text"] = "Ana\nSmith"
    _assert_envelope(graph.send(payload), 400, 132018)


def test_forced_synchronous_error_for_one_recipient(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(forced_outcomes={"4915100000001": "error:131050"})

    error = _assert_envelope(graph.send(to="+4915100000001"), 400, 131050)
    assert graph.send(to="4915100000002").status_code == 200
    assert error["message"] == "(#131050) User has stopped marketing messages"
    assert [m.to for m in sandbox.messages] == ["4915100000002"]
