"""Sandbox fixtures (the local Graph API stand-in) and two webhook receivers.

``sandbox_server`` starts one sandbox for the whole session; ``sandbox`` hands it to a test with fresh
state and the default configuration. ``webhook_receiver`` is a tiny HTTP server on another port that
records the webhooks it is sent (and can be told to fail the first few); ``live_receiver`` is the
provider's own receiver, served by uvicorn over a fresh ledger, for tests from the sandbox to the
ledger.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.sandbox import Sandbox, SandboxConfig

#: The sandbox's default app secret (the key of the webhooks it signs).
SANDBOX_SECRET = SandboxConfig().app_secret
#: Sandbox webhook timings that keep webhook tests short: statuses within about 10 ms, sent one at a
#: time so that they arrive in order.
FAST_WEBHOOKS: dict[str, Any] = {
    "webhook_delay_s": 0.01,
    "webhook_step_s": 0.01,
    "webhook_flush_s": 0.01,
    "webhook_concurrency": 1,
}
#: The live receiver's verify token (the sandbox never asks for it).
_LIVE_VERIFY_TOKEN = "test-verify-token-42"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    """One running sandbox for the session (tests get it through ``sandbox``, which resets it)."""
    server = Sandbox(SandboxConfig()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox with fresh state and the default configuration."""
    sandbox_server.reset(SandboxConfig())
    yield sandbox_server
    sandbox_server.reset(SandboxConfig())


@dataclass
class ReceivedWebhook:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    def json(self) -> Any:
        """The parsed body."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A local HTTP endpoint collecting webhook POSTs."""

    url: str = ""
    received: list[ReceivedWebhook] = field(default_factory=list)
    fail_first: int = 0
    """Answer 500 to this many POSTs before accepting."""
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def statuses(self) -> list[dict[str, Any]]:
        """Every status in the order received (across entries and changes)."""
        return [s for hook in list(self.received) for s in _iter_values(hook.json(), "statuses")]

    def user_actions(self) -> list[dict[str, Any]]:
        """Every user action (click event) in the order received."""
        return [a for hook in list(self.received) for a in _iter_values(hook.json(), "user_actions")]

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` statuses arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.statuses()) >= count:
                return True
            time.sleep(0.01)
        return False


def _iter_values(payload: Any, key: str) -> Iterator[dict[str, Any]]:
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            yield from change.get("value", {}).get(key, [])


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running receiver; its ``url`` goes into ``SandboxConfig.webhook_url``."""
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver._lock:
                fail = receiver.failed < receiver.fail_first
                if fail:
                    receiver.failed += 1
                else:
                    receiver.received.append(
                        ReceivedWebhook(self.path, dict(self.headers.items()), body, time.monotonic())
                    )
            self.send_response(500 if fail else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/whatsapp"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def live_receiver(tmp_path: pathlib.Path) -> Iterator[tuple[str, Ledger]]:
    """The receiver served by uvicorn on a free port, over a fresh SQLite ledger: ``(url, ledger)``."""
    import uvicorn

    from airflow_provider_wamm.webhooks import WebhookSettings, create_app

    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    app = create_app(
        WebhookSettings(app_secret=SANDBOX_SECRET, verify_token=_LIVE_VERIFY_TOKEN, ledger=ledger)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", access_log=False, log_config=None, timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "receiver did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/", ledger
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        ledger.dispose()
