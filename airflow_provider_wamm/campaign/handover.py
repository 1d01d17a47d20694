"""The hand-over of a campaign run: ready jobs claimed in the ledger and given to the pool of workers,
within the run's guards (a paused template, a messaging limit) and its spend budget, until answered.

A hand-over is one claim transaction for several jobs. It claims nothing beyond the smallest
allowance of the guards (:class:`~.guards.Guards`) nor beyond what the budget affords
(:class:`~.spend.SpendGuard`): the reservation of a message's cost is made here and settled when its
answer comes back. Jobs another attempt claimed since they were read go to the
:class:`~.attempt.ForeignClaims`, looked at again later. When the run stops, the answers in flight
are awaited for a while and those still out recorded ``unknown`` (:meth:`HandOver.settle_in_flight`).
Only the coordinating thread uses it.
"""

from __future__ import annotations

import time

from airflow_provider_wamm.campaign.adapt import AdaptiveConcurrency
from airflow_provider_wamm.campaign.answers import AnswerHandler
from airflow_provider_wamm.campaign.attempt import Attempt, ForeignClaims
from airflow_provider_wamm.campaign.control import CampaignControl, StopEvent
from airflow_provider_wamm.campaign.guards import Guards, Trip
from airflow_provider_wamm.campaign.pacing import Pacer
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.spend import SpendGuard
from airflow_provider_wamm.campaign.workers import (
    Answer,
    AnswerKind,
    Job,
    JobQueue,
    SendPool,
    hand_over_lead,
)

#: Fewest jobs handed to the pool in one claim transaction while more are ready than slots are free
#: (a claim per answer would cost a transaction per message), and how few jobs the pool's queue may
#: be down to before the next hand-over.
MIN_HAND_OVER = 4
#: Answers after which Meta has (or may have) the message: its cost is spent.
_TAKEN = frozenset({AnswerKind.ACCEPTED, AnswerKind.UNKNOWN, AnswerKind.CRASH})
#: What the ledger says of a request still in flight when the run stopped waiting for it.
IN_FLIGHT_AT_STOP = "in flight when the run stopped: the message may or may not have been sent"


