"""Unknown sends resolved by stored status webhooks: by callback key, else by recipient and time when the
match is unique; never a guess."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_wamm.campaign.callback import (
    callback_key,
    find_callback_key,
    render_callback_data,
    row_hash,
)
from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome, SendState, StatusUpdate
from airflow_provider_wamm.campaign.ledger.resolution import RESOLVED_BY_KEY, RESOLVED_BY_RECIPIENT
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.graph.errors import ConfigurationError

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def unknown(ledger: Ledger, campaign: str, recipients: list[str], at: datetime = T0) -> None:
    ledger.claim(campaign, recipients, attempt_id=f"a-{campaign}", now=at)
    outcomes = [SendOutcome(r, SendState.UNKNOWN, error_details="lost") for r in recipients]
    ledger.record_results(campaign, outcomes, attempt_id=f"a-{campaign}", now=at)


def sent(wamid: str, recipient: str, at: datetime, key: str | None = None) -> StatusUpdate:
    return StatusUpdate(wamid, "sent", at, recipient_id=recipient, callback_key=key)


def row(ledger: Ledger, campaign: str, recipient: str) -> dict[str, Any]:
    return next(r for r in ledger.iter_sends(campaign) if r["recipient"] == recipient)


@pytest.fixture
def led(sqlite_ledger: Ledger) -> Ledger:
    sqlite_ledger.ensure_schema()
    return sqlite_ledger


def test_the_key_names_the_row_without_the_number() -> None:
    key = callback_key("spring", "4915123456789")
    assert key == f"wamm1.{row_hash('spring', '4915123456789')}.spring" and "4915123456789" not in key
    assert row_hash("spring", "4915123456789") != row_hash("autumn", "4915123456789")
    assert render_callback_data("{key}", "spring", "4915") == callback_key("spring", "4915")
    assert render_callback_data("crm-42 {key}", "s", "1") == f"crm-42 {callback_key('s', '1')}"
    assert (
        render_callback_data("static", "s", "1") == "static" and render_callback_data(None, "s", "1") is None
    )


@pytest.mark.parametrize(
    "value",
    [None, 12, 1.5, True, {"key": "wamm1.0123456789abcdef.c"}, ["x"], "", "wamm1.short.c", "x" * 5000],
)
def test_no_key_in_anything_else(value: object) -> None:
    assert find_callback_key(value) is None


def test_a_key_is_found_among_other_words() -> None:
    key = callback_key("c1", "49")
    assert find_callback_key(f"order 7 {key} done") == key


def test_callback_data_too_long_for_meta_is_refused_in_the_settings() -> None:
    with pytest.raises(ConfigurationError, match="biz_opaque_callback_data"):
        CampaignSettings("c", "spring_sale", "en_US", callback_data="x" * 600).validate()
    CampaignSettings("c", "spring_sale", "en_US", callback_data=None).validate()


def test_a_status_by_key_resolves_its_send_even_among_others_of_the_same_person(led: Ledger) -> None:
    unknown(led, "c1", ["491"])
    unknown(led, "c2", ["491"])
    led.record_statuses([sent("wamid.A", "491", T0 + timedelta(seconds=1), callback_key("c2", "491"))])
    assert send_counts(led, "c2") == {"accepted": 1} and send_counts(led, "c1") == {"unknown": 1}
    resolved = row(led, "c2", "491")
    assert resolved["wamid"] == "wamid.A" and resolved["error_details"] == RESOLVED_BY_KEY


def test_by_recipient_only_when_unique_and_in_time(led: Ledger) -> None:
    unknown(led, "c1", ["491", "492", "493"])
    unknown(led, "c2", ["492"])  # the same person unknown in two campaigns: ambiguous
    led.record_statuses(
        [
            sent("wamid.1", "491", T0 + timedelta(minutes=1)),
            sent("wamid.2", "492", T0 + timedelta(minutes=1)),
            sent("wamid.3", "493", T0 - timedelta(hours=2)),  # before the claim: another message
        ]
    )
    assert row(led, "c1", "491")["error_details"] == RESOLVED_BY_RECIPIENT
    assert row(led, "c1", "491")["state"] == "accepted" and row(led, "c1", "491")["wamid"] == "wamid.1"
    assert row(led, "c1", "492")["state"] == "unknown" and row(led, "c2", "492")["state"] == "unknown"
    assert row(led, "c1", "493")["state"] == "unknown"


def test_two_statuses_for_one_unknown_send_stay_unknown(led: Ledger) -> None:
    unknown(led, "c1", ["491"])
    led.record_statuses(
        [sent("wamid.1", "491", T0 + timedelta(minutes=1)), sent("wamid.2", "491", T0 + timedelta(minutes=2))]
    )
    assert row(led, "c1", "491")["state"] == "unknown"


def test_a_status_before_the_unknown_is_recorded_is_resolved_by_the_later_pass(led: Ledger) -> None:
    led.record_statuses([sent("wamid.1", "491", T0 + timedelta(seconds=2), callback_key("c1", "491"))])
    unknown(led, "c1", ["491"])
    assert send_counts(led, "c1") == {"unknown": 1}
    assert led.resolve_unknown(["c1"]) == 1 and send_counts(led, "c1") == {"accepted": 1}
    assert led.resolve_unknown(["c1"]) == 0  # nothing left


def test_a_known_wamid_is_never_taken_twice(led: Ledger) -> None:
    led.claim("c1", ["491"], attempt_id="a", now=T0)
    led.record_results(
        "c1", [SendOutcome("491", SendState.ACCEPTED, wamid="wamid.1")], attempt_id="a", now=T0
    )
    unknown(led, "c2", ["491"])
    led.record_statuses([sent("wamid.1", "491", T0 + timedelta(minutes=1))])
    assert send_counts(led, "c2") == {"unknown": 1}


def test_a_status_naming_the_rewritten_number_or_the_user_id_resolves_its_send(led: Ledger) -> None:
    """Meta names a Brazilian number in the form it rewrote it to, and a send by business-scoped user id
    by ``recipient_user_id`` alone: both still find their unknown send."""
    br_sent, br_wa_id, bsuid = "5511987654321", "551187654321", "BR.1502576394655843"
    unknown(led, "ids", [br_sent, bsuid])
    led.record_statuses(
        [
            sent("wamid.br", br_wa_id, T0 + timedelta(seconds=3)),
            StatusUpdate("wamid.u", "sent", T0 + timedelta(seconds=4), recipient_user_id=bsuid),
        ]
    )
    assert row(led, "ids", br_sent)["wamid"] == "wamid.br"
    assert row(led, "ids", bsuid)["wamid"] == "wamid.u"
    assert send_counts(led, "ids") == {"accepted": 2}
