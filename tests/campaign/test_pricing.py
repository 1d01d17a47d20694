"""The cost planner: the shipped rates, markets by calling code and date, estimates, Meta's CSV, budgets."""

from __future__ import annotations

import json
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from airflow_provider_wamm.campaign.pricing import (
    NORTH_AMERICA,
    OTHER,
    SHIPPED_RATES,
    Budget,
    MarketTable,
    RateCard,
    read_package_data,
)
from airflow_provider_wamm.graph.errors import ConfigurationError

JULY = date(2026, 7, 15)
OCTOBER = date(2026, 10, 1)
LATAM = "Rest of Latin America"
CEE = "Rest of Central & Eastern Europe"
APAC = "Rest of Asia Pacific"


@pytest.fixture(scope="module")
def card() -> RateCard:
    return RateCard.shipped()


def market(card: RateCard, number: str, on: date) -> str:
    return card.rate_of(number.lstrip("+"), on)[0]


# -- the shipped file ---------------------------------------------------------------------------


def test_the_shipped_card_holds_the_july_and_october_2026_cards(card: RateCard) -> None:
    assert [c.effective_from for c in card.cards] == [date(2026, 7, 1), date(2026, 10, 1)]
    assert [len(c.rates) for c in card.cards] == [38, 47]
    assert {c.currency for c in card.cards} == {"USD"}
    for c in card.cards:
        assert all(Decimal("0.005") < r < Decimal("0.2") for r in c.rates.values())
        regions = {OTHER, NORTH_AMERICA, LATAM, CEE, APAC, "Rest of Africa", "Rest of Middle East"}
        assert regions | {"Rest of Western Europe"} <= set(c.rates)
        assert all(c.sources.values()), "every row says where it comes from"


def test_the_shipped_rates_match_the_transcribed_cards(card: RateCard) -> None:
    july, october = card.cards
    assert july.rates["Germany"] == Decimal("0.1365")
    assert july.rates["United Kingdom"] == Decimal("0.0635")
    assert july.rates["Poland"] == Decimal("0.0366")
    assert july.rates[NORTH_AMERICA] == Decimal("0.0250")
    assert "Kazakhstan" not in july.rates
    assert october.rates["Kazakhstan"] == Decimal("0.0604")
    assert october.rates["Mexico"] == Decimal("0.0397")
    assert october.rates[APAC] == Decimal("0.0842")


def test_the_shipped_file_says_where_its_numbers_come_from() -> None:
    header = [line for line in read_package_data(SHIPPED_RATES).splitlines() if line.startswith("#")]
    text = "\n".join(header)
    assert "Pricing on the WhatsApp Business Platform" in text
    assert "THIRD-PARTY TRANSCRIPTION" in text
    assert "/work/" not in text and "/tmp/" not in text


def test_the_card_in_force_is_the_latest_that_took_effect(card: RateCard) -> None:
    assert card.in_force(date(2026, 7, 1)).effective_from == date(2026, 7, 1)
    assert card.in_force(date(2026, 9, 30)).effective_from == date(2026, 7, 1)
    assert card.in_force(OCTOBER).effective_from == OCTOBER
    assert card.in_force(date(2030, 1, 1)).effective_from == OCTOBER
    with pytest.raises(ConfigurationError, match=r"no rates in force on 2026-06-30"):
        card.in_force(date(2026, 6, 30))


# -- markets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["+18092345678", "+18292345678", "+18492345678", "+16582345678", "+18762345678", "+17872345678"],
)
def test_meta_s_nanp_exceptions_are_rest_of_latin_america(card: RateCard, number: str) -> None:
    assert market(card, number, JULY) == LATAM
    assert market(card, "+19392345678", JULY) == LATAM  # Puerto Rico's second area code


def test_us_and_canada_are_north_america_and_other_nanp_numbers_are_other(card: RateCard) -> None:
    assert market(card, "+12125551234", JULY) == NORTH_AMERICA
    assert market(card, "+15142345678", JULY) == NORTH_AMERICA
    assert market(card, "+12462345678", JULY) == OTHER  # Barbados
    assert market(card, "+16712345678", JULY) == OTHER  # Guam: not in Meta's list


def test_numbers_are_billed_by_calling_code_not_by_libphonenumber_region(card: RateCard) -> None:
    # libphonenumber places +44 7911 in Guernsey; Meta bills the calling code 44 as the United Kingdom.
    assert market(card, "+447911123456", JULY) == "United Kingdom"
    assert market(card, "+3725123456", JULY) == OTHER  # Estonia is not listed


