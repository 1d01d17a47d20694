"""A number's market: the skip at intake, the pricing and the retry rule read it from one place."""

from __future__ import annotations

import pytest

from airflow_provider_wamm.campaign.limit_rules import retry_blocked
from airflow_provider_wamm.campaign.markets import DEFAULT_UNSUPPORTED_MARKETS, market_of, unsupported_market
from airflow_provider_wamm.campaign.pricing import MarketTable

#: E.164 digits and their region: NANP numbers told apart by area code, shared calling codes, junk.
NUMBERS = {
    "12125550123": "US",  # New York
    "14165550123": "CA",  # Toronto
    "17875550123": "PR",  # Puerto Rico, priced as Rest of Latin America
    "18095550123": "DO",
    "13405550123": "VI",  # US Virgin Islands: not a US number for Meta's market rule
    "77012345678": "KZ",
    "74951234567": "RU",
    "4915112345678": "DE",
}


@pytest.mark.parametrize(("digits", "region"), sorted(NUMBERS.items()))
def test_the_skip_and_the_market_table_agree_on_the_country(digits: str, region: str) -> None:
    country = MarketTable.shipped().country_of(digits)
    assert market_of(digits) == region
    assert (unsupported_market(digits, DEFAULT_UNSUPPORTED_MARKETS) is not None) == (region == "US")
    if country is not None:
        assert country.iso == region
    assert (retry_blocked(digits) == "us_marketing_block") == (region == "US")


def test_the_default_skip_is_a_market_the_table_says_meta_never_delivers_to() -> None:
    table = MarketTable.shipped()
    for region in DEFAULT_UNSUPPORTED_MARKETS:
        assert table.countries[region].not_delivered


def test_a_number_that_does_not_parse_has_no_market() -> None:
    assert market_of("999") is None
    assert MarketTable.shipped().country_of("999") is None
    assert retry_blocked("999") is None
