"""Recipients: phone numbers normalised to the digits WhatsApp expects, business-scoped user ids told
apart from them, and masking for logs.

WhatsApp identifies a user by the international (E.164) number without the ``+``, e.g.
``4915123456789``. :func:`normalize_phone` accepts what people type or store (``+49 151
2345-6789``, ``0049 151 23456789``, ``0151 23456789`` with ``default_region="DE"``) and
rejects anything ``phonenumbers`` (Google's libphonenumber metadata) does not consider a
valid number, so that a campaign records bad rows instead of paying for failed sends.

A user may also be addressed by the business-scoped user id (BSUID) Meta gives them, e.g.
``US.13491208655302741918`` (a parent id: ``US.ENT.11815799212886844830``); such a recipient goes in a
send's ``recipient`` field instead of ``to`` (:func:`recipient_kind`). Source: "Business-scoped user
IDs", https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids
(Meta, Jun 29, 2026).
"""

from __future__ import annotations

import unicodedata
from typing import Literal

import phonenumbers

from airflow_provider_wamm.graph.errors import ConfigurationError, InvalidRecipientError
from airflow_provider_wamm.graph.limits import BSUID_RE

__all__ = [
    "InvalidRecipientError",
    "RecipientKind",
    "calling_code",
    "is_bsuid",
    "is_parent_bsuid",
    "mask_phone",
    "normalize_phone",
    "recipient_kind",
]

#: How a recipient is addressed: by phone number (``to``) or by business-scoped user id (``recipient``).
RecipientKind = Literal["phone", "bsuid"]

_MAX_INPUT = 64
_SEPARATORS = frozenset(" -().\u00a0\u2010\u2011\u2012\u2013\u2014/\t")
#: E.164: at most 15 digits, country code included.
_MAX_E164_DIGITS = 15
_E164 = phonenumbers.PhoneNumberFormat.E164


def _digits(text: str, field: str) -> tuple[bool, str]:
    """Split ``text`` into (has leading '+', ASCII digits); reject anything that is not a phone number."""
    plus = text.startswith("+")
    out: list[str] = []
    for ch in text[1:] if plus else text:
        if "0" <= ch <= "9":
            out.append(ch)
        elif ch in _SEPARATORS:
            continue
        elif ch.isdecimal():  # other scripts' digits, e.g. Arabic-Indic
            out.append(str(unicodedata.decimal(ch)))
        else:
            what = "a second '+'" if ch == "+" else f"the character {ch!r}"
            raise InvalidRecipientError(
                field, f"contains {what}; a phone number has only digits, spaces, '+', '-', '(', ')' and '.'"
            )
    return plus, "".join(out)


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """The parsed number if ``phonenumbers`` considers it valid, else ``None``."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def normalize_phone(value: object, *, default_region: str | None = None, field: str = "to") -> str:
    """Return the recipient's international number as digits without ``+`` (``"4915123456789"``).

    :param value: a phone number as text (any common punctuation) or an ``int``.
    :param default_region: ISO 3166 region (``"DE"``, ``"IN"``) used for numbers written without a
        country code; ``None`` means every number must carry its country code (``+49…``,
        ``0049…`` or ``49…``). With a region, digits that already start with that region's
        country code and form a valid number are taken as international.
    :param field: the field name reported in the error.
    :raises InvalidRecipientError: for missing, malformed or invalid numbers (the message never
        contains the number itself).
    :raises ConfigurationError: for an unknown ``default_region``.
    """
    region = None
    if default_region is not None:
        region = str(default_region).upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigurationError(
                f"default_region must be an ISO 3166 region code such as 'DE', got {default_region!r}"
            )
    if value is None:
        raise InvalidRecipientError(field, "is missing")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRecipientError(
            field, f"must be a phone number as text, got {type(value).__name__} (store phone numbers as text)"
        )
    if isinstance(value, int) and value < 0:
        raise InvalidRecipientError(field, "is a negative number")
    text = str(value).strip() if isinstance(value, int) else value.strip()
    if not text:
        raise InvalidRecipientError(field, "is empty")
    if len(text) > _MAX_INPUT:
        raise InvalidRecipientError(field, f"is {len(text)} characters long; not a phone number")
    plus, digits = _digits(text, field)
    if not digits:
        raise InvalidRecipientError(field, "contains no digits")
    if plus or digits.startswith("00"):  # international: "+49 ..." or "0049 ..."
        number = _parse("+" + (digits if plus else digits[2:]), None)
    elif region is None:  # international digits without "+", as WhatsApp ids are written
        number = _parse("+" + digits, None)
    else:
        national = _parse(digits, region)
        international = _parse("+" + digits, None)
        if international is not None and (
            national is None or international.country_code == phonenumbers.country_code_for_region(region)
        ):
            # Already international digits (country code first): keep them as they are.
            number = international
        else:
            number = national
    if number is not None:
        e164 = phonenumbers.format_number(number, _E164)[1:]
        if len(e164) > _MAX_E164_DIGITS:  # phonenumbers accepts some longer ones (e.g. +49 30 …)
            raise InvalidRecipientError(
                field, f"has {len(e164)} digits; an international number has at most {_MAX_E164_DIGITS}"
            )
        return e164
    hint = "" if plus or region else " (include the country code, or set default_region)"
    raise InvalidRecipientError(field, f"is not a valid phone number{hint}")


def is_bsuid(value: object) -> bool:
    """Whether ``value`` is a business-scoped user id (``US.1349…``), a parent one (``US.ENT.…``) included."""
    return isinstance(value, str) and BSUID_RE.fullmatch(value) is not None


def is_parent_bsuid(value: object) -> bool:
    """Whether ``value`` is a parent business-scoped user id (``US.ENT.1181…``)."""
    return is_bsuid(value) and str(value)[2:7] == ".ENT."


def recipient_kind(value: object) -> RecipientKind:
    """``"bsuid"`` for a business-scoped user id, else ``"phone"`` (whether the number is valid is
    :func:`normalize_phone`'s question)."""
    return "bsuid" if is_bsuid(value) else "phone"


def calling_code(digits: str) -> int | None:
    """The country calling code international ``digits`` start with (``"4915…"`` -> 49), found
    without parsing the number: calling codes are prefix-free. ``None``: no known code."""
    for n in (1, 2, 3):
        code = int(digits[:n])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code
    return None


def mask_phone(digits: object) -> str:
    """Mask a number for logs: country code and last two digits stay (``"49*********89"``).

    Anything else (a business-scoped user id, garbage) keeps at most its first and last two
    characters. Never raises.
    """
    text = "" if digits is None else str(digits)
    body = text[1:] if text.startswith("+") else text
    if len(text) <= 4:
        return "*" * len(text)
    if not (body.isascii() and body.isdigit()) or len(body) < 7:
        return text[:2] + "*" * (len(text) - 4) + text[-2:]
    code = calling_code(body)
    keep = len(text) - len(body) + (len(str(code)) if code is not None else 0)
    return text[:keep] + "*" * (len(text) - keep - 2) + text[-2:]
