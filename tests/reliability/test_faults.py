"""Campaigns against a misbehaving Graph API: whatever fails, nobody gets a second message.

Each scenario runs the campaign engine (``run_campaign`` with a real ``GraphClient`` over HTTP) against
the sandbox with one fault (or a mix), then :func:`~tests.reliability.harness.verify` compares what the
sandbox recorded, what the ledger says and what the client saw. A second run of the same campaign with
the fault gone must send nothing: ``unknown`` recipients are never sent again unless asked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignResult
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.campaign.workers import READ_AHEAD_MAX_S, hand_over_lead
from airflow_provider_wamm.sandbox import Sandbox
from tests.reliability.harness import (
    Audience,
    Toggler,
    Wire,
    assert_clean,
    audience,
    digits,
    fast_settings,
    sandbox_client,
    verify,
    when_recorded,
)

#: Client read timeout where a fault must outlast it (slow or hung answers take ``SLOW_S``).
SHORT_TIMEOUT = 0.5
SLOW_S = 1.0
#: Client read timeout of the other scenarios (generous: a loaded CI machine must not time out).
TIMEOUT = 5.0


def every(k: int, directive: str, *, offset: int = 0) -> Callable[[int], dict[str, str]]:
    """Forced outcomes: ``directive`` for every ``k``-th recipient."""

    def make(n: int) -> dict[str, str]:
        return {digits(i): directive for i in range(offset, n, k)}

    return make


def combine(*makers: Callable[[int], dict[str, str]]) -> Callable[[int], dict[str, str]]:
    """Merge forced-outcome makers (earlier ones win on a clash)."""

    def make(n: int) -> dict[str, str]:
        out: dict[str, str] = {}
        for maker in reversed(makers):
            out.update(maker(n))
        return out

    return make


RECIPIENT_ERRORS = combine(
    every(25, "error:131026"),
    every(25, "error:131050", offset=1),
    every(25, "error:131049", offset=2),
    every(25, "error:131008", offset=3),
)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One fault: how the sandbox misbehaves and what must be seen to have happened."""

    id: str
    label: str
    n: int = 500
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    forced: Callable[[int], dict[str, str]] | None = None
    timeout: float = TIMEOUT
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    burst: dict[str, Any] | None = None
    """Settings switched on in bursts (0.15 s on, 0.35 s off) while the campaign runs."""
    permanent_failures: bool = False
    """Forced errors are permanent: those recipients end ``failed``."""


SCENARIOS = [
    Scenario("none", "no fault (control)"),
    Scenario(
        "5xx",
        "5xx bursts (500/code 2, bare 502, 503)",
        config={"fault_5xx_rate": 0.05},
        burst={"fault_5xx_rate": 0.7},
    ),
    Scenario("transient", "transient errors 1, 2, 131000", config={"fault_transient_rate": 0.2}),
    Scenario("throttle", "throttling 4, 130429", config={"fault_throttle_rate": 0.1}),
    Scenario(
        "mps_cap",
        "rate cap 150/s (130429)",
        n=300,
        config={"mps_cap": 150.0},
        settings={"max_messages_per_second": 300.0, "min_messages_per_second": 100.0},
    ),
    Scenario("pair_limit", "pair rate limit 131056", forced=every(10, "error:131056#1")),
    Scenario(
        "lost",
        "answer lost after recording (drop/hang)",
        config={"fault_lost_response_rate": 0.04, "lost_response_mode": "mixed", "hang_s": SLOW_S},
        timeout=SHORT_TIMEOUT,
    ),
    Scenario("drop", "connection dropped before recording", config={"fault_drop_rate": 0.04}),
    Scenario(
        "slow",
        "answer slower than the client timeout",
        config={"fault_slow_rate": 0.04, "slow_response_s": SLOW_S},
        timeout=SHORT_TIMEOUT,
    ),
    Scenario(
        "recipient_errors",
        "recipient errors 131026/131050/131049/131008",
        forced=RECIPIENT_ERRORS,
        permanent_failures=True,
    ),
    Scenario(
        "mix",
        "all of the above at once",
        n=1000,
        config={
            "fault_5xx_rate": 0.02,
            "fault_transient_rate": 0.04,
            "fault_throttle_rate": 0.03,
            "fault_lost_response_rate": 0.01,
            "fault_drop_rate": 0.01,
            "fault_slow_rate": 0.01,
            "slow_response_s": SLOW_S,
            "hang_s": SLOW_S,
        },
        forced=combine(RECIPIENT_ERRORS, every(33, "error:131056#1", offset=5)),
        timeout=SHORT_TIMEOUT,
        permanent_failures=True,
    ),
]


