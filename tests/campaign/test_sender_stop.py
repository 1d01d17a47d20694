"""A campaign stopped from outside through its CampaignControl (as a killed Airflow task does), then
resumed: answers in flight recorded, the rest released, nobody lost, nobody sent twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.control import CampaignControl, StopEvent
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.loop_pool import LoopPool
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.result import CampaignResult, CampaignStopped
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.campaign.workers import WorkerPool
from airflow_provider_wamm.graph.client import GraphClient, SendResult
from airflow_provider_wamm.sandbox import Sandbox
from tests.campaign.test_sender import assert_accounted, digits, rows, settings


class BusyClient:
    """Counts the requests inside the client at any moment, and notes that count when told to."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.busy = 0
        self.started = 0

    def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> SendResult:
        with self.lock:
            self.busy += 1
            self.started += 1
        try:
            return self.client.send_marketing_message(payload, retry=retry)
        finally:
            with self.lock:
                self.busy -= 1


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[GraphClient]:
    sandbox.configure(mps_cap=None)
    c = GraphClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        base_url=sandbox.url,
        max_retries=0,
        timeout=10.0,
    )
    yield c
    c.close()


def stop_when_recorded(
    sandbox: Sandbox, control: CampaignControl, count: int, busy: BusyClient
) -> tuple[threading.Thread, dict[str, Any]]:
    """Stop the campaign from another thread once the sandbox recorded ``count`` messages; the returned
    dict gets the requests in flight at that moment and the time of the stop."""
    seen: dict[str, Any] = {}

    def watch() -> None:
        deadline = time.monotonic() + 60
        while len(sandbox.messages) < count and time.monotonic() < deadline:
            time.sleep(0.002)
        with busy.lock:
            seen["in_flight"] = busy.busy
            seen["started"] = busy.started
            control.stop("stopped by the test")
        seen["at"] = L.utcnow()

    thread = threading.Thread(target=watch, name="stopper", daemon=True)
    thread.start()
    return thread, seen


def stopped_run(
    sandbox: Sandbox, client: GraphClient, ledger: Ledger, campaign: str, count: int, **kw: Any
) -> tuple[CampaignResult, dict[str, Any], BusyClient]:
    """Run ``campaign`` over 400 recipients and stop it after ``count`` recorded messages."""
    control = CampaignControl()
    busy = BusyClient(client)
    watcher, seen = stop_when_recorded(sandbox, control, count, busy)
    cfg = settings(campaign, max_messages_per_second=100.0, concurrency=8, batch_size=50, **kw)
    with pytest.raises(CampaignStopped) as info:
        run_campaign(rows(400), client=busy, ledger=ledger, settings=cfg, control=control)
    watcher.join()
    result = info.value.result
    assert result.stopped and result.stop_reason == "stopped by the test"
    assert "stopped (stopped by the test)" in str(info.value) and f"{result.unknown} unknown" in str(
        info.value
    )
    assert_accounted(result)
    assert ledger.list_runs(campaign)[0]["state"] == "killed"
    assert L.CLAIMED not in send_counts(ledger, campaign)  # recorded or released, nothing left claimed
    return result, seen, busy


