"""A send task stopped mid-campaign, then resumed: nobody gets a second message, and what is not known
is reported as ``unknown``, never more than the requests that were in flight.

Two ways a running send task dies in a real deployment, each on a fresh run of
``wamm_sharded_campaign`` (shard 0 is the victim; the other shards keep sending):

* a person clears it in the UI (here through the REST API): Airflow stops the task and runs a new try;
* its process is killed (``SIGKILL``: the OOM killer, a lost machine), then the task is cleared.

The default pool is emptied while the victim is stopped, so no new try starts before the test has read
the sandbox's record and the ledger; restoring it lets the campaign resume. Checks, for the whole
campaign once the victim's new try has ended:

* every valid recipient got exactly one message, or the operator reports it ``unknown`` (at most one);
* a cleared task stops cleanly (``on_kill``): ``unknown`` is at most the requests in flight when it
  stopped (messages the sandbox accepted that the ledger had not recorded);
* a killed task cannot say what it had on the wire: the new try takes over exactly the claims it left
  (``unknown``), every request in flight at the kill is among them, and the others are at most the
  short lead of jobs handed to its workers ahead of their turn;
* the resumed try's log names every unknown recipient (masked).

The numbers seen are in each failure message and printed at the end of the session.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from dataclasses import asdict, dataclass

from airflow_provider_wamm.campaign.workers import READ_AHEAD_MAX_S, hand_over_lead
from airflow_provider_wamm.graph.recipients import mask_phone
from tests.deployment.airflow_deployment import AirflowDeployment, de_digits, de_number
from tests.deployment.conftest import SUMMARY
from tests.deployment.rest import FINISHED
from tests.deployment.services import wait_until

DAG_ID = "wamm_sharded_campaign"
VICTIM = 0  # the shard whose task is stopped
#: Numbers used by this module only (the ledger is shared with the other modules).
FIRST = {"clear": 50_000, "sigkill": 60_000}
CUSTOMERS = 2400  # about 30 s of sending at 80 msg/s across four shards


POOL_SLOTS = 128  # the default pool's size
CAP = 80  # the connection's max_messages_per_second, shared by the shards
SIGKILLED = "SIGKILL, then clear"


@dataclass
class Snapshot:
    """What the sandbox and the ledger say about the victim's shard once its try has ended, and what
    the resumed try reported."""

    sandbox_accepted: int
    ledger_accepted: int
    claimed_left: int
    in_flight: int
    unknown: int = -1
    skipped: int = -1
    recipients_without_message: int = -1
    second_messages: int = -1
    foreign_claimed: int = -1
    claimed_at_kill: frozenset[str] = frozenset()


def start_campaign(deployment: AirflowDeployment, first: int) -> tuple[str, set[str]]:
    """A run of the sharded example with a CRM of ``CUSTOMERS`` fresh numbers and a slow sandbox."""
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    rows = [
        (de_number(i), f"Ana{i}", "10", f"s-{i}", "DE", "2026-01-01") for i in range(first, first + CUSTOMERS)
    ]
    deployment.seed_customers(rows)
    sandbox.reset()
    sandbox.configure(latency_s=0.25)  # a few hundred ms, as Meta answers: many requests in flight
    api.set_paused(DAG_ID, False)
    run = api.trigger(DAG_ID)
    return run["dag_run_id"], {de_digits(i) for i in range(first, first + CUSTOMERS)}


def wait_victim_sending(deployment: AirflowDeployment, run_id: str) -> str:
    """Until the victim shard has recorded a good part of its messages; returns the campaign id."""
    campaign_id = f"{DAG_ID}.send.{run_id}"

    def progressed() -> bool:
        states = collections.Counter(deployment.ledger_rows(campaign_id, VICTIM).values())
        return states["accepted"] >= 60

    wait_until(progressed, 360, "the victim shard's first messages", interval=0.3)
    return campaign_id


def snapshot(deployment: AirflowDeployment, campaign_id: str) -> Snapshot:
    """The victim shard after its try ended (answers that were on the wire have landed by then)."""
    time.sleep(3)
    ledger = deployment.ledger_rows(campaign_id, VICTIM)
    arrived = {m["to"] for m in deployment.require_sandbox().messages()} & set(ledger)
    recorded = {r for r, s in ledger.items() if s == "accepted"}
    claimed = {r for r, s in ledger.items() if s == "claimed"}
    return Snapshot(
        sandbox_accepted=len(arrived),
        ledger_accepted=len(recorded),
        claimed_left=len(claimed),
        in_flight=len(arrived - recorded),
        claimed_at_kill=frozenset(claimed),
    )


def resume_and_check(
    deployment: AirflowDeployment,
    run_id: str,
    campaign_id: str,
    expected: set[str],
    seen: Snapshot,
    scenario: str,
) -> None:
    """Let the victim's new try run, then check the whole campaign against the sandbox's record."""
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    api.set_pool_slots("default_pool", POOL_SLOTS)
    for map_index in range(4):  # the report waits for statuses of messages that may never have been sent
        api.wait_task(DAG_ID, run_id, "send", FINISHED, 300, map_index)
    sandbox.configure(latency_s=0.05)
    ti = api.task_instance(DAG_ID, run_id, "send", VICTIM)
    result = api.xcom(DAG_ID, run_id, "send", map_index=VICTIM) if ti["state"] == "success" else {}
    seen.unknown = int(result.get("unknown", -1)) + int(result.get("stale_unknown", 0))
    seen.skipped = int(result.get("skipped", -1))
    seen.foreign_claimed = int(result.get("foreign_claimed", -1))
    per_recipient = collections.Counter(m["to"] for m in sandbox.messages())
    seen.second_messages = sum(1 for n in per_recipient.values() if n > 1)
    seen.recipients_without_message = sum(1 for r in expected if not per_recipient[r])
    ledger_now = deployment.ledger_rows(campaign_id)
    became = collections.Counter(ledger_now.get(r, "absent") for r in seen.claimed_at_kill)
    numbers = f"numbers seen: { {k: v for k, v in asdict(seen).items() if k != 'claimed_at_kill'} }, "
    numbers += f"claims at the kill became {dict(became)}"
    SUMMARY.append(f"crash recovery, {scenario}: {numbers}")
    assert ti["state"] == "success", f"the victim's new try ended {ti['state']}; {numbers}"
    ledger = deployment.ledger_rows(campaign_id)
    # What the operator reported unknown, less those a status webhook resolved since (they got it).
    unknown = {r for r, state in ledger.items() if state == "unknown"}
    reported = unknown | deployment.resolved_rows(campaign_id)
    wrong = {r for r in expected if per_recipient[r] != 1 and not (r in unknown and per_recipient[r] <= 1)}
    assert not wrong, f"{len(wrong)} recipients got no message or several and are not unknown; {numbers}"
    assert seen.unknown == len(reported), numbers
    if scenario == SIGKILLED:  # what was claimed at the kill is unknown, and covers all that was on the wire
        assert seen.unknown == seen.claimed_left, numbers
        assert seen.in_flight <= seen.claimed_left, numbers
        # Beyond the requests on the wire, only a short lead of the pace was claimed (longer right
        # before a read of the input, by what the read takes), never a read-ahead of the input.
        assert seen.unknown <= seen.in_flight + hand_over_lead(CAP, READ_AHEAD_MAX_S), numbers
    else:
        assert seen.unknown <= seen.in_flight, numbers
    log = api.log(DAG_ID, run_id, "send", ti["try_number"], VICTIM)
    unnamed = [r for r in reported if mask_phone(r) not in log]
    assert not unnamed, f"the resumed try's log does not name {len(unnamed)} unknown recipients; {numbers}"


def test_clearing_the_running_send_task_resumes_without_a_second_message(
    deployment: AirflowDeployment,
) -> None:
    api = deployment.require_api()
    run_id, expected = start_campaign(deployment, FIRST["clear"])
    campaign_id = wait_victim_sending(deployment, run_id)
    api.set_pool_slots("default_pool", 0)  # no new try until the test has looked
    try:
        api.clear(DAG_ID, run_id, [["send", VICTIM]])
        stopped = {"up_for_retry", "failed", "success", "scheduled", "queued", "none", None}
        api.wait_task(DAG_ID, run_id, "send", stopped, 120, VICTIM)
        seen = snapshot(deployment, campaign_id)
    finally:
        api.set_pool_slots("default_pool", POOL_SLOTS)
    resume_and_check(deployment, run_id, campaign_id, expected, seen, "clear mid-campaign")


def test_sigkill_of_the_send_task_then_clear_resumes_without_a_second_message(
    deployment: AirflowDeployment,
) -> None:
    api = deployment.require_api()
    run_id, expected = start_campaign(deployment, FIRST["sigkill"])
    campaign_id = wait_victim_sending(deployment, run_id)
    pid = api.task_instance(DAG_ID, run_id, "send", VICTIM)["pid"]
    assert pid, "the running task instance reports no pid"
    os.kill(int(pid), signal.SIGKILL)
    api.wait_task(DAG_ID, run_id, "send", {"failed", "up_for_retry"}, 180, VICTIM)
    seen = snapshot(deployment, campaign_id)
    api.clear(DAG_ID, run_id, [["send", VICTIM]])
    resume_and_check(deployment, run_id, campaign_id, expected, seen, SIGKILLED)
