"""Meta's limits on the fields of a marketing message, as data, and the checks of single values.

The numbers, option lists and patterns below come from Meta's template and parameter references and
from its OpenAPI spec (where the spec is known to be wrong, the reference wins; see docs/meta-api.md).
The ``check_*`` functions test one value against them and raise
:class:`~airflow_provider_wamm.graph.errors.PayloadError` naming the field as a dotted path; the
structure of a payload (parameters, components, the whole message) is checked in
:mod:`airflow_provider_wamm.graph.validation`.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from airflow_provider_wamm.graph.errors import InvalidRecipientError, PayloadError

__all__ = [
    "BAD_PARAMETER_TEXT_RE",
    "BIZ_OPAQUE_CALLBACK_DATA_MAX",
    "BODY_ONLY_TEXT_MAX",
    "BODY_PARAMETER_TYPES",
    "BODY_TEXT_MAX",
    "BSUID_ID_MAX",
    "BSUID_MAX",
    "BSUID_RE",
    "BUTTON_PARAMETER_TYPE",
    "BUTTON_SUB_TYPES",
    "CARD_HEADER_PARAMETER_TYPES",
    "CATALOG_ID_RE",
    "COUPON_CODE_MAX",
    "CURRENCY_CODE_RE",
    "DOCUMENT_FILENAME_MAX",
    "EXPIRATION_TIME_MS_MAX",
    "FLOW_TOKEN_MAX",
    "HEADER_PARAMETER_TYPES",
    "HEADER_TEXT_MAX",
    "HTTP_LINK_RE",
    "INT32_MAX",
    "INT32_MIN",
    "LANGUAGE_CODE_RE",
    "LANGUAGE_POLICIES",
    "LATITUDE_MAX",
    "LOCATION_TEXT_MAX",
    "LONGITUDE_MAX",
    "MAX_BUTTONS",
    "MAX_CAROUSEL_CARDS",
    "MEDIA_ID_MAX",
    "MEDIA_LINK_MAX",
    "OPTIONAL_PARAMETER_BUTTONS",
    "PARAMETER_NAME_RE",
    "PHONE_DIGITS_RE",
    "PRODUCT_POLICIES",
    "QUICK_REPLY_PAYLOAD_MAX",
    "RETAILER_ID_MAX",
    "TEMPLATE_NAME_MAX",
    "TEMPLATE_NAME_RE",
    "TOP_LEVEL_KEYS",
    "URL_SUFFIX_MAX",
    "WHITESPACE_RE",
    "ProductPolicy",
    "check_bsuid",
    "check_callback_data",
    "check_coordinate",
    "check_index",
    "check_int",
    "check_list",
    "check_mapping",
    "check_param_text",
    "check_str",
    "check_to",
]

# --------------------------------------------------------------------------------------------
# Lengths and counts
# --------------------------------------------------------------------------------------------

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
#: Most letters and digits after the country prefix of a business-scoped user id (Meta lowered it
#: from 256 on 2026-02-06: "Business-scoped user IDs", Meta, Jun 29, 2026).
BSUID_ID_MAX = 128
#: Longest business-scoped user id (``recipient``): a parent id's ``CC.ENT.`` prefix and 128 characters.
BSUID_MAX = len("CC.ENT.") + BSUID_ID_MAX
#: Longest ``biz_opaque_callback_data`` ("Increased biz_opaque_callback_data character maximum from
#: 256 to 512", WhatsApp Business Platform changelog).
BIZ_OPAQUE_CALLBACK_DATA_MAX = 512
#: Longest uploaded media id.
MEDIA_ID_MAX = 256
#: Longest media ``link``.
MEDIA_LINK_MAX = 2000
#: Longest file name of a document header.
DOCUMENT_FILENAME_MAX = 240
#: Longest ``name`` or ``address`` of a location header.
LOCATION_TEXT_MAX = 1000
#: Longest payload of a ``quick_reply`` button.
QUICK_REPLY_PAYLOAD_MAX = 1000
#: Longest ``flow_token`` of a ``flow`` button.
FLOW_TOKEN_MAX = 1000
#: Longest product retailer id (a ``catalog`` button's thumbnail, a ``product`` header's product).
RETAILER_ID_MAX = 100
#: Latest ``expiration_time_ms`` of a limited-time offer (the largest integer JSON keeps exact).
EXPIRATION_TIME_MS_MAX = 2**53
#: Smallest ``amount_1000`` of a currency parameter (a signed 32-bit integer).
INT32_MIN = -(2**31)
#: Largest ``amount_1000`` of a currency parameter.
INT32_MAX = 2**31 - 1
#: Largest absolute latitude of a location header.
LATITUDE_MAX = 90.0
#: Largest absolute longitude of a location header.
LONGITUDE_MAX = 180.0

# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

#: Values of the top-level ``product_policy`` field.
ProductPolicy = Literal["CLOUD_API_FALLBACK", "STRICT"]
PRODUCT_POLICIES: tuple[ProductPolicy, ...] = get_args(ProductPolicy)
#: Values of ``template.language.policy``.
LANGUAGE_POLICIES = ("deterministic",)
#: Button ``sub_type`` values this module knows how to validate.
BUTTON_SUB_TYPES = ("url", "quick_reply", "copy_code", "flow", "catalog", "mpm")
#: The parameter type each button ``sub_type`` takes.
BUTTON_PARAMETER_TYPE: dict[str, str] = {
    "url": "text",
    "quick_reply": "payload",
    "copy_code": "coupon_code",
    "flow": "action",
    "catalog": "action",
    "mpm": "action",
}
#: Button ``sub_type`` values whose parameter may be left out: a ``catalog`` button without one shows
#: the first product of the catalogue ("Catalog templates", Meta, Jun 18, 2026).
OPTIONAL_PARAMETER_BUTTONS = frozenset({"catalog"})
#: Top-level fields of a ``marketing_messages`` body.
TOP_LEVEL_KEYS = frozenset(
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
#: Parameter types of a template header: ``gif`` headers exist only on the Marketing Messages API,
#: ``product`` headers on single-product templates ("Template components", "Single-product message
#: templates", Meta, 2026).
HEADER_PARAMETER_TYPES = frozenset({"text", "image", "video", "document", "location", "gif", "product"})
#: Parameter types of a template body.
BODY_PARAMETER_TYPES = frozenset({"text", "currency", "date_time"})
#: Parameter types of a carousel card's header: media cards, or product cards ("Product card
#: carousel templates", Meta, Jun 18, 2026).
CARD_HEADER_PARAMETER_TYPES = frozenset({"image", "video", "product"})

# --------------------------------------------------------------------------------------------
# Patterns (matched with ``fullmatch`` unless said otherwise)
# --------------------------------------------------------------------------------------------

#: A template name: lower-case letters, digits and underscores.
TEMPLATE_NAME_RE = re.compile(r"[a-z0-9_]+")
#: A template language code such as ``en`` or ``en_US``.
LANGUAGE_CODE_RE = re.compile(r"[a-z]{2,3}(?:_[A-Za-z0-9]{2,4})?")
#: A named parameter's ``parameter_name``, as written in the template.
PARAMETER_NAME_RE = re.compile(r"[a-z0-9_]+")
#: An ISO 4217 currency code.
CURRENCY_CODE_RE = re.compile(r"[A-Z]{3}")
#: ``to``: an international number as 5-15 digits with an optional ``+`` (group 1: the digits).
PHONE_DIGITS_RE = re.compile(r"\+?([0-9]{5,15})")
#: What a text parameter may not contain (``search``): new lines, tabs, five spaces in a row.
BAD_PARAMETER_TEXT_RE = re.compile(r"[\n\r\t]| {5}")
#: White space anywhere (``search``): not allowed in URL suffixes and BSUIDs.
WHITESPACE_RE = re.compile(r"\s")
#: A catalogue id (``catalog_id`` of a ``product`` parameter): the digits of a Meta object id.
CATALOG_ID_RE = re.compile(r"[0-9]{1,32}")
#: A business-scoped user id: an ISO 3166 alpha-2 country code, ``.``, ``ENT.`` for a parent id, then up
#: to 128 letters and digits (``US.13491208655302741918``, ``US.ENT.11815799212886844830``); see
#: "Business-scoped user IDs", https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
#: (Jun 29, 2026).
BSUID_RE = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
#: An ``http(s)`` URL without white space (media links).
HTTP_LINK_RE = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)

# --------------------------------------------------------------------------------------------
# Checks of single values
# --------------------------------------------------------------------------------------------


def check_str(value: object, field: str, *, max_len: int | None = None, allow_empty: bool = False) -> str:
    """A string (not empty unless allowed, at most ``max_len`` characters), returned as a plain ``str``."""
    if type(value) is not str:
        if not isinstance(value, str):
            raise PayloadError(field, f"must be a string, got {type(value).__name__}")
        value = str(value)
    if not allow_empty and not value.strip():
        raise PayloadError(field, "must not be empty")
    if max_len is not None and len(value) > max_len:
        raise PayloadError(field, f"is {len(value)} characters long; Meta allows at most {max_len}")
    return value


def check_param_text(value: object, field: str, max_len: int) -> str:
    """A text parameter's value: a string Meta accepts (no new lines, tabs or runs of five spaces)."""
    text = check_str(value, field, max_len=max_len)
    if BAD_PARAMETER_TEXT_RE.search(text):
        raise PayloadError(
            field,
            "must not contain new lines, tabs or more than 4 consecutive spaces (Meta rejects such "
            "parameters); put line breaks in the template text instead",
        )
    return text


