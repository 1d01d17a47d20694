"""Signal webhooks through the receiver: stored in one transaction per body, hostile bodies never 5xx,
never a half row; stop then resume; a resume never lifts a manual suppression."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import Ledger, Suppression
from tests.webhooks.conftest import ASGIClient, body, encode, signed, status
from tests.webhooks.meta_examples import EXAMPLES, example, user_preferences

STOPPED = "16505551234"
HUGE = "x" * 100_000


def post(client: ASGIClient, payload: Any) -> Any:
    raw = encode(payload)
    response = client.post("/", content=raw, headers=signed(raw))
    assert response.status_code == 200, response.text
    return response.json()


def rows(ledger: Ledger, table: sa.Table) -> list[dict[str, Any]]:
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def signal_rows(ledger: Ledger) -> int:
    tables = (ledger.template_events, ledger.account_signals, ledger.suppression_audit, ledger.suppressions)
    return sum(len(rows(ledger, t)) for t in tables)


# --- stop and resume ---------------------------------------------------------------------------------


def test_stop_then_resume_through_the_receiver(client: ASGIClient, ledger: Ledger) -> None:
    counts = post(client, user_preferences("stop", timestamp=1731705721))
    assert counts == {
        "statuses": 0,
        "clicks": 0,
        "skipped": 0,
        "ignored": 0,
        "preferences": 1,
        "template_events": 0,
        "account_signals": 0,
        "identities": 0,
    }
    assert ledger.active_suppressions([STOPPED])[STOPPED].reason == "stopped_marketing"
    post(client, user_preferences("resume", timestamp=1731705800))
    assert ledger.active_suppressions([STOPPED]) == {}
    history = ledger.suppression_history(STOPPED)
    assert [(c.action, c.preference, c.source) for c in history] == [
        ("added", "stop", "user_preferences"),
        ("lifted", "resume", "user_preferences"),
    ]
    assert history[0].waba_id == "102290129340398" and history[0].user_id == "US.13491208655302741918"
    post(client, user_preferences("resume", timestamp=1731705800))  # Meta redelivers: nothing changes
    assert ledger.active_suppressions([STOPPED]) == {}


def test_resume_never_lifts_a_manual_suppression(client: ASGIClient, ledger: Ledger) -> None:
    ledger.add_suppressions([Suppression(STOPPED, "manual")])
    post(client, user_preferences("stop", timestamp=1731705721))
    post(client, user_preferences("resume", timestamp=1731705800))
    assert ledger.active_suppressions([STOPPED])[STOPPED].reason == "manual"
    assert [(c.action, c.source) for c in ledger.suppression_history(STOPPED)] == [
        ("added", "manual"),
        ("unchanged", "user_preferences"),
        ("unchanged", "user_preferences"),
    ]


def test_a_late_stop_after_a_resume_is_stale(client: ASGIClient, ledger: Ledger) -> None:
    post(client, user_preferences("resume", timestamp=1731705800))
    post(client, user_preferences("stop", timestamp=1731705721))  # older, delivered later
    assert ledger.active_suppressions([STOPPED]) == {}
    assert [c.action for c in ledger.suppression_history(STOPPED)] == ["unchanged", "stale"]


def test_a_stop_by_user_id_only(client: ASGIClient, ledger: Ledger) -> None:
    post(client, user_preferences("stop", wa_id=None))
    assert set(ledger.active_suppressions(["US.13491208655302741918"])) == {"US.13491208655302741918"}


# --- template and account signals --------------------------------------------------------------------


def test_template_and_account_signals_are_stored_once(client: ASGIClient, ledger: Ledger) -> None:
    for field in sorted(EXAMPLES):
        for _ in range(2):  # a redelivery is stored once
            post(client, example(field))
    assert len(rows(ledger, ledger.template_events)) == 3
    assert len(rows(ledger, ledger.account_signals)) == 4
    state = ledger.template_state(name="abandoned_cart", language="en")
    assert state is not None and state.status == "REJECTED"
    limit = ledger.latest_messaging_limit(phone_number="15550783881")
    assert limit is not None and limit.messaging_limit == "TIER_2K"


# --- one transaction per body ------------------------------------------------------------------------


def test_a_body_is_stored_whole_or_not_at_all(
    client: ASGIClient, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed = body([status("wamid.T", "delivered")])
    mixed["entry"].extend(user_preferences()["entry"])
    mixed["entry"].extend(example("account_update")["entry"])

    def boom(*args: Any, **kwargs: Any) -> int:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(ledger, "record_account_signals", boom)
    raw = encode(mixed)
    assert client.post("/", content=raw, headers=signed(raw)).status_code == 500
    assert ledger.status_of("wamid.T") is None  # the statuses of the body were rolled back too
    assert signal_rows(ledger) == 0
    monkeypatch.undo()
    counts = post(client, mixed)  # Meta's redelivery then stores all of it
    assert (counts["statuses"], counts["preferences"], counts["account_signals"]) == (1, 1, 1)
    assert ledger.status_of("wamid.T") is not None
    assert ledger.active_suppressions([STOPPED])


# --- hostile bodies ----------------------------------------------------------------------------------


def _mutations(field: str) -> list[Any]:
    """Hostile versions of Meta's example value of ``field``: missing keys, wrong types, huge values."""
    base = EXAMPLES[field]
    out: list[Any] = [None, "text", 42, [], [base], {}]
    for key in base:
        missing = copy.deepcopy(base)
        del missing[key]
        out.append(missing)
        for bad in (None, ["x"], {"a": 1}, True, 2**70, -(2**70), 1e400, HUGE, "", " "):
            changed = copy.deepcopy(base)
            changed[key] = bad
            out.append(changed)
    return out


