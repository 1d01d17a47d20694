"""The sharded example on CeleryExecutor: Redis as the broker, two ``airflow celery worker`` processes.

The shards run on whichever worker takes them, at the same time, sharing one ledger in PostgreSQL and one
phone number. Their union must message every valid recipient exactly once, and together they must never
go above the number's cap in any one-second window of the sandbox's arrival times. The sandbox's own cap
is lifted for this test, so it records every request the shards make instead of refusing the excess
(with its cap on, its record could never show more than the cap).

The sandbox stamps a request when its event loop reads it. On a busy machine that loop sometimes runs
nothing for a tenth of a second or more; the requests that came meanwhile are then stamped together
when it gets back, and a second that starts there holds the shards' steady pace plus that bunch. The
sandbox records those deaf spells, and the check leaves out the windows that overlap one (most windows
remain: the test says how many), so what it measures is the shards' pace, not the sandbox's pauses.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_wamm.sandbox.state import max_window_count
from tests.deployment.airflow_deployment import AirflowDeployment, de_digits, de_number
from tests.deployment.conftest import SUMMARY, TIMINGS, require
from tests.deployment.services import wait_until

DAG_ID = "wamm_sharded_campaign"
CAP = 80  # the connection's max_messages_per_second
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


@dataclass
class CeleryCampaign:
    """One run of the sharded example on the Celery workers, and what the sandbox recorded."""

    run: dict[str, Any]
    shards: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    worker_lines: dict[str, int]
    deaf_spells: list[tuple[float, float]]
    """When the sandbox's event loop ran nothing (``monotonic`` seconds, as the messages' stamps)."""

    @property
    def stamps(self) -> list[float]:
        """The messages' arrival times, in order."""
        return sorted(float(m["monotonic"]) for m in self.messages)

    def heard_share(self) -> float:
        """Share of the one-second windows (one ending at each arrival) that overlap no deaf spell."""
        stamps = self.stamps
        heard = [t for t in stamps if not any(s <= t and e > t - 1.0 for s, e in self.deaf_spells)]
        return len(heard) / len(stamps) if stamps else 0.0


@pytest.fixture(scope="module")
def celery_campaign(celery_deployment: AirflowDeployment) -> CeleryCampaign:
    deployment = celery_deployment
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    ids = range(FIRST, FIRST + CUSTOMERS)
    deployment.seed_customers([(de_number(i), f"Ana{i}", "10", f"s-{i}", "DE", "2026-01-01") for i in ids])
    sandbox.reset()
    sandbox.configure(mps_cap=None)
    try:
        api.set_paused(DAG_ID, False)
        run = api.trigger(DAG_ID)
        run = api.wait_run(DAG_ID, run["dag_run_id"], timeout=600)
    finally:
        sandbox.configure(mps_cap=CAP)
    shards = []
    if run["state"] == "success":
        shards = [api.xcom(DAG_ID, run["dag_run_id"], "send", map_index=i) for i in range(4)]
    messages = sandbox.messages()
    deaf = [(float(s), float(e)) for s, e in sandbox.counts()["deaf_spells"]]
    # Each worker logs the task instances it ran.
    workers = ("celery-worker-1", "celery-worker-2")
    lines = {n: deployment.services[n].tail(10**7).count(DAG_ID) for n in workers}
    campaign = CeleryCampaign(run, shards, messages, lines, deaf)
    if messages:
        stamps = campaign.stamps
        seconds = stamps[-1] - stamps[0]
        TIMINGS["celery campaign"] = seconds
        SUMMARY.append(
            f"celery shards: {len(messages)} messages in {seconds:.1f} s, peak {max_window_count(stamps)}/s "
            f"in any second, {max_window_count(stamps, deaf=deaf)}/s in the seconds the sandbox heard "
            f"all along ({campaign.heard_share():.0%} of them; deaf spells: "
            f"{', '.join(f'{e - s:.3f} s' for s, e in deaf) or 'none'})"
        )
    return campaign


def test_shards_on_two_celery_workers_message_everyone_once(
    celery_deployment: AirflowDeployment, celery_campaign: CeleryCampaign
) -> None:
    api, run = celery_deployment.require_api(), celery_campaign.run
    assert run["state"] == "success", api.task_states(DAG_ID, run["dag_run_id"])
    per_recipient = collections.Counter(m["to"] for m in celery_campaign.messages)
    assert per_recipient == dict.fromkeys({de_digits(i) for i in range(FIRST, FIRST + CUSTOMERS)}, 1)
    shards = celery_campaign.shards
    assert sum(s["accepted"] for s in shards) == CUSTOMERS and all(s["accepted"] for s in shards)
    assert sum(s["failed"] + s["unknown"] for s in shards) == 0
    assert sum(celery_campaign.worker_lines.values()) > 0, celery_campaign.worker_lines


def test_shards_together_stay_under_the_numbers_cap(celery_campaign: CeleryCampaign) -> None:
    campaign = celery_campaign
    assert campaign.messages
    heard = campaign.heard_share()
    assert heard >= 0.5, f"the sandbox was deaf in {1 - heard:.0%} of the seconds: {campaign.deaf_spells}"
    peak = max_window_count(campaign.stamps, deaf=campaign.deaf_spells)
    assert peak <= CAP, f"{peak} messages arrived within one second the sandbox heard all along (cap {CAP})"
