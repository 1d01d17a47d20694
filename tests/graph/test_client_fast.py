"""Sends over the default transport (the socket pool) on real sockets: the same answers and errors as
over a ``requests`` session.

Every scenario runs against a small local HTTP/1.1 server and is compared with the same single-attempt
send of a client whose transport is a :class:`SessionTransport`, on the same server, so the two
transports cannot drift apart: results, exception classes, codes, ``request_sent`` and the
one-request-only rule for sends whose outcome is unknown. What the pool does with its connections is
observed from the server's side.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_wamm.graph import (
    AuthenticationError,
    ConfigurationError,
    GraphClient,
    GraphError,
    GraphTransportError,
    RecipientError,
    SendResult,
    ThrottlingError,
    TransientError,
    UnknownOutcomeError,
    build_marketing_message,
)
from airflow_provider_wamm.graph.connections import SessionTransport, SocketPoolTransport
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION
from tests.graph.conftest import PHONE_NUMBER_ID, TOKEN, graph_error, send_ok

PAYLOAD = build_marketing_message(
    to="4915123456789",
    template_name="spring_sale",
    language="en_US",
    components=[{"type": "body", "parameters": [{"type": "text", "text": "Anna ünd Zoë"}]}],
)
SEND_PATH = f"/{DEFAULT_API_VERSION}/{PHONE_NUMBER_ID}/marketing_messages"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.closed = 0
        self.lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.lock:
            self.connections += 1
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up first (timeouts, drops) are part of the tests."""

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.lock:
            self.closed += 1

    def open_connections(self) -> int:
        """Connections accepted and not closed yet (by either side)."""
        with self.lock:
            return self.connections - self.closed

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like Meta

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(
        self, status: int, body: bytes, *, content_type: str = "application/json", close: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, **kwargs: Any) -> None:
        self._reply(status, json.dumps(data).encode(), **kwargs)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        mode = self.server.mode
        if mode == "ok":
            self._json(200, send_ok("wamid.fast"))
        elif mode == "hangup":  # a keep-alive answer, then the server closes the idle connection
            self._json(200, send_ok("wamid.fast"))
            self.close_connection = True
        elif mode == "close":
            self._json(200, send_ok("wamid.close"), close=True)
        elif mode == "chunked":
            data = json.dumps(send_ok("wamid.chunked")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (data[:10], data[10:]):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif mode == "recipient":
            self._json(400, graph_error(131026, "Message undeliverable"))
        elif mode == "token":
            error = graph_error(190, f"Invalid OAuth access token {TOKEN}")
            self._json(401, error)
        elif mode == "throttle":
            self._json(429, graph_error(130429, "Rate limit hit"))
        elif mode == "transient":
            self._json(500, graph_error(131000, "Something went wrong"))
        elif mode == "bare500":
            self._reply(500, b"", content_type="text/plain")
        elif mode in ("502", "504"):
            self._reply(int(mode), b"<html>Gateway</html>", content_type="text/html")
        elif mode == "not-json":
            self._reply(200, b"<html>ok</html>", content_type="text/html")
        elif mode == "no-id":
            self._json(200, {"messages": [{}]})
        elif mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "https://example.com/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif mode == "slow":
            time.sleep(0.6)
            self._json(200, send_ok("wamid.late"))
        elif mode == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def make(sleeps: list[float]) -> Iterator[Callable[..., GraphClient]]:
    clients: list[GraphClient] = []
    sessions: list[requests.Session] = []

    def build(base_url: str, **kwargs: Any) -> GraphClient:
        client = GraphClient(
            TOKEN, phone_number_id=PHONE_NUMBER_ID, base_url=base_url, sleep=sleeps.append, **kwargs
        )
        clients.append(client)
        if "session" in kwargs:
            sessions.append(kwargs["session"])
        return client

    yield build
    for client in clients:
        client.close()
    for session in sessions:
        session.close()


def _both(make: Callable[..., GraphClient], base_url: str, **kwargs: Any) -> list[Callable[[], SendResult]]:
    """The same single-attempt send over the socket pool and over a requests session."""
    pooled = make(base_url, **kwargs)
    assert isinstance(pooled.transport, SocketPoolTransport)
    over_session = make(base_url, session=requests.Session(), **kwargs)
    assert isinstance(over_session.transport, SessionTransport)
    return [
        lambda: pooled.send_marketing_message_fast(PAYLOAD),
        lambda: over_session.send_marketing_message(PAYLOAD, retry=False),
    ]


# --------------------------------------------------------------------------------------------
# Requests and answers
# --------------------------------------------------------------------------------------------


def test_fast_send_posts_the_same_request_and_reads_the_same_result(
    server: _Server, make: Callable[..., GraphClient]
) -> None:
    fast, slow = (send() for send in _both(make, server.url))
    assert fast == slow == SendResult.from_response(send_ok("wamid.fast"))
    first, second = server.requests
    assert first["path"] == second["path"] == SEND_PATH
    assert json.loads(first["body"]) == json.loads(second["body"]) == PAYLOAD
    for name in ("Authorization", "Content-Type", "User-Agent", "Accept"):
        assert first["headers"][name] == second["headers"][name], name
    assert first["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert first["headers"]["Host"] == second["headers"]["Host"]


def test_fast_send_keeps_one_connection_alive(server: _Server, make: Callable[..., GraphClient]) -> None:
    client = make(server.url)
    for _ in range(20):
        assert client.send_marketing_message_fast(PAYLOAD).wamid == "wamid.fast"
    assert server.connections == 1 and len(server.requests) == 20


def test_connection_close_answers_open_a_new_connection(
    server: _Server, make: Callable[..., GraphClient]
) -> None:
    server.mode = "close"
    client = make(server.url)
    for _ in range(3):
        assert client.send_marketing_message_fast(PAYLOAD).wamid == "wamid.close"
    assert server.connections == 3


def test_an_idle_connection_closed_by_the_server_is_not_an_unknown_outcome(
    server: _Server, make: Callable[..., GraphClient]
) -> None:
    server.mode = "hangup"
    client = make(server.url)
    assert client.send_marketing_message_fast(PAYLOAD).wamid == "wamid.fast"
    _wait_for(lambda: server.closed == 1)  # the idle connection, closed by the server
    time.sleep(0.05)  # for its end to reach the client
    server.mode = "ok"
    assert client.send_marketing_message_fast(PAYLOAD).wamid == "wamid.fast"
    assert server.connections == 2


def test_chunked_answers_are_read(server: _Server, make: Callable[..., GraphClient]) -> None:
    server.mode = "chunked"
    assert make(server.url).send_marketing_message_fast(PAYLOAD).wamid == "wamid.chunked"


def test_a_base_url_with_a_path_keeps_it(server: _Server, make: Callable[..., GraphClient]) -> None:
    client = make(server.url + "/graph-proxy")
    client.send_marketing_message_fast(PAYLOAD)
    assert server.requests[-1]["path"] == "/graph-proxy" + SEND_PATH


def test_many_threads_share_the_pool(server: _Server, make: Callable[..., GraphClient]) -> None:
    client = make(server.url, pool_maxsize=4)
    results: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(25):
            wamid = client.send_marketing_message_fast(PAYLOAD).wamid
            with lock:
                results.append(wamid)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["wamid.fast"] * 200
    assert len(server.requests) == 200
    assert server.connections <= 200 and isinstance(client.transport, SocketPoolTransport)
    _wait_for(lambda: server.open_connections() <= 4)  # at most 4 are kept idle, the others closed


# --------------------------------------------------------------------------------------------
# Errors: the same as the session's, request by request
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "kind", "code"),
    [
        ("recipient", RecipientError, 131026),
        ("token", AuthenticationError, 190),
        ("throttle", ThrottlingError, 130429),
        ("transient", TransientError, 131000),
        ("bare500", GraphError, None),
    ],
)
def test_graph_errors_match_the_session_path(
    server: _Server, make: Callable[..., GraphClient], mode: str, kind: type[GraphError], code: int | None
) -> None:
    server.mode = mode
    errors = []
    for send in _both(make, server.url, max_retries=3):
        with pytest.raises(GraphError) as info:
            send()
        errors.append(info.value)
    fast, slow = errors
    assert isinstance(fast, kind) and type(fast) is type(slow)
    assert fast.to_dict() == slow.to_dict() and fast.code == code
    assert TOKEN not in str(fast) and TOKEN not in json.dumps(fast.to_dict())
    assert len(server.requests) == 2  # neither retried


