"""Payload builders and validation: Meta's limits, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wamm.graph import (
    ConfigurationError,
    InvalidRecipientError,
    PayloadError,
    body_component,
    build_marketing_message,
    components_from_spec,
    copy_code_button,
    currency_param,
    header_component,
    image_param,
    location_param,
    quick_reply_button,
    text_param,
    url_button,
)


def build(**kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"to": "4915123456789", "template_name": "spring_sale", "language": "en_US"}
    options.update(kwargs)
    return build_marketing_message(**options)


def body(*texts: str) -> dict[str, Any]:
    return {"type": "body", "parameters": [{"type": "text", "text": t} for t in texts]}


# --------------------------------------------------------------------------------------------
# Limits and errors naming the field
# --------------------------------------------------------------------------------------------

BAD_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("template name", {"template_name": "Spring Sale"}, "template.name", "lower-case"),
    ("template name too long", {"template_name": "a" * 513}, "template.name", "512"),
    ("language", {"language": "english"}, "template.language.code", "language code"),
    ("language policy", {"language_policy": "fallback"}, "template.language.policy", "deterministic"),
    ("product policy", {"product_policy": "strict"}, "product_policy", "CLOUD_API_FALLBACK"),
    ("activity sharing", {"message_activity_sharing": "yes"}, "message_activity_sharing", "true or false"),
    ("components not a list", {"components": "body"}, "template.components", "must be a list"),
    (
        "unknown component",
        {"components": [{"type": "footer", "parameters": []}]},
        "template.components[0].type",
        "must be one of",
    ),
    (
        "body param newline",
        {"components": [body("ok", "a\nb")]},
        "template.components[0].parameters[1].text",
        "new lines",
    ),
    (
        "body param five spaces",
        {"components": [body("a     b")]},
        "template.components[0].parameters[0].text",
        "4 consecutive spaces",
    ),
    (
        "empty text",
        {"components": [body("  ")]},
        "template.components[0].parameters[0].text",
        "must not be empty",
    ),
    (
        "text not a string",
        {"components": [{"type": "body", "parameters": [{"type": "text", "text": 5}]}]},
        "template.components[0].parameters[0].text",
        "must be a string",
    ),
    (
        "body text over 1024 with a button",
        {"components": [body("x" * 1025), url_button(0, "a")]},
        "template.components[0].parameters[0].text",
        "at most 1024",
    ),
    (
        "body only text over 32768",
        {"components": [body("x" * 32769)]},
        "template.components[0].parameters[0].text",
        "at most 32768",
    ),
    (
        "header text over 60",
        {"components": [{"type": "header", "parameters": [{"type": "text", "text": "h" * 61}]}]},
        "template.components[0].parameters[0].text",
        "at most 60",
    ),
    (
        "header with two parameters",
        {"components": [{"type": "header", "parameters": [text_param("a"), text_param("b")]}]},
        "template.components[0].parameters",
        "at most 1",
    ),
    (
        "currency in header",
        {"components": [{"type": "header", "parameters": [currency_param("1 €", "EUR", 1000)]}]},
        "template.components[0].parameters[0].type",
        "must be one of",
    ),
    (
        "location in body",
        {"components": [{"type": "body", "parameters": [location_param(1, 2)]}]},
        "template.components[0].parameters[0].type",
        "must be one of",
    ),
    (
        "currency code",
        {
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {
                            "type": "currency",
                            "currency": {"fallback_value": "1", "code": "eur", "amount_1000": 1},
                        }
                    ],
                }
            ]
        },
        "template.components[0].parameters[0].currency.code",
        "ISO 4217",
    ),
    (
        "currency amount float",
        {
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {
                            "type": "currency",
                            "currency": {"fallback_value": "1", "code": "EUR", "amount_1000": 1.5},
                        }
                    ],
                }
            ]
        },
        "template.components[0].parameters[0].currency.amount_1000",
        "integer",
    ),
    (
        "currency amount over int32",
        {
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {
                            "type": "currency",
                            "currency": {"fallback_value": "1", "code": "EUR", "amount_1000": 2**31},
                        }
                    ],
                }
            ]
        },
        "template.components[0].parameters[0].currency.amount_1000",
        "between",
    ),
    (
        "currency missing fallback",
        {
            "components": [
                {
                    "type": "body",
                    "parameters": [{"type": "currency", "currency": {"code": "EUR", "amount_1000": 1}}],
                }
            ]
        },
        "template.components[0].parameters[0].currency.fallback_value",
        "required",
    ),
    (
        "media with id and link",
        {
            "components": [
                {
                    "type": "header",
                    "parameters": [{"type": "image", "image": {"id": "1", "link": "https://x.y/a"}}],
                }
            ]
        },
        "template.components[0].parameters[0].image",
        "exactly one",
    ),
    (
        "media link not http",
        {
            "components": [
                {"type": "header", "parameters": [{"type": "video", "video": {"link": "ftp://x.y/a.mp4"}}]}
            ]
        },
        "template.components[0].parameters[0].video.link",
        "http(s) URL",
    ),
    (
        "filename on image",
        {
            "components": [
                {
                    "type": "header",
                    "parameters": [{"type": "image", "image": {"link": "https://x.y/a", "filename": "a"}}],
                }
            ]
        },
        "template.components[0].parameters[0].image.filename",
        "only documents",
    ),
    (
        "latitude out of range",
        {
            "components": [
                {
                    "type": "header",
                    "parameters": [{"type": "location", "location": {"latitude": 91, "longitude": 0}}],
                }
            ]
        },
        "template.components[0].parameters[0].location.latitude",
        "between -90 and 90",
    ),
    (
        "mixed named and positional",
        {
            "components": [
                {"type": "body", "parameters": [text_param("a", parameter_name="x"), text_param("b")]}
            ]
        },
        "template.components[0].parameters[1].parameter_name",
        "cannot be mixed",
    ),
    (
        "duplicate named parameter",
        {
            "components": [
                {
                    "type": "body",
                    "parameters": [text_param("a", parameter_name="x"), text_param("b", parameter_name="x")],
                }
            ]
        },
        "template.components[0].parameters[1].parameter_name",
        "duplicates",
    ),
    (
        "bad parameter name",
        {
            "components": [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": "a", "parameter_name": "First Name"}],
                }
            ]
        },
        "template.components[0].parameters[0].parameter_name",
        "lower-case",
    ),
    (
        "coupon too long",
        {
            "components": [
                {
                    "type": "button",
                    "sub_type": "copy_code",
                    "index": 0,
                    "parameters": [{"type": "coupon_code", "coupon_code": "C" * 21}],
                }
            ]
        },
        "template.components[0].parameters[0].coupon_code",
        "at most 20",
    ),
    (
        "two coupon buttons",
        {"components": [copy_code_button(0, "A"), copy_code_button(1, "B")]},
        "template.components[1]",
        "only one copy_code",
    ),
    (
        "url suffix with space",
        {
            "components": [
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": 0,
                    "parameters": [{"type": "text", "text": "a b"}],
                }
            ]
        },
        "template.components[0].parameters[0].text",
        "percent-encode",
    ),
    (
        "url suffix too long",
        {
            "components": [
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": 0,
                    "parameters": [{"type": "text", "text": "a" * 2001}],
                }
            ]
        },
        "template.components[0].parameters[0].text",
        "at most 2000",
    ),
    (
        "button index 10",
        {
            "components": [
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": 10,
                    "parameters": [{"type": "text", "text": "a"}],
                }
            ]
        },
        "template.components[0].index",
        "0-9",
    ),
    (
        "button index missing",
        {
            "components": [
                {"type": "button", "sub_type": "url", "parameters": [{"type": "text", "text": "a"}]}
            ]
        },
        "template.components[0].index",
        "required",
    ),
    (
        "duplicate button index",
        {"components": [url_button(0, "a"), quick_reply_button(0, "b")]},
        "template.components[1].index",
        "duplicates",
    ),
    (
        "button sub_type",
        {"components": [{"type": "button", "sub_type": "call", "index": 0, "parameters": []}]},
        "template.components[0].sub_type",
        "must be one of",
    ),
    (
        "button wrong parameter type",
        {
            "components": [
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": 0,
                    "parameters": [{"type": "text", "text": "a"}],
                }
            ]
        },
        "template.components[0].parameters[0].type",
        "'payload'",
    ),
    (
        "button two parameters",
        {
            "components": [
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": 0,
                    "parameters": [{"type": "text", "text": "a"}] * 2,
                }
            ]
        },
        "template.components[0].parameters",
        "exactly one",
    ),
    (
        "two bodies",
        {"components": [body("a"), body("b")]},
        "template.components[1].type",
        "second body",
    ),
    (
        "lto without expiry",
        {
            "components": [
                {
                    "type": "limited_time_offer",
                    "parameters": [{"type": "limited_time_offer", "limited_time_offer": {}}],
                }
            ]
        },
        "template.components[0].parameters[0].limited_time_offer.expiration_time_ms",
        "required",
    ),
    (
        "carousel card header text",
        {
            "components": [
                {"type": "carousel", "cards": [{"card_index": 0, "components": [header_component("t")]}]}
            ]
        },
        "template.components[0].cards[0].components[0].parameters[0].type",
        "must be one of",
    ),
    (
        "carousel duplicate card",
        {"components": [{"type": "carousel", "cards": [{"card_index": 0, "components": []}] * 2}]},
        "template.components[0].cards[1].card_index",
        "duplicates",
    ),
    (
        "carousel in a card",
        {
            "components": [
                {
                    "type": "carousel",
                    "cards": [{"card_index": 0, "components": [{"type": "carousel", "cards": []}]}],
                }
            ]
        },
        "template.components[0].cards[0].components[0].type",
        "must be one of",
    ),
    ("to with letters", {"to": "49151abc"}, "to", "5-15 digits"),
    ("to too long", {"to": "1234567890123456"}, "to", "5-15 digits"),
    ("bsuid with space", {"to": None, "recipient": "US 123"}, "recipient", "white space"),
    ("no recipient", {"to": None}, "to", "give a phone number"),
]


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_invalid_payloads_name_the_field(kwargs: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        build(**kwargs)
    err = info.value
    assert err.field == field
    assert reason in err.reason
    assert str(err) == f"{field}: {err.reason}"
    assert isinstance(err, ConfigurationError)
    if field in ("to", "recipient"):
        assert isinstance(err, InvalidRecipientError)


def test_recipient_errors_do_not_echo_the_number() -> None:
    with pytest.raises(InvalidRecipientError) as info:
        build(to="49151234567890123")
    assert "49151234567890123" not in str(info.value)


def test_builder_errors_name_the_argument() -> None:
    with pytest.raises(PayloadError) as info:
        currency_param("x", "EUR", "12")  # type: ignore[arg-type]
    assert info.value.field == "currency.amount_1000"
    with pytest.raises(PayloadError) as info:
        body_component({"first_name": "a\tb"})
    assert info.value.field == "body.parameters['first_name']"
    with pytest.raises(PayloadError) as info:
        components_from_spec(buttons=[{"type": "url", "text": "a"}])
    assert info.value.field == "buttons[0].index"
    with pytest.raises(PayloadError) as info:
        image_param()
    assert info.value.field == "image"
