"""The asyncio sending engine: every request in flight a task on one event loop, not a thread.

:class:`LoopPool` does what :class:`~.workers.WorkerPool` does, behind the same methods: jobs in,
typed :class:`~.workers.Answer` objects out through :meth:`LoopPool.collect`, as many requests in
flight as :meth:`LoopPool.resize` says. What differs is the cost of a request in flight: a task and
a connection on one event loop instead of a thread blocked on its socket. At 1,000 messages per
second with answers of a few hundred milliseconds to a second, the thread engine keeps several
hundred threads busy handing the interpreter lock around, and that, not the network, is what held it
below the cap (``benchmarks/optimisations.md``).

Three threads work together::

    run thread ── submit(job) ──▶ event loop: a task per job ── connection ready ──▶ asks for a turn
                                                                                        │
    run thread ◀── collect() ◀── answers ◀── task: write, read, judge ◀── turn granted ◀┘
                                                                                        │
                                  turn thread: Pacer.wait_turn() one request at a time ─┘

The pacing is the run's :class:`~.pacing.Pacer`, unchanged: a thread of its own takes each turn as a
worker thread would, so the one-second window and the token bucket stay exact and a stop still
interrupts a wait. A task asks for its turn only once its connection is open (a new one's handshake
done), as the thread engine does, so opening connections never bunches up paced sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from typing import cast

from airflow_provider_wamm.campaign.pacing import Pacer, SendWindow, Stopped
from airflow_provider_wamm.campaign.settings import SendEngine
from airflow_provider_wamm.campaign.workers import (
    Accepted,
    Answer,
    Job,
    MessageSender,
    SendPool,
    Turn,
    Unsent,
    WorkerPool,
    failed,
)
from airflow_provider_wamm.graph.async_transport import AsyncSocketPool
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.connections import SocketPoolTransport
from airflow_provider_wamm.graph.errors import ConfigurationError

__all__ = ["LoopPool", "runs_on_loop", "send_pool"]


def runs_on_loop(client: object) -> bool:
    """Whether :class:`LoopPool` can send for ``client``: a
    :class:`~airflow_provider_wamm.graph.client.GraphClient` over its own socket pool (not a session,
    a proxy or a transport of the caller, which only the thread engine goes through), whose sends
    are the client's own (a subclass that overrides ``send_marketing_message`` keeps the threads)."""
    return (
        isinstance(client, GraphClient)
        and type(client.transport) is SocketPoolTransport
        and type(client).send_marketing_message is GraphClient.send_marketing_message
    )


def send_pool(
    client: MessageSender | None, turn: Turn, stop: threading.Event, engine: SendEngine = "auto"
) -> SendPool:
    """The pool a run sends through: :class:`LoopPool` for ``"asyncio"``, and for ``"auto"`` when the
    client allows it (:func:`runs_on_loop`), else :class:`~.workers.WorkerPool`.

    :raises ConfigurationError: ``"asyncio"`` for a client that only the thread engine can send through.
    """
    if engine == "threads" or client is None or (engine == "auto" and not runs_on_loop(client)):
        return WorkerPool(client, turn, stop)
    return LoopPool(cast(GraphClient, client), turn, stop)


