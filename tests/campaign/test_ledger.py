"""The send ledger on SQLite: claims, outcomes, suppressions, frequency cap, statuses, report queries."""

from __future__ import annotations

import pathlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import (
    ClickEvent,
    DeliveryStatus,
    ExistingSend,
    Ledger,
    RunState,
    SendOutcome,
    SendState,
    StatusUpdate,
    Suppression,
    claims,
)
from airflow_provider_wamm.campaign.ledger.schema import SORTER_THREADS
from airflow_provider_wamm.campaign.report import build_report, delivery_counts, error_counts, send_counts
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.webhooks.parsing import click_from_webhook, status_from_webhook

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def phones(n: int, start: int = 0) -> list[str]:
    return [f"49151{i:08d}" for i in range(start, start + n)]


def accept_all(
    ledger: Ledger, campaign: str, recipients: list[str], attempt: str, now: datetime = T0
) -> None:
    assert ledger.claim(campaign, recipients, attempt_id=attempt, now=now) == set(recipients)
    ledger.record_results(
        campaign,
        [
            SendOutcome(r, L.ACCEPTED, wamid=f"wamid.{campaign}.{r}", message_status="accepted", attempts=1)
            for r in recipients
        ],
        attempt_id=attempt,
        now=now,
    )


# --- states -----------------------------------------------------------------------------------


def test_state_values_are_the_strings_the_database_holds() -> None:
    assert {state.name: state.value for state in SendState} == {
        "CLAIMED": "claimed",
        "ACCEPTED": "accepted",
        "HELD": "held",
        "PAUSED": "paused",
        "FAILED": "failed",
        "SKIPPED": "skipped",
        "INVALID": "invalid",
        "UNKNOWN": "unknown",
    }
    old_names = {
        L.CLAIMED: "claimed",
        L.ACCEPTED: "accepted",
        L.HELD: "held",
        L.PAUSED: "paused",
        L.FAILED: "failed",
        L.SKIPPED: "skipped",
        L.INVALID: "invalid",
        L.UNKNOWN: "unknown",
    }
    for alias, text in old_names.items():
        assert alias == text and str(alias) == text and f"{alias}" == text and alias is SendState(text)
    assert L.SEND_STATES == (
        "claimed",
        "accepted",
        "held",
        "paused",
        "failed",
        "skipped",
        "invalid",
        "unknown",
    )
    assert L.DELIVERED_TO_META == ("accepted", "held", "paused")
    assert L.FINAL_STATES == ("accepted", "held", "paused", "failed", "skipped", "invalid", "unknown")
    assert [state.value for state in RunState] == ["running", "finished", "halted", "error", "killed"]
    assert [status.value for status in DeliveryStatus] == ["sent", "delivered", "read", "played", "failed"]
    assert L.STATUS_RANKS == {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 10}
    assert L.SETTLED_STATUSES == ("delivered", "read", "played", "failed")
    assert (L.SUPPRESS_STOPPED_MARKETING, L.SUPPRESS_PER_USER_LIMIT, L.SUPPRESS_MANUAL) == (
        "stopped_marketing",
        "per_user_limit",
        "manual",
    )
    assert L.DEFAULT_TABLE_PREFIX == "wamm_"


def test_states_are_stored_as_their_plain_strings(ledger: Ledger) -> None:
    accept_all(ledger, "c", phones(1), "a1")
    ledger.record_unsent("c", [SendOutcome("!1", L.INVALID, error_details="bad")], attempt_id="a1")
    ledger.start_run("c", "a1", now=T0)
    with ledger.engine.connect() as conn:
        states = conn.execute(sa.text(f"SELECT state FROM {ledger.sends.name} ORDER BY recipient")).scalars()
        assert [(type(v), v) for v in states] == [(str, "invalid"), (str, "accepted")]
        run_state = conn.execute(sa.text(f"SELECT state FROM {ledger.runs.name}")).scalar_one()
        assert (type(run_state), run_state) == (str, "running")
    assert ledger.existing_sends("c", ["!1"])["!1"].state is SendState.INVALID


# --- schema and configuration -----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["x; DROP TABLE users; --", "1abc", "a-b", "a b", "x" * 40, "é_"])
def test_table_prefix_must_be_an_identifier(prefix: str) -> None:
    engine = sa.create_engine("sqlite://")
    with pytest.raises(ConfigurationError, match="table prefix"):
        Ledger(engine, table_prefix=prefix)


