"""The asyncio send engine: typed answers, the pacing turn, the bound on requests in flight, a stop.

A small HTTP server of the test answers each request by its recipient (an acceptance, a chunked
acceptance, a Graph error, an error that halts the run, a connection closed without an answer, a
slow answer), so every path of the engine's own HTTP reading is taken on a real socket.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests

from airflow_provider_wamm.campaign.loop_pool import SWITCH_INTERVAL_S, LoopPool, runs_on_loop, send_pool
from airflow_provider_wamm.campaign.pacing import Pacer
from airflow_provider_wamm.campaign.workers import (
    Accepted,
    Answer,
    Job,
    NotSent,
    Refused,
    Unanswered,
    Unsent,
    WorkerPool,
)
from airflow_provider_wamm.graph.async_transport import AsyncSocketPool
from airflow_provider_wamm.graph.client import GraphClient, SendResult
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.transport import RawResponse

NUMBER = "100000000000001"


def _answer(status: int, body: dict[str, Any], *, chunked: bool = False) -> bytes:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized"}[status]
    if chunked:
        half = len(data) // 2
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (data[:half], data[half:]))
        return (
            (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
            + chunks
            + b"0\r\n\r\n"
        )
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def _accepted(to: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": f"wamid.{to}", "message_status": "accepted"}],
    }


def _error(code: int, status: int) -> dict[str, Any]:
    return {"error": {"message": "refused", "type": "OAuthException", "code": code, "fbtrace_id": "T"}}


class ScriptedServer:
    """Answers each POST by the last digits of its recipient; counts requests and the most at once."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(
                    next(
                        v
                        for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
                        if k.lower() == b"content-length"
                    )
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                if not self._answer(conn, json.loads(body)["to"]):
                    return

    def _answer(self, conn: socket.socket, to: str) -> bool:
        with self.lock:
            self.requests.append(to)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.delay_s)
        with self.lock:
            self.in_flight -= 1
        kind = to[-3:]
        if kind == "000":  # the connection closes with no answer
            return False
        answers = {
            "001": _answer(200, _accepted(to), chunked=True),
            "002": _answer(400, _error(131026, 400)),  # undeliverable: this recipient only
            "003": _answer(401, _error(190, 401)),  # the token is invalid: the run halts
        }
        conn.sendall(answers.get(kind, _answer(200, _accepted(to))))
        return True

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


def pacer(stop: threading.Event, rate: float = 1000.0) -> Pacer:
    return Pacer(rate, floor=1, headroom=0, throttle_share=0.2, recovery_s=10, stop=stop)


def graph(url: str, **options: Any) -> GraphClient:
    return GraphClient("token", phone_number_id=NUMBER, base_url=url, **options)


def job(to: str) -> Job:
    return Job(to, {"messaging_product": "whatsapp", "to": to, "type": "template"})


def collect(pool: LoopPool, count: int, timeout: float = 10.0) -> list[Answer]:
    answers: list[Answer] = []
    deadline = time.monotonic() + timeout
    while len(answers) < count and time.monotonic() < deadline:
        answers += pool.collect(timeout=0.2)
    return answers


def test_each_answer_comes_back_typed_from_a_real_socket(server: ScriptedServer) -> None:
    stop = threading.Event()
    pool = LoopPool(graph(server.url), pacer(stop), stop)
    pool.resize(1)  # one at a time: the halting answer comes last
    for to in ("4915100000999", "4915100000001", "4915100000002", "4915100000000", "4915100000003"):
        pool.submit(job(to))
    answers = {a.job.recipient: a for a in collect(pool, 5)}
    pool.close()
    ok, chunked = answers["4915100000999"], answers["4915100000001"]
    assert isinstance(ok, Accepted) and ok.result.wamid == "wamid.4915100000999"
    assert isinstance(chunked, Accepted) and chunked.result.wamid == "wamid.4915100000001"
    refused = answers["4915100000002"]
    assert isinstance(refused, Refused) and refused.error.code == 131026
    cut = answers["4915100000000"]
    assert isinstance(cut, Unanswered) and cut.job.attempts == 1  # it may have reached Meta
    halted = answers["4915100000003"]
    assert isinstance(halted, Refused) and halted.error.code == 190 and stop.is_set()
    assert all(a.job.round_trip_s is not None for a in answers.values())


