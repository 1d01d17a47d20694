"""Fixtures of the real-database suite: one backend per parameter (SQLite file, PostgreSQL, MariaDB).

Each test gets its own table prefix on the shared servers, dropped afterwards; see ``servers.py``.
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.webhooks import WebhookSettings, create_app
from tests.realdb.servers import BACKENDS, connection_json, drop_prefixed_tables, server_url, unique_prefix


@pytest.fixture(
    params=[pytest.param(b, marks=[pytest.mark.realdb] if b != "sqlite" else []) for b in BACKENDS]
)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite``, ``postgres`` or ``mysql``."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: pathlib.Path) -> str:
    """SQLAlchemy URL of the backend (a fresh SQLite file, or the shared server)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return server_url(backend)


@pytest.fixture
def prefix(db_url: str) -> Iterator[str]:
    """A table prefix of this test alone; its tables are dropped afterwards."""
    value = unique_prefix()
    yield value
    drop_prefixed_tables(db_url, value)


@pytest.fixture
def ledger(db_url: str, prefix: str) -> Iterator[Ledger]:
    """The test's ledger on the backend."""
    led = Ledger.from_url(db_url, table_prefix=prefix)
    led.ensure_schema()
    yield led
    led.dispose()


@pytest.fixture
def ledger_conn(backend: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow connection (``AIRFLOW_CONN_*``) to the backend's database; returns its id."""
    conn_id = "wamm_realdb_ledger"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(backend, db_url))
    return conn_id


@pytest.fixture
def serve() -> Iterator[Callable[[WebhookSettings], str]]:
    """Serve webhook receivers with uvicorn on free ports: ``serve(settings) -> url``."""
    servers: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(settings: WebhookSettings) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                lifespan="off",
                access_log=False,
                log_config=None,
                timeout_graceful_shutdown=1,
            )
        )
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.01)
        servers.append((server, thread, sock))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(10)
        sock.close()
