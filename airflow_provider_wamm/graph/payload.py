"""Request payloads for ``POST /{Version}/{Phone-Number-ID}/marketing_messages``: builders and validation.

The builders return plain ``dict`` objects shaped exactly as Meta expects them, so they can be
serialised as JSON and compared with Meta's documentation. :func:`validate_marketing_message`
checks a whole payload (built here or by hand) and raises :class:`PayloadError` naming the
offending field as a dotted path, e.g. ``template.components[1].parameters[0].text``.

Limits enforced (see Meta's template and parameter references):

* template name ``^[a-z0-9_]+$``, at most 512 characters;
* header text parameter at most 60 characters; body text parameter at most 1,024 characters,
  or 32,768 when the body is the only component sent;
* text parameters may not contain new lines, tabs or more than four consecutive spaces (Meta
  answers "Param text cannot have new-line/tab characters or more than 4 consecutive spaces");
* coupon codes at most 20 characters, one ``copy_code`` button per message;
* URL button suffix at most 2,000 characters, without white space (percent-encode it);
* at most 10 buttons, button ``index`` 0-9, at most 10 carousel cards;
* currency codes ISO 4217 (three capital letters), ``amount_1000`` a 32-bit integer;
* media by ``id`` or by ``http(s)`` ``link``, never both;
* named parameters (``parameter_name``) and positional ones are never mixed in one component.

Validation is written for the hot path of a bulk sender (a few microseconds per payload).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_wamm.graph.errors import InvalidRecipientError, PayloadError

__all__ = [
    "BODY_ONLY_TEXT_MAX",
    "BODY_TEXT_MAX",
    "BUTTON_SUB_TYPES",
    "COUPON_CODE_MAX",
    "HEADER_TEXT_MAX",
    "LANGUAGE_POLICIES",
    "MAX_BUTTONS",
    "MAX_CAROUSEL_CARDS",
    "PRODUCT_POLICIES",
    "TEMPLATE_NAME_MAX",
    "URL_SUFFIX_MAX",
    "InvalidRecipientError",
    "PayloadError",
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
    "header_component",
    "image_param",
    "limited_time_offer_component",
    "location_param",
    "parameter_from_spec",
    "quick_reply_button",
    "text_param",
    "url_button",
    "validate_marketing_message",
    "video_param",
]


#: Longest template name Meta accepts.
TEMPLATE_NAME_MAX = 512
#: Longest text parameter in a header.
HEADER_TEXT_MAX = 60
#: Longest text parameter in a body sent together with other components.
BODY_TEXT_MAX = 1024
#: Longest text parameter in a body that is the only component sent.
BODY_ONLY_TEXT_MAX = 32768
#: Longest coupon code of a ``copy_code`` button.
COUPON_CODE_MAX = 20
#: Longest suffix of a dynamic URL button (the whole URL is limited to 2,000 characters).
URL_SUFFIX_MAX = 2000
#: Most buttons a template can have (so indexes run 0-9).
MAX_BUTTONS = 10
#: Most cards of a carousel.
MAX_CAROUSEL_CARDS = 10
#: Values of the top-level ``product_policy`` field.
PRODUCT_POLICIES = ("CLOUD_API_FALLBACK", "STRICT")
#: Values of ``template.language.policy``.
LANGUAGE_POLICIES = ("deterministic",)
#: Button ``sub_type`` values this module knows how to validate.
BUTTON_SUB_TYPES = ("url", "quick_reply", "copy_code", "flow", "catalog", "mpm")

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_TEMPLATE_NAME_RE = re.compile(r"[a-z0-9_]+")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:_[A-Za-z0-9]{2,4})?")
_PARAMETER_NAME_RE = re.compile(r"[a-z0-9_]+")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_TO_RE = re.compile(r"\+?([0-9]{5,15})")
_BAD_TEXT_RE = re.compile(r"[\n\r\t]| {5}")
_WHITESPACE_RE = re.compile(r"\s")
_HTTP_LINK_RE = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)
_BSUID_MAX = 256

_TOP_LEVEL_KEYS = frozenset(
    {
        "messaging_product",
        "recipient_type",
        "to",
        "recipient",
        "type",
        "template",
        "product_policy",
        "message_activity_sharing",
        "bid_spec",
        "biz_opaque_callback_data",
    }
)
_HEADER_TYPES = frozenset({"text", "image", "video", "document", "location"})
_BODY_TYPES = frozenset({"text", "currency", "date_time"})
_CARD_HEADER_TYPES = frozenset({"image", "video"})
_MEDIA_TYPES = frozenset({"image", "video", "document"})
_BUTTON_PARAMETER_TYPE = {
    "url": "text",
    "quick_reply": "payload",
    "copy_code": "coupon_code",
    "flow": "action",
    "catalog": "action",
    "mpm": "action",
}


def _fail(field: str, reason: str) -> PayloadError:
    return PayloadError(field, reason)


def _type_name(value: object) -> str:
    return type(value).__name__


# --------------------------------------------------------------------------------------------
# Scalar checks
# --------------------------------------------------------------------------------------------


def _check_str(value: object, field: str, *, max_len: int | None = None, allow_empty: bool = False) -> str:
    if type(value) is not str:
        if not isinstance(value, str):
            raise _fail(field, f"must be a string, got {_type_name(value)}")
        value = str(value)
    if not allow_empty and not value.strip():
        raise _fail(field, "must not be empty")
    if max_len is not None and len(value) > max_len:
        raise _fail(field, f"is {len(value)} characters long; Meta allows at most {max_len}")
    return value


def _check_param_text(value: object, field: str, max_len: int) -> str:
    text = _check_str(value, field, max_len=max_len)
    if _BAD_TEXT_RE.search(text):
        raise _fail(
            field,
            "must not contain new lines, tabs or more than 4 consecutive spaces (Meta rejects such "
            "parameters); put line breaks in the template text instead",
        )
    return text


def _check_int(value: object, field: str, *, minimum: int, maximum: int) -> int:
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(field, f"must be an integer, got {_type_name(value)}")
        value = int(value)
    if not minimum <= value <= maximum:
        raise _fail(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def _check_mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(field, f"must be an object (mapping), got {_type_name(value)}")
    return value


def _check_list(value: object, field: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        raise _fail(field, f"must be a list, got {_type_name(value)}")
    return value


def _check_index(value: object, field: str) -> str:
    """A button index: an ``int`` 0-9 or its decimal string, normalised to the string Meta documents."""
    if type(value) is str and len(value) == 1 and "0" <= value <= "9":
        return value
    if type(value) is int and 0 <= value < MAX_BUTTONS:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        number = int(value.strip())
        if number < MAX_BUTTONS:
            return str(number)
    raise _fail(field, f"must be a button position 0-{MAX_BUTTONS - 1} (int or digit string), got {value!r}")


def _check_coordinate(value: object, field: str, limit: float) -> Any:
    if isinstance(value, bool):
        raise _fail(field, "must be a number or a numeric string, got bool")
    try:
        number = float(value) if isinstance(value, (int, float, str, decimal.Decimal)) else math.nan
    except (ValueError, OverflowError, decimal.InvalidOperation):
        number = math.nan
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise _fail(field, f"must be a number between -{limit:g} and {limit:g}, got {value!r}")
    return value if isinstance(value, (str, int, float)) else str(value)


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def _check_media(value: object, field: str, kind: str) -> dict[str, Any]:
    media = _check_mapping(value, field)
    has_id = "id" in media and media["id"] is not None
    has_link = "link" in media and media["link"] is not None
    if has_id == has_link:
        raise _fail(
            field, f"give exactly one of 'id' (an uploaded media id) or 'link' (an https URL) for the {kind}"
        )
    out = dict(media)
    if has_id:
        out["id"] = _check_str(media["id"], f"{field}.id", max_len=256)
    else:
        link = _check_str(media["link"], f"{field}.link", max_len=URL_SUFFIX_MAX)
        if not _HTTP_LINK_RE.fullmatch(link):
            raise _fail(f"{field}.link", f"must be an http(s) URL without spaces, got {link[:80]!r}")
        out["link"] = link
    if "filename" in media and media["filename"] is not None:
        if kind != "document":
            raise _fail(f"{field}.filename", "only documents have a filename")
        out["filename"] = _check_str(media["filename"], f"{field}.filename", max_len=240)
    if "caption" in media:
        raise _fail(f"{field}.caption", "captions are not supported on template media")
    return out


def _check_location(value: object, field: str) -> dict[str, Any]:
    location = _check_mapping(value, field)
    for key in ("latitude", "longitude"):
        if key not in location:
            raise _fail(f"{field}.{key}", "is required")
    out = dict(location)
    out["latitude"] = _check_coordinate(location["latitude"], f"{field}.latitude", 90.0)
    out["longitude"] = _check_coordinate(location["longitude"], f"{field}.longitude", 180.0)
    for key in ("name", "address"):
        if key in location and location[key] is not None:
            out[key] = _check_str(location[key], f"{field}.{key}", max_len=1000)
    return out


def _check_currency(value: object, field: str) -> dict[str, Any]:
    currency = _check_mapping(value, field)
    out = dict(currency)
    for key in ("fallback_value", "code", "amount_1000"):
        if key not in currency:
            raise _fail(f"{field}.{key}", "is required")
    out["fallback_value"] = _check_param_text(
        currency["fallback_value"], f"{field}.fallback_value", BODY_ONLY_TEXT_MAX
    )
    code = currency["code"]
    if type(code) is not str or not _CURRENCY_RE.fullmatch(code):
        raise _fail(f"{field}.code", f"must be an ISO 4217 currency code such as 'EUR', got {code!r}")
    out["amount_1000"] = _check_int(
        currency["amount_1000"], f"{field}.amount_1000", minimum=_INT32_MIN, maximum=_INT32_MAX
    )
    return out


def _check_parameter(param: object, field: str, allowed: frozenset[str], text_max: int) -> dict[str, Any]:
    """Validate one header/body parameter and return a shallow copy."""
    p = _check_mapping(param, field)
    ptype = p.get("type")
    if ptype not in allowed:
        raise _fail(f"{field}.type", f"must be one of {sorted(allowed)}, got {ptype!r}")
    out = dict(p)
    if ptype == "text":
        if "text" not in p:
            raise _fail(f"{field}.text", "is required for a text parameter")
        out["text"] = _check_param_text(p["text"], f"{field}.text", text_max)
    elif ptype == "currency":
        if "currency" not in p:
            raise _fail(f"{field}.currency", "is required for a currency parameter")
        out["currency"] = _check_currency(p["currency"], f"{field}.currency")
    elif ptype == "date_time":
        if "date_time" not in p:
            raise _fail(f"{field}.date_time", "is required for a date_time parameter")
        dt = _check_mapping(p["date_time"], f"{field}.date_time")
        if "fallback_value" not in dt:
            raise _fail(f"{field}.date_time.fallback_value", "is required")
        out["date_time"] = dict(dt)
        out["date_time"]["fallback_value"] = _check_param_text(
            dt["fallback_value"], f"{field}.date_time.fallback_value", BODY_ONLY_TEXT_MAX
        )
    elif ptype == "location":
        if "location" not in p:
            raise _fail(f"{field}.location", "is required for a location parameter")
        out["location"] = _check_location(p["location"], f"{field}.location")
    else:  # image, video, document
        if ptype not in p:
            raise _fail(f"{field}.{ptype}", f"is required for a {ptype} parameter")
        out[ptype] = _check_media(p[ptype], f"{field}.{ptype}", ptype)
    name = p.get("parameter_name")
    if name is not None and (type(name) is not str or not _PARAMETER_NAME_RE.fullmatch(name)):
        raise _fail(
            f"{field}.parameter_name",
            f"must be lower-case letters, digits and underscores as in the template, got {name!r}",
        )
    return out


def _check_parameter_list(
    params: object,
    field: str,
    allowed: frozenset[str],
    text_max: int,
    *,
    min_items: int,
    max_items: int | None,
) -> list[dict[str, Any]]:
    seq = _check_list(params, field)
    n = len(seq)
    if n < min_items:
        raise _fail(field, f"needs at least {min_items} parameter(s)")
    if max_items is not None and n > max_items:
        raise _fail(field, f"has {n} parameters; at most {max_items} allowed")
    out = [_check_parameter(p, f"{field}[{i}]", allowed, text_max) for i, p in enumerate(seq)]
    if n > 1:
        named = [p.get("parameter_name") for p in out]
        has_named = [name is not None for name in named]
        if any(has_named):
            if not all(has_named):
                first = has_named.index(False)
                raise _fail(
                    f"{field}[{first}].parameter_name",
                    "is missing: named and positional parameters cannot be mixed in one component",
                )
            seen: set[object] = set()
            for i, name in enumerate(named):
                if name in seen:
                    raise _fail(f"{field}[{i}].parameter_name", f"duplicates the named parameter {name!r}")
                seen.add(name)
    return out


# --------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------


def _check_button(comp: Mapping[str, Any], field: str) -> dict[str, Any]:
    sub_type = comp.get("sub_type")
    if type(sub_type) is str and sub_type.lower() != sub_type and sub_type.lower() in _BUTTON_PARAMETER_TYPE:
        sub_type = sub_type.lower()  # Meta's catalog examples spell it "CATALOG".
    if sub_type not in _BUTTON_PARAMETER_TYPE:
        raise _fail(f"{field}.sub_type", f"must be one of {list(BUTTON_SUB_TYPES)}, got {sub_type!r}")
    if "index" not in comp:
        raise _fail(f"{field}.index", "is required: the zero-based position of the button in the template")
    out = dict(comp)
    out["sub_type"] = sub_type
    out["index"] = _check_index(comp["index"], f"{field}.index")
    pfield = f"{field}.parameters"
    if "parameters" not in comp:
        raise _fail(pfield, f"is required for a {sub_type} button")
    seq = _check_list(comp["parameters"], pfield)
    if len(seq) != 1:
        raise _fail(pfield, f"a {sub_type} button takes exactly one parameter, got {len(seq)}")
    pf = f"{pfield}[0]"
    p = _check_mapping(seq[0], pf)
    expected = _BUTTON_PARAMETER_TYPE[sub_type]
    if p.get("type") != expected:
        raise _fail(
            f"{pf}.type", f"a {sub_type} button's parameter has type {expected!r}, got {p.get('type')!r}"
        )
    param = dict(p)
    if expected not in p:
        raise _fail(f"{pf}.{expected}", "is required")
    if sub_type == "url":
        suffix = _check_str(p["text"], f"{pf}.text", max_len=URL_SUFFIX_MAX)
        if _WHITESPACE_RE.search(suffix):
            raise _fail(
                f"{pf}.text",
                "must not contain white space; percent-encode the URL suffix (urllib.parse.quote)",
            )
        param["text"] = suffix
    elif sub_type == "quick_reply":
        param["payload"] = _check_str(p["payload"], f"{pf}.payload", max_len=1000)
    elif sub_type == "copy_code":
        param["coupon_code"] = _check_str(p["coupon_code"], f"{pf}.coupon_code", max_len=COUPON_CODE_MAX)
    else:
        action = _check_mapping(p["action"], f"{pf}.action")
        param["action"] = dict(action)
        if sub_type == "flow":
            if "flow_token" in action and action["flow_token"] is not None:
                _check_str(action["flow_token"], f"{pf}.action.flow_token", max_len=1000)
            if "flow_action_data" in action and action["flow_action_data"] is not None:
                _check_mapping(action["flow_action_data"], f"{pf}.action.flow_action_data")
        elif sub_type == "catalog":
            retailer_id = action.get("thumbnail_product_retailer_id")
            if retailer_id is not None:
                _check_str(retailer_id, f"{pf}.action.thumbnail_product_retailer_id", max_len=100)
        elif "sections" in action:  # mpm
            _check_list(action["sections"], f"{pf}.action.sections")
    out["parameters"] = [param]
    return out


def _check_limited_time_offer(comp: Mapping[str, Any], field: str) -> dict[str, Any]:
    pfield = f"{field}.parameters"
    if "parameters" not in comp:
        raise _fail(pfield, "is required for a limited_time_offer component")
    seq = _check_list(comp["parameters"], pfield)
    if len(seq) != 1:
        raise _fail(pfield, f"a limited_time_offer component takes exactly one parameter, got {len(seq)}")
    p = _check_mapping(seq[0], f"{pfield}[0]")
    if p.get("type") != "limited_time_offer":
        raise _fail(f"{pfield}[0].type", f"must be 'limited_time_offer', got {p.get('type')!r}")
    lto = _check_mapping(p.get("limited_time_offer"), f"{pfield}[0].limited_time_offer")
    efield = f"{pfield}[0].limited_time_offer.expiration_time_ms"
    if "expiration_time_ms" not in lto:
        raise _fail(efield, "is required (Unix time in milliseconds when the offer ends)")
    param = dict(p)
    param["limited_time_offer"] = dict(lto)
    param["limited_time_offer"]["expiration_time_ms"] = _check_int(
        lto["expiration_time_ms"], efield, minimum=1, maximum=2**53
    )
    out = dict(comp)
    out["parameters"] = [param]
    return out


def _check_carousel(comp: Mapping[str, Any], field: str) -> dict[str, Any]:
    cfield = f"{field}.cards"
    if "cards" not in comp:
        raise _fail(cfield, "is required for a carousel component")
    cards = _check_list(comp["cards"], cfield)
    if not 1 <= len(cards) <= MAX_CAROUSEL_CARDS:
        raise _fail(cfield, f"must hold 1 to {MAX_CAROUSEL_CARDS} cards, got {len(cards)}")
    out_cards = []
    seen: set[int] = set()
    for i, card in enumerate(cards):
        f = f"{cfield}[{i}]"
        c = _check_mapping(card, f)
        if "card_index" not in c:
            raise _fail(f"{f}.card_index", "is required")
        idx = _check_int(c["card_index"], f"{f}.card_index", minimum=0, maximum=MAX_CAROUSEL_CARDS - 1)
        if idx in seen:
            raise _fail(f"{f}.card_index", f"duplicates card {idx}")
        seen.add(idx)
        if "components" not in c:
            raise _fail(f"{f}.components", "is required")
        new = dict(c)
        new["card_index"] = idx
        new["components"] = _check_components(c["components"], f"{f}.components", in_card=True)
        out_cards.append(new)
    out = dict(comp)
    out["cards"] = out_cards
    return out


def _check_components(components: object, field: str, *, in_card: bool = False) -> list[dict[str, Any]]:
    seq = _check_list(components, field)
    body_only = len(seq) == 1
    out: list[dict[str, Any]] = []
    singletons: dict[str, int] = {}
    button_indexes: dict[str, int] = {}
    coupon_at: int | None = None
    for i, comp in enumerate(seq):
        f = f"{field}[{i}]"
        c = _check_mapping(comp, f)
        ctype = c.get("type")
        if type(ctype) is str and ctype != ctype.lower():
            ctype = ctype.lower()
        if ctype == "button":
            new = _check_button(c, f)
            idx = new["index"]
            if idx in button_indexes:
                raise _fail(f"{f}.index", f"duplicates the button at components[{button_indexes[idx]}]")
            button_indexes[idx] = i
            if new["sub_type"] == "copy_code":
                if coupon_at is not None:
                    raise _fail(
                        f, f"only one copy_code button is allowed (another at components[{coupon_at}])"
                    )
                coupon_at = i
        elif ctype == "body":
            if "parameters" not in c:
                raise _fail(f"{f}.parameters", "is required for a body component")
            new = dict(c)
            new["parameters"] = _check_parameter_list(
                c["parameters"],
                f"{f}.parameters",
                _BODY_TYPES,
                BODY_ONLY_TEXT_MAX if body_only and not in_card else BODY_TEXT_MAX,
                min_items=0,
                max_items=None,
            )
        elif ctype == "header":
            if "parameters" not in c:
                raise _fail(f"{f}.parameters", "is required for a header component")
            new = dict(c)
            new["parameters"] = _check_parameter_list(
                c["parameters"],
                f"{f}.parameters",
                _CARD_HEADER_TYPES if in_card else _HEADER_TYPES,
                HEADER_TEXT_MAX,
                min_items=1,
                max_items=1,
            )
        elif ctype == "limited_time_offer" and not in_card:
            new = _check_limited_time_offer(c, f)
        elif ctype == "carousel" and not in_card:
            new = _check_carousel(c, f)
        else:
            allowed = ["header", "body", "button"] + ([] if in_card else ["limited_time_offer", "carousel"])
            raise _fail(f"{f}.type", f"must be one of {allowed}, got {c.get('type')!r}")
        new["type"] = ctype
        if ctype != "button":
            if ctype in singletons:
                raise _fail(
                    f"{f}.type", f"a second {ctype} component (the first is components[{singletons[ctype]}])"
                )
            singletons[ctype] = i
        out.append(new)
    if len(button_indexes) > MAX_BUTTONS:
        raise _fail(field, f"has {len(button_indexes)} buttons; a template has at most {MAX_BUTTONS}")
    return out


# --------------------------------------------------------------------------------------------
# Whole message
# --------------------------------------------------------------------------------------------


def _check_to(value: object, field: str = "to") -> str:
    if type(value) is not str:
        raise InvalidRecipientError(field, f"must be a string of digits, got {_type_name(value)}")
    match = _TO_RE.fullmatch(value)
    if match is None:
        raise InvalidRecipientError(
            field,
            "must be an international phone number as 5-15 digits with an optional leading '+' "
            "(normalise it with normalize_phone())",
        )
    return match.group(1)


def _check_bsuid(value: object, field: str = "recipient") -> str:
    if type(value) is not str or not value or len(value) > _BSUID_MAX or _WHITESPACE_RE.search(value):
        raise InvalidRecipientError(
            field, f"must be a business-scoped user id without white space (at most {_BSUID_MAX} characters)"
        )
    return value


def _check_template(
    name: object, language: object, policy: object, components: object | None
) -> dict[str, Any]:
    if type(name) is not str or len(name) > TEMPLATE_NAME_MAX or not _TEMPLATE_NAME_RE.fullmatch(name):
        raise _fail(
            "template.name",
            f"must be the template's name: lower-case letters, digits and underscores, at most "
            f"{TEMPLATE_NAME_MAX} characters, got {name!r}",
        )
    if type(language) is not str or not _LANGUAGE_RE.fullmatch(language):
        raise _fail(
            "template.language.code",
            f"must be a template language code such as 'en' or 'en_US', got {language!r}",
        )
    lang: dict[str, Any] = {"code": language}
    if policy is not None:
        if policy not in LANGUAGE_POLICIES:
            raise _fail("template.language.policy", f"must be 'deterministic' or omitted, got {policy!r}")
        lang["policy"] = policy
    template: dict[str, Any] = {"name": name, "language": lang}
    if components is not None:
        checked = _check_components(components, "template.components")
        if checked:
            template["components"] = checked
    return template


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
) -> dict[str, Any]:
    """Build and validate the JSON body of one ``marketing_messages`` request.

    :param to: the recipient's phone number in international format (digits, optional ``+``;
        normalise raw input with :func:`~airflow_provider_wamm.graph.recipients.normalize_phone`).
    :param recipient: a business-scoped user id (BSUID) instead of, or besides, ``to`` (Meta uses
        ``to`` when both are given). Sending by BSUID disables Meta's delivery optimisation.
    :param template_name: name of an approved marketing template.
    :param language: the template's language code, e.g. ``en_US``.
    :param components: send-time components (header, body, buttons, limited-time offer,
        carousel) as built by this module's helpers or written as Meta documents them.
    :param product_policy: ``CLOUD_API_FALLBACK`` (Meta's default: fall back to the Cloud API
        when the account is not onboarded) or ``STRICT`` (fail instead).
    :param message_activity_sharing: per-message override of the account's activity-sharing
        setting; ``None`` leaves the account default.
    :param language_policy: ``deterministic`` or ``None`` (omitted, as in Meta's examples).
    :raises PayloadError: naming the first invalid field (``InvalidRecipientError`` for the
        recipient).
    """
    payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if to is None and recipient is None:
        raise InvalidRecipientError(
            "to", "give a phone number ('to') or a business-scoped user id ('recipient')"
        )
    if to is not None:
        payload["to"] = _check_to(to)
    if recipient is not None:
        payload["recipient"] = _check_bsuid(recipient)
    payload["type"] = "template"
    payload["template"] = _check_template(template_name, language, language_policy, components)
    if product_policy is not None:
        if product_policy not in PRODUCT_POLICIES:
            raise _fail("product_policy", f"must be one of {list(PRODUCT_POLICIES)}, got {product_policy!r}")
        payload["product_policy"] = product_policy
    if message_activity_sharing is not None:
        if type(message_activity_sharing) is not bool:
            raise _fail(
                "message_activity_sharing", f"must be true or false, got {message_activity_sharing!r}"
            )
        payload["message_activity_sharing"] = message_activity_sharing
    return payload


def validate_marketing_message(payload: Mapping[str, Any]) -> None:
    """Check a complete ``marketing_messages`` body; raise :class:`PayloadError` naming the first bad field.

    Accepts what :func:`build_marketing_message` returns and hand-written payloads. Top-level
    keys other than Meta's documented ones (including ``recipient``, ``bid_spec`` and
    ``biz_opaque_callback_data``) are rejected, which catches misspelt options.
    """
    p = _check_mapping(payload, "payload")
    for key in p:
        if key not in _TOP_LEVEL_KEYS:
            raise _fail(
                str(key), f"is not a field of a marketing message (allowed: {sorted(_TOP_LEVEL_KEYS)})"
            )
    for key, expected in (
        ("messaging_product", "whatsapp"),
        ("recipient_type", "individual"),
        ("type", "template"),
    ):
        if p.get(key) != expected:
            raise _fail(key, f"must be {expected!r}, got {p.get(key)!r}")
    if p.get("to") is None and p.get("recipient") is None:
        raise InvalidRecipientError(
            "to", "give a phone number ('to') or a business-scoped user id ('recipient')"
        )
    if p.get("to") is not None:
        _check_to(p["to"])
    if p.get("recipient") is not None:
        _check_bsuid(p["recipient"])
    template = _check_mapping(p.get("template"), "template")
    language = _check_mapping(template.get("language"), "template.language")
    _check_template(
        template.get("name"), language.get("code"), language.get("policy"), template.get("components")
    )
    if "product_policy" in p and p["product_policy"] not in PRODUCT_POLICIES:
        raise _fail("product_policy", f"must be one of {list(PRODUCT_POLICIES)}, got {p['product_policy']!r}")
    if "message_activity_sharing" in p and type(p["message_activity_sharing"]) is not bool:
        raise _fail(
            "message_activity_sharing", f"must be true or false, got {p['message_activity_sharing']!r}"
        )
    if "bid_spec" in p:
        bid = _check_mapping(p["bid_spec"], "bid_spec")
        multiplier = bid.get("per_message_bid_multiplier")
        if multiplier is not None and (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, (int, float))
            or not math.isfinite(multiplier)
            or multiplier <= 0
        ):
            raise _fail(
                "bid_spec.per_message_bid_multiplier", f"must be a positive number, got {multiplier!r}"
            )


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _named(param: dict[str, Any], parameter_name: str | None) -> dict[str, Any]:
    if parameter_name is not None:
        if type(parameter_name) is not str or not _PARAMETER_NAME_RE.fullmatch(parameter_name):
            raise _fail(
                "parameter_name",
                f"must be lower-case letters, digits and underscores as in the template, "
                f"got {parameter_name!r}",
            )
        param["parameter_name"] = parameter_name
    return param


def text_param(text: str, *, parameter_name: str | None = None) -> dict[str, Any]:
    """A ``text`` parameter (header or body); ``parameter_name`` for templates with named parameters."""
    return _named(
        {"type": "text", "text": _check_param_text(text, "text", BODY_ONLY_TEXT_MAX)}, parameter_name
    )


def currency_param(
    fallback_value: str, code: str, amount_1000: int, *, parameter_name: str | None = None
) -> dict[str, Any]:
    """A ``currency`` body parameter: ``amount_1000`` is the amount times 1000 (``12500`` = 12.50)."""
    currency = _check_currency(
        {"fallback_value": fallback_value, "code": code, "amount_1000": amount_1000}, "currency"
    )
    return _named({"type": "currency", "currency": currency}, parameter_name)


def date_time_param(fallback_value: str, *, parameter_name: str | None = None) -> dict[str, Any]:
    """A ``date_time`` body parameter; the Cloud API always shows ``fallback_value`` as given."""
    value = _check_param_text(fallback_value, "date_time.fallback_value", BODY_ONLY_TEXT_MAX)
    return _named({"type": "date_time", "date_time": {"fallback_value": value}}, parameter_name)


def _media_param(
    kind: str, media_id: str | None, link: str | None, filename: str | None = None
) -> dict[str, Any]:
    media: dict[str, Any] = {}
    if media_id is not None:
        media["id"] = media_id
    if link is not None:
        media["link"] = link
    if filename is not None:
        media["filename"] = filename
    return {"type": kind, kind: _check_media(media, kind, kind)}


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


def location_param(
    latitude: float | str, longitude: float | str, *, name: str | None = None, address: str | None = None
) -> dict[str, Any]:
    """A ``location`` header parameter (location headers exist on marketing and utility templates)."""
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        location["name"] = name
    if address is not None:
        location["address"] = address
    return {"type": "location", "location": _check_location(location, "location")}


def header_component(parameter: Mapping[str, Any] | str) -> dict[str, Any]:
    """A ``header`` component with its single parameter (a string means a text parameter)."""
    param = {"type": "text", "text": parameter} if isinstance(parameter, str) else parameter
    checked = _check_parameter(param, "header.parameters[0]", _HEADER_TYPES, HEADER_TEXT_MAX)
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
        for i, value in enumerate(_check_list(parameters, "body.parameters")):
            params.append(parameter_from_spec(value, field=f"body.parameters[{i}]"))
    checked = _check_parameter_list(
        params, "body.parameters", _BODY_TYPES, BODY_ONLY_TEXT_MAX, min_items=0, max_items=None
    )
    return {"type": "body", "parameters": checked}


def _button(sub_type: str, index: int | str, param: dict[str, Any]) -> dict[str, Any]:
    return _check_button(
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
    action: dict[str, Any] = {}
    if flow_token is not None:
        action["flow_token"] = flow_token
    if flow_action_data is not None:
        action["flow_action_data"] = flow_action_data
    return _button("flow", index, {"type": "action", "action": action})


def catalog_button(index: int | str, thumbnail_product_retailer_id: str | None = None) -> dict[str, Any]:
    """A ``catalog`` button; the product's retailer id picks the thumbnail (first product when omitted)."""
    action: dict[str, Any] = {}
    if thumbnail_product_retailer_id is not None:
        action["thumbnail_product_retailer_id"] = thumbnail_product_retailer_id
    return _button("catalog", index, {"type": "action", "action": action})


