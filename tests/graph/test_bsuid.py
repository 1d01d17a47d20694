"""Recipients by business-scoped user id (BSUID), and biz_opaque_callback_data."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wamm.graph import (
    InvalidRecipientError,
    PayloadError,
    SendResult,
    build_marketing_message,
    is_bsuid,
    mask_phone,
    recipient_kind,
    validate_marketing_message,
)
from airflow_provider_wamm.graph.limits import BSUID_ID_MAX, BSUID_MAX, BSUID_RE
from airflow_provider_wamm.graph.recipients import is_parent_bsuid

BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"


def build(**kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"template_name": "spring_sale", "language": "en_US"}
    options.update(kwargs)
    return build_marketing_message(**options)


@pytest.mark.parametrize(
    ("value", "bsuid", "parent"),
    [
        (BSUID, True, False),
        (PARENT, True, True),
        ("BR." + "a1B2" * 32, True, False),  # 128 letters and digits
        ("BR." + "a" * (BSUID_ID_MAX + 1), False, False),
        ("US.ENT." + "9" * BSUID_ID_MAX, True, True),
        ("US.ENTERPRISE42", True, False),  # an id that starts with "ENT" is not a parent id
        ("us.13491208655302741918", False, False),
        ("USA.1349", False, False),
        ("US.", False, False),
        ("US.1349 1208", False, False),
        ("US.1349-1208", False, False),
        ("US.ENT.", False, False),
        ("+4915123456789", False, False),
        ("4915123456789", False, False),
        (None, False, False),
        (4915123456789, False, False),
    ],
)
def test_a_bsuid_is_told_from_a_phone_number(value: object, bsuid: bool, parent: bool) -> None:
    assert is_bsuid(value) is bsuid
    assert is_parent_bsuid(value) is parent
    assert recipient_kind(value) == ("bsuid" if bsuid else "phone")


def test_the_pattern_and_the_limits_agree() -> None:
    assert BSUID_RE.pattern.endswith(f"{{1,{BSUID_ID_MAX}}}")
    assert len("US.ENT." + "1" * BSUID_ID_MAX) == BSUID_MAX


def test_a_bsuid_given_as_to_is_sent_as_recipient() -> None:
    payload = build(to=BSUID)
    assert "to" not in payload and payload["recipient"] == BSUID
    assert list(payload)[:3] == ["messaging_product", "recipient_type", "recipient"]
    validate_marketing_message(payload)
    parent = build(to=PARENT)
    assert parent["recipient"] == PARENT and "to" not in parent


def test_phone_numbers_keep_to() -> None:
    payload = build(to="+4915123456789")
    assert payload["to"] == "4915123456789" and "recipient" not in payload
    both = build(to="4915123456789", recipient=PARENT)
    assert (both["to"], both["recipient"]) == ("4915123456789", PARENT)


def test_a_bsuid_given_twice_is_refused() -> None:
    with pytest.raises(InvalidRecipientError) as info:
        build(to=BSUID, recipient=PARENT)
    assert info.value.field == "to"


@pytest.mark.parametrize("value", ["us.1349", "US.1349 1208", "US." + "1" * 129, 12, "US.ENT."])
def test_malformed_bsuids_are_refused_without_echo(value: object) -> None:
    with pytest.raises(InvalidRecipientError) as info:
        build(recipient=value)
    assert info.value.field == "recipient"
    assert "white space" in info.value.reason and "US.13491208655302741918" in info.value.reason
    if isinstance(value, str) and len(value) > 8:
        assert value not in str(info.value)
    payload = build(to="4915123456789")
    payload["recipient"] = value
    with pytest.raises(InvalidRecipientError):
        validate_marketing_message(payload)


def test_biz_opaque_callback_data_is_sent_and_checked() -> None:
    payload = build(to="4915123456789", biz_opaque_callback_data="order-42|ü")
    assert payload["biz_opaque_callback_data"] == "order-42|ü"
    validate_marketing_message(payload)
    assert "biz_opaque_callback_data" not in build(to="4915123456789")
    assert len(build(to=BSUID, biz_opaque_callback_data="x" * 512)["biz_opaque_callback_data"]) == 512
    for bad in ("x" * 513, "", "  ", 42):
        with pytest.raises(PayloadError) as info:
            build(to="4915123456789", biz_opaque_callback_data=bad)
        assert info.value.field == "biz_opaque_callback_data"
        payload = build(to="4915123456789")
        payload["biz_opaque_callback_data"] = bad
        with pytest.raises(PayloadError):
            validate_marketing_message(payload)


def test_send_result_keeps_wa_id_and_user_id() -> None:
    both = SendResult.from_response(
        {
            "contacts": [{"input": BSUID, "wa_id": "16505551234", "user_id": BSUID}],
            "messages": [{"id": "wamid.A", "message_status": "accepted"}],
        }
    )
    assert (both.input, both.wa_id, both.user_id) == (BSUID, "16505551234", BSUID)
    by_phone = SendResult.from_response(
        {"contacts": [{"input": "+5511987654321", "wa_id": "551187654321"}], "messages": [{"id": "wamid.B"}]}
    )
    assert (by_phone.input, by_phone.wa_id, by_phone.user_id) == ("+5511987654321", "551187654321", None)


def test_bsuids_are_masked_in_logs() -> None:
    assert mask_phone(BSUID) == "US" + "*" * (len(BSUID) - 4) + "18"
