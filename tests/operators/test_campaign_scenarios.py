"""What must hold for a real campaign run by the operator: no second message, whatever happens.

Each scenario runs ``MarketingMessageOperator`` against the sandbox over HTTP with a SQLite ledger, and
checks the sandbox's own record of what it accepted. (The 2,000-recipient run with injected faults is a
whole-DAG test in ``test_dags.py``.)
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.operators.marketing import HALTED_RESULT_KEY
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import (
    LEDGER_CONN_ID,
    SPRING_SALE,
    WHATSAPP_CONN_ID,
    digits,
    make_context,
    rows,
)
from tests.operators.conftest import send_operator as operator

CHILD = pathlib.Path(__file__).with_name("campaign_child.py")


def when_sandbox_has(sandbox: Sandbox, count: int, action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` from another thread as soon as the sandbox accepted ``count`` messages."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while len(sandbox.messages) < count and time.monotonic() < deadline:
            time.sleep(0.002)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_halt_mid_campaign_then_a_retry_finishes_without_duplicates(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(latency_s=0.002)
    concurrency = 8
    op = operator(recipients=rows(1000), concurrency=concurrency, batch_size=100, max_messages_per_second=600)
    context = make_context()
    watcher = when_sandbox_has(sandbox, 300, lambda: sandbox.configure(token_expired=True))
    with pytest.raises(AirflowFailException) as info:
        op.execute(context)
    watcher.join()
    message = str(info.value)
    assert "halted after" in message and "Graph error 190" in message
    assert "System users" in message  # what to fix: a token that never expires
    assert "clear the task (same campaign_id)" in message
    first = context["ti"].xcoms[HALTED_RESULT_KEY]
    assert first["halted"] and first["halt_error"]["code"] == 190
    accepted = first["accepted"]
    assert 300 <= accepted < 1000 and accepted == len(sandbox.messages)
    # Only requests already in flight hit the dead token (the senders follow the round trips).
    assert sandbox.errors()[190] <= max(concurrency, first["peak_concurrency"])
    campaign = first["campaign_id"]
    assert send_counts(ledger, campaign) == {"accepted": accepted}  # unsent claims were released

    sandbox.configure(token_expired=False)  # the fix: a valid token
    second = op.execute(make_context())  # the retry: same run, same campaign
    assert second["campaign_id"] == campaign
    assert second["already_done"] == accepted and second["accepted"] == 1000 - accepted
    sends = sandbox.sends_per_recipient()
    assert len(sends) == 1000 and set(sends.values()) == {1}
    assert send_counts(ledger, campaign) == {"accepted": 1000}


def test_killed_process_then_rerun_sends_nobody_twice_and_reports_unknowns(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    # The sandbox records a message before its (delayed) answer, so at any moment some accepted requests
    # are still in flight, and outcomes are written in batches of 50: the kill leaves both behind.
    sandbox.configure(latency_s=0.05)
    count, kill_after, campaign = 600, 175, "killed-campaign"
    spec = {
        "count": count,
        "run_id": "manual__killed",
        "operator": {
            **SPRING_SALE,
            "whatsapp_conn_id": WHATSAPP_CONN_ID,
            "ledger_conn_id": LEDGER_CONN_ID,
            "campaign_id": campaign,
            "max_messages_per_second": 200,
            "concurrency": 16,
            "batch_size": 50,
        },
    }
    child = subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(spec)],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while len(sandbox.messages) < kill_after and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        output = child.communicate(timeout=30)[0].decode(errors="replace")
    assert child.returncode == -signal.SIGKILL, output[-2000:]

    # What the dead process left behind.
    sent = set(sandbox.sends_per_recipient())
    states = {r["recipient"]: r["state"] for r in ledger.iter_sends(campaign)}
    accepted = {r for r, s in states.items() if s == "accepted"}
    claimed = {r for r, s in states.items() if s == "claimed"}
    assert len(sent) >= kill_after and set(states.values()) <= {"accepted", "claimed"}
    assert accepted <= sent and sent - accepted <= claimed  # sent but never recorded: still claimed
    assert claimed, "the kill should leave requests in flight"

    # The re-run (a task retry) resumes: in-flight recipients become unknown and are not sent again,
    # once the dead attempt's last heartbeat is older than claims_abandoned_after_s.
    time.sleep(1.8)
    sandbox.configure(latency_s=0.0)
    options = {"heartbeat_interval_s": 0.1, "claims_abandoned_after_s": 1.5}
    result = operator(recipients=rows(count), campaign_id=campaign, campaign_options=options).execute(
        make_context()
    )
    assert result["stale_unknown"] == len(claimed)
    assert result["already_done"] == len(accepted) + len(claimed)
    assert result["accepted"] == count - len(accepted) - len(claimed)
    sends = sandbox.sends_per_recipient()
    assert max(sends.values()) == 1  # nobody got two messages
    assert set(sends) == sent | {digits(i) for i in range(count)} - claimed
    assert send_counts(ledger, campaign) == {"accepted": count - len(claimed), "unknown": len(claimed)}
    # Of the unknowns, some reached the sandbox before the kill (and are not sent twice), the others
    # never left the process (the price of never guessing: they are not sent unless resend_unknown).
    reached = len((sent - accepted) & claimed)
    assert 0 < reached <= len(claimed)


def test_same_campaign_twice_then_new_campaigns_honour_suppressions_and_frequency_cap(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    stopped, limited, undeliverable = digits(1), digits(2), digits(3)
    sandbox.configure(
        forced_outcomes={stopped: "error:131050", limited: "error:131049", undeliverable: "error:131026"}
    )
    first = operator(recipients=rows(30), campaign_id="spring-1").execute(make_context())
    assert first["accepted"] == 27 and first["failed"] == 3
    assert first["errors_by_code"] == {"131026": 1, "131049": 1, "131050": 1}

    again = operator(recipients=rows(30), campaign_id="spring-1").execute(make_context())
    assert again["accepted"] == again["failed"] == 0
    assert again["already_done"] == again["skipped"] == 30
    assert len(sandbox.messages) == 27

    # A new campaign sends again, except to those who stopped marketing or hit the per-user limit.
    second = operator(recipients=rows(30), campaign_id="spring-2").execute(make_context())
    assert second["suppressed"] == 2 and second["accepted"] == 27 and second["failed"] == 1
    sends = sandbox.sends_per_recipient()
    assert sends[stopped] == sends[limited] == 0 and sends[digits(0)] == 2

    # With a frequency cap, whoever got a message within the last hour is skipped; newcomers are not.
    third = operator(recipients=rows(35), campaign_id="spring-3", frequency_cap=timedelta(hours=1)).execute(
        make_context()
    )
    assert third["frequency_capped"] == 27 and third["suppressed"] == 2
    assert third["accepted"] == 5 and third["failed"] == 1
    assert all(sandbox.sends_per_recipient()[digits(i)] == 1 for i in range(30, 35))


def test_circuit_breaker_fails_the_task_without_retries(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    """Code 100 on every send: the breaker halts the campaign, the task fails without retries, the
    message says why, and the counts reach XCom."""
    wa_sandbox()
    sandbox.configure(forced_outcomes={digits(i): "error:100" for i in range(300)})
    context = make_context()
    op = operator(
        recipients=rows(300), concurrency=4, campaign_options={"circuit_breaker": {"consecutive": 10}}
    )
    with pytest.raises(AirflowFailException) as info:
        op.execute(context)
    message = str(info.value)
    assert "Circuit breaker: 10 recipients in a row failed with the same error 100" in message
    first = context["ti"].xcoms[HALTED_RESULT_KEY]
    assert first["halted"] and first["tripped"] and 10 <= first["failed"] < 300
    assert sandbox.counts()["requests"] < 300
