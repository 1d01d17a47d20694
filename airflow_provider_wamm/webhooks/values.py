"""Readers of single values in a webhook body: each returns ``None`` for anything unusable, never raises.

A webhook body comes from the internet: a value may be missing, of another type, huge, or out of
range. These readers take what is usable (a bounded string, an id of digits, a timestamp in range,
an upper-case token such as ``APPROVED``) and give ``None`` for the rest, so a parser can skip an
item instead of storing half of it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

#: 9999-12-31T23:59:59Z, the largest datetime every database stores.
MAX_TIMESTAMP = 253402300799
#: The range of an SQL INTEGER column.
MIN_INT, MAX_INT = -(2**31), 2**31 - 1

_TOKEN = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def text(value: Any, limit: int) -> str | None:
    """A non-empty string of at most ``limit`` characters (integers are accepted as their digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value.bit_length() > 4 * limit:  # more digits than allowed (and never a huge str())
            return None
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > limit:
        return None
    return value


def clipped(value: Any, limit: int) -> str | None:
    """Free text, cut to ``limit`` characters (``None`` unless a non-blank string)."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def digits(value: Any, limit: int = 32) -> str | None:
    """An id or a phone number made of digits (an integer, or a string of digits with an optional
    leading ``+``), at most ``limit`` digits."""
    raw = text(value, limit + 1)
    if raw is None:
        return None
    raw = raw.removeprefix("+")
    return raw if raw.isascii() and raw.isdigit() and len(raw) <= limit else None


def identifier(value: Any) -> str | None:
    """An opaque id such as a business-scoped user id (``US.13491208655302741918``): letters, digits,
    ``.``, ``_``, ``:`` and ``-``, at most 64 characters."""
    raw = text(value, 64)
    return raw if raw is not None and raw.isascii() and _IDENTIFIER.match(raw) else None


def token(value: Any, known: Iterable[str] | None = None) -> str | None:
    """An upper-case name such as ``APPROVED`` or ``TIER_2K`` (case-insensitive); with ``known``, only
    one of those."""
    raw = text(value, 64)
    if raw is None:
        return None
    raw = raw.upper()
    if not raw.isascii() or not _TOKEN.match(raw):
        return None
    if known is not None and raw not in known:
        return None
    return raw


def amount(value: Any) -> float | None:
    """A finite, non-negative amount of money (a JSON number or a decimal string), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str) and (len(value) > 32 or not value.strip()):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def integer(value: Any, low: int = MIN_INT, high: int = MAX_INT) -> int | None:
    """An integer in ``[low, high]`` (a whole float or a string of digits is accepted)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value or len(value) > 20 or not value.lstrip("-").isdigit() or not value.isascii():
            return None
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def timestamp(value: Any) -> datetime | None:
    """Unix seconds (a number or a numeric string) -> aware UTC datetime, within a storable range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value or len(value) > 32:
            return None
        try:
            number = float(value)
        except ValueError:
            return None
    elif isinstance(value, int):
        if not 0 <= value <= MAX_TIMESTAMP:  # before float(): a huge integer would overflow it
            return None
        number = float(value)
    elif isinstance(value, float):
        number = value
    else:
        return None
    if not math.isfinite(number) or not 0 <= number <= MAX_TIMESTAMP:
        return None
    return datetime.fromtimestamp(number, tz=UTC)


def scalar(value: Any, limit: int = 200) -> str | int | bool | None:
    """A JSON scalar worth keeping: a bounded string (clipped), a bounded integer or a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if MIN_INT * 2**32 <= value <= MAX_INT * 2**32 else None
    return clipped(value, limit)


def picked(value: Any, keys: Iterable[str], limit: int = 200) -> dict[str, str | int | bool]:
    """The usable scalars of ``keys`` in a JSON object (others dropped)."""
    source = mapping(value)
    out: dict[str, str | int | bool] = {}
    for key in keys:
        item = scalar(source.get(key), limit)
        if item is not None:
            out[key] = item
    return out


__all__ = [
    "MAX_INT",
    "MAX_TIMESTAMP",
    "MIN_INT",
    "amount",
    "clipped",
    "digits",
    "identifier",
    "integer",
    "mapping",
    "picked",
    "scalar",
    "text",
    "timestamp",
]
