"""Validation of ``marketing_messages`` payloads: parameters, components and the whole message.

Each ``check_*`` function takes a part of a payload and the dotted path it sits at, raises
:class:`~airflow_provider_wamm.graph.errors.PayloadError` naming the first bad field (e.g.
``template.components[1].parameters[0].text``), and returns a checked copy with values normalised
the way Meta documents them (a button ``index`` as a digit string, component types in lower case).
The builders of :mod:`airflow_provider_wamm.graph.builders` call them on every part they build;
:func:`validate_marketing_message` checks a whole body, built there or by hand. The limits applied
are data in :mod:`airflow_provider_wamm.graph.limits`.

Written for the hot path of a bulk sender: a few microseconds per payload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from airflow_provider_wamm.graph.errors import InvalidRecipientError, PayloadError
from airflow_provider_wamm.graph.limits import (
    BODY_ONLY_TEXT_MAX,
    BODY_PARAMETER_TYPES,
    BODY_TEXT_MAX,
    BUTTON_PARAMETER_TYPE,
    BUTTON_SUB_TYPES,
    CARD_HEADER_PARAMETER_TYPES,
    CATALOG_ID_RE,
    COUPON_CODE_MAX,
    CURRENCY_CODE_RE,
    DOCUMENT_FILENAME_MAX,
    EXPIRATION_TIME_MS_MAX,
    FLOW_TOKEN_MAX,
    HEADER_PARAMETER_TYPES,
    HEADER_TEXT_MAX,
    HTTP_LINK_RE,
    INT32_MAX,
    INT32_MIN,
    LANGUAGE_CODE_RE,
    LANGUAGE_POLICIES,
    LATITUDE_MAX,
    LOCATION_TEXT_MAX,
    LONGITUDE_MAX,
    MAX_BUTTONS,
    MAX_CAROUSEL_CARDS,
    MEDIA_ID_MAX,
    MEDIA_LINK_MAX,
    OPTIONAL_PARAMETER_BUTTONS,
    PARAMETER_NAME_RE,
    PRODUCT_POLICIES,
    QUICK_REPLY_PAYLOAD_MAX,
    RETAILER_ID_MAX,
    TEMPLATE_NAME_MAX,
    TEMPLATE_NAME_RE,
    TOP_LEVEL_KEYS,
    URL_SUFFIX_MAX,
    WHITESPACE_RE,
    check_bsuid,
    check_callback_data,
    check_coordinate,
    check_index,
    check_int,
    check_list,
    check_mapping,
    check_param_text,
    check_str,
    check_to,
)

__all__ = [
    "check_button",
    "check_carousel",
    "check_component_list",
    "check_currency",
    "check_limited_time_offer",
    "check_location",
    "check_media",
    "check_parameter",
    "check_parameters",
    "check_product",
    "check_template",
    "validate_marketing_message",
]


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def check_media(value: object, field: str, kind: str) -> dict[str, Any]:
    """A media object (``image``, ``video``, ``document``, ``gif``): exactly one of ``id`` and an
    http(s) ``link``."""
    media = check_mapping(value, field)
    has_id = "id" in media and media["id"] is not None
    has_link = "link" in media and media["link"] is not None
    if has_id == has_link:
        raise PayloadError(
            field, f"give exactly one of 'id' (an uploaded media id) or 'link' (an https URL) for the {kind}"
        )
    out = dict(media)
    if has_id:
        out["id"] = check_str(media["id"], f"{field}.id", max_len=MEDIA_ID_MAX)
    else:
        link = check_str(media["link"], f"{field}.link", max_len=MEDIA_LINK_MAX)
        if not HTTP_LINK_RE.fullmatch(link):
            raise PayloadError(f"{field}.link", f"must be an http(s) URL without spaces, got {link[:80]!r}")
        out["link"] = link
    if "filename" in media and media["filename"] is not None:
        if kind != "document":
            raise PayloadError(f"{field}.filename", "only documents have a filename")
        out["filename"] = check_str(media["filename"], f"{field}.filename", max_len=DOCUMENT_FILENAME_MAX)
    if "caption" in media:
        raise PayloadError(f"{field}.caption", "captions are not supported on template media")
    return out


def _with_keys(value: object, field: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    """An object holding every one of ``keys`` (the first missing one is named)."""
    mapping = check_mapping(value, field)
    for key in keys:
        if key not in mapping:
            raise PayloadError(f"{field}.{key}", "is required")
    return mapping


def check_location(value: object, field: str) -> dict[str, Any]:
    """A location: latitude and longitude in range, optional ``name`` and ``address``."""
    location = _with_keys(value, field, ("latitude", "longitude"))
    out = dict(location)
    out["latitude"] = check_coordinate(location["latitude"], f"{field}.latitude", LATITUDE_MAX)
    out["longitude"] = check_coordinate(location["longitude"], f"{field}.longitude", LONGITUDE_MAX)
    for key in ("name", "address"):
        if key in location and location[key] is not None:
            out[key] = check_str(location[key], f"{field}.{key}", max_len=LOCATION_TEXT_MAX)
    return out


def check_product(value: object, field: str) -> dict[str, Any]:
    """A product of a ``product`` header: its ``product_retailer_id`` and the ``catalog_id`` holding it."""
    product = _with_keys(value, field, ("product_retailer_id", "catalog_id"))
    out = dict(product)
    out["product_retailer_id"] = check_str(
        product["product_retailer_id"], f"{field}.product_retailer_id", max_len=RETAILER_ID_MAX
    )
    catalog_id = product["catalog_id"]
    if type(catalog_id) is not str or not CATALOG_ID_RE.fullmatch(catalog_id):
        raise PayloadError(
            f"{field}.catalog_id", f"must be the catalogue's id as a string of digits, got {catalog_id!r}"
        )
    return out


def check_currency(value: object, field: str) -> dict[str, Any]:
    """A currency: ``fallback_value``, an ISO 4217 ``code`` and ``amount_1000`` (a 32-bit integer)."""
    currency = _with_keys(value, field, ("fallback_value", "code", "amount_1000"))
    out = dict(currency)
    out["fallback_value"] = check_param_text(
        currency["fallback_value"], f"{field}.fallback_value", BODY_ONLY_TEXT_MAX
    )
    code = currency["code"]
    if type(code) is not str or not CURRENCY_CODE_RE.fullmatch(code):
        raise PayloadError(f"{field}.code", f"must be an ISO 4217 currency code such as 'EUR', got {code!r}")
    out["amount_1000"] = check_int(
        currency["amount_1000"], f"{field}.amount_1000", minimum=INT32_MIN, maximum=INT32_MAX
    )
    return out


def _check_date_time(value: object, field: str) -> dict[str, Any]:
    """A ``date_time`` parameter's object: its ``fallback_value`` is the text shown."""
    date_time = _with_keys(value, field, ("fallback_value",))
    out = dict(date_time)
    out["fallback_value"] = check_param_text(
        date_time["fallback_value"], f"{field}.fallback_value", BODY_ONLY_TEXT_MAX
    )
    return out


