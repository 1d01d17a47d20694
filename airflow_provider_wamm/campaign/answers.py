"""What a campaign run does with each answer of a worker: count it, record it, send it again, or stop.

:class:`AnswerHandler` acts on the typed answers of :mod:`~.workers`. Meta took the message: its state
is recorded. No usable answer: ``unknown``. A Graph error is handled by what its code means
(:class:`~airflow_provider_wamm.graph.errors.Action`): retried with backoff (the claim given back while
the job waits), slowed down, delayed for that recipient only, recorded as failed (opt-outs and Meta's
per-user limit also suppress the recipient), or the whole run halted. A
:class:`~.breaker.CampaignGuard` sees every answer: the same error on many recipients, or a shared
header link that cannot be fetched, halts the run (:class:`~.breaker.CircuitBreakerTripped`), and a
131009 before anything was accepted holds every send for the template's sync instead of failing the
recipient. Only the run's coordinating thread calls it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.attempt import Attempt
from airflow_provider_wamm.campaign.breaker import CampaignGuard, CircuitBreakerTripped
from airflow_provider_wamm.campaign.ledger import SendOutcome, Suppression
from airflow_provider_wamm.campaign.limit_rules import retry_blocked
from airflow_provider_wamm.campaign.pacing import Pacer
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignResult
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.workers import (
    Accepted,
    Answer,
    Crashed,
    Job,
    JobQueue,
    Misconfigured,
    NotSent,
    Refused,
    SendResultLike,
    Unanswered,
    Unsent,
)
from airflow_provider_wamm.graph.codes import PER_USER_PERMANENT_CODES
from airflow_provider_wamm.graph.errors import (
    CODE_PER_USER_LIMIT,
    CODE_STOPPED_MARKETING,
    Action,
    GraphError,
    TransientError,
)
from airflow_provider_wamm.graph.recipients import mask_phone

#: The send state of each ``message_status`` Meta answers.
MESSAGE_STATES = {
    "accepted": L.ACCEPTED,
    "held_for_quality_assessment": L.HELD,
    "paused": L.PAUSED,
}


def _text(value: object) -> str | None:
    """A non-empty string of Meta's answer, else ``None``."""
    return value.strip() or None if isinstance(value, str) else None


def code_key(error: GraphError) -> str:
    """The key of an error in ``errors_by_code``: the Graph code, else the HTTP status."""
    if error.code is not None:
        return str(error.code)
    return f"http_{error.http_status}" if error.http_status is not None else "transport"


