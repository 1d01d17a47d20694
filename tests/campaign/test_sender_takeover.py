"""Claims another attempt left or still holds: taken over at once when that attempt is an older try of
the same task, waited for when it is alive, and never counted as done while they are claims."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.attempt import Attempt
from airflow_provider_wamm.campaign.eligibility import Eligibility, HeldElsewhere, Send, Skip, SkipReason
from airflow_provider_wamm.campaign.intake import Candidate
from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.campaign.sources import SourceRow
from airflow_provider_wamm.campaign.workers import hand_over_lead
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.recipients import mask_phone
from airflow_provider_wamm.sandbox import Sandbox
from tests.campaign.test_sender import assert_accounted, digits, rows, settings

OWNER = "dag.send.scheduled__2026-05-01.-1"


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[GraphClient]:
    sandbox.configure(mps_cap=None)
    c = GraphClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        base_url=sandbox.url,
        max_retries=0,
        timeout=5.0,
    )
    yield c
    c.close()


def leave_claims(
    ledger: Ledger,
    campaign: str,
    attempt: str,
    recipients: list[str],
    *,
    beat_age_s: float,
    owner: str | None = None,
    try_number: int | None = None,
) -> None:
    """An attempt that claimed ``recipients`` and last beat its heartbeat ``beat_age_s`` ago."""
    now = L.utcnow()
    ledger.start_run(campaign, attempt, owner=owner, try_number=try_number, now=now - timedelta(minutes=5))
    ledger.heartbeat(attempt, now=now - timedelta(seconds=beat_age_s))
    assert ledger.claim(campaign, recipients, attempt_id=attempt) == set(recipients)


def test_a_newer_try_takes_over_the_claims_of_an_older_try_at_once(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """Try 1 was killed 10 s ago: try 2 records its claims unknown at start, without waiting a minute."""
    leave_claims(
        sqlite_ledger,
        "retry",
        "try-1",
        [digits(i) for i in range(5)],
        beat_age_s=10,
        owner=OWNER,
        try_number=1,
    )
    # Another task's attempt, as silent as try 1, is alive for claims_abandoned_after_s: it is waited for.
    leave_claims(
        sqlite_ledger,
        "retry",
        "other-task",
        [digits(5)],
        beat_age_s=10,
        owner="dag.other.run.-1",
        try_number=1,
    )
    cfg = settings("retry", heartbeat_interval_s=1.0, claims_abandoned_after_s=12.0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        result = run_campaign(
            rows(20), client=client, ledger=sqlite_ledger, settings=cfg, owner=OWNER, try_number=2
        )
    named = " ".join(r.getMessage() for r in caplog.records if "recorded as unknown" in r.getMessage())
    assert all(mask_phone(digits(i)) in named for i in range(6)), named  # the log says who they are
    assert digits(0) not in named  # masked, never the number itself
    assert result.stale_unknown == 6  # five at start, the other task's once it was over (12 s)
    assert result.already_done == 6 and result.accepted == 14 and result.foreign_claimed == 0
    assert_accounted(result)
    assert time.monotonic() - started < 10  # the other task's attempt was silent 10 s: over 2 s later
    assert set(sandbox.sends_per_recipient()) == {digits(i) for i in range(6, 20)}
    assert send_counts(sqlite_ledger, "retry") == {"unknown": 6, "accepted": 14}
    mine = next(r for r in sqlite_ledger.list_runs("retry") if r["attempt_id"] == result.attempt_id)
    assert mine["owner"] == OWNER and mine["try_number"] == 2 and mine["state"] == "finished"


def test_claims_of_a_live_attempt_are_waited_for_then_counted_right(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    """Another attempt holds nine claims: three it records accepted, three it releases, and three it
    leaves when it dies. None is counted as done while it is a claim."""
    accepted = [digits(i) for i in range(3)]
    released = [digits(i) for i in range(3, 6)]
    dropped = [digits(i) for i in range(6, 9)]
    leave_claims(
        sqlite_ledger, "live", "other", accepted + released + dropped, beat_age_s=0, owner="x.y.z.-1"
    )

    def the_other_attempt() -> None:
        time.sleep(0.4)  # while this run waits, its requests come back, or it gives them up
        outcomes = [SendOutcome(r, L.ACCEPTED, wamid=f"wamid.other.{r}", attempts=1) for r in accepted]
        sqlite_ledger.record_results("live", outcomes, attempt_id="other")
        sqlite_ledger.release_claims("live", attempt_id="other", recipients=released)
        # ... and then it dies: no heartbeat after the one at the start.

    other = threading.Thread(target=the_other_attempt)
    other.start()
    cfg = settings("live", heartbeat_interval_s=0.1, claims_abandoned_after_s=1.0)
    result = run_campaign(rows(20), client=client, ledger=sqlite_ledger, settings=cfg)
    other.join()
    assert result.already_done == 6 and result.stale_unknown == 3 and result.foreign_claimed == 0
    assert result.accepted == 14  # the eleven nobody held, and the three released
    assert_accounted(result)
    sends = sandbox.sends_per_recipient()
    assert set(sends) == set(released) | {digits(i) for i in range(9, 20)} and set(sends.values()) == {1}
    states = {r["recipient"]: r["state"] for r in sqlite_ledger.iter_sends("live")}
    assert {states[r] for r in accepted + released} == {"accepted"}
    assert {states[r] for r in dropped} == {"unknown"}


def test_claims_still_held_at_the_end_are_counted_foreign_claimed(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    held = [digits(i) for i in range(4)]
    leave_claims(sqlite_ledger, "held", "busy", held, beat_age_s=0)
    stop = threading.Event()

    def beat() -> None:  # the other attempt stays alive all along
        while not stop.wait(0.05):
            sqlite_ledger.heartbeat("busy")

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        cfg = settings("held", heartbeat_interval_s=0.1, claims_abandoned_after_s=0.6)
        with caplog.at_level(logging.INFO):
            result = run_campaign(
                rows(10), client=client, ledger=sqlite_ledger, settings=cfg, log=logging.getLogger("t")
            )
    finally:
        stop.set()
        beating.join()
    assert result.foreign_claimed == 4 and result.already_done == 0 and result.accepted == 6
    assert result.unsettled == 4 and result.to_dict()["foreign_claimed"] == 4
    assert_accounted(result)
    assert set(sandbox.sends_per_recipient()) == {digits(i) for i in range(4, 10)}
    assert send_counts(sqlite_ledger, "held") == {"claimed": 4, "accepted": 6}
    assert any("4 recipients are still claimed by another attempt" in r.getMessage() for r in caplog.records)
    summary = [r.getMessage() for r in caplog.records if "rows," in r.getMessage()][-1]
    assert "4 still claimed by another attempt" in summary


def test_eligibility_sets_aside_what_another_attempt_holds(sqlite_ledger: Ledger) -> None:
    sqlite_ledger.ensure_schema()
    sqlite_ledger.claim("c", [digits(1)], attempt_id="other")
    sqlite_ledger.claim("c", [digits(2)], attempt_id="mine")
    candidates = [
        Candidate(
            digits(i),
            SourceRow(i, digits(i), {"phone": digits(i), "name": "A", "discount": "1%", "slug": "s"}),
        )
        for i in (1, 2, 3)
    ]
    held, own, fresh = Eligibility(sqlite_ledger, settings("c"), "mine").decide(candidates, now=L.utcnow())
    assert isinstance(held, HeldElsewhere) and held.payload["to"] == digits(1)
    assert own == Skip(digits(2), SkipReason.DUPLICATE)
    assert isinstance(fresh, Send)
    # Held and suppressed meanwhile: still held (the claim settles first); skipped only if released.
    sqlite_ledger.add_suppressions([L.Suppression(digits(1), "manual")])
    held, _, _ = Eligibility(sqlite_ledger, settings("c"), "mine").decide(candidates, now=L.utcnow())
    assert isinstance(held, HeldElsewhere) and held.payload == {}
    assert isinstance(held.unsent, Skip) and held.unsent.reason == SkipReason.SUPPRESSED
    # A dry run waits for nobody: a claim counts as done there.
    dry = Eligibility(sqlite_ledger, settings("c", dry_run=True), "mine").decide(
        candidates[:1], now=L.utcnow()
    )
    assert dry == [Skip(digits(1), SkipReason.ALREADY_DONE)]


def test_a_held_claim_whose_recipient_became_suppressed_is_still_taken_over(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    """A killed try had a request on the wire; its failed status (131049) suppressed the recipient before
    the new try read it. The claim is still the killed try's to settle: the new try must record it
    ``unknown`` once that try is over, never leave it ``claimed`` behind a suppression skip."""
    on_the_wire, unsent = digits(0), digits(1)
    leave_claims(
        sqlite_ledger, "suppressed", "try-1", [on_the_wire, unsent], beat_age_s=0, owner=OWNER, try_number=1
    )
    sqlite_ledger.add_suppressions([L.Suppression(on_the_wire, "per_user_limit", 131049)])
    cfg = settings("suppressed", heartbeat_interval_s=0.2, claims_abandoned_after_s=5.0)
    result = run_campaign(
        rows(6), client=client, ledger=sqlite_ledger, settings=cfg, owner=OWNER, try_number=2
    )
    assert send_counts(sqlite_ledger, "suppressed") == {"unknown": 2, "accepted": 4}
    assert result.stale_unknown == 2 and result.foreign_claimed == 0 and result.accepted == 4
    assert_accounted(result)
    assert set(sandbox.sends_per_recipient()) == {digits(i) for i in range(2, 6)}


def test_claims_held_never_exceed_the_workers_and_a_short_lead(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash leaves every claim ``unknown``: beyond the requests on the wire (one per worker at
    most), only a tenth of a second of the pace is handed to the workers ahead of its turn, never a
    read-ahead of twice the workers."""
    sandbox.configure(latency_s=0.3)
    held: list[int] = []
    original = Attempt.claim

    def claim(self: Attempt, recipients: Sequence[str]) -> set[str]:
        got = original(self, recipients)
        held.append(sum(1 for _ in sqlite_ledger.iter_sends("lead", states=[L.CLAIMED])))
        return got

    monkeypatch.setattr(Attempt, "claim", claim)
    cfg = settings("lead", max_messages_per_second=20.0, concurrency=16, adaptive_concurrency=False)
    result = run_campaign(rows(40), client=client, ledger=sqlite_ledger, settings=cfg)
    assert result.accepted == 40 and held
    assert max(held) <= 16 + hand_over_lead(20.0) < 2 * 16