def check_parameter(param: object, field: str, allowed: frozenset[str], text_max: int) -> dict[str, Any]:
    """Validate one header/body parameter and return a shallow copy."""
    p = check_mapping(param, field)
    ptype = p.get("type")
    if ptype not in allowed:
        raise PayloadError(f"{field}.type", f"must be one of {sorted(allowed)}, got {ptype!r}")
    if ptype not in p:
        raise PayloadError(f"{field}.{ptype}", f"is required for a {ptype} parameter")
    value, at = p[ptype], f"{field}.{ptype}"
    out = dict(p)
    if ptype == "text":
        out["text"] = check_param_text(value, at, text_max)
    elif ptype == "currency":
        out["currency"] = check_currency(value, at)
    elif ptype == "date_time":
        out["date_time"] = _check_date_time(value, at)
    elif ptype == "location":
        out["location"] = check_location(value, at)
    elif ptype == "product":
        out["product"] = check_product(value, at)
    else:  # image, video, document, gif
        out[ptype] = check_media(value, at, ptype)
    name = p.get("parameter_name")
    if name is not None and (type(name) is not str or not PARAMETER_NAME_RE.fullmatch(name)):
        raise PayloadError(
            f"{field}.parameter_name",
            f"must be lower-case letters, digits and underscores as in the template, got {name!r}",
        )
    return out