def test_markets_that_left_their_regions_follow_the_effective_date(card: RateCard) -> None:
    assert market(card, "+48601234567", JULY) == "Poland"
    assert market(card, "+8801812345678", date(2026, 9, 30)) == APAC
    assert market(card, "+8801812345678", OCTOBER) == "Bangladesh"
    assert market(card, "+212612345678", date(2026, 9, 30)) == "Rest of Africa"
    assert market(card, "+212612345678", OCTOBER) == "Morocco"
    assert market(card, "+380501234567", date(2026, 9, 30)) == CEE
    assert market(card, "+380501234567", OCTOBER) == "Ukraine"


def test_kazakh_numbers_share_plus_7_with_russia(card: RateCard) -> None:
    assert market(card, "+77012345678", date(2026, 9, 30)) == OTHER
    assert market(card, "+77012345678", OCTOBER) == "Kazakhstan"
    assert market(card, "+74951234567", OCTOBER) == "Russia"


def test_a_card_without_a_standalone_market_bills_it_as_its_former_region() -> None:
    # A card from before July 2026 lists no Poland: Polish numbers are Rest of CEE again.
    csv_text = "market,effective_from,currency,marketing\n" + "\n".join(
        f"{m},2026-01-01,USD,{r}" for m, r in [(CEE, "0.0860"), (OTHER, "0.0604"), ("Germany", "0.1365")]
    )
    card = RateCard.from_text(csv_text)
    assert card.rate_of("48601234567", date(2026, 3, 1)) == (CEE, Decimal("0.0860"))
    assert card.rate_of("4915123456789", date(2026, 3, 1)) == ("Germany", Decimal("0.1365"))
    # Argentina was never in a region: without its row the card has no rate for it.
    assert card.rate_of("5491123456789", date(2026, 3, 1)) == ("Argentina", None)


# -- estimates ----------------------------------------------------------------------------------


def test_estimate_counts_prices_and_totals_by_market(card: RateCard) -> None:
    recipients = [
        "+49 151 23456789",
        {"phone": "+49 151 23456780"},
        "+48601234567",
        "+12125551234",  # US: Meta delivers no marketing there, never charged
        "+584121234567",  # Venezuela: no messages at all
        "not a number",
        "+77012345678",
    ]
    estimate = card.estimate(recipients, on=OCTOBER)
    by_market = {m.market: m for m in estimate.markets}
    assert by_market["Germany"].recipients == 2
    assert by_market["Germany"].cost == Decimal("0.2730")
    assert by_market["Poland"].cost == Decimal("0.0366")
    assert by_market["Kazakhstan"].rate == Decimal("0.0604")
    assert [m.market for m in estimate.markets] == ["Germany", "Kazakhstan", "Poland"]  # costliest first
    assert estimate.total_cost == Decimal("0.2730") + Decimal("0.0366") + Decimal("0.0604")
    assert estimate.priced_recipients == 4
    assert estimate.unknown == 1
    assert dict(estimate.not_delivered) == {"sanctioned_market": 1, "us_marketing_block": 1}
    assert estimate.currency == "USD" and estimate.effective_from == OCTOBER


def test_estimate_renders_to_json_and_a_log_line(card: RateCard) -> None:
    estimate = card.estimate(["+4915123456789", "bad"], on=JULY)
    data = json.loads(json.dumps(estimate.to_dict()))
    assert data["total_cost"] == pytest.approx(0.1365)
    assert data["markets"] == [{"market": "Germany", "recipients": 1, "rate": 0.1365, "cost": 0.1365}]
    assert data["unknown"] == 1
    line = estimate.summary()
    assert "1 recipients, 0.1365 USD on the card effective 2026-07-01" in line
    assert "1 without a usable number" in line


def test_estimate_normalises_like_the_sender(card: RateCard) -> None:
    estimate = card.estimate(["0151 23456789", "+48 601 234 567"], on=JULY, default_region="DE")
    assert {m.market for m in estimate.markets} == {"Germany", "Poland"}


def test_estimate_lists_markets_the_card_has_no_rate_for() -> None:
    card = RateCard.from_text("market,effective_from,currency,marketing\nGermany,2026-07-01,USD,0.1365\n")
    estimate = card.estimate(["+4915123456789", "+48601234567"], on=JULY)
    assert estimate.priced_recipients == 1
    assert dict(estimate.unpriced) == {CEE: 1}  # no Poland on this card: billed as its region, unpriced
    assert f"1 in {CEE} without a rate" in estimate.summary()


# -- loading cards ------------------------------------------------------------------------------

META_CSV = (
    '"Cost per message in USD on the WhatsApp Business Platform, effective October 1, 2026",,,,,,\n'
    'Market,Currency,Marketing,Utility,Authentication,"Authentication-\nInternational",Service\n'
    "Germany,USD,$0.1365,0.055,0.055,n/a,0.055\n"
    "Rest of Latin America,USD,0.0740,0.0113,0.0113,n/a,0.0113\n"
    "Other,USD,0.0604,0.0077,0.0077,n/a,0.0077\n"
)


