"""What a campaign will cost before it is sent: Meta's marketing rates by market, and a budget.

Meta charges a marketing message when it is *delivered*, at the rate of the recipient's market, which
follows from the country calling code of the number (pricing page "Country calling codes"). A
:class:`RateCard` holds the rates by the date they took effect; :meth:`RateCard.estimate` prices a
list of recipients on a date::

    card = RateCard.shipped()                     # or RateCard.from_csv("my_rates.csv")
    estimate = card.estimate(recipients, on=date(2026, 11, 1))
    print(estimate.summary())  # "48210 recipients, 3112.5240 USD on the card effective 2026-10-01 ..."

:class:`Budget` keeps the running spend of a campaign and says when it reaches a ceiling; the bulk
sender consults it through a :class:`~airflow_provider_wamm.campaign.spend.SpendGuard`
(``max_cost``). The shipped rates are third-party transcriptions of Meta's USD card (see the header
of ``data/marketing_rates.csv``); load Meta's own file to be sure.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import phonenumbers

from airflow_provider_wamm.campaign.markets import parse_digits, region_of
from airflow_provider_wamm.campaign.sources import iter_rows
from airflow_provider_wamm.graph.errors import ConfigurationError, InvalidRecipientError
from airflow_provider_wamm.graph.recipients import normalize_phone

#: The region every calling code Meta does not list is billed as.
OTHER = "Other"
#: The market of US and Canadian numbers.
NORTH_AMERICA = "North America"
#: The rates file shipped with the provider (USD, third-party transcriptions of Meta's card).
SHIPPED_RATES = "marketing_rates.csv"
#: The market table shipped with the provider (Meta's "Country calling codes" list).
SHIPPED_MARKETS = "pricing_markets.csv"

_NANP = 1
_META_PREAMBLE = re.compile(r"effective\s+([A-Z][a-z]+\s+\d{1,2},\s*\d{4})")


def read_package_data(name: str) -> str:
    """The text of a file shipped in ``airflow_provider_wamm/data``."""
    return resources.files("airflow_provider_wamm").joinpath("data", name).read_text(encoding="utf-8")


def _data_lines(text: str) -> list[str]:
    """The lines of a CSV file without its ``#`` comment lines."""
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


# -- markets ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Country:
    """One row of the market table: how numbers of one country are billed."""

    iso: str
    """ISO 3166 code (``"PL"``)."""
    calling_code: int
    """Country calling code (``48``)."""
    name: str
    """The country's name."""
    market: str | None
    """The standalone market it is billed as when the card in force lists it (``"Poland"``)."""
    region: str | None
    """The region it is billed as otherwise (``"Rest of Central & Eastern Europe"``)."""
    area_codes: frozenset[str] = frozenset()
    """For ``+1`` countries priced apart from the US and Canada: their area codes."""
    not_delivered: str | None = None
    """Why Meta does not deliver marketing messages there (``us_marketing_block``), if it does not."""


