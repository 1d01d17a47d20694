"""What a deployment runs on besides Airflow: PostgreSQL databases, Redis, the sandbox, free ports.

Each helper here is small and does one thing; :mod:`tests.deployment.airflow_deployment` puts them
together.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CHROMIUM = pathlib.Path("/usr/bin/chromium")


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy; after ``timeout`` raise ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}.")
        time.sleep(interval)


# -- PostgreSQL ------------------------------------------------------------------------------------


def _admin_connection() -> Any:
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5
    )


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database with a unique name; dropped (connections closed first) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with contextlib.closing(_admin_connection()) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with contextlib.closing(_admin_connection()) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_url(database: str, driver: str = "postgresql+psycopg") -> str:
    """SQLAlchemy URL of ``database`` on the local server."""
    return f"{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


# -- processes -------------------------------------------------------------------------------------


@dataclass
class Service:
    """A long-running process of the deployment, its output in ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    log: pathlib.Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        """The end of the process's output."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout``."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def start_service(
    name: str, args: Sequence[str], env: Mapping[str, str], log: pathlib.Path, cwd: pathlib.Path
) -> Service:
    """Start ``args`` in its own process group (so stopping it stops its children too)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(args),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    return Service(name, process, log)


def http_json(url: str, data: Any = None, timeout: float = 10.0) -> Any:
    """GET (or POST ``data`` as JSON to) ``url``; the decoded answer."""
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read() or b"null")


def answers(url: str) -> bool:
    """Whether ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return 200 <= answer.status < 300
    except (urllib.error.URLError, OSError):
        return False


# -- the sandbox -----------------------------------------------------------------------------------

SANDBOX_TOKEN = "deployment-sandbox-token"
SANDBOX_APP_SECRET = "deployment-app-secret"
SANDBOX_VERIFY_TOKEN = "deployment-verify-token"
PHONE_NUMBER_ID = "100000000000001"
WABA_ID = "200000000000001"


@dataclass
class SandboxProcess:
    """``wamm-sandbox`` as a process, with its admin endpoints."""

    service: Service
    url: str
    settings: dict[str, Any] = field(default_factory=dict)

    def configure(self, **settings: Any) -> None:
        """Change the sandbox's configuration (``SandboxConfig`` fields) while it runs."""
        http_json(f"{self.url}/_sandbox/config", settings)

    def reset(self) -> None:
        """Forget every message and counter (the configuration stays)."""
        http_json(f"{self.url}/_sandbox/reset", {})

    def counts(self) -> dict[str, Any]:
        return dict(http_json(f"{self.url}/_sandbox/counts?per_recipient=true"))

    def messages(self) -> list[dict[str, Any]]:
        """Every accepted message (``to``, ``id``, ``timestamp``...), oldest first."""
        found: list[dict[str, Any]] = []
        while True:
            page = http_json(f"{self.url}/_sandbox/messages?offset={len(found)}&limit=5000")
            found.extend(page["data"])
            if len(found) >= int(page["total"]) or not page["data"]:
                return found


def start_sandbox(
    command: str, workdir: pathlib.Path, env: Mapping[str, str], webhook_url: str
) -> SandboxProcess:
    """Start the sandbox on a free port, posting signed webhooks to ``webhook_url``."""
    port = free_port()
    args = [
        command, "--port", str(port),
        "--token", SANDBOX_TOKEN, "--app-secret", SANDBOX_APP_SECRET,
        "--phone-number-id", PHONE_NUMBER_ID, "--waba-id", WABA_ID,
        "--mps-cap", "80", "--latency", "0.05", "--seed", "7",
        "--webhook-url", webhook_url, "--webhook-delay", "0.05", "--webhook-step", "0",
        "--webhook-batch-size", "500",
    ]  # fmt: skip
    service = start_service("sandbox", args, env, workdir / "logs" / "sandbox.log", workdir)
    sandbox = SandboxProcess(service, f"http://127.0.0.1:{port}")
    wait_until(lambda: answers(f"{sandbox.url}/_sandbox/health") or not service.alive(), 30, "the sandbox")
    if not service.alive():
        raise RuntimeError(f"The sandbox did not start:\n{service.tail()}")
    return sandbox
