"""The two ways to run the receiver: the Airflow plugin (API server) and the ``wamm-webhooks`` command."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.webhooks import cli, create_app, sign
from airflow_provider_wamm.webhooks.plugin import (
    URL_PREFIX,
    AirflowWebhookSettings,
    WhatsAppWebhooksPlugin,
    webhook_app,
)
from tests.webhooks.conftest import ASGIClient, body, encode, status

SECRET = "plugin-app-secret-123456"
TOKEN = "plugin-verify-token-123456"


def _env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env.update(extra)
    return env


def _whatsapp_conn_json() -> str:
    return json.dumps(
        {
            "conn_type": "whatsapp",
            "password": "EAAG-token",
            "extra": {
                "phone_number_id": "100000000000001",
                "app_secret": SECRET,
                "webhook_verify_token": TOKEN,
            },
        }
    )


# --- plugin ---------------------------------------------------------------------------------------


def test_plugin_declares_the_fastapi_app() -> None:
    assert WhatsAppWebhooksPlugin.name == "wamm_webhooks"
    [entry] = WhatsAppWebhooksPlugin.fastapi_apps
    assert entry == {"app": webhook_app, "url_prefix": "/whatsapp-webhooks", "name": "WhatsApp webhooks"}
    assert URL_PREFIX == "/whatsapp-webhooks"
    [middleware] = WhatsAppWebhooksPlugin.fastapi_root_middlewares
    assert middleware["kwargs"] == {"path": URL_PREFIX}


def test_plugin_settings_come_from_airflow_connections(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, airflow_connection: Callable[..., str]
) -> None:
    ledger_file = tmp_path / "ledger.db"
    airflow_connection(
        "wa_hooks",
        uri=None,
        conn_type="whatsapp",
        password="tok",
        extra={"phone_number_id": "100000000000001", "app_secret": SECRET, "webhook_verify_token": TOKEN},
    )
    airflow_connection("wa_ledger", conn_type="sqlite", host=str(ledger_file))
    monkeypatch.setenv("AIRFLOW__WAMM__WEBHOOK_CONN_ID", "wa_hooks")
    monkeypatch.setenv("AIRFLOW__WAMM__LEDGER_CONN_ID", "wa_ledger")
    monkeypatch.setenv("AIRFLOW__WAMM__LEDGER_TABLE_PREFIX", "hooks_")
    source = AirflowWebhookSettings(ttl=60)
    client = ASGIClient(create_app(source))
    ok = client.get("/", params={"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "777"})
    assert (ok.status_code, ok.text) == (200, "777")
    raw = encode(body([status("wamid.plugin", "delivered")]))
    response = client.post("/", content=raw, headers={"X-Hub-Signature-256": sign(raw, SECRET)})
    assert response.status_code == 200
    ledger = Ledger.from_url(f"sqlite:///{ledger_file}", table_prefix="hooks_")
    try:
        assert ledger.status_of("wamid.plugin")["status"] == "delivered"  # type: ignore[index]
    finally:
        ledger.dispose()
    first = source()
    assert source() is first  # cached within the ttl
    assert SECRET not in repr(first) and TOKEN not in repr(first)


def test_plugin_without_a_connection_answers_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__WAMM__WEBHOOK_CONN_ID", "wamm_missing_connection")
    client = ASGIClient(create_app(AirflowWebhookSettings(ttl=0)))
    assert client.get("/", params={"hub.mode": "subscribe"}).status_code == 503


def test_airflow_lists_the_plugin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    plugins = json.loads(result.stdout[result.stdout.index("[") :])
    ours = next(p for p in plugins if p["name"] == "wamm_webhooks")
    assert ours["fastapi_apps"] == [
        {
            "app": "fastapi.applications.FastAPI",
            "url_prefix": "/whatsapp-webhooks",
            "name": "WhatsApp webhooks",
        }
    ]
    assert "airflow_provider_wamm.webhooks.plugin:WhatsAppWebhooksPlugin" in ours["source"]


def test_airflow_api_server_app_serves_the_handshake(tmp_path: pathlib.Path) -> None:
    """Build Airflow's own API server app (as ``airflow api-server`` does) and call the mounted receiver."""
    script = textwrap.dedent(
        """
        import json
        from starlette.testclient import TestClient
        from airflow.api_fastapi.app import create_app

        client = TestClient(create_app(apps="core"))
        params = {"hub.mode": "subscribe", "hub.verify_token": "%s", "hub.challenge": "8675309"}
        out = {}
        for path in ("/whatsapp-webhooks/", "/whatsapp-webhooks"):
            r = client.get(path, params=params, follow_redirects=False)
            out[path] = [r.status_code, r.text]
        bad = dict(params, **{"hub.verify_token": "wrong"})
        out["bad"] = client.get("/whatsapp-webhooks/", params=bad).status_code
        out["unsigned"] = client.post("/whatsapp-webhooks/", content=b"{}").status_code
        print("RESULT" + json.dumps(out))
        """
    ).replace("%s", TOKEN)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(
            AIRFLOW_CONN_WHATSAPP_DEFAULT=_whatsapp_conn_json(),
            AIRFLOW__WAMM__LEDGER_CONN_ID="",
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
        ),
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    out = json.loads(line[len("RESULT") :])
    assert out["/whatsapp-webhooks/"] == [200, "8675309"]
    assert out["/whatsapp-webhooks"] == [200, "8675309"]
    assert out["bad"] == 403 and out["unsigned"] == 403
    # The script plays Meta: its own client's request lines (httpx's, with the token in the URL) are
    # not the server's; every other line, the server's access log included, must hold no token.
    server_lines = [x for x in (result.stdout + result.stderr).splitlines() if "[httpx" not in x]
    assert server_lines and not [x for x in server_lines if TOKEN in x]