def test_a_stop_records_answers_in_flight_releases_the_rest_and_a_rerun_sends_everyone_once(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    sandbox.configure(latency_s=0.02)
    first, seen, busy = stopped_run(sandbox, client, sqlite_ledger, "stop-fast", 100)
    # Every request in flight answered within the grace: recorded, none unknown.
    assert first.unknown == 0 and first.released > 0 and first.accepted == len(sandbox.messages)
    assert busy.started - seen["started"] <= 1  # no new request after the stop (a worker may be mid-call)
    assert send_counts(sqlite_ledger, "stop-fast") == {"accepted": first.accepted}

    second = run_campaign(rows(400), client=client, ledger=sqlite_ledger, settings=settings("stop-fast"))
    assert second.already_done == first.accepted and second.accepted == 400 - first.accepted
    sends = sandbox.sends_per_recipient()
    assert len(sends) == 400 and set(sends.values()) == {1}
    assert send_counts(sqlite_ledger, "stop-fast") == {"accepted": 400}


def test_requests_still_in_flight_after_the_grace_are_unknown_and_never_sent_again(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    # Answers take 1.5 s (the sandbox records each message first), the grace is 0.3 s.
    sandbox.configure(latency_s=1.5)
    first, seen, _ = stopped_run(sandbox, client, sqlite_ledger, "stop-slow", 20, stop_grace_s=0.3)
    assert 0 < first.unknown <= seen["in_flight"] <= max(8, first.peak_concurrency)
    rows_by = {r["recipient"]: r for r in sqlite_ledger.iter_sends("stop-slow")}
    unknown = {r for r, row in rows_by.items() if row["state"] == L.UNKNOWN}
    assert len(unknown) == first.unknown
    assert all("in flight when the run stopped" in rows_by[r]["error_details"] for r in unknown)
    assert unknown <= set(sandbox.sends_per_recipient())  # they did reach "Meta": never sent again

    sandbox.configure(latency_s=0.0)
    second = run_campaign(rows(400), client=client, ledger=sqlite_ledger, settings=settings("stop-slow"))
    assert second.unknown == 0 and second.already_done == first.sent + first.unknown
    sends = sandbox.sends_per_recipient()
    assert len(sends) == 400 and set(sends.values()) == {1}
    assert send_counts(sqlite_ledger, "stop-slow") == {
        "accepted": 400 - len(unknown),
        "unknown": len(unknown),
    }


def test_the_heartbeat_goes_on_during_the_grace(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    sandbox.configure(latency_s=3.0)
    first, seen, _ = stopped_run(
        sandbox, client, sqlite_ledger, "stop-beat", 8, stop_grace_s=1.5, heartbeat_interval_s=0.1
    )
    assert first.unknown > 0  # the grace ran out with requests in flight
    run = sqlite_ledger.list_runs("stop-beat")[0]
    beat = L.as_utc(run["heartbeat_at"])
    assert beat is not None and (beat - seen["at"]).total_seconds() >= 1.0


def test_a_stop_before_anything_was_sent_and_in_a_dry_run(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    control = CampaignControl()
    control.stop("early")
    control.stop("a second reason is ignored")
    assert control.stop_requested and control.reason == "early" and "early" in repr(control)
    with pytest.raises(CampaignStopped) as info:
        run_campaign(
            rows(50), client=client, ledger=sqlite_ledger, settings=settings("early"), control=control
        )
    assert info.value.result.sent == 0 and len(sandbox.messages) == 0
    assert send_counts(sqlite_ledger, "early") == {}
    with pytest.raises(CampaignStopped) as dry:
        run_campaign(
            rows(50),
            client=None,
            ledger=sqlite_ledger,
            settings=settings("dry", dry_run=True),
            control=control,
        )
    assert dry.value.result.stopped and sqlite_ledger.list_runs("dry") == []


def test_a_stop_after_the_last_answer_does_not_fail_a_finished_run(
    client: GraphClient, sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop asked once the work is done (the workers being let go) finds the run finished."""
    control = CampaignControl()

    def stop_then(close: Callable[[Any, float], None]) -> Callable[[Any, float], None]:
        def stop_then_close(pool: Any, timeout: float = 60.0) -> None:
            control.stop("too late")
            close(pool, timeout)

        return stop_then_close

    for engine in (WorkerPool, LoopPool):
        monkeypatch.setattr(engine, "close", stop_then(engine.close))
    result = run_campaign(
        rows(5), client=client, ledger=sqlite_ledger, settings=settings("late"), control=control
    )
    assert control.stop_requested and result.accepted == 5 and not result.stopped
    assert sqlite_ledger.list_runs("late")[0]["state"] == "finished"


def test_the_stop_event_is_set_the_moment_the_control_asks() -> None:
    control = CampaignControl()
    event = StopEvent(control)
    assert not event.is_set()
    control.stop()
    assert event.is_set() and not event.wait(0)  # workers see it at once; waiters wake when the run sets it
    event.set()
    assert event.wait(0) and StopEvent().is_set() is False


def test_stop_grace_is_validated() -> None:
    from airflow_provider_wamm.graph.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="stop_grace_s"):
        settings("x", stop_grace_s=-1.0).validate()
    settings("x", stop_grace_s=0).validate()


def test_public_names_of_the_stop() -> None:
    from airflow_provider_wamm import campaign
    from airflow_provider_wamm.campaign import control, result, sender

    assert sender.CampaignControl is control.CampaignControl is campaign.CampaignControl
    assert sender.CampaignStopped is result.CampaignStopped is campaign.CampaignStopped
    assert digits(1) == "4915100000001"