def test_meta_s_own_rate_card_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text(META_CSV, encoding="utf-8")
    card = RateCard.from_csv(path)
    rates = card.in_force(OCTOBER)
    assert rates.effective_from == OCTOBER
    assert dict(rates.rates) == {
        "Germany": Decimal("0.1365"),
        LATAM: Decimal("0.0740"),
        OTHER: Decimal("0.0604"),
    }
    assert card.rate_of("18092345678", OCTOBER) == (LATAM, Decimal("0.0740"))


def test_blank_lines_before_meta_s_preamble_are_skipped() -> None:
    card = RateCard.from_text(",,,\n\n" + META_CSV)
    assert card.in_force(OCTOBER).rates["Germany"] == Decimal("0.1365")


def test_an_excel_workbook_under_a_csv_name_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb5U0#\xf4")
    with pytest.raises(ConfigurationError, match="save the rates sheet as CSV"):
        RateCard.from_csv(path)


def test_a_meta_csv_without_a_date_needs_one(tmp_path: Path) -> None:
    text = META_CSV.split("\n", 1)[1]
    with pytest.raises(ConfigurationError, match="no effective date"):
        RateCard.from_text(text)
    card = RateCard.from_text(text, effective_from=date(2027, 1, 1))
    assert card.in_force(date(2027, 1, 2)).rates["Germany"] == Decimal("0.1365")


def test_a_user_csv_in_the_shipped_layout_is_read(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(
        "# my negotiated view of the card\n"
        "market,effective_from,currency,marketing,source\n"
        "Germany,2027-01-01,eur,0.12,finance\n"
        "Other,2027-01-01,EUR,0.05,finance\n",
        encoding="utf-8",
    )
    rates = RateCard.from_csv(path).in_force(date(2027, 2, 1))
    assert rates.currency == "EUR"
    assert rates.rate_of("4915123456789") == ("Germany", Decimal("0.12"))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("Atlantis,2027-01-01,USD,0.1", r"unknown markets \['Atlantis'\]"),
        ("Germany,2027-01-01,USD,0.1\nGermany,2027-01-01,USD,0.2", "listed twice"),
        ("Germany,2027-01-01,USD,0.1\nOther,2027-01-01,EUR,0.2", "mixes USD and EUR"),
        ("Germany,2027-01-01,USD,cheap", "is not a number"),
        ("Germany,2027-01-01,USD,-0.1", "must be a number >= 0"),
    ],
)
def test_bad_cards_are_refused_with_the_reason(rows: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RateCard.from_text("market,effective_from,currency,marketing\n" + rows + "\n")


def test_a_card_needs_the_market_and_marketing_columns() -> None:
    with pytest.raises(ConfigurationError, match="expected market, currency, marketing"):
        RateCard.from_text("country,rate\nGermany,0.1\n")


def test_the_market_table_lists_meta_s_regions() -> None:
    table = MarketTable.shipped()
    assert table.countries["PL"].region == CEE and table.countries["PL"].market == "Poland"
    assert table.countries["DO"].area_codes == frozenset({"809", "829", "849"})
    assert table.countries["KZ"].region == OTHER
    assert table.countries["US"].not_delivered == "us_marketing_block"
    assert {"North America", LATAM, OTHER} <= table.market_names()


# -- budget -------------------------------------------------------------------------------------


def test_budget_says_when_the_spend_reaches_the_ceiling() -> None:
    budget = Budget("0.10")
    assert budget.can_afford("0.0604")
    assert budget.charge("0.0604") is False
    assert not budget.can_afford(0.0604)  # 0.1208 > 0.10
    assert budget.can_afford("0.0396")
    assert budget.charge(0.0396) is True
    assert budget.reached and budget.remaining == 0
    assert budget.spent == Decimal("0.1000")


def test_budget_replaces_an_estimate_with_the_actual_cost() -> None:
    budget = Budget(1, currency="eur")
    budget.charge("0.60")
    assert budget.correct(estimated="0.60", actual="0.40") is False
    assert budget.spent == Decimal("0.40")
    assert budget.to_dict() == {
        "currency": "EUR",
        "max_cost": 1.0,
        "spent": 0.4,
        "remaining": 0.6,
        "reached": False,
    }


def test_budget_is_safe_to_share_between_threads() -> None:
    budget = Budget("1000")

    def spend() -> None:
        for _ in range(1000):
            budget.charge("0.0001")

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.spent == Decimal("0.8000")


@pytest.mark.parametrize("bad", [0, -1, "lots", float("nan"), True])
def test_budget_refuses_a_ceiling_that_is_not_a_positive_amount(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        Budget(bad)  # type: ignore[arg-type]
