"""A person's sign-off gates the canary's second slice (Airflow's human-in-the-loop approval).

After the first slice's gates pass, the task writes an approval request with the slice's numbers and
parks in ``awaiting_input``. ``Reject`` (or no answer in time): the second slice is never sent and the
task fails with the evidence. ``Approve``: everyone is messaged, once. Checked twice: calling the
operator's methods directly, and in whole ``dag.test()`` runs where Airflow's own task runner parks the
task and the answer goes through the REST API's own handler.

``dag.test()`` never times out a task waiting for input, so in the DAG runs a watchdog
(:func:`hang_guard`) fails a task still waiting when the run should long be over: a lost answer fails
the test with a message that says so, instead of hanging it. Behind it, a pytest-timeout in thread
mode: the default signal mode does not end a ``dag.test()`` run (seen: a run parked for input outlived
its signal-mode timeout by minutes).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk.exceptions import TaskAwaitingInput

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.operators.canary import CANARY_KEY
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import LEDGER_CONN_ID, SPRING_SALE, WHATSAPP_CONN_ID, rows
from tests.operators.test_canary import first_slice, resume, wire
from tests.operators.test_dags import register_dag, run_dag

SETTLE = timedelta(seconds=0.2)
#: How long a DAG run of these tests may take before the watchdog fails a task still waiting for input.
RUN_DEADLINE_S = 150.0


def ask(
    sandbox: Sandbox, receiver: tuple[str, Ledger], monkeypatch: pytest.MonkeyPatch, people: int
) -> tuple[Any, dict[str, Any], Any]:
    """Send the first slice (its webhooks stored by ``receiver``), pass its gates, and catch the approval
    request; returns the operator, the context, the request written and the park signal."""
    requests: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "airflow.sdk.execution_time.hitl.upsert_hitl_detail",
        lambda **request: requests.append(request),
    )
    wire(sandbox, receiver[0], {"delivered": 1.0})
    op, context, deferred = first_slice(sandbox, people, canary_approval=True)
    with pytest.raises(TaskAwaitingInput) as parked:
        resume(op, context, deferred)
    (request,) = requests
    return op, context, (request, parked.value)


def answer(chosen: str) -> dict[str, Any]:
    """The event Airflow resumes the task with after a person's answer."""
    return {
        "chosen_options": [chosen],
        "params_input": {},
        "responded_at": datetime(2026, 12, 1, 9, 0),
        "responded_by_user": {"id": "ana", "name": "Ana"},
        "timedout": False,
    }


