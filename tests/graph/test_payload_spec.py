"""Every component kind the builders produce, checked against Meta's OpenAPI schema.

``jsonschema`` ignores OpenAPI ``discriminator`` mappings, so besides the whole payload
(``MarketingMessageRequestPayload``) each component and parameter is also validated against
the schema its discriminator names (``BodyComponent``, ``CurrencyParameter``...), as an
OpenAPI-aware validator would. Against Meta's file as it is, the errors where the spec is known to
be wrong are filtered by name and every other error fails the test; against the file with the
fixture's documented overlay (``tests/plugins/spec_fixtures.py``), every payload must validate with
no error at all, and every overlay entry must still be needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_wamm.graph import (
    body_component,
    build_marketing_message,
    carousel_card,
    carousel_component,
    catalog_button,
    copy_code_button,
    currency_param,
    date_time_param,
    document_param,
    flow_button,
    gif_param,
    header_component,
    image_param,
    limited_time_offer_component,
    location_param,
    product_param,
    quick_reply_button,
    text_param,
    url_button,
    video_param,
)
from tests.plugins.spec_fixtures import SPEC_OVERLAY, apply_overlay, make_validator

Validator = Callable[[Any, str], list[str]]

# Known gaps of business-messaging-api_v23.0.yaml, each matched by the exact validator message.
SPEC_GAPS: dict[str, re.Pattern[str]] = {
    # LanguageObject marks `policy` required, but Meta's Marketing Messages examples omit it.
    "language_policy_required": re.compile(r"^template/language: 'policy' is a required property$"),
    # The button `index` pattern `^[2-6, 11-14]$` is a character class that even rejects "0".
    "button_index_pattern": re.compile(r"index: '\d' does not match '\^\[2-6, 11-14\]\$'$"),
    # The button sub_type enum lists only quick_reply/url/catalog (no copy_code, flow).
    "button_sub_type_enum": re.compile(
        r"sub_type: '(copy_code|flow)' is not one of \['quick_reply', 'url', 'catalog'\]$"
    ),
    # Button parameter types lack coupon_code (copy_code) and action (flow, catalog).
    "button_parameter_enum": re.compile(r"type: '(coupon_code|action)' is not one of \['payload', 'text'\]$"),
    # Header/body parameter types lack location.
    "parameter_type_enum": re.compile(
        r"type: 'location' is not one of \['currency', 'date_time', 'document', 'image', 'text', 'video'\]$"
    ),
    # Component types lack limited_time_offer and carousel (documented on the LTO/carousel pages).
    "component_type_enum": re.compile(
        r"type: '(limited_time_offer|carousel)' is not one of \['header', 'body', 'button'\]$"
    ),
    # `recipient` (business-scoped user id) is not in the spec, which forbids extra keys and requires `to`.
    "recipient_missing_from_spec": re.compile(
        r"^: (Additional properties are not allowed \('recipient' was unexpected\)"
        r"|'to' is a required property)$"
    ),
}

COMPONENT_SCHEMAS = {"header": "HeaderComponent", "body": "BodyComponent", "button": "ButtonComponent"}
PARAMETER_SCHEMAS = {
    "text": "TextParameter",
    "currency": "CurrencyParameter",
    "date_time": "DateTimeParameter",
    "image": "ImageParameter",
    "video": "VideoParameter",
    "document": "DocumentParameter",
}
BUTTON_PARAMETER_SCHEMAS = {"payload": "ButtonPayloadParameter", "text": "ButtonTextParameter"}


@dataclass(frozen=True)
class Schemas:
    """Which schema each discriminated ``type`` names (the spec's mappings, or the overlay's)."""

    components: Mapping[str, str]
    parameters: Mapping[str, str]
    button_parameters: Mapping[str, str]
    cards: bool = False
    """Validate the components of carousel cards too."""
    extra: dict[str, str] = field(default_factory=dict)


META_SCHEMAS = Schemas(COMPONENT_SCHEMAS, PARAMETER_SCHEMAS, BUTTON_PARAMETER_SCHEMAS)
OVERLAY_SCHEMAS = Schemas(
    {**COMPONENT_SCHEMAS, "limited_time_offer": "LimitedTimeOfferComponent", "carousel": "CarouselComponent"},
    {
        **PARAMETER_SCHEMAS,
        "location": "LocationParameter",
        "gif": "GifParameter",
        "product": "ProductParameter",
    },
    {
        **BUTTON_PARAMETER_SCHEMAS,
        "coupon_code": "ButtonCouponCodeParameter",
        "action": "ButtonActionParameter",
    },
    cards=True,
)


def component_errors(validate: Validator, comp: dict[str, Any], where: str, schemas: Schemas) -> list[str]:
    """Errors of one component against its discriminated schema, and of its parameters (and cards)."""
    schema = schemas.components.get(comp["type"])
    if schema is None:
        return [f"{where}/{e}" for e in validate(comp, "TemplateComponent")]
    errors = [f"{where}/{e}" for e in validate(comp, schema)]
    if comp["type"] in ("limited_time_offer", "carousel"):
        for c, card in enumerate(comp.get("cards", []) if schemas.cards else []):
            for k, sub in enumerate(card["components"]):
                errors += component_errors(validate, sub, f"{where}/cards/{c}/components/{k}", schemas)
        return errors
    table = schemas.button_parameters if comp["type"] == "button" else schemas.parameters
    for j, param in enumerate(comp.get("parameters", [])):
        pschema = table.get(param["type"])
        ppath = f"{where}/parameters/{j}"
        if pschema is None:
            base = "ButtonParameterObject" if comp["type"] == "button" else "ParameterObject"
            errors += [f"{ppath}/{e}" for e in validate(param, base)]
        else:
            errors += [f"{ppath}/{e}" for e in validate(param, pschema)]
    return errors


def all_spec_errors(
    validate: Validator, payload: dict[str, Any], schemas: Schemas = META_SCHEMAS
) -> list[str]:
    """Errors of the whole payload plus those of each part against its discriminated schema."""
    errors = validate(payload, "MarketingMessageRequestPayload")
    for i, comp in enumerate(payload["template"].get("components", [])):
        errors += component_errors(validate, comp, f"template/components/{i}", schemas)
    return errors


def unexpected(errors: list[str], allowed_gaps: set[str]) -> list[str]:
    patterns = [SPEC_GAPS[name] for name in allowed_gaps]
    return [e for e in errors if not any(p.search(e) for p in patterns)]


def message(components: list[dict[str, Any]] | None = None, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "to": "4915123456789",
        "template_name": "spring_sale",
        "language": "en_US",
        "language_policy": "deterministic",
        "components": components,
    }
    options.update(kwargs)
    return build_marketing_message(**options)


CASES: list[tuple[str, Callable[[], dict[str, Any]], set[str]]] = [
    ("no components", message, set()),
    ("language without policy", lambda: message(language_policy=None), {"language_policy_required"}),
    ("product policy strict", lambda: message(product_policy="STRICT", message_activity_sharing=True), set()),
    ("product policy fallback", lambda: message(product_policy="CLOUD_API_FALLBACK"), set()),
    ("header text", lambda: message([header_component("Summer")]), set()),
    (
        "header image link",
        lambda: message([header_component(image_param(link="https://example.com/a.jpg"))]),
        set(),
    ),
    ("header image id", lambda: message([header_component(image_param(id="123456"))]), set()),
    (
        "header video",
        lambda: message([header_component(video_param(link="https://example.com/a.mp4"))]),
        set(),
    ),
    (
        "header document",
        lambda: message(
            [header_component(document_param(link="https://example.com/a.pdf", filename="a.pdf"))]
        ),
        set(),
    ),
    (
        "header location",
        lambda: message([header_component(location_param("37.48", "-122.14", name="HQ", address="1 Way"))]),
        {"parameter_type_enum"},
    ),
    ("body positional text", lambda: message([body_component(["Anna", "20%"])]), set()),
    ("body named text", lambda: message([body_component({"first_name": "Anna", "discount": "20%"})]), set()),
    (
        "body currency and date_time",
        lambda: message(
            [body_component([currency_param("€12.50", "EUR", 12500), date_time_param("1 May 2026")])]
        ),
        set(),
    ),
    (
        "body named currency",
        lambda: message([body_component([currency_param("$1", "USD", 1000, parameter_name="price")])]),
        set(),
    ),
    ("url button", lambda: message([url_button(0, "abc%20def")]), {"button_index_pattern"}),
    ("quick reply button", lambda: message([quick_reply_button(1, "stop")]), {"button_index_pattern"}),
    (
        "copy code button",
        lambda: message([copy_code_button(0, "SAVE20")]),
        {"button_index_pattern", "button_sub_type_enum", "button_parameter_enum"},
    ),
    (
        "flow button",
        lambda: message([flow_button(0, flow_token="tok-1", flow_action_data={"screen": "A"})]),
        {"button_index_pattern", "button_sub_type_enum", "button_parameter_enum"},
    ),
    (
        "catalog button",
        lambda: message([catalog_button(0, "sku-1")]),
        {"button_index_pattern", "button_parameter_enum"},
    ),
    (
        "limited time offer",
        lambda: message(
            [
                header_component(image_param(link="https://example.com/a.jpg")),
                body_component(["Anna"]),
                limited_time_offer_component(1767225600000),
                copy_code_button(0, "SAVE20"),
                url_button(1, "offer"),
            ]
        ),
        {"component_type_enum", "button_index_pattern", "button_sub_type_enum", "button_parameter_enum"},
    ),
    (
        "carousel",
        lambda: message(
            [
                body_component(["Anna"]),
                carousel_component(
                    [
                        carousel_card(
                            i,
                            [
                                header_component(image_param(link=f"https://example.com/{i}.jpg")),
                                body_component([f"item {i}"]),
                                quick_reply_button(0, f"more-{i}"),
                            ],
                        )
                        for i in range(3)
                    ]
                ),
            ]
        ),
        {"component_type_enum"},
    ),
    (
        "bsuid recipient",
        lambda: message(to=None, recipient="US.13491208655302741918"),
        {"recipient_missing_from_spec"},
    ),
    (
        "everything",
        lambda: message(
            [
                header_component(text_param("Anna")),
                body_component(
                    [text_param("Anna"), currency_param("€1", "EUR", 1000), date_time_param("today")]
                ),
                url_button(0, "x"),
                quick_reply_button(2, "stop"),
            ],
            product_policy="STRICT",
            message_activity_sharing=False,
        ),
        {"button_index_pattern"},
    ),
]


@pytest.mark.parametrize(("make", "gaps"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_payload_matches_meta_schema(
    spec_validator: Validator, make: Callable[[], dict[str, Any]], gaps: set[str]
) -> None:
    payload = make()
    errors = all_spec_errors(spec_validator, payload)
    assert unexpected(errors, gaps) == []


def test_every_named_gap_is_real(spec_validator: Validator) -> None:
    """Each filtered gap does occur, so the filters hide exactly the spec's mistakes and nothing else."""
    seen: set[str] = set()
    for _, make, gaps in CASES:
        errors = all_spec_errors(spec_validator, make())
        for name in gaps:
            if any(SPEC_GAPS[name].search(e) for e in errors):
                seen.add(name)
    assert seen == set(SPEC_GAPS)


