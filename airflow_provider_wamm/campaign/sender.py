"""The bulk sender: one campaign run, from a stream of recipients to recorded outcomes.

Flow: rows are read lazily, normalised (bad rows recorded as ``invalid``), deduplicated and filtered
to this shard (:mod:`~.intake`); checked against the ledger (already handled in this campaign,
suppressed, inside the frequency cap) and personalised (:mod:`~.eligibility`); queued unclaimed
(:mod:`~.admission`), and *claimed* in the ledger only when handed to the pool of threads
(:mod:`~.workers`) that send them, one transaction per hand-over within the guards and the budget
(:mod:`~.handover`), so that a crash leaves claimed only the requests in flight. The workers
share one :class:`~airflow_provider_wamm.graph.client.GraphClient` and one pace (:mod:`~.pacing`).
Failures are handled by what their code means (:class:`~airflow_provider_wamm.graph.errors.Action`):
retried with backoff (the claim given back while the job waits), slowed down, delayed for that
recipient only, recorded, or the whole run halted. Outcomes are written back in batches
(:mod:`~.attempt`). Recipients another live attempt holds claimed are kept aside until that claim
settles, never counted as done.

A :class:`~.control.CampaignControl` stops the run from another thread or a signal handler: no new
request starts, answers in flight are awaited for ``stop_grace_s`` and recorded, the rest recorded
``unknown``, unsent claims released, and :class:`~.result.CampaignStopped` raised.

Only the coordinating thread (this module) touches the ledger and the counts; worker threads only
make HTTP requests. Memory is bounded by the batch size and the number of requests in flight, never
by the number of recipients.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.adapt import AdaptiveConcurrency
from airflow_provider_wamm.campaign.admission import Admission
from airflow_provider_wamm.campaign.answers import AnswerHandler
from airflow_provider_wamm.campaign.attempt import Attempt, ForeignClaims, log_taken_over
from airflow_provider_wamm.campaign.cap_share import shared_pace
from airflow_provider_wamm.campaign.control import CampaignControl, StopEvent
from airflow_provider_wamm.campaign.eligibility import Eligibility
from airflow_provider_wamm.campaign.guards import Guards, deferred_error, trip_explains

# IN_FLIGHT_AT_STOP and MIN_HAND_OVER stay importable from here, where they were first defined.
from airflow_provider_wamm.campaign.handover import IN_FLIGHT_AT_STOP, MIN_HAND_OVER, HandOver  # noqa: F401
from airflow_provider_wamm.campaign.intake import Intake
from airflow_provider_wamm.campaign.ledger import Ledger, RunState
from airflow_provider_wamm.campaign.loop_pool import send_pool
from airflow_provider_wamm.campaign.pacing import Pacer
from airflow_provider_wamm.campaign.progress import ProgressLog, expected_rows
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignResult, CampaignStopped
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.spend import SpendGuard
from airflow_provider_wamm.campaign.workers import (
    JobQueue,
    MessageSender,
    SendResultLike,
    frozen_gc,
    hand_over_lead,
)
from airflow_provider_wamm.graph.errors import ConfigurationError

#: Longest nap of the coordinating thread between looks at finished requests.
_POLL_S = 0.005
#: How long a run that halted or failed waits for the answers in flight (a stop cuts it to the grace).
DRAIN_LIMIT_S = 300.0


class _Run:
    """State of one campaign run; :meth:`run` does the work."""

    def __init__(
        self,
        recipients: Iterable[Any],
        client: MessageSender | None,
        ledger: Ledger,
        settings: CampaignSettings,
        log: Any,
        *,
        control: CampaignControl | None = None,
        owner: str | None = None,
        try_number: int | None = None,
        guards: Guards | None = None,
        spend: SpendGuard | None = None,
    ) -> None:
        self.s = settings
        self.spend = spend
        self.log = log
        self.attempt_id = uuid.uuid4().hex
        self.result = CampaignResult.for_run(settings, self.attempt_id)
        self.control = control
        self.stop = StopEvent(control)
        self.attempt = Attempt(ledger, settings, self.attempt_id, owner=owner, try_number=try_number)
        self.foreign = ForeignClaims(self.attempt)
        self.pacer = Pacer.for_campaign(settings, self.stop)
        self.pool = send_pool(client, self.pacer, self.stop, settings.send_engine)
        self.jobs = JobQueue()
        self.adapt = AdaptiveConcurrency(settings, self.pool)
        self.answers = AnswerHandler(
            settings,
            self.result,
            attempt=self.attempt,
            jobs=self.jobs,
            pacer=self.pacer,
            stop=self.stop,
            log=log,
        )
        self.handover = self._hand_over(guards or Guards())
        self.intake = Intake(recipients, settings)
        self.admission = Admission(
            settings,
            self.result,
            intake=self.intake,
            eligibility=Eligibility(ledger, settings, self.attempt_id),
            attempt=self.attempt,
            handover=self.handover,
        )
        self.shared = shared_pace(
            settings, ledger, client, sender_id=self.attempt_id, pacer=self.pacer, log=log
        )
        self.stopped = False  # wound down on a stop request (one coming after the last answer is too late)
        self.started = time.monotonic()
        self.progress = ProgressLog(log, settings, expected_rows(recipients, settings), self.started)

    def _hand_over(self, guards: Guards) -> HandOver:
        """The run's hand-over, sharing its queue, pool, pace, claims and answers."""
        return HandOver(
            self.s,
            jobs=self.jobs,
            pool=self.pool,
            pacer=self.pacer,
            adapt=self.adapt,
            attempt=self.attempt,
            foreign=self.foreign,
            guards=guards,
            spend=self.spend,
            answers=self.answers,
            stop=self.stop,
            control=self.control,
        )

    @property
    def in_flight(self) -> int:
        """Jobs handed to the pool and not answered yet (each holds a claim)."""
        return self.handover.in_flight

    @property
    def halted_or_failed(self) -> bool:
        """A HALT error or a fatal error stopped the run."""
        return self.answers.halt_error is not None or self.answers.fatal is not None

    @property
    def budget_reached(self) -> bool:
        """The next recipient did not fit in ``max_cost``: nothing more is handed over."""
        return self.handover.budget_reached

    @property
    def stop_requested(self) -> bool:
        """The caller asked the run to stop through its control."""
        return self.control is not None and self.control.stop_requested

    # -- top level ------------------------------------------------------------------------------

    def run(self) -> CampaignResult:
        """Send the campaign and record every outcome; raise on a stop, a halt or a fatal error."""
        if not self.s.dry_run:
            self._start_attempt()
            self.adapt.start()
            self.shared.start(time.monotonic())
        self.progress.start()
        try:
            self._loop()
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            # Threads still in a request the run gave up on are not waited for: they are daemons.
            self.pool.close(timeout=0.2 if self.handover.gave_up else 60.0)
            self.shared.leave()  # nothing more leaves: the number's other senders take its share back
        self._finish()
        if self.stopped:
            raise CampaignStopped(self.result)
        trip = self.handover.trip
        if trip is not None and trip_explains(self.answers.halt_error):
            raise deferred_error(trip, self.result)
        if self.answers.halt_error is not None:
            raise self.answers.halted()
        if self.answers.fatal is not None:
            raise self.answers.fatal
        return self.result

    def _start_attempt(self) -> None:
        """Take over the claims of attempts that are over (they become ``unknown``), record this one."""
        stale = self.attempt.start()
        self.result.stale_unknown = len(stale)
        log_taken_over(self.log, self.s.campaign_id, stale, "were left claimed by an attempt that is over")

    def _loop(self) -> None:
        """Until the input is done, every job answered and no claim of another attempt is left to wait
        for: collect answers, read input, hand jobs over, nap."""
        while True:
            self.handover.collect(timeout=0.0)
            now = time.monotonic()
            self._housekeeping(now)
            if self.halted_or_failed or self.stop_requested or self._tripped(now):
                self._wind_down()
                return
            if self.budget_reached:  # what is in flight is paid for; the rest is released
                self.log.warning("campaign %s: max_cost reached: %s", self.s.campaign_id, self.spend)
                self._settle_in_flight(DRAIN_LIMIT_S)
                return
            jobs, batch_size, read_s = self.jobs, self.s.batch_size, self.admission.read_s
            if (
                not self.intake.exhausted
                and jobs.ready < max(1, batch_size // 2, hand_over_lead(self.pacer.rate, read_s))
                and jobs.delayed < 4 * batch_size
            ):
                self.handover.dispatch(ahead_s=read_s)  # the read holds the hand-over up meanwhile
                self.admission.read_batch()
            self.handover.dispatch()
            if self._all_done(now):
                return
            timeout = 0.2
            due = jobs.next_due()
            if due is not None:
                timeout = max(0.0, min(timeout, due - now))
            # Short naps instead of waking up for every answer: answers are handled a few at a time,
            # which costs the sending threads fewer hand-overs of the interpreter lock.
            time.sleep(min(timeout, _POLL_S))

    def _tripped(self, now: float) -> bool:
        """Whether a guard stops the run (:meth:`~.handover.HandOver.poll_guards`)."""
        trip = self.handover.poll_guards(now)
        if trip is not None:
            self.result.deferred = trip.kind
            self.log.warning("campaign %s: stopping: %s", self.s.campaign_id, trip.message)
        return self.handover.trip is not None

    def _housekeeping(self, now: float) -> None:
        """The periodic work of the loop: flush, heartbeat, due retries, rate recovery, held claims,
        progress."""
        self.attempt.flush(force=False, now=now)
        self.attempt.beat(now)
        self.jobs.release_due(now)
        raised = self.pacer.tick(now)
        if raised is not None:
            self.log.info("campaign %s: send rate raised to %g msg/s", self.s.campaign_id, raised)
        self.adapt.tick(now, self.pacer.rate, self.handover.dispatched.values())
        self.shared.tick(now)
        if self.foreign.due(now):
            self._settle_foreign(now)
        self.progress.tick(
            now, self.result, processed=self.result.accounted, in_flight=self.in_flight, rate=self.pacer.rate
        )

    def _all_done(self, now: float) -> bool:
        """Nothing left to read, send or wait for; claims other attempts still hold once waited out."""
        jobs = self.jobs
        if not self.intake.exhausted or jobs.ready or jobs.delayed or self.in_flight:
            return False
        if not self.foreign:
            return True
        if not self.foreign.waited_out(now):
            return False
        held = self.foreign.drop()
        self.result.foreign_claimed += held
        self.log.warning(
            "campaign %s: %d recipients are still claimed by another attempt that is alive; not counted "
            "as done and not sent by this run (a later run finds them settled)",
            self.s.campaign_id,
            held,
        )
        return True

    # -- hand-over ------------------------------------------------------------------------------

    def _settle_foreign(self, now: float) -> None:
        """Look at the claims other attempts hold: send the released, count the final ones as done."""
        settled = self.foreign.settle(now)
        for job in settled.send:
            self.jobs.add(job)
        self.admission.not_sent(settled.unsent, L.utcnow())
        r = self.result
        r.skipped += settled.done
        r.already_done += settled.done
        r.stale_unknown += len(settled.taken_over)
        log_taken_over(
            self.log, self.s.campaign_id, settled.taken_over, "were claimed by an attempt that is now over"
        )

    # -- answers --------------------------------------------------------------------------------

    def _wind_down(self) -> None:
        """Stop sending: no new request starts; settle the requests in flight (all of them after a halt
        or an error, those answered within ``stop_grace_s`` after a stop)."""
        self.stop.set()
        if self.stop_requested:
            self.log.warning(
                "campaign %s: stopping (%s): no new request; waiting up to %g s for %d in flight",
                self.s.campaign_id,
                self.control.reason if self.control is not None else "",
                self.s.stop_grace_s,
                self.in_flight,
            )
        self._settle_in_flight(self.s.stop_grace_s if self.stop_requested else DRAIN_LIMIT_S)

    def _settle_in_flight(self, limit_s: float) -> None:
        """Settle the requests in flight (:meth:`~.handover.HandOver.settle_in_flight`); the run
        counts as stopped if a stop was asked for meanwhile."""
        self.handover.settle_in_flight(limit_s)
        self.stopped = self.stop_requested

    # -- endings --------------------------------------------------------------------------------

    def _release(self) -> None:
        """Give back what this run will not send: its unsent claims (deleted, so a later run sends
        them) and the jobs it never handed over; count what other attempts still hold."""
        released = self.handover.release_all()
        held = self.foreign.drop()
        r = self.result
        r.released += released
        r.foreign_claimed += held
        if released:
            self.log.warning(
                "campaign %s: %d recipients were not sent and were released for a later run",
                self.s.campaign_id,
                released,
            )

    def _end_state(self) -> RunState:
        """How the run ended, as the ledger records it (the result notes a halt and a stop too)."""
        r = self.result
        if self.answers.halt_error is not None:
            r.halted = True
            r.halt_error = self.answers.halt_error.to_dict()
        if self.stopped:
            r.stopped = True
            r.stop_reason = self.control.reason if self.control is not None else None
            return RunState.KILLED
        if self.answers.halt_error is not None or self.handover.trip is not None:
            return RunState.HALTED
        return RunState.ERROR if self.answers.fatal is not None else RunState.FINISHED

    def _finish(self) -> None:
        """Final counts, the last writes, and the attempt's end in the ledger."""
        r = self.result
        r.elapsed_s = time.monotonic() - self.started
        r.final_rate = self.pacer.rate
        r.peak_concurrency = self.adapt.largest
        state = self._end_state()
        if not self.s.dry_run:
            self.attempt.flush(force=True, now=time.monotonic())
            if state != RunState.FINISHED or self.budget_reached:
                self._release()
        if self.spend is not None:
            r.budget_reached = self.spend.reached
            r.cost = self.spend.to_dict()
        if not self.s.dry_run:
            self.attempt.finish(state, r.to_dict())
        self.progress.summary(r)

    def _abort(self, exc: BaseException) -> None:
        """The coordinator itself failed: stop, record what came back, release unsent claims."""
        self.stop.set()
        if self.s.dry_run:
            return
        try:
            self._settle_in_flight(limit_s=60.0)
            self.attempt.flush(force=True, now=time.monotonic())
            self._release()
            self.result.elapsed_s = time.monotonic() - self.started
            state = RunState.KILLED if self.stopped else RunState.ERROR
            self.attempt.finish(state, self.result.to_dict())
        except Exception:
            self.log.exception(
                "campaign %s: could not record the state after %s; recipients still claimed will be "
                "marked unknown by the next run",
                self.s.campaign_id,
                type(exc).__name__,
            )


def run_campaign(
    recipients: Iterable[Mapping[str, Any] | str | Any],
    *,
    client: MessageSender | None,
    ledger: Ledger,
    settings: CampaignSettings,
    log: logging.Logger | Any | None = None,
    control: CampaignControl | None = None,
    owner: str | None = None,
    try_number: int | None = None,
    guards: Guards | None = None,
    spend: SpendGuard | None = None,
) -> CampaignResult:
    """Send one campaign (or one shard of it) and return its counts.

    :param recipients: phone strings or mappings with ``settings.recipient_field`` (and the fields
        the personaliser uses), read lazily: a generator or :func:`~.sources.iter_cursor_rows`
        keeps memory flat.
    :param client: the Graph client (``GraphClient``); may be ``None`` for a dry run.
    :param ledger: where claims and outcomes are recorded; shared by every run and shard.
    :param settings: what to send and how.
    :param log: logger for progress lines (``logging.Logger`` or compatible); numbers are masked.
    :param control: lets the caller stop the run from another thread or a signal handler
        (:meth:`CampaignControl.stop` only sets flags); the run then raises :class:`CampaignStopped`.
    :param owner: the task instance this attempt belongs to (an opaque name, e.g.
        ``dag_id.task_id.run_id.map_index``), recorded with the attempt: a later try of the same owner
        takes over this attempt's claims as soon as it stopped beating its heartbeat.
    :param try_number: which try of ``owner`` this is.
    :param guards: conditions looked at between hand-overs (a paused template, a messaging limit);
        one that trips stops the run like a halt and raises :class:`~.guards.CampaignDeferred`.
    :param spend: prices what is sent and stops at its budget (:class:`~.spend.SpendGuard`).
    :raises CampaignStopped: ``control`` stopped the run; answers in flight within ``stop_grace_s``
        were recorded, the requests still out recorded ``unknown``, unsent claims released.
    :raises CampaignHalted: a HALT error (token, account, template) stopped the run, or the circuit
        breaker did (:class:`~.breaker.CircuitBreakerTripped`: the same error on many recipients);
        in-flight results were recorded and unsent claims released, so a later run resumes safely.
    :raises ConfigurationError: invalid settings, or the recipient field is missing from the input.
    """
    settings.validate()
    if client is None and not settings.dry_run:
        raise ConfigurationError("a Graph client is required unless dry_run=True")
    ledger.ensure_schema()
    with frozen_gc():
        log = log or logging.getLogger(__name__)
        run = _Run(
            recipients,
            client,
            ledger,
            settings,
            log,
            control=control,
            owner=owner,
            try_number=try_number,
            guards=guards,
            spend=spend,
        )
        return run.run()


__all__ = [
    "CampaignControl",
    "CampaignHalted",
    "CampaignResult",
    "CampaignSettings",
    "CampaignStopped",
    "MessageSender",
    "SendResultLike",
    "run_campaign",
]
