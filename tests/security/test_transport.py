"""The access token travels only over HTTPS, except to this machine, and never follows a redirect.

No test here lets a packet leave the loopback interface: connection attempts are trapped, so a broken
check fails the test instead of reaching the network.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
import urllib3.util.connection
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.graph.client import GraphClient, is_loopback_host
from airflow_provider_wamm.graph.errors import ConfigurationError, InsecureTransportError
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

TOKEN = "EAAGtransportSECRET0123456789"

NOT_LOOPBACK = [
    "http://graph.facebook.com",
    "HTTP://graph.facebook.com",
    "http://10.1.2.3:8080",
    "http://192.168.1.10",
    "http://[2001:db8::1]",
    "http://localhost.attacker.example",
    "http://127.0.0.1.nip.io",
    "http://0x7f000001",
    "http://2130706433",
]
LOOPBACK = [
    "http://127.0.0.1:8080",
    "http://127.45.6.7",
    "http://localhost:9000",
    "http://LOCALHOST",
    "http://[::1]:8080",
    "http://sandbox.localhost",
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection that is not to the loopback interface."""
    real = urllib3.util.connection.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        if not is_loopback_host(address[0]):
            raise AssertionError(f"a test tried to connect to {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", guarded)


@pytest.mark.parametrize("base_url", NOT_LOOPBACK)
def test_plain_http_to_other_hosts_is_refused(base_url: str) -> None:
    with pytest.raises(InsecureTransportError) as info:
        GraphClient(TOKEN, phone_number_id="1", base_url=base_url)
    assert "https" in str(info.value) and TOKEN not in str(info.value)


@pytest.mark.parametrize("base_url", NOT_LOOPBACK)
def test_plain_http_is_allowed_only_when_asked(base_url: str) -> None:
    client = GraphClient(TOKEN, phone_number_id="1", base_url=base_url, allow_insecure_http=True)
    client.close()


@pytest.mark.parametrize("base_url", LOOPBACK)
def test_plain_http_to_this_machine_is_allowed(base_url: str) -> None:
    GraphClient(TOKEN, phone_number_id="1", base_url=base_url).close()


@pytest.mark.parametrize(
    "base_url", ["http://user:pw@127.0.0.1", "https://graph.facebook.com/?access_token=x", "ftp://127.0.0.1"]
)
def test_credentials_queries_and_other_schemes_are_refused(base_url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        GraphClient(TOKEN, phone_number_id="1", base_url=base_url)
    assert "user:pw" not in str(info.value)


def _connection(monkeypatch: pytest.MonkeyPatch, host: str, **extra: Any) -> str:
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAMM_TRANSPORT",
        json.dumps(
            {
                "conn_type": "whatsapp",
                "host": host,
                "password": TOKEN,
                "extra": {"phone_number_id": "100000000000001", **extra},
            }
        ),
    )
    return "wamm_transport"


def test_hook_and_operator_refuse_a_plain_http_host_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn_id = _connection(monkeypatch, "http://graph.example.com")
    with pytest.raises(InsecureTransportError) as info:
        WhatsAppHook(whatsapp_conn_id=conn_id).get_conn()
    assert TOKEN not in str(info.value)
    ok, message = WhatsAppHook(whatsapp_conn_id=conn_id).test_connection()
    assert not ok and "https" in message and TOKEN not in message
    op = MarketingMessageOperator(
        task_id="send",
        template_name="welcome_named",
        whatsapp_conn_id=conn_id,
        recipients=["+4915100000001"],
        campaign_id="transport",
    )
    with pytest.raises(AirflowFailException) as failure:
        op.execute(cast(Any, {"ti": None, "run_id": "r", "logical_date": None}))
    assert "https" in str(failure.value) and TOKEN not in str(failure.value)


@pytest.fixture
def redirecting() -> Iterator[dict[str, Any]]:
    """A loopback server answering every request with a redirect to a second one, which counts hits."""
    hits: list[str] = []

    class Target(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    target = ThreadingHTTPServer(("127.0.0.2", 0), Target)
    location = f"http://127.0.0.2:{target.server_address[1]}/collect"

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(307)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    source = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (target, source)]
    for t in threads:
        t.start()
    try:
        yield {"url": f"http://127.0.0.1:{source.server_address[1]}", "hits": hits}
    finally:
        for s in (target, source):
            s.shutdown()
            s.server_close()


def test_redirects_are_never_followed(redirecting: dict[str, Any]) -> None:
    """A redirect (a misconfigured proxy, a hijacked host) must not carry the token anywhere else."""
    with GraphClient(TOKEN, phone_number_id="1", base_url=redirecting["url"], max_retries=0) as client:
        with pytest.raises(ConfigurationError) as read:
            client.get_phone_number()
        with pytest.raises(ConfigurationError) as send:
            client.send_marketing_message(
                {"messaging_product": "whatsapp", "to": "4915100000001", "type": "template"}, retry=False
            )
        fast = getattr(client, "send_marketing_message_fast", None)
        if fast is not None:
            with pytest.raises(ConfigurationError):
                fast({"messaging_product": "whatsapp", "to": "4915100000001", "type": "template"})
    assert redirecting["hits"] == []
    for info in (read, send):
        assert "redirect" in str(info.value) and TOKEN not in str(info.value)
