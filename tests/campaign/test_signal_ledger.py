"""Meta's other signals in the ledger, on every backend: opt-outs and their audit, template events,
account signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import (
    AccountSignal,
    AccountSignalKind,
    Ledger,
    PreferenceChange,
    PreferenceValue,
    SignalBatch,
    StatusUpdate,
    Suppression,
    SuppressionAction,
    SuppressionSource,
    TemplateEvent,
    TemplateEventKind,
)
from airflow_provider_wamm.campaign.ledger.signal_records import CATEGORY_CHANGE_PENDING, CATEGORY_CHANGED

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STOP, RESUME = PreferenceValue.STOP, PreferenceValue.RESUME
ALICE, BOB, CARL = "4915100000001", "4915100000002", "4915100000003"


def pref(recipient: str, value: PreferenceValue, minutes: int, **kwargs: object) -> PreferenceChange:
    return PreferenceChange(recipient, value, T0 + timedelta(minutes=minutes), **kwargs)  # type: ignore[arg-type]


def actions(ledger: Ledger, recipient: str) -> list[tuple[str, str, str]]:
    return [(c.action, c.reason, c.source) for c in ledger.suppression_history(recipient)]


def suppressed(ledger: Ledger, recipient: str, at: datetime = T0 + timedelta(days=1)) -> str | None:
    found = ledger.active_suppressions([recipient], now=at).get(recipient)
    return found.reason if found else None


# --- stop and resume ---------------------------------------------------------------------------------


def test_stop_then_resume_is_audited(ledger: Ledger) -> None:
    ledger.record_preferences([pref(ALICE, STOP, 0, waba_id="200", user_id="US.1")], now=T0)
    assert suppressed(ledger, ALICE) == "stopped_marketing"
    ledger.record_preferences([pref(ALICE, RESUME, 5)], now=T0 + timedelta(minutes=6))
    assert suppressed(ledger, ALICE) is None
    history = ledger.suppression_history(ALICE)
    assert [(c.action, c.preference) for c in history] == [("added", "stop"), ("lifted", "resume")]
    first, second = history
    assert first.source == SuppressionSource.USER_PREFERENCES and first.waba_id == "200"
    assert first.event_at == T0 and first.recorded_at == T0 and first.until is None
    assert second.event_at == T0 + timedelta(minutes=5) and second.recorded_at == T0 + timedelta(minutes=6)
    assert first.id is not None and second.id is not None and first.id < second.id
    assert [c.recipient for c in ledger.suppression_history("US.1")] == [ALICE]  # by user id too


def test_resume_lifts_a_stop_that_came_from_131050(ledger: Ledger) -> None:
    # A failed status webhook and a send error both stop a person; a resume lifts either.
    ledger.record_statuses(
        [StatusUpdate("wamid.1", "failed", T0, recipient_id=ALICE, error_code=131050)], now=T0
    )
    ledger.add_suppressions([Suppression(BOB, L.SUPPRESS_STOPPED_MARKETING, 131050, None, "camp")], now=T0)
    assert actions(ledger, ALICE) == [("added", "stopped_marketing", "status_webhook")]
    assert actions(ledger, BOB) == [("added", "stopped_marketing", "send_error")]
    assert ledger.suppression_history(BOB)[0].campaign_id == "camp"
    assert ledger.suppression_history(BOB)[0].error_code == 131050
    ledger.record_preferences([pref(ALICE, RESUME, 1), pref(BOB, RESUME, 1)], now=T0 + timedelta(minutes=2))
    assert suppressed(ledger, ALICE) is None and suppressed(ledger, BOB) is None


def test_resume_never_lifts_a_manual_suppression_nor_a_wait(ledger: Ledger) -> None:
    ledger.add_suppressions([Suppression(ALICE, L.SUPPRESS_MANUAL)], now=T0)
    until = T0 + timedelta(hours=24)
    ledger.add_suppressions([Suppression(BOB, L.SUPPRESS_PER_USER_LIMIT, 131049, until, "c")], now=T0)
    ledger.record_preferences([pref(ALICE, STOP, 1), pref(BOB, RESUME, 1)], now=T0)
    ledger.record_preferences([pref(ALICE, RESUME, 2)], now=T0)
    assert suppressed(ledger, ALICE) == "manual"
    assert suppressed(ledger, BOB, T0 + timedelta(hours=1)) == "per_user_limit"
    assert [(c.action, c.source, c.preference) for c in ledger.suppression_history(ALICE)] == [
        ("added", "manual", None),
        ("unchanged", "user_preferences", "stop"),
        ("unchanged", "user_preferences", "resume"),
    ]
    assert ledger.suppression_history(ALICE)[-1].detail == "kept: manual"
    assert [c.action for c in ledger.suppression_history(BOB)] == ["added", "unchanged"]


def test_resume_restores_the_wait_a_stop_replaced(ledger: Ledger) -> None:
    until = T0 + timedelta(hours=24)
    ledger.add_suppressions([Suppression(ALICE, L.SUPPRESS_PER_USER_LIMIT, 131049, until, "c")], now=T0)
    ledger.record_preferences([pref(ALICE, STOP, 1)], now=T0)
    assert suppressed(ledger, ALICE, T0 + timedelta(days=3)) == "stopped_marketing"
    ledger.record_preferences([pref(ALICE, RESUME, 2)], now=T0 + timedelta(minutes=3))
    active = ledger.active_suppressions([ALICE], now=T0 + timedelta(hours=1))[ALICE]
    assert (active.reason, active.until, active.error_code) == ("per_user_limit", until, 131049)
    assert suppressed(ledger, ALICE, until + timedelta(seconds=1)) is None
    assert [c.action for c in ledger.suppression_history(ALICE)] == ["added", "added", "lifted", "added"]


def test_an_older_event_never_overrides_a_newer_one(ledger: Ledger) -> None:
    # Meta delivers the resume (t=10) before the stop (t=5): the stop is stale.
    ledger.record_preferences([pref(ALICE, RESUME, 10)], now=T0 + timedelta(minutes=11))
    ledger.record_preferences([pref(ALICE, STOP, 5)], now=T0 + timedelta(minutes=12))
    assert suppressed(ledger, ALICE) is None
    assert [(c.action, c.preference) for c in ledger.suppression_history(ALICE)] == [
        ("unchanged", "resume"),
        ("stale", "stop"),
    ]
    # A 131050 of a message sent before the resume is stale as well; one after it applies.
    ledger.record_statuses(
        [
            StatusUpdate(
                "wamid.old", "failed", T0 + timedelta(minutes=8), recipient_id=ALICE, error_code=131050
            )
        ]
    )
    assert suppressed(ledger, ALICE) is None
    ledger.record_statuses(
        [
            StatusUpdate(
                "wamid.new", "failed", T0 + timedelta(minutes=20), recipient_id=ALICE, error_code=131050
            )
        ]
    )
    assert suppressed(ledger, ALICE) == "stopped_marketing"
    # Within one batch the changes apply in Meta's order, whatever the body's order.
    ledger.record_preferences([pref(BOB, RESUME, 30), pref(BOB, STOP, 29)], now=T0 + timedelta(minutes=31))
    assert suppressed(ledger, BOB) is None


def test_manual_lift_is_audited(ledger: Ledger) -> None:
    ledger.add_suppressions([Suppression(ALICE, L.SUPPRESS_MANUAL), Suppression(BOB, "manual")], now=T0)
    assert ledger.remove_suppressions([ALICE, CARL], now=T0 + timedelta(hours=1)) == 1
    assert [(c.action, c.reason, c.source) for c in ledger.suppression_history(ALICE)] == [
        ("added", "manual", "manual"),
        ("lifted", "manual", "manual"),
    ]
    assert ledger.suppression_history(CARL) == []


def test_suppressions_already_in_force_are_audited_unchanged(ledger: Ledger) -> None:
    ledger.add_suppressions([Suppression(ALICE, L.SUPPRESS_STOPPED_MARKETING, 131050, None, "c1")], now=T0)
    ledger.add_suppressions(
        [Suppression(ALICE, L.SUPPRESS_PER_USER_LIMIT, 131049, T0 + timedelta(hours=24), "c2")], now=T0
    )
    changes = ledger.suppression_history(ALICE)
    assert [c.action for c in changes] == [SuppressionAction.ADDED, SuppressionAction.UNCHANGED]
    assert changes[1].detail == "already suppressed: stopped_marketing"


def test_a_business_scoped_user_id_is_a_key_of_its_own(ledger: Ledger) -> None:
    ledger.record_preferences([pref("US.13491208655302741918", STOP, 0)], now=T0)
    assert suppressed(ledger, "US.13491208655302741918") == "stopped_marketing"


# --- template events ---------------------------------------------------------------------------------


def status_event(event: str, minutes: int, **kwargs: object) -> TemplateEvent:
    base: dict[str, object] = {
        "kind": TemplateEventKind.STATUS,
        "event": event,
        "waba_id": "200",
        "template_id": "1689556908129835",
        "template_name": "abandoned_cart",
        "language": "en",
        "event_at": T0 + timedelta(minutes=minutes),
        "category": "MARKETING",
    }
    base.update(kwargs)
    return TemplateEvent(**base)  # type: ignore[arg-type]


def test_template_events_are_deduplicated_and_the_state_follows_metas_time(ledger: Ledger) -> None:
    paused = status_event("PAUSED", 10, reason="NONE", detail="FIRST_PAUSE: low quality")
    approved = status_event("APPROVED", 0, reason="NONE")
    assert ledger.record_template_events([paused, paused], now=T0 + timedelta(minutes=11)) == 1
    assert ledger.record_template_events([approved, paused], now=T0 + timedelta(minutes=12)) == 2
    assert len(ledger.template_events_since()) == 2  # the redelivered PAUSED is stored once
    state = ledger.template_state(name="abandoned_cart", language="en")
    assert state is not None
    assert (state.status, state.status_at, state.reason) == ("PAUSED", T0 + timedelta(minutes=10), "NONE")
    assert state.category == "MARKETING" and state.template_id == "1689556908129835"
    assert ledger.template_state(template_id="1689556908129835") == state
    assert ledger.template_state(name="abandoned_cart", language="fr") is None
    with pytest.raises(ValueError):
        ledger.template_state()


def test_template_category_changes_only_when_completed(ledger: Ledger) -> None:
    common = {"waba_id": "200", "template_id": "278", "template_name": "welcome", "language": "en_US"}
    pending = TemplateEvent(
        TemplateEventKind.CATEGORY,
        CATEGORY_CHANGE_PENDING,
        event_at=T0,
        category="UTILITY",
        correct_category="MARKETING",
        effective_at=T0 + timedelta(hours=24),
        **common,  # type: ignore[arg-type]
    )
    ledger.record_template_events([status_event("APPROVED", -5, category="UTILITY", **common), pending])
    state = ledger.template_state(template_id="278")
    assert state is not None
    assert (state.category, state.pending_category, state.pending_at) == (
        "UTILITY",
        "MARKETING",
        T0 + timedelta(hours=24),
    )
    done = TemplateEvent(
        TemplateEventKind.CATEGORY,
        CATEGORY_CHANGED,
        event_at=T0 + timedelta(hours=24),
        category="MARKETING",
        previous="UTILITY",
        **common,  # type: ignore[arg-type]
    )
    quality = TemplateEvent(
        TemplateEventKind.QUALITY, "YELLOW", quality_score="YELLOW", previous="GREEN", event_at=T0, **common
    )  # type: ignore[arg-type]
    ledger.record_template_events([done, quality])
    state = ledger.template_state(template_id="278")
    assert state is not None
    assert (state.category, state.pending_category, state.quality_score) == ("MARKETING", None, "YELLOW")


def test_template_events_since_filters(ledger: Ledger) -> None:
    ledger.record_template_events([status_event("APPROVED", 0)], now=T0)
    ledger.record_template_events([status_event("PAUSED", 5)], now=T0 + timedelta(minutes=5))
    later = ledger.template_events_since(T0 + timedelta(minutes=1))
    assert [e.event for e in later] == ["PAUSED"]
    assert later[0].received_at == T0 + timedelta(minutes=5) and later[0].id is not None
    assert [e.event for e in ledger.template_events_since(events=["approved"])] == ["APPROVED"]
    assert ledger.template_events_since(after_id=later[0].id) == []
    assert ledger.template_events_since(kinds=["quality"]) == []
    assert len(ledger.template_events_since(name="abandoned_cart", language="en")) == 2


# --- account signals ---------------------------------------------------------------------------------


def test_latest_messaging_limit_and_quality_follow_metas_time(ledger: Ledger) -> None:
    capability = AccountSignal(
        AccountSignalKind.CAPABILITY_UPDATE, waba_id="200", event_at=T0, messaging_limit="TIER_2K"
    )
    older = AccountSignal(
        AccountSignalKind.CAPABILITY_UPDATE,
        waba_id="200",
        event_at=T0 - timedelta(days=1),
        messaging_limit="TIER_250",
    )
    phone = AccountSignal(
        AccountSignalKind.PHONE_NUMBER_QUALITY,
        waba_id="200",
        event="FLAGGED",
        event_at=T0 + timedelta(hours=1),
        phone_number="15550783881",
        messaging_limit="TIER_10K",
        details={"current_limit": "TIER_10K"},
    )
    assert ledger.record_account_signals([capability, phone, phone]) == 2
    ledger.record_account_signals([older])  # arrives last, is older: never current
    latest = ledger.latest_messaging_limit(waba_id="200")
    assert latest is not None and latest.messaging_limit == "TIER_10K"
    latest = ledger.latest_messaging_limit(phone_number="+1 555-078-3881")
    assert latest is not None and latest.kind == "phone_number_quality_update"
    quality = ledger.phone_number_quality("15550783881")
    assert (
        quality is not None
        and quality.event == "FLAGGED"
        and quality.details == {"current_limit": "TIER_10K"}
    )
    assert ledger.phone_number_quality("4915100000000") is None
    wide = [s.messaging_limit for s in ledger.account_signals_since(kinds=["business_capability_update"])]
    assert wide == ["TIER_2K", "TIER_250"]
    terms = AccountSignal(AccountSignalKind.ACCOUNT_UPDATE, waba_id="200", event="MM_LITE_TERMS_SIGNED")
    ledger.record_account_signals([terms])
    found = ledger.latest_account_signal("account_update", waba_id="200", events=["MM_LITE_TERMS_SIGNED"])
    assert found is not None and found.event == "MM_LITE_TERMS_SIGNED"


def test_record_signals_is_one_transaction(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = SignalBatch(
        preferences=[pref(ALICE, STOP, 0)],
        template_events=[status_event("APPROVED", 0)],
        account_signals=[AccountSignal(AccountSignalKind.ACCOUNT_ALERT, event="X")],
    )

    def boom(*args: object, **kwargs: object) -> int:
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))

    monkeypatch.setattr(ledger, "record_account_signals", boom)
    with pytest.raises(sa.exc.OperationalError):
        ledger.record_signals(batch, now=T0)
    assert suppressed(ledger, ALICE) is None
    assert ledger.suppression_history(ALICE) == []
    assert ledger.template_events_since() == []
    monkeypatch.undo()
    assert ledger.record_signals(batch, now=T0) == {
        "preferences": 1,
        "template_events": 1,
        "account_signals": 1,
        "identities": 0,
    }
    assert suppressed(ledger, ALICE) == "stopped_marketing"
