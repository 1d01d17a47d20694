"""A send task that waits, on a real Airflow: deferred for a send time, parked for a person's sign-off.

Two DAGs are added to the running deployment's dags folder (what a user does), then run through the
REST API:

* ``wamm_test_send_at``: half the recipients have a ``send_at`` some seconds ahead. The task sends the
  others, defers through ``SendWindowTrigger`` (the task instance is ``deferred`` while it waits, in the
  triggerer), resumes and sends the rest: everyone once, nobody before their time.
* ``wamm_test_canary_approval``: a canary whose first slice passes its gates asks for approval; the task
  instance is ``awaiting_input`` and the request, read through the REST API, shows the slice's numbers.
  ``Reject`` leaves the second slice unsent and fails the task; ``Approve`` sends it, everyone once.
"""

from __future__ import annotations

import collections
import textwrap
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.deployment.airflow_deployment import AirflowDeployment
from tests.deployment.rest import AirflowApi
from tests.deployment.services import wait_until

SEND_AT, CANARY = "wamm_test_send_at", "wamm_test_canary_approval"
#: Numbers of this module only (the ledger and the sandbox are shared with the other modules).
FIRST = {"send_at": 70_000, "Reject": 70_100, "Approve": 70_200}

DAGS = textwrap.dedent(
    '''
    """DAGs of the deployment suite's deferral tests: recipients made from the run's conf."""

    from datetime import UTC, datetime, timedelta

    from airflow.sdk import dag, task

    from airflow_provider_wamm.operators.marketing import MarketingMessageOperator


    def people(first, count, **fields):
        rows = range(first, first + count)
        return [{"phone": f"+49 151 {i:08d}", "first_name": "Ana", **fields} for i in rows]


    @dag(dag_id="wamm_test_send_at", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
    def send_at_dag():
        @task(show_return_value_in_logs=False)
        def pick(**context):
            conf = context["dag_run"].conf
            later = (datetime.now(UTC) + timedelta(seconds=conf["wait_s"])).isoformat()
            now_rows = people(conf["first"], conf["count"])
            return now_rows + people(conf["first"] + conf["count"], conf["count"], send_at=later)

        MarketingMessageOperator(
            task_id="send",
            template_name="welcome_named",
            language="en_US",
            recipients=pick(),
            body_parameters={"first_name": "{first_name}"},
            send_window=("00:00", "23:59"),
            send_at_field="send_at",
        )


    @dag(dag_id="wamm_test_canary_approval", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
    def canary_dag():
        @task(show_return_value_in_logs=False)
        def pick(**context):
            conf = context["dag_run"].conf
            return people(conf["first"], conf["count"])

        MarketingMessageOperator(
            task_id="send",
            template_name="welcome_named",
            language="en_US",
            recipients=pick(),
            body_parameters={"first_name": "{first_name}"},
            rollout=[0.3, 1.0],
            canary_settle=timedelta(seconds=10),
            canary_gates={"max_failure_rate": 1.0, "max_code_rates": {}},  # the person decides here
            canary_approval=True,
            canary_approval_timeout=timedelta(minutes=10),
        )


    send_at_dag()
    canary_dag()
    '''
)


def digits(i: int) -> str:
    return f"49151{i:08d}"


@pytest.fixture(scope="module")
def deferral_dags(deployment: AirflowDeployment) -> Iterator[AirflowApi]:
    """The two DAGs in the deployment's dags folder, parsed and unpaused."""
    (deployment.home / "dags" / "wamm_test_deferrals.py").write_text(DAGS, encoding="utf-8")
    deployment.wait_for_dags([SEND_AT, CANARY])
    api = deployment.require_api()
    for dag_id in (SEND_AT, CANARY):
        api.set_paused(dag_id, False)
    yield api
    deployment.end_all_runs([SEND_AT, CANARY])


def sent_to(deployment: AirflowDeployment, numbers: set[str]) -> collections.Counter[str]:
    """Messages the sandbox accepted for ``numbers``, per number."""
    return collections.Counter(m["to"] for m in deployment.require_sandbox().messages() if m["to"] in numbers)


