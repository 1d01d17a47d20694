"""The asyncio sending engine: every request in flight a task on one event loop, not a thread.

:class:`LoopPool` does what :class:`~.workers.WorkerPool` does, behind the same methods: jobs in,
typed :class:`~.workers.Answer` objects out through :meth:`LoopPool.collect`, as many requests in
flight as :meth:`LoopPool.resize` says. What differs is the cost of a request in flight: a task and
a connection on one event loop instead of a thread blocked on its socket. At 1,000 messages per
second with answers of a few hundred milliseconds to a second, the thread engine keeps several
hundred threads busy handing the interpreter lock around, and that, not the network, is what held it
below the cap (``benchmarks/optimisations.md``).

One thread runs the loop; the run's thread hands jobs in and collects answers::

    run thread ── submit(job) ──▶ event loop: a task per job, at most size() at once
                                    1. the pacer's slot reserved, waited for on the loop
                                    2. the request built; a connection: an idle one, or a new
                                       one (handshake done)
                                    3. the one-second window, counted right before the write
                                    4. write, read, judge by the client's rules
    run thread ◀── collect() ◀──── answers

The pacing is the run's :class:`~.pacing.Pacer` and its steps: each task reserves its slot of the
token bucket as a sending thread would, so a task the loop runs late still has its slot and no
second of sending is lost; the one-second window is counted right before the write, so late writes
never bunch up beyond it. A task asks for the window only once its connection is open, so opening
connections never bunches up paced sends. A task does nothing but reserve its slot until the slot
comes: a hand-over of hundreds of jobs at once then costs the loop little, and does not hold up the
sends due meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, cast

from airflow_provider_wamm.campaign.pacing import Pacer, Stopped
from airflow_provider_wamm.campaign.settings import SendEngine
from airflow_provider_wamm.campaign.workers import (
    Accepted,
    Answer,
    Job,
    MessageSender,
    SendPool,
    Unsent,
    WorkerPool,
    failed,
    take_answers,
)
from airflow_provider_wamm.graph.async_transport import AsyncSocketPool, new_event_loop
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.connections import SocketPoolTransport
from airflow_provider_wamm.graph.errors import ConfigurationError

__all__ = ["STOP_CHECK_S", "SWITCH_INTERVAL_S", "LoopPool", "runs_on_loop", "send_pool"]

#: The longest a task waiting for its turn sleeps before it looks whether the run stopped.
STOP_CHECK_S = 0.1
#: The interpreter's switch interval while a pool runs (Python's default is 5 ms). The loop's thread
#: gives the interpreter lock up around every socket call and then waits for it; while the run's
#: thread reads and checks a batch of recipients, each such wait lasted up to the whole interval, and
#: a second of them pushed sends back by tens of milliseconds (dips of 8% below the cap in quarter
#: seconds at 1,000 msg/s; none at 1 ms, and 0.53 ms of CPU per message instead of 0.58).
SWITCH_INTERVAL_S = 0.001


class _ShortSwitches:
    """The switch interval of the process: :data:`SWITCH_INTERVAL_S` while any pool runs, the
    process's own again once the last one closes (pools of one process may overlap)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved = sys.getswitchinterval()

    def enter(self) -> None:
        with self._lock:
            if self._running == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_INTERVAL_S))
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                sys.setswitchinterval(self._saved)


_short_switches = _ShortSwitches()


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
    client: MessageSender | None, pacer: Pacer, stop: threading.Event, engine: SendEngine = "auto"
) -> SendPool:
    """The pool a run sends through: :class:`LoopPool` for ``"asyncio"``, and for ``"auto"`` when the
    client allows it (:func:`runs_on_loop`), else :class:`~.workers.WorkerPool`.

    :raises ConfigurationError: ``"asyncio"`` for a client that only the thread engine can send through.
    """
    if engine == "threads" or client is None or (engine == "auto" and not runs_on_loop(client)):
        return WorkerPool(client, pacer, stop)
    return LoopPool(cast(GraphClient, client), pacer, stop)


