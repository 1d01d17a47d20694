"""The sender's pacing against the real sandbox: under the cap in every one-second window, even after a
pause, with single-attempt sends (``retry=False``: the client's bulk send path)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from airflow_provider_wamm.campaign.intake import Intake
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.pacing import Pacer, SendWindow
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.client import GraphClient, SendResult
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.sandbox import Sandbox
from tests.campaign.test_sender import SPRING, rows


def settings(campaign_id: str, **kw: Any) -> CampaignSettings:
    base: dict[str, Any] = {
        "template_name": "spring_sale",
        "language": "en_US",
        "personaliser": SPRING,
        "concurrency": 32,
        "batch_size": 100,
        "progress_interval_s": 60.0,
    }
    base.update(kw)
    return CampaignSettings(campaign_id=campaign_id, **base)


class CountingClient(GraphClient):
    """A GraphClient counting single-attempt sends (``retry=False``, the bulk path) and retrying ones,
    and when each single-attempt send left.

    Windows are measured on these client-side times: the sandbox of these tests runs in this process,
    where its event loop competes with the sender's threads for the interpreter lock, so its own
    arrival times bunch up (the benchmarks run it in a process of its own).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.single = 0
        self.retrying = 0
        self.stamps: list[float] = []
        self.lock = threading.Lock()

    def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> SendResult:
        with self.lock:
            if retry:
                self.retrying += 1
            else:
                self.single += 1
                self.stamps.append(time.monotonic())
        return super().send_marketing_message(payload, retry=retry)


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[CountingClient]:
    sandbox.configure(mps_cap=None, pair_limit=False)
    c = CountingClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        base_url=sandbox.url,
        max_retries=0,
        timeout=5.0,
    )
    yield c
    c.close()


def _max_window(stamps: list[float], window_s: float) -> int:
    stamps = sorted(stamps)
    best = start = 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_the_window_never_admits_more_than_its_limit() -> None:
    window = SendWindow(20, window_s=0.25)
    stamps: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 0.8

    def hammer() -> None:
        while time.monotonic() < deadline:
            window.wait_turn(time.sleep)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each stamp is taken just after admission, so allow a hair of scheduling slack in the window.
    assert _max_window(stamps, 0.25 - 0.002) <= 20
    assert len(stamps) >= 3 * 20  # and it does admit: about 20 per quarter second


def test_sends_are_single_attempts_and_stay_under_the_cap(
    sandbox: Sandbox, client: CountingClient, sqlite_ledger: Ledger
) -> None:
    cfg = settings("paced", max_messages_per_second=100.0)
    result = run_campaign(rows(250), client=client, ledger=sqlite_ledger, settings=cfg)
    assert result.accepted == 250 and client.single == 250 and client.retrying == 0
    assert result.final_rate == 100.0
    # Paced at 98/s with 2% headroom, and no window holds more than 98.
    assert _max_window(client.stamps, 1.0 - 0.002) <= 98
    assert result.messages_per_second > 80


def test_any_message_sender_is_used_with_single_attempts(
    sandbox: Sandbox, client: CountingClient, sqlite_ledger: Ledger
) -> None:
    class Plain:
        def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> SendResult:
            assert retry is False
            return client.send_marketing_message(payload, retry=retry)

    result = run_campaign(
        rows(50),
        client=Plain(),
        ledger=sqlite_ledger,
        settings=settings("plain", max_messages_per_second=500),
    )
    assert result.accepted == 50 and client.single == 50 and client.retrying == 0


@pytest.mark.parametrize("guarded", [True, False])
def test_a_pause_is_caught_up_without_bursting_over_the_cap(
    sandbox: Sandbox,
    client: CountingClient,
    sqlite_ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    guarded: bool,
) -> None:
    """Workers held up in their rate-limit wait (as by a stop-the-world pause) all wake up overdue."""
    go = threading.Event()
    go.set()
    original: Callable[..., None] = Pacer.sleep_unless_stopped

    def paused_sleep(self: Any, seconds: float) -> None:
        original(self, seconds)
        go.wait()

    monkeypatch.setattr(Pacer, "sleep_unless_stopped", paused_sleep)
    if not guarded:  # shows what the window is for
        monkeypatch.setattr(SendWindow, "wait_turn", lambda self, sleep: None)

    def pause() -> None:
        time.sleep(0.8)
        go.clear()
        time.sleep(0.6)
        go.set()

    pauser = threading.Thread(target=pause)
    pauser.start()
    cfg = settings("pause", max_messages_per_second=100.0, concurrency=64)
    result = run_campaign(rows(260), client=client, ledger=sqlite_ledger, settings=cfg)
    pauser.join()
    assert result.accepted == 260
    if guarded:
        assert _max_window(client.stamps, 1.0 - 0.002) <= 98
    else:
        assert _max_window(client.stamps, 1.0) > 100  # over the cap


