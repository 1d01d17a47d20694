"""The bulk sender: one campaign run, from a stream of recipients to recorded outcomes.

Flow: rows are read lazily, normalised (bad rows recorded as ``invalid``), deduplicated, filtered
to this shard, checked against the ledger (already handled in this campaign, suppressed, inside the
frequency cap), personalised, *claimed* in the ledger in batches, then sent by a pool of threads
sharing one :class:`~airflow_provider_wamm.graph.client.GraphClient` and one token bucket. Failures
are handled by what their code means (:class:`~airflow_provider_wamm.graph.errors.Action`):
retried with backoff, slowed down, delayed for that recipient only, recorded, or the whole run
halted. Outcomes are written back in batches.

Only the coordinating thread touches the ledger; worker threads only make HTTP requests. Memory is
bounded by the batch size and the number of requests in flight, never by the number of recipients.
"""

from __future__ import annotations

import functools
import gc
import heapq
import logging
import math
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome, Suppression
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignResult
from airflow_provider_wamm.campaign.sharding import in_shard, validate_shard
from airflow_provider_wamm.campaign.sources import SourceRow, iter_rows
from airflow_provider_wamm.graph.errors import (
    CODE_PER_USER_LIMIT,
    CODE_STOPPED_MARKETING,
    Action,
    ConfigurationError,
    GraphError,
    GraphTransportError,
    TransientError,
    UnknownOutcomeError,
)
from airflow_provider_wamm.graph.payload import PayloadError, build_marketing_message
from airflow_provider_wamm.graph.ratelimit import TokenBucket
from airflow_provider_wamm.graph.recipients import mask_phone, normalize_phone

_MESSAGE_STATES = {
    "accepted": L.ACCEPTED,
    "held_for_quality_assessment": L.HELD,
    "paused": L.PAUSED,
}
_MAX_REASONS = 100
#: Longest nap of the coordinating thread between looks at finished requests.
_POLL_S = 0.005
#: Rate-limit waits up to this long are plain sleeps (checked for a stop afterwards).
_SHORT_SLEEP_S = 0.05


def _code_key(error: GraphError) -> str:
    """The key of an error in ``errors_by_code``: the Graph code, else the HTTP status."""
    if error.code is not None:
        return str(error.code)
    return f"http_{error.http_status}" if error.http_status is not None else "transport"


class SendResultLike(Protocol):
    """What a send returns (:class:`~airflow_provider_wamm.graph.client.SendResult`)."""

    @property
    def wamid(self) -> str:
        """Meta's message id."""

    @property
    def message_status(self) -> str:
        """``accepted``, ``held_for_quality_assessment`` or ``paused``."""


class MessageSender(Protocol):
    """The part of :class:`~airflow_provider_wamm.graph.client.GraphClient` the sender uses."""

    def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> SendResultLike:
        """POST one marketing message; raise a ``GraphError`` or ``GraphTransportError`` on failure."""


