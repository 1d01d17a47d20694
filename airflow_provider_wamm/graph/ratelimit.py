"""A thread-safe token bucket that paces sends to a messages-per-second cap.

Meta caps a phone number at 80 messages per second by default (up to 1,000), and over the
cap answers 130429. The bucket is a "virtual scheduling" token bucket (GCRA): every
acquisition reserves the next free slot under a lock and then sleeps until its slot outside
the lock, so many sender threads are paced fairly without busy waiting or a thundering herd.

With the default ``capacity`` of one token, slots are exactly ``1/rate`` apart, so no window
of one second ever holds more than ``ceil(rate)`` acquisitions. A larger capacity allows a
burst of that many tokens after an idle period (the burst counts against the same second).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from airflow_provider_wamm.graph.errors import ConfigurationError

__all__ = ["TokenBucket"]


def _check_rate(rate: float) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ConfigurationError(f"rate must be a positive number of tokens per second, got {rate!r}")
    return float(rate)


class TokenBucket:
    """Pace callers to ``rate`` tokens per second (thread-safe).

    :param rate: tokens per second (messages per second for a sender); can be changed later
        through :attr:`rate`, e.g. to slow down after a throttling error.
    :param capacity: most tokens that can be taken at once after an idle period (the burst).
        Defaults to ``1``: strict pacing, never more than ``ceil(rate)`` tokens in any one-second
        window.
    :param clock: monotonic clock in seconds (injectable for tests).
    :param sleep: how to wait (injectable for tests).
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = _check_rate(rate)
        cap = 1.0 if capacity is None else capacity
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not math.isfinite(cap) or cap < 1:
            raise ConfigurationError(f"capacity must be a number >= 1, got {capacity!r}")
        self._capacity = float(cap)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Slots are base + units / rate: computing from an integer-valued count keeps them exact.
        self._base = clock()
        self._units = 0.0

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self._rate!r}, capacity={self._capacity!r})"

    @property
    def rate(self) -> float:
        """Tokens per second. Setting it takes effect for every acquisition not yet scheduled."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        new = _check_rate(value)
        with self._lock:
            # Keep the slots already handed out; pace the following ones at the new rate.
            self._base = self._base + self._units / self._rate
            self._units = 0.0
            self._rate = new

    @property
    def capacity(self) -> float:
        """Most tokens available at once after an idle period."""
        return self._capacity

    def _reserve(self, tokens: float, *, wait: bool) -> float | None:
        """Reserve ``tokens``; return when they may be used, or ``None`` (without reserving) if that
        is later than now and ``wait`` is false."""
        now = self._clock()
        with self._lock:
            tat = self._base + self._units / self._rate  # theoretical arrival time of the next token
            if tat < now:  # idle: the bucket has refilled
                self._base, self._units, tat = now, 0.0, now
            start = max(now, tat - (self._capacity - 1.0) / self._rate)
            if start > now and not wait:
                return None
            self._units += tokens
            return start

    def reserve(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` without waiting: the clock time from which they may be used (now or later).
        The caller waits until then itself (an event loop, say); later callers get later slots."""
        if not tokens > 0 or not math.isfinite(tokens):
            raise ConfigurationError(f"tokens must be a positive number, got {tokens!r}")
        start = self._reserve(float(tokens), wait=True)
        assert start is not None
        return start

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, sleeping until they are available; return the seconds waited."""
        start = self.reserve(tokens)
        waited = 0.0
        while True:
            delay = start - self._clock()
            if delay <= 0:
                return waited
            self._sleep(delay)
            waited += delay

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if they are available now, without waiting."""
        if not tokens > 0 or not math.isfinite(tokens):
            raise ConfigurationError(f"tokens must be a positive number, got {tokens!r}")
        return self._reserve(float(tokens), wait=False) is not None
