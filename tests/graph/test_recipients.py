"""Phone number normalisation and masking."""

from __future__ import annotations

import pytest

from airflow_provider_wamm.graph import ConfigurationError, InvalidRecipientError, mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+49 151 2345-6789", None, "4915123456789"),
        ("+49 (0)151 23456789", None, "4915123456789"),
        ("0049 151 23456789", None, "4915123456789"),
        ("4915123456789", None, "4915123456789"),
        (4915123456789, None, "4915123456789"),
        ("0151 23456789", "DE", "4915123456789"),
        ("0151 23456789", "de", "4915123456789"),
        ("4915123456789", "DE", "4915123456789"),  # already international (DE's country code first)
        ("0049 151 23456789", "US", "4915123456789"),  # "00" is an international prefix
        ("011 49 151 23456789", "US", "4915123456789"),  # the US one
        ("4915123456789", "IN", "4915123456789"),  # a foreign number in international digits
        ("4155552671", "US", "14155552671"),  # national, although "+41 55552671" could be Swiss
        ("+1 (415) 555-2671", None, "14155552671"),
        ("415.555.2671", "US", "14155552671"),
        ("+91 98765 43210", None, "919876543210"),
        (
            "\u0664\u0669\u0661\u0665\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
            None,
            "4915123456789",
        ),
        ("  +44 7911 123456  ", None, "447911123456"),
    ],
)
def test_normalize_phone(value: object, region: str | None, expected: str) -> None:
    assert normalize_phone(value, default_region=region) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing"),
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "character 'a'"),
        ("+49 151 2345 6789 ext. 5", "character 'e'"),
        ("+49+151", "second '+'"),
        ("+", "no digits"),
        ("123", "not a valid phone number"),
        ("0151 23456789", "include the country code"),  # national format without a region
        ("+49 1", "not a valid phone number"),
        ("+999 1234567", "not a valid phone number"),  # no such country code
        ("1" * 80, "characters long"),
        (4.9e12, "float"),
        (-4915123456789, "negative"),
        (True, "bool"),
        (b"4915123456789", "bytes"),
    ],
)
def test_invalid_numbers(value: object, reason: str) -> None:
    with pytest.raises(InvalidRecipientError) as info:
        normalize_phone(value)
    assert info.value.field == "to"
    assert reason in info.value.reason


def test_error_names_the_given_field_and_hides_the_number() -> None:
    with pytest.raises(InvalidRecipientError) as info:
        normalize_phone("+49 151 23", field="phone")
    assert info.value.field == "phone"
    assert "151" not in str(info.value)


def test_unknown_region_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="default_region"):
        normalize_phone("0151 23456789", default_region="XX")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4915123456789", "49*********89"),
        ("+4915123456789", "+49*********89"),
        ("14155552671", "1********71"),
        ("919876543210", "91********10"),
        ("US.13491208655302741918", "US*******************18"),
        ("12345", "12*45"),
        ("1234", "****"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone(value: object, expected: str) -> None:
    assert mask_phone(value) == expected
    assert len(mask_phone(value)) == len("" if value is None else str(value))
