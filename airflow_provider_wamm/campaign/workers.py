"""The worker pool: threads that send one request per job and hand back a typed answer.

Each worker takes a :class:`Job`, waits for its turn (the run's pacing), posts the message once through
a :class:`MessageSender` (``send_marketing_message(payload, retry=False)``: the sender schedules
retries itself; a :class:`PacedMessageSender` takes the turn right before the write) and puts an
:class:`Answer` on the pool's answer queue: :class:`Accepted`, :class:`Refused` (a Graph error),
:class:`Unanswered` (the request may have reached Meta), :class:`NotSent`, :class:`Unsent` (stopped
before sending), :class:`Misconfigured` or :class:`Crashed`. Workers never touch the ledger.
:meth:`WorkerPool.resize` grows or shrinks the pool while it runs.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import heapq
import inspect
import itertools
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

from airflow_provider_wamm.campaign.pacing import Stopped
from airflow_provider_wamm.graph.errors import (
    Action,
    ConfigurationError,
    GraphError,
    GraphTransportError,
    UnknownOutcomeError,
)

#: Seconds of sending a run hands its workers beyond the requests on the wire (:func:`hand_over_lead`).
LEAD_S = 0.1
#: Most seconds of sending handed over ahead of a read of the input, which holds up the hand-over
#: meanwhile (:func:`hand_over_lead`).
READ_AHEAD_MAX_S = 0.5


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


class PacedMessageSender(Protocol):
    """A sender that takes the pacing turn itself, right before the request is written
    (:class:`~airflow_provider_wamm.graph.client.GraphClient`)."""

    def send_marketing_message(
        self,
        payload: Mapping[str, Any],
        *,
        retry: bool = True,
        before_write: Callable[[], None] | None = None,
    ) -> SendResultLike:
        """POST one marketing message, calling ``before_write`` right before writing it."""


def paces_at_write(client: object) -> bool:
    """Whether ``client``'s send takes a ``before_write`` (then the pacing turn is taken with the
    connection ready, just before the write, so sends reach the wire as the pacer spaced them)."""
    send = getattr(client, "send_marketing_message", None)
    try:
        return send is not None and "before_write" in inspect.signature(send).parameters
    except (TypeError, ValueError):
        return False


class Turn(Protocol):
    """What a worker waits on before each request (:class:`~.pacing.Pacer`)."""

    def wait_turn(self) -> None:
        """Block until the request may leave; raise :class:`~.pacing.Stopped` if the run stops."""


@dataclass(slots=True)
class Job:
    """One recipient's message and how its attempts went so far."""

    recipient: str
    payload: dict[str, Any]
    attempts: int = 0
    """Requests sent for it."""
    transient: int = 0
    """Transient errors answered."""
    throttles: int = 0
    """Throttling answers."""
    pair_hits: int = 0
    """Pair rate limit answers."""
    round_trip_s: float | None = None
    """Seconds the last request took, from leaving to its answer (set by the worker)."""
    left_at: float | None = None
    """``time.perf_counter()`` when its request in flight left (``None`` when none is in flight)."""