class MarketTable:
    """Maps a phone number to its country, and a country to the markets it may be billed as.

    Numbers are matched by country calling code, as Meta bills them (``+44`` numbers of Guernsey are
    United Kingdom numbers). ``+1`` numbers are North America when they are US or Canadian numbers,
    Rest of Latin America for the area codes of the Dominican Republic, Jamaica and Puerto Rico, and
    Other for every other NANP country; ``+7`` numbers are Kazakh or Russian by libphonenumber's ranges.

    :param countries: the table's rows (see :meth:`shipped` and :meth:`from_csv`).
    """

    def __init__(self, countries: Iterable[Country]) -> None:
        self.countries: dict[str, Country] = {}
        self._by_code: dict[int, list[Country]] = {}
        self._nanp_areas: dict[str, Country] = {}
        for country in countries:
            if country.iso in self.countries:
                raise ConfigurationError(f"market table: country {country.iso!r} is listed twice")
            self.countries[country.iso] = country
            self._by_code.setdefault(country.calling_code, []).append(country)
            self._nanp_areas.update(dict.fromkeys(country.area_codes, country))

    @classmethod
    def shipped(cls) -> MarketTable:
        """The table shipped with the provider (Meta's list of July 1, 2026 and its October changes)."""
        return cls.from_text(read_package_data(SHIPPED_MARKETS))

    @classmethod
    def from_csv(cls, path: str | Path) -> MarketTable:
        """A table from a CSV file with the columns of the shipped one (``#`` lines are comments)."""
        return cls.from_text(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def from_text(cls, text: str) -> MarketTable:
        """A table from CSV text (columns ``iso,calling_code,area_codes,country,market,region,
        not_delivered``)."""
        countries = []
        for row in csv.DictReader(_data_lines(text)):
            try:
                countries.append(
                    Country(
                        iso=row["iso"].strip().upper(),
                        calling_code=int(row["calling_code"]),
                        name=row["country"].strip(),
                        market=row["market"].strip() or None,
                        region=row["region"].strip() or None,
                        area_codes=frozenset(row["area_codes"].split()),
                        not_delivered=(row.get("not_delivered") or "").strip() or None,
                    )
                )
            except (KeyError, ValueError, AttributeError) as exc:
                raise ConfigurationError(f"market table: unreadable row {row!r} ({exc})") from None
        return cls(countries)

    def market_names(self) -> set[str]:
        """Every market and region name the table knows (a rate card may only use these)."""
        names = {OTHER}
        for country in self.countries.values():
            names.update(n for n in (country.market, country.region) if n)
        return names

    def country_of(self, digits: str) -> Country | None:
        """The country of an E.164 number (digits, no ``+``); ``None`` when Meta does not list it."""
        number = parse_digits(digits)
        if number is None:
            return None
        code = int(number.country_code or 0)
        if code == _NANP:
            return self._nanp_country(number)
        candidates = self._by_code.get(code, [])
        if len(candidates) > 1:  # +7: Kazakhstan by libphonenumber's ranges, else Russia (listed first)
            region = region_of(number)
            return next((c for c in candidates if c.iso == region), candidates[0])
        return candidates[0] if candidates else None

    def _nanp_country(self, number: phonenumbers.PhoneNumber) -> Country | None:
        """A ``+1`` number's country: by Meta's listed area codes, else US or Canada, else none (Other)."""
        area = str(number.national_number)[:3]
        if area in self._nanp_areas:
            return self._nanp_areas[area]
        region = region_of(number)
        return next((c for c in self._by_code.get(_NANP, []) if c.iso == region and not c.area_codes), None)


# -- rate cards ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketRates:
    """The marketing rates of one card: every market's rate from ``effective_from`` on.

    :param effective_from: the day the card took effect.
    :param currency: ISO 4217 code of the rates (``USD``).
    :param rates: rate per delivered marketing message, by market or region name.
    :param table: the market table that maps numbers to those names.
    :param sources: where the rows come from (the ``source`` column), by market.
    """

    effective_from: date
    currency: str
    rates: Mapping[str, Decimal]
    table: MarketTable = field(repr=False, compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def market_of(self, country: Country | None) -> str:
        """The market a country is billed as under this card (a standalone market, else its region)."""
        if country is None:
            return OTHER
        if country.market and country.market in self.rates:
            return country.market
        return country.region or country.market or OTHER

    def rate_of(self, digits: str) -> tuple[str, Decimal | None]:
        """The market of a number (E.164 digits) and its rate (``None`` if the card has no rate for it).

        Numbers Meta does not deliver marketing to (US numbers) still get their market's rate here; they
        are never charged because they fail, and :meth:`RateCard.estimate` counts them apart.
        """
        market = self.market_of(self.table.country_of(digits))
        return market, self.rates.get(market)


class RateCard:
    """Meta's marketing rates by effective date, with the market table that places numbers in markets.

    Load the shipped card (:meth:`shipped`), or your own CSV (:meth:`from_csv`): either the shipped
    layout (``market,effective_from,currency,marketing[,source]``, one whole card per
    ``effective_from``) or Meta's own rate-card CSV (a line ``Cost per message in USD ..., effective
    October 1, 2026`` then ``Market,Currency,Marketing,...``).

    :param cards: the cards (any order; one per effective date).
    :param table: the market table (the shipped one by default).
    """

    def __init__(self, cards: Iterable[MarketRates], table: MarketTable | None = None) -> None:
        self.table = table if table is not None else MarketTable.shipped()
        self.cards = sorted(cards, key=lambda c: c.effective_from)
        if not self.cards:
            raise ConfigurationError("a rate card needs at least one set of rates")
        known = self.table.market_names()
        for card in self.cards:
            unknown = sorted(set(card.rates) - known)
            if unknown:
                raise ConfigurationError(
                    f"rate card of {card.effective_from}: unknown markets {unknown}; use Meta's market "
                    "names, or pass a market table that lists them"
                )
        dates = [c.effective_from for c in self.cards]
        if len(set(dates)) != len(dates):
            raise ConfigurationError("a rate card holds one set of rates per effective date")

    @classmethod
    def shipped(cls) -> RateCard:
        """The rates shipped with the provider (USD; July 1 and October 1, 2026; see the file's header)."""
        return cls.from_text(read_package_data(SHIPPED_RATES))

    @classmethod
    def from_csv(
        cls, path: str | Path, *, effective_from: date | None = None, table: MarketTable | None = None
    ) -> RateCard:
        """Load a CSV in the shipped layout or in Meta's rate-card layout.

        :param effective_from: the day a Meta-layout file took effect, when its first line does not say.
        :param table: the market table (the shipped one by default).
        """
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"rate card {str(path)!r} is not a CSV text file (Meta has served Excel workbooks under a "
                "'.csv' name): open it and save the rates sheet as CSV"
            ) from None
        return cls.from_text(text, effective_from, table)

    @classmethod
    def from_text(
        cls, text: str, effective_from: date | None = None, table: MarketTable | None = None
    ) -> RateCard:
        """Parse CSV text in either layout (see :meth:`from_csv`)."""
        table = table if table is not None else MarketTable.shipped()
        lines = _data_lines(text)
        while lines and not lines[0].strip(", \t"):
            lines = lines[1:]
        match = _META_PREAMBLE.search(lines[0]) if lines else None
        if match or (lines and lines[0].lstrip('"').lower().startswith("cost per message")):
            if match:
                effective_from = datetime.strptime(" ".join(match.group(1).split()), "%B %d, %Y").date()
            lines = lines[1:]
        rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
        return cls(_cards_from_rows(rows, effective_from, table), table)

    def in_force(self, on: date) -> MarketRates:
        """The card in force on ``on``: the latest one that took effect on or before that day.

        :raises ConfigurationError: when ``on`` is before the first card.
        """
        current = None
        for card in self.cards:
            if card.effective_from <= on:
                current = card
        if current is None:
            raise ConfigurationError(
                f"no rates in force on {on}: the rate card starts on {self.cards[0].effective_from}; "
                "load a card that covers that date with RateCard.from_csv()"
            )
        return current

    def rate_of(self, digits: str, on: date) -> tuple[str, Decimal | None]:
        """The market and rate of a number (E.164 digits) on ``on``."""
        return self.in_force(on).rate_of(digits)

    def estimate(
        self,
        recipients: Iterable[Any],
        *,
        on: date | None = None,
        default_region: str | None = None,
        recipient_field: str = "phone",
    ) -> CostEstimate:
        """What sending one marketing message to each recipient costs at most, by market.

        Recipients are normalised the way the sender does it; rows are read one at a time (nothing is
        held but the counts). Every message is assumed delivered (Meta charges on delivery), and
        duplicates count as often as they appear, so the total is an upper bound.

        :param recipients: phone strings or dicts holding ``recipient_field``, like the operator's.
        :param on: the day of the send (today, UTC, by default): picks the card in force.
        :param default_region: region for numbers written without a country code.
        :param recipient_field: the key of the phone number in dict rows.
        """
        on = on or datetime.now(UTC).date()
        card = self.in_force(on)
        counts: Counter[str] = Counter()
        blocked: Counter[str] = Counter()
        unknown = 0
        for row in iter_rows(recipients, recipient_field=recipient_field):
            try:
                digits = normalize_phone(row.phone, default_region=default_region, field=recipient_field)
            except InvalidRecipientError:
                unknown += 1
                continue
            country = self.table.country_of(digits)
            if country is not None and country.not_delivered:
                blocked[country.not_delivered] += 1
            else:
                counts[card.market_of(country)] += 1
        return CostEstimate.from_counts(card, on, counts, blocked, unknown)


def _decimal(value: str, where: str) -> Decimal | None:
    text = value.strip().replace("$", "").replace(",", "")
    if text.lower() in ("", "n/a", "na", "-"):
        return None
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise ConfigurationError(f"rate card: {where}: {value!r} is not a number") from None
    if rate < 0 or not rate.is_finite():
        raise ConfigurationError(f"rate card: {where}: the rate {value!r} must be a number >= 0")
    return rate


def _cards_from_rows(
    rows: list[dict[str, str]], effective_from: date | None, table: MarketTable
) -> Iterator[MarketRates]:
    """Group CSV rows (keys compared case-insensitively) into one :class:`MarketRates` per date."""
    grouped: dict[date, dict[str, Any]] = {}
    for number, raw in enumerate(rows, start=1):
        row = {str(k).strip().lower(): (v or "") for k, v in raw.items() if k is not None}
        if "market" not in row or "marketing" not in row:
            raise ConfigurationError(
                f"rate card: the columns are {sorted(row)}; expected market, currency, marketing and, "
                "unless the file is Meta's rate card, effective_from"
            )
        when = date.fromisoformat(row["effective_from"].strip()) if row.get("effective_from") else None
        when = when or effective_from
        if when is None:
            raise ConfigurationError("rate card: no effective date; add effective_from or pass it")
        rate = _decimal(row["marketing"], f"row {number}")
        if rate is None:
            continue
        card = grouped.setdefault(when, {"currency": None, "rates": {}, "sources": {}})
        market, currency = row["market"].strip(), (row.get("currency") or "USD").strip().upper()
        if market in card["rates"]:
            raise ConfigurationError(f"rate card of {when}: market {market!r} is listed twice")
        if card["currency"] not in (None, currency):
            raise ConfigurationError(f"rate card of {when}: mixes {card['currency']} and {currency}")
        card["currency"] = currency
        card["rates"][market] = rate
        card["sources"][market] = row.get("source", "").strip()
    for when, card in grouped.items():
        yield MarketRates(when, card["currency"], card["rates"], table, card["sources"])


# -- estimates ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketCost:
    """The recipients of one market in an estimate, with the rate and their cost."""

    market: str
    """Market or region name."""
    recipients: int
    """Recipients billed as this market."""
    rate: Decimal
    """Rate per delivered message."""
    cost: Decimal
    """``recipients * rate``."""


@dataclass(frozen=True)
class CostEstimate:
    """The cost of a campaign before it is sent (an upper bound: every message assumed delivered).

    :param on: the day the estimate is for.
    :param effective_from: the day the card used took effect.
    :param currency: the currency of every amount.
    :param markets: the priced recipients by market, costliest first.
    :param total_cost: the sum of the markets' costs.
    :param unknown: recipients without a usable phone number (their market is unknown).
    :param unpriced: recipients whose market the card has no rate for, by market.
    :param not_delivered: recipients Meta does not deliver marketing to (never charged), by reason.
    """

    on: date
    effective_from: date
    currency: str
    markets: tuple[MarketCost, ...]
    total_cost: Decimal
    unknown: int = 0
    unpriced: Mapping[str, int] = field(default_factory=dict)
    not_delivered: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_counts(
        cls,
        card: MarketRates,
        on: date,
        counts: Mapping[str, int],
        not_delivered: Mapping[str, int],
        unknown: int,
    ) -> CostEstimate:
        """Price the recipient counts of each market with ``card``."""
        priced = [
            MarketCost(m, n, card.rates[m], card.rates[m] * n) for m, n in counts.items() if m in card.rates
        ]
        priced.sort(key=lambda m: (-m.cost, m.market))
        return cls(
            on=on,
            effective_from=card.effective_from,
            currency=card.currency,
            markets=tuple(priced),
            total_cost=sum((m.cost for m in priced), Decimal(0)),
            unknown=unknown,
            unpriced={m: n for m, n in sorted(counts.items()) if m not in card.rates},
            not_delivered=dict(sorted(not_delivered.items())),
        )

    @property
    def priced_recipients(self) -> int:
        """Recipients with a market and a rate."""
        return sum(m.recipients for m in self.markets)

    def summary(self) -> str:
        """One log line: the total, the card, and what could not be priced."""
        text = (
            f"{self.priced_recipients} recipients, {self.total_cost:.4f} {self.currency} on the card "
            f"effective {self.effective_from} (for {self.on})"
        )
        extras = [f"{self.unknown} without a usable number"] if self.unknown else []
        extras += [f"{n} in {m} without a rate" for m, n in self.unpriced.items()]
        extras += [f"{n} not delivered ({reason}, not charged)" for reason, n in self.not_delivered.items()]
        return text + ("; " + ", ".join(extras) if extras else "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (amounts as floats) for XCom or a report."""
        return {
            "on": self.on.isoformat(),
            "effective_from": self.effective_from.isoformat(),
            "currency": self.currency,
            "total_cost": float(self.total_cost),
            "priced_recipients": self.priced_recipients,
            "markets": [
                {"market": m.market, "recipients": m.recipients, "rate": float(m.rate), "cost": float(m.cost)}
                for m in self.markets
            ],
            "unknown": self.unknown,
            "unpriced": dict(self.unpriced),
            "not_delivered": dict(self.not_delivered),
        }


# -- budget -------------------------------------------------------------------------------------


class Budget:
    """A campaign's spending ceiling: the sender charges each accepted message and stops when told.

    Charge the estimated cost of each message Meta accepts (:meth:`charge`); when the real cost is
    known later (``pricing`` of a status webhook), :meth:`correct` replaces the estimate. Check
    :meth:`can_afford` before sending the next message. Safe to share between threads.

    :param max_cost: the ceiling, in ``currency`` (a number or a decimal string).
    :param currency: the currency of every amount charged.
    """

    def __init__(self, max_cost: Decimal | float | str, *, currency: str = "USD") -> None:
        self.max_cost = _amount(max_cost)
        if self.max_cost <= 0:
            raise ConfigurationError(f"max_cost must be a positive amount, got {max_cost!r}")
        self.currency = currency.upper()
        self._spent = Decimal(0)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Budget(spent={self.spent}, max_cost={self.max_cost}, currency={self.currency!r})"

    @property
    def spent(self) -> Decimal:
        """What has been charged so far."""
        with self._lock:
            return self._spent

    @property
    def remaining(self) -> Decimal:
        """What is left before the ceiling (never negative)."""
        with self._lock:
            return max(self.max_cost - self._spent, Decimal(0))

    @property
    def reached(self) -> bool:
        """Whether the spend has reached the ceiling."""
        with self._lock:
            return self._spent >= self.max_cost

    def can_afford(self, cost: Decimal | float | str) -> bool:
        """Whether one more message of ``cost`` stays within the ceiling."""
        amount = _amount(cost)
        with self._lock:
            return self._spent + amount <= self.max_cost

    def charge(self, cost: Decimal | float | str) -> bool:
        """Add the cost of one accepted message; returns whether the ceiling is now reached."""
        amount = _amount(cost)
        with self._lock:
            self._spent += amount
            return self._spent >= self.max_cost

    def correct(self, estimated: Decimal | float | str, actual: Decimal | float | str) -> bool:
        """Replace an estimate charged earlier by the actual cost; returns whether the ceiling is reached."""
        delta = _amount(actual) - _amount(estimated)
        with self._lock:
            self._spent += delta
            return self._spent >= self.max_cost

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for XCom or a log line."""
        spent = self.spent
        return {
            "currency": self.currency,
            "max_cost": float(self.max_cost),
            "spent": float(spent),
            "remaining": float(max(self.max_cost - spent, Decimal(0))),
            "reached": spent >= self.max_cost,
        }


def _amount(value: Decimal | float | str) -> Decimal:
    """An amount as a :class:`Decimal` (floats through their shortest text, so 0.1 stays 0.1)."""
    if isinstance(value, bool):
        raise ConfigurationError(f"an amount must be a number, got {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ConfigurationError(f"an amount must be a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigurationError(f"an amount must be a finite number >= 0, got {value!r}")
    return amount


__all__ = [
    "NORTH_AMERICA",
    "OTHER",
    "SHIPPED_MARKETS",
    "SHIPPED_RATES",
    "Budget",
    "CostEstimate",
    "Country",
    "MarketCost",
    "MarketRates",
    "MarketTable",
    "RateCard",
    "read_package_data",
]
