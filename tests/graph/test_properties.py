"""Property tests (hypothesis): the recipient and payload code only ever fails with its own errors."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import phonenumbers
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_provider_wamm.graph import (
    InvalidRecipientError,
    PayloadError,
    body_component,
    build_marketing_message,
    button_from_spec,
    components_from_spec,
    copy_code_button,
    currency_param,
    header_component,
    location_param,
    mask_phone,
    normalize_phone,
    parameter_from_spec,
    text_param,
    url_button,
    validate_marketing_message,
)

FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

PHONE_ALPHABET = st.sampled_from(list("0123456789 +-().\u00a0/x\u0660\u0669\uff11\u00b2"))
phone_like = st.text(PHONE_ALPHABET, max_size=30)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.binary(max_size=20),
    st.dates(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)

VALID_EXAMPLES = [
    n
    for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    if (n := phonenumbers.example_number_for_type(region, kind)) is not None
    and phonenumbers.is_valid_number(n)
]


@FAST
@given(st.one_of(st.text(max_size=80), phone_like, anything))
def test_normalize_phone_only_raises_invalid_recipient(value: Any) -> None:
    try:
        digits = normalize_phone(value)
    except InvalidRecipientError as exc:
        assert exc.field == "to"
        return
    assert digits.isascii() and digits.isdigit()
    assert 5 <= len(digits) <= 15
    assert normalize_phone(digits) == digits  # idempotent
    assert mask_phone(digits)[-2:] == digits[-2:]


@FAST
@given(phone_like, st.sampled_from(["DE", "US", "IN", "BR", "GB", "NG"]))
def test_normalize_phone_with_region_only_raises_invalid_recipient(value: str, region: str) -> None:
    with contextlib.suppress(InvalidRecipientError):
        normalize_phone(value, default_region=region)


@FAST
@given(
    st.sampled_from(VALID_EXAMPLES),
    st.sampled_from(
        [
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            "digits",
            "00",
            "national",
        ]
    ),
)
def test_valid_numbers_round_trip(number: phonenumbers.PhoneNumber, style: Any) -> None:
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    kwargs: dict[str, Any]
    if style == "digits":
        text, kwargs = e164[1:], {}
    elif style == "00":
        text, kwargs = "00" + e164[1:], {}
    elif style == "national":
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        kwargs = {"default_region": region}
        # Where national numbers can also read as international digits of the same country,
        # normalisation prefers the international reading; skip those rare ambiguous cases.
        plain = "".join(ch for ch in text if ch.isdigit())
        try:
            alt = phonenumbers.parse("+" + plain, None)
        except phonenumbers.NumberParseException:
            alt = None
        assume(
            alt is None or not phonenumbers.is_valid_number(alt) or alt.country_code != number.country_code
        )
    else:
        text, kwargs = phonenumbers.format_number(number, style), {}
    assert normalize_phone(text, **kwargs) == e164[1:]


@FAST
@given(anything)
def test_parameter_builders_only_raise_payload_errors(value: Any) -> None:
    builders = [
        text_param,
        lambda v: text_param("x", parameter_name=v),
        lambda v: currency_param(v, "EUR", 1000),
        lambda v: currency_param("1 €", v, 1000),
        lambda v: currency_param("1 €", "EUR", v),
        lambda v: location_param(v, v, name=v),
        header_component,
        lambda v: body_component([v, "x"]),
        lambda v: body_component({"name": v}),
        lambda v: url_button(v, "x"),
        lambda v: url_button(0, v),
        lambda v: copy_code_button(1, v),
        parameter_from_spec,
        lambda v: parameter_from_spec(
            {"type": "currency", "fallback_value": v, "code": "EUR", "amount_1000": v}
        ),
        lambda v: button_from_spec({"type": "quick_reply", "index": v, "payload": v}),
        lambda v: components_from_spec(body=[v], buttons=[{"type": "url", "index": 0, "text": v}]),
        lambda v: components_from_spec(header=v, limited_time_offer_ms=v),
    ]
    for build in builders:
        try:
            result = build(value)
        except PayloadError:
            continue
        json.dumps(result)  # whatever is accepted is JSON


@FAST
@given(anything, anything, anything, st.lists(anything, max_size=3))
def test_build_marketing_message_only_raises_payload_errors(
    to: Any, name: Any, language: Any, params: list[Any]
) -> None:
    for kwargs in (
        {"to": to, "template_name": "spring_sale", "language": "en"},
        {"to": "4915123456789", "template_name": name, "language": language},
        {"to": "4915123456789", "recipient": to, "template_name": "spring_sale", "language": "en"},
        {
            "to": "4915123456789",
            "template_name": "spring_sale",
            "language": "en",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}],
        },
        {"to": "4915123456789", "template_name": "x", "language": "en", "components": params},
        {"to": "4915123456789", "template_name": "x", "language": "en", "product_policy": name},
    ):
        try:
            payload = build_marketing_message(**kwargs)
        except PayloadError:
            continue
        validate_marketing_message(payload)  # what the builder accepts, the validator accepts
        json.dumps(payload)


@FAST
@given(
    st.recursive(
        anything,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "type",
                        "parameters",
                        "text",
                        "sub_type",
                        "index",
                        "cards",
                        "card_index",
                        "components",
                        "currency",
                        "image",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_validate_only_raises_payload_errors_on_any_components(components: Any) -> None:
    payload = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "4915123456789",
        "type": "template",
        "template": {"name": "x", "language": {"code": "en"}, "components": components},
    }
    with contextlib.suppress(PayloadError):
        validate_marketing_message(payload)
