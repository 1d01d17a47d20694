"""Unit tests of the signature check and the body parser."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from airflow_provider_wamm.webhooks import WebhookFormatError, parse_webhook, sign, verify_signature
from airflow_provider_wamm.webhooks.parsing import (
    click_from_webhook,
    parse_click,
    parse_status,
    status_from_webhook,
)
from tests.webhooks.conftest import body, click, status


def test_sign_matches_a_plain_hmac() -> None:
    raw = b'{"a": 1}'
    assert sign(raw, "s3cret") == "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("header", "secret", "ok"),
    [
        (None, "k", False),
        ("", "k", False),
        ("sha256=", "k", False),
        ("sha256=zz", "k", False),
        ("garbage", "k", False),
        ("SIGNED", "", False),
    ],
)
def test_verify_signature_rejects_junk(header: str | None, secret: str, ok: bool) -> None:
    assert verify_signature(b"x", header, secret) is ok


def test_verify_signature_accepts_surrounding_space_and_uppercase_hex() -> None:
    good = sign(b"body", "k")
    assert verify_signature(b"body", f"  {good} ", "k")
    assert verify_signature(b"body", "sha256=" + good[7:].upper(), "k")
    assert not verify_signature(b"body ", good, "k")
    assert not verify_signature(b"body", sign(b"body", "k2"), "k")


def test_parse_status_reads_metas_fields() -> None:
    update = parse_status(status("wamid.1", "delivered", "1760000000", category="MARKETING"))
    assert update is not None
    assert update.wamid == "wamid.1"
    assert update.status == "delivered"
    assert update.timestamp == datetime.fromtimestamp(1_760_000_000, tz=UTC)
    assert update.recipient_id == "4915123456789"
    assert update.pricing_category == "marketing"
    assert update.pricing_model == "PMP"
    assert update.error_code is None


def test_parse_failed_status_takes_the_first_error() -> None:
    obj = status("wamid.2", "failed", 1_760_000_000, error=131049)
    obj["errors"].insert(0, "not an object")
    update = parse_status(obj)
    assert update is not None
    assert update.error_code == 131049
    assert update.error_title == "Meta chose not to deliver"
    assert update.error_details is not None and "healthy engagement" in update.error_details


def test_failed_status_without_title_gets_metas_title() -> None:
    update = parse_status({"id": "w", "status": "failed", "timestamp": 1, "errors": [{"code": "131026"}]})
    assert (
        update is not None and update.error_code == 131026 and update.error_title == "Message undeliverable"
    )


def test_unknown_status_is_a_lookup_error_not_a_skip() -> None:
    with pytest.raises(LookupError):
        parse_status({"id": "w", "status": "deleted", "timestamp": "1"})


def test_click_without_click_id_gets_a_stable_id() -> None:
    first = parse_click(click(None, 1_760_000_100))
    again = parse_click(click(None, 1_760_000_100))
    other = parse_click(click(None, 1_760_000_101))
    assert first is not None and again is not None and other is not None
    assert first.click_id == again.click_id != other.click_id
    assert first.click_id.startswith("h:")


def test_click_fields() -> None:
    obj = click("IwAR7", 1_755_665_204)
    obj["marketing_messages_link_click_data"]["click_component"] = "CTA"
    event = parse_click(obj)
    assert event is not None
    assert (event.click_id, event.click_component, event.tracking_token) == ("IwAR7", "cta", "tok")
    assert event.timestamp == datetime.fromtimestamp(1_755_665_204, tz=UTC)


def test_parse_webhook_counts() -> None:
    payload = body([status("w1", "sent"), status("w1", "sent"), {"id": "w2"}], [click("c1")])
    parsed = parse_webhook(payload)
    assert parsed.counts() == {"statuses": 2, "clicks": 1, "skipped": 1, "ignored": 0}


def test_other_webhook_fields_are_ignored() -> None:
    # account_update is read now (tests/webhooks/test_signals_parsing.py); a template edit is not.
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "message_template_components_update",
                        "value": {"message_template_id": 1, "message_template_element": "Hi"},
                    }
                ],
            }
        ],
    }
    parsed = parse_webhook(payload)
    assert parsed.counts() == {"statuses": 0, "clicks": 0, "skipped": 0, "ignored": 1}
    assert not parsed.signals


def test_account_update_is_read_as_a_signal_not_ignored() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [{"field": "account_update", "value": {"event": "MM_LITE_TERMS_SIGNED"}}]}
        ],
    }
    parsed = parse_webhook(payload)
    assert parsed.counts() == {"statuses": 0, "clicks": 0, "skipped": 0, "ignored": 0}
    assert [(s.kind, s.event, s.waba_id) for s in parsed.signals.account_signals] == [
        ("account_update", "MM_LITE_TERMS_SIGNED", "1")
    ]


@pytest.mark.parametrize("payload", [None, [], "x", {"entry": "x"}, {"object": "whatsapp_business_account"}])
def test_not_metas_shape(payload: object) -> None:
    with pytest.raises(WebhookFormatError):
        parse_webhook(payload)


def test_single_objects_parse_like_bodies_and_raise_instead_of_skipping() -> None:
    update = status_from_webhook(status("wamid.A", "read", 1_760_000_000))
    assert update == parse_webhook(body([status("wamid.A", "read", 1_760_000_000)])).statuses[0]
    with pytest.raises(ValueError, match="timestamp"):
        status_from_webhook({"id": "w", "status": "sent"})
    with pytest.raises(KeyError):
        status_from_webhook({"id": "w", "status": "deleted", "timestamp": "1"})
    event = click_from_webhook(click("k1"), wamid="wamid.A", recipient="4915100000000")
    assert (event.click_id, event.wamid, event.recipient) == ("k1", "wamid.A", "4915100000000")
    assert click_from_webhook(click("k1")) == parse_webhook(body(actions=[click("k1")])).clicks[0]
    with pytest.raises(ValueError, match="timestamp"):
        click_from_webhook({"action_type": "marketing_messages_link_click"})
    with pytest.raises(KeyError):
        click_from_webhook({"action_type": "other", "timestamp": "1"})


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("wamm1.0123456789abcdef.spring", "wamm1.0123456789abcdef.spring"),
        ("crm:7 wamm1.0123456789abcdef.spring", "wamm1.0123456789abcdef.spring"),
        ("your own reference", None),
        (12345, None),
        ({"nested": "wamm1.0123456789abcdef.spring"}, None),
        (None, None),
        ("w" * 100_000, None),
    ],
)
def test_the_callback_key_is_read_from_biz_opaque_callback_data(value: object, key: str | None) -> None:
    obj = status("wamid.1", "sent")
    obj["biz_opaque_callback_data"] = value
    updates = parse_webhook(body(statuses=[obj])).statuses
    assert len(updates) == 1 and updates[0].callback_key == key  # the status itself is always kept