class LoopPool:
    """Requests in flight as tasks of one event loop, paced by ``turn``; answers come back through
    :meth:`collect`.

    :param client: a :class:`~airflow_provider_wamm.graph.client.GraphClient` over its own socket
        pool (:func:`runs_on_loop`): its requests are written and its answers read by the client's
        own rules; ``None`` only for a pool that is never started (a dry run).
    :param turn: waited on before each request.
    :param stop: once set, jobs not yet written come back :class:`~.workers.Unsent`.
    :param name: prefix of the names of the loop's and the turn's threads.
    """

    def __init__(
        self, client: GraphClient | None, turn: Turn, stop: threading.Event, *, name: str = "wamm-send"
    ) -> None:
        if client is not None and not runs_on_loop(client):
            raise ConfigurationError(
                "the asyncio send engine needs a GraphClient over its own connections (no session, "
                "proxy or transport of the caller); use the thread engine"
            )
        self._client = client
        self._turn = turn
        self._stop = stop
        self._name = name
        self._answers: queue.SimpleQueue[Answer] = queue.SimpleQueue()
        self._inbox: deque[Job] = deque()  # submitted, not yet seen by the loop
        self._waking = False  # the loop was told to look at the inbox
        self._pending: deque[Job] = deque()  # on the loop: waiting for a free slot
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns: queue.SimpleQueue[asyncio.Future[bool] | None] = queue.SimpleQueue()
        self._asked: set[asyncio.Future[bool]] = set()  # turns asked for and not yet settled
        self._size = 0
        self._sending = 0
        # The pacer's window again, counted at the writes: a turn granted while the loop was busy is
        # written late, and late writes must not bunch up in a second beyond the window.
        self._writes = SendWindow(turn.window_limit) if isinstance(turn, Pacer) else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: AsyncSocketPool | None = None
        self._threads: list[threading.Thread] = []

    @property
    def size(self) -> int:
        """Requests the pool may have in flight at once (each waiting for its turn or on the wire)."""
        return self._size

    @property
    def sending(self) -> int:
        """Requests on the wire now: written, their answer not yet read."""
        return self._sending

    @property
    def live(self) -> int:
        """Requests being worked on now: waiting for their connection or turn, or on the wire."""
        return len(self._tasks)

    def resize(self, n: int) -> None:
        """Allow ``n`` requests in flight from now on (those above it finish first)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {n!r}")
        if self._client is None:
            raise ConfigurationError("a Graph client is required to send")
        self._size = n
        loop = self._start()
        assert self._connections is not None
        self._connections.maxsize = n  # a connection kept for each request that may be in flight
        loop.call_soon_threadsafe(self._pump)

    def submit(self, job: Job) -> None:
        """Queue a job for the next free slot."""
        self._inbox.append(job)
        if not self._waking and self._loop is not None:
            self._waking = True
            self._loop.call_soon_threadsafe(self._take_inbox)

    def collect(self, timeout: float) -> list[Answer]:
        """Answers that came back: waits up to ``timeout`` for the first, then takes what is there."""
        try:
            first = self._answers.get(timeout=timeout) if timeout > 0 else self._answers.get_nowait()
        except queue.Empty:
            return []
        answers = [first]
        while True:
            try:
                answers.append(self._answers.get_nowait())
            except queue.Empty:
                return answers

    def close(self, timeout: float = 60.0) -> None:
        """Stop the run's sending: jobs not yet written come back unsent, requests on the wire are
        waited for up to ``timeout`` seconds in all (then abandoned: their answers are no longer
        read), the connections closed and the threads ended."""
        self._stop.set()
        self._turns.put(None)
        loop = self._loop
        if loop is None or loop.is_closed():  # never started, or closed already
            return
        finished = asyncio.run_coroutine_threadsafe(self._finish(timeout), loop)
        with contextlib.suppress(Exception):
            finished.result(timeout + 1.0)
        loop.call_soon_threadsafe(loop.stop)
        for thread in self._threads:
            thread.join(timeout=1.0)
        if not loop.is_running():
            loop.close()
        self._size = 0

    # -- the loop's side -------------------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        """The event loop, its thread and the turn thread, started on the first call."""
        if self._loop is not None:
            return self._loop
        assert self._client is not None
        loop = self._loop = asyncio.new_event_loop()
        self._connections = AsyncSocketPool(self._client.transport)  # type: ignore[arg-type]
        self._threads = [
            threading.Thread(target=loop.run_forever, name=f"{self._name}-loop", daemon=True),
            threading.Thread(target=self._grant_turns, name=f"{self._name}-turns", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        if self._inbox:
            self._waking = True
            loop.call_soon_threadsafe(self._take_inbox)
        return loop

    def _take_inbox(self) -> None:
        self._waking = False
        inbox, pending = self._inbox, self._pending
        while inbox:
            pending.append(inbox.popleft())
        self._pump()

    def _pump(self) -> None:
        """Start a task for each pending job while fewer than :attr:`size` are in flight."""
        pending, tasks, loop = self._pending, self._tasks, self._loop
        assert loop is not None
        while pending and len(tasks) < self._size:
            task = loop.create_task(self._run(pending.popleft()))
            tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._pump()

    async def _run(self, job: Job) -> None:
        """Send ``job`` once and put its answer on the answer queue."""
        if self._stop.is_set():
            self._answers.put(Unsent(job))
            return
        self._answers.put(await self._send(job))

    async def _send(self, job: Job) -> Answer:
        """One attempt of ``job``: the turn taken with the connection open, the request written, the
        answer read and judged by the client's rules (a HALT error stops the run at once)."""
        client, connections = self._client, self._connections
        assert client is not None and connections is not None
        left_at = 0.0

        async def before_write() -> None:
            nonlocal left_at
            await self._take_turn()
            await self._fit_writes()
            self._sending += 1
            left_at = job.left_at = time.perf_counter()

        job.attempts += 1
        try:
            request = client.marketing_request(job.payload)
            with client.send_failures(request):
                response = await connections.post(
                    request.path, request.body, request.headers, before_write=before_write
                )
            result = client.read_marketing_answer(request, response)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            return failed(job, exc, self._stop)
        finally:
            if left_at:
                self._sending -= 1
                job.round_trip_s, job.left_at = time.perf_counter() - left_at, None
        return Accepted(job, result)

    async def _take_turn(self) -> None:
        """Wait for the pacer's turn (taken by the turn thread); :class:`~.pacing.Stopped` if the run
        stopped meanwhile."""
        assert self._loop is not None
        if self._stop.is_set():
            raise Stopped
        granted: asyncio.Future[bool] = self._loop.create_future()
        self._asked.add(granted)
        self._turns.put(granted)
        try:
            ok = await granted
        finally:
            self._asked.discard(granted)
        if not ok or self._stop.is_set():
            raise Stopped

    async def _fit_writes(self) -> None:
        """Wait until one more write fits the pacer's one-second window, counted at the writes."""
        writes = self._writes
        if writes is None:
            return
        writes.limit = cast(Pacer, self._turn).window_limit
        held = False
        while (wait := writes.try_count(held=held)) > 0:
            held = True
            await asyncio.sleep(wait)
            if self._stop.is_set():
                raise Stopped

    async def _finish(self, timeout: float) -> None:
        """Answer the jobs not started as unsent, wait for the tasks, close the connections."""
        self._take_inbox()
        for granted in list(self._asked):  # no turn is granted once the run stops
            _settle(granted, False)
        while self._pending:
            self._answers.put(Unsent(self._pending.popleft()))
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
        if self._connections is not None:
            self._connections.close()

    # -- the turn thread --------------------------------------------------------------------------

    def _grant_turns(self) -> None:
        """Take the pacer's turns one request at a time, in the order they were asked for."""
        turns, turn, loop = self._turns, self._turn, self._loop
        assert loop is not None
        while (granted := turns.get()) is not None:
            try:
                turn.wait_turn()
                ok = True
            except Stopped:
                ok = False
            loop.call_soon_threadsafe(_settle, granted, ok)
        # Turns still asked for: the run stopped.
        with contextlib.suppress(queue.Empty):
            while True:
                left = turns.get_nowait()
                if left is not None:
                    loop.call_soon_threadsafe(_settle, left, False)


def _settle(granted: asyncio.Future[bool], ok: bool) -> None:
    if not granted.done():
        granted.set_result(ok)
