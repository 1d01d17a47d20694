"""Meta's OpenAPI spec, loaded once per session from ``tests/spec/``, as Meta wrote it and with an overlay.

Meta's v23.0 file (the newest in ``facebook/openapi``; see ``tests/spec/SOURCE.md``) lags behind Meta's
documentation. Its file is never edited: :data:`SPEC_OVERLAY` lists the few additions the documented
payloads need, each with the page it follows, and :func:`apply_overlay` applies them to a copy.
``spec_validator`` checks against Meta's file as it is, ``overlaid_spec_validator`` against the
overlaid copy.
"""

from __future__ import annotations

import copy
import os
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

SPEC_NAME = "business-messaging-api_v23.0.yaml"
#: Where the spec lives in the repository (``WAMM_SPEC_PATH`` names another file).
SPEC_DIR = pathlib.Path(__file__).resolve().parents[1] / "spec"

Schemas = dict[str, Any]
Validator = Callable[[Any, str], list[str]]


def _spec_path() -> pathlib.Path:
    env = os.environ.get("WAMM_SPEC_PATH")
    return pathlib.Path(env) if env else SPEC_DIR / SPEC_NAME


# -- the overlay ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverlayEntry:
    """One addition to Meta's spec: what it changes, why, and the Meta page it follows."""

    name: str
    source: str
    touches: tuple[str, ...]
    """The component schemas it changes or adds."""
    apply: Callable[[Schemas], None]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _typed(base: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
    """A discriminated parameter schema: ``base`` with ``type: kind`` and a required ``kind`` value."""
    return {
        "allOf": [
            _ref(base),
            {"type": "object", "required": [kind], "properties": {"type": {"enum": [kind]}, kind: value}},
        ]
    }


def _recipient(s: Schemas) -> None:
    payload = s["MarketingMessageRequestPayload"]
    payload["properties"]["recipient"] = {
        "type": "string",
        "pattern": r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$",
    }
    payload["required"] = [r for r in payload["required"] if r != "to"]
    payload["anyOf"] = [{"required": ["to"]}, {"required": ["recipient"]}]


def _callback_data(s: Schemas) -> None:
    props = s["MarketingMessageRequestPayload"]["properties"]
    props["biz_opaque_callback_data"] = {"type": "string", "maxLength": 512}


def _language_policy(s: Schemas) -> None:
    s["LanguageObject"]["required"] = ["code"]


def _button_index(s: Schemas) -> None:
    s["TemplateComponent"]["properties"]["index"]["pattern"] = "^[0-9]$"
    s["ButtonComponent"]["allOf"][1]["properties"]["index"]["pattern"] = "^[0-9]$"


def _button_sub_types(s: Schemas) -> None:
    for props in (s["TemplateComponent"]["properties"], s["ButtonComponent"]["allOf"][1]["properties"]):
        props["sub_type"]["enum"] = [*props["sub_type"]["enum"], "copy_code", "flow", "mpm"]


def _button_parameters(s: Schemas) -> None:
    kinds = s["ButtonParameterObject"]["properties"]["type"]
    kinds["enum"] = [*kinds["enum"], "coupon_code", "action"]
    s["ButtonCouponCodeParameter"] = _typed(
        "ButtonParameterObject", "coupon_code", {"type": "string", "maxLength": 20}
    )
    s["ButtonActionParameter"] = _typed("ButtonParameterObject", "action", {"type": "object"})


def _optional_button_parameters(s: Schemas) -> None:
    button = s["ButtonComponent"]["allOf"][1]
    button["required"] = ["sub_type", "index"]


def _header_parameters(s: Schemas) -> None:
    kinds = s["ParameterObject"]["properties"]["type"]
    kinds["enum"] = [*kinds["enum"], "location", "gif", "product"]
    location = {
        "type": "object",
        "required": ["latitude", "longitude"],
        "properties": {"name": {"type": "string"}, "address": {"type": "string"}},
    }
    product = {
        "type": "object",
        "required": ["product_retailer_id", "catalog_id"],
        "properties": {"product_retailer_id": {"type": "string"}, "catalog_id": {"type": "string"}},
    }
    s["LocationParameter"] = _typed("ParameterObject", "location", location)
    s["GifParameter"] = _typed("ParameterObject", "gif", _ref("MediaObject"))
    s["ProductParameter"] = _typed("ParameterObject", "product", product)


def _component_types(s: Schemas) -> None:
    kinds = s["TemplateComponent"]["properties"]["type"]
    kinds["enum"] = [*kinds["enum"], "limited_time_offer", "carousel"]
    offer = {
        "type": "object",
        "required": ["expiration_time_ms"],
        "properties": {"expiration_time_ms": {"type": "integer"}},
    }
    s["LimitedTimeOfferComponent"] = {
        "type": "object",
        "required": ["type", "parameters"],
        "properties": {
            "type": {"enum": ["limited_time_offer"]},
            "parameters": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["type", "limited_time_offer"],
                    "properties": {"type": {"enum": ["limited_time_offer"]}, "limited_time_offer": offer},
                },
            },
        },
    }
    card = {
        "type": "object",
        "required": ["card_index", "components"],
        "properties": {
            "card_index": {"type": "integer", "minimum": 0, "maximum": 9},
            "components": {"type": "array", "items": _ref("TemplateComponent")},
        },
    }
    s["CarouselComponent"] = {
        "type": "object",
        "required": ["type", "cards"],
        "properties": {
            "type": {"enum": ["carousel"]},
            "cards": {"type": "array", "minItems": 1, "maxItems": 10, "items": card},
        },
    }


