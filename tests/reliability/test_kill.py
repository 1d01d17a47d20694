"""The sending process killed mid-campaign, with SIGKILL or cleanly (a stop), then the campaign run again.

A child process runs the campaign engine against the in-test sandbox over HTTP as try 1 of a task
instance; it is killed (no chance to clean up) as soon as the sandbox has recorded ``k`` messages.
What must hold:

* every message the sandbox recorded has a ledger row: recipients are claimed *before* their request
  leaves (the write-ahead rule that makes at-most-once possible);
* recipients are claimed only when handed to the worker pool, so the dead process leaves at most the
  requests it had in flight claimed (the child reports the most it ever had);
* the re-run, try 2 of the same task instance started right away, takes the dead try's claims over
  as ``unknown`` (exactly those), sends everybody else once, and sends the unknown ones again only
  with ``resend_unknown=True``.

A clean stop (what ``on_kill`` does when Airflow kills the task) leaves nothing claimed: the answers in
flight within the grace are recorded, the requests still out are ``unknown`` (at most the requests in
flight at the stop), the rest released and sent by the re-run.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.control import CampaignControl
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.result import CampaignStopped
from airflow_provider_wamm.campaign.sender import IN_FLIGHT_AT_STOP, run_campaign
from airflow_provider_wamm.sandbox import Sandbox
from tests.reliability.harness import (
    Audience,
    assert_clean,
    audience,
    child_spec,
    fast_settings,
    ledger_rows,
    sandbox_client,
    spawn,
    verify,
    when_recorded,
)

N = 500
#: The task instance both tries belong to.
OWNER = "kill_dag.send.manual__kill.-1"


def kill_when_recorded(
    proc: subprocess.Popen[str], sandbox: Sandbox, k: int, limit_s: float = 60.0
) -> tuple[int, int]:
    """SIGKILL ``proc`` once the sandbox recorded ``k`` messages; returns how many it had at the kill
    and the most requests the child ever had in flight (it reports each new high)."""
    deadline = time.monotonic() + limit_s
    while len(sandbox.messages) < k:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the child ended (exit {proc.returncode}) before {k} messages: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the sandbox did not record {k} messages in {limit_s} s")
        time.sleep(0.0005)
    os.kill(proc.pid, signal.SIGKILL)
    at_kill = len(sandbox.messages)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    highs = [json.loads(line)["in_flight_max"] for line in out.splitlines() if "in_flight_max" in line]
    assert highs, "the child reported no request in flight"
    return at_kill, max(highs)


def left_claimed(ledger: Ledger, campaign_id: str, sandbox: Sandbox) -> set[str]:
    """What the killed child left in the ledger: accepted rows with the sandbox's wamid, the rest
    claimed; every message the sandbox recorded has a row (claimed before sent). The claimed ones."""
    rows = ledger_rows(ledger, campaign_id)
    recorded = {m.to: m.wamid for m in sandbox.messages}
    assert set(recorded) <= set(rows), "a message left without being claimed in the ledger"
    for recipient, row in rows.items():
        if row["state"] == L.ACCEPTED:
            assert recorded.get(recipient) == row["wamid"]
        else:
            assert row["state"] == L.CLAIMED, row["state"]
    claimed = {r for r, row in rows.items() if row["state"] == L.CLAIMED}
    assert claimed, "the kill came after the campaign finished"
    return claimed


def resend_unknown_sends_them_again(
    sandbox: Sandbox, ledger: Ledger, campaign_id: str, crowd: Audience, claimed: set[str]
) -> None:
    """Only resend_unknown=True sends the unknown ones again: those the dead process had sent get two."""
    recorded_before = {m.to for m in sandbox.messages}
    with sandbox_client(sandbox, timeout=5.0) as client:
        resent = run_campaign(
            crowd.rows,
            client=client,
            ledger=ledger,
            settings=fast_settings(campaign_id, resend_unknown=True),
        )
    assert resent.sent == len(claimed)
    per = sandbox.sends_per_recipient()
    assert {r for r, n in per.items() if n > 1} == claimed & recorded_before
    assert max(per.values()) <= 2
    assert send_counts(ledger, campaign_id) == {L.ACCEPTED: len(crowd.valid)}


@pytest.mark.parametrize("k", [1, 97, 333])
def test_sigkill_mid_campaign_then_rerun(sandbox: Sandbox, ledger_file: pathlib.Path, k: int) -> None:
    sandbox.configure(mps_cap=None, latency_s=0.002)
    url = f"sqlite:///{ledger_file}"
    campaign_id = f"kill-{k}"
    crowd = audience(N, extras=False)
    started = time.monotonic()
    settings = {"max_messages_per_second": 600.0, "concurrency": 8, "batch_size": 50}
    spec = child_spec(sandbox, url, campaign_id, count=N, settings=settings, owner=OWNER, try_number=1)
    at_kill, in_flight_max = kill_when_recorded(spawn({**spec, "report_in_flight": True}), sandbox, k)

    ledger = Ledger.from_url(url)
    try:
        claimed = left_claimed(ledger, campaign_id, sandbox)
        # Claimed by a hand-over to the workers: only what the run held (in flight, handed over and
        # waiting for its turn, or answered and not yet recorded) is left claimed.
        assert len(claimed) <= in_flight_max
        accepted_before = sum(1 for _ in ledger.iter_sends(campaign_id, states=[L.ACCEPTED]))
        sent_by_dead = len(claimed & {m.to for m in sandbox.messages})

        # Try 2 of the same task instance, started at once: the dead try 1 is over as soon as its
        # heartbeat is two intervals old, without waiting claims_abandoned_after_s (a minute here).
        with sandbox_client(sandbox, timeout=5.0) as client:
            rerun = run_campaign(
                crowd.rows,
                client=client,
                ledger=ledger,
                settings=fast_settings(campaign_id, claims_abandoned_after_s=60.0),
                owner=OWNER,
                try_number=2,
            )
        assert rerun.stale_unknown == len(claimed) and rerun.foreign_claimed == 0
        assert rerun.already_done == accepted_before + len(claimed)
        assert rerun.sent == len(crowd.valid) - accepted_before - len(claimed)
        line = verify(
            f"SIGKILL after {k} recorded, re-run",
            sandbox=sandbox,
            ledger=ledger,
            campaign_id=campaign_id,
            crowd=crowd,
            results=[rerun],
            started=started,
            expect_unknown=claimed,
            unknown_sources="subset",
            check_run_totals=False,
            notes=(
                f"{at_kill} recorded at the kill; claimed at the kill {len(claimed)} "
                f"(<= {in_flight_max} in flight at most), {sent_by_dead} of them sent"
            ),
        )
        assert_clean(line)
        resend_unknown_sends_them_again(sandbox, ledger, campaign_id, crowd, claimed)
    finally:
        ledger.dispose()


def test_stop_mid_campaign_then_rerun(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """A stop through the campaign's control (a killed task's on_kill) while some answers are slow."""
    crowd = audience(600)
    # 5 % of the answers come after 1 s: past the client's timeout, and past the stop's grace.
    sandbox.configure(mps_cap=None, seed=21, latency_s=0.002, fault_slow_rate=0.05, slow_response_s=1.0)
    control = CampaignControl()
    started = time.monotonic()
    watcher = when_recorded(sandbox, 200, lambda: control.stop("killed by the test"))
    # Eight fixed workers: the slow answers would otherwise grow the adaptive pool past eight.
    settings = fast_settings(
        "stopped", max_messages_per_second=600.0, concurrency=8, adaptive_concurrency=False, stop_grace_s=0.2
    )
    with sandbox_client(sandbox, timeout=0.5) as client, pytest.raises(CampaignStopped) as info:
        run_campaign(crowd.rows, client=client, ledger=file_ledger, settings=settings, control=control)
    watcher.join()
    stopped = info.value.result
    assert L.CLAIMED not in send_counts(file_ledger, "stopped") and stopped.released > 0
    given_up = [r for r in file_ledger.iter_sends("stopped") if r["error_details"] == IN_FLIGHT_AT_STOP]
    assert len(given_up) <= 8  # at most the requests in flight at the stop (eight workers)

    sandbox.configure(fault_slow_rate=0.0)
    with sandbox_client(sandbox, timeout=5.0) as client:
        rerun = run_campaign(crowd.rows, client=client, ledger=file_ledger, settings=fast_settings("stopped"))
    assert rerun.unknown == rerun.stale_unknown == rerun.foreign_claimed == 0
    line = verify(
        "stopped (on_kill) after 200 recorded, re-run",
        sandbox=sandbox,
        ledger=file_ledger,
        campaign_id="stopped",
        crowd=crowd,
        results=[stopped, rerun],
        started=started,
        unknown_sources="subset",
        notes=(
            f"{stopped.sent} recorded by the stopped run, {stopped.released} released, "
            f"{stopped.unknown} unknown ({len(given_up)} given up after the grace)"
        ),
    )
    assert_clean(line)