@pytest.mark.parametrize("mode", ["502", "504", "not-json", "no-id", "slow", "drop"])
def test_unknown_outcomes_match_the_session_path(
    server: _Server, make: Callable[..., GraphClient], mode: str, sleeps: list[float]
) -> None:
    server.mode = mode
    for send in _both(make, server.url, timeout=0.2, max_retries=3):
        with pytest.raises(UnknownOutcomeError) as info:
            send()
        assert info.value.request_sent is True
    time.sleep(0.05)
    assert len(server.requests) == 2 and sleeps == []


def test_redirects_are_configuration_errors(server: _Server, make: Callable[..., GraphClient]) -> None:
    server.mode = "redirect"
    for send in _both(make, server.url):
        with pytest.raises(ConfigurationError, match="redirected"):
            send()


def test_refused_connection_is_not_sent(make: Callable[..., GraphClient], sleeps: list[float]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    for send in _both(make, f"http://127.0.0.1:{port}", max_retries=3):
        with pytest.raises(GraphTransportError) as info:
            send()
        assert not isinstance(info.value, UnknownOutcomeError)
        assert info.value.request_sent is False and "could not connect" in str(info.value)
    assert sleeps == []


def test_payloads_that_are_not_json_are_not_sent(server: _Server, make: Callable[..., GraphClient]) -> None:
    client = make(server.url)
    with pytest.raises(GraphTransportError) as info:
        client.send_marketing_message_fast({**PAYLOAD, "bad": float("nan")})
    assert info.value.request_sent is False and server.requests == []


def test_the_token_stays_out_of_the_client_state(server: _Server, make: Callable[..., GraphClient]) -> None:
    client = make(server.url)
    client.send_marketing_message_fast(PAYLOAD)
    assert TOKEN not in str(vars(client)) and TOKEN not in repr(client)
    assert isinstance(client.transport, SocketPoolTransport) and TOKEN not in str(vars(client.transport))


def test_close_closes_the_idle_connections(server: _Server, make: Callable[..., GraphClient]) -> None:
    client = make(server.url)
    client.send_marketing_message_fast(PAYLOAD)
    assert server.connections == 1 and server.closed == 0  # kept alive, idle
    client.close()
    _wait_for(lambda: server.closed == 1)


# --------------------------------------------------------------------------------------------
# When the session is used instead
# --------------------------------------------------------------------------------------------


def test_a_session_given_by_the_caller_is_used(requests_mock: Any) -> None:
    url = f"https://graph.facebook.com/{DEFAULT_API_VERSION}/{PHONE_NUMBER_ID}/marketing_messages"
    requests_mock.post(url, json=send_ok("wamid.session"))
    session = requests.Session()
    client = GraphClient(TOKEN, phone_number_id=PHONE_NUMBER_ID, session=session)
    assert isinstance(client.transport, SessionTransport)
    assert client.send_marketing_message_fast(PAYLOAD).wamid == "wamid.session"
    assert requests_mock.call_count == 1


def test_an_environment_proxy_keeps_sends_on_the_session(
    monkeypatch: pytest.MonkeyPatch, requests_mock: Any
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = f"https://graph.facebook.com/{DEFAULT_API_VERSION}/{PHONE_NUMBER_ID}/marketing_messages"
    requests_mock.post(url, json=send_ok("wamid.proxied"))
    with GraphClient(TOKEN, phone_number_id=PHONE_NUMBER_ID) as client:
        assert isinstance(client.transport, SessionTransport)
        assert client.send_marketing_message_fast(PAYLOAD).wamid == "wamid.proxied"


def test_no_proxy_for_the_host_uses_direct_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "graph.facebook.com")
    with GraphClient(TOKEN, phone_number_id=PHONE_NUMBER_ID) as client:
        assert isinstance(client.transport, SocketPoolTransport)


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    cert, key = _self_signed(tmp_path)
    srv = _Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv, cert
    srv.shutdown()
    srv.server_close()


def test_tls_is_verified_like_the_session(
    tls_server: tuple[_Server, Path], make: Callable[..., GraphClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, cert = tls_server
    url = f"https://localhost:{srv.server_address[1]}"
    for send in _both(make, url):
        with pytest.raises(GraphTransportError) as info:
            send()
        assert info.value.request_sent is False and "TLS" in str(info.value)
    assert srv.requests == []

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    fast, slow = (send() for send in _both(make, url))
    assert fast == slow and fast.wamid == "wamid.fast"
    assert [r["headers"]["Host"] for r in srv.requests] == [f"localhost:{srv.server_address[1]}"] * 2
