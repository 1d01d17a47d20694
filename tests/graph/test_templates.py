"""Templates as Meta lists them: the send-time spec and the preflight check of components."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from airflow_provider_wamm.graph import (
    TemplateSpec,
    body_component,
    build_marketing_message,
    check_components,
    copy_code_button,
    example_components,
    header_component,
    image_param,
    quick_reply_button,
    text_param,
    url_button,
)

POSITIONAL: dict[str, Any] = {
    "id": "111",
    "name": "spring_sale",
    "language": "en_US",
    "status": "APPROVED",
    "category": "MARKETING",
    "parameter_format": "POSITIONAL",
    "components": [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1hZ2U="]}},
        {
            "type": "BODY",
            "text": "Hi {{1}}, take {{2}} off until {{3}}. {{1}}, don't miss it!",
            "example": {"body_text": [["Anna", "20%", "Sunday"]]},
        },
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {
            "type": "BUTTONS",
            "buttons": [
                {
                    "type": "URL",
                    "text": "Shop",
                    "url": "https://shop.example/{{1}}",
                    "example": ["https://shop.example/a"],
                },
                {"type": "QUICK_REPLY", "text": "Stop promotions"},
                {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+4930123456"},
                {"type": "COPY_CODE", "example": "SAVE20"},
                {"type": "URL", "text": "Terms", "url": "https://shop.example/terms"},
            ],
        },
    ],
}

NAMED: dict[str, Any] = {
    "id": "222",
    "name": "welcome_back",
    "language": "de",
    "status": "APPROVED",
    "category": "MARKETING",
    "parameter_format": "NAMED",
    "components": [
        {
            "type": "HEADER",
            "format": "TEXT",
            "text": "Hallo {{first_name}}",
            "example": {"header_text_named_params": [{"param_name": "first_name", "example": "Anna"}]},
        },
        {
            "type": "BODY",
            "text": "{{first_name}}, {{discount}} Rabatt!",
            "example": {
                "body_text_named_params": [
                    {"param_name": "first_name", "example": "Anna"},
                    {"param_name": "discount", "example": "20%"},
                ]
            },
        },
    ],
}

LTO_CAROUSEL: dict[str, Any] = {
    "name": "flash_cards",
    "language": "en",
    "status": "APPROVED",
    "category": "MARKETING",
    "components": [
        {"type": "BODY", "text": "Deals for {{1}}", "example": {"body_text": [["Anna"]]}},
        {"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "Ends soon", "has_expiration": True}},
        {
            "type": "CAROUSEL",
            "cards": [
                {
                    "components": [
                        {"type": "HEADER", "format": "IMAGE"},
                        {"type": "BODY", "text": "Item {{1}}", "example": {"body_text": [["1"]]}},
                        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "More"}]},
                    ]
                },
                {
                    "components": [
                        {"type": "HEADER", "format": "VIDEO"},
                        {"type": "BODY", "text": "Item two"},
                        {
                            "type": "BUTTONS",
                            "buttons": [{"type": "URL", "text": "Go", "url": "https://x.example/{{1}}"}],
                        },
                    ]
                },
            ],
        },
    ],
}


def good_positional() -> list[dict[str, Any]]:
    return [
        header_component(image_param(link="https://example.com/a.jpg")),
        body_component(["Anna", "20%", "Sunday"]),
        url_button(0, "a"),
        copy_code_button(3, "SAVE20"),
    ]


def test_spec_from_api_positional() -> None:
    spec = TemplateSpec.from_api(POSITIONAL)
    assert spec.name == "spring_sale"
    assert spec.id == "111"
    assert spec.header_format == "IMAGE"
    assert spec.body_params == ("1", "2", "3")  # {{1}} used twice counts once
    assert not spec.named
    assert [(b.index, b.type, b.sub_type, b.required) for b in spec.buttons] == [
        (0, "URL", "url", True),
        (1, "QUICK_REPLY", "quick_reply", False),
        (2, "PHONE_NUMBER", None, False),
        (3, "COPY_CODE", "copy_code", True),
        (4, "URL", None, False),  # static URL: nothing to send
    ]
    assert spec.marketing_problems() == []
    assert "body {{1}}, {{2}}, {{3}}" in spec.describe()


def test_spec_from_api_named_and_inferred_format() -> None:
    spec = TemplateSpec.from_api(NAMED)
    assert spec.named
    assert spec.header_params == ("first_name",)
    assert spec.body_params == ("first_name", "discount")
    entry = {**NAMED}
    del entry["parameter_format"]
    assert TemplateSpec.from_api(entry).named  # inferred from {{names}}


def test_marketing_problems() -> None:
    spec = TemplateSpec.from_api({**POSITIONAL, "status": "PAUSED", "category": "UTILITY"})
    problems = spec.marketing_problems()
    assert any("PAUSED" in p for p in problems)
    assert any("134100" in p for p in problems)


def test_matching_components_have_no_problems() -> None:
    assert check_components(good_positional(), POSITIONAL) == []
    assert check_components([*good_positional(), quick_reply_button(1, "stop")], POSITIONAL) == []
    named = [
        header_component(text_param("Anna", parameter_name="first_name")),
        body_component({"discount": "20%", "first_name": "Anna"}),
    ]
    assert check_components(named, NAMED) == []
    assert check_components(named, TemplateSpec.from_api(NAMED)) == []


def replace(components: list[dict[str, Any]], index: int, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = copy.deepcopy(components)
    if new is None:
        del out[index]
    else:
        out[index] = new
    return out


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        (replace(good_positional(), 1, body_component(["Anna", "20%"])), "expects 3 parameter(s)"),
        (replace(good_positional(), 1, None), "body: the template expects 3"),
        (replace(good_positional(), 0, None), "header is IMAGE; send a header component"),
        (replace(good_positional(), 0, header_component("text")), "send one image parameter, got 'text'"),
        (replace(good_positional(), 2, None), "button 0: the template's URL button needs a url"),
        (replace(good_positional(), 3, None), "button 3: the template's COPY_CODE button needs a copy_code"),
        (replace(good_positional(), 2, quick_reply_button(0, "x")), "send sub_type 'url', not 'quick_reply'"),
        ([*good_positional(), url_button(4, "x")], "static URL and takes no parameter"),
        ([*good_positional(), quick_reply_button(2, "x")], "PHONE_NUMBER and takes no parameter"),
        ([*good_positional(), url_button(7, "x")], "button 7: the template has no such button (it has 0-4)"),
        (
            replace(good_positional(), 1, body_component({"a": "1", "b": "2", "c": "3"})),
            "template uses positional parameters; remove parameter_name",
        ),
        ([*good_positional(), {"type": "footer"}], "component type 'footer' is unknown"),
        ([*good_positional(), body_component(["x", "y", "z"])], "more than one body component"),
    ],
)
def test_positional_problems(components: list[dict[str, Any]], expected: str) -> None:
    problems = check_components(components, POSITIONAL)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ([body_component({"first_name": "Anna", "discount": "1"})], "header text has {{first_name}}"),
        (
            [
                header_component(text_param("A", parameter_name="first_name")),
                body_component({"first_name": "A"}),
            ],
            "body: missing named parameter(s) 'discount'",
        ),
        (
            [
                header_component(text_param("A", parameter_name="first_name")),
                body_component({"first_name": "A", "discount": "1", "city": "B"}),
            ],
            "parameter(s) 'city' are not in the template",
        ),
        (
            [header_component(text_param("A", parameter_name="first_name")), body_component(["A", "1"])],
            "the template uses named parameters",
        ),
    ],
)
def test_named_problems(components: list[dict[str, Any]], expected: str) -> None:
    problems = check_components(components, NAMED)
    assert any(expected in p for p in problems), problems


def test_template_without_header_or_params() -> None:
    plain = {"name": "hello", "language": "en", "components": [{"type": "BODY", "text": "Hello!"}]}
    assert check_components([], plain) == []
    problems = check_components([header_component("x"), body_component(["x"])], plain)
    assert any("the template has no header" in p for p in problems)
    assert any("expects 0 parameter(s)" in p for p in problems)


def test_limited_time_offer_and_carousel() -> None:
    good = example_components(LTO_CAROUSEL)
    assert check_components(good, LTO_CAROUSEL) == []
    without_offer = [c for c in good if c["type"] != "limited_time_offer"]
    assert any("expiration_time_ms" in p for p in check_components(without_offer, LTO_CAROUSEL))
    carousel = next(c for c in good if c["type"] == "carousel")
    one_card = [c for c in good if c["type"] != "carousel"] + [{**carousel, "cards": carousel["cards"][:1]}]
    assert any("2 cards, got 1" in p for p in check_components(one_card, LTO_CAROUSEL))
    bad_card = copy.deepcopy(good)
    card = next(c for c in bad_card if c["type"] == "carousel")["cards"][1]
    card["components"] = [c for c in card["components"] if c["type"] != "button"]
    assert any("card 1 button 0" in p for p in check_components(bad_card, LTO_CAROUSEL))
    assert any("not a carousel" in p for p in check_components(good, POSITIONAL))


@pytest.mark.parametrize(
    "template", [POSITIONAL, NAMED, LTO_CAROUSEL], ids=["positional", "named", "lto-carousel"]
)
def test_example_components_fit_and_build(template: dict[str, Any]) -> None:
    components = example_components(template)
    assert check_components(components, template) == []
    payload = build_marketing_message(
        to="4915123456789",
        template_name=template["name"],
        language=template["language"],
        components=components,
    )
    assert payload["template"]["components"]


def test_example_values_are_used() -> None:
    components = example_components(NAMED)
    assert components[0]["parameters"] == [{"type": "text", "text": "Anna", "parameter_name": "first_name"}]
    body = example_components(POSITIONAL)[1]
    assert [p["text"] for p in body["parameters"]] == ["Anna", "20%", "Sunday"]


def test_garbage_never_crashes() -> None:
    assert check_components("body", POSITIONAL) == ["components must be a list"]  # type: ignore[arg-type]
    assert check_components([1, None], {"components": "nonsense"}) == ["every component must be an object"]  # type: ignore[list-item]
    spec = TemplateSpec.from_api(
        {"components": [None, {"type": "BUTTONS", "buttons": [None, {"type": "URL"}]}]}
    )
    assert [b.type for b in spec.buttons] == ["URL"]
    assert check_components([{"type": "button", "index": "x"}], POSITIONAL)