class HandOver:
    """Claims ready jobs and hands them to the pool; keeps those handed over until they are answered.

    :param settings: the run's settings (``batch_size``).
    :param jobs: the queue of jobs not handed over (ready, or waiting for a retry).
    :param pool: the workers that send.
    :param pacer: the run's pace (a held pace claims nothing).
    :param adapt: how many requests may be in flight at the current rate.
    :param attempt: this attempt (claims in the ledger).
    :param foreign: where jobs claimed by another attempt are kept aside.
    :param guards: conditions that limit or stop the hand-over.
    :param spend: prices what is handed over and stops at its budget; ``None`` prices nothing.
    :param answers: acts on each answer.
    :param stop: the run's stop (set once it settles what is in flight).
    :param control: the caller's handle: a stop request cuts the wait for answers to ``stop_grace_s``.
    """

    def __init__(
        self,
        settings: CampaignSettings,
        *,
        jobs: JobQueue,
        pool: SendPool,
        pacer: Pacer,
        adapt: AdaptiveConcurrency,
        attempt: Attempt,
        foreign: ForeignClaims,
        guards: Guards,
        spend: SpendGuard | None,
        answers: AnswerHandler,
        stop: StopEvent,
        control: CampaignControl | None,
    ) -> None:
        self.s = settings
        self.jobs = jobs
        self.pool = pool
        self.pacer = pacer
        self.adapt = adapt
        self.attempt = attempt
        self.foreign = foreign
        self.guards = guards
        self.spend = spend
        self.answers = answers
        self.stop = stop
        self.control = control
        self.gave_up = False  # a request in flight was recorded unknown without its answer
        self.dispatched: dict[str, Job] = {}  # handed to the pool and not answered, by recipient
        self.trip: Trip | None = None  # the guard that stopped the run, if one did

    @property
    def in_flight(self) -> int:
        """Jobs handed to the pool and not answered yet (each holds a claim)."""
        return len(self.dispatched)

    @property
    def budget_reached(self) -> bool:
        """The next recipient did not fit in ``max_cost``: nothing more is handed over."""
        return self.spend is not None and self.spend.reached

    def poll_guards(self, now: float) -> Trip | None:
        """The trip that newly stops the run, if a guard trips now (:meth:`~.guards.Guards.poll`);
        ``None`` once one has (it is kept in :attr:`trip`)."""
        if self.trip is not None:
            return None
        self.trip = self.guards.poll(now, waiting=bool(self.jobs.ready) and not self.in_flight)
        return self.trip

    def dispatch(self, *, ahead_s: float = 0.0) -> None:
        """Hand ready jobs to the pool while slots are free, each hand-over claimed in one transaction.

        A hand-over takes the free slots, at most ``batch_size``: beyond the requests on the wire, only
        a short lead of the pace (:func:`~.workers.hand_over_lead`), as a crash leaves every claim
        ``unknown``; ``ahead_s`` more seconds of it right before a read of the input, so that the pool
        does not run dry while the read holds the hand-over up. While more jobs are ready than slots
        are free, it waits until the jobs queued in the pool are down to a few (:data:`MIN_HAND_OVER`,
        or half the lead): the workers never run dry, and a claim transaction serves several
        messages, not one.
        """
        if self.pacer.held(time.monotonic()):  # a wait of the whole run: claim nothing meanwhile
            return
        lead = hand_over_lead(self.pacer.rate, ahead_s)
        most = max(self.adapt.max_in_flight(self.pacer.rate), self.pool.size + lead)
        limit = min(most, self.pool.sending + lead)
        slack = limit - self.pool.size  # jobs the pool may hold beyond one per worker
        least = min(self.s.batch_size, max(MIN_HAND_OVER, slack - MIN_HAND_OVER), max(1, lead // 2))
        while True:
            ready = self.jobs.ready
            n = min(limit - self.in_flight, ready, self.s.batch_size)
            allowance = self.guards.allowance()
            if allowance is not None and allowance < n:  # a budget: never claim beyond it
                n, least = allowance, 0
            if n <= 0 or (n < least and n < ready):
                return
            jobs = self._affordable(self.jobs.take_many(n))
            if not jobs:
                return
            self._claim(jobs)

    def _affordable(self, jobs: list[Job]) -> list[Job]:
        """The jobs within the budget; those beyond it go back, released at the end."""
        if self.spend is None:
            return jobs
        jobs, over = self.spend.affordable(jobs)
        for job in over:
            self.jobs.add(job)
        return jobs

    def _claim(self, jobs: list[Job]) -> None:
        """Claim ``jobs`` in one transaction and hand the claimed ones to the pool."""
        claimed = self.attempt.claim([job.recipient for job in jobs])
        self.guards.claimed(sum(1 for job in jobs if job.recipient in claimed and not job.attempts))
        for job in jobs:
            if job.recipient in claimed:
                self.dispatched[job.recipient] = job
                self.pool.submit(job)
            else:  # another attempt claimed it (or settled it) since it was read: look again later
                self.foreign.add(job)

    def collect(self, *, timeout: float) -> None:
        """Handle finished requests: wait up to ``timeout`` for the first, then take what is there."""
        for answer in self.pool.collect(timeout):
            self._answered(answer)

    def _answered(self, answer: Answer) -> None:
        """Act on one answer of a worker (:class:`~.answers.AnswerHandler`); its job is no longer in
        flight, its reservation spent or given back (kept while the job waits for a retry)."""
        recipient = answer.job.recipient
        self.dispatched.pop(recipient, None)
        self.adapt.observe(answer)
        self.answers.handle(answer)
        if self.spend is not None:
            self.spend.answered(recipient, taken=answer.kind in _TAKEN, queued=recipient in self.jobs)

    def settle_in_flight(self, limit_s: float) -> None:
        """Record the answers of requests in flight for up to ``limit_s`` (a stop request cuts it to
        ``stop_grace_s``), beating the heartbeat; then record those still out ``unknown``."""
        self.stop.set()
        deadline = time.monotonic() + limit_s
        graced = self._stop_requested
        while self.in_flight > 0:
            now = time.monotonic()
            if not graced and self._stop_requested:
                graced, deadline = True, min(deadline, now + self.s.stop_grace_s)
            if now >= deadline:
                break
            self.collect(timeout=min(0.05, deadline - now))
            now = time.monotonic()
            self.attempt.beat(now)
            self.attempt.flush(force=False, now=now)
        for job in self.dispatched.values():
            self.gave_up = True
            self.answers.unknown(job, IN_FLIGHT_AT_STOP)
        self.dispatched.clear()

    @property
    def _stop_requested(self) -> bool:
        return self.control is not None and self.control.stop_requested

    def would_send(self, recipient: str) -> None:
        """Price a recipient a dry run would send to."""
        if self.spend is not None:
            self.spend.count(recipient)

    def release_all(self) -> int:
        """Give back what the run will not send: its unsent claims (deleted, so a later run sends them)
        and the jobs it never handed over, with their reservations; returns how many."""
        drained = self.jobs.drain()
        if self.spend is not None:
            for job in drained:
                self.spend.refund(job.recipient)
        return self.attempt.release_all() + len(drained)