def test_a_connection_that_cannot_open_comes_back_not_sent() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    stop = threading.Event()
    pool = LoopPool(graph(url, connect_timeout=2), pacer(stop), stop)
    pool.resize(2)
    pool.submit(job("4915100000999"))
    (answer,) = collect(pool, 1)
    pool.close()
    assert isinstance(answer, NotSent) and not answer.error.request_sent


def test_requests_leave_at_the_pacers_rate_and_a_stop_writes_nothing_more(server: ScriptedServer) -> None:
    """At 5 a second, 4 requests take 0.6 s at least; a stop then finds the rest waiting for their
    turn, and they come back unsent without a write."""
    stop = threading.Event()
    pool = LoopPool(graph(server.url), pacer(stop, rate=5.0), stop)
    pool.resize(8)
    started = time.monotonic()
    for i in range(4):
        pool.submit(job(f"49151000009{i:02d}"))
    first = collect(pool, 4)
    assert len(first) == 4 and time.monotonic() - started >= 0.6
    for i in range(6):
        pool.submit(job(f"49151000008{i:02d}"))
    time.sleep(0.1)  # one more may leave; the rest wait for their slots
    stop.set()
    rest = collect(pool, 6)
    pool.close()
    unsent = [a for a in rest if isinstance(a, Unsent)]
    assert len(rest) == 6 and len(unsent) >= 4 and all(a.job.attempts == 0 for a in unsent)
    assert not {a.job.recipient for a in unsent} & set(server.requests)
    assert len(server.requests) == 4 + len(rest) - len(unsent)


def test_requests_in_flight_never_exceed_the_size_and_follow_a_resize() -> None:
    server = ScriptedServer(delay_s=0.15)
    try:
        stop = threading.Event()
        pool = LoopPool(graph(server.url), pacer(stop), stop)
        pool.resize(3)
        for i in range(12):
            pool.submit(job(f"49151000009{i:02d}"))
        first = collect(pool, 12)
        assert len(first) == 12 and server.most_in_flight == 3
        pool.resize(8)
        for i in range(16):
            pool.submit(job(f"49151000008{i:02d}"))
        second = collect(pool, 16)
        pool.close()
        assert len(second) == 16 and 3 < server.most_in_flight <= 8
    finally:
        server.close()


def test_jobs_not_started_come_back_unsent_when_the_pool_closes() -> None:
    server = ScriptedServer(delay_s=0.3)
    try:
        stop = threading.Event()
        pool = LoopPool(graph(server.url), pacer(stop), stop)
        pool.resize(1)
        for i in range(5):
            pool.submit(job(f"49151000009{i:02d}"))
        time.sleep(0.1)  # the first is on the wire
        pool.close(timeout=5.0)
        answers = pool.collect(timeout=0.5)
        kinds = sorted(type(a).__name__ for a in answers)
        assert kinds == ["Accepted"] + ["Unsent"] * 4
        assert len(server.requests) == 1
    finally:
        server.close()


class OwnSend(GraphClient):
    def send_marketing_message(
        self,
        payload: Mapping[str, Any],
        *,
        retry: bool = True,
        before_write: Callable[[], None] | None = None,
    ) -> SendResult:
        return super().send_marketing_message(payload, retry=retry, before_write=before_write)


class NullTransport:
    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        raise AssertionError("not called")

    def close(self) -> None:
        return None


