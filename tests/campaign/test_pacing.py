"""The Pacer on its own: the cap in every one-second window under a burst, the throttle cut and its
recovery, a cap changed from outside, and a stop that interrupts a wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_wamm.campaign.pacing import Pacer, SendWindow, Stopped
from airflow_provider_wamm.campaign.sender import CampaignSettings
from airflow_provider_wamm.graph.errors import ConfigurationError


def max_in_window(stamps: list[float], window_s: float) -> int:
    """Most stamps in any half-open window of ``window_s`` seconds."""
    stamps = sorted(stamps)
    best = start = 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacer(cap: float = 100.0, *, clock: Callable[[], float] = time.monotonic, **kw: Any) -> Pacer:
    options: dict[str, Any] = {
        "floor": 5.0,
        "headroom": 0.0,
        "throttle_share": 0.2,
        "recovery_s": 10.0,
        "stop": threading.Event(),
    }
    options.update(kw)
    return Pacer(cap, clock=clock, **options)


@pytest.mark.parametrize("guarded", [True, False])
def test_a_burst_after_a_pause_never_puts_more_than_the_cap_in_a_second(
    monkeypatch: pytest.MonkeyPatch, guarded: bool
) -> None:
    """40 threads send as fast as the pacer lets them; a pause holds them all up, then lets them go."""
    gate = threading.Event()
    gate.set()
    original = Pacer.sleep_unless_stopped

    def paused_sleep(self: Pacer, seconds: float) -> None:
        original(self, seconds)
        gate.wait()

    monkeypatch.setattr(Pacer, "sleep_unless_stopped", paused_sleep)
    if not guarded:  # the same burst without the window: shows the test catches its absence
        monkeypatch.setattr(SendWindow, "wait_turn", lambda self, sleep: None)
    pace = pacer(50.0, headroom=0.02)  # paced at 49/s, at most 49 in any second
    assert pace.window_limit == 49
    stamps: list[float] = []
    deadline = time.monotonic() + 2.4

    def sender() -> None:
        while time.monotonic() < deadline:
            pace.wait_turn()
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=sender) for _ in range(40)]
    for thread in threads:
        thread.start()
    time.sleep(0.7)
    gate.clear()
    time.sleep(0.6)
    gate.set()
    for thread in threads:
        thread.join()
    if guarded:
        # Each stamp is taken just after admission: allow a hair of scheduling slack in the window.
        assert max_in_window(stamps, 1.0 - 0.002) <= 49
        assert len(stamps) >= 80  # and it does let sends through at about the pace
    else:
        assert max_in_window(stamps, 1.0) > 60


def test_a_real_share_of_throttles_halves_the_rate_once_and_quiet_brings_it_back() -> None:
    clock = FakeClock()
    pace = pacer(100.0, clock=clock)
    for _ in range(10):
        pace.on_answer()
    assert pace.on_throttle() is None and pace.on_throttle() is None  # fewer than three
    assert pace.on_throttle() == 50.0
    assert pace.rate == 50.0 and pace.window_limit == 50 and pace.cap == 100.0
    clock.now += 0.5
    assert pace.on_throttle() is None and pace.rate == 50.0  # one cut per burst
    now = clock.now
    assert pace.tick(now + 5) is None  # not quiet long enough
    assert pace.tick(now + 10) == 62.5
    assert pace.tick(now + 15) is None  # quiet again after each raise
    assert pace.tick(now + 20) == 78.125
    assert pace.tick(now + 30) == pytest.approx(97.65625)
    assert pace.tick(now + 40) == 100.0  # never above the cap
    assert pace.tick(now + 50) is None


def test_isolated_throttles_keep_the_pace() -> None:
    clock = FakeClock()
    pace = pacer(100.0, clock=clock)
    for _ in range(100):
        pace.on_answer()
    for _ in range(10):
        assert pace.on_throttle() is None  # 10 of 100 answers: under a 20 % share
    assert pace.rate == 100.0
    clock.now += 1.0  # a new second: counts start again
    pace.on_answer()
    assert pace.on_throttle() is None and pace.on_throttle() is None and pace.on_throttle() == 50.0


def test_the_rate_never_drops_below_the_floor() -> None:
    clock = FakeClock()
    pace = pacer(16.0, clock=clock, floor=5.0)
    rates = []
    for _ in range(4):
        clock.now += 1.0
        for _ in range(3):
            pace.on_answer()
            lowered = pace.on_throttle()
        rates.append(lowered)
    assert rates == [8.0, 5.0, None, None] and pace.rate == 5.0


def test_set_cap_lowers_at_once_and_raises_unless_recovering() -> None:
    clock = FakeClock()
    pace = pacer(100.0, clock=clock, headroom=0.02)
    pace.set_cap(40.0)
    assert pace.rate == 40.0 and pace.cap == 40.0 and pace.window_limit == 39
    pace.set_cap(120.0)
    assert pace.rate == 120.0 and pace.window_limit == 117
    for _ in range(3):
        pace.on_answer()
        pace.on_throttle()
    assert pace.rate == 60.0
    pace.set_cap(200.0)  # recovering from throttling: the recovery climbs to the new cap
    assert pace.rate == 60.0 and pace.cap == 200.0
    assert pace.tick(clock.now + 10) == 75.0
    pace.set_cap(30.0)  # lower than the rate in force: at once
    assert pace.rate == 30.0 and pace.tick(clock.now + 100) is None
    pace.set_cap(0)  # zero holds (a run waiting for its share of the number's cap)
    assert pace.waiting_for_share and pace.rate == 30.0
    with pytest.raises(ConfigurationError, match="positive"):
        pace.set_cap(-1)


def test_a_lower_cap_slows_the_sends_down_at_once() -> None:
    pace = pacer(1000.0)
    started = time.monotonic()
    for _ in range(20):
        pace.wait_turn()
    assert time.monotonic() - started < 0.1
    pace.set_cap(20.0)
    started = time.monotonic()
    for _ in range(6):
        pace.wait_turn()
    assert time.monotonic() - started >= 5 / 20 - 0.01


def test_a_stop_interrupts_a_wait_for_the_next_slot() -> None:
    stop = threading.Event()
    pace = pacer(0.5, floor=0.5, stop=stop)  # one send every two seconds
    pace.wait_turn()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        pace.wait_turn()
    assert time.monotonic() - started < 1.0


def test_the_campaign_settings_make_the_pacer() -> None:
    settings = CampaignSettings(
        campaign_id="c",
        template_name="t",
        language="en_US",
        max_messages_per_second=80,
        rate_headroom=0.1,
    )
    pace = Pacer.for_campaign(settings, threading.Event())
    assert pace.rate == pace.cap == 80.0 and pace.window_limit == 72