@dataclass
class CampaignSettings:
    """What to send, to whom, and how fast.

    :param campaign_id: identifies the campaign in the ledger: a recipient gets at most one message
        per campaign id, however often the run is repeated.
    :param template_name: approved marketing template to send.
    :param language: its language code (``en_US``).
    :param personaliser: renders each recipient's template parameters; ``None`` for templates
        without parameters.
    :param product_policy: ``CLOUD_API_FALLBACK`` (Meta's default) or ``STRICT``.
    :param message_activity_sharing: per-message override of the account's activity sharing.
    :param max_messages_per_second: send-rate cap of this run (the phone number's cap divided by the
        number of shards sending at the same time).
    :param concurrency: requests in flight at once (worker threads).
    :param batch_size: recipients claimed, and outcomes written, per ledger round trip.
    :param dry_run: validate and personalise everything, send nothing, write nothing.
    :param resend_unknown: also send to recipients whose earlier request got no answer (``unknown``);
        they may then receive the message twice.
    :param frequency_cap: skip recipients Meta took a message for from *another* campaign within
        this period (``None``: no cap).
    :param shard_index: this worker's shard (``0 .. shard_count - 1``).
    :param shard_count: number of shards the campaign is split into (by a stable hash of the number).
    :param recipient_field: field (dict key or column) holding the phone number.
    :param default_region: region for numbers written without a country code (``"DE"``).
    :param max_attempts: requests per recipient on transient errors before giving up (``failed``,
        retried by a later run).
    :param progress_interval_s: seconds between progress log lines.
    :param retry_backoff_s: first retry delay after a transient error (doubles each time, jittered).
    :param retry_backoff_max_s: longest retry delay.
    :param throttle_recovery_s: after the rate was lowered for throttling, this many quiet seconds
        raise it again by a quarter, up to ``max_messages_per_second``.
    :param heartbeat_interval_s: how often a running attempt records in the ledger that it is alive.
    :param claims_abandoned_after_s: claims of another attempt of the same campaign that has not
        recorded a heartbeat for this long are abandoned (the process died): they become ``unknown``.
        Claims of a live attempt (two runs of one campaign at once) are left to it. Keep it well above
        ``heartbeat_interval_s``.
    :param throttle_share: the rate is halved only when throttling answers make up at least this share
        of the answers of the last second (and at least three of them): an isolated throttle is retried
        on its own, a real overload slows the whole sender down.
    :param min_messages_per_second: the rate never drops below this.
    :param max_pair_limit_exponent: a recipient hitting the pair rate limit for the n-th time waits
        ``4 ** min(n - 1, this)`` seconds.
    :param per_user_limit_wait: how long a recipient is left alone after Meta's per-user marketing
        limit (131049).
    :param total_hint: expected number of input rows (for the ETA) when the input has no length.
    :param dedupe_window: recent recipients remembered in memory to catch duplicates cheaply; the
        ledger catches the rest (in a dry run only this window is checked).
    :param rate_headroom: share of the rate left unused: sends are paced at
        ``max_messages_per_second * (1 - rate_headroom)`` and no one-second window of sends ever holds
        more than that (rounded down), even while catching up after a pause, so that the jitter between
        a send and its arrival at Meta (networks, pauses of either side) does not push any one-second
        window at Meta's end over the cap.
    """

    campaign_id: str
    template_name: str
    language: str
    personaliser: Personaliser | None = None
    product_policy: str | None = None
    message_activity_sharing: bool | None = None
    max_messages_per_second: float = 80.0
    concurrency: int = 32
    batch_size: int = 500
    dry_run: bool = False
    resend_unknown: bool = False
    frequency_cap: timedelta | None = None
    shard_index: int = 0
    shard_count: int = 1
    recipient_field: str = "phone"
    default_region: str | None = None
    max_attempts: int = 5
    progress_interval_s: float = 5.0
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 60.0
    throttle_recovery_s: float = 10.0
    min_messages_per_second: float = 1.0
    throttle_share: float = 0.2
    heartbeat_interval_s: float = 5.0
    claims_abandoned_after_s: float = 60.0
    max_pair_limit_exponent: int = 5
    per_user_limit_wait: timedelta = field(default_factory=lambda: timedelta(hours=24))
    total_hint: int | None = None
    dedupe_window: int = 100_000
    rate_headroom: float = 0.02

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the first invalid setting."""
        if (
            not isinstance(self.campaign_id, str)
            or not self.campaign_id.strip()
            or len(self.campaign_id) > 255
        ):
            raise ConfigurationError("campaign_id must be a non-empty string of at most 255 characters")
        if self.campaign_id != self.campaign_id.strip():
            raise ConfigurationError(
                f"campaign_id {self.campaign_id!r} starts or ends with white space; some databases "
                "ignore trailing spaces in keys, so it could be confused with another campaign"
            )
        rate = self.max_messages_per_second
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise ConfigurationError(f"max_messages_per_second must be a positive number, got {rate!r}")
        for name in ("concurrency", "batch_size", "max_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        validate_shard(self.shard_index, self.shard_count)
        if self.frequency_cap is not None and self.frequency_cap <= timedelta(0):
            raise ConfigurationError("frequency_cap must be a positive timedelta or None")
        if self.min_messages_per_second <= 0 or self.min_messages_per_second > rate:
            raise ConfigurationError(
                "min_messages_per_second must be positive and at most max_messages_per_second"
            )
        if self.progress_interval_s <= 0:
            raise ConfigurationError("progress_interval_s must be positive")
        if not 0 < self.heartbeat_interval_s < self.claims_abandoned_after_s:
            raise ConfigurationError(
                "heartbeat_interval_s must be positive and below claims_abandoned_after_s, got "
                f"{self.heartbeat_interval_s!r} and {self.claims_abandoned_after_s!r}"
            )
        headroom = self.rate_headroom
        if isinstance(headroom, bool) or not isinstance(headroom, (int, float)) or not 0 <= headroom < 0.5:
            raise ConfigurationError(f"rate_headroom must be a number in [0, 0.5), got {headroom!r}")
        if self.default_region is not None:
            normalize_phone("+4915123456789", default_region=self.default_region)  # raises if unknown
        try:  # template name, language and options are the same for every message: check them once
            build_marketing_message(
                to="10000000000",
                template_name=self.template_name,
                language=self.language,
                product_policy=self.product_policy,
                message_activity_sharing=self.message_activity_sharing,
            )
        except PayloadError as exc:
            raise ConfigurationError(f"invalid campaign settings: {exc}") from None


class _SendWindow:
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

    def wait_turn(self, sleep: Callable[[float], None]) -> None:
        """Block (with ``sleep``) until one more send fits the window, and count it."""
        held = False
        while True:
            with self._lock:
                now = time.monotonic()
                times = self._times
                horizon = now - self.window_s
                while times and times[0] <= horizon:
                    times.popleft()
                excess = len(times) - self.limit
                if excess >= 0:
                    wait = times[excess] - horizon
                elif held and now < self._not_before:
                    wait = self._not_before - now
                else:
                    times.append(now)
                    if held:
                        self._not_before = now + self.window_s / self.limit
                    return
            held = True
            sleep(wait)


@dataclass(slots=True)
class _Job:
    recipient: str
    payload: dict[str, Any]
    attempts: int = 0
    transient: int = 0
    throttles: int = 0
    pair_hits: int = 0


class _Stopped(Exception):
    """Raised inside a worker's rate-limit wait when the run stops."""


