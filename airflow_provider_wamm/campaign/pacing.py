"""Pacing: how fast one campaign run sends, behind one object, :class:`Pacer`.

Sends are spaced by a token bucket at the cap in force less a little headroom, and a sliding
one-second log (:class:`SendWindow`) makes sure no window of sends ever holds more than that, even
when threads held up by a pause all wake at once. When Meta throttles a real share of the answers
the cap in force is halved; after quiet seconds it climbs back by a quarter at a time, up to the cap
of the run, which :meth:`Pacer.set_cap` can change while the run goes on.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.ratelimit import TokenBucket

#: Rate-limit waits up to this long are plain sleeps (checked for a stop afterwards).
SHORT_SLEEP_S = 0.05


class Stopped(Exception):
    """Raised inside :meth:`Pacer.wait_turn` when the run stops: the send must not go out."""


class SendWindow:
    """At most ``limit`` sends in any ``window_s`` seconds, counted at the moment each send leaves.

    The token bucket spaces sends evenly; this sliding log is the hard bound behind it. After a pause
    (garbage collection, a busy machine) the workers whose slots went by send at once; the window makes
    sure that this catching up never puts more than ``limit`` sends in one second. Sends it holds back
    are let go one every ``window_s / limit`` seconds, so a burst is not repeated a second later.
    Windows are half-open like Meta's and the sandbox's: sends exactly ``window_s`` apart do not share one.
    """

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit = max(1, limit)
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self._not_before = 0.0

    @property
    def last(self) -> float | None:
        """When the last counted send left (monotonic seconds), ``None`` before the first."""
        times = self._times
        return times[-1] if times else None

    def wait_turn(self, sleep: Callable[[float], None]) -> None:
        """Block (with ``sleep``) until one more send fits the window, and count it."""
        held = False
        while (wait := self.try_count(held=held)) > 0:
            held = True
            sleep(wait)

    def try_count(self, *, held: bool = False) -> float:
        """Count one send leaving now if it fits the window and return 0; else count nothing and
        return the seconds to wait before asking again. ``held``: this send was already held back
        (then it is also spaced from the last send let go after a hold)."""
        with self._lock:
            now = time.monotonic()
            times = self._times
            horizon = now - self.window_s
            while times and times[0] <= horizon:
                times.popleft()
            excess = len(times) - self.limit
            if excess >= 0:
                return times[excess] - horizon
            if held and now < self._not_before:
                return self._not_before - now
            times.append(now)
            if held:
                self._not_before = now + self.window_s / self.limit
            return 0.0


class Pacer:
    """The send rate of one run: token bucket, one-second window, throttle cut and recovery.

    Worker threads call :meth:`wait_turn` before each request; everything else is called by the
    coordinating thread: :meth:`on_answer` for every answer, :meth:`on_throttle` for a throttling one,
    :meth:`tick` now and then (recovery), :meth:`set_cap` to change the cap of the run.

    :param cap: the run's cap, messages per second.
    :param floor: the rate never drops below this (nor above the cap).
    :param headroom: share of the rate left unused: sends are paced at ``rate * (1 - headroom)`` and no
        one-second window holds more than that, rounded down.
    :param throttle_share: the rate is halved only when throttling answers are at least this share of
        the last second's answers (and at least three).
    :param recovery_s: quiet seconds after a change before the rate is raised again by a quarter.
    :param stop: set when the run stops; a worker waiting for its turn then raises :class:`Stopped`.
    :param clock: monotonic clock of :meth:`on_answer` and :meth:`on_throttle` (injectable for tests).
    """

    def __init__(
        self,
        cap: float,
        *,
        floor: float,
        headroom: float,
        throttle_share: float,
        recovery_s: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cap = _positive(cap)
        self._floor = floor
        self._headroom = headroom
        self._share = throttle_share
        self._recovery_s = recovery_s
        self._stop = stop
        self._clock = clock
        self._exact = False
        self._scale = 1.0
        self._window = SendWindow(1)
        self._held = False
        self._bucket = TokenBucket(1.0)
        self._rate = self._cap
        self._put_in_force(self._cap)
        self._last_throttle = -math.inf
        self._last_change = -math.inf
        # Answers and throttling answers of the current one-second window (for throttle_share).
        self._answers_since = clock()
        self._answers = 0
        self._throttles = 0
        self._held_until = 0.0

    @classmethod
    def for_campaign(cls, settings: CampaignSettings, stop: threading.Event) -> Pacer:
        """The pacer of a run with these settings."""
        return cls(
            float(settings.max_messages_per_second),
            floor=settings.min_messages_per_second,
            headroom=settings.rate_headroom,
            throttle_share=settings.throttle_share,
            recovery_s=settings.throttle_recovery_s,
            stop=stop,
        )

    @property
    def rate(self) -> float:
        """The cap in force, messages per second: the run's cap, or less while Meta throttles."""
        return self._rate * self._scale

    @property
    def cap(self) -> float:
        """The run's cap: the rate recovers up to this after throttling."""
        return self._cap * self._scale

    @property
    def window_limit(self) -> int:
        """Most sends let into any one-second window at the rate in force."""
        return self._window.limit

    @property
    def waiting_for_share(self) -> bool:
        """No send may leave: the cap was set to zero (the run waits for a share of its number's cap)."""
        return self._held

    def set_cap(self, rate: float) -> None:
        """Change the run's cap. A lower cap is in force at once; a higher one too, unless the run is
        recovering from throttling, in which case the recovery climbs up to it. Zero holds every send
        until a positive cap is set."""
        if rate == 0 and not isinstance(rate, bool):
            self._held = True
            return
        new = _positive(rate)
        old, self._cap = self._cap, new
        if self._rate > new or self._rate >= old:
            self._put_in_force(new)
        # Released only now: a worker let go before would pace at the cap the run started with.
        self._held = False

    def set_budget(self, sends: float, *, of_cap: float = 1.0) -> None:
        """Set the run's cap to a whole number of sends a second that already leaves the headroom
        (its share of a number's budget, see :mod:`~.cap_share`): paced at that, not less. Zero
        holds every send, as with :meth:`set_cap`. ``of_cap`` is the number's cap per send of its
        budget (80 / 78): :attr:`rate` and :attr:`cap` report the share in messages per second of
        the cap, as an unshared run's do (a run alone on its number: the whole cap)."""
        self._exact = True
        self._scale = of_cap
        self.set_cap(sends)

    @property
    def last_send(self) -> float | None:
        """When the last send left (monotonic seconds), ``None`` before the first."""
        return self._window.last

    def hold_until(self, until: float) -> None:
        """Let no send leave before ``until`` (monotonic seconds): a wait the whole run makes, such as
        the template's sync after a 131009."""
        self._held_until = max(self._held_until, until)

    def held(self, now: float) -> bool:
        """Whether sends are held at ``now`` (monotonic seconds)."""
        return now < self._held_until

    def wait_turn(self) -> None:
        """Block until this send may leave (called by worker threads).

        :raises Stopped: the run stopped while waiting.
        """
        while (left := self.hold_left()) > 0:
            self.sleep_unless_stopped(left)
        self._bucket.acquire()
        self._window.wait_turn(self.sleep_unless_stopped)

    # The steps of a turn, for a caller that waits in its own way (an event loop): wait out
    # hold_left(), then until reserve_slot(), then until try_window() gives 0.

    def hold_left(self) -> float:
        """Seconds before a send may even reserve its slot (at most one, then ask again): the run
        waits for a share of its number's cap, or a wait of the whole run; 0 when it may."""
        if self._held:
            return SHORT_SLEEP_S
        return min(max(0.0, self._held_until - time.monotonic()), 1.0)

    def reserve_slot(self) -> float:
        """Reserve this send's slot of the token bucket: when it may leave (monotonic seconds)."""
        return self._bucket.reserve()

    def try_window(self, *, held: bool = False) -> float:
        """Count the send in the one-second window if it fits now (0), else the seconds to wait
        before asking again (:meth:`SendWindow.try_count`)."""
        return self._window.try_count(held=held)

    def on_answer(self) -> None:
        """Count an answer (any kind) in the current one-second window."""
        now = self._clock()
        if now - self._answers_since >= 1.0:
            self._answers_since = now
            self._answers = 0
            self._throttles = 0
        self._answers += 1

    def on_throttle(self) -> float | None:
        """Count a throttling answer (already counted by :meth:`on_answer`); halve the rate when they
        are a real share of the last second's answers, at most once a second.

        :returns: the new rate when it was lowered, else ``None`` (an isolated throttle: the request
            is retried, the pace stays).
        """
        now = self._clock()
        self._throttles += 1
        if self._throttles < 3 or self._throttles < self._share * self._answers:
            return None
        self._last_throttle = now
        if now - self._last_change < 1.0:
            return None  # one cut per burst of throttling answers
        new = max(min(self._floor, self._cap), self._rate / 2)
        if new >= self._rate:
            return None
        self._put_in_force(new)
        self._last_change = now
        return self.rate

    def tick(self, now: float) -> float | None:
        """Raise the rate by a quarter (up to the cap) after ``recovery_s`` quiet seconds.

        :returns: the new rate when it was raised, else ``None``.
        """
        rate = self._rate
        if rate >= self._cap:
            return None
        quiet = self._recovery_s
        if now - self._last_throttle < quiet or now - self._last_change < quiet:
            return None
        self._put_in_force(min(self._cap, rate * 1.25))
        self._last_change = now
        return self.rate

    def sleep_unless_stopped(self, seconds: float) -> None:
        """Sleep, raising :class:`Stopped` if the run stops meanwhile.

        A plain sleep costs far less CPU than waiting on the shared event (whose waiter list every
        worker contends for); a short one delays a stop by at most :data:`SHORT_SLEEP_S`.
        """
        if seconds <= SHORT_SLEEP_S:
            time.sleep(seconds)
            if self._stop.is_set():
                raise Stopped
        elif self._stop.wait(seconds):
            raise Stopped

    def _put_in_force(self, rate: float) -> None:
        """Pace at ``rate * (1 - headroom)`` and bound every window below it."""
        self._rate = rate
        paced = rate if self._exact else rate * (1.0 - self._headroom)
        limit = max(1, whole_sends(paced))
        # A share of a number's budget is a whole number of sends: the bucket runs at what the share
        # stands for in the cap, less the headroom, as an unshared run's does (78.4 against a window
        # of 78 at a cap of 80, 980 against 980 at 1,000), so a run alone on its number paces alike.
        bucket = max(paced, rate * self._scale * (1.0 - self._headroom)) if self._exact else paced
        # A fresh bucket: slots reserved far ahead at a lower rate are not waited for by later sends,
        # and workers wait for their slot in an interruptible sleep, so a stop does not wait for them.
        self._bucket = TokenBucket(min(bucket, limit * 0.995), sleep=self.sleep_unless_stopped)
        self._window.limit = limit


def whole_sends(rate: float) -> int:
    """The whole sends a second within ``rate``, a rate computed as 78.0 - 1e-12 still counting 78."""
    return math.floor(rate + 1e-9)


def _positive(rate: float) -> float:
    """``rate`` as a float, if it is a positive finite number of messages per second."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ConfigurationError(
            f"the send rate must be a positive number of messages per second, got {rate!r}"
        )
    return float(rate)


__all__ = ["SHORT_SLEEP_S", "Pacer", "SendWindow", "Stopped", "whole_sends"]
