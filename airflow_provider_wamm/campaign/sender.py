"""The bulk sender: one campaign run, from a stream of recipients to recorded outcomes.

Flow: rows are read lazily, normalised (bad rows recorded as ``invalid``), deduplicated and filtered
to this shard (:mod:`~.intake`); checked against the ledger (already handled in this campaign,
suppressed, inside the frequency cap) and personalised (:mod:`~.eligibility`); *claimed* in the
ledger in batches, then sent by a pool of threads (:mod:`~.workers`) sharing one
:class:`~airflow_provider_wamm.graph.client.GraphClient` and one pace (:mod:`~.pacing`). Failures are
handled by what their code means (:class:`~airflow_provider_wamm.graph.errors.Action`): retried with
backoff, slowed down, delayed for that recipient only, recorded, or the whole run halted. Outcomes
are written back in batches.

Only the coordinating thread (this module) touches the ledger and the counts; worker threads only
make HTTP requests. Memory is bounded by the batch size and the number of requests in flight, never
by the number of recipients.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.eligibility import Eligibility, Invalid, Send, Skip, SkipReason
from airflow_provider_wamm.campaign.intake import Candidate, Intake, IntakeBatch
from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome, Suppression
from airflow_provider_wamm.campaign.pacing import Pacer
from airflow_provider_wamm.campaign.progress import ProgressLog, expected_rows
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignResult
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.workers import (
    Accepted,
    Answer,
    Crashed,
    Job,
    JobQueue,
    MessageSender,
    Misconfigured,
    NotSent,
    Refused,
    SendResultLike,
    Unanswered,
    Unsent,
    WorkerPool,
)
from airflow_provider_wamm.graph.errors import (
    CODE_PER_USER_LIMIT,
    CODE_STOPPED_MARKETING,
    Action,
    ConfigurationError,
    GraphError,
    TransientError,
)
from airflow_provider_wamm.graph.recipients import mask_phone

_MESSAGE_STATES = {
    "accepted": L.ACCEPTED,
    "held_for_quality_assessment": L.HELD,
    "paused": L.PAUSED,
}
#: Counters of :class:`CampaignResult` raised by each kind of skip.
_SKIP_COUNTERS: dict[SkipReason, tuple[str, ...]] = {
    SkipReason.DUPLICATE: ("duplicates",),
    SkipReason.ALREADY_DONE: ("skipped", "already_done"),
    SkipReason.SUPPRESSED: ("suppressed",),
    SkipReason.FREQUENCY_CAPPED: ("skipped", "frequency_capped"),
}
#: Longest nap of the coordinating thread between looks at finished requests.
_POLL_S = 0.005


def _code_key(error: GraphError) -> str:
    """The key of an error in ``errors_by_code``: the Graph code, else the HTTP status."""
    if error.code is not None:
        return str(error.code)
    return f"http_{error.http_status}" if error.http_status is not None else "transport"


class _Run:
    """State of one campaign run; :meth:`run` does the work."""

    def __init__(
        self,
        recipients: Iterable[Any],
        client: MessageSender | None,
        ledger: Ledger,
        settings: CampaignSettings,
        log: Any,
    ) -> None:
        self.s = settings
        self.ledger = ledger
        self.log = log
        self.attempt_id = uuid.uuid4().hex
        self.result = CampaignResult(
            campaign_id=settings.campaign_id,
            attempt_id=self.attempt_id,
            template_name=settings.template_name,
            language=settings.language,
            shard_index=settings.shard_index,
            shard_count=settings.shard_count,
            dry_run=settings.dry_run,
        )
        self.stop = threading.Event()
        self.intake = Intake(recipients, settings)
        self.eligibility = Eligibility(ledger, settings, self.attempt_id)
        self.pacer = Pacer.for_campaign(settings, self.stop)
        self.pool = WorkerPool(client, self.pacer, self.stop)
        self.jobs = JobQueue()
        self.in_flight = 0
        self.max_in_flight = max(2 * settings.concurrency, int(settings.max_messages_per_second / 4))
        self.outcomes: list[SendOutcome] = []
        self.suppressions: list[Suppression] = []
        self.halt_error: GraphError | None = None
        self.fatal: BaseException | None = None
        self.started = time.monotonic()
        self.last_flush = self.last_heartbeat = self.started
        self.progress = ProgressLog(log, settings, expected_rows(recipients, settings), self.started)
        self.processed = 0  # rows of this shard fully handled (for the ETA)
        self.on_action: dict[Action, Callable[[Job, GraphError], None]] = {
            Action.RETRY: self._retry,
            Action.THROTTLE: self._throttled,
            Action.PAIR_LIMIT: self._pair_limited,
            Action.HALT: self._halt,
            Action.RECIPIENT: self._recipient_error,
        }

    # -- top level ------------------------------------------------------------------------------

    def run(self) -> CampaignResult:
        """Send the campaign and record every outcome; raise on a halt or a fatal error."""
        if not self.s.dry_run:
            self._start_attempt()
            self.pool.resize(self.s.concurrency)
        self.progress.start()
        try:
            self._loop()
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            self.pool.close()
        self._finish()
        if self.halt_error is not None:
            raise CampaignHalted(self.halt_error, self.result)
        if self.fatal is not None:
            raise self.fatal
        return self.result

    def _start_attempt(self) -> None:
        """Turn abandoned claims of earlier attempts into ``unknown`` and record this attempt."""
        s = self.s
        stale = self.ledger.mark_stale_claims(
            s.campaign_id,
            attempt_id=self.attempt_id,
            shard_index=s.shard_index if s.shard_count > 1 else None,
            live_within=timedelta(seconds=s.claims_abandoned_after_s),
        )
        self.result.stale_unknown = stale
        if stale:
            self.log.warning(
                "campaign %s: %d recipients were left claimed by an attempt that did not finish; "
                "recorded as unknown (not sent again unless resend_unknown=True)",
                s.campaign_id,
                stale,
            )
        self.ledger.start_run(
            s.campaign_id,
            self.attempt_id,
            shard_index=s.shard_index,
            shard_count=s.shard_count,
            dry_run=False,
        )

    def _loop(self) -> None:
        """Until the input is done and every job answered: collect, dispatch, read more, nap."""
        batch_size = self.s.batch_size
        while True:
            self._collect(timeout=0.0)
            now = time.monotonic()
            self._housekeeping(now)
            if self.halt_error is not None or self.fatal is not None:
                self._drain_in_flight()
                return
            jobs = self.jobs
            while jobs.ready and self.in_flight < self.max_in_flight:
                self.pool.submit(jobs.take())
                self.in_flight += 1
            if (
                not self.intake.exhausted
                and jobs.ready < max(1, batch_size // 2)
                and jobs.delayed < 4 * batch_size
            ):
                self._read_batch()
                continue
            if self.intake.exhausted and not jobs.ready and not self.in_flight and not jobs.delayed:
                return
            timeout = 0.2
            due = jobs.next_due()
            if due is not None:
                timeout = max(0.0, min(timeout, due - now))
            # Short naps instead of waking up for every answer: answers are handled a few at a time,
            # which costs the sending threads fewer hand-overs of the interpreter lock.
            time.sleep(min(timeout, _POLL_S))
            self._collect(timeout=0.0)

    def _housekeeping(self, now: float) -> None:
        """The periodic work of the loop: flush, heartbeat, due retries, rate recovery, progress."""
        self._flush(force=False, now=now)
        self._heartbeat(now)
        self.jobs.release_due(now)
        raised = self.pacer.tick(now)
        if raised is not None:
            self.log.info("campaign %s: send rate raised to %g msg/s", self.s.campaign_id, raised)
        self.progress.tick(
            now, self.result, processed=self.processed, in_flight=self.in_flight, rate=self.pacer.rate
        )

    # -- input ----------------------------------------------------------------------------------

    def _read_batch(self) -> None:
        """Read a batch of input, record its invalid rows, and queue what may be sent."""
        s = self.s
        batch = self.intake.read_batch(s.batch_size)
        self._count_intake(batch)
        if batch.invalid and not s.dry_run:
            self.ledger.record_unsent(
                s.campaign_id,
                [row.outcome() for row in batch.invalid],
                attempt_id=self.attempt_id,
                shard_index=s.shard_index,
                template_name=s.template_name,
                language=s.language,
            )
        if batch.candidates:
            self._admit(batch.candidates)

    def _count_intake(self, batch: IntakeBatch) -> None:
        """Count what a read of the input found (its candidates are counted once decided)."""
        r = self.result
        r.total += batch.total
        r.duplicates += batch.duplicates
        for row in batch.invalid:
            r.add_invalid(row.reason)
        self.processed += batch.duplicates + len(batch.invalid)

    def _admit(self, candidates: Sequence[Candidate]) -> None:
        """Decide about the candidates, record those not sent to, claim the others and queue them."""
        s, ledger = self.s, self.ledger
        now = L.utcnow()
        sends: list[Send] = []
        unsent: list[SendOutcome] = []
        for decision in self.eligibility.decide(candidates, now=now):
            if isinstance(decision, Send):
                sends.append(decision)
                continue
            self._count_decision(decision)
            outcome = decision.outcome()
            if outcome is not None:
                unsent.append(outcome)
        if s.dry_run:
            self.result.would_send += len(sends)
            self.processed += len(sends)
            return
        ledger.record_unsent(
            s.campaign_id,
            unsent,
            attempt_id=self.attempt_id,
            shard_index=s.shard_index,
            template_name=s.template_name,
            language=s.language,
            now=now,
        )
        self._claim(sends, now=now)

    def _count_decision(self, decision: Skip | Invalid) -> None:
        """Count a recipient that is not sent to."""
        r = self.result
        self.processed += 1
        if isinstance(decision, Invalid):
            r.add_invalid(decision.reason)
            return
        for counter in _SKIP_COUNTERS[decision.reason]:
            setattr(r, counter, getattr(r, counter) + 1)

    def _claim(self, sends: list[Send], *, now: datetime) -> None:
        """Claim the recipients in the ledger and queue the jobs of those this attempt got."""
        s = self.s
        claimed = self.ledger.claim(
            s.campaign_id,
            [d.recipient for d in sends],
            attempt_id=self.attempt_id,
            shard_index=s.shard_index,
            template_name=s.template_name,
            language=s.language,
            resend_unknown=s.resend_unknown,
            now=now,
        )
        for send in sends:
            if send.recipient in claimed:
                self.jobs.add(Job(send.recipient, send.payload))
            else:  # another attempt or shard got there first
                self._count_decision(Skip(send.recipient, SkipReason.ALREADY_DONE))

    # -- answers --------------------------------------------------------------------------------

    def _collect(self, *, timeout: float) -> None:
        """Handle finished requests: wait up to ``timeout`` for the first, then take what is there."""
        for answer in self.pool.collect(timeout):
            self._handle(answer)

    def _drain_in_flight(self, limit_s: float = 300.0) -> None:
        """After a stop: wait for every request in flight to come back and record it."""
        self.stop.set()
        deadline = time.monotonic() + limit_s
        while self.in_flight > 0 and time.monotonic() < deadline:
            self._collect(timeout=0.5)

    def _handle(self, answer: Answer) -> None:
        """Act on one answer of a worker, by its kind."""
        self.in_flight -= 1
        self.pacer.on_answer()
        match answer:
            case Accepted():
                self._accepted(answer.job, answer.result)
            case Refused():
                self._refused(answer.job, answer.error)
            case NotSent():
                self._refused(answer.job, TransientError(f"request not sent: {answer.error}"))
            case Unanswered():
                self._unknown(answer.job, answer.error)
            case Crashed():
                self._unknown(answer.job, answer.error)
                self._stop_on(answer.error)
            case Misconfigured():
                self._stop_on(answer.error)  # still claimed: released before the error is raised
            case Unsent():
                pass  # still claimed: released after a halt

    def _accepted(self, job: Job, sent: SendResultLike) -> None:
        """Meta took the message: count it by the state Meta answered."""
        r = self.result
        status = str(getattr(sent, "message_status", "") or "accepted")
        state = _MESSAGE_STATES.get(status, L.ACCEPTED)
        setattr(r, state, getattr(r, state) + 1)
        self.processed += 1
        self.outcomes.append(
            SendOutcome(job.recipient, state, wamid=sent.wamid, message_status=status, attempts=job.attempts)
        )

    def _refused(self, job: Job, error: GraphError) -> None:
        """Act on a Graph error by what its code means (retry, slow down, delay, halt, record)."""
        self.on_action.get(error.action, self._recipient_error)(job, error)

    def _unknown(self, job: Job, error: BaseException) -> None:
        """No answer: Meta may or may not have the message, so it is recorded ``unknown``."""
        r = self.result
        r.unknown += 1
        self.processed += 1
        r.errors_by_code["unknown"] += 1
        self.outcomes.append(
            SendOutcome(
                job.recipient,
                L.UNKNOWN,
                error_details=f"{type(error).__name__}: {error}"[:500],
                attempts=job.attempts,
            )
        )

    def _stop_on(self, error: BaseException) -> None:
        """Stop the run; ``error`` is raised at the end (the first such error wins)."""
        if self.fatal is None:
            self.fatal = error
            self.stop.set()

    def _retry(self, job: Job, error: GraphError) -> None:
        """Transient: send again after a backoff, or give up after ``max_attempts``."""
        job.transient += 1
        if job.transient >= self.s.max_attempts:
            self._fail(job, error, not_before_in=timedelta(0))
        else:
            self.result.retries += 1
            self._later(job, self._backoff(job.transient))

    def _throttled(self, job: Job, error: GraphError) -> None:
        """Throttled: maybe slow the whole run down; send this one again after a backoff."""
        self.result.throttled += 1
        job.throttles += 1
        lowered = self.pacer.on_throttle()
        if lowered is not None:
            self.log.warning(
                "campaign %s: throttled by Meta (code %s); send rate lowered to %g msg/s",
                self.s.campaign_id,
                error.code,
                lowered,
            )
        if job.throttles > 4 * self.s.max_attempts:
            self._fail(job, error, not_before_in=timedelta(0))
        else:
            self._later(job, self._backoff(job.throttles))

    def _pair_limited(self, job: Job, error: GraphError) -> None:
        """Too many messages to this recipient: delay only them, 4^n seconds."""
        self.result.pair_limited += 1
        job.pair_hits += 1
        if job.pair_hits > self.s.max_attempts:
            self._fail(job, error, not_before_in=timedelta(0))
        else:
            self._later(job, float(4 ** min(job.pair_hits - 1, self.s.max_pair_limit_exponent)))

    def _halt(self, job: Job, error: GraphError) -> None:
        """The account, token or template is broken: stop at once (the job stays claimed, then released)."""
        if self.halt_error is None:
            self.halt_error = error
            self.stop.set()
            self.log.error("campaign %s: halting: %s", self.s.campaign_id, error)

    def _recipient_error(self, job: Job, error: GraphError) -> None:
        """Permanent for this recipient; a stop or Meta's per-user limit also suppresses them."""
        s = self.s
        if error.code == CODE_STOPPED_MARKETING:
            self.suppressions.append(
                Suppression(job.recipient, L.SUPPRESS_STOPPED_MARKETING, error.code, None, s.campaign_id)
            )
            self._fail(job, error)
        elif error.code == CODE_PER_USER_LIMIT:
            until = L.utcnow() + s.per_user_limit_wait
            self.suppressions.append(
                Suppression(job.recipient, L.SUPPRESS_PER_USER_LIMIT, error.code, until, s.campaign_id)
            )
            self._fail(job, error, not_before_in=s.per_user_limit_wait)
        else:
            self._fail(job, error)

    def _fail(self, job: Job, error: GraphError, *, not_before_in: timedelta | None = None) -> None:
        """Record a final refusal; ``not_before_in`` lets a later run try again after that long."""
        r = self.result
        r.failed += 1
        self.processed += 1
        r.errors_by_code[_code_key(error)] += 1
        self.outcomes.append(
            SendOutcome(
                job.recipient,
                L.FAILED,
                error_code=error.code,
                error_title=error.title,
                error_details=error.details or error.message,
                attempts=job.attempts,
                not_before=L.utcnow() + not_before_in if not_before_in is not None else None,
            )
        )
        self.log.debug("campaign %s: %s failed: %s", self.s.campaign_id, mask_phone(job.recipient), error)

    def _backoff(self, n: int) -> float:
        """Delay before the ``n``-th retry: doubling up to the maximum, half of it jittered."""
        delay = min(self.s.retry_backoff_max_s, self.s.retry_backoff_s * (2 ** max(0, n - 1)))
        return delay / 2 + random.uniform(0, delay / 2)

    def _later(self, job: Job, delay: float) -> None:
        """Send ``job`` again in ``delay`` seconds."""
        self.jobs.later(job, time.monotonic() + delay)

    # -- the ledger and the log -----------------------------------------------------------------

    def _heartbeat(self, now: float) -> None:
        """Tell concurrent attempts of this campaign that this one is alive (its claims are not stale)."""
        if self.s.dry_run or now - self.last_heartbeat < self.s.heartbeat_interval_s:
            return
        self.last_heartbeat = now
        self.ledger.heartbeat(self.attempt_id)

    def _flush(self, *, force: bool, now: float) -> None:
        """Write outcomes and suppressions: a batch full, a second gone by, or ``force``."""
        if not self.outcomes and not self.suppressions:
            return
        if not force and len(self.outcomes) < self.s.batch_size and now - self.last_flush < 1.0:
            return
        if self.outcomes:
            self.ledger.record_results(self.s.campaign_id, self.outcomes, attempt_id=self.attempt_id)
            self.outcomes = []
        if self.suppressions:
            self.ledger.add_suppressions(self.suppressions)
            self.suppressions = []
        self.last_flush = now

    # -- endings --------------------------------------------------------------------------------

    def _release(self) -> None:
        """Give this attempt's unsent claims back, so a later run sends them."""
        released = self.ledger.release_claims(self.s.campaign_id, attempt_id=self.attempt_id)
        self.result.released = released
        if released:
            self.log.warning(
                "campaign %s: %d claimed recipients were not sent and were released for a later run",
                self.s.campaign_id,
                released,
            )

    def _finish(self) -> None:
        """Final counts, the last writes, and the attempt's end in the ledger."""
        r, s = self.result, self.s
        r.elapsed_s = time.monotonic() - self.started
        r.final_rate = self.pacer.rate
        if s.dry_run:
            self.progress.summary(self.result)
            return
        self._flush(force=True, now=time.monotonic())
        state = "finished"
        if self.halt_error is not None or self.fatal is not None:
            self._release()
            state = "halted" if self.halt_error is not None else "error"
        if self.halt_error is not None:
            r.halted = True
            r.halt_error = self.halt_error.to_dict()
        self.ledger.finish_run(self.attempt_id, state=state, summary=r.to_dict())
        self.progress.summary(self.result)

    def _abort(self, exc: BaseException) -> None:
        """The coordinator itself failed: stop, record what came back, release unsent claims."""
        self.stop.set()
        if self.s.dry_run:
            return
        try:
            self._drain_in_flight(limit_s=60.0)
            self._flush(force=True, now=time.monotonic())
            self._release()
            self.result.elapsed_s = time.monotonic() - self.started
            self.ledger.finish_run(self.attempt_id, state="error", summary=self.result.to_dict())
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
) -> CampaignResult:
    """Send one campaign (or one shard of it) and return its counts.

    :param recipients: phone strings or mappings with ``settings.recipient_field`` (and the fields
        the personaliser uses), read lazily: a generator or :func:`~.sources.iter_cursor_rows`
        keeps memory flat.
    :param client: the Graph client (``GraphClient``); may be ``None`` for a dry run.
    :param ledger: where claims and outcomes are recorded; shared by every run and shard.
    :param settings: what to send and how.
    :param log: logger for progress lines (a ``logging.Logger`` or a compatible one such as the
        Airflow task logger); phone numbers are masked.
    :raises CampaignHalted: a HALT error (token, account, template) stopped the run; in-flight
        results were recorded and unsent claims released, so a later run resumes safely.
    :raises ConfigurationError: invalid settings, or the recipient field is missing from the input.
    """
    settings.validate()
    if client is None and not settings.dry_run:
        raise ConfigurationError("a Graph client is required unless dry_run=True")
    ledger.ensure_schema()
    # Objects that exist now (imports: Airflow's are many) are kept out of the collector's full
    # passes while the campaign runs; walking them all stalls every sending thread for tens of
    # milliseconds, long enough to bunch sends up. Undone afterwards unless the process had frozen
    # objects itself (a forked worker does), whose choice is left as it was.
    already_frozen = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        return _Run(recipients, client, ledger, settings, log or logging.getLogger(__name__)).run()
    finally:
        if not already_frozen:
            gc.unfreeze()


__all__ = [
    "CampaignHalted",
    "CampaignResult",
    "CampaignSettings",
    "MessageSender",
    "SendResultLike",
    "run_campaign",
]
