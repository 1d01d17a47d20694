"""TokenBucket: pacing with a fake clock (deterministic), rate changes, and threads."""

from __future__ import annotations

import math
import threading
import time

import pytest

from airflow_provider_wamm.graph import ConfigurationError, TokenBucket


class FakeClock:
    """A clock that only moves when someone sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def bucket(rate: float, capacity: float | None = None) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, capacity, clock=clock, sleep=clock.sleep), clock


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Most events in any half-open window [t, t + window)."""
    best = 0
    j = 0
    for i, t in enumerate(times):
        while t - times[j] >= window - 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize("rate", [1.0, 7.0, 80.0, 1000.0])
def test_rate_is_never_exceeded_in_any_one_second_window(rate: float) -> None:
    tb, clock = bucket(rate)
    n = int(rate * 5) + 1
    times = []
    for _ in range(n):
        tb.acquire()
        times.append(clock())
    assert max_in_window(times) <= math.ceil(rate)
    assert max_in_window(times) >= math.floor(rate)  # and it is not needlessly slow
    assert times[-1] - times[0] == pytest.approx((n - 1) / rate)


def test_fractional_rate() -> None:
    tb, clock = bucket(2.5)
    times = []
    for _ in range(26):
        tb.acquire()
        times.append(clock())
    assert times[-1] - times[0] == pytest.approx(10.0)
    assert max_in_window(times, 2.0) <= 5


def test_acquire_returns_seconds_waited() -> None:
    tb, clock = bucket(10)
    assert tb.acquire() == 0.0
    assert tb.acquire() == pytest.approx(0.1)
    clock.now += 5  # idle: next one is free again
    assert tb.acquire() == 0.0


def test_capacity_allows_a_burst_after_idle_then_paces() -> None:
    tb, clock = bucket(10, capacity=5)
    waits = [tb.acquire() for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1, 0.1, 0.1])
    clock.now += 10
    assert [tb.acquire() for _ in range(5)] == [0.0] * 5


def test_try_acquire() -> None:
    tb, clock = bucket(4)
    assert tb.try_acquire() is True
    assert tb.try_acquire() is False
    assert tb.try_acquire() is False  # a refusal reserves nothing
    clock.now += 0.25
    assert tb.try_acquire() is True
    assert tb.acquire() == pytest.approx(0.25)


def test_rate_change_applies_to_later_acquisitions() -> None:
    tb, clock = bucket(100)
    for _ in range(50):
        tb.acquire()
    assert tb.rate == 100
    tb.rate = 10  # slow down after a throttling error
    started = clock()
    times = []
    for _ in range(11):
        tb.acquire()
        times.append(clock() - started)
    assert times[-1] - times[0] == pytest.approx(1.0)
    assert max_in_window([t + started for t in times]) <= 10
    tb.rate = 1000
    before = clock()
    for _ in range(100):
        tb.acquire()
    # The slot handed out last keeps its old spacing (0.1 s); the 99 after it come 1 ms apart.
    assert clock() - before == pytest.approx(0.1 + 99 / 1000)


def test_multi_token_acquire() -> None:
    tb, _clock = bucket(10)
    tb.acquire(5)
    assert tb.acquire() == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan, True, "80"])
def test_invalid_rate(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        TokenBucket(bad)  # type: ignore[arg-type]
    tb = TokenBucket(1)
    with pytest.raises(ConfigurationError):
        tb.rate = bad  # type: ignore[assignment]
    assert tb.rate == 1.0


def test_invalid_capacity_and_tokens() -> None:
    with pytest.raises(ConfigurationError):
        TokenBucket(10, capacity=0.5)
    with pytest.raises(ConfigurationError):
        TokenBucket(10).acquire(0)
    with pytest.raises(ConfigurationError):
        TokenBucket(10).try_acquire(math.nan)


def test_threads_share_the_rate() -> None:
    rate = 2000.0
    tb = TokenBucket(rate)
    per_thread, threads = 50, 8
    stamps: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(per_thread):
                tb.acquire()
                with lock:
                    stamps.append(time.monotonic())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=10)
    elapsed = time.monotonic() - started

    assert errors == []
    assert len(stamps) == per_thread * threads
    # 400 tokens at 2000/s cannot take less than 399 intervals, however the threads interleave.
    assert elapsed >= (per_thread * threads - 1) / rate * 0.99
    assert elapsed < 5.0