_PAGES = "https://developers.facebook.com/documentation/business-messaging/whatsapp"

#: Meta's documented payloads that its v23.0 spec does not describe, as additions to its schemas.
SPEC_OVERLAY: tuple[OverlayEntry, ...] = (
    OverlayEntry(
        "recipient",
        f'"Business-scoped user IDs", {_PAGES}/business-scoped-user-ids (Jun 29, 2026): `to` and/or '
        "`recipient`, at least one",
        ("MarketingMessageRequestPayload",),
        _recipient,
    ),
    OverlayEntry(
        "biz_opaque_callback_data",
        f'"Send Marketing Messages", {_PAGES}/marketing-messages/send-marketing-messages (May 21, 2026): the '
        "Cloud API payload syntax; at most 512 characters (WhatsApp changelog)",
        ("MarketingMessageRequestPayload",),
        _callback_data,
    ),
    OverlayEntry(
        "language_policy_optional",
        "Meta's Marketing Messages examples send `language` with `code` only",
        ("LanguageObject",),
        _language_policy,
    ),
    OverlayEntry(
        "button_index",
        "the spec's own description: 'Position index of the button (0-9)' (its pattern rejects '0')",
        ("TemplateComponent", "ButtonComponent"),
        _button_index,
    ),
    OverlayEntry(
        "button_sub_types",
        f'copy_code, flow and mpm buttons: "Marketing templates", {_PAGES}/templates/marketing-templates '
        "(Jun 17, 2026) and its coupon-code, Flows and multi-product pages",
        ("TemplateComponent", "ButtonComponent"),
        _button_sub_types,
    ),
    OverlayEntry(
        "button_parameter_types",
        "coupon_code (copy_code buttons) and action (flow, catalog, mpm buttons) parameters, same pages",
        ("ButtonParameterObject",),
        _button_parameters,
    ),
    OverlayEntry(
        "catalog_button_without_parameters",
        f'"Catalog templates", {_PAGES}/catalogs/catalog-template-messages (Jun 18, 2026): "If the '
        'parameters object is omitted, the product image of the first item in your catalog will be used"',
        ("ButtonComponent",),
        _optional_button_parameters,
    ),
    OverlayEntry(
        "header_parameter_types",
        f'location headers; product headers ("Single-product message templates", '
        f"{_PAGES}/catalogs/spm-template-messages, Jun 24, 2026); GIF headers, Marketing Messages only "
        f'("Template media", {_PAGES}/templates/template-media, May 21, 2026)',
        ("ParameterObject",),
        _header_parameters,
    ),
    OverlayEntry(
        "component_types",
        f'limited_time_offer and carousel components ("Limited-time offer templates", "Product card '
        f'carousel templates", {_PAGES}/catalogs/product-card-carousel-template-messages, Jun 18, 2026)',
        ("TemplateComponent",),
        _component_types,
    ),
)


def apply_overlay(spec: dict[str, Any], entries: Sequence[OverlayEntry] = SPEC_OVERLAY) -> dict[str, Any]:
    """A copy of ``spec`` with ``entries`` applied (only the schemas they touch are copied)."""
    schemas = dict(spec["components"]["schemas"])
    for name in {n for entry in entries for n in entry.touches}:
        if name in schemas:
            schemas[name] = copy.deepcopy(schemas[name])
    for entry in entries:
        entry.apply(schemas)
    return {**spec, "components": {**spec["components"], "schemas": schemas}}


def make_validator(spec: dict[str, Any]) -> Validator:
    """A ``validate(instance, schema_name)`` callable over the spec's component schemas."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    uri = "urn:meta:business-messaging-api"
    registry: Registry = Registry().with_resource(uri, Resource(spec, specification=DRAFT202012))

    def validate(instance: Any, schema_name: str) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": f"{uri}#/components/schemas/{schema_name}"}, registry=registry
        )
        try:
            errors = list(validator.iter_errors(instance))
        except Unresolvable:  # a schema of the overlay, validated against a spec without it
            return [f": the spec has no schema {schema_name}"]
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]

    return validate


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def openapi_spec() -> dict[str, Any]:
    """Meta's spec as it is; tests using it skip with a reason when the file is missing."""
    path = _spec_path()
    if not path.exists():
        pytest.skip(f"Meta's OpenAPI spec ({SPEC_NAME}) is not at {path} (see tests/spec/SOURCE.md)")
    import yaml

    with path.open("rb") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@pytest.fixture(scope="session")
def spec_validator(openapi_spec: dict[str, Any]) -> Validator:
    """Validation against Meta's spec as it is."""
    return make_validator(openapi_spec)


@pytest.fixture(scope="session")
def overlaid_spec_validator(openapi_spec: dict[str, Any]) -> Validator:
    """Validation against Meta's spec with :data:`SPEC_OVERLAY` applied."""
    return make_validator(apply_overlay(openapi_spec))
