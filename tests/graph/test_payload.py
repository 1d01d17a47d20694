"""Payload builders and validation: shapes, Meta's limits, and errors that name the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from airflow_provider_wamm.graph import (
    PayloadError,
    body_component,
    build_marketing_message,
    button_from_spec,
    carousel_card,
    carousel_component,
    catalog_button,
    components_from_spec,
    copy_code_button,
    currency_param,
    date_time_param,
    document_param,
    flow_button,
    header_component,
    image_param,
    limited_time_offer_component,
    location_param,
    parameter_from_spec,
    quick_reply_button,
    text_param,
    url_button,
    validate_marketing_message,
    video_param,
)


def build(**kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"to": "4915123456789", "template_name": "spring_sale", "language": "en_US"}
    options.update(kwargs)
    return build_marketing_message(**options)


def body(*texts: str) -> dict[str, Any]:
    return {"type": "body", "parameters": [{"type": "text", "text": t} for t in texts]}


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


def test_minimal_message() -> None:
    assert build() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "4915123456789",
        "type": "template",
        "template": {"name": "spring_sale", "language": {"code": "en_US"}},
    }


def test_all_top_level_options() -> None:
    payload = build(
        to="+4915123456789",
        product_policy="STRICT",
        message_activity_sharing=False,
        language_policy="deterministic",
    )
    assert payload["to"] == "4915123456789"
    assert payload["product_policy"] == "STRICT"
    assert payload["message_activity_sharing"] is False
    assert payload["template"]["language"] == {"code": "en_US", "policy": "deterministic"}
    validate_marketing_message(payload)


def test_bsuid_recipient_with_and_without_to() -> None:
    only = build(to=None, recipient="US.13491208655302741918")
    assert "to" not in only
    assert only["recipient"] == "US.13491208655302741918"
    both = build(recipient="US.13491208655302741918")
    assert both["to"] == "4915123456789"
    validate_marketing_message(only)
    validate_marketing_message(both)


def test_parameter_builders() -> None:
    assert text_param("Anna") == {"type": "text", "text": "Anna"}
    assert text_param("Anna", parameter_name="first_name") == {
        "type": "text",
        "text": "Anna",
        "parameter_name": "first_name",
    }
    assert currency_param("€12.50", "EUR", 12500) == {
        "type": "currency",
        "currency": {"fallback_value": "€12.50", "code": "EUR", "amount_1000": 12500},
    }
    assert date_time_param("May 1") == {"type": "date_time", "date_time": {"fallback_value": "May 1"}}
    assert image_param(link="https://example.com/a.png") == {
        "type": "image",
        "image": {"link": "https://example.com/a.png"},
    }
    assert video_param(id="1234") == {"type": "video", "video": {"id": "1234"}}
    assert document_param(link="https://example.com/a.pdf", filename="offer.pdf") == {
        "type": "document",
        "document": {"link": "https://example.com/a.pdf", "filename": "offer.pdf"},
    }
    assert location_param("52.52", 13.405, name="Shop", address="Main st 1") == {
        "type": "location",
        "location": {"latitude": "52.52", "longitude": 13.405, "name": "Shop", "address": "Main st 1"},
    }


def test_component_builders() -> None:
    assert header_component("Summer") == {
        "type": "header",
        "parameters": [{"type": "text", "text": "Summer"}],
    }
    assert body_component(["Anna", 20]) == body("Anna", "20")
    assert body_component({"first_name": "Anna"}) == {
        "type": "body",
        "parameters": [{"type": "text", "text": "Anna", "parameter_name": "first_name"}],
    }
    assert url_button(0, "abc") == {
        "type": "button",
        "sub_type": "url",
        "index": "0",
        "parameters": [{"type": "text", "text": "abc"}],
    }
    assert quick_reply_button("1", "stop")["parameters"] == [{"type": "payload", "payload": "stop"}]
    assert copy_code_button(2, "SAVE20")["parameters"] == [{"type": "coupon_code", "coupon_code": "SAVE20"}]
    assert flow_button(0, flow_token="t", flow_action_data={"a": 1})["parameters"] == [
        {"type": "action", "action": {"flow_token": "t", "flow_action_data": {"a": 1}}}
    ]
    assert catalog_button(0, "sku-1")["parameters"] == [
        {"type": "action", "action": {"thumbnail_product_retailer_id": "sku-1"}}
    ]
    assert limited_time_offer_component(1767225600000) == {
        "type": "limited_time_offer",
        "parameters": [
            {"type": "limited_time_offer", "limited_time_offer": {"expiration_time_ms": 1767225600000}}
        ],
    }
    card = carousel_card(
        0, [header_component(image_param(link="https://example.com/1.jpg")), body_component(["x"])]
    )
    assert carousel_component([card]) == {"type": "carousel", "cards": [card]}


def test_components_from_flat_spec() -> None:
    components = components_from_spec(
        header={"type": "image", "link": "https://example.com/a.jpg"},
        body=[
            "Anna",
            {"type": "currency", "fallback_value": "12.50 €", "code": "EUR", "amount_1000": "12500"},
        ],
        buttons=[
            {"type": "url", "index": 0, "text": "abc"},
            {"type": "copy_code", "index": 1, "coupon_code": 42},
        ],
        limited_time_offer_ms="1767225600000",
    )
    assert components == [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/a.jpg"}}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Anna"},
                {
                    "type": "currency",
                    "currency": {"fallback_value": "12.50 €", "code": "EUR", "amount_1000": 12500},
                },
            ],
        },
        {
            "type": "limited_time_offer",
            "parameters": [
                {"type": "limited_time_offer", "limited_time_offer": {"expiration_time_ms": 1767225600000}}
            ],
        },
        url_button(0, "abc"),
        copy_code_button(1, "42"),
    ]
    validate_marketing_message(build(components=components))


def test_flat_spec_named_and_typed_parameters() -> None:
    assert parameter_from_spec(
        {"type": "date_time", "fallback_value": "1 May", "parameter_name": "when"}
    ) == {
        "type": "date_time",
        "date_time": {"fallback_value": "1 May"},
        "parameter_name": "when",
    }
    assert parameter_from_spec({"type": "location", "latitude": 1, "longitude": 2})["location"] == {
        "latitude": 1,
        "longitude": 2,
    }
    assert button_from_spec({"type": "flow", "index": 0, "flow_token": "tok"})["parameters"][0] == {
        "type": "action",
        "action": {"flow_token": "tok"},
    }


def test_builders_do_not_alias_inputs() -> None:
    components = [
        body("Anna"),
        {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "a"}]},
    ]
    before = copy.deepcopy(components)
    payload = build(components=components)
    payload["template"]["components"][0]["parameters"][0]["text"] = "changed"
    assert components == before
    assert payload["template"]["components"][1]["index"] == "0"  # normalised in the copy only


def test_uppercase_catalog_and_component_types_are_accepted() -> None:
    payload = build(
        components=[
            {"type": "BODY", "parameters": []},
            {
                "type": "button",
                "sub_type": "CATALOG",
                "index": 0,
                "parameters": [{"type": "action", "action": {}}],
            },
        ]
    )
    assert payload["template"]["components"][1]["sub_type"] == "catalog"


# --------------------------------------------------------------------------------------------
# validate_marketing_message on hand-written payloads
# --------------------------------------------------------------------------------------------


def test_validate_accepts_built_payloads_and_json_round_trips() -> None:
    payload = build(
        components=[
            header_component(document_param(id="998877", filename="menu.pdf")),
            body_component([currency_param("€5", "EUR", 5000), date_time_param("today")]),
            url_button(0, "p%20q"),
            quick_reply_button(1, "unsubscribe"),
        ],
        product_policy="CLOUD_API_FALLBACK",
    )
    validate_marketing_message(payload)
    validate_marketing_message(json.loads(json.dumps(payload)))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"messaging_product": "sms"}, "messaging_product"),
        ({"recipient_type": "group"}, "recipient_type"),
        ({"type": "text"}, "type"),
        ({"product_polcy": "STRICT"}, "product_polcy"),
        ({"template": None}, "template"),
        ({"template": {"name": "x"}}, "template.language"),
        ({"bid_spec": {"per_message_bid_multiplier": -1}}, "bid_spec.per_message_bid_multiplier"),
        ({"to": 4915123456789}, "to"),
    ],
)
def test_validate_rejects_hand_written_mistakes(change: dict[str, Any], field: str) -> None:
    payload = {**build(), **change}
    with pytest.raises(PayloadError) as info:
        validate_marketing_message(payload)
    assert info.value.field == field


def test_validate_accepts_documented_extras() -> None:
    payload = {**build(), "bid_spec": {"per_message_bid_multiplier": 1.5}, "biz_opaque_callback_data": "c-1"}
    validate_marketing_message(payload)


# --------------------------------------------------------------------------------------------
# Speed: it runs once per recipient
# --------------------------------------------------------------------------------------------