def _forced(scenario: Scenario) -> dict[str, str]:
    return scenario.forced(scenario.n) if scenario.forced else {}


def _check_fault_happened(
    scenario: Scenario, sandbox: Sandbox, wire: Wire, result: CampaignResult, forced: dict[str, str]
) -> None:
    """The scenario must really have produced its fault (otherwise the test proves nothing)."""
    errors = sandbox.errors()
    events = wire.count()
    answers = {m.answer for m in sandbox.messages}
    if scenario.id == "5xx":
        # 500 with code 2, bare 503 (retried) and bare 502 (a gateway: the outcome is unknown)
        assert events["error:2"] + events["error:http_503"] >= 5 and events["unanswered"] > 0, events
    elif scenario.id == "transient":
        assert all(errors[code] > 0 for code in (1, 2, 131000)), errors
        assert result.retries > 0
    elif scenario.id == "throttle":
        assert errors[4] > 0 and errors[130429] > 0, errors
        assert result.throttled > 0
    elif scenario.id == "mps_cap":
        assert errors[130429] > 0, errors
        assert sandbox.max_window_count() <= 150
    elif scenario.id == "pair_limit":
        assert errors[131056] == len(forced) == result.pair_limited
    elif scenario.id == "lost":
        lost = {m.to for m in sandbox.messages if m.answer == "lost"}
        assert lost and result.unknown >= len(lost)  # and verify() showed every one of them is unknown
    elif scenario.id == "drop":
        assert events["unanswered"] > 0, events
        assert result.unknown > 0
        # Dropped before recording: the sandbox has nothing for them, yet the sender cannot know.
        assert not any(sandbox.sends_per_recipient()[r] for r in wire.unanswered())
    elif scenario.id == "slow":
        assert "slow" in answers and result.unknown >= 1
    elif scenario.id == "mix":
        assert errors[131056] > 0 and errors[130429] + errors[4] > 0 and result.unknown > 0


def _check_recipient_errors(ledger: Ledger, campaign_id: str, forced: dict[str, str]) -> set[str]:
    """Permanent errors: exactly the forced recipients failed, with their code; opt-outs suppressed."""
    permanent = {
        r: int(d.split(":")[1]) for r, d in forced.items() if d.startswith("error:") and "#" not in d
    }
    rows = {row["recipient"]: row for row in ledger.iter_sends(campaign_id)}
    failed = {r: row["error_code"] for r, row in rows.items() if row["state"] == L.FAILED}
    assert failed == permanent
    suppressed = ledger.active_suppressions(list(permanent))
    assert {r for r, s in suppressed.items() if s.reason == L.SUPPRESS_STOPPED_MARKETING} == {
        r for r, code in permanent.items() if code == 131050
    }
    limited = {r: s for r, s in suppressed.items() if s.reason == L.SUPPRESS_PER_USER_LIMIT}
    assert set(limited) == {r for r, code in permanent.items() if code == 131049}
    assert all(s.until is not None for s in limited.values())
    return set(permanent)


def _rerun_sends_nothing(
    sandbox: Sandbox, ledger: Ledger, campaign_id: str, crowd: Audience
) -> CampaignResult:
    """The same campaign again, with the fault gone: nothing is sent, unknown included."""
    before = len(sandbox.messages)
    sandbox.configure(
        fault_5xx_rate=0.0,
        fault_transient_rate=0.0,
        fault_throttle_rate=0.0,
        fault_lost_response_rate=0.0,
        fault_drop_rate=0.0,
        fault_slow_rate=0.0,
        forced_outcomes={},
        mps_cap=None,
        token_expired=False,
    )
    with sandbox_client(sandbox, timeout=TIMEOUT) as client:
        again = run_campaign(crowd.rows, client=client, ledger=ledger, settings=fast_settings(campaign_id))
    assert len(sandbox.messages) == before, "a re-run sent messages"
    assert again.sent == 0 and again.unknown == 0
    assert again.already_done == len(crowd.valid)
    return again


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_fault(scenario: Scenario, sandbox: Sandbox, file_ledger: Ledger) -> None:
    crowd = audience(scenario.n)
    forced = _forced(scenario)
    sandbox.configure(
        **{"mps_cap": None, "seed": sum(map(ord, scenario.id)), "forced_outcomes": forced, **scenario.config}
    )
    campaign_id = f"fault-{scenario.id}"
    started = time.monotonic()
    bursts = (
        Toggler(sandbox, on=scenario.burst, off={k: scenario.config.get(k, 0.0) for k in scenario.burst})
        if scenario.burst
        else contextlib.nullcontext()
    )
    with Wire() as wire, sandbox_client(sandbox, timeout=scenario.timeout) as client, bursts:
        result = run_campaign(
            crowd.rows,
            client=client,
            ledger=file_ledger,
            settings=fast_settings(campaign_id, **scenario.settings),
        )
    permanent: set[str] = set()
    if scenario.permanent_failures:
        permanent = _check_recipient_errors(file_ledger, campaign_id, forced)
    row = verify(
        scenario.label,
        sandbox=sandbox,
        ledger=file_ledger,
        campaign_id=campaign_id,
        crowd=crowd,
        results=[result],
        started=started,
        wire=wire,
        allow_failed=permanent,
    )
    assert_clean(row)
    _check_fault_happened(scenario, sandbox, wire, result, forced)
    assert result.total == len(crowd.rows)
    assert result.invalid == 4 and result.duplicates == len(crowd.rows) - len(crowd.valid) - 4
    _rerun_sends_nothing(sandbox, file_ledger, campaign_id, crowd)


