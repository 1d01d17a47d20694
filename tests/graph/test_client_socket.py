"""GraphClient over real sockets (a tiny local HTTP server): urllib3's own failures and log lines."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_wamm.graph import (
    GraphClient,
    GraphTransportError,
    UnknownOutcomeError,
    build_marketing_message,
)
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION
from tests.graph.conftest import PHONE_NUMBER_ID, TOKEN

PAYLOAD = build_marketing_message(to="4915123456789", template_name="spring_sale", language="en")
APP_SECRET = "APPSECRETsocket987"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mode = "ok"
    hits: list[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The client hung up first (read timeout tests): expected, not worth a traceback."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path.startswith(f"/{DEFAULT_API_VERSION}/debug_token"):
            self._reply(200, {"data": {"is_valid": True, "expires_at": 0}})
        else:
            self._reply(200, {"id": PHONE_NUMBER_ID})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.server.hits.append(self.path)
        if self.server.mode == "slow":
            time.sleep(0.5)
            self._reply(200, {"messages": [{"id": "wamid.late"}]})
        elif self.server.mode == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._reply(200, {"contacts": [{"wa_id": "4915123456789"}], "messages": [{"id": "wamid.1"}]})


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.hits = []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(server: _Server, sleeps: list[float], **kwargs: Any) -> GraphClient:
    host, port = server.server_address[:2]
    return GraphClient(
        TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        base_url=f"http://{host!s}:{port}",
        sleep=sleeps.append,
        **kwargs,
    )


def test_send_over_http_to_loopback(server: _Server, sleeps: list[float]) -> None:
    with _client(server, sleeps) as client:
        assert client.send_marketing_message(PAYLOAD).wamid == "wamid.1"
    assert server.hits == [f"/{DEFAULT_API_VERSION}/{PHONE_NUMBER_ID}/marketing_messages"]


def test_read_timeout_on_send_is_unknown_and_not_retried(server: _Server, sleeps: list[float]) -> None:
    server.mode = "slow"
    with _client(server, sleeps, timeout=0.1, max_retries=3) as client, pytest.raises(UnknownOutcomeError):
        client.send_marketing_message(PAYLOAD)
    time.sleep(0.05)
    assert len(server.hits) == 1
    assert sleeps == []


def test_connection_dropped_after_send_is_unknown(server: _Server, sleeps: list[float]) -> None:
    server.mode = "drop"
    with _client(server, sleeps, max_retries=3) as client, pytest.raises(UnknownOutcomeError):
        client.send_marketing_message(PAYLOAD)
    assert len(server.hits) == 1
    assert sleeps == []


def test_refused_connection_is_retried_and_marked_not_sent(sleeps: list[float]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port any more
    client = GraphClient(
        TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        base_url=f"http://127.0.0.1:{port}",
        sleep=sleeps.append,
        max_retries=2,
    )
    with client, pytest.raises(GraphTransportError) as info:
        client.send_marketing_message(PAYLOAD)
    assert not isinstance(info.value, UnknownOutcomeError)
    assert info.value.request_sent is False
    assert len(sleeps) == 2


def test_urllib3_debug_lines_never_show_secrets(
    server: _Server, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with _client(server, sleeps) as client:
        assert client.debug_token(app_id="123", app_secret=APP_SECRET)["is_valid"] is True
        client.get_phone_number()
        client.send_marketing_message(PAYLOAD)

    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    debug_path = f"/{DEFAULT_API_VERSION}/debug_token"
    assert any(f"{debug_path}?input_token=***" in line for line in urllib3_lines), urllib3_lines
    assert server.hits[0] == f"{debug_path}?input_token={TOKEN}"  # the server did get the real token
    assert TOKEN not in caplog.text
    assert APP_SECRET not in caplog.text
    assert "4915123456789" not in caplog.text  # phone numbers are masked