def test_tables_are_created_on_first_use_with_prefix_and_indexes(ledger_path: pathlib.Path) -> None:
    led = Ledger.from_url(f"sqlite:///{ledger_path}", table_prefix="acme_")
    assert not sa.inspect(led.engine).get_table_names()  # nothing before first use
    assert send_counts(led, "c") == {}
    inspector = sa.inspect(led.engine)
    assert set(inspector.get_table_names()) == {
        "acme_sends",
        "acme_statuses",
        "acme_suppressions",
        "acme_clicks",
        "acme_runs",
        "acme_senders",
        "acme_suppression_audit",
        "acme_template_events",
        "acme_account_signals",
        "acme_identities",
    }
    indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("acme_sends")}
    assert indexes["ix_acme_sends_wamid"] == ["wamid"]
    assert indexes["ix_acme_sends_recipient_updated"] == ["recipient", "updated_at"]
    assert inspector.get_pk_constraint("acme_sends")["constrained_columns"] == ["campaign_id", "recipient"]
    led.ensure_schema()  # idempotent
    # A second ledger with another prefix in the same database is independent.
    other = Ledger(led.engine, table_prefix="other_")
    accept_all(led, "c", phones(2), "a1")
    assert send_counts(other, "c") == {}
    assert send_counts(led, "c") == {"accepted": 2}
    led.dispose()


def test_sqlite_connections_let_large_sorts_use_helper_threads(ledger_path: pathlib.Path) -> None:
    led = Ledger.from_url(f"sqlite:///{ledger_path}")
    with led.read() as conn:
        assert conn.exec_driver_sql("PRAGMA threads").scalar() == SORTER_THREADS
    led.dispose()


def test_second_instance_on_existing_tables_works(ledger_path: pathlib.Path) -> None:
    first = Ledger.from_url(f"sqlite:///{ledger_path}")
    accept_all(first, "c", phones(3), "a1")
    second = Ledger.from_url(f"sqlite:///{ledger_path}")
    assert send_counts(second, "c") == {"accepted": 3}
    first.dispose()
    second.dispose()


def test_unsupported_dialect_is_a_clear_error() -> None:
    class FakeDialect:
        name = "oracle"

    class FakeConn:
        dialect = FakeDialect()

    led = Ledger(sa.create_engine("sqlite://"))
    with pytest.raises(ConfigurationError, match="oracle"):
        L.upsert(FakeConn(), led.sends, [{"campaign_id": "c"}], key=("campaign_id", "recipient"))  # type: ignore[arg-type]


# --- claims -----------------------------------------------------------------------------------


def test_claim_returns_only_what_this_attempt_claimed(ledger: Ledger) -> None:
    first = ledger.claim("c", phones(5), attempt_id="a1", now=T0)
    assert first == set(phones(5))
    # Another attempt gets nothing of those, but the new ones.
    second = ledger.claim("c", phones(7), attempt_id="a2", now=T0)
    assert second == set(phones(2, start=5))
    # Another campaign is independent.
    assert ledger.claim("other", phones(5), attempt_id="a3", now=T0) == set(phones(5))
    assert send_counts(ledger, "c") == {"claimed": 7}


