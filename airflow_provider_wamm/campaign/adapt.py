"""The run's side of adaptive concurrency: round trips in, a resized worker pool out.

:class:`AdaptiveConcurrency` feeds the round trip of every answer to a
:class:`~.concurrency.ConcurrencyTarget` and, a few times a second, resizes the
:class:`~.workers.WorkerPool` to the target for the rate in force. It also says how many jobs the run
may hand to the pool (claimed in the ledger) at once: twice the workers, or a quarter second of the
rate, whichever is more, so the workers never wait for a hand-over.

Threads, not an event loop: they keep the blocking transport and its error mapping as they are. What
adapting gains over a fixed pool is measured in ``benchmarks/optimisations.md``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from airflow_provider_wamm.campaign.concurrency import ConcurrencyTarget
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.workers import Answer, AnswerKind, Job, SendPool

#: Seconds between two looks at the target.
ADAPT_INTERVAL_S = 0.25
#: Answers after which the measured round trips alone size the pool (before: the in-flight ages too).
STARTUP_ANSWERS = 200
#: Seconds between two looks until then: before the first answers, the requests a rate needs in flight
#: grow with every millisecond (the rate times the age of the oldest), so the pool follows closely.
STARTUP_INTERVAL_S = 0.05
#: Answers whose round trip says how long Meta takes (the others never reached it, or came back
#: without an answer).
_MEASURED = frozenset({AnswerKind.ACCEPTED, AnswerKind.ERROR})


class AdaptiveConcurrency:
    """Sizes a run's worker pool to its round trips (or keeps it fixed).

    :param settings: ``concurrency`` (the size at the start), ``adaptive_concurrency``,
        ``min_concurrency``, ``max_concurrency`` and ``concurrency_headroom``.
    :param pool: the pool to resize.
    """

    def __init__(self, settings: CampaignSettings, pool: SendPool) -> None:
        self.enabled = settings.adaptive_concurrency
        self.pool = pool
        self.target = ConcurrencyTarget(
            start=settings.concurrency,
            minimum=min(settings.min_concurrency, settings.concurrency),
            maximum=max(settings.max_concurrency, settings.concurrency),
            headroom=settings.concurrency_headroom,
        )
        self.largest = 0
        self._next_look = 0.0

    def start(self) -> None:
        """Start the pool at its first size."""
        self.pool.resize(self.target.size)
        self.largest = self.pool.size

    def observe(self, answer: Answer) -> None:
        """Record the round trip of an answer that came from the Graph API."""
        seconds = answer.job.round_trip_s
        if self.enabled and seconds is not None and answer.kind in _MEASURED:
            self.target.observe(seconds)

    def tick(self, now: float, rate: float, in_flight: Iterable[Job] = ()) -> int | None:
        """Resize the pool to the target for ``rate`` if it changed (at most every
        :data:`ADAPT_INTERVAL_S`); returns the new size, else ``None``.

        Until a few answers came back (:data:`STARTUP_ANSWERS`), the oldest request of ``in_flight``
        says the round trip is at least its age, and its age at the next look: the pool grows while
        the first answers are still on their way, instead of sending at the starting size for a whole
        round trip."""
        if not self.enabled or now < self._next_look or self.pool.size == 0:
            return None
        starting = len(self.target.round_trips) < STARTUP_ANSWERS
        self._next_look = now + (STARTUP_INTERVAL_S if starting else ADAPT_INTERVAL_S)
        at_least = None
        if starting:
            left = [job.left_at for job in in_flight if job.left_at is not None]
            at_least = time.perf_counter() - min(left) + STARTUP_INTERVAL_S if left else None
        size = self.target.update(rate, now, at_least=at_least)
        if size == self.pool.size:
            return None
        self.pool.resize(size)
        self.largest = max(self.largest, size)
        return size

    def max_in_flight(self, rate: float) -> int:
        """Jobs the run may hand to the pool (claimed) at once at ``rate``."""
        return max(2 * self.target.size, int(rate / 4))


def connections_needed(settings: CampaignSettings) -> int:
    """Kept-alive connections a run with these settings may use at once (one per sending thread)."""
    if not settings.adaptive_concurrency:
        return settings.concurrency
    return max(settings.concurrency, settings.max_concurrency)


__all__ = [
    "ADAPT_INTERVAL_S",
    "STARTUP_ANSWERS",
    "STARTUP_INTERVAL_S",
    "AdaptiveConcurrency",
    "connections_needed",
]
