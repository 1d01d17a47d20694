"""The sending process killed with SIGKILL mid-campaign, then the campaign run again.

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
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.sandbox import Sandbox
from tests.reliability.harness import (
    assert_clean,
    audience,
    child_spec,
    fast_settings,
    ledger_rows,
    sandbox_client,
    spawn,
    verify,
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


@pytest.mark.parametrize("k", [1, 97, 333])
def test_sigkill_mid_campaign_then_rerun(sandbox: Sandbox, ledger_file: pathlib.Path, k: int) -> None:
    sandbox.configure(mps_cap=None, latency_s=0.002)
    url = f"sqlite:///{ledger_file}"
    campaign_id = f"kill-{k}"
    crowd = audience(N, extras=False)
    started = time.monotonic()
    proc = spawn(
        child_spec(
            sandbox,
            url,
            campaign_id,
            count=N,
            settings={"max_messages_per_second": 600.0, "concurrency": 8, "batch_size": 50},
            owner=OWNER,
            try_number=1,
            report_in_flight=True,
        )
    )
    at_kill, in_flight_max = kill_when_recorded(proc, sandbox, k)

    ledger = Ledger.from_url(url)
    try:
        rows = ledger_rows(ledger, campaign_id)
        recorded = {m.to: m.wamid for m in sandbox.messages}
        # Claimed before sent: nothing reached the sandbox without a ledger row first.
        assert set(recorded) <= set(rows), "a message left without being claimed in the ledger"
        for recipient, row in rows.items():
            if row["state"] == L.ACCEPTED:
                assert recorded.get(recipient) == row["wamid"]
            else:
                assert row["state"] == L.CLAIMED, row["state"]
        claimed = {r for r, row in rows.items() if row["state"] == L.CLAIMED}
        accepted_before = len(rows) - len(claimed)
        assert claimed, "the kill came after the campaign finished"
        # Claimed at dispatch: only what the worker pool held is left claimed.
        assert len(claimed) <= in_flight_max

        # Try 2 of the same task instance, started at once: the dead try 1 is over as soon as its
        # heartbeat is two intervals old, without waiting claims_abandoned_after_s.
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
        assert rerun.elapsed_s < 30
        assert rerun.already_done == accepted_before + len(claimed)
        assert rerun.sent == len(crowd.valid) - accepted_before - len(claimed)
        sent_by_dead = sum(1 for r in claimed if r in recorded)
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

        # Only resend_unknown=True sends the unknown ones again: those the dead process had sent get two.
        with sandbox_client(sandbox, timeout=5.0) as client:
            resent = run_campaign(
                crowd.rows,
                client=client,
                ledger=ledger,
                settings=fast_settings(campaign_id, resend_unknown=True),
            )
        assert resent.sent == len(claimed)
        per = sandbox.sends_per_recipient()
        assert {r for r, n in per.items() if n > 1} == {r for r in claimed if r in recorded}
        assert max(per.values()) <= 2
        assert send_counts(ledger, campaign_id) == {L.ACCEPTED: len(crowd.valid)}
    finally:
        ledger.dispose()
