"""Builders of ``marketing_messages`` payloads: the whole message, its parameters, components and buttons.

They return plain ``dict`` objects shaped exactly as Meta expects them, so they can be serialised as
JSON and compared with Meta's documentation, and check every part they build with
:mod:`airflow_provider_wamm.graph.validation` (a :class:`~airflow_provider_wamm.graph.errors.PayloadError`
names the first bad field). The flat syntax of campaign personalisation (:func:`parameter_from_spec`,
:func:`button_from_spec`, :func:`components_from_spec`) builds the same objects from simple values.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_wamm.graph.errors import InvalidRecipientError, PayloadError
from airflow_provider_wamm.graph.limits import (
    BODY_ONLY_TEXT_MAX,
    BODY_PARAMETER_TYPES,
    HEADER_PARAMETER_TYPES,
    HEADER_TEXT_MAX,
    PARAMETER_NAME_RE,
    PRODUCT_POLICIES,
    check_bsuid,
    check_callback_data,
    check_list,
    check_mapping,
    check_param_text,
    check_to,
)
from airflow_provider_wamm.graph.recipients import is_bsuid
from airflow_provider_wamm.graph.validation import (
    check_button,
    check_carousel,
    check_component_list,
    check_currency,
    check_limited_time_offer,
    check_location,
    check_media,
    check_parameter,
    check_parameters,
    check_product,
    check_template,
)

__all__ = [
    "body_component",
    "build_marketing_message",
    "button_from_spec",
    "carousel_card",
    "carousel_component",
    "catalog_button",
    "components_from_spec",
    "copy_code_button",
    "currency_param",
    "date_time_param",
    "document_param",
    "flow_button",
    "gif_param",
    "header_component",
    "image_param",
    "limited_time_offer_component",
    "location_param",
    "parameter_from_spec",
    "product_param",
    "quick_reply_button",
    "text_param",
    "url_button",
    "video_param",
]


# --------------------------------------------------------------------------------------------
# The whole message
# --------------------------------------------------------------------------------------------


def build_marketing_message(
    *,
    to: str | None = None,
    recipient: str | None = None,
    template_name: str,
    language: str,
    components: Sequence[Mapping[str, Any]] | None = None,
    product_policy: str | None = None,
    message_activity_sharing: bool | None = None,
    language_policy: str | None = None,
    biz_opaque_callback_data: str | None = None,
) -> dict[str, Any]:
    """Build and validate the JSON body of one ``marketing_messages`` request.

    :param to: the recipient: a phone number in international format (digits, optional ``+``;
        normalise raw input with :func:`~airflow_provider_wamm.graph.recipients.normalize_phone`),
        or a business-scoped user id (``US.1349…``), which is sent as ``recipient`` instead.
    :param recipient: a business-scoped user id (BSUID) instead of, or besides, a phone number
        (Meta uses ``to`` when both are given). Sending by BSUID disables Meta's delivery
        optimisation, and Meta refuses it for templates with a max price (131062).
    :param template_name: name of an approved marketing template.
    :param language: the template's language code, e.g. ``en_US``.
    :param components: send-time components (header, body, buttons, limited-time offer,
        carousel) as built by this module's helpers or written as Meta documents them.
    :param product_policy: ``CLOUD_API_FALLBACK`` (Meta's default: fall back to the Cloud API
        when the account is not onboarded) or ``STRICT`` (fail instead).
    :param message_activity_sharing: per-message override of the account's activity-sharing
        setting; ``None`` leaves the account default.
    :param language_policy: ``deterministic`` or ``None`` (omitted, as in Meta's examples).
    :param biz_opaque_callback_data: your own reference for this message (at most 512
        characters). Meta echoes it in the status webhooks of ``/messages`` sends; it does not
        document the echo for ``marketing_messages``, so do not rely on it to join statuses.
    :raises PayloadError: naming the first invalid field (``InvalidRecipientError`` for the
        recipient).
    """
    payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    payload.update(_recipient_fields(to, recipient))
    payload["type"] = "template"
    payload["template"] = check_template(template_name, language, language_policy, components)
    if product_policy is not None:
        if product_policy not in PRODUCT_POLICIES:
            raise PayloadError(
                "product_policy", f"must be one of {list(PRODUCT_POLICIES)}, got {product_policy!r}"
            )
        payload["product_policy"] = product_policy
    if message_activity_sharing is not None:
        if type(message_activity_sharing) is not bool:
            raise PayloadError(
                "message_activity_sharing", f"must be true or false, got {message_activity_sharing!r}"
            )
        payload["message_activity_sharing"] = message_activity_sharing
    if biz_opaque_callback_data is not None:
        payload["biz_opaque_callback_data"] = check_callback_data(biz_opaque_callback_data)
    return payload


def _recipient_fields(to: object, recipient: object) -> dict[str, str]:
    """``to`` and/or ``recipient`` of a send: a business-scoped user id given as ``to`` moves to
    ``recipient``; phone numbers stay in ``to``."""
    if to is None and recipient is None:
        raise InvalidRecipientError(
            "to", "give a phone number ('to') or a business-scoped user id ('recipient')"
        )
    if is_bsuid(to):
        if recipient is not None:
            raise InvalidRecipientError(
                "to", "is a business-scoped user id and 'recipient' is given too; give the id once"
            )
        return {"recipient": check_bsuid(to)}
    fields: dict[str, str] = {}
    if to is not None:
        fields["to"] = check_to(to)
    if recipient is not None:
        fields["recipient"] = check_bsuid(recipient)
    return fields


# --------------------------------------------------------------------------------------------
# Parameters and components
# --------------------------------------------------------------------------------------------


def _named(param: dict[str, Any], parameter_name: str | None) -> dict[str, Any]:
    """``param`` with its ``parameter_name`` set, when one is given."""
    if parameter_name is not None:
        if type(parameter_name) is not str or not PARAMETER_NAME_RE.fullmatch(parameter_name):
            raise PayloadError(
                "parameter_name",
                f"must be lower-case letters, digits and underscores as in the template, "
                f"got {parameter_name!r}",
            )
        param["parameter_name"] = parameter_name
    return param


def text_param(text: str, *, parameter_name: str | None = None) -> dict[str, Any]:
    """A ``text`` parameter (header or body); ``parameter_name`` for templates with named parameters."""
    return _named(
        {"type": "text", "text": check_param_text(text, "text", BODY_ONLY_TEXT_MAX)}, parameter_name
    )


def currency_param(
    fallback_value: str, code: str, amount_1000: int, *, parameter_name: str | None = None
) -> dict[str, Any]:
    """A ``currency`` body parameter: ``amount_1000`` is the amount times 1000 (``12500`` = 12.50)."""
    currency = check_currency(
        {"fallback_value": fallback_value, "code": code, "amount_1000": amount_1000}, "currency"
    )
    return _named({"type": "currency", "currency": currency}, parameter_name)


def date_time_param(fallback_value: str, *, parameter_name: str | None = None) -> dict[str, Any]:
    """A ``date_time`` body parameter; the Cloud API always shows ``fallback_value`` as given."""
    value = check_param_text(fallback_value, "date_time.fallback_value", BODY_ONLY_TEXT_MAX)
    return _named({"type": "date_time", "date_time": {"fallback_value": value}}, parameter_name)


def _given(**fields: Any) -> dict[str, Any]:
    """The fields whose value is not ``None``, in the order given (optional fields are left out)."""
    return {key: value for key, value in fields.items() if value is not None}


def _media_param(
    kind: str, media_id: str | None, link: str | None, filename: str | None = None
) -> dict[str, Any]:
    """An ``image``, ``video`` or ``document`` parameter from the arguments given."""
    media = _given(id=media_id, link=link, filename=filename)
    return {"type": kind, kind: check_media(media, kind, kind)}


def image_param(*, id: str | None = None, link: str | None = None) -> dict[str, Any]:
    """An ``image`` header parameter by uploaded media ``id`` or public ``link``."""
    return _media_param("image", id, link)


def video_param(*, id: str | None = None, link: str | None = None) -> dict[str, Any]:
    """A ``video`` header parameter by uploaded media ``id`` or public ``link``."""
    return _media_param("video", id, link)


def document_param(
    *,
    id: str | None = None,
    link: str | None = None,
    filename: str | None = None,
) -> dict[str, Any]:
    """A ``document`` (PDF) header parameter; ``filename`` is what the recipient sees."""
    return _media_param("document", id, link, filename)


def gif_param(*, id: str | None = None, link: str | None = None) -> dict[str, Any]:
    """A ``gif`` header parameter (an mp4 of at most 3.5 MB) by uploaded media ``id`` or public ``link``.

    GIF headers exist only on the Marketing Messages API ("Template components", Meta). Meta prints
    no send example for them; this is the form of its other media parameters.
    """
    return _media_param("gif", id, link)


def product_param(product_retailer_id: str, catalog_id: str) -> dict[str, Any]:
    """A ``product`` header parameter: the product of a single-product template or of a product card
    ("Single-product message templates", Meta, Jun 24, 2026)."""
    product = {"product_retailer_id": product_retailer_id, "catalog_id": catalog_id}
    return {"type": "product", "product": check_product(product, "product")}


def location_param(
    latitude: float | str, longitude: float | str, *, name: str | None = None, address: str | None = None
) -> dict[str, Any]:
    """A ``location`` header parameter (location headers exist on marketing and utility templates)."""
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        location["name"] = name
    if address is not None:
        location["address"] = address
    return {"type": "location", "location": check_location(location, "location")}


def header_component(parameter: Mapping[str, Any] | str) -> dict[str, Any]:
    """A ``header`` component with its single parameter (a string means a text parameter)."""
    param = {"type": "text", "text": parameter} if isinstance(parameter, str) else parameter
    checked = check_parameter(param, "header.parameters[0]", HEADER_PARAMETER_TYPES, HEADER_TEXT_MAX)
    return {"type": "header", "parameters": [checked]}


def body_component(parameters: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A ``body`` component.

    :param parameters: a list for positional templates (``{{1}}``, ``{{2}}``...) or a mapping
        ``name -> value`` for named ones. A value is a string/number (a text parameter) or a
        parameter dict such as :func:`currency_param` returns.
    """
    params: list[Any] = []
    if isinstance(parameters, Mapping):
        for name, value in parameters.items():
            param = parameter_from_spec(value, field=f"body.parameters[{name!r}]")
            param["parameter_name"] = name
            params.append(param)
    else:
        for i, value in enumerate(check_list(parameters, "body.parameters")):
            params.append(parameter_from_spec(value, field=f"body.parameters[{i}]"))
    checked = check_parameters(
        params, "body.parameters", BODY_PARAMETER_TYPES, BODY_ONLY_TEXT_MAX, min_items=0, max_items=None
    )
    return {"type": "body", "parameters": checked}


def _button(sub_type: str, index: int | str, param: dict[str, Any]) -> dict[str, Any]:
    """A checked button component with its one parameter."""
    return check_button(
        {"type": "button", "sub_type": sub_type, "index": index, "parameters": [param]}, "button"
    )


def url_button(index: int | str, text: str) -> dict[str, Any]:
    """A dynamic ``url`` button: ``text`` is the (percent-encoded) suffix appended to the template's URL."""
    return _button("url", index, {"type": "text", "text": text})


def quick_reply_button(index: int | str, payload: str) -> dict[str, Any]:
    """A ``quick_reply`` button with the payload returned in the webhook when it is tapped."""
    return _button("quick_reply", index, {"type": "payload", "payload": payload})


def copy_code_button(index: int | str, coupon_code: str) -> dict[str, Any]:
    """A ``copy_code`` button (coupon templates, limited-time offers): at most 20 characters."""
    return _button("copy_code", index, {"type": "coupon_code", "coupon_code": coupon_code})


def flow_button(
    index: int | str, *, flow_token: str | None = None, flow_action_data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``flow`` button: ``flow_token`` names the flow session, ``flow_action_data`` seeds its screen."""
    action = _given(flow_token=flow_token, flow_action_data=flow_action_data)
    return _button("flow", index, {"type": "action", "action": action})


def catalog_button(index: int | str, thumbnail_product_retailer_id: str | None = None) -> dict[str, Any]:
    """A ``catalog`` button; the product's retailer id picks the thumbnail.

    Without one the button is sent without ``parameters``, and Meta shows the first product of the
    catalogue ("Catalog templates", Meta, Jun 18, 2026).
    """
    if thumbnail_product_retailer_id is None:
        return check_button({"type": "button", "sub_type": "catalog", "index": index}, "button")
    action = {"thumbnail_product_retailer_id": thumbnail_product_retailer_id}
    return _button("catalog", index, {"type": "action", "action": action})


def limited_time_offer_component(expiration_time_ms: int) -> dict[str, Any]:
    """The ``limited_time_offer`` component: when the offer ends, as Unix time in milliseconds."""
    comp = {
        "type": "limited_time_offer",
        "parameters": [
            {"type": "limited_time_offer", "limited_time_offer": {"expiration_time_ms": expiration_time_ms}}
        ],
    }
    return check_limited_time_offer(comp, "limited_time_offer")


def carousel_card(card_index: int, components: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One carousel card: its media or product header, optional body and buttons."""
    card = {"card_index": card_index, "components": components}
    checked: dict[str, Any] = check_carousel({"type": "carousel", "cards": [card]}, "carousel")["cards"][0]
    return checked


def carousel_component(cards: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``carousel`` component from cards built with :func:`carousel_card`."""
    return check_carousel({"type": "carousel", "cards": cards}, "carousel")


# --------------------------------------------------------------------------------------------
# The flat "spec" syntax used by campaign personalisation
# --------------------------------------------------------------------------------------------


def _scalar_text(value: object, field: str) -> str:
    """A personalisation value as text: strings as they are, finite numbers, dates and times."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        raise PayloadError(field, f"must be a string or a number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, decimal.Decimal)):
        try:
            finite = math.isfinite(value)
        except (ValueError, decimal.InvalidOperation):  # signalling NaN
            finite = False
        if not finite:
            raise PayloadError(field, f"must be a finite number, got {value!r}")
        return str(value)
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    raise PayloadError(field, f"must be a string or a number, got {type(value).__name__}")


def _int_from_spec(value: object) -> Any:
    """An integral string or float as an ``int``; anything else unchanged (validation reports it)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit() and text.isascii():
            return int(text)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_SPEC_PARAMETER_TYPES = frozenset(
    {"text", "currency", "date_time", "image", "video", "document", "location", "gif", "product"}
)


def parameter_from_spec(value: Any, *, field: str = "parameter") -> dict[str, Any]:
    """Turn a personalisation value into a Meta parameter object.

    ``value`` is a string or number (a text parameter), a Meta parameter object (``{"type":
    "currency", "currency": {...}}``) or the flat form ``{"type": "currency", "fallback_value":
    ..., "code": "EUR", "amount_1000": "12500"}`` / ``{"type": "date_time", "fallback_value": ...}``
    / ``{"type": "image", "link": ...}`` (also ``video``, ``document`` and ``gif``) / ``{"type":
    "location", "latitude": ..., ...}`` / ``{"type": "product", "product_retailer_id": ...,
    "catalog_id": ...}``, where numeric strings are accepted for integers and numbers for a product's
    ids. ``parameter_name`` may be given in a mapping.
    """
    if not isinstance(value, Mapping):
        return {
            "type": "text",
            "text": check_param_text(_scalar_text(value, field), field, BODY_ONLY_TEXT_MAX),
        }
    ptype = value.get("type", "text")
    if ptype not in _SPEC_PARAMETER_TYPES:
        raise PayloadError(f"{field}.type", f"must be one of {sorted(_SPEC_PARAMETER_TYPES)}, got {ptype!r}")
    if ptype in value:  # already Meta's shape
        param: dict[str, Any] = dict(value)
        param["type"] = ptype
        if ptype == "text":
            param["text"] = _scalar_text(value["text"], f"{field}.text")
    else:
        if ptype == "text":
            raise PayloadError(f"{field}.text", "is required for a text parameter")
        rest = {k: v for k, v in value.items() if k not in ("type", "parameter_name")}
        param = {"type": ptype, ptype: _flat_value(ptype, rest, field)}
        if "parameter_name" in value:
            param["parameter_name"] = value["parameter_name"]
    return check_parameter(param, field, _SPEC_PARAMETER_TYPES, BODY_ONLY_TEXT_MAX)


#: The keys of a flat parameter whose personalisation values are turned into text.
_FLAT_TEXT_KEYS: dict[str, tuple[str, ...]] = {
    "currency": ("fallback_value",),
    "date_time": ("fallback_value",),
    "product": ("product_retailer_id", "catalog_id"),
}


def _flat_value(ptype: str, rest: dict[str, Any], field: str) -> dict[str, Any]:
    """The value object of a flat parameter: numbers made text where Meta wants text, integers where it
    wants integers (``amount_1000``)."""
    for key in _FLAT_TEXT_KEYS.get(ptype, ()):
        if key in rest:
            rest[key] = _scalar_text(rest[key], f"{field}.{ptype}.{key}")
    if ptype == "currency" and "amount_1000" in rest:
        rest["amount_1000"] = _int_from_spec(rest["amount_1000"])
    return rest


_BUTTON_SPEC_FIELD = {
    "url": ("text", "text"),
    "quick_reply": ("payload", "payload"),
    "copy_code": ("coupon_code", "coupon_code"),
}


def button_from_spec(spec: Mapping[str, Any], *, field: str = "button") -> dict[str, Any]:
    """Turn a flat button description into a Meta button component.

    Forms: ``{"type": "url", "index": 0, "text": ...}``, ``{"type": "quick_reply", "index": 1,
    "payload": ...}``, ``{"type": "copy_code", "index": 0, "coupon_code": ...}``, ``{"type":
    "flow", "index": 0, "flow_token": ..., "flow_action_data": {...}}``, ``{"type": "catalog",
    "index": 0, "thumbnail_product_retailer_id": ...}`` (without the id the button goes without
    parameters). A Meta button component (``"type": "button"``) is validated and returned as is.
    Numbers are accepted for text values.
    """
    s = check_mapping(spec, field)
    if s.get("type") == "button":
        return check_button(s, field)
    kind = s.get("type", s.get("sub_type"))
    if kind not in ("url", "quick_reply", "copy_code", "flow", "catalog"):
        raise PayloadError(
            f"{field}.type", f"must be one of url, quick_reply, copy_code, flow, catalog; got {kind!r}"
        )
    if "index" not in s:
        raise PayloadError(
            f"{field}.index", "is required: the zero-based position of the button in the template"
        )
    if kind in _BUTTON_SPEC_FIELD:
        key, ptype = _BUTTON_SPEC_FIELD[kind]
        if key not in s:
            raise PayloadError(f"{field}.{key}", f"is required for a {kind} button")
        param: dict[str, Any] = {"type": ptype, key: _scalar_text(s[key], f"{field}.{key}")}
    else:
        keys = ("flow_token", "flow_action_data") if kind == "flow" else ("thumbnail_product_retailer_id",)
        action = {k: s[k] for k in keys if s.get(k) is not None}
        if isinstance(s.get("action"), Mapping):
            action = {**s["action"], **action}
        if kind == "catalog" and not action:  # the catalogue's first product is the thumbnail
            return check_button({"type": "button", "sub_type": "catalog", "index": s["index"]}, field)
        param = {"type": "action", "action": action}
    return check_button(
        {"type": "button", "sub_type": kind, "index": s["index"], "parameters": [param]}, field
    )


def components_from_spec(
    *,
    header: Mapping[str, Any] | str | None = None,
    body: Sequence[Any] | Mapping[str, Any] | None = None,
    buttons: Sequence[Mapping[str, Any]] | None = None,
    limited_time_offer_ms: int | str | None = None,
) -> list[dict[str, Any]]:
    """Build a components list from the flat personalisation syntax.

    :param header: a string (text parameter) or a parameter description (see
        :func:`parameter_from_spec`), e.g. ``{"type": "image", "link": ...}``, ``{"type": "gif",
        "link": ...}`` or ``{"type": "product", "product_retailer_id": ..., "catalog_id": ...}``.
    :param body: a list (positional) or a mapping ``name -> value`` (named) of parameter values.
    :param buttons: flat button descriptions (see :func:`button_from_spec`).
    :param limited_time_offer_ms: expiry of a limited-time offer, Unix time in milliseconds.
    """
    components: list[dict[str, Any]] = []
    if header is not None:
        param = parameter_from_spec(header, field="header")
        components.append(header_component(param))
    if body is not None:
        components.append(body_component(body))
    if limited_time_offer_ms is not None:
        components.append(limited_time_offer_component(_int_from_spec(limited_time_offer_ms)))
    for i, spec in enumerate(buttons or ()):
        components.append(button_from_spec(spec, field=f"buttons[{i}]"))
    return check_component_list(components, "components")