class _RecentSet:
    """A set remembering only the last ``size`` items (FIFO eviction)."""

    def __init__(self, size: int) -> None:
        self._size = max(0, size)
        self._items: set[str] = set()
        self._order: deque[str] = deque()

    def __contains__(self, item: str) -> bool:
        return item in self._items

    def add(self, item: str) -> None:
        if self._size == 0 or item in self._items:
            return
        self._items.add(item)
        self._order.append(item)
        if len(self._order) > self._size:
            self._items.discard(self._order.popleft())


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
        self.client = client
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
        expected = settings.total_hint
        if expected is None and isinstance(recipients, Sized):
            expected = len(recipients)
        self.expected = math.ceil(expected / settings.shard_count) if expected is not None else None
        self.rows: Iterator[SourceRow] = iter_rows(recipients, recipient_field=settings.recipient_field)
        self.input_done = False
        self.recent = _RecentSet(settings.dedupe_window)
        self.stop = threading.Event()
        # The cap in force: max_messages_per_second, lowered while Meta throttles. Sends are paced a
        # little under it (rate_headroom) by the bucket and bounded by the window.
        self.target_rate = float(settings.max_messages_per_second)
        self.rate = self.target_rate
        self.window = _SendWindow(1)
        self.bucket = TokenBucket(1.0)
        self._set_rate(self.rate)
        self.work: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[tuple[_Job, str, Any]] = queue.SimpleQueue()
        self.workers: list[threading.Thread] = []
        self.ready: deque[_Job] = deque()
        self.delayed: list[tuple[float, int, _Job]] = []
        self.seq = 0
        self.in_flight = 0
        self.max_in_flight = max(2 * settings.concurrency, int(settings.max_messages_per_second / 4))
        self.outcomes: list[SendOutcome] = []
        self.suppressions: list[Suppression] = []
        self.invalid_rows: list[SendOutcome] = []
        self.halt_error: GraphError | None = None
        self.fatal: BaseException | None = None
        self.started = time.monotonic()
        self.last_flush = self.started
        self.last_progress = self.started
        self.last_heartbeat = self.started
        self.last_throttle = -math.inf
        self.last_rate_change = -math.inf
        # Answers and throttling answers of the current one-second window (for throttle_share).
        self.window_start = self.started
        self.window_answers = 0
        self.window_throttles = 0
        self.processed = 0  # rows of this shard fully handled (for the ETA)

    # -- top level ------------------------------------------------------------------------------

    def run(self) -> CampaignResult:
        s = self.s
        if not s.dry_run:
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
            for i in range(s.concurrency):
                thread = threading.Thread(target=self._worker, name=f"wamm-send-{i}", daemon=True)
                thread.start()
                self.workers.append(thread)
        self.log.info(
            "campaign %s: sending template %s/%s%s, shard %d/%d, up to %g msg/s with %d workers%s",
            s.campaign_id,
            s.template_name,
            s.language,
            " (dry run)" if s.dry_run else "",
            s.shard_index,
            s.shard_count,
            s.max_messages_per_second,
            s.concurrency,
            f", about {self.expected} recipients" if self.expected is not None else "",
        )
        try:
            self._loop()
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            self._stop_workers()
        self._finish()
        if self.halt_error is not None:
            raise CampaignHalted(self.halt_error, self.result)
        if self.fatal is not None:
            raise self.fatal
        return self.result

    def _loop(self) -> None:
        while True:
            self._collect(timeout=0.0)
            now = time.monotonic()
            self._flush(force=False, now=now)
            self._heartbeat(now)
            self._release_due(now)
            self._recover_rate(now)
            self._progress(now)
            if self.halt_error is not None or self.fatal is not None:
                self._drain_in_flight()
                return
            while self.ready and self.in_flight < self.max_in_flight:
                self.work.put(self.ready.popleft())
                self.in_flight += 1
            if (
                not self.input_done
                and len(self.ready) < max(1, self.s.batch_size // 2)
                and len(self.delayed) < 4 * self.s.batch_size
            ):
                self._read_batch()
                continue
            if self.input_done and not self.ready and not self.in_flight and not self.delayed:
                return
            timeout = 0.2
            if self.delayed:
                timeout = max(0.0, min(timeout, self.delayed[0][0] - now))
            # Short naps instead of waking up for every answer: answers are handled a few at a time,
            # which costs the sending threads fewer hand-overs of the interpreter lock.
            time.sleep(min(timeout, _POLL_S))
            self._collect(timeout=0.0)

    # -- input ----------------------------------------------------------------------------------

    def _reason(self, text: str) -> None:
        reasons = self.result.invalid_reasons
        if text in reasons or len(reasons) < _MAX_REASONS:
            reasons[text] += 1
        else:
            reasons["other"] += 1

    def _invalid_row(self, row: SourceRow, reason: str) -> None:
        s = self.s
        if row.number % s.shard_count != s.shard_index:
            return  # another shard records it (rows without a number are split by position)
        self.result.total += 1
        self.result.invalid += 1
        self.processed += 1
        self._reason(reason)
        if not s.dry_run:
            self.invalid_rows.append(
                SendOutcome(
                    recipient=f"!{row.number}",
                    state=L.INVALID,
                    error_details=f"row {row.number}: {reason}",
                )
            )

    def _read_batch(self) -> None:
        s, r = self.s, self.result
        batch: list[tuple[str, SourceRow]] = []
        in_batch: set[str] = set()
        while len(batch) < s.batch_size and len(self.invalid_rows) < s.batch_size:
            row = next(self.rows, None)
            if row is None:
                self.input_done = True
                break
            if row.error is not None:
                self._invalid_row(row, row.error)
                continue
            try:
                digits = normalize_phone(row.phone, default_region=s.default_region, field=s.recipient_field)
            except PayloadError as exc:
                self._invalid_row(row, str(exc))
                continue
            if not in_shard(digits, s.shard_index, s.shard_count):
                continue
            r.total += 1
            if digits in in_batch or digits in self.recent:
                r.duplicates += 1
                self.processed += 1
                continue
            in_batch.add(digits)
            self.recent.add(digits)
            batch.append((digits, row))
        if self.invalid_rows and not s.dry_run:
            self.ledger.record_unsent(
                s.campaign_id,
                self.invalid_rows,
                attempt_id=self.attempt_id,
                shard_index=s.shard_index,
                template_name=s.template_name,
                language=s.language,
            )
            self.invalid_rows = []
        if batch:
            self._process_batch(batch)

    def _process_batch(self, batch: list[tuple[str, SourceRow]]) -> None:
        s, r, ledger = self.s, self.result, self.ledger
        now = L.utcnow()
        existing = ledger.existing_sends(s.campaign_id, [d for d, _ in batch])
        todo: list[tuple[str, SourceRow]] = []
        for digits, row in batch:
            prior = existing.get(digits)
            if prior is not None:
                if prior.attempt_id == self.attempt_id and not s.dry_run:
                    r.duplicates += 1  # seen earlier in this run, beyond the in-memory window
                    self.processed += 1
                    continue
                if not prior.reclaimable(now, resend_unknown=s.resend_unknown):
                    r.skipped += 1
                    r.already_done += 1
                    self.processed += 1
                    continue
            todo.append((digits, row))
        keys = [d for d, _ in todo]
        suppressed = ledger.active_suppressions(keys, now=now)
        capped: set[str] = set()
        if s.frequency_cap is not None:
            capped = ledger.recently_messaged(
                [d for d in keys if d not in suppressed],
                since=now - s.frequency_cap,
                exclude_campaign_id=s.campaign_id,
            )
        unsent: list[SendOutcome] = []
        eligible: list[tuple[str, dict[str, Any]]] = []
        for digits, row in todo:
            sup = suppressed.get(digits)
            if sup is not None:
                r.suppressed += 1
                self.processed += 1
                until = f" until {sup.until.isoformat()}" if sup.until else ""
                unsent.append(
                    SendOutcome(
                        digits,
                        L.SKIPPED,
                        error_code=sup.error_code,
                        error_details=f"suppressed: {sup.reason}{until}",
                    )
                )
                continue
            if digits in capped:
                r.skipped += 1
                r.frequency_capped += 1
                self.processed += 1
                unsent.append(
                    SendOutcome(
                        digits,
                        L.SKIPPED,
                        error_details=f"frequency cap: messaged by another campaign within {s.frequency_cap}",
                    )
                )
                continue
            try:
                components = s.personaliser.render(row.fields) if s.personaliser is not None else None
                payload = build_marketing_message(
                    to=digits,
                    template_name=s.template_name,
                    language=s.language,
                    components=components,
                    product_policy=s.product_policy,
                    message_activity_sharing=s.message_activity_sharing,
                )
            except PayloadError as exc:
                r.invalid += 1
                self.processed += 1
                self._reason(str(exc))
                unsent.append(SendOutcome(digits, L.INVALID, error_details=f"row {row.number}: {exc}"))
                continue
            eligible.append((digits, payload))
        if s.dry_run:
            r.would_send += len(eligible)
            self.processed += len(eligible)
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
        claimed = ledger.claim(
            s.campaign_id,
            [d for d, _ in eligible],
            attempt_id=self.attempt_id,
            shard_index=s.shard_index,
            template_name=s.template_name,
            language=s.language,
            resend_unknown=s.resend_unknown,
            now=now,
        )
        for digits, payload in eligible:
            if digits in claimed:
                self.ready.append(_Job(digits, payload))
            else:  # another attempt or shard got there first
                r.skipped += 1
                r.already_done += 1
                self.processed += 1

    # -- workers --------------------------------------------------------------------------------

    def _set_rate(self, rate: float) -> None:
        """Put a new cap in force: pace at ``rate * (1 - headroom)`` and bound every window below it."""
        headroom = self.s.rate_headroom
        self.rate = rate
        paced = rate * (1.0 - headroom)
        # Workers wait for their slot in an interruptible sleep, so a halt does not wait for slots
        # reserved far ahead at a low (throttled) rate.
        self.bucket = TokenBucket(paced, sleep=self._sleep_unless_stopped)
        self.window.limit = max(1, math.floor(paced))

    def _sleep_unless_stopped(self, seconds: float) -> None:
        # A plain sleep costs far less CPU than waiting on the shared Event (whose waiter list every
        # worker contends for); a short one delays a halt by at most _SHORT_SLEEP_S.
        if seconds <= _SHORT_SLEEP_S:
            time.sleep(seconds)
            if self.stop.is_set():
                raise _Stopped
        elif self.stop.wait(seconds):
            raise _Stopped

    def _worker(self) -> None:
        client = self.client
        assert client is not None
        # GraphClient's single-attempt send on its direct connection pool, when the client has it.
        fast = getattr(client, "send_marketing_message_fast", None)
        send: Callable[[Mapping[str, Any]], SendResultLike] = (
            fast if callable(fast) else functools.partial(client.send_marketing_message, retry=False)
        )
        while True:
            job = self.work.get()
            if job is None:
                return
            if self.stop.is_set():
                self.done.put((job, "unsent", None))
                continue
            try:
                self.bucket.acquire()
                self.window.wait_turn(self._sleep_unless_stopped)
            except _Stopped:
                self.done.put((job, "unsent", None))
                continue
            if self.stop.is_set():
                self.done.put((job, "unsent", None))
                continue
            job.attempts += 1
            try:
                sent = send(job.payload)
            except UnknownOutcomeError as exc:
                self.done.put((job, "unknown", exc))
            except GraphTransportError as exc:
                self.done.put((job, "unknown" if exc.request_sent else "not_sent", exc))
            except GraphError as exc:
                if exc.action is Action.HALT:
                    self.stop.set()  # at once: the other workers must not start another request
                self.done.put((job, "error", exc))
            except ConfigurationError as exc:  # e.g. a redirect: nothing was processed
                self.done.put((job, "config", exc))
            except BaseException as exc:
                self.done.put((job, "crash", exc))
            else:
                self.done.put((job, "ok", sent))

    def _stop_workers(self) -> None:
        self.stop.set()
        for _ in self.workers:
            self.work.put(None)
        for thread in self.workers:
            thread.join(timeout=60)
        self.workers = []

    def _collect(self, *, timeout: float) -> None:
        """Handle finished requests: wait up to ``timeout`` for the first, then take what is there."""
        try:
            item = self.done.get(timeout=timeout) if timeout > 0 else self.done.get_nowait()
        except queue.Empty:
            return
        while True:
            self._handle(*item)
            try:
                item = self.done.get_nowait()
            except queue.Empty:
                return

    def _drain_in_flight(self, limit_s: float = 300.0) -> None:
        """After a stop: wait for every request in flight to come back and record it."""
        self.stop.set()
        deadline = time.monotonic() + limit_s
        while self.in_flight > 0 and time.monotonic() < deadline:
            self._collect(timeout=0.5)

    # -- outcomes -------------------------------------------------------------------------------

    def _backoff(self, n: int) -> float:
        delay = min(self.s.retry_backoff_max_s, self.s.retry_backoff_s * (2 ** max(0, n - 1)))
        return delay / 2 + random.uniform(0, delay / 2)

    def _later(self, job: _Job, delay: float) -> None:
        self.seq += 1
        heapq.heappush(self.delayed, (time.monotonic() + delay, self.seq, job))

    def _release_due(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now:
            _, _, job = heapq.heappop(self.delayed)
            self.ready.appendleft(job)

    def _fail(self, job: _Job, error: GraphError, *, not_before_in: timedelta | None = None) -> None:
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

    def _handle(self, job: _Job, kind: str, value: Any) -> None:
        s, r = self.s, self.result
        self.in_flight -= 1
        self._count_answer()
        if kind == "ok":
            status = str(getattr(value, "message_status", "") or "accepted")
            state = _MESSAGE_STATES.get(status, L.ACCEPTED)
            setattr(r, state, getattr(r, state) + 1)
            self.processed += 1
            self.outcomes.append(
                SendOutcome(
                    job.recipient, state, wamid=value.wamid, message_status=status, attempts=job.attempts
                )
            )
            return
        if kind == "unsent":
            return  # still claimed: released after a halt
        if kind == "config":
            if self.fatal is None:
                self.fatal = value
                self.stop.set()
            return  # still claimed: released before the error is raised
        if kind in ("unknown", "crash"):
            r.unknown += 1
            self.processed += 1
            r.errors_by_code["unknown"] += 1
            self.outcomes.append(
                SendOutcome(
                    job.recipient,
                    L.UNKNOWN,
                    error_details=f"{type(value).__name__}: {value}"[:500],
                    attempts=job.attempts,
                )
            )
            if kind == "crash" and self.fatal is None:
                self.fatal = value
                self.stop.set()
            return
        error: GraphError = (
            value if isinstance(value, GraphError) else TransientError(f"request not sent: {value}")
        )
        action = error.action
        if action is Action.RETRY:
            job.transient += 1
            if job.transient >= s.max_attempts:
                self._fail(job, error, not_before_in=timedelta(0))
            else:
                r.retries += 1
                self._later(job, self._backoff(job.transient))
        elif action is Action.THROTTLE:
            r.throttled += 1
            job.throttles += 1
            self._throttle(error)
            if job.throttles > 4 * s.max_attempts:
                self._fail(job, error, not_before_in=timedelta(0))
            else:
                self._later(job, self._backoff(job.throttles))
        elif action is Action.PAIR_LIMIT:
            r.pair_limited += 1
            job.pair_hits += 1
            if job.pair_hits > s.max_attempts:
                self._fail(job, error, not_before_in=timedelta(0))
            else:
                self._later(job, float(4 ** min(job.pair_hits - 1, s.max_pair_limit_exponent)))
        elif action is Action.HALT:
            if self.halt_error is None:
                self.halt_error = error
                self.stop.set()
                self.log.error("campaign %s: halting: %s", s.campaign_id, error)
        elif error.code == CODE_STOPPED_MARKETING:
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

    def _count_answer(self) -> None:
        now = time.monotonic()
        if now - self.window_start >= 1.0:
            self.window_start = now
            self.window_answers = 0
            self.window_throttles = 0
        self.window_answers += 1

    def _throttle(self, error: GraphError) -> None:
        now = time.monotonic()
        self.window_throttles += 1
        if self.window_throttles < 3 or self.window_throttles < self.s.throttle_share * self.window_answers:
            return  # an isolated throttle: the request is retried, the pace stays
        self.last_throttle = now
        if now - self.last_rate_change < 1.0:
            return  # one cut per burst of throttling answers
        new = max(self.s.min_messages_per_second, self.rate / 2)
        if new < self.rate:
            self._set_rate(new)
            self.last_rate_change = now
            self.log.warning(
                "campaign %s: throttled by Meta (code %s); send rate lowered to %g msg/s",
                self.s.campaign_id,
                error.code,
                new,
            )

    def _recover_rate(self, now: float) -> None:
        rate = self.rate
        if rate >= self.target_rate:
            return
        quiet = self.s.throttle_recovery_s
        if now - self.last_throttle >= quiet and now - self.last_rate_change >= quiet:
            self._set_rate(min(self.target_rate, rate * 1.25))
            self.last_rate_change = now
            self.log.info("campaign %s: send rate raised to %g msg/s", self.s.campaign_id, self.rate)

    def _heartbeat(self, now: float) -> None:
        """Tell concurrent attempts of this campaign that this one is alive (its claims are not stale)."""
        if self.s.dry_run or now - self.last_heartbeat < self.s.heartbeat_interval_s:
            return
        self.last_heartbeat = now
        self.ledger.heartbeat(self.attempt_id)

    def _flush(self, *, force: bool, now: float) -> None:
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

    def _progress(self, now: float) -> None:
        if now - self.last_progress < self.s.progress_interval_s:
            return
        self.last_progress = now
        r = self.result
        elapsed = now - self.started
        rate = r.sent / elapsed if elapsed > 0 else 0.0
        done_rate = self.processed / elapsed if elapsed > 0 else 0.0
        eta = ""
        if self.expected and done_rate > 0:
            remaining = max(0, self.expected - self.processed)
            eta = f", ETA {remaining / done_rate:.0f} s"
        of = f"/{self.expected}" if self.expected else ""
        self.log.info(
            "campaign %s: %d%s rows done, %d sent (%.1f msg/s, cap %g), %d failed, %d unknown, "
            "%d skipped, %d suppressed, %d invalid, %d duplicates, %d in flight%s",
            self.s.campaign_id,
            self.processed,
            of,
            r.sent,
            rate,
            self.rate,
            r.failed,
            r.unknown,
            r.skipped,
            r.suppressed,
            r.invalid,
            r.duplicates,
            self.in_flight,
            eta,
        )

    # -- endings --------------------------------------------------------------------------------

    def _release(self) -> None:
        released = self.ledger.release_claims(self.s.campaign_id, attempt_id=self.attempt_id)
        self.result.released = released
        if released:
            self.log.warning(
                "campaign %s: %d claimed recipients were not sent and were released for a later run",
                self.s.campaign_id,
                released,
            )

    def _finish(self) -> None:
        r, s = self.result, self.s
        r.elapsed_s = time.monotonic() - self.started
        r.final_rate = self.rate
        if s.dry_run:
            self._log_summary()
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
        self._log_summary()

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

    def _log_summary(self) -> None:
        r = self.result
        self.log.info(
            "campaign %s%s: %d rows, %d sent (%d accepted, %d held, %d paused), %d failed, %d unknown, "
            "%d skipped, %d suppressed, %d invalid, %d duplicates%s in %.1f s (%.1f msg/s)",
            r.campaign_id,
            " (dry run)" if r.dry_run else "",
            r.total,
            r.sent,
            r.accepted,
            r.held,
            r.paused,
            r.failed,
            r.unknown,
            r.skipped,
            r.suppressed,
            r.invalid,
            r.duplicates,
            f", {r.would_send} would be sent" if r.dry_run else "",
            r.elapsed_s,
            r.messages_per_second,
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


__all__ = ["CampaignHalted", "CampaignResult", "CampaignSettings", "MessageSender", "run_campaign"]
