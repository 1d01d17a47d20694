"""MarketingMessageOperator killed while it sends (``on_kill``), and runs that end with open outcomes
(``on_unknown``), against the sandbox over HTTP and a real SQLite ledger."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.operators.marketing import HALTED_RESULT_KEY, MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import TaskInstanceStub, digits, make_context, rows
from tests.operators.test_marketing_operator import operator

RUN_ID = "manual__2026-05-01T10:00:00+00:00"


@dataclass
class TryStub(TaskInstanceStub):
    """A task instance stub that knows its try."""

    try_number: int = 1


def kill_when_recorded(sandbox: Sandbox, count: int, kill: Callable[[], None]) -> threading.Thread:
    """Call ``kill`` from another thread once the sandbox recorded ``count`` messages."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while len(sandbox.messages) < count and time.monotonic() < deadline:
            time.sleep(0.002)
        kill()

    thread = threading.Thread(target=watch, name="killer", daemon=True)
    thread.start()
    return thread


@pytest.fixture
def sigterm_calls_on_kill() -> Iterator[Callable[[MarketingMessageOperator], None]]:
    """Install a SIGTERM handler like Airflow's task runner (``task.on_kill()`` in the main thread)."""
    previous = signal.getsignal(signal.SIGTERM)

    def install(op: MarketingMessageOperator) -> None:
        signal.signal(signal.SIGTERM, lambda _signum, _frame: op.on_kill())

    yield install
    signal.signal(signal.SIGTERM, previous)


def killed_then_resumed(
    sandbox: Sandbox, ledger: Ledger, op: MarketingMessageOperator, kill: Callable[[], None]
) -> MutableMapping[str, Any]:
    """Execute ``op`` until ``kill`` stops it, check what it left, execute it again; the stop's counts."""
    sandbox.configure(latency_s=0.05)
    context = make_context(ti=TryStub(try_number=1))
    watcher = kill_when_recorded(sandbox, 40, kill)
    with pytest.raises(AirflowException) as info:
        op.execute(context)
    watcher.join()
    assert not isinstance(info.value, AirflowFailException)  # a retry (or a clear) resumes it
    message = str(info.value)
    assert "was stopped (the task was killed)" in message and "Clear the task" in message
    stopped = context["ti"].xcoms[HALTED_RESULT_KEY]
    assert stopped["stopped"] and stopped["released"] > 0 and stopped["unknown"] == 0
    campaign = stopped["campaign_id"]
    assert send_counts(ledger, campaign) == {"accepted": stopped["accepted"]}  # nothing left claimed
    run = ledger.list_runs(campaign)[0]
    assert (
        run["state"] == "killed" and run["owner"] == f"wamm_ops.send.{RUN_ID}.-1" and run["try_number"] == 1
    )

    sandbox.configure(latency_s=0.0)
    again = op.execute(make_context(ti=TryStub(try_number=2)))
    assert again["already_done"] == stopped["accepted"] and again["accepted"] == 300 - stopped["accepted"]
    sends = sandbox.sends_per_recipient()
    assert len(sends) == 300 and set(sends.values()) == {1}
    return stopped


def test_on_kill_from_another_thread_fails_the_task_and_loses_nobody(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(recipients=rows(300), concurrency=8, max_messages_per_second=100)
    killed_then_resumed(sandbox, ledger, op, op.on_kill)


def test_sigterm_handled_like_the_task_runner_does_stops_the_campaign_cleanly(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    sigterm_calls_on_kill: Callable[[MarketingMessageOperator], None],
) -> None:
    """The handler runs in the main thread while it is inside the campaign loop."""
    op = operator(recipients=rows(300), concurrency=8, max_messages_per_second=100)
    sigterm_calls_on_kill(op)
    killed_then_resumed(sandbox, ledger, op, lambda: os.kill(os.getpid(), signal.SIGTERM))


def test_on_kill_before_or_after_a_run_does_nothing_harmful(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(recipients=rows(3))
    op.on_kill()  # not running: nothing to stop
    assert op.execute(make_context())["accepted"] == 3
    op.on_kill()  # finished: nothing to stop
    assert len(sandbox.messages) == 3


def test_on_unknown_warns_by_default_and_fails_when_asked(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    airflow_logs: list[MutableMapping[str, Any]],
) -> None:
    lost = [digits(2), digits(5)]
    sandbox.configure(lost_response_mode="drop", forced_outcomes={d: "lost#1" for d in lost})
    warned = operator(recipients=rows(8), campaign_id="warned").execute(make_context())
    assert warned["unknown"] == 2 and warned["foreign_claimed"] == 0 and warned["stale_unknown"] == 0
    text = "\n".join(str(e) for e in airflow_logs)
    assert "ended with 2 unknown outcomes" in text and "Resolving unknown" in text

    sandbox.configure(forced_outcomes={digits(i): "lost#1" for i in (12, 15)})
    strict = operator(recipients=rows(8, start=10), campaign_id="failed", on_unknown="fail")
    with pytest.raises(AirflowFailException, match=r"ended with 2 unknown outcomes .*on_unknown='fail'"):
        strict.execute(make_context())
    # Nothing open: "fail" does not fail.
    clean = operator(recipients=rows(3, start=20), campaign_id="clean", on_unknown="fail")
    assert clean.execute(make_context())["accepted"] == 3


def test_on_unknown_is_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="'on_unknown' must be one of"):
        operator(on_unknown="ignore")


def test_the_attempt_names_its_task_instance_and_try(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    result = operator(recipients=rows(2)).execute(make_context(ti=TryStub(map_index=3, try_number=4)))
    run = ledger.list_runs(result["campaign_id"])[0]
    assert run["owner"] == f"wamm_ops.send.{RUN_ID}.3" and run["try_number"] == 4