def test_concurrent_claims_from_two_ledgers_never_overlap(ledger_url: str, table_prefix: str) -> None:
    ledgers = [Ledger.from_url(ledger_url, table_prefix=table_prefix) for _ in range(3)]
    ledgers[0].ensure_schema()
    everyone = phones(600)
    won: dict[int, set[str]] = {i: set() for i in range(3)}
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            # Different batch orders and sizes so claims interleave.
            order = everyone if i % 2 == 0 else list(reversed(everyone))
            for start in range(0, len(order), 50 + 25 * i):
                batch = order[start : start + 50 + 25 * i]
                won[i] |= ledgers[i].claim("race", batch, attempt_id=f"attempt-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert won[0] | won[1] | won[2] == set(everyone)
    assert sum(len(w) for w in won.values()) == len(everyone)  # nobody claimed twice
    rows = {r["recipient"]: r["attempt_id"] for r in ledgers[0].iter_sends("race")}
    for i, mine in won.items():
        assert all(rows[r] == f"attempt-{i}" for r in mine)
    for led in ledgers:
        led.dispose()


def test_concurrent_claims_in_memory_database(memory_ledger: Ledger) -> None:
    everyone = phones(300)
    won: list[set[str]] = [set(), set()]

    def worker(i: int) -> None:
        for start in range(0, 300, 30):
            won[i] |= memory_ledger.claim("mem", everyone[start : start + 30], attempt_id=f"a{i}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == set(everyone)


def test_record_results_touches_only_own_claims(ledger: Ledger) -> None:
    ledger.claim("c", phones(2), attempt_id="a1", now=T0)
    updated = ledger.record_results(
        "c",
        [SendOutcome(phones(1)[0], L.ACCEPTED, wamid="w1", message_status="accepted")],
        attempt_id="intruder",
    )
    assert updated == 0
    updated = ledger.record_results(
        "c",
        [
            SendOutcome(phones(2)[0], L.ACCEPTED, wamid="w1", message_status="accepted", attempts=2),
            SendOutcome(
                phones(2)[1],
                L.FAILED,
                error_code=131026,
                error_title="Message undeliverable",
                error_details="x" * 5000,
                attempts=1,
            ),
        ],
        attempt_id="a1",
        now=T0,
    )
    assert updated == 2
    rows = {r["recipient"]: r for r in ledger.iter_sends("c")}
    accepted = rows[phones(2)[0]]
    assert accepted["state"] == "accepted" and accepted["wamid"] == "w1" and accepted["attempts"] == 2
    assert accepted["accepted_at"] == T0
    failed = rows[phones(2)[1]]
    assert failed["error_code"] == 131026 and failed["accepted_at"] is None
    assert len(failed["error_details"]) <= 2000  # clipped


def test_stale_claims_become_unknown_but_not_this_attempts_or_other_shards(ledger: Ledger) -> None:
    ledger.claim("c", phones(3), attempt_id="crashed", shard_index=0, now=T0)
    ledger.claim("c", phones(2, start=10), attempt_id="live-shard-1", shard_index=1, now=T0)
    ledger.claim("c", phones(1, start=20), attempt_id="me", shard_index=0, now=T0)
    assert ledger.mark_stale_claims("c", attempt_id="me", shard_index=0) == 3
    counts = send_counts(ledger, "c")
    assert counts == {"unknown": 3, "claimed": 3}
    # Without a shard restriction every other attempt's claim is stale.
    assert ledger.mark_stale_claims("c", attempt_id="me") == 2
    assert send_counts(ledger, "c") == {"unknown": 5, "claimed": 1}


def test_release_claims_deletes_only_unsent_rows_of_the_attempt(ledger: Ledger) -> None:
    ledger.claim("c", phones(4), attempt_id="a1", now=T0)
    ledger.record_results("c", [SendOutcome(phones(1)[0], L.ACCEPTED, wamid="w")], attempt_id="a1")
    ledger.claim("c", phones(2, start=10), attempt_id="a2", now=T0)
    assert ledger.release_claims("c", attempt_id="a1") == 3
    assert send_counts(ledger, "c") == {"accepted": 1, "claimed": 2}
    # Released recipients can be claimed again.
    assert ledger.claim("c", phones(4), attempt_id="a3") == set(phones(4)[1:])


@pytest.mark.parametrize(
    ("state", "not_before", "resend_unknown", "expected"),
    [
        ("skipped", None, False, True),
        ("invalid", None, False, True),
        ("failed", None, False, False),
        ("failed", T0 - timedelta(seconds=1), False, True),
        ("failed", T0 + timedelta(hours=1), False, False),
        ("unknown", None, False, False),
        ("unknown", None, True, True),
        ("accepted", None, True, False),
        ("claimed", None, True, False),
    ],
)
def test_reclaimable_states(
    state: str, not_before: datetime | None, resend_unknown: bool, expected: bool
) -> None:
    assert ExistingSend(state, "a", not_before).reclaimable(T0, resend_unknown=resend_unknown) is expected


def test_claim_takes_over_reclaimable_rows_only(ledger: Ledger) -> None:
    r = phones(5)
    ledger.claim("c", r, attempt_id="a1", now=T0)
    ledger.record_results(
        "c",
        [
            SendOutcome(r[0], L.ACCEPTED, wamid="w0"),
            SendOutcome(r[1], L.FAILED, error_code=131026),
            SendOutcome(r[2], L.FAILED, error_code=131049, not_before=T0 + timedelta(hours=24)),
            SendOutcome(r[3], L.FAILED, error_code=131000, not_before=T0),
            SendOutcome(r[4], L.UNKNOWN),
        ],
        attempt_id="a1",
    )
    later = T0 + timedelta(hours=1)
    assert ledger.claim("c", r, attempt_id="a2", now=later) == {r[3]}
    assert ledger.claim("c", r, attempt_id="a3", now=later, resend_unknown=True) == {r[4]}
    assert ledger.claim("c", r, attempt_id="a4", now=T0 + timedelta(hours=25)) == {r[2]}
    row = next(x for x in ledger.iter_sends("c") if x["recipient"] == r[2])
    assert row["state"] == "claimed" and row["error_code"] is None and row["not_before"] is None


def test_claim_with_stale_knowledge_does_not_steal(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    r = phones(1)
    ledger.record_unsent("c", [SendOutcome(r[0], L.SKIPPED, error_details="cap")], attempt_id="a1")
    seen = ledger.existing_sends("c", r)
    assert seen[r[0]].state == "skipped"
    # Both claims read the row as it was before either of them wrote (a race between two attempts).
    monkeypatch.setattr(claims, "read_existing_sends", lambda *_args: seen)
    assert ledger.claim("c", r, attempt_id="a2") == set(r)
    # a3 saw the row as skipped too, but a2 took it meanwhile.
    assert ledger.claim("c", r, attempt_id="a3") == set()
    monkeypatch.undo()
    assert ledger.claim("c", r, attempt_id="a4") == set()  # reading for itself, it sees a2's claim


def test_record_unsent_never_overwrites_a_send(ledger: Ledger) -> None:
    r = phones(3)
    accept_all(ledger, "c", r[:1], "a1")
    ledger.record_unsent(
        "c",
        [
            SendOutcome(r[0], L.SKIPPED, error_details="frequency cap"),
            SendOutcome(r[1], L.INVALID, error_details="missing field 'first_name'"),
            SendOutcome("!7", L.INVALID, error_details="row 7: to: is empty"),
        ],
        attempt_id="a2",
    )
    rows = {x["recipient"]: x for x in ledger.iter_sends("c")}
    assert rows[r[0]]["state"] == "accepted"
    assert rows[r[1]]["state"] == "invalid" and "first_name" in rows[r[1]]["error_details"]
    assert rows["!7"]["error_details"] == "row 7: to: is empty"
    # Re-recording an invalid row as skipped rewrites it (it never reached Meta).
    ledger.record_unsent("c", [SendOutcome(r[1], L.SKIPPED, error_details="suppressed")], attempt_id="a3")
    assert ledger.existing_sends("c", [r[1]])[r[1]] == ExistingSend("skipped", "a3", None)


def test_iter_sends_streams_in_pages(ledger: Ledger) -> None:
    accept_all(ledger, "c", phones(25), "a1")
    ledger.record_unsent("c", [SendOutcome("!1", L.INVALID, error_details="bad")], attempt_id="a1")
    rows = list(ledger.iter_sends("c", batch_size=7))
    assert [r["recipient"] for r in rows] == sorted([*phones(25), "!1"])
    assert list(ledger.iter_final_recipients("c", states=["invalid"])) == ["!1"]


# --- suppressions and frequency cap -------------------------------------------------------------


def test_suppressions_forever_wins_and_longer_wins(ledger: Ledger) -> None:
    a, b, c = phones(3)
    ledger.add_suppressions(
        [
            Suppression(a, L.SUPPRESS_STOPPED_MARKETING, 131050, None, "c1"),
            Suppression(b, L.SUPPRESS_PER_USER_LIMIT, 131049, T0 + timedelta(hours=24), "c1"),
            Suppression(c, L.SUPPRESS_PER_USER_LIMIT, 131049, T0 + timedelta(hours=24), "c1"),
        ],
        now=T0,
    )
    # A later per-user limit never shortens "for ever"; a later one extends; an earlier one does not shorten.
    ledger.add_suppressions(
        [
            Suppression(a, L.SUPPRESS_PER_USER_LIMIT, 131049, T0 + timedelta(hours=48), "c2"),
            Suppression(b, L.SUPPRESS_PER_USER_LIMIT, 131049, T0 + timedelta(hours=30), "c2"),
            Suppression(c, L.SUPPRESS_PER_USER_LIMIT, 131049, T0 + timedelta(hours=2), "c2"),
        ],
        now=T0,
    )
    active = ledger.active_suppressions([a, b, c, "4915199999999"], now=T0 + timedelta(hours=25))
    assert set(active) == {a, b}
    assert (
        active[a].until is None and active[a].reason == "stopped_marketing" and active[a].campaign_id == "c1"
    )
    assert active[b].until == T0 + timedelta(hours=30) and active[b].campaign_id == "c2"
    assert set(ledger.active_suppressions([a, b, c], now=T0 + timedelta(hours=31))) == {a}
    # Opting out for ever after a temporary suppression sticks.
    ledger.add_suppressions([Suppression(c, L.SUPPRESS_STOPPED_MARKETING, 131050)], now=T0)
    assert ledger.active_suppressions([c], now=T0 + timedelta(days=999))[c].until is None
    assert ledger.remove_suppressions([a, c]) == 2
    assert ledger.active_suppressions([a, c], now=T0) == {}


def test_suppression_lookup_in_large_batches(ledger: Ledger) -> None:
    many = phones(1200)
    ledger.add_suppressions([Suppression(p, "manual") for p in many[::3]], now=T0)
    assert set(ledger.active_suppressions(many, now=T0)) == set(many[::3])


def test_recently_messaged_for_the_frequency_cap(ledger: Ledger) -> None:
    r = phones(6)
    accept_all(ledger, "old", r[:2], "a1", now=T0 - timedelta(days=3))
    accept_all(ledger, "recent", r[2:4], "a2", now=T0 - timedelta(hours=2))
    ledger.claim("recent", [r[4]], attempt_id="a2", now=T0)
    ledger.record_results("recent", [SendOutcome(r[4], L.FAILED, error_code=131026)], attempt_id="a2", now=T0)
    accept_all(ledger, "this", [r[5]], "a3", now=T0 - timedelta(minutes=5))
    since = T0 - timedelta(days=1)
    assert ledger.recently_messaged(r, since=since) == {r[2], r[3], r[5]}
    assert ledger.recently_messaged(r, since=since, exclude_campaign_id="this") == {r[2], r[3]}
    assert ledger.recently_messaged(r, since=T0 - timedelta(days=7)) == {r[0], r[1], r[2], r[3], r[5]}


# --- webhook statuses and clicks --------------------------------------------------------------


def st(wamid: str, status: str, minute: int, **kw: object) -> StatusUpdate:
    return StatusUpdate(wamid=wamid, status=status, timestamp=T0 + timedelta(minutes=minute), **kw)  # type: ignore[arg-type]


def test_statuses_are_monotonic_deduplicated_and_order_independent(ledger: Ledger) -> None:
    n = ledger.record_statuses(
        [
            st("w1", "read", 3, recipient_id="4915100000000", pricing_category="marketing_lite"),
            st("w1", "delivered", 2),
            st("w1", "delivered", 2),  # duplicate
            st("w1", "sent", 1, pricing_category="marketing_lite", pricing_model="PMP"),
            st("w2", "weird", 1),  # unknown status: ignored
        ]
    )
    assert n == 3
    row = ledger.status_of("w1")
    assert row is not None
    assert row["status"] == "read" and row["status_rank"] == 3
    assert row["sent_at"] == T0 + timedelta(minutes=1)
    assert row["delivered_at"] == T0 + timedelta(minutes=2)
    assert row["read_at"] == T0 + timedelta(minutes=3)
    assert row["pricing_category"] == "marketing_lite" and row["pricing_model"] == "PMP"
    assert ledger.status_of("w2") is None
    # A late "delivered" in a later batch, and a replay, never downgrade.
    ledger.record_statuses([st("w1", "delivered", 9), st("w1", "sent", 0)])
    row = ledger.status_of("w1")
    assert row is not None and row["status"] == "read"
    assert row["delivered_at"] == T0 + timedelta(minutes=2)  # earliest kept
    assert row["sent_at"] == T0  # an earlier "sent" wins


def test_failed_is_terminal_and_keeps_its_error(ledger: Ledger) -> None:
    ledger.record_statuses([st("w1", "sent", 1)])
    ledger.record_statuses(
        [
            st(
                "w1",
                "failed",
                2,
                error_code=131049,
                error_title="Meta chose not to deliver",
                error_details="limit",
            )
        ]
    )
    ledger.record_statuses([st("w1", "delivered", 3), st("w1", "read", 4)])
    row = ledger.status_of("w1")
    assert row is not None
    assert row["status"] == "failed" and row["error_code"] == 131049 and row["error_details"] == "limit"
    assert row["failed_at"] == T0 + timedelta(minutes=2)


def test_status_before_its_send_row_joins_later(ledger: Ledger) -> None:
    r = phones(1)[0]
    ledger.record_statuses([st("wamid.c.late", "delivered", 1, pricing_category="marketing")])
    assert delivery_counts(ledger, "c") == {}
    ledger.claim("c", [r], attempt_id="a1", now=T0)
    ledger.record_results("c", [SendOutcome(r, L.ACCEPTED, wamid="wamid.c.late")], attempt_id="a1", now=T0)
    assert delivery_counts(ledger, "c") == {"delivered": 1}
    routing = build_report(ledger, "c").routing
    assert {k: n for k, n in routing.items() if n} == {"marketing": 1}


def test_status_updates_from_webhook_objects() -> None:
    update = status_from_webhook(
        {
            "id": "wamid.X",
            "status": "failed",
            "timestamp": "1748779200",
            "recipient_id": "4915100000000",
            "errors": [{"code": 131050, "title": "User stopped", "error_data": {"details": "opted out"}}],
        }
    )
    assert update.timestamp == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert (update.error_code, update.error_title, update.error_details) == (
        131050,
        "User stopped",
        "opted out",
    )
    sent = status_from_webhook(
        {
            "id": "w",
            "status": "sent",
            "timestamp": 1,
            "pricing": {"category": "marketing_lite", "pricing_model": "PMP"},
        }
    )
    assert sent.pricing_category == "marketing_lite" and sent.error_code is None
    with pytest.raises(ValueError, match="timestamp"):
        status_from_webhook({"id": "w", "status": "sent", "timestamp": "soon"})


def test_clicks_are_deduplicated_and_counted_on_the_message(ledger: Ledger) -> None:
    r = phones(1)[0]
    accept_all(ledger, "c", [r], "a1")
    wamid = f"wamid.c.{r}"
    clicks = [
        ClickEvent("k1", T0 + timedelta(minutes=5), wamid=wamid, click_component="cta"),
        ClickEvent("k2", T0 + timedelta(minutes=3), wamid=wamid, click_component="body"),
        ClickEvent("k1", T0 + timedelta(minutes=5), wamid=wamid),  # redelivery
        ClickEvent("k3", T0 + timedelta(minutes=1), wamid=None, tracking_token="t"),  # unknown message
    ]
    assert ledger.record_clicks(clicks) == 3
    assert ledger.record_clicks(clicks[:1]) == 1  # replay: nothing new
    row = ledger.status_of(wamid)
    assert row is not None and row["click_count"] == 2 and row["clicked_at"] == T0 + timedelta(minutes=3)
    report = build_report(ledger, "c")
    assert (report.clicked, report.clicks) == (1, 2)
    # A click then a status for the same message: the status applies, clicks stay.
    ledger.record_statuses([st(wamid, "read", 2)])
    row = ledger.status_of(wamid)
    assert row is not None and row["status"] == "read" and row["click_count"] == 2
    event = click_from_webhook(
        {
            "action_type": "marketing_messages_link_click",
            "timestamp": "1748779200",
            "marketing_messages_link_click_data": {"click_component": "cta", "tracking_token": "tok"},
        }
    )
    assert event.click_id.startswith("h:") and event.click_component == "cta"


# --- report queries ---------------------------------------------------------------------------


def test_report_queries(ledger: Ledger) -> None:
    r = phones(10)
    assert ledger.claim("c", r, attempt_id="a1", now=T0) == set(r)
    outcomes = [
        SendOutcome(p, L.ACCEPTED, wamid=f"w{i}", message_status="accepted", accepted_at=T0)
        for i, p in enumerate(r[:6])
    ]
    outcomes.append(
        SendOutcome(r[6], L.HELD, wamid="w6", message_status="held_for_quality_assessment", accepted_at=T0)
    )
    outcomes.append(SendOutcome(r[7], L.FAILED, error_code=131026, error_title="Message undeliverable"))
    outcomes.append(SendOutcome(r[8], L.FAILED, error_code=131026, error_title="Message undeliverable"))
    outcomes.append(SendOutcome(r[9], L.UNKNOWN, error_details="read timeout"))
    ledger.record_results("c", outcomes, attempt_id="a1", now=T0)
    assert send_counts(ledger, "c") == {"accepted": 6, "held": 1, "failed": 2, "unknown": 1}
    assert not build_report(ledger, "c").settled
    # Delivery after 1..4 seconds, one read without delivered (12 s), one failed, w6 pending.
    updates = [st(f"w{i}", "sent", 0, pricing_category="marketing_lite") for i in range(6)]
    for i, seconds in enumerate([1, 2, 3, 4]):
        updates.append(
            StatusUpdate(
                f"w{i}", "delivered", T0 + timedelta(seconds=seconds), pricing_category="marketing_lite"
            )
        )
    updates.append(StatusUpdate("w4", "read", T0 + timedelta(seconds=12), pricing_category="marketing"))
    updates.append(
        StatusUpdate(
            "w5",
            "failed",
            T0 + timedelta(seconds=5),
            error_code=131049,
            error_title="Meta chose not to deliver",
        )
    )
    ledger.record_statuses(updates)
    assert delivery_counts(ledger, "c") == {"delivered": 4, "read": 1, "failed": 1, "pending": 1}
    report = build_report(ledger, "c")
    assert report.routing == {"marketing_lite": 5, "marketing": 1, "unknown": 1}
    latency = report.time_to_deliver_s
    assert latency["count"] == 5
    assert latency["median"] == pytest.approx(3.0, abs=0.01)
    assert latency["max"] == pytest.approx(12.0, abs=0.01)
    assert latency["mean"] == pytest.approx((1 + 2 + 3 + 4 + 12) / 5, abs=0.01)
    errors = error_counts(ledger, "c")
    assert errors[0] == {
        "code": 131026,
        "title": "Message undeliverable",
        "count": 2,
        "stage": "send",
        "details": None,
    }
    assert {"code": 131049, "stage": "delivery", "count": 1}.items() <= errors[1].items()
    assert report.unsettled == 1  # w6 is held without a final status
    ledger.record_statuses([StatusUpdate("w6", "delivered", T0 + timedelta(minutes=30))])
    report = build_report(ledger, "c")
    assert report.settled is True and report.sends["accepted"] == 6
    assert report.time_to_deliver_s["count"] == 6


def test_report_of_an_unknown_campaign_is_empty(memory_ledger: Ledger) -> None:
    report = build_report(memory_ledger, "nope")
    assert not any(report.sends.values()) and report.errors == [] and report.settled is True
    assert report.time_to_deliver_s["count"] == 0 and report.time_to_deliver_s["median"] is None


def test_runs_are_recorded(memory_ledger: Ledger) -> None:
    memory_ledger.start_run("c", "a1", shard_index=1, shard_count=2, now=T0)
    memory_ledger.finish_run("a1", state="finished", summary={"accepted": 3}, now=T0 + timedelta(seconds=5))
    runs = memory_ledger.list_runs("c")
    assert len(runs) == 1
    assert runs[0]["state"] == "finished" and runs[0]["summary"] == {"accepted": 3}
    assert runs[0]["finished_at"] - runs[0]["started_at"] == timedelta(seconds=5)


def test_failed_webhooks_suppress_opted_out_and_rate_limited_recipients(ledger: Ledger) -> None:
    """131050 and 131049 usually arrive by webhook: they must feed the suppression list too."""
    stopped, limited, other = "4915100000001", "4915100000002", "4915100000003"
    ledger.record_statuses(
        [
            st("w1", "failed", 0, recipient_id=stopped, error_code=131050),
            st("w2", "failed", 0, recipient_id=limited, error_code=131049),
            st("w3", "failed", 0, recipient_id=other, error_code=131026),
        ]
    )
    active = ledger.active_suppressions([stopped, limited, other], now=T0 + timedelta(hours=1))
    assert set(active) == {stopped, limited}
    assert active[stopped].until is None and active[stopped].error_code == 131050
    assert active[limited].error_code == 131049
    later = ledger.active_suppressions([stopped, limited], now=T0 + timedelta(hours=25))
    assert set(later) == {stopped}  # the per-user limit lapses after a day, an opt-out never does
