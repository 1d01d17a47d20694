"""Parsing Meta's signal webhooks: every new field from Meta's own example bodies, and the edge cases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import PreferenceValue, TemplateEventKind
from airflow_provider_wamm.webhooks.parsing import parse_webhook
from airflow_provider_wamm.webhooks.signals import SIGNAL_PARSERS, messaging_limit_tier
from tests.webhooks.meta_examples import (
    CAPABILITY_TIER,
    CATEGORY_PENDING,
    EXAMPLES,
    TEMPLATE_PAUSED,
    WABA,
    envelope,
    example,
    user_preferences,
)


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def test_every_documented_signal_field_has_a_parser() -> None:
    assert set(SIGNAL_PARSERS) == {"user_preferences", *EXAMPLES}


@pytest.mark.parametrize("field", sorted(EXAMPLES))
def test_metas_examples_parse_to_one_record(field: str) -> None:
    parsed = parse_webhook(example(field))
    assert (parsed.skipped, parsed.ignored) == (0, 0)
    assert sum(parsed.signals.counts().values()) == 1
    assert parsed.counts() == {"statuses": 0, "clicks": 0, "skipped": 0, "ignored": 0}


def test_user_preferences_stop_and_resume() -> None:
    stop = parse_webhook(user_preferences("stop")).signals.preferences
    assert len(stop) == 1
    change = stop[0]
    assert (change.recipient, change.value, change.timestamp) == ("16505551234", "stop", ts(1731705721))
    assert change.user_id == "US.13491208655302741918" and change.waba_id == WABA
    assert change.detail == "User requested to stop marketing messages"
    resume = parse_webhook(user_preferences("resume", timestamp="1731705800")).signals.preferences
    assert resume[0].value is PreferenceValue.RESUME and resume[0].timestamp == ts(1731705800)


def test_user_preferences_without_wa_id_is_keyed_by_the_user_id() -> None:
    change = parse_webhook(user_preferences(wa_id=None)).signals.preferences[0]
    assert change.recipient == "US.13491208655302741918"
    assert parse_webhook(user_preferences(wa_id="")).signals.preferences[0].recipient.startswith("US.")


def test_user_preferences_of_another_category_or_value_are_ignored() -> None:
    body = user_preferences()
    item = body["entry"][0]["changes"][0]["value"]["user_preferences"][0]
    extra = [dict(item, category="utility_messages"), dict(item, value="interested"), dict(item, wa_id="x1")]
    body["entry"][0]["changes"][0]["value"]["user_preferences"].extend(extra)
    parsed = parse_webhook(body)
    assert len(parsed.signals.preferences) == 1
    assert (parsed.ignored, parsed.skipped) == (2, 1)  # a malformed wa_id is never guessed


def test_template_status_reads_ids_reason_category_and_detail() -> None:
    event = parse_webhook(example("message_template_status_update")).signals.template_events[0]
    assert event.kind is TemplateEventKind.STATUS
    assert (event.event, event.reason, event.category) == ("REJECTED", "INVALID_FORMAT", "MARKETING")
    assert (event.template_id, event.template_name, event.language) == (
        "1689556908129835",
        "abandoned_cart",
        "en",
    )
    assert event.waba_id == WABA and event.event_at == ts(1751247548)
    assert event.detail == "The template has formatting issues.: Fix them."
    paused = parse_webhook(envelope("message_template_status_update", TEMPLATE_PAUSED)).signals
    assert paused.template_events[0].detail == "FIRST_PAUSE: Paused for 3 hours for low quality."
    deleted = example("message_template_status_update", event="PENDING_DELETION", reason=None)
    assert parse_webhook(deleted).signals.template_events[0].reason is None


def test_template_quality_and_category_events() -> None:
    quality = parse_webhook(example("message_template_quality_update")).signals.template_events[0]
    assert (quality.kind, quality.event, quality.previous, quality.language) == (
        "quality",
        "YELLOW",
        "GREEN",
        "en-US",
    )
    done = parse_webhook(example("template_category_update")).signals.template_events[0]
    assert (done.event, done.category, done.previous, done.correct_category) == (
        "CATEGORY_CHANGED",
        "MARKETING",
        "UTILITY",
        None,
    )
    pending = parse_webhook(envelope("template_category_update", CATEGORY_PENDING)).signals.template_events[0]
    # Announced: new_category is still the current one; correct_category applies in about 24 hours.
    assert (pending.event, pending.category, pending.correct_category, pending.effective_at) == (
        "CATEGORY_CHANGE_PENDING",
        "UTILITY",
        "MARKETING",
        ts(1746169200),
    )


def test_account_update_keeps_its_sub_objects() -> None:
    signal = parse_webhook(example("account_update")).signals.account_signals[0]
    assert (signal.kind, signal.event, signal.waba_id) == (
        "account_update",
        "MM_LITE_TERMS_SIGNED",
        "980198427658004",
    )
    assert signal.details == {
        "waba_info": {"owner_business_id": "2329417887457253", "waba_id": "980198427658004"}
    }
    restricted = example("account_update", event="ACCOUNT_RESTRICTION", waba_info=None)
    restricted["entry"][0]["changes"][0]["value"]["restriction_info"] = [
        {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1767225600}
    ]
    signal = parse_webhook(restricted).signals.account_signals[0]
    assert signal.waba_id == WABA
    assert signal.details["restriction_info"] == [
        {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1767225600}
    ]


def test_capability_update_accepts_a_number_and_a_tier() -> None:
    signal = parse_webhook(example("business_capability_update")).signals.account_signals[0]
    assert (signal.messaging_limit, signal.max_phone_numbers) == ("TIER_2K", 25)
    signal = parse_webhook(envelope("business_capability_update", CAPABILITY_TIER)).signals.account_signals[0]
    assert (signal.messaging_limit, signal.max_phone_numbers) == ("TIER_10K", None)


@pytest.mark.parametrize(
    ("raw", "tier"),
    [
        (250, "TIER_250"),
        (2000, "TIER_2K"),
        ("10000", "TIER_10K"),
        (100000, "TIER_100K"),
        (-1, "TIER_UNLIMITED"),
        ("tier_unlimited", "TIER_UNLIMITED"),
        ("TIER_NOT_SET", "TIER_NOT_SET"),
        (1234, None),
        (True, None),
        ("TIER_" + "X" * 80, None),
        (None, None),
    ],
)
def test_messaging_limit_tiers(raw: Any, tier: str | None) -> None:
    assert messaging_limit_tier(raw) == tier


def test_phone_number_quality_prefers_the_business_limit() -> None:
    signal = parse_webhook(example("phone_number_quality_update")).signals.account_signals[0]
    assert (signal.event, signal.phone_number, signal.messaging_limit) == (
        "THROUGHPUT_UPGRADE",
        "15550783881",
        "TIER_2K",
    )
    assert signal.details["current_limit"] == "TIER_UNLIMITED"
    older = example(
        "phone_number_quality_update",
        event="DOWNGRADE",
        max_daily_conversations_per_business=None,
        current_limit="TIER_1K",
        old_limit="TIER_10K",
    )
    signal = parse_webhook(older).signals.account_signals[0]
    assert (signal.messaging_limit, signal.previous_limit) == ("TIER_1K", "TIER_10K")


def test_account_alert() -> None:
    signal = parse_webhook(example("account_alerts")).signals.account_signals[0]
    assert signal.event == "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED"
    assert signal.details["alert_severity"] == "WARNING" and signal.details["entity_type"] == "BUSINESS"


def test_undocumented_events_are_ignored_not_stored() -> None:
    for field, key in (
        ("message_template_status_update", "event"),
        ("message_template_quality_update", "new_quality_score"),
        ("account_update", "event"),
        ("phone_number_quality_update", "event"),
    ):
        parsed = parse_webhook(example(field, **{key: "SOMETHING_NEW"}))
        assert not parsed.signals, field
        assert (parsed.ignored, parsed.skipped) == (1, 0), field


def test_signals_and_statuses_in_one_body() -> None:
    body = user_preferences()
    body["entry"].append(example("message_template_status_update")["entry"][0])
    parsed = parse_webhook(body)
    assert parsed.signals.counts() == {
        "preferences": 1,
        "template_events": 1,
        "account_signals": 0,
        "identities": 0,
    }
