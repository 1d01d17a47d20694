"""The worker pool on its own: one typed answer per outcome kind, a pool that really grows and shrinks
while it runs, and the queue of jobs waiting for a worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_wamm.campaign.pacing import Stopped
from airflow_provider_wamm.campaign.workers import (
    Accepted,
    Answer,
    AnswerKind,
    Crashed,
    Job,
    JobQueue,
    Misconfigured,
    NotSent,
    Refused,
    Unanswered,
    Unsent,
    WorkerPool,
)
from airflow_provider_wamm.graph.errors import (
    AuthenticationError,
    ConfigurationError,
    GraphTransportError,
    RecipientError,
    UnknownOutcomeError,
)


@dataclass
class Sent:
    wamid: str
    message_status: str = "accepted"


class NoWait:
    """A pace that never waits."""

    def wait_turn(self) -> None:
        return None


class StoppedWait:
    """A pace whose wait is interrupted by a stop."""

    def wait_turn(self) -> None:
        raise Stopped


class ScriptedClient:
    """Answers each send with ``outcome(payload)``: a result to return or an exception to raise."""

    def __init__(self, outcome: Callable[[Mapping[str, Any]], Any], hold_s: float = 0.0) -> None:
        self.outcome = outcome
        self.hold_s = hold_s
        self.calls: list[bool] = []
        self.busy = 0
        self.most_busy = 0
        self.lock = threading.Lock()

    def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> Any:
        with self.lock:
            self.calls.append(retry)
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        try:
            time.sleep(self.hold_s)
            result = self.outcome(payload)
            if isinstance(result, BaseException):
                raise result
            return result
        finally:
            with self.lock:
                self.busy -= 1


def collect(pool: WorkerPool, count: int, timeout: float = 5.0) -> list[Answer]:
    answers: list[Answer] = []
    deadline = time.monotonic() + timeout
    while len(answers) < count and time.monotonic() < deadline:
        answers += pool.collect(0.1)
    return answers


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


OUTCOMES: list[tuple[str, Any, type[Answer], AnswerKind, bool]] = [
    ("accepted", Sent("wamid.1"), Accepted, AnswerKind.ACCEPTED, False),
    ("error", RecipientError("undeliverable", code=131026), Refused, AnswerKind.ERROR, False),
    ("halt", AuthenticationError("expired", code=190), Refused, AnswerKind.ERROR, True),
    ("unknown", UnknownOutcomeError("read timed out"), Unanswered, AnswerKind.UNKNOWN, False),
    (
        "reset",
        GraphTransportError("reset after sending", request_sent=True),
        Unanswered,
        AnswerKind.UNKNOWN,
        False,
    ),
    ("not_sent", GraphTransportError("refused", request_sent=False), NotSent, AnswerKind.NOT_SENT, False),
    ("config", ConfigurationError("redirected"), Misconfigured, AnswerKind.CONFIG, False),
    ("crash", RuntimeError("boom"), Crashed, AnswerKind.CRASH, False),
]


@pytest.mark.parametrize(
    ("name", "outcome", "answer_type", "kind", "stops"), OUTCOMES, ids=[o[0] for o in OUTCOMES]
)
def test_each_outcome_comes_back_as_its_own_typed_answer(
    name: str, outcome: Any, answer_type: type[Answer], kind: AnswerKind, stops: bool
) -> None:
    stop = threading.Event()
    client = ScriptedClient(lambda _payload: outcome)
    pool = WorkerPool(client, NoWait(), stop)
    pool.resize(1)
    job = Job("4915100000001", {"to": "4915100000001"})
    pool.submit(job)
    answers = collect(pool, 1)
    stopped = stop.is_set()
    pool.close()
    assert len(answers) == 1
    answer = answers[0]
    assert type(answer) is answer_type and answer.kind is kind and answer.job is job
    assert job.attempts == 1 and client.calls == [False]  # one request, never the client's own retries
    assert stopped is stops  # a HALT stops the other workers at once, nothing else does
    if isinstance(answer, Accepted):
        assert answer.result is outcome
    else:
        assert getattr(answer, "error", None) is outcome


@pytest.mark.parametrize("stopped_while", ["queued", "waiting_for_a_turn"])
def test_a_job_not_sent_before_the_stop_comes_back_unsent(stopped_while: str) -> None:
    stop = threading.Event()
    client = ScriptedClient(lambda _payload: Sent("wamid.never"))
    if stopped_while == "queued":
        stop.set()
        pool = WorkerPool(client, NoWait(), stop)
    else:
        pool = WorkerPool(client, StoppedWait(), stop)
    pool.resize(1)
    job = Job("4915100000002", {})
    pool.submit(job)
    answers = collect(pool, 1)
    pool.close()
    assert len(answers) == 1 and type(answers[0]) is Unsent and answers[0].kind is AnswerKind.UNSENT
    assert job.attempts == 0 and client.calls == []


def live_threads(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive())


def test_resize_grows_and_shrinks_the_live_workers_while_running() -> None:
    client = ScriptedClient(lambda payload: Sent(f"wamid.{payload['n']}"), hold_s=0.05)
    pool = WorkerPool(client, NoWait(), threading.Event(), name="wamm-resize-test")
    pool.resize(3)
    assert pool.size == 3 and pool.live == 3 and live_threads("wamm-resize-test") == 3
    pool.resize(8)
    assert pool.size == 8 and pool.live == 8 and live_threads("wamm-resize-test") == 8
    for n in range(16):
        pool.submit(Job(str(n), {"n": n}))
    assert len(collect(pool, 16)) == 16
    assert client.most_busy == 8  # eight requests really were in flight at once

    pool.resize(2)
    assert pool.size == 2
    assert wait_for(lambda: pool.live == 2 and live_threads("wamm-resize-test") == 2)
    client.most_busy = 0
    for n in range(10):
        pool.submit(Job(str(n), {"n": n}))
    assert len(collect(pool, 10)) == 10
    assert client.most_busy == 2  # and now only two

    pool.resize(4)
    assert pool.live == 4
    pool.close()
    assert pool.live == 0 and live_threads("wamm-resize-test") == 0


def test_resize_refuses_an_empty_pool_and_a_pool_without_a_client() -> None:
    pool = WorkerPool(ScriptedClient(lambda _p: Sent("w")), NoWait(), threading.Event())
    with pytest.raises(ValueError, match="at least one"):
        pool.resize(0)
    with pytest.raises(ConfigurationError, match="client"):
        WorkerPool(None, NoWait(), threading.Event()).resize(1)


def test_due_retries_go_before_new_jobs() -> None:
    queue = JobQueue()
    first, second, retry, later = (Job(name, {}) for name in ("first", "second", "retry", "later"))
    queue.add(first)
    queue.add(second)
    queue.later(later, due=20.0)
    queue.later(retry, due=10.0)
    assert queue.ready == 2 and queue.delayed == 2 and queue.next_due() == 10.0
    queue.release_due(15.0)
    assert queue.ready == 3 and queue.delayed == 1 and queue.next_due() == 20.0
    assert [queue.take() for _ in range(3)] == [retry, first, second]
    queue.release_due(20.0)
    assert queue.take() is later and queue.next_due() is None