class AnswerHandler:
    """Acts on the answers of one run's workers.

    :param settings: the campaign (attempts, backoff, pair-limit exponent, per-user limit wait).
    :param result: the run's counts, raised here.
    :param attempt: where outcomes and suppressions are queued and claims given back.
    :param jobs: where jobs to send again wait for their turn.
    :param pacer: slowed down by throttling answers.
    :param stop: set on a halt or a fatal error, so that no worker starts another request.
    :param log: the run's logger.
    """

    def __init__(
        self,
        settings: CampaignSettings,
        result: CampaignResult,
        *,
        attempt: Attempt,
        jobs: JobQueue,
        pacer: Pacer,
        stop: threading.Event,
        log: Any,
    ) -> None:
        self.s = settings
        self.result = result
        self.attempt = attempt
        self.jobs = jobs
        self.pacer = pacer
        self.stop = stop
        self.log = log
        self.halt_error: GraphError | None = None
        """The error that halted the run, if one did."""
        self.tripped: str | None = None
        """Why the circuit breaker halted the run, if it did."""
        self.guard = CampaignGuard(settings.breaker)
        self.fatal: BaseException | None = None
        """The error the run raises at the end (a crash of a send, a misconfigured client)."""
        self._on_action: dict[Action, Callable[[Job, GraphError], None]] = {
            Action.RETRY: self._retry,
            Action.THROTTLE: self._throttled,
            Action.PAIR_LIMIT: self._pair_limited,
            Action.HALT: self._halt,
            Action.RECIPIENT: self._recipient_error,
        }

    def handle(self, answer: Answer) -> None:
        """Act on one answer, by its kind."""
        self.pacer.on_answer()
        match answer:
            case Accepted():
                self._accepted(answer.job, answer.result)
            case Refused():
                self._refused(answer.job, answer.error)
            case NotSent():
                self._refused(answer.job, TransientError(f"request not sent: {answer.error}"))
            case Unanswered():
                self.unknown(answer.job, f"{type(answer.error).__name__}: {answer.error}")
            case Crashed():
                self.unknown(answer.job, f"{type(answer.error).__name__}: {answer.error}")
                self._stop_on(answer.error)
            case Misconfigured():
                self._stop_on(answer.error)  # still claimed: released before the error is raised
            case Unsent():
                pass  # still claimed: released at the end

    def unknown(self, job: Job, details: str) -> None:
        """No answer: Meta may or may not have the message, so it is recorded ``unknown``."""
        r = self.result
        r.unknown += 1
        r.errors_by_code["unknown"] += 1
        self.attempt.record(
            SendOutcome(job.recipient, L.UNKNOWN, error_details=details[:500], attempts=job.attempts)
        )

    def _accepted(self, job: Job, sent: SendResultLike) -> None:
        """Meta took the message: count it by the state Meta answered."""
        r = self.result
        self.guard.accepted()
        status = str(getattr(sent, "message_status", "") or "accepted")
        state = MESSAGE_STATES.get(status, L.ACCEPTED)
        setattr(r, state, getattr(r, state) + 1)
        self.attempt.record(
            SendOutcome(
                job.recipient,
                state,
                wamid=sent.wamid,
                message_status=status,
                attempts=job.attempts,
                wa_id=_text(getattr(sent, "wa_id", None)),
                user_id=_text(getattr(sent, "user_id", None)),
            )
        )

    def _refused(self, job: Job, error: GraphError) -> None:
        """Act on a Graph error by what its code means (retry, slow down, delay, halt, record)."""
        self._on_action.get(error.action, self._recipient_error)(job, error)

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
        self._halt_run(error)

    def _halt_run(self, error: GraphError) -> None:
        """Stop at once on ``error`` (the first one wins)."""
        if self.halt_error is None:
            self.halt_error = error
            self.stop.set()
            self.log.error("campaign %s: halting: %s", self.s.campaign_id, error)

    def halted(self) -> CampaignHalted:
        """The exception of a halted run: :class:`CircuitBreakerTripped` when the breaker halted it."""
        assert self.halt_error is not None
        if self.tripped is not None:
            return CircuitBreakerTripped(self.halt_error, self.result, self.tripped)
        return CampaignHalted(self.halt_error, self.result)

    def _trip(self, error: GraphError, reason: str) -> None:
        """The same error is the campaign's, not the recipients': halt like a HALT code."""
        if self.halt_error is None:
            self.tripped = reason
            self.result.tripped = reason
            self.log.error("campaign %s: circuit breaker: %s", self.s.campaign_id, reason)
        self._halt_run(error)

    def _sync_wait(self, job: Job, error: GraphError) -> bool:
        """A 131009 while the template may still be syncing: hold every send, send this one again after
        the wait; ``False`` when it is the recipient's own error."""
        now = time.monotonic()
        guard = self.guard
        waits = guard.sync_waits
        until = guard.sync_hold(error, now)
        if until is None:
            return False
        if guard.sync_waits > waits:
            self.result.sync_waits = guard.sync_waits
            self.pacer.hold_until(until)
            self.log.warning(
                "campaign %s: 131009 before any message was accepted: the template's sync with its ad "
                "may not be complete; every send waits %g s (wait %d of %d)",
                self.s.campaign_id,
                until - now,
                guard.sync_waits,
                self.s.breaker.sync_waits if self.s.breaker is not None else 0,
            )
        self._later(job, until - now)
        return True

    def _recipient_error(self, job: Job, error: GraphError) -> None:
        """Permanent for this recipient; a stop, Meta's per-user limit or a per-user permanent code also
        suppresses them. A 131009 may mean a wait for the template's sync instead."""
        s = self.s
        if self._sync_wait(job, error):
            return
        if error.code == CODE_STOPPED_MARKETING:
            self.attempt.suppress(
                Suppression(job.recipient, L.SUPPRESS_STOPPED_MARKETING, error.code, None, s.campaign_id)
            )
            self._fail(job, error)
        elif error.code == CODE_PER_USER_LIMIT:
            until = L.utcnow() + s.per_user_limit_wait
            self.attempt.suppress(
                Suppression(job.recipient, L.SUPPRESS_PER_USER_LIMIT, error.code, until, s.campaign_id)
            )
            # A US number gets 131049 for every marketing message: never worth a retry.
            blocked = retry_blocked(job.recipient) is not None
            self._fail(job, error, not_before_in=None if blocked else s.per_user_limit_wait)
        elif error.code in PER_USER_PERMANENT_CODES and s.per_user_permanent is not None:
            until = L.utcnow() + s.per_user_permanent
            self.attempt.suppress(
                Suppression(job.recipient, L.SUPPRESS_PER_USER_PERMANENT, error.code, until, s.campaign_id)
            )
            self._fail(job, error)
        else:
            self._fail(job, error)

    def _fail(self, job: Job, error: GraphError, *, not_before_in: timedelta | None = None) -> None:
        """Record a final refusal; ``not_before_in`` lets a later run try again after that long."""
        r = self.result
        r.failed += 1
        r.errors_by_code[code_key(error)] += 1
        not_before = L.utcnow() + not_before_in if not_before_in is not None else None
        self.attempt.record(
            SendOutcome(
                job.recipient,
                L.FAILED,
                error_code=error.code,
                error_title=error.title,
                error_details=error.details or error.message,
                attempts=job.attempts,
                not_before=not_before,
                retry_after=not_before if error.code == CODE_PER_USER_LIMIT else None,
            )
        )
        self.log.debug("campaign %s: %s failed: %s", self.s.campaign_id, mask_phone(job.recipient), error)
        reason = self.guard.failed(job.payload, error)
        if reason is not None:
            self._trip(error, reason)

    def _backoff(self, n: int) -> float:
        """Delay before the ``n``-th retry: doubling up to the maximum, half of it jittered."""
        delay = min(self.s.retry_backoff_max_s, self.s.retry_backoff_s * (2 ** max(0, n - 1)))
        return delay / 2 + random.uniform(0, delay / 2)

    def _later(self, job: Job, delay: float) -> None:
        """Send ``job`` again in ``delay`` seconds; its claim is given back meanwhile (it is claimed
        again when handed over), so a crash in between does not leave it claimed."""
        self.attempt.give_back(job.recipient)
        self.jobs.later(job, time.monotonic() + delay)


__all__ = ["MESSAGE_STATES", "AnswerHandler", "code_key"]
