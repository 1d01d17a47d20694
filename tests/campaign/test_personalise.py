"""Personalisation: every component kind, typed parameters, raw components and per-row errors."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wamm.campaign.personalise import PersonalisationError, Personaliser, mask_row_numbers
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.payload import build_marketing_message

ROW = {
    "first_name": "Ana",
    "discount": 20,
    "price_text": "€12.50",
    "price_milli": 12500,
    "date": "June 1st",
    "city": "Lisbon",
    "image_url": "https://cdn.example.com/a.png",
    "slug": "spring-ana",
    "id": 42,
    "coupon": "ANA20",
    "lat": 38.7,
    "lon": -9.1,
    "token": "flow-42",
}


def test_positional_body_with_formats_constants_and_escapes() -> None:
    p = Personaliser(body_parameters=["{first_name}", "{discount}% off", "{{literal}}", 7, "{price_milli:,}"])
    assert p.fields == {"first_name", "discount", "price_milli"}
    (body,) = p.render(ROW)
    assert body["type"] == "body"
    assert [param["text"] for param in body["parameters"]] == ["Ana", "20% off", "{literal}", "7", "12,500"]
    assert all("parameter_name" not in param for param in body["parameters"])


def test_named_body_parameters() -> None:
    (body,) = Personaliser(body_parameters={"first_name": "{first_name}", "city": "in {city}"}).render(ROW)
    assert body["parameters"] == [
        {"type": "text", "text": "Ana", "parameter_name": "first_name"},
        {"type": "text", "text": "in Lisbon", "parameter_name": "city"},
    ]


def test_typed_currency_and_date_time_parameters_keep_numbers() -> None:
    p = Personaliser(
        body_parameters=[
            {
                "type": "currency",
                "fallback_value": "{price_text}",
                "code": "EUR",
                "amount_1000": "{price_milli}",
            },
            {"type": "date_time", "fallback_value": "{date}"},
        ]
    )
    (body,) = p.render(ROW)
    currency, date_time = body["parameters"]
    assert currency == {
        "type": "currency",
        "currency": {"fallback_value": "€12.50", "code": "EUR", "amount_1000": 12500},
    }
    assert date_time == {"type": "date_time", "date_time": {"fallback_value": "June 1st"}}
    # A numeric string from a CSV or SQL text column is accepted for amount_1000 too.
    (body,) = p.render({**ROW, "price_milli": "9990"})
    assert body["parameters"][0]["currency"]["amount_1000"] == 9990


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"type": "text", "text": "Hello {city}"}, {"type": "text", "text": "Hello Lisbon"}),
        ("{city}", {"type": "text", "text": "Lisbon"}),
        (
            {"type": "image", "link": "{image_url}"},
            {"type": "image", "image": {"link": "https://cdn.example.com/a.png"}},
        ),
        ({"type": "video", "id": "{id}"}, {"type": "video", "video": {"id": "42"}}),
        (
            {"type": "document", "link": "https://x.example/{slug}.pdf", "filename": "{first_name}.pdf"},
            {
                "type": "document",
                "document": {"link": "https://x.example/spring-ana.pdf", "filename": "Ana.pdf"},
            },
        ),
        (
            {
                "type": "location",
                "latitude": "{lat}",
                "longitude": "{lon}",
                "name": "Shop {city}",
                "address": "Main st",
            },
            {
                "type": "location",
                "location": {
                    "latitude": 38.7,
                    "longitude": -9.1,
                    "name": "Shop Lisbon",
                    "address": "Main st",
                },
            },
        ),
    ],
)
def test_header_kinds(header: Any, expected: dict[str, Any]) -> None:
    (component,) = Personaliser(header=header).render(ROW)
    assert component == {"type": "header", "parameters": [expected]}


def test_buttons_of_every_kind() -> None:
    p = Personaliser(
        buttons=[
            {"type": "url", "index": 0, "text": "{slug}"},
            {"type": "quick_reply", "index": 1, "payload": "unsub-{id}"},
            {"type": "copy_code", "index": 2, "coupon_code": "{coupon}"},
            {
                "type": "flow",
                "index": 3,
                "flow_token": "{token}",
                "flow_action_data": {"city": "{city}", "n": 1},
            },
        ]
    )
    url, quick, coupon, flow = p.render(ROW)
    assert url == {
        "type": "button",
        "sub_type": "url",
        "index": "0",
        "parameters": [{"type": "text", "text": "spring-ana"}],
    }
    assert quick["sub_type"] == "quick_reply" and quick["parameters"] == [
        {"type": "payload", "payload": "unsub-42"}
    ]
    assert coupon["parameters"] == [{"type": "coupon_code", "coupon_code": "ANA20"}]
    assert flow["parameters"] == [
        {
            "type": "action",
            "action": {"flow_token": "flow-42", "flow_action_data": {"city": "Lisbon", "n": 1}},
        }
    ]


def test_full_message_builds_and_validates() -> None:
    p = Personaliser(
        header={"type": "image", "link": "{image_url}"},
        body_parameters=["{first_name}", "{discount}%"],
        buttons=[{"type": "url", "index": 0, "text": "{slug}"}],
    )
    payload = build_marketing_message(
        to="4915100000001", template_name="image_promo", language="en_US", components=p.render(ROW)
    )
    assert [c["type"] for c in payload["template"]["components"]] == ["header", "body", "button"]


def test_raw_components_are_formatted_everywhere() -> None:
    raw = [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "{image_url}"}}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "{first_name}"},
                {
                    "type": "currency",
                    "currency": {
                        "fallback_value": "{price_text}",
                        "code": "EUR",
                        "amount_1000": "{price_milli}",
                    },
                },
            ],
        },
        {
            "type": "button",
            "sub_type": "copy_code",
            "index": 0,
            "parameters": [{"type": "coupon_code", "coupon_code": "{coupon}"}],
        },
    ]
    p = Personaliser(components=raw)
    header, body, button = p.render(ROW)
    assert header["parameters"][0]["image"]["link"] == ROW["image_url"]
    assert body["parameters"][1]["currency"]["amount_1000"] == 12500  # a lone field keeps its type
    assert button["parameters"][0]["coupon_code"] == "ANA20"
    assert raw[0]["parameters"][0]["image"]["link"] == "{image_url}"  # the spec is not mutated
    build_marketing_message(to="4915100000001", template_name="x", language="en", components=p.render(ROW))


def test_missing_and_empty_fields_name_the_field() -> None:
    p = Personaliser(body_parameters=["{first_name}", "{discount}"])
    with pytest.raises(PersonalisationError, match=r"missing field 'discount'") as info:
        p.render({"first_name": "Ana"})
    assert info.value.field == "body_parameters[1]"
    with pytest.raises(PersonalisationError, match=r"field 'first_name' is empty"):
        p.render({"first_name": None, "discount": 1})
    header = Personaliser(header={"type": "text", "text": "Hi {city}"})
    with pytest.raises(PersonalisationError, match=r"header\.text: missing field 'city'"):
        header.render({})


def test_meta_limits_apply_to_rendered_values() -> None:
    header = Personaliser(header="{city}")
    with pytest.raises(PersonalisationError, match="at most 60"):
        header.render({"city": "x" * 61})
    coupon = Personaliser(buttons=[{"type": "copy_code", "index": 0, "coupon_code": "{coupon}"}])
    with pytest.raises(PersonalisationError, match="coupon_code"):
        coupon.render({"coupon": "C" * 21})
    body = Personaliser(body_parameters=["{note}"])
    with pytest.raises(PersonalisationError, match="new lines"):
        body.render({"note": "two\nlines"})
    fmt = Personaliser(body_parameters=["{price:.2f}"])
    with pytest.raises(PersonalisationError, match="'price' cannot be formatted"):
        fmt.render({"price": "abc"})


def test_lower_cased_sql_columns_are_found() -> None:
    (body,) = Personaliser(body_parameters=["{FirstName}"]).render({"firstname": "Ana"})
    assert body["parameters"][0]["text"] == "Ana"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"body_parameters": ["{}"]}, "positional field"),
        ({"body_parameters": ["{0}"]}, "positional field"),
        ({"body_parameters": ["{unclosed"]}, "invalid format string"),
        ({"body_parameters": "{first_name}"}, "must be a list"),
        ({"buttons": [{"type": "call", "index": 0}]}, "buttons\\[0\\]\\.type"),
        ({"buttons": [{"type": "url", "text": "x"}]}, "index is required"),
        ({"components": [], "header": "x"}, "either components"),
        ({"header": {"type": "text", "text": "x" * 61}}, "at most 60"),  # constant spec: checked at once
    ],
)
def test_invalid_specs_fail_when_built(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Personaliser(**kwargs)


def test_from_dict_and_sample_components() -> None:
    p = Personaliser.from_dict(
        {
            "header": {"type": "image", "link": "{image_url}"},
            "body_parameters": [
                "{first_name}",
                {"type": "currency", "fallback_value": "{p}", "code": "{cur}", "amount_1000": "{m}"},
                "{x:>5}",
            ],
            "buttons": [{"type": "url", "index": 0, "text": "{slug}"}],
        }
    )
    header, body, button = p.sample_components()
    assert header["parameters"][0]["image"]["link"].startswith("https://")
    assert len(body["parameters"]) == 3 and body["parameters"][1]["currency"]["code"] == "EUR"
    assert button["sub_type"] == "url"
    with pytest.raises(ConfigurationError, match="unknown personalisation keys"):
        Personaliser.from_dict({"body": ["x"]})


def test_constant_spec_renders_the_same_without_fields() -> None:
    p = Personaliser(body_parameters=["Spring", "20%"])
    assert p.fields == frozenset()
    assert p.render({}) == p.render({"anything": 1})
    assert Personaliser().render({}) == []


def test_field_uses_say_where_each_field_is_used() -> None:
    p = Personaliser(
        header={"type": "text", "text": "{city}"},
        body_parameters=["{first_name}", "{discount}% for {first_name}"],
        buttons=[{"type": "url", "index": 0, "text": "{slug}"}],
    )
    assert p.field_uses == {
        "city": ("header.text",),
        "first_name": ("body_parameters[0]", "body_parameters[1]"),
        "discount": ("body_parameters[1]",),
        "slug": ("buttons[0].text",),
    }
    assert p.fields == set(p.field_uses)
    named = Personaliser(body_parameters={"name": "{first_name}"})
    assert named.field_uses == {"first_name": ("body_parameters.name",)}
    raw = Personaliser(components=[{"type": "body", "parameters": [{"type": "text", "text": "{x}"}]}])
    assert raw.field_uses == {"x": ("components[0].parameters[0].text",)}
    assert Personaliser(body_parameters=["Spring"]).field_uses == {}


def test_errors_quoting_a_value_mask_the_phone_numbers_in_it() -> None:
    p = Personaliser(header={"type": "image", "link": "{url}"})
    with pytest.raises(PersonalisationError) as info:
        p.render({"url": "https://shop.example.com/?for=+49 151 23456789 now"})
    message = str(info.value)
    assert "http(s) URL without spaces" in message and "+49*********89" in message
    assert "23456789" not in message
    # Raw components are checked while rendering too (same field names as the payload builder's).
    raw = Personaliser(
        components=[{"type": "header", "parameters": [{"type": "image", "image": {"link": "{url}"}}]}]
    )
    with pytest.raises(PersonalisationError, match=r"template\.components\[0\]") as raw_info:
        raw.render({"url": "ftp://4915123456789"})
    assert "4915123456789" not in str(raw_info.value) and "49*********89" in str(raw_info.value)


def test_masking_leaves_numbers_that_are_not_the_rows_alone() -> None:
    text = "amount_1000: must be between -2147483648 and 2147483647, got 9999999999999"
    masked = mask_row_numbers(text, {"amount": 9999999999999})
    assert "-2147483648 and 2147483647" in masked and "9999999999999" not in masked
    assert mask_row_numbers("no digits here", {"phone": "+4915123456789"}) == "no digits here"
