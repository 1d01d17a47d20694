"""The input side of a campaign run: from a batch of rows read to jobs queued for the hand-over.

A batch is read (:class:`~.intake.Intake`: normalised, deduplicated, filtered to the shard), its
invalid rows recorded, and each candidate decided (:class:`~.eligibility.Eligibility`): sent (queued
*unclaimed*, so a crash leaves nothing claimed that was not in flight), not sent (recorded and
counted), or held by another attempt (set aside in the :class:`~.attempt.ForeignClaims`). Only the
coordinating thread uses it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.attempt import Attempt, ForeignClaims
from airflow_provider_wamm.campaign.eligibility import (
    Eligibility,
    HeldElsewhere,
    Invalid,
    Send,
    Skip,
    SkipReason,
    count_decision,
)
from airflow_provider_wamm.campaign.handover import HandOver
from airflow_provider_wamm.campaign.intake import Candidate, Intake, IntakeBatch
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.workers import Job, JobQueue

#: Candidates the first read of a run asks for; each later read asks for twice as many as the one
#: before, up to ``batch_size``: the sending starts after a few rows, not after a whole batch.
FIRST_READ = 32


class Admission:
    """Reads the input a batch at a time and queues what may be sent.

    :param settings: the run's settings (``batch_size``, ``dry_run``).
    :param result: the run's counts.
    :param intake: the input, read lazily.
    :param eligibility: decides about each candidate against the ledger.
    :param attempt: this attempt (records what is not sent).
    :param handover: the jobs handed over (a recipient in flight is not queued twice).
    """

    def __init__(
        self,
        settings: CampaignSettings,
        result: CampaignResult,
        *,
        intake: Intake,
        eligibility: Eligibility,
        attempt: Attempt,
        handover: HandOver,
    ) -> None:
        self.s = settings
        self._next_size = min(settings.batch_size, FIRST_READ)
        self._per_candidate_s = 0.0
        self.result = result
        self.intake = intake
        self.eligibility = eligibility
        self.attempt = attempt
        self.handover = handover
        self.jobs: JobQueue = handover.jobs
        self.foreign: ForeignClaims = handover.foreign

    @property
    def read_s(self) -> float:
        """Seconds the next read takes, about: the reads so far per candidate asked for (a slower
        one counts at once, a faster one by halves), times the candidates it asks for."""
        return self._per_candidate_s * self._next_size

    def read_batch(self) -> None:
        """Read a batch of input (:data:`FIRST_READ` candidates first, then twice as many each time,
        up to ``batch_size``), record its invalid rows, and queue what may be sent."""
        size = self._next_size
        started = time.perf_counter()
        self._read_batch(size)
        took = (time.perf_counter() - started) / size
        self._per_candidate_s = max(took, (self._per_candidate_s + took) / 2)
        self._next_size = min(self.s.batch_size, 2 * size)

    def _read_batch(self, size: int) -> None:
        batch = self.intake.read_batch(size)
        self._count_intake(batch)
        if batch.invalid and not self.s.dry_run:
            self.attempt.record_unsent([row.outcome() for row in batch.invalid])
        if batch.candidates:
            self._admit(batch.candidates)

    def _count_intake(self, batch: IntakeBatch) -> None:
        """Count what a read of the input found (its candidates are counted once decided)."""
        r = self.result
        r.total += batch.total
        r.duplicates += batch.duplicates
        for row in batch.invalid:
            r.add_invalid(row.reason)

    def _admit(self, candidates: Sequence[Candidate]) -> None:
        """Decide about the candidates, record those not sent to, queue the others (unclaimed) and set
        aside those another attempt holds."""
        now = L.utcnow()
        unsent: list[Skip | Invalid] = []
        for decided in self.eligibility.decide(candidates, now=now):
            decision = decided
            if isinstance(decided, Send | HeldElsewhere) and self._has_job(decided.recipient):
                decision = Skip(decided.recipient, SkipReason.DUPLICATE)
            if isinstance(decision, Send):
                self._queue(decision)
            elif isinstance(decision, HeldElsewhere):
                self.foreign.add(Job(decision.recipient, decision.payload), decision.unsent)
            else:
                unsent.append(decision)
        self.not_sent(unsent, now)

    def not_sent(self, decisions: Sequence[Skip | Invalid], now: datetime) -> None:
        """Count the recipients not sent to, and record why (a dry run records nothing)."""
        for decision in decisions:
            count_decision(self.result, decision)
        if not self.s.dry_run:
            outcomes = [decision.outcome() for decision in decisions]
            self.attempt.record_unsent([o for o in outcomes if o is not None], now=now)

    def _queue(self, decision: Send) -> None:
        """Queue a recipient to send to (a dry run only counts and prices it)."""
        if decision.variant is not None:
            self.result.groups[decision.variant] += 1
        if self.s.dry_run:
            self.result.would_send += 1
            self.handover.would_send(decision.recipient)
        else:
            self.jobs.add(Job(decision.recipient, decision.payload))

    def _has_job(self, recipient: str) -> bool:
        """Whether this run has a job for ``recipient`` already: queued (unclaimed), waiting for a retry
        (its claim given back), in flight or set aside. A repeat of it beyond the in-memory window of
        the intake is then a duplicate, as the ledger cannot tell yet."""
        return recipient in self.jobs or recipient in self.handover.dispatched or recipient in self.foreign