def test_the_request_shows_the_canarys_numbers_and_a_rejection_stops_the_rollout(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    live_receiver: tuple[str, Ledger],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    op, context, (request, parked) = ask(sandbox, live_receiver, monkeypatch, 100)
    canary = len(sandbox.messages)
    assert 0 < canary < 100
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert request["ti_id"] == context["ti"].id and "the next slice (100%)?" in request["subject"]
    assert f"| messages sent | {canary} |" in request["body"] and "| failed | 0 (0.0 %) |" in request["body"]
    assert "131048" in request["body"] and "No answer within 1 day" in request["body"]
    assert parked.method_name == "resume_approved" and parked.timeout == timedelta(hours=24)

    with pytest.raises(AirflowFailException, match="Reject by Ana") as failed:
        op.resume_approved(context, event=answer("Reject"), **parked.kwargs)

    assert "The rest was not sent" in str(failed.value)
    assert len(sandbox.messages) == canary
    evidence = context["ti"].xcoms[CANARY_KEY][-1]
    assert evidence["passed"] is True and evidence["sent"] == canary
    assert evidence["approval"]["approved"] is False and evidence["approval"]["by"] == "Ana"


def test_an_approval_sends_the_second_slice_to_everyone_else_once(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    live_receiver: tuple[str, Ledger],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    op, context, (_request, parked) = ask(sandbox, live_receiver, monkeypatch, 100)
    canary = len(sandbox.messages)

    result = op.resume_approved(context, event=answer("Approve"), **parked.kwargs)

    assert len(sandbox.messages) == 100 and max(sandbox.sends_per_recipient().values()) == 1
    assert result["accepted"] == 100 - canary and result["rollout"]["step"] == 1
    assert result["rollout"]["gates"][0]["approval"]["chosen"] == "Approve"


def test_no_answer_in_time_stops_the_rollout(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    live_receiver: tuple[str, Ledger],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    op, context, (_request, parked) = ask(sandbox, live_receiver, monkeypatch, 60)
    canary = len(sandbox.messages)
    timed_out = {**answer("Reject"), "responded_by_user": None, "timedout": True}
    with pytest.raises(AirflowFailException, match="no answer before the approval timeout"):
        op.resume_approved(context, event=timed_out, **parked.kwargs)
    error = {"error": "The response timeout has passed", "error_type": "timeout"}
    with pytest.raises(AirflowFailException, match="no answer before the approval timeout"):
        op.resume_approved(context, event=error, **parked.kwargs)
    assert len(sandbox.messages) == canary


def test_approval_needs_a_rollout_of_two_steps() -> None:
    from tests.operators.test_marketing_operator import operator

    with pytest.raises(ValueError, match="canary_approval needs a rollout"):
        operator(recipients=[], canary_approval=True)
    with pytest.raises(ValueError, match="canary_approval needs a rollout"):
        operator(recipients=[], rollout=[1.0], canary_approval=True)


# -- the same in whole DAG runs, with Airflow's task runner and its REST API's answer handler ---------


def approval_dag(dag_id: str, people: int) -> Any:
    from airflow.sdk import DAG

    from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), default_args={"retries": 0}) as dag:
        MarketingMessageOperator(
            task_id="send",
            whatsapp_conn_id=WHATSAPP_CONN_ID,
            ledger_conn_id=LEDGER_CONN_ID,
            recipients=rows(people),
            rollout=[0.3, 1.0],
            canary_settle=SETTLE,
            canary_approval=True,
            canary_approval_timeout=timedelta(minutes=10),
            **SPRING_SALE,
        )
    return register_dag(dag)


def respond_when_asked(dag_id: str, chosen: str, seen: dict[str, Any], sandbox: Sandbox) -> threading.Thread:
    """A person answering in the UI: once the task waits for input, the REST API's handler of
    ``PATCH .../hitlDetails`` records ``chosen`` (what it saw, and the messages sent by then, are kept
    in ``seen``)."""
    from airflow import settings
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    def waiting() -> tuple[str, HITLDetail] | None:
        assert settings.Session is not None
        with settings.Session() as session:
            ti = session.scalar(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.state == "awaiting_input"
                )
            )
            detail = session.get(HITLDetail, ti.id) if ti is not None else None
            return (ti.run_id, detail) if ti is not None and detail is not None else None

    def run() -> None:
        for _ in range(600):
            found = waiting()
            if found is not None:
                break
            threading.Event().wait(0.1)
        else:
            seen["error"] = "the task never waited for input"
            return
        run_id, detail = found
        # A person takes a moment: an answer in the very instant the task parks can be overwritten
        # by the task runner's own "awaiting input" write, and the run would wait for ever.
        threading.Event().wait(1.5)
        seen.update(subject=detail.subject, body=detail.body, options=detail.options)
        seen["canary"] = len(sandbox.messages)
        assert settings.Session is not None
        with settings.Session() as session:
            update_hitl_detail(
                dag_id=dag_id,
                dag_run_id=run_id,
                task_id="send",
                update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[chosen]),
                user=SimpleAuthManagerUser(username="ana", role="admin"),
                session=session,
            )
            session.commit()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def hang_guard(dag_id: str, seen: dict[str, Any], after_s: float = RUN_DEADLINE_S) -> Iterator[None]:
    """Bound a ``dag.test()`` run of ``dag_id``: if it is not over after ``after_s`` seconds, fail its
    tasks waiting for input (``dag.test()`` waits for an answer for ever), so that the run ends; why is
    kept in ``seen["hang"]`` for the test to report."""
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    over = threading.Event()

    def watch() -> None:
        if over.wait(after_s):
            return
        seen["hang"] = (
            f"the DAG run {dag_id} was not over after {after_s:.0f} s and its task still waited for input: "
            "the answer was lost (or never given); the watchdog failed the task so that dag.test() returns"
        )
        while not over.wait(0.5):  # the task may park after the deadline: keep failing it until the run ends
            assert settings.Session is not None
            with settings.Session() as session:
                for ti in session.scalars(
                    select(TaskInstance).where(
                        TaskInstance.dag_id == dag_id, TaskInstance.state == TaskInstanceState.AWAITING_INPUT
                    )
                ):
                    ti.state = TaskInstanceState.FAILED
                session.commit()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        over.set()
        thread.join(5)


@pytest.mark.airflow_db
@pytest.mark.timeout(RUN_DEADLINE_S + 90, method="thread")  # if even the watchdog cannot end the run
@pytest.mark.parametrize("chosen", ["Reject", "Approve"])
def test_the_approval_step_gates_the_second_slice_in_a_dag_run(
    chosen: str,
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    live_receiver: tuple[str, Ledger],
) -> None:
    wire(sandbox, live_receiver[0], {"delivered": 1.0})
    dag_id = f"wamm_test_canary_approval_{chosen.lower()}"
    seen: dict[str, Any] = {}
    responder = respond_when_asked(dag_id, chosen, seen, sandbox)

    with hang_guard(dag_id, seen):
        state, tis, xcoms = run_dag(approval_dag(dag_id, 50))
    responder.join(5)

    assert "hang" not in seen, seen["hang"]
    assert "error" not in seen and seen["options"] == ["Approve", "Reject"]
    sends = sandbox.sends_per_recipient()
    assert 0 < seen["canary"] < 50 and f"| messages sent | {seen['canary']} |" in seen["body"]
    assert set(sends.values()) == {1}
    if chosen == "Reject":
        assert (state, tis["send"]) == ("failed", "failed")
        assert len(sends) == seen["canary"]  # the first slice only
    else:
        assert (state, tis["send"]) == ("success", "success"), tis
        assert len(sends) == 50 and xcoms[("send", -1)]["rollout"]["gates"][0]["approval"]["by"] == "ana"


@pytest.mark.airflow_db
@pytest.mark.timeout(120, method="thread")  # without the watchdog, dag.test() would wait for ever
def test_a_lost_answer_fails_the_dag_run_test_instead_of_hanging_it(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    live_receiver: tuple[str, Ledger],
) -> None:
    wire(sandbox, live_receiver[0], {"delivered": 1.0})
    dag_id = "wamm_test_canary_approval_lost"
    seen: dict[str, Any] = {}

    with hang_guard(dag_id, seen, after_s=3):  # nobody answers
        state, tis, _xcoms = run_dag(approval_dag(dag_id, 50))

    assert "was not over after 3 s" in seen["hang"] and "answer was lost" in seen["hang"]
    assert (state, tis["send"]) == ("failed", "failed")
    assert 0 < len(sandbox.sends_per_recipient()) < 50  # the first slice only