class LoopPool:
    """Requests in flight as tasks of one event loop, paced by ``pacer``; answers come back through
    :meth:`collect`.

    :param client: a :class:`~airflow_provider_wamm.graph.client.GraphClient` over its own socket
        pool (:func:`runs_on_loop`): its requests are written and its answers read by the client's
        own rules; ``None`` only for a pool that is never started (a dry run).
    :param pacer: the run's pacing, whose turn each request takes on the loop.
    :param stop: once set, jobs not yet written come back :class:`~.workers.Unsent`.
    :param name: prefix of the name of the loop's thread.
    """

    def __init__(
        self, client: GraphClient | None, pacer: Pacer, stop: threading.Event, *, name: str = "wamm-send"
    ) -> None:
        if client is not None and not runs_on_loop(client):
            raise ConfigurationError(
                "the asyncio send engine needs a GraphClient over its own connections (no session, "
                "proxy or transport of the caller); use the thread engine"
            )
        self._client = client
        self._pacer = pacer
        self._stop = stop
        self._name = name
        self._answers: queue.SimpleQueue[Answer] = queue.SimpleQueue()
        self._inbox: deque[Job] = deque()  # submitted, not yet seen by the loop
        self._waking = False  # the loop was told to look at the inbox
        self._pending: deque[Job] = deque()  # on the loop: waiting for a free slot
        self._tasks: set[asyncio.Task[None]] = set()
        self._turning: set[asyncio.Task[Any]] = set()  # waiting for their turn: nothing written
        self._size = 0
        self._sending = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: AsyncSocketPool | None = None
        self._thread: threading.Thread | None = None

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
        return take_answers(self._answers, timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Stop the run's sending: jobs not yet written come back unsent, requests on the wire are
        waited for up to ``timeout`` seconds in all (then abandoned: their answers are no longer
        read), the connections closed and the threads ended."""
        self._stop.set()
        loop = self._loop
        if loop is None or loop.is_closed():  # never started, or closed already
            return
        finished = asyncio.run_coroutine_threadsafe(self._finish(timeout), loop)
        with contextlib.suppress(Exception):
            finished.result(timeout + 1.0)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if not loop.is_running():
            loop.close()
        _short_switches.leave()
        self._size = 0

    # -- the loop's side -------------------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        """The event loop and its thread, started on the first call."""
        if self._loop is not None:
            return self._loop
        assert self._client is not None
        loop = self._loop = new_event_loop()
        self._connections = AsyncSocketPool(self._client.transport)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=loop.run_forever, name=f"{self._name}-loop", daemon=True)
        _short_switches.enter()
        self._thread.start()
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
        """One attempt of ``job``: its slot waited for, then its request built, the window's turn
        taken with the connection open, the request written, the answer read and judged by the
        client's rules (a HALT error stops the run at once).

        The slot comes first: a task only reserves it and sleeps until then, so that a hand-over of
        hundreds of jobs at once costs the loop little, and the work of each request is done at its
        turn instead of ahead of the sends that are due meanwhile."""
        client, connections = self._client, self._connections
        assert client is not None and connections is not None
        left_at = 0.0

        async def before_write() -> None:
            nonlocal left_at
            await self._take_window()
            self._sending += 1
            left_at = job.left_at = time.perf_counter()

        job.attempts += 1
        try:
            await self._take_slot()
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

    async def _take_slot(self) -> None:
        """The first half of the pacer's turn, on the loop: out of a hold, then until the reserved
        slot. :class:`~.pacing.Stopped` if the run stopped meanwhile, or the pool closes."""
        pacer = self._pacer
        with self._turn():
            while (left := pacer.hold_left()) > 0:
                await self._sleep(left)
            await self._sleep(pacer.reserve_slot() - time.monotonic())

    async def _take_window(self) -> None:
        """The second half, right before the write: until the send fits the one-second window
        (counted there). :class:`~.pacing.Stopped` as :meth:`_take_slot` (nothing was written)."""
        pacer = self._pacer
        with self._turn():
            held = False
            while (wait := pacer.try_window(held=held)) > 0:
                held = True
                await asyncio.sleep(wait)
        if self._stop.is_set():
            raise Stopped

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """The current task waits for its turn meanwhile: :meth:`close` cancels it (it never left)."""
        task = asyncio.current_task()
        assert task is not None
        self._turning.add(task)
        try:
            yield
        except asyncio.CancelledError:
            raise Stopped from None
        finally:
            self._turning.discard(task)

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the loop, :data:`STOP_CHECK_S` at most at a time, raising
        :class:`~.pacing.Stopped` once the run stops."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, STOP_CHECK_S))
        raise Stopped

    async def _finish(self, timeout: float) -> None:
        """Answer the jobs not started as unsent, wait for the tasks, close the connections."""
        self._take_inbox()
        while self._pending:
            self._answers.put(Unsent(self._pending.popleft()))
        for task in list(self._turning):  # they come back unsent at once, not at their slots
            task.cancel()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
        if self._connections is not None:
            self._connections.close()