def test_rate_headroom_is_validated(sqlite_ledger: Ledger) -> None:
    with pytest.raises(ConfigurationError, match="rate_headroom"):
        run_campaign(
            [], client=None, ledger=sqlite_ledger, settings=settings("x", dry_run=True, rate_headroom=0.5)
        )


def test_the_collector_is_left_as_it_was(sqlite_ledger: Ledger) -> None:
    import gc

    assert gc.get_freeze_count() == 0
    run_campaign(rows(20), client=None, ledger=sqlite_ledger, settings=settings("gc", dry_run=True))
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a process that froze objects itself (as a forked worker has) keeps them frozen
    try:
        frozen = gc.get_freeze_count()
        run_campaign(rows(20), client=None, ledger=sqlite_ledger, settings=settings("gc2", dry_run=True))
        assert gc.get_freeze_count() > frozen // 2  # not unfrozen (objects freed meanwhile leave it)
    finally:
        gc.unfreeze()


def test_sends_held_back_by_the_window_go_one_at_a_time() -> None:
    window = SendWindow(5, window_s=0.3)
    stamps: list[float] = []
    lock = threading.Lock()

    def send() -> None:
        window.wait_turn(time.sleep)
        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    first, held = stamps[:5], stamps[5:]
    assert first[-1] - first[0] < 0.05  # room in the window: no waiting
    assert held[0] - first[0] >= 0.3 - 0.002  # the rest wait for the window ...
    gaps = [b - a for a, b in itertools.pairwise(held)]
    assert min(gaps) >= 0.3 / 5 - 0.005  # ... and leave one by one, not as a second burst


def slow_batches(n: int, batch: int, pause_s: float) -> Iterator[dict[str, Any]]:
    """``rows(n)``, the input pausing ``pause_s`` before each ``batch`` of them (a slow database)."""
    for i, row in enumerate(rows(n)):
        if i % batch == 0:
            time.sleep(pause_s)
        yield row


def test_a_slow_read_of_the_input_does_not_leave_the_sending_idle(
    sandbox: Sandbox, client: CountingClient, sqlite_ledger: Ledger
) -> None:
    """A read of a batch holds the hand-over up (the run claims nothing meanwhile): right before it,
    the run hands over as much more as the last read took, so the sending goes on at the pace.
    Without that, the pool runs dry a tenth of a second into each read of 0.3 s."""
    cfg = settings("slow-input", max_messages_per_second=200.0, batch_size=150, adaptive_concurrency=False)
    result = run_campaign(slow_batches(900, 150, 0.3), client=client, ledger=sqlite_ledger, settings=cfg)
    assert result.accepted == 900
    stamps = sorted(client.stamps)
    stalls = [round(b - a, 3) for a, b in itertools.pairwise(stamps[150:]) if b - a > 0.12]
    assert len(stalls) <= 1, stalls  # one read may come before its time is known; none stalls after


def test_the_first_reads_are_short_so_sending_starts_at_once(
    sandbox: Sandbox, client: CountingClient, sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run does not wait for a whole batch before its first send: its reads ask for 32 candidates,
    then twice as many each time, up to ``batch_size``."""
    asked: list[int] = []
    original = Intake.read_batch

    def read_batch(self: Intake, size: int) -> Any:
        asked.append(size)
        return original(self, size)

    monkeypatch.setattr(Intake, "read_batch", read_batch)
    cfg = settings("first-reads", max_messages_per_second=500.0, batch_size=200)
    result = run_campaign(rows(600), client=client, ledger=sqlite_ledger, settings=cfg)
    assert result.accepted == 600
    assert asked[:5] == [32, 64, 128, 200, 200], asked