def test_resend_unknown_sends_again_knowingly(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """``resend_unknown=True`` is the one way an unknown recipient is sent again (and may get two)."""
    crowd = audience(300, extras=False)
    sandbox.configure(
        mps_cap=None, seed=7, fault_lost_response_rate=0.05, fault_drop_rate=0.05, hang_s=SLOW_S
    )
    started = time.monotonic()
    with Wire() as wire, sandbox_client(sandbox, timeout=SHORT_TIMEOUT) as client:
        first = run_campaign(crowd.rows, client=client, ledger=file_ledger, settings=fast_settings("resend"))
    row = verify(
        "resend_unknown=True after lost answers",
        sandbox=sandbox,
        ledger=file_ledger,
        campaign_id="resend",
        crowd=crowd,
        results=[first],
        started=started,
        wire=wire,
    )
    assert_clean(row)
    unknown = {r["recipient"] for r in file_ledger.iter_sends("resend", states=[L.UNKNOWN])}
    recorded = {m.to for m in sandbox.messages}
    reached, never = unknown & recorded, unknown - recorded
    assert reached and never  # some lost answers (message recorded), some drops (nothing recorded)
    sandbox.configure(fault_lost_response_rate=0.0, fault_drop_rate=0.0)
    with sandbox_client(sandbox, timeout=TIMEOUT) as client:
        again = run_campaign(
            crowd.rows,
            client=client,
            ledger=file_ledger,
            settings=fast_settings("resend", resend_unknown=True),
        )
    assert again.sent == len(unknown)
    per = sandbox.sends_per_recipient()
    assert {r for r, n in per.items() if n == 2} == reached  # the documented risk, and only there
    assert all(per[r] == 1 for r in never)
    assert send_counts(file_ledger, "resend") == {L.ACCEPTED: len(crowd.valid)}


def test_token_expires_mid_campaign_then_resumes(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """Code 190 halts the campaign at once; after the token is fixed the same campaign finishes."""
    crowd = audience(600)
    sandbox.configure(mps_cap=None, latency_s=0.002)
    wire = Wire()
    started = time.monotonic()
    watcher = when_recorded(sandbox, 200, lambda: sandbox.configure(token_expired=True))
    with wire, sandbox_client(sandbox, timeout=TIMEOUT) as client, pytest.raises(CampaignHalted) as info:
        run_campaign(
            crowd.rows,
            client=client,
            ledger=file_ledger,
            settings=fast_settings("token", max_messages_per_second=800.0, concurrency=8),
        )
    watcher.join()
    halted = info.value.result
    assert info.value.error.code == 190 and halted.halted
    counts = send_counts(file_ledger, "token")
    assert L.CLAIMED not in counts  # nothing left claimed: in-flight answers recorded, the rest released
    assert L.UNKNOWN not in counts  # a 190 answer is definite: nothing was accepted
    assert counts[L.ACCEPTED] == halted.accepted == len(sandbox.messages)
    assert 200 <= halted.accepted < len(crowd.valid) and halted.released > 0

    sandbox.configure(token_expired=False)
    with wire, sandbox_client(sandbox, timeout=TIMEOUT) as client:
        resumed = run_campaign(crowd.rows, client=client, ledger=file_ledger, settings=fast_settings("token"))
    assert resumed.already_done == halted.accepted
    row = verify(
        "token expired mid-campaign (190), fixed, re-run",
        sandbox=sandbox,
        ledger=file_ledger,
        campaign_id="token",
        crowd=crowd,
        results=[halted, resumed],
        started=started,
        wire=wire,
    )
    assert_clean(row)


@pytest.mark.parametrize(
    "stagger",
    [0, 150],
    ids=["together", "second-starts-mid-way"],
)
def test_two_runs_of_one_campaign_at_once(sandbox: Sandbox, ledger_file: Any, stagger: int) -> None:
    """Two attempts of the same campaign at once (a zombie and its retry) share the work.

    ``stagger``: the second attempt starts when the sandbox has recorded this many messages of the first.
    """
    crowd = audience(800)
    sandbox.configure(mps_cap=None, seed=3, fault_transient_rate=0.05, latency_s=0.001)
    wire = Wire()
    results: list[CampaignResult] = []
    errors: list[BaseException] = []

    barrier = threading.Barrier(2)

    def attempt(index: int) -> None:
        ledger = Ledger.from_url(f"sqlite:///{ledger_file}")  # its own engine, as another process would
        try:
            with sandbox_client(sandbox, timeout=TIMEOUT) as client:
                barrier.wait()  # both ready: "together" really starts them at once
                if index == 1:
                    deadline = time.monotonic() + 30
                    while len(sandbox.messages) < stagger and time.monotonic() < deadline:
                        time.sleep(0.001)
                results.append(
                    run_campaign(
                        crowd.rows,
                        client=client,
                        ledger=ledger,
                        settings=fast_settings(
                            "twice", concurrency=8, batch_size=50, max_messages_per_second=600.0
                        ),
                    )
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            ledger.dispose()

    started = time.monotonic()
    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    with wire:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors
    ledger = Ledger.from_url(f"sqlite:///{ledger_file}")
    try:
        row = verify(
            f"two runs of one campaign at once ({'together' if not stagger else 'staggered'})",
            sandbox=sandbox,
            ledger=ledger,
            campaign_id="twice",
            crowd=crowd,
            results=results,
            started=started,
            wire=wire,
        )
        assert_clean(row)
        if not stagger:  # started together, both really work; a late second may find nothing left
            assert all(r.sent > 0 for r in results), [r.sent for r in results]
        counts = send_counts(ledger, "twice")
        assert sum(r.sent for r in results) == counts.get(L.ACCEPTED, 0) == len(crowd.valid)
        # Neither took the other's live claims for dead ones, nor counted them as done while claimed.
        assert [r.stale_unknown for r in results] == [0, 0]
        # A run that ends first may leave claims the other still holds (reported, not done): at most
        # the other's requests on the wire plus the short lead a hand-over may claim ahead of them
        # (longer right before a read of the input, by what the read takes).
        lead = hand_over_lead(600.0, READ_AHEAD_MAX_S)
        left, other = [r.foreign_claimed for r in results], [r.peak_concurrency for r in results[::-1]]
        assert all(n <= peak + lead for n, peak in zip(left, other, strict=True)), (left, other, lead)
    finally:
        ledger.dispose()


def test_second_attempt_mid_way_then_halt_leaves_nobody_wrongly_unknown(
    sandbox: Sandbox, ledger_file: Any
) -> None:
    """A retry starting while the first attempt still runs, then a halt of both, then a fixed re-run.

    Recipients that no attempt ever sent must end with one message, not as ``unknown``.
    """
    crowd = audience(800, extras=False)
    sandbox.configure(mps_cap=None, latency_s=0.002)
    results: list[CampaignResult] = []

    def attempt(index: int) -> None:
        ledger = Ledger.from_url(f"sqlite:///{ledger_file}")
        try:
            with sandbox_client(sandbox, timeout=TIMEOUT) as client:
                if index == 1:
                    deadline = time.monotonic() + 30
                    while len(sandbox.messages) < 150 and time.monotonic() < deadline:
                        time.sleep(0.001)
                try:
                    settings = fast_settings("halted-twice", max_messages_per_second=400.0, concurrency=8)
                    results.append(run_campaign(crowd.rows, client=client, ledger=ledger, settings=settings))
                except CampaignHalted as halted:
                    results.append(halted.result)
        finally:
            ledger.dispose()

    started = time.monotonic()
    with Wire() as wire:
        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        when_recorded(sandbox, 250, lambda: sandbox.configure(token_expired=True)).join()
        for t in threads:
            t.join(120)
        sandbox.configure(token_expired=False)
        ledger = Ledger.from_url(f"sqlite:///{ledger_file}")
        try:
            with sandbox_client(sandbox, timeout=TIMEOUT) as client:
                results.append(
                    run_campaign(
                        crowd.rows, client=client, ledger=ledger, settings=fast_settings("halted-twice")
                    )
                )
            row = verify(
                "retry mid-way, both halted (190), re-run",
                sandbox=sandbox,
                ledger=ledger,
                campaign_id="halted-twice",
                crowd=crowd,
                results=results,
                started=started,
                wire=wire,
                check_run_totals=False,
            )
        finally:
            ledger.dispose()
    assert_clean(row)
