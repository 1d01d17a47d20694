"""The sandbox HTTP server: its ASGI app (:mod:`~airflow_provider_wamm.sandbox.app`) on uvicorn, run in
a background thread, and what a test or a script asks of it.

Requests are served on one event loop, concurrently: uvicorn sets no limit on connections or
requests in flight, and slow answers sleep with ``asyncio.sleep``, so a thousand requests that each
take a second are all answered after about a second.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import threading
import time
from typing import Any

from airflow_provider_wamm.sandbox.app import build_app
from airflow_provider_wamm.sandbox.config import SandboxConfig, normalize_templates
from airflow_provider_wamm.sandbox.state import (
    CAUGHT_UP_S,
    DEAF_AFTER_S,
    SandboxContext,
    SandboxMessage,
    max_window_count,
)
from airflow_provider_wamm.sandbox.webhooks import WebhookEmitter

log = logging.getLogger(__name__)

#: Connections the listening socket queues before the server accepts them (bursts of clients).
LISTEN_BACKLOG = 4096


async def watch_deafness(ctx: SandboxContext, tick_s: float = 0.005) -> None:
    """Record the spells in which the event loop ran nothing for longer than :data:`DEAF_AFTER_S`
    (:attr:`~.state.SandboxState.deaf_spells`), until it caught up with the requests that came
    meanwhile (a tick on time again): arrival times stamped in a spell bunch up, so a measure of the
    senders' pace can leave those windows out instead of blaming the senders."""
    last = time.monotonic()
    began: float | None = None
    while True:
        await asyncio.sleep(tick_s)
        now = time.monotonic()
        late = now - last - tick_s
        if began is None and late > DEAF_AFTER_S:
            began = last
        elif began is not None and late <= CAUGHT_UP_S:
            ctx.state.deaf_spells.append((began, now))
            began = None
        last = now


class Sandbox:
    """A local stand-in for the Graph API's marketing-message endpoints, served over real HTTP.

    Use it as a context manager (``with Sandbox() as sb: ... sb.url``) or call :meth:`start` and
    :meth:`stop`. ``config`` (or keyword changes of :class:`SandboxConfig`) sets it up; ``host`` and
    ``port`` (0: any free port) say where it listens.
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, **changes: Any
    ) -> None:
        base = config or SandboxConfig()
        self.context = SandboxContext(base.replace(**changes) if changes else base)
        """The configuration in force and the state, shared by the handlers and the webhook emitter."""
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None
        self._app = build_app(self.context)

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 15.0) -> Sandbox:
        """Start serving in a background thread; returns once the socket accepts connections."""
        if self._thread is not None:
            return self
        import uvicorn

        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            http="auto",
            interface="asgi3",
            proxy_headers=False,
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level=None,
            server_header=False,
            date_header=False,
            timeout_keep_alive=75,
            timeout_graceful_shutdown=1,
            backlog=LISTEN_BACKLOG,
            limit_concurrency=None,  # never answer 503 for being busy: requests in flight are unbounded
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="wamm-sandbox", daemon=True)
        self._thread.start()
        self._wait_started(timeout)
        return self

    def _wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._startup_error is not None or self._thread is None or not self._thread.is_alive():
                raise RuntimeError(f"sandbox failed to start: {self._startup_error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start in time")
            time.sleep(0.005)

    def _run(self, sock: socket.socket) -> None:
        loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:
            self._startup_error = exc
            log.exception("sandbox server stopped with an error")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    async def _serve(self, sock: socket.socket) -> None:
        emitter = WebhookEmitter(self.context)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(emitter.run()), loop.create_task(watch_deafness(self.context))]
        try:
            await self._server.serve(sockets=[sock])
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (in-flight hung answers are cut after about a second)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox(url={self.url!r}, running={self._thread is not None})"

    # ------------------------------------------------------------------ where and how it runs
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the Graph paths follow: ``/v23.0/...``)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return self._port

    @property
    def config(self) -> SandboxConfig:
        """The configuration in force (replace it with :meth:`configure`, do not mutate it)."""
        return self.context.config

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change settings at once (validated); e.g. ``configure(token_expired=True, mps_cap=20)``."""
        if "templates" in changes:
            changes["templates"] = normalize_templates(changes["templates"])
        return self.context.install(self.context.config.replace(**changes))

    def reset(self, config: SandboxConfig | None = None) -> None:
        """Forget every message, counter, pending webhook and limit; optionally install ``config`` too."""
        self.context.reset(config)

    # ------------------------------------------------------------------ what happened
    @property
    def messages(self) -> list[SandboxMessage]:
        """A copy of the list of accepted messages, in order of acceptance."""
        return list(self.context.state.messages)

    def sends_per_recipient(self) -> collections.Counter[str]:
        """How many messages each recipient was sent (a value above 1 is a duplicate)."""
        return collections.Counter(m.to for m in list(self.context.state.messages))

    def send_requests(self) -> collections.Counter[str]:
        """How many send requests named each recipient (refused ones too, once the body was readable)."""
        return collections.Counter(self.context.state.send_requests)

    def errors(self) -> collections.Counter[int]:
        """How many times each Graph error code was answered since the last reset."""
        return collections.Counter(self.context.state.errors)

    def max_window_count(self, window_s: float = 1.0, *, heard: bool = False) -> int:
        """Most messages accepted within any ``window_s`` seconds (the same measure as the cap).

        :param heard: only windows in which the sandbox heard all along (see :meth:`deaf_spells`).
        """
        state = self.context.state
        deaf = list(state.deaf_spells) if heard else []
        return max_window_count([m.monotonic for m in list(state.messages)], window_s, deaf=deaf)

    def deaf_spells(self) -> list[tuple[float, float]]:
        """Spells (``time.monotonic()``) in which the sandbox's event loop ran nothing for longer than
        :data:`~.state.DEAF_AFTER_S`: requests that came meanwhile were stamped when it got back."""
        return list(self.context.state.deaf_spells)

    def expected_outcome(self, to: str) -> str:
        """The outcome a message to ``to`` will get (forced outcome first, then the seeded hash)."""
        return self.context.runtime.expected_outcome(to)

    def wait_webhooks_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every scheduled webhook was delivered (or dropped); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.context.state
            if state.pending_batches == 0 and (not state.heap or not self.context.config.webhook_url):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def webhook_stats(self) -> dict[str, int]:
        """Counters of webhook delivery since the last reset."""
        return self.context.state.webhook_stats()

    def counts(self, *, per_recipient: bool = False) -> dict[str, Any]:
        """A summary: accepted, duplicates, errors by code, window maximum, outcomes, webhooks."""
        return self.context.state.counts(per_recipient=per_recipient)


__all__ = ["Sandbox", "SandboxMessage"]