# --- stand-alone command --------------------------------------------------------------------------


def test_cli_refuses_to_start_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WAMM_APP_SECRET", raising=False)
    monkeypatch.delenv("WAMM_VERIFY_TOKEN", raising=False)
    assert cli.main(["--ledger-url", "sqlite://"]) == 2
    assert "WAMM_APP_SECRET and WAMM_VERIFY_TOKEN" in capsys.readouterr().err


def test_cli_reads_secrets_from_env_or_files(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv("WAMM_VERIFY_TOKEN", TOKEN)
    monkeypatch.delenv("WAMM_APP_SECRET", raising=False)
    ledger_url = f"sqlite:///{tmp_path / 'l.db'}"
    args = cli.build_parser().parse_args(["--app-secret-file", str(secret_file), "--ledger-url", ledger_url])
    client = ASGIClient(cli.build_app(args))
    assert (
        client.get(
            "/", params={"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "5"}
        ).text
        == "5"
    )
    raw = encode(body([status("wamid.cli", "read")]))
    assert (
        client.post("/", content=raw, headers={"X-Hub-Signature-256": sign(raw, SECRET)}).status_code == 200
    )


def test_cli_defaults_to_the_operators_sqlite_ledger(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert cli.default_ledger_url() == f"sqlite:///{tmp_path / 'wamm' / 'ledger.db'}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_wamm_webhooks_command_serves_over_http(tmp_path: pathlib.Path) -> None:
    port = _free_port()
    env = _env(
        WAMM_APP_SECRET=SECRET,
        WAMM_VERIFY_TOKEN=TOKEN,
        WAMM_LEDGER_URL=f"sqlite:///{tmp_path / 'ledger.db'}",
        WAMM_WEBHOOK_PORT=str(port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_wamm.webhooks.cli"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        response: Any = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/",
                    params={"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "99"},
                    timeout=2,
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response is not None and (response.status_code, response.text) == (200, "99")
        raw = encode(body([status("wamid.http", "sent")]))
        posted = httpx.post(
            f"http://127.0.0.1:{port}/", content=raw, headers={"X-Hub-Signature-256": sign(raw, SECRET)}
        )
        assert posted.json()["statuses"] == 1
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert "hub.verify_token=***" in output  # the access log line, redacted
    assert TOKEN not in output and SECRET not in output
