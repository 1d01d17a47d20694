"""Markets Meta does not deliver marketing messages to: recipients there are skipped at intake.

Since 2025-04-01 Meta delivers no marketing template message to United States numbers (+1 with a US
area code), on every API; a send is refused with 131049 ("Per-user marketing template message
limits", Jun 17, 2026, and "Get started", Jun 30, 2026, under
``developers.facebook.com/documentation/business-messaging/whatsapp/``:
``templates/marketing-templates/per-user-limits`` and ``marketing-messages/get-started``). Meta asks
to wait at least 24 hours before sending a 131049 recipient anything again, and says repeated sends
within that time can extend the block. So a campaign skips these recipients before any request, with
the reason :data:`MARKET_NOT_SUPPORTED`, instead of paying a request for each and trying again every
day.

The market of a number is its region in Google's libphonenumber metadata (``phonenumbers``), which
tells NANP countries apart by area code: ``+1 212`` is ``US``, ``+1 416`` ``CA``, ``+1 787`` ``PR``.
This module is the one place that reads a number's region: the market table of the cost planner
(:class:`~.pricing.MarketTable`, and through it :func:`~.limit_rules.retry_blocked`) asks it too, so
the skip at intake and the pricing agree on which numbers are US numbers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import phonenumbers

from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.recipients import calling_code

#: Skip reason of a recipient in a market Meta does not deliver marketing messages to.
MARKET_NOT_SUPPORTED = "market_not_supported"
#: Regions skipped unless the campaign says otherwise (Meta's list as of 2026-06).
DEFAULT_UNSUPPORTED_MARKETS: tuple[str, ...] = ("US",)


def check_markets(markets: Iterable[str] | None) -> frozenset[str]:
    """The regions as upper-case ISO 3166 codes; :class:`ConfigurationError` naming one that is not a
    region ``phonenumbers`` knows. ``None`` or empty: no region is skipped."""
    if markets is None:
        return frozenset()
    if isinstance(markets, str):
        raise ConfigurationError(f"unsupported_markets must be a list of region codes, got {markets!r}")
    regions = frozenset(str(m).strip().upper() for m in markets)
    unknown = sorted(r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS)
    if unknown:
        raise ConfigurationError(
            f"unsupported_markets must be ISO 3166 region codes such as 'US', got {unknown}"
        )
    return regions


def parse_digits(digits: str) -> phonenumbers.PhoneNumber | None:
    """A number written as E.164 digits, parsed; ``None`` when it cannot be."""
    try:
        return phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None


def region_of(number: phonenumbers.PhoneNumber) -> str | None:
    """The region (ISO 3166) of a parsed number, by libphonenumber's ranges and area codes."""
    return phonenumbers.region_code_for_number(number)


def market_of(digits: str) -> str | None:
    """The region of a number written as E.164 digits (``"12125550123"`` -> ``"US"``), if known."""
    number = parse_digits(digits)
    return region_of(number) if number is not None else None


def unsupported_market(digits: str, markets: Collection[str]) -> str | None:
    """The region of ``digits`` when it is one of ``markets``, else ``None``.

    A number whose country calling code no region of ``markets`` uses is not parsed at all (the code
    is the first one to three digits, E.164 codes being prefix-free): only numbers that may be in
    one of them, such as +1 for the US, pay for a full parse."""
    if not markets or not digits.isdigit():
        return None
    code = calling_code(digits)
    if code is not None and not any(r in markets for r in phonenumbers.region_codes_for_country_code(code)):
        return None
    region = market_of(digits)
    return region if region in markets else None


__all__ = [
    "DEFAULT_UNSUPPORTED_MARKETS",
    "MARKET_NOT_SUPPORTED",
    "check_markets",
    "market_of",
    "parse_digits",
    "region_of",
    "unsupported_market",
]