def check_parameters(
    params: object,
    field: str,
    allowed: frozenset[str],
    text_max: int,
    *,
    min_items: int,
    max_items: int | None,
) -> list[dict[str, Any]]:
    """A component's ``parameters``: each checked, named and positional ones never mixed, names unique."""
    seq = check_list(params, field)
    n = len(seq)
    if n < min_items:
        raise PayloadError(field, f"needs at least {min_items} parameter(s)")
    if max_items is not None and n > max_items:
        raise PayloadError(field, f"has {n} parameters; at most {max_items} allowed")
    out = [check_parameter(p, f"{field}[{i}]", allowed, text_max) for i, p in enumerate(seq)]
    if n > 1:
        named = [p.get("parameter_name") for p in out]
        has_named = [name is not None for name in named]
        if any(has_named):
            if not all(has_named):
                first = has_named.index(False)
                raise PayloadError(
                    f"{field}[{first}].parameter_name",
                    "is missing: named and positional parameters cannot be mixed in one component",
                )
            seen: set[object] = set()
            for i, name in enumerate(named):
                if name in seen:
                    raise PayloadError(
                        f"{field}[{i}].parameter_name", f"duplicates the named parameter {name!r}"
                    )
                seen.add(name)
    return out


# --------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------


def check_button(comp: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A ``button`` component: a known ``sub_type`` (any case), an ``index`` 0-9 and one parameter (none
    at all for a ``catalog`` button that shows the catalogue's first product)."""
    sub_type = comp.get("sub_type")
    if type(sub_type) is str and sub_type.lower() != sub_type and sub_type.lower() in BUTTON_PARAMETER_TYPE:
        sub_type = sub_type.lower()  # Meta's catalog examples spell it "CATALOG".
    if sub_type not in BUTTON_PARAMETER_TYPE:
        raise PayloadError(f"{field}.sub_type", f"must be one of {list(BUTTON_SUB_TYPES)}, got {sub_type!r}")
    if "index" not in comp:
        raise PayloadError(
            f"{field}.index", "is required: the zero-based position of the button in the template"
        )
    out = dict(comp)
    out["sub_type"] = sub_type
    out["index"] = check_index(comp["index"], f"{field}.index")
    pfield = f"{field}.parameters"
    if "parameters" not in comp and sub_type in OPTIONAL_PARAMETER_BUTTONS:
        return out
    if "parameters" not in comp:
        raise PayloadError(pfield, f"is required for a {sub_type} button")
    seq = check_list(comp["parameters"], pfield)
    if len(seq) != 1:
        raise PayloadError(pfield, f"a {sub_type} button takes exactly one parameter, got {len(seq)}")
    out["parameters"] = [_check_button_parameter(seq[0], f"{pfield}[0]", sub_type)]
    return out


def _check_button_parameter(value: object, pf: str, sub_type: str) -> dict[str, Any]:
    """The one parameter of a ``sub_type`` button: the type that sub-type takes, and its value."""
    p = check_mapping(value, pf)
    expected = BUTTON_PARAMETER_TYPE[sub_type]
    if p.get("type") != expected:
        raise PayloadError(
            f"{pf}.type", f"a {sub_type} button's parameter has type {expected!r}, got {p.get('type')!r}"
        )
    param = dict(p)
    if expected not in p:
        raise PayloadError(f"{pf}.{expected}", "is required")
    if sub_type == "url":
        suffix = check_str(p["text"], f"{pf}.text", max_len=URL_SUFFIX_MAX)
        if WHITESPACE_RE.search(suffix):
            raise PayloadError(
                f"{pf}.text",
                "must not contain white space; percent-encode the URL suffix (urllib.parse.quote)",
            )
        param["text"] = suffix
    elif sub_type == "quick_reply":
        param["payload"] = check_str(p["payload"], f"{pf}.payload", max_len=QUICK_REPLY_PAYLOAD_MAX)
    elif sub_type == "copy_code":
        param["coupon_code"] = check_str(p["coupon_code"], f"{pf}.coupon_code", max_len=COUPON_CODE_MAX)
    else:
        param["action"] = _check_button_action(p["action"], f"{pf}.action", sub_type)
    return param


def _check_button_action(value: object, field: str, sub_type: str) -> dict[str, Any]:
    """The ``action`` of a ``flow``, ``catalog`` or ``mpm`` button."""
    action = check_mapping(value, field)
    if sub_type == "flow":
        if "flow_token" in action and action["flow_token"] is not None:
            check_str(action["flow_token"], f"{field}.flow_token", max_len=FLOW_TOKEN_MAX)
        if "flow_action_data" in action and action["flow_action_data"] is not None:
            check_mapping(action["flow_action_data"], f"{field}.flow_action_data")
    elif sub_type == "catalog":
        retailer_id = action.get("thumbnail_product_retailer_id")
        if retailer_id is not None:
            check_str(retailer_id, f"{field}.thumbnail_product_retailer_id", max_len=RETAILER_ID_MAX)
    elif "sections" in action:  # mpm
        check_list(action["sections"], f"{field}.sections")
    return dict(action)


def check_limited_time_offer(comp: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A ``limited_time_offer`` component: one parameter with ``expiration_time_ms``."""
    pfield = f"{field}.parameters"
    if "parameters" not in comp:
        raise PayloadError(pfield, "is required for a limited_time_offer component")
    seq = check_list(comp["parameters"], pfield)
    if len(seq) != 1:
        raise PayloadError(
            pfield, f"a limited_time_offer component takes exactly one parameter, got {len(seq)}"
        )
    p = check_mapping(seq[0], f"{pfield}[0]")
    if p.get("type") != "limited_time_offer":
        raise PayloadError(f"{pfield}[0].type", f"must be 'limited_time_offer', got {p.get('type')!r}")
    lto = check_mapping(p.get("limited_time_offer"), f"{pfield}[0].limited_time_offer")
    efield = f"{pfield}[0].limited_time_offer.expiration_time_ms"
    if "expiration_time_ms" not in lto:
        raise PayloadError(efield, "is required (Unix time in milliseconds when the offer ends)")
    param = dict(p)
    param["limited_time_offer"] = dict(lto)
    param["limited_time_offer"]["expiration_time_ms"] = check_int(
        lto["expiration_time_ms"], efield, minimum=1, maximum=EXPIRATION_TIME_MS_MAX
    )
    out = dict(comp)
    out["parameters"] = [param]
    return out


def check_carousel(comp: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A ``carousel`` component: 1-10 cards, each with a unique ``card_index`` and its own components."""
    cfield = f"{field}.cards"
    if "cards" not in comp:
        raise PayloadError(cfield, "is required for a carousel component")
    cards = check_list(comp["cards"], cfield)
    if not 1 <= len(cards) <= MAX_CAROUSEL_CARDS:
        raise PayloadError(cfield, f"must hold 1 to {MAX_CAROUSEL_CARDS} cards, got {len(cards)}")
    out_cards = []
    seen: set[int] = set()
    for i, card in enumerate(cards):
        f = f"{cfield}[{i}]"
        c = check_mapping(card, f)
        if "card_index" not in c:
            raise PayloadError(f"{f}.card_index", "is required")
        idx = check_int(c["card_index"], f"{f}.card_index", minimum=0, maximum=MAX_CAROUSEL_CARDS - 1)
        if idx in seen:
            raise PayloadError(f"{f}.card_index", f"duplicates card {idx}")
        seen.add(idx)
        if "components" not in c:
            raise PayloadError(f"{f}.components", "is required")
        new = dict(c)
        new["card_index"] = idx
        new["components"] = check_component_list(c["components"], f"{f}.components", in_card=True)
        out_cards.append(new)
    out = dict(comp)
    out["cards"] = out_cards
    return out


class _SeenComponents:
    """What a components list held so far: singleton types, button indexes and the copy_code button."""

    __slots__ = ("button_indexes", "coupon_at", "singletons")

    def __init__(self) -> None:
        self.singletons: dict[str, int] = {}
        self.button_indexes: dict[str, int] = {}
        self.coupon_at: int | None = None

    def add(self, component: Mapping[str, Any], i: int, field: str) -> None:
        """Record ``component`` (checked, at position ``i``); raise if the list may not hold it too."""
        ctype = component["type"]
        if ctype == "button":
            idx = component["index"]
            if idx in self.button_indexes:
                raise PayloadError(
                    f"{field}.index", f"duplicates the button at components[{self.button_indexes[idx]}]"
                )
            self.button_indexes[idx] = i
            if component["sub_type"] == "copy_code":
                if self.coupon_at is not None:
                    raise PayloadError(
                        field,
                        f"only one copy_code button is allowed (another at components[{self.coupon_at}])",
                    )
                self.coupon_at = i
        elif ctype in self.singletons:
            raise PayloadError(
                f"{field}.type",
                f"a second {ctype} component (the first is components[{self.singletons[ctype]}])",
            )
        else:
            self.singletons[ctype] = i


def check_component_list(components: object, field: str, *, in_card: bool = False) -> list[dict[str, Any]]:
    """A template's ``components`` (``in_card``: a carousel card's), each checked and returned as a copy.

    At most one header, body, limited-time offer and carousel; button indexes unique, one ``copy_code``
    button, at most :data:`~airflow_provider_wamm.graph.limits.MAX_BUTTONS` buttons. A body that is the
    only component may be longer (:data:`~airflow_provider_wamm.graph.limits.BODY_ONLY_TEXT_MAX`).
    """
    seq = check_list(components, field)
    body_text_max = BODY_ONLY_TEXT_MAX if len(seq) == 1 and not in_card else BODY_TEXT_MAX
    seen = _SeenComponents()
    out: list[dict[str, Any]] = []
    for i, comp in enumerate(seq):
        f = f"{field}[{i}]"
        new = _check_component(comp, f, in_card=in_card, body_text_max=body_text_max)
        seen.add(new, i, f)
        out.append(new)
    if len(seen.button_indexes) > MAX_BUTTONS:
        raise PayloadError(
            field, f"has {len(seen.button_indexes)} buttons; a template has at most {MAX_BUTTONS}"
        )
    return out


def _check_component(comp: object, field: str, *, in_card: bool, body_text_max: int) -> dict[str, Any]:
    """One component of any type, its ``type`` in lower case."""
    c = check_mapping(comp, field)
    ctype = c.get("type")
    if type(ctype) is str and ctype != ctype.lower():
        ctype = ctype.lower()
    if ctype == "button":
        new = check_button(c, field)
    elif ctype == "body":
        new = _with_parameters(
            c, field, "body", BODY_PARAMETER_TYPES, body_text_max, min_items=0, max_items=None
        )
    elif ctype == "header":
        allowed = CARD_HEADER_PARAMETER_TYPES if in_card else HEADER_PARAMETER_TYPES
        new = _with_parameters(c, field, "header", allowed, HEADER_TEXT_MAX, min_items=1, max_items=1)
    elif ctype == "limited_time_offer" and not in_card:
        new = check_limited_time_offer(c, field)
    elif ctype == "carousel" and not in_card:
        new = check_carousel(c, field)
    else:
        types = ["header", "body", "button"] + ([] if in_card else ["limited_time_offer", "carousel"])
        raise PayloadError(f"{field}.type", f"must be one of {types}, got {c.get('type')!r}")
    new["type"] = ctype
    return new


def _with_parameters(
    comp: Mapping[str, Any],
    field: str,
    kind: str,
    allowed: frozenset[str],
    text_max: int,
    *,
    min_items: int,
    max_items: int | None,
) -> dict[str, Any]:
    """A header or body component: a copy with its ``parameters`` checked."""
    if "parameters" not in comp:
        raise PayloadError(f"{field}.parameters", f"is required for a {kind} component")
    new = dict(comp)
    new["parameters"] = check_parameters(
        comp["parameters"], f"{field}.parameters", allowed, text_max, min_items=min_items, max_items=max_items
    )
    return new


# --------------------------------------------------------------------------------------------
# Whole message
# --------------------------------------------------------------------------------------------


def check_template(
    name: object, language: object, policy: object, components: object | None
) -> dict[str, Any]:
    """The ``template`` object of a send, built from its parts (components are checked when given)."""
    if type(name) is not str or len(name) > TEMPLATE_NAME_MAX or not TEMPLATE_NAME_RE.fullmatch(name):
        raise PayloadError(
            "template.name",
            f"must be the template's name: lower-case letters, digits and underscores, at most "
            f"{TEMPLATE_NAME_MAX} characters, got {name!r}",
        )
    if type(language) is not str or not LANGUAGE_CODE_RE.fullmatch(language):
        raise PayloadError(
            "template.language.code",
            f"must be a template language code such as 'en' or 'en_US', got {language!r}",
        )
    lang: dict[str, Any] = {"code": language}
    if policy is not None:
        if policy not in LANGUAGE_POLICIES:
            raise PayloadError(
                "template.language.policy", f"must be 'deterministic' or omitted, got {policy!r}"
            )
        lang["policy"] = policy
    template: dict[str, Any] = {"name": name, "language": lang}
    if components is not None:
        checked = check_component_list(components, "template.components")
        if checked:
            template["components"] = checked
    return template


def validate_marketing_message(payload: Mapping[str, Any]) -> None:
    """Check a complete ``marketing_messages`` body; raise :class:`PayloadError` naming the first bad field.

    Accepts what :func:`build_marketing_message` returns and hand-written payloads. Top-level
    keys other than Meta's documented ones (including ``recipient``, ``bid_spec`` and
    ``biz_opaque_callback_data``) are rejected, which catches misspelt options.
    """
    p = check_mapping(payload, "payload")
    for key in p:
        if key not in TOP_LEVEL_KEYS:
            raise PayloadError(
                str(key), f"is not a field of a marketing message (allowed: {sorted(TOP_LEVEL_KEYS)})"
            )
    for key, expected in (
        ("messaging_product", "whatsapp"),
        ("recipient_type", "individual"),
        ("type", "template"),
    ):
        if p.get(key) != expected:
            raise PayloadError(key, f"must be {expected!r}, got {p.get(key)!r}")
    if p.get("to") is None and p.get("recipient") is None:
        raise InvalidRecipientError(
            "to", "give a phone number ('to') or a business-scoped user id ('recipient')"
        )
    if p.get("to") is not None:
        check_to(p["to"])
    if p.get("recipient") is not None:
        check_bsuid(p["recipient"])
    template = check_mapping(p.get("template"), "template")
    language = check_mapping(template.get("language"), "template.language")
    check_template(
        template.get("name"), language.get("code"), language.get("policy"), template.get("components")
    )
    _check_options(p)


def _check_options(p: Mapping[str, Any]) -> None:
    """The optional top-level fields of a send: policies, activity sharing, max price, callback data."""
    if "product_policy" in p and p["product_policy"] not in PRODUCT_POLICIES:
        raise PayloadError(
            "product_policy", f"must be one of {list(PRODUCT_POLICIES)}, got {p['product_policy']!r}"
        )
    if "message_activity_sharing" in p and type(p["message_activity_sharing"]) is not bool:
        raise PayloadError(
            "message_activity_sharing", f"must be true or false, got {p['message_activity_sharing']!r}"
        )
    if "biz_opaque_callback_data" in p:
        check_callback_data(p["biz_opaque_callback_data"])
    if "bid_spec" in p:
        bid = check_mapping(p["bid_spec"], "bid_spec")
        multiplier = bid.get("per_message_bid_multiplier")
        if multiplier is not None and (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, (int, float))
            or not math.isfinite(multiplier)
            or multiplier <= 0
        ):
            raise PayloadError(
                "bid_spec.per_message_bid_multiplier", f"must be a positive number, got {multiplier!r}"
            )