def test_the_validator_does_catch_mistakes(spec_validator: Validator) -> None:
    """The check above is only meaningful if a broken payload fails it."""
    payload = message([body_component(["Anna"])])
    payload["template"]["components"][0]["parameters"][0] = {"type": "text"}
    payload["product_policy"] = "ALWAYS"
    errors = unexpected(all_spec_errors(spec_validator, payload), set(SPEC_GAPS))
    assert any("'text' is a required property" in e for e in errors)
    assert any("'ALWAYS' is not one of" in e for e in errors)


# -- the overlay ----------------------------------------------------------------------------------------

CATALOG = "194836987003835"


def product_carousel(count: int, url_buttons: bool = False) -> list[dict[str, Any]]:
    cards = []
    for i in range(count):
        card = [header_component(product_param(f"sku-{i}", CATALOG))]
        if url_buttons:
            card.append(url_button(0, f"sku-{i}"))
        cards.append(carousel_card(i, card))
    return [body_component(["Pablo"]), carousel_component(cards)]


#: Payloads Meta documents that its v23.0 file cannot describe: each fails on the file as it is.
OVERLAY_CASES: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    (
        "product header",
        lambda: message(
            [header_component(product_param("nqryix03ez", CATALOG)), body_component({"code": "25OFF"})]
        ),
    ),
    ("gif header by link", lambda: message([header_component(gif_param(link="https://cdn.example/a.mp4"))])),
    ("gif header by id", lambda: message([header_component(gif_param(id="1234567890"))])),
    ("catalog button without parameters", lambda: message([body_component(["Ana"]), catalog_button(0)])),
    ("product card carousel", lambda: message(product_carousel(3))),
    ("product card carousel of ten", lambda: message(product_carousel(10))),
    ("product card carousel with url buttons", lambda: message(product_carousel(4, url_buttons=True))),
    ("bsuid given as to", lambda: message(to="US.13491208655302741918")),
    ("parent bsuid", lambda: message(to=None, recipient="US.ENT.11815799212886844830")),
    ("biz_opaque_callback_data", lambda: message(biz_opaque_callback_data="order-42")),
    (
        "bsuid with callback data",
        lambda: message(to=None, recipient="US.13491208655302741918", biz_opaque_callback_data="x" * 512),
    ),
]
ALL_CASES = [(name, make) for name, make, _gaps in CASES] + OVERLAY_CASES