class JobQueue:
    """Jobs waiting for a worker: new ones in order, retries held back until they are due (and then
    sent before new ones). One job per recipient: ``recipient in queue`` tells whether it has one."""

    def __init__(self) -> None:
        self._ready: deque[Job] = deque()
        self._delayed: list[tuple[float, int, Job]] = []  # a heap of (due, sequence, job)
        self._sequence = itertools.count()
        self._recipients: set[str] = set()

    def __contains__(self, recipient: object) -> bool:
        return recipient in self._recipients

    @property
    def ready(self) -> int:
        """Jobs that may be sent now."""
        return len(self._ready)

    @property
    def delayed(self) -> int:
        """Jobs held back for a retry."""
        return len(self._delayed)

    def next_due(self) -> float | None:
        """When the first held-back job is due (monotonic seconds), if there is one."""
        return self._delayed[0][0] if self._delayed else None

    def add(self, job: Job) -> None:
        """Queue a new job behind the others."""
        self._ready.append(job)
        self._recipients.add(job.recipient)

    def later(self, job: Job, due: float) -> None:
        """Hold ``job`` back until ``due`` (monotonic seconds)."""
        heapq.heappush(self._delayed, (due, next(self._sequence), job))
        self._recipients.add(job.recipient)

    def release_due(self, now: float) -> None:
        """Move the jobs due by ``now`` to the front of the ready ones."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, job = heapq.heappop(delayed)
            self._ready.appendleft(job)

    def take(self) -> Job:
        """The next ready job (there must be one)."""
        job = self._ready.popleft()
        self._recipients.discard(job.recipient)
        return job

    def take_many(self, n: int) -> list[Job]:
        """The next ``n`` ready jobs (or all of them, if fewer are ready)."""
        ready = self._ready
        jobs = [ready.popleft() for _ in range(min(n, len(ready)))]
        self._recipients.difference_update(job.recipient for job in jobs)
        return jobs

    def drain(self) -> list[Job]:
        """Every job, ready or held back, taking them out of the queue (a run that stops)."""
        jobs = [*self._ready, *(job for _, _, job in self._delayed)]
        self._ready.clear()
        self._delayed.clear()
        self._recipients.clear()
        return jobs


class AnswerKind(enum.StrEnum):
    """How a job came back from a worker."""

    ACCEPTED = "accepted"
    ERROR = "error"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"
    UNSENT = "unsent"
    CONFIG = "config"
    CRASH = "crash"


@dataclass(frozen=True, slots=True)
class Answer:
    """Base of the answers; ``kind`` tells them apart."""

    kind: ClassVar[AnswerKind]
    job: Job


@dataclass(frozen=True, slots=True)
class Accepted(Answer):
    """Meta took the message (accepted, held or paused)."""

    kind: ClassVar[AnswerKind] = AnswerKind.ACCEPTED
    result: SendResultLike


@dataclass(frozen=True, slots=True)
class Refused(Answer):
    """Meta answered with a Graph error."""

    kind: ClassVar[AnswerKind] = AnswerKind.ERROR
    error: GraphError


@dataclass(frozen=True, slots=True)
class Unanswered(Answer):
    """The request may have reached Meta, but no usable answer came back: the outcome is unknown."""

    kind: ClassVar[AnswerKind] = AnswerKind.UNKNOWN
    error: GraphTransportError


@dataclass(frozen=True, slots=True)
class NotSent(Answer):
    """The request certainly did not leave (connection refused and the like): safe to try again."""

    kind: ClassVar[AnswerKind] = AnswerKind.NOT_SENT
    error: GraphTransportError


@dataclass(frozen=True, slots=True)
class Unsent(Answer):
    """The run stopped before the request left; the recipient is still claimed (and is released)."""

    kind: ClassVar[AnswerKind] = AnswerKind.UNSENT


@dataclass(frozen=True, slots=True)
class Misconfigured(Answer):
    """The client refused the request (a redirect, a bad setting): nothing was processed."""

    kind: ClassVar[AnswerKind] = AnswerKind.CONFIG
    error: ConfigurationError


@dataclass(frozen=True, slots=True)
class Crashed(Answer):
    """An unexpected exception during the send: treated as unknown, and the run stops."""

    kind: ClassVar[AnswerKind] = AnswerKind.CRASH
    error: BaseException


def send_once(
    client: MessageSender, job: Job, stop: threading.Event, before_write: Callable[[], None] | None = None
) -> Answer:
    """Post ``job``'s message once and say how it went. A HALT error sets ``stop`` at once, so that
    no other worker starts another request. ``before_write`` (for a :class:`PacedMessageSender`) is
    called right before the request is written; if it raises :class:`~.pacing.Stopped`, nothing was
    sent."""
    job.attempts += 1
    try:
        if before_write is None:
            sent = client.send_marketing_message(job.payload, retry=False)
        else:
            paced = cast(PacedMessageSender, client)
            sent = paced.send_marketing_message(job.payload, retry=False, before_write=before_write)
    except BaseException as exc:
        return failed(job, exc, stop)
    return Accepted(job, sent)


def failed(job: Job, exc: BaseException, stop: threading.Event) -> Answer:
    """The answer for an attempt of ``job`` that raised ``exc`` (counted in ``job.attempts``). A HALT
    error sets ``stop`` at once, so that no other request starts."""
    if isinstance(exc, Stopped):  # nothing was sent
        job.attempts -= 1
        return Unsent(job)
    if isinstance(exc, GraphTransportError):
        if isinstance(exc, UnknownOutcomeError) or exc.request_sent:
            return Unanswered(job, exc)
        return NotSent(job, exc)
    if isinstance(exc, GraphError):
        if exc.action is Action.HALT:
            stop.set()
        return Refused(job, exc)
    if isinstance(exc, ConfigurationError):  # e.g. a redirect: nothing was processed
        return Misconfigured(job, exc)
    return Crashed(job, exc)


class SendPool(Protocol):
    """What a run hands jobs to and collects answers from: :class:`WorkerPool` (threads) or
    :class:`~.loop_pool.LoopPool` (one event loop)."""

    @property
    def size(self) -> int:
        """Requests the pool may work on at once."""

    @property
    def sending(self) -> int:
        """Requests on the wire now."""

    def resize(self, n: int) -> None:
        """Work on up to ``n`` requests at once from now on."""

    def submit(self, job: Job) -> None:
        """Queue a job."""

    def collect(self, timeout: float) -> list[Answer]:
        """Answers that came back, waiting up to ``timeout`` for the first."""

    def close(self, timeout: float = 60.0) -> None:
        """Stop sending and end the pool, waiting up to ``timeout`` for requests on the wire."""


def take_answers(answers: queue.SimpleQueue[Answer], timeout: float) -> list[Answer]:
    """What ``answers`` holds: waits up to ``timeout`` for the first, then takes what is there."""
    try:
        first = answers.get(timeout=timeout) if timeout > 0 else answers.get_nowait()
    except queue.Empty:
        return []
    taken = [first]
    while True:
        try:
            taken.append(answers.get_nowait())
        except queue.Empty:
            return taken


def hand_over_lead(rate: float, ahead_s: float = 0.0) -> int:
    """Jobs a run may hand its workers at ``rate`` beyond the requests on the wire: :data:`LEAD_S` of
    sending, at least four, and ``ahead_s`` more (up to :data:`READ_AHEAD_MAX_S`) right before a read
    of the input, which holds the hand-over up for about that long. Each holds a claim while it waits
    for a worker or for its turn, and a crash leaves it ``unknown`` although it never left, so the
    lead is kept short."""
    return max(4, math.ceil(rate * (LEAD_S + min(max(0.0, ahead_s), READ_AHEAD_MAX_S))))


class WorkerPool:
    """Threads sending jobs paced by ``turn``; answers come back through :meth:`collect`.

    :param client: sends the requests; ``None`` only for a pool that is never started (a dry run).
    :param turn: waited on before each request.
    :param stop: once set, jobs still queued or waiting for their turn come back :class:`Unsent`.
    :param name: prefix of the thread names.
    """

    def __init__(
        self, client: MessageSender | None, turn: Turn, stop: threading.Event, *, name: str = "wamm-send"
    ) -> None:
        self._client = client
        self._turn = turn
        self._stop = stop
        self._name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[Answer] = queue.SimpleQueue()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._size = 0
        self._sending = 0
        self._numbers = itertools.count()

    @property
    def size(self) -> int:
        """Workers the pool is meant to have (threads told to retire may still be finishing a job)."""
        return self._size

    @property
    def sending(self) -> int:
        """Requests on the wire now: workers past their turn whose answer has not come back."""
        return self._sending

    @property
    def live(self) -> int:
        """Worker threads running now."""
        with self._lock:
            return len(self._threads)

    def resize(self, n: int) -> None:
        """Grow to or shrink to ``n`` workers while running; a retiring worker finishes its job first."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {n!r}")
        if self._client is None:
            raise ConfigurationError("a Graph client is required to send")
        while self._size < n:
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{next(self._numbers)}", daemon=True
            )
            with self._lock:
                self._threads.add(thread)
            self._size += 1
            thread.start()
        while self._size > n:
            self._jobs.put(None)  # the first worker to take it retires
            self._size -= 1

    def submit(self, job: Job) -> None:
        """Queue a job for the next free worker."""
        self._jobs.put(job)

    def collect(self, timeout: float) -> list[Answer]:
        """Answers that came back: waits up to ``timeout`` for the first, then takes what is there."""
        return take_answers(self._answers, timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Stop the run's sending, let every worker finish its job and retire, waiting up to ``timeout``
        seconds in all (threads still busy then are left to end on their own: they are daemons, and
        what they answer is no longer read)."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._size = 0

    def _work(self) -> None:
        client = self._client
        assert client is not None
        jobs, answers, stop, turn = self._jobs, self._answers, self._stop, self._turn
        at_write = paces_at_write(client)
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                if stop.is_set():
                    answers.put(Unsent(job))
                    continue
                if at_write:
                    answers.put(self._send_paced_at_write(client, job))
                    continue
                try:
                    turn.wait_turn()
                except Stopped:
                    answers.put(Unsent(job))
                    continue
                if stop.is_set():
                    answers.put(Unsent(job))
                    continue
                self._count_sending(1)
                began = job.left_at = time.perf_counter()
                try:
                    answer = send_once(client, job, stop)
                finally:
                    self._count_sending(-1)
                job.round_trip_s, job.left_at = time.perf_counter() - began, None
                answers.put(answer)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _send_paced_at_write(self, client: MessageSender, job: Job) -> Answer:
        """Send with the turn taken inside the client, its connection ready: a new connection's
        handshake, the body's encoding and waits for the interpreter lock come before the turn, so
        they never bunch up sends the pacer spaced. The round trip counts from the turn."""
        turn, stop = self._turn, self._stop
        left_at = 0.0

        def before_write() -> None:
            nonlocal left_at
            turn.wait_turn()
            if stop.is_set():
                raise Stopped
            if not left_at:  # on the wire from now on (counted once)
                self._count_sending(1)
            left_at = job.left_at = time.perf_counter()

        try:
            answer = send_once(client, job, stop, before_write)
        finally:
            if left_at:
                self._count_sending(-1)
        if left_at:
            job.round_trip_s, job.left_at = time.perf_counter() - left_at, None
        return answer

    def _count_sending(self, change: int) -> None:
        with self._lock:
            self._sending += change


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Keep the objects that exist now (imports: Airflow's are many) out of the collector's full passes
    while a campaign runs; walking them all stalls every sending thread for tens of milliseconds, long
    enough to bunch sends up. Undone afterwards unless the process had frozen objects itself (a forked
    worker does), whose choice is left as it was."""
    already_frozen = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not already_frozen:
            gc.unfreeze()


__all__ = [
    "READ_AHEAD_MAX_S",
    "Accepted",
    "Answer",
    "AnswerKind",
    "Crashed",
    "Job",
    "JobQueue",
    "MessageSender",
    "Misconfigured",
    "NotSent",
    "PacedMessageSender",
    "Refused",
    "SendPool",
    "SendResultLike",
    "Unanswered",
    "Unsent",
    "WorkerPool",
    "failed",
    "frozen_gc",
    "hand_over_lead",
    "paces_at_write",
    "send_once",
    "take_answers",
]