def limited_time_offer_component(expiration_time_ms: int) -> dict[str, Any]:
    """The ``limited_time_offer`` component: when the offer ends, as Unix time in milliseconds."""
    comp = {
        "type": "limited_time_offer",
        "parameters": [
            {"type": "limited_time_offer", "limited_time_offer": {"expiration_time_ms": expiration_time_ms}}
        ],
    }
    return _check_limited_time_offer(comp, "limited_time_offer")


def carousel_card(card_index: int, components: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One carousel card: its media header, optional body and buttons."""
    card = {"card_index": card_index, "components": components}
    checked: dict[str, Any] = _check_carousel({"type": "carousel", "cards": [card]}, "carousel")["cards"][0]
    return checked


def carousel_component(cards: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``carousel`` component from cards built with :func:`carousel_card`."""
    return _check_carousel({"type": "carousel", "cards": cards}, "carousel")


# --------------------------------------------------------------------------------------------
# The flat "spec" syntax used by campaign personalisation
# --------------------------------------------------------------------------------------------


def _scalar_text(value: object, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        raise _fail(field, f"must be a string or a number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, decimal.Decimal)):
        try:
            finite = math.isfinite(value)
        except (ValueError, decimal.InvalidOperation):  # signalling NaN
            finite = False
        if not finite:
            raise _fail(field, f"must be a finite number, got {value!r}")
        return str(value)
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    raise _fail(field, f"must be a string or a number, got {_type_name(value)}")


def _int_from_spec(value: object) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit() and text.isascii():
            return int(text)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_SPEC_PARAMETER_TYPES = frozenset({"text", "currency", "date_time", "image", "video", "document", "location"})


def parameter_from_spec(value: Any, *, field: str = "parameter") -> dict[str, Any]:
    """Turn a personalisation value into a Meta parameter object.

    ``value`` is a string or number (a text parameter), a Meta parameter object (``{"type":
    "currency", "currency": {...}}``) or the flat form ``{"type": "currency", "fallback_value":
    ..., "code": "EUR", "amount_1000": "12500"}`` / ``{"type": "date_time", "fallback_value": ...}``
    / ``{"type": "image", "link": ...}`` / ``{"type": "location", "latitude": ..., ...}``, where
    numeric strings are accepted for integers. ``parameter_name`` may be given in a mapping.
    """
    if not isinstance(value, Mapping):
        return {
            "type": "text",
            "text": _check_param_text(_scalar_text(value, field), field, BODY_ONLY_TEXT_MAX),
        }
    ptype = value.get("type", "text")
    if ptype not in _SPEC_PARAMETER_TYPES:
        raise _fail(f"{field}.type", f"must be one of {sorted(_SPEC_PARAMETER_TYPES)}, got {ptype!r}")
    if ptype in value:  # already Meta's shape
        param: dict[str, Any] = dict(value)
        param["type"] = ptype
        if ptype == "text":
            param["text"] = _scalar_text(value["text"], f"{field}.text")
    else:
        rest = {k: v for k, v in value.items() if k not in ("type", "parameter_name")}
        if ptype == "text":
            raise _fail(f"{field}.text", "is required for a text parameter")
        if ptype == "currency":
            rest = dict(rest)
            if "amount_1000" in rest:
                rest["amount_1000"] = _int_from_spec(rest["amount_1000"])
            if "fallback_value" in rest:
                rest["fallback_value"] = _scalar_text(
                    rest["fallback_value"], f"{field}.currency.fallback_value"
                )
        elif ptype == "date_time" and "fallback_value" in rest:
            rest["fallback_value"] = _scalar_text(rest["fallback_value"], f"{field}.date_time.fallback_value")
        param = {"type": ptype, ptype: rest}
        if "parameter_name" in value:
            param["parameter_name"] = value["parameter_name"]
    return _check_parameter(param, field, _SPEC_PARAMETER_TYPES, BODY_ONLY_TEXT_MAX)


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
    "index": 0, "thumbnail_product_retailer_id": ...}``. A Meta button component (``"type":
    "button"``) is validated and returned as is. Numbers are accepted for text values.
    """
    s = _check_mapping(spec, field)
    if s.get("type") == "button":
        return _check_button(s, field)
    kind = s.get("type", s.get("sub_type"))
    if kind not in ("url", "quick_reply", "copy_code", "flow", "catalog"):
        raise _fail(
            f"{field}.type", f"must be one of url, quick_reply, copy_code, flow, catalog; got {kind!r}"
        )
    if "index" not in s:
        raise _fail(f"{field}.index", "is required: the zero-based position of the button in the template")
    if kind in _BUTTON_SPEC_FIELD:
        key, ptype = _BUTTON_SPEC_FIELD[kind]
        if key not in s:
            raise _fail(f"{field}.{key}", f"is required for a {kind} button")
        param: dict[str, Any] = {"type": ptype, key: _scalar_text(s[key], f"{field}.{key}")}
    else:
        keys = ("flow_token", "flow_action_data") if kind == "flow" else ("thumbnail_product_retailer_id",)
        action = {k: s[k] for k in keys if s.get(k) is not None}
        if isinstance(s.get("action"), Mapping):
            action = {**s["action"], **action}
        param = {"type": "action", "action": action}
    return _check_button(
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
        :func:`parameter_from_spec`), e.g. ``{"type": "image", "link": ...}``.
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
    return _check_components(components, "components")
