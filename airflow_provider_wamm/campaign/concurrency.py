"""How many requests a run keeps in flight: Little's law over the round trips it measures.

To hold a rate of ``r`` messages per second when each answer takes ``t`` seconds, about ``r * t``
requests must be in flight at once (Little's law). Meta's round trips are a few hundred milliseconds
with a long tail, and they change while a campaign runs (an incident, another region), so no fixed
number of sending threads fits: too few and the rate falls below the cap, too many and every one of
them costs memory and wake-ups for nothing.

:class:`RoundTrips` keeps the recent round trips (an exponentially weighted mean and a high
percentile of a bounded sample); :class:`ConcurrencyTarget` turns them into the number of requests to
keep in flight: ``rate * max(mean, percentile) * headroom``, within ``[minimum, maximum]``. It grows
as soon as answers get slower and shrinks only after answers stayed fast for a while, a step at a
time, so one quick second does not leave the next slow one short of senders. Nothing here sleeps
or reads a clock of its own: the caller passes the time, which keeps it exact to test.
"""

from __future__ import annotations

import math
from collections import deque

#: Round trips kept for the percentile.
SAMPLE_SIZE = 512


class RoundTrips:
    """Recent round trips: an exponentially weighted mean and a high percentile.

    :param alpha: weight of each new round trip in the mean.
    :param percentile: the quantile of the recent sample reported by :attr:`high` (0.9: one answer
        in ten is slower).
    :param size: round trips kept for the percentile.
    """

    def __init__(self, *, alpha: float = 0.05, percentile: float = 0.9, size: int = SAMPLE_SIZE) -> None:
        if not 0 < alpha <= 1 or not 0 < percentile < 1 or size < 1:
            raise ValueError("alpha must be in (0, 1], percentile in (0, 1) and size >= 1")
        self._alpha = alpha
        self._percentile = percentile
        self._sample: deque[float] = deque(maxlen=size)
        self._mean: float | None = None
        self._high: float | None = None
        self._stale = False

    def __len__(self) -> int:
        return len(self._sample)

    def add(self, seconds: float) -> None:
        """Record one round trip (seconds from the request leaving to its answer)."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        self._sample.append(seconds)
        mean = self._mean
        self._mean = seconds if mean is None else mean + self._alpha * (seconds - mean)
        self._stale = True

    @property
    def mean(self) -> float | None:
        """Exponentially weighted mean round trip, ``None`` before the first one."""
        return self._mean

    @property
    def high(self) -> float | None:
        """The ``percentile`` of the recent round trips, ``None`` before the first one."""
        if self._stale:
            ordered = sorted(self._sample)
            self._high = ordered[min(len(ordered) - 1, int(self._percentile * len(ordered)))]
            self._stale = False
        return self._high

    def estimate(self) -> float | None:
        """The round trip to size for: the larger of the mean and the high percentile."""
        mean, high = self.mean, self.high
        if mean is None or high is None:
            return None
        return max(mean, high)


class ConcurrencyTarget:
    """Requests to keep in flight to hold a rate at the measured round trips.

    :param start: the size before any round trip is known.
    :param minimum: never fewer.
    :param maximum: never more (memory, threads and sockets stay bounded).
    :param headroom: factor over Little's law, for the tail beyond the percentile and the time a
        sender spends outside its request (waiting for its turn, handing the answer back).
    :param shrink_after_s: a smaller target is taken only once it stayed smaller this long; growth is
        taken at once.
    :param shrink_step: share of the distance to the smaller target covered by each shrink.
    :param round_trips: where round trips are kept (a new :class:`RoundTrips` by default).
    """

    def __init__(
        self,
        *,
        start: int,
        minimum: int = 4,
        maximum: int = 1024,
        headroom: float = 1.25,
        shrink_after_s: float = 5.0,
        shrink_step: float = 0.5,
        round_trips: RoundTrips | None = None,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {minimum} and {maximum}")
        if headroom < 1 or not 0 < shrink_step <= 1:
            raise ValueError("headroom must be >= 1 and shrink_step in (0, 1]")
        self.minimum = minimum
        self.maximum = maximum
        self.headroom = headroom
        self.shrink_after_s = shrink_after_s
        self.shrink_step = shrink_step
        self.round_trips = round_trips or RoundTrips()
        self.size = self._bounded(start)
        self._smaller_since: float | None = None

    def observe(self, seconds: float) -> None:
        """Record one round trip."""
        self.round_trips.add(seconds)

    def wanted(self, rate: float, at_least: float | None = None) -> int | None:
        """Little's law with headroom at ``rate``, bounded; ``None`` before any round trip.
        ``at_least`` is a round trip known to be no longer than the real one (a request still in
        flight after that long)."""
        round_trip = self.round_trips.estimate()
        if at_least is not None:
            round_trip = max(round_trip or 0.0, at_least)
        if not round_trip or not math.isfinite(rate) or rate <= 0:
            return None
        return self._bounded(math.ceil(rate * round_trip * self.headroom) + 1)

    def update(self, rate: float, now: float, *, at_least: float | None = None) -> int:
        """The size to run with at ``now``: grown at once to what ``rate`` needs, shrunk step by step
        once the need stayed lower for ``shrink_after_s``."""
        wanted = self.wanted(rate, at_least)
        if wanted is None or wanted == self.size:
            self._smaller_since = None
            return self.size
        if wanted > self.size:
            self.size = wanted
            self._smaller_since = None
            return self.size
        if self._smaller_since is None:
            self._smaller_since = now
        elif now - self._smaller_since >= self.shrink_after_s:
            step = max(1, math.ceil((self.size - wanted) * self.shrink_step))
            self.size = max(wanted, self.size - step)
            self._smaller_since = now
        return self.size

    def _bounded(self, n: int) -> int:
        return max(self.minimum, min(self.maximum, int(n)))


__all__ = ["SAMPLE_SIZE", "ConcurrencyTarget", "RoundTrips"]
