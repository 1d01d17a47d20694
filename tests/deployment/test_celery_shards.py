"""The sharded example on CeleryExecutor: Redis as the broker, two ``airflow celery worker`` processes.

The shards run on whichever worker takes them, at the same time, sharing one ledger in PostgreSQL and one
phone number. Their union must message every valid recipient exactly once, and together they must never
go above the number's cap in any one-second window of the sandbox's arrival times.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import pytest

from tests.deployment.airflow_deployment import AirflowDeployment, de_digits, de_number
from tests.deployment.conftest import TIMINGS, require
from tests.deployment.services import wait_until

DAG_ID = "wamm_sharded_campaign"
CAP = 80  # the sandbox's cap and the connection's max_messages_per_second
CUSTOMERS = 1600
FIRST = 70_000  # numbers used by this module only


@pytest.fixture(scope="module")
def celery_deployment(deployment: AirflowDeployment) -> Iterator[AirflowDeployment]:
    """The shared deployment switched to CeleryExecutor with two workers; switched back afterwards."""
    require("redis")
    deployment.stop_component("scheduler")
    deployment.executor = "CeleryExecutor"
    try:
        deployment.start_component("scheduler")
        for n in (1, 2):
            deployment.start_component(
                "celery worker",
                "--queues", deployment.queue,
                "--concurrency", "4",
                "--celery-hostname", f"wamm{n}-{deployment.queue}@%h",
                "--skip-serve-logs",
                name=f"celery-worker-{n}",
            )  # fmt: skip
        for n in (1, 2):
            worker = deployment.services[f"celery-worker-{n}"]
            wait_until(lambda w=worker: "ready" in w.tail(20000) or not w.alive(), 120, f"celery worker {n}")
            assert worker.alive(), worker.tail()
        yield deployment
    finally:
        for name in ("celery-worker-1", "celery-worker-2", "scheduler"):
            deployment.stop_component(name)
        deployment.executor = "LocalExecutor"
        deployment.start_component("scheduler")


def max_per_second(timestamps: list[float]) -> int:
    """The most arrivals in any one-second window [t, t + 1) starting at an arrival."""
    times, best, start = sorted(timestamps), 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_sharded_campaign_on_two_celery_workers(celery_deployment: AirflowDeployment) -> None:
    deployment = celery_deployment
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    ids = range(FIRST, FIRST + CUSTOMERS)
    deployment.seed_customers([(de_number(i), f"Ana{i}", "10", f"s-{i}", "DE", "2026-01-01") for i in ids])
    sandbox.reset()
    api.set_paused(DAG_ID, False)
    run = api.trigger(DAG_ID)
    run = api.wait_run(DAG_ID, run["dag_run_id"], timeout=600)
    run_id = run["dag_run_id"]
    assert run["state"] == "success", api.task_states(DAG_ID, run_id)

    messages = sandbox.messages()
    per_recipient = collections.Counter(m["to"] for m in messages)
    assert per_recipient == dict.fromkeys({de_digits(i) for i in ids}, 1)
    shards = [api.xcom(DAG_ID, run_id, "send", map_index=i) for i in range(4)]
    assert sum(s["accepted"] for s in shards) == CUSTOMERS and all(s["accepted"] for s in shards)
    assert sum(s["failed"] + s["unknown"] for s in shards) == 0
    peak = max_per_second([float(m["timestamp"]) for m in messages])
    seconds = max(m["timestamp"] for m in messages) - min(m["timestamp"] for m in messages)
    TIMINGS["celery campaign"] = seconds
    assert peak <= CAP, f"{peak} messages arrived within one second (cap {CAP})"
    assert sandbox.counts()["errors"].get("130429", 0) == 0  # the sandbox never had to refuse one

    # Both workers took part (each logs the task instances it ran).
    ran = {name: svc.tail(10**7).count("wamm_sharded_campaign") for name, svc in deployment.services.items()}
    assert ran["celery-worker-1"] + ran["celery-worker-2"] > 0, ran