def check_int(value: object, field: str, *, minimum: int, maximum: int) -> int:
    """An integer (not a ``bool``) between ``minimum`` and ``maximum``, returned as a plain ``int``."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PayloadError(field, f"must be an integer, got {type(value).__name__}")
        value = int(value)
    if not minimum <= value <= maximum:
        raise PayloadError(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def check_mapping(value: object, field: str) -> Mapping[str, Any]:
    """A JSON object (any mapping)."""
    if not isinstance(value, Mapping):
        raise PayloadError(field, f"must be an object (mapping), got {type(value).__name__}")
    return value


def check_list(value: object, field: str) -> Sequence[Any]:
    """A JSON array (any sequence but a string or bytes)."""
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        raise PayloadError(field, f"must be a list, got {type(value).__name__}")
    return value


def check_index(value: object, field: str) -> str:
    """A button index: an ``int`` 0-9 or its decimal string, normalised to the string Meta documents."""
    if type(value) is str and len(value) == 1 and "0" <= value <= "9":
        return value
    if type(value) is int and 0 <= value < MAX_BUTTONS:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        number = int(value.strip())
        if number < MAX_BUTTONS:
            return str(number)
    raise PayloadError(
        field, f"must be a button position 0-{MAX_BUTTONS - 1} (int or digit string), got {value!r}"
    )


def check_coordinate(value: object, field: str, limit: float) -> Any:
    """A latitude or longitude within ``limit``: a number or a numeric string, returned as given
    (other numeric types as their string)."""
    if isinstance(value, bool):
        raise PayloadError(field, "must be a number or a numeric string, got bool")
    try:
        number = float(value) if isinstance(value, (int, float, str, decimal.Decimal)) else math.nan
    except (ValueError, OverflowError, decimal.InvalidOperation):
        number = math.nan
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise PayloadError(field, f"must be a number between -{limit:g} and {limit:g}, got {value!r}")
    return value if isinstance(value, (str, int, float)) else str(value)


def check_to(value: object, field: str = "to") -> str:
    """``to``: an international number as 5-15 digits, optional leading ``+``; returns the digits."""
    if type(value) is not str:
        raise InvalidRecipientError(field, f"must be a string of digits, got {type(value).__name__}")
    match = PHONE_DIGITS_RE.fullmatch(value)
    if match is None:
        raise InvalidRecipientError(
            field,
            "must be an international phone number as 5-15 digits with an optional leading '+' "
            "(normalise it with normalize_phone())",
        )
    return match.group(1)


def check_bsuid(value: object, field: str = "recipient") -> str:
    """``recipient``: a business-scoped user id (:data:`BSUID_RE`), returned as given."""
    if type(value) is not str or not BSUID_RE.fullmatch(value):
        raise InvalidRecipientError(
            field,
            "must be a business-scoped user id without white space: a country code, '.', 'ENT.' for a "
            f"parent id, then up to {BSUID_ID_MAX} letters and digits (e.g. 'US.13491208655302741918')",
        )
    return value


def check_callback_data(value: object, field: str = "biz_opaque_callback_data") -> str:
    """``biz_opaque_callback_data``: a non-empty string of at most 512 characters, returned as given."""
    return check_str(value, field, max_len=BIZ_OPAQUE_CALLBACK_DATA_MAX)