def test_the_engine_is_the_event_loop_wherever_the_client_allows_it() -> None:
    url, stop = "http://127.0.0.1:9", threading.Event()
    turn = pacer(stop)
    assert isinstance(send_pool(graph(url), turn, stop), LoopPool)
    assert isinstance(send_pool(graph(url), turn, stop, "threads"), WorkerPool)
    assert isinstance(send_pool(None, turn, stop), WorkerPool)  # a dry run never sends
    others = [
        graph(url, transport=NullTransport()),
        graph(url, session=requests.Session()),
        OwnSend("token", phone_number_id=NUMBER, base_url=url),
    ]
    for other in others:
        assert not runs_on_loop(other)
        assert isinstance(send_pool(other, turn, stop), WorkerPool)
        with pytest.raises(ConfigurationError, match="asyncio send engine"):
            send_pool(other, turn, stop, "asyncio")


def most_in_one_second(stamps: list[float], window_s: float = 1.0) -> int:
    ordered = sorted(stamps)
    return max(sum(1 for t in ordered[i:] if t < start + window_s) for i, start in enumerate(ordered))


def test_slots_passed_while_the_loop_was_busy_never_bunch_up_beyond_the_window(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks keep their reserved slots while the event loop is held up (here: a callback that blocks
    it for most of a second); the late ones then go out together, and the window counted right
    before the writes holds back those that would put more than the limit in one second."""
    writes: list[float] = []
    post = AsyncSocketPool.post

    async def stamped_post(self: AsyncSocketPool, *args: Any, before_write: Any = None, **kw: Any) -> Any:
        async def stamp() -> None:
            await before_write()
            writes.append(time.monotonic())

        return await post(self, *args, before_write=stamp, **kw)

    monkeypatch.setattr(AsyncSocketPool, "post", stamped_post)
    stop = threading.Event()
    ten = pacer(stop, rate=10.0)
    pool = LoopPool(graph(server.url), ten, stop)
    pool.resize(16)
    for i in range(25):
        pool.submit(job(f"49151000009{i:02d}"))
    time.sleep(0.15)  # the first writes are out; the loop then stalls while turns go on
    assert pool._loop is not None
    pool._loop.call_soon_threadsafe(time.sleep, 0.9)
    answers = collect(pool, 25, timeout=15.0)
    pool.close()
    assert len(answers) == 25 and all(isinstance(a, Accepted) for a in answers)
    # Each stamp is taken just after the window counted its send: a hair of scheduling slack.
    assert ten.window_limit == 10 and most_in_one_second(writes, 1.0 - 0.002) <= 10


def test_closing_twice_or_before_the_start_is_harmless(server: ScriptedServer) -> None:
    never = threading.Event()
    LoopPool(graph(server.url), pacer(never), never).close()
    stop = threading.Event()
    pool = LoopPool(graph(server.url), pacer(stop), stop)
    pool.resize(2)
    pool.submit(job("4915100000999"))
    assert isinstance(collect(pool, 1)[0], Accepted)
    pool.close()
    pool.close()
    assert pool.size == 0 and pool._thread is not None and not pool._thread.is_alive()


def test_the_interpreter_switches_threads_often_while_a_pool_runs(server: ScriptedServer) -> None:
    """The loop's thread waits for the interpreter lock after every socket call: while the pool runs
    the switch interval is short, and the process gets its own back when the pool closes."""
    before = sys.getswitchinterval()
    stop = threading.Event()
    pool = LoopPool(graph(server.url), pacer(stop), stop)
    pool.resize(1)
    assert sys.getswitchinterval() <= SWITCH_INTERVAL_S < before
    other_stop = threading.Event()
    other = LoopPool(graph(server.url), pacer(other_stop), other_stop)
    other.resize(1)  # two pools overlap: the first to close leaves the interval short
    pool.close()
    assert sys.getswitchinterval() <= SWITCH_INTERVAL_S
    other.close()
    assert sys.getswitchinterval() == before