HOSTILE_CASES = [(field, value) for field in sorted(EXAMPLES) for value in _mutations(field)]


def _preference_mutations() -> list[Any]:
    item = user_preferences()["entry"][0]["changes"][0]["value"]["user_preferences"][0]
    out: list[Any] = [
        None,
        {"user_preferences": None},
        {"user_preferences": "x"},
        {"user_preferences": [None]},
    ]
    for key in item:
        for bad in (None, ["x"], {"a": 1}, True, 2**70, 1e400, HUGE, "", "nan"):
            changed = dict(item, **{key: bad})
            out.append({"user_preferences": [changed]})
    return out


def _stored_rows_are_whole(ledger: Ledger) -> None:
    for row in rows(ledger, ledger.template_events):
        assert row["event"] and row["kind"] and row["received_at"] is not None
        assert row["template_id"] or row["template_name"]
        assert len(row["template_name"] or "") <= 512 and len(row["detail"] or "") <= 1000
    for row in rows(ledger, ledger.account_signals):
        assert row["kind"] and row["received_at"] is not None
        assert row["event"] or row["messaging_limit"] or row["max_phone_numbers"] is not None
    for row in rows(ledger, ledger.suppression_audit):
        assert row["recipient"] and row["action"] and row["source"] and row["event_at"] is not None


@pytest.mark.parametrize("field", sorted(EXAMPLES))
def test_hostile_values_never_give_5xx_nor_half_rows(client: ASGIClient, ledger: Ledger, field: str) -> None:
    for value in _mutations(field):
        payload = example(field)
        payload["entry"][0]["changes"][0]["value"] = value
        counts = post(client, payload)
        assert (
            counts["skipped"]
            + counts["ignored"]
            + counts.get("template_events", 0)
            + counts.get("account_signals", 0)
            == 1
        ), (field, value)
    _stored_rows_are_whole(ledger)


def test_hostile_user_preferences_never_give_5xx_nor_half_rows(client: ASGIClient, ledger: Ledger) -> None:
    for value in _preference_mutations():
        payload = user_preferences()
        payload["entry"][0]["changes"][0]["value"] = value
        post(client, payload)
    _stored_rows_are_whole(ledger)
    for row in rows(ledger, ledger.suppressions):
        assert row["recipient"] in (STOPPED, "US.13491208655302741918")


def test_hostile_entries_and_times(client: ASGIClient, ledger: Ledger) -> None:
    for entry_id, time in ((["x"], [1]), (HUGE, "soon"), (None, 1e400), ({"a": 1}, -5), (2**70, True)):
        payload = example("account_update")
        payload["entry"][0]["id"] = entry_id
        payload["entry"][0]["time"] = time
        post(client, payload)
    signals = ledger.account_signals_since()
    assert {s.waba_id for s in signals} == {"980198427658004"}  # from waba_info, never the hostile id
    assert all(s.event_at is None for s in signals)


def test_a_body_with_nothing_usable_is_logged(client: ASGIClient, caplog: pytest.LogCaptureFixture) -> None:
    payload = example("message_template_status_update")
    payload["entry"][0]["changes"][0]["value"] = {"event": "APPROVED"}
    with caplog.at_level(logging.INFO, logger="airflow_provider_wamm.webhooks.app"):
        counts = post(client, payload)
    assert counts["skipped"] == 1
    assert any("Webhook body ignored" in r.getMessage() for r in caplog.records)


def test_huge_integers_never_give_5xx(client: ASGIClient, ledger: Ledger) -> None:
    huge = 10**400  # valid JSON; too large for a float or any column
    for field in sorted(EXAMPLES):
        for key in EXAMPLES[field]:
            payload = example(field, **{key: huge})
            payload["entry"][0]["time"] = huge
            post(client, payload)
    preference = user_preferences(timestamp=huge, wa_id=None)
    preference["entry"][0]["changes"][0]["value"]["user_preferences"][0]["user_id"] = huge
    assert post(client, preference)["skipped"] == 1
    _stored_rows_are_whole(ledger)