@pytest.mark.parametrize("make", [c[1] for c in ALL_CASES], ids=[c[0] for c in ALL_CASES])
def test_payload_matches_the_overlaid_spec(
    overlaid_spec_validator: Validator, make: Callable[[], dict[str, Any]]
) -> None:
    assert all_spec_errors(overlaid_spec_validator, make(), OVERLAY_SCHEMAS) == []


@pytest.mark.parametrize("make", [c[1] for c in OVERLAY_CASES], ids=[c[0] for c in OVERLAY_CASES])
def test_metas_file_alone_refuses_the_new_kinds(
    spec_validator: Validator, make: Callable[[], dict[str, Any]]
) -> None:
    assert all_spec_errors(spec_validator, make()) != []


def test_every_overlay_entry_is_needed(openapi_spec: dict[str, Any]) -> None:
    """Without any one entry, some documented payload fails: the overlay holds nothing superfluous."""
    for entry in SPEC_OVERLAY:
        validate = make_validator(apply_overlay(openapi_spec, [e for e in SPEC_OVERLAY if e is not entry]))
        failing = [name for name, make in ALL_CASES if all_spec_errors(validate, make(), OVERLAY_SCHEMAS)]
        assert failing, f"overlay entry {entry.name!r} is no longer needed"


def test_the_overlay_leaves_metas_file_unchanged(openapi_spec: dict[str, Any]) -> None:
    before = repr(openapi_spec["components"]["schemas"]["MarketingMessageRequestPayload"])
    apply_overlay(openapi_spec)
    assert repr(openapi_spec["components"]["schemas"]["MarketingMessageRequestPayload"]) == before
    assert (
        "recipient"
        not in openapi_spec["components"]["schemas"]["MarketingMessageRequestPayload"]["properties"]
    )


def test_the_overlaid_spec_still_catches_mistakes(overlaid_spec_validator: Validator) -> None:
    payload = message(product_carousel(2))
    payload["template"]["components"][1]["cards"][0]["components"][0]["parameters"][0]["product"] = {
        "catalog_id": "1"
    }
    payload["biz_opaque_callback_data"] = "x" * 513
    del payload["to"]
    errors = all_spec_errors(overlaid_spec_validator, payload, OVERLAY_SCHEMAS)
    assert any("'product_retailer_id' is a required property" in e for e in errors)
    assert any("is too long" in e for e in errors)
    assert any("is not valid under any of the given schemas" in e for e in errors)