def test_a_send_at_ahead_defers_the_task_then_everyone_is_messaged_once(
    deployment: AirflowDeployment, deferral_dags: AirflowApi
) -> None:
    api, first, count = deferral_dags, FIRST["send_at"], 5
    now_group = {digits(i) for i in range(first, first + count)}
    later_group = {digits(i) for i in range(first + count, first + 2 * count)}
    run_id = api.trigger(SEND_AT, {"first": first, "count": count, "wait_s": 20})["dag_run_id"]

    api.wait_task(SEND_AT, run_id, "send", {"deferred"}, timeout=120)
    waiting = sent_to(deployment, now_group | later_group)
    assert set(waiting) == now_group, "while deferred, only those without a send_at were messaged"

    run = api.wait_run(SEND_AT, run_id, timeout=180)
    assert run["state"] == "success", api.task_states(SEND_AT, run_id)
    assert sent_to(deployment, now_group | later_group) == dict.fromkeys(now_group | later_group, 1)
    later = datetime.fromisoformat(api.xcom(SEND_AT, run_id, "pick")[-1]["send_at"]).timestamp()
    arrivals = [
        float(m["timestamp"]) for m in deployment.require_sandbox().messages() if m["to"] in later_group
    ]
    assert min(arrivals) >= later, "nobody is messaged before their send_at"
    summary = api.xcom(SEND_AT, run_id, "send")
    assert summary["send_window"]["rounds"] == 2, summary
    assert (
        summary["accepted"] + summary.get("already_done", 0) == 2 * count or summary["accepted"] == count
    ), summary


def parked_noted(deployment: AirflowDeployment, ti_id: str) -> None:
    """Until the scheduler's log says it saw the end of the workload that parked task instance ``ti_id``."""
    log = deployment.services["scheduler"].log

    def noted() -> bool:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        return any(f"ti_id={ti_id}" in line and "state=awaiting_input" in line for line in lines)

    wait_until(noted, 60, "the scheduler to note the parked task", interval=0.5)


def hitl_path(run_id: str) -> str:
    return f"/dags/{CANARY}/dagRuns/{run_id}/taskInstances/send/-1/hitlDetails"


@pytest.mark.parametrize("chosen", ["Reject", "Approve"])
def test_the_approval_step_gates_the_second_slice(
    chosen: str, deployment: AirflowDeployment, deferral_dags: AirflowApi
) -> None:
    api, first, count = deferral_dags, FIRST[chosen], 40
    everyone = {digits(i) for i in range(first, first + count)}
    run_id = api.trigger(CANARY, {"first": first, "count": count})["dag_run_id"]

    ti_id = api.wait_task(CANARY, run_id, "send", {"awaiting_input"}, timeout=180)["id"]
    canary = sent_to(deployment, everyone)
    request: dict[str, Any] = api.call("GET", hitl_path(run_id))
    assert 0 < len(canary) < count and set(canary.values()) == {1}
    assert request["options"] == ["Approve", "Reject"] and request["response_received"] is False
    assert f"| messages sent | {len(canary)} |" in request["body"]

    # A person answers after the scheduler has taken note that the workload which parked the task ended:
    # Airflow 3.3's scheduler fails a task instance that an answer queued again before that note (the
    # LocalExecutor's report can come seconds late on a busy machine).
    parked_noted(deployment, ti_id)
    api.call("PATCH", hitl_path(run_id), json={"chosen_options": [chosen]})
    run = api.wait_run(CANARY, run_id, timeout=180)

    reports = api.xcom(CANARY, run_id, "send", key="canary")
    assert reports[-1].get("approval", {}).get("chosen") == chosen, (run["state"], reports)
    assert reports[-1]["approval"]["by"] == "admin" and reports[-1]["passed"] is True
    if chosen == "Reject":
        assert run["state"] == "failed"
        assert api.task_instance(CANARY, run_id, "send")["state"] == "failed"
        assert sent_to(deployment, everyone) == canary, "the second slice was never sent"
    else:
        assert run["state"] == "success", api.task_states(CANARY, run_id)
        assert sent_to(deployment, everyone) == dict.fromkeys(everyone, 1)
