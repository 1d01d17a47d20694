"""Secrets and phone numbers stay out of everything a campaign leaves behind, even at DEBUG level.

One whole run with distinctive secrets (access token, app secret, webhook verify token): the operator
(connection test, token check, sends with faults, a halt on an expired token), the sandbox's signed
webhooks into the receiver as the Airflow plugin configures it (from the connection), the responses
sensor with its report table and HTML page. Then every log line (stdlib at DEBUG with ``urllib3``,
Airflow's structlog events, the process's stdout/stderr), exception text, XCom value, ledger row, the
HTML page and the repr of every object involved is searched for the secrets, and the logs for the
recipients' phone numbers.
"""

from __future__ import annotations

import json
import logging
import pathlib
import sqlite3
import time
import traceback
import uuid
from collections.abc import Iterator, MutableMapping
from datetime import timedelta
from typing import Any, cast

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook
from airflow_provider_wamm.operators.marketing import HALTED_RESULT_KEY, MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor
from airflow_provider_wamm.webhooks import WebhookSettings, create_app, sign
from airflow_provider_wamm.webhooks.plugin import AirflowWebhookSettings
from tests.reliability.harness import serve_app, when_recorded
from tests.webhooks.conftest import ASGIClient

#: The secrets of this suite carry the marker ``LEAKCHECK``: with ``WAMM_TEST_LOG_FILE`` set (see
#: ``tests/plugins/log_capture.py``), CI can check that the whole run's log never contains it.
LEAK_MARKER = "LEAKCHECK"
TOKEN = f"EAAGwamm{LEAK_MARKER}accesstoken7c1e9d"
APP_SECRET = f"wamm{LEAK_MARKER}appsecret52b0f4"
VERIFY_TOKEN = f"wamm{LEAK_MARKER}verifytoken0a93c6"
SECRETS = {"access token": TOKEN, "app secret": APP_SECRET, "verify token": VERIFY_TOKEN}
APP_ID = "300000000000077"
WA_CONN = "wamm_sec_whatsapp"
LEDGER_CONN = "wamm_sec_ledger"
N = 120


class _TaskInstance:
    dag_id = "wamm_security"
    task_id = "send"
    map_index = -1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))


def _phone(i: int) -> str:
    return f"+49 151 {50_000_000 + i:08d}"


def _digits(i: int) -> str:
    return f"49151{50_000_000 + i:08d}"


def _stand_in_access_line(record: logging.LogRecord) -> bool:
    """An access-log line of the sandbox, the stand-in for Meta's servers (not the provider's logs)."""
    return record.name == "uvicorn.access" and f"/{DEFAULT_API_VERSION}/" in record.getMessage()


def _record_text(record: logging.LogRecord) -> str:
    text = f"{record.name} {record.levelname} {record.getMessage()}"
    if record.exc_info:
        text += "\n" + "".join(traceback.format_exception(*record.exc_info))
    return text


def _dump_sqlite(path: pathlib.Path) -> str:
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out = []
        for name in names:
            out.append(name)
            out.extend(repr(row) for row in db.execute(f'SELECT * FROM "{name}"'))
    db.close()
    return "\n".join(out)


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


@pytest.fixture
def env(
    sandbox: Sandbox, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """Connections and plugin settings holding the distinctive secrets; the receiver served over HTTP."""
    ledger_file = tmp_path / "ledger.db"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{WA_CONN.upper()}",
        json.dumps(
            {
                "conn_type": "whatsapp",
                "host": sandbox.url,
                "password": TOKEN,
                "extra": {
                    "phone_number_id": sandbox.config.phone_number_id,
                    "waba_id": sandbox.config.waba_id,
                    "app_id": APP_ID,
                    "app_secret": APP_SECRET,
                    "webhook_verify_token": VERIFY_TOKEN,
                    "max_messages_per_second": 500,
                    "timeout": 0.5,
                },
            }
        ),
    )
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{LEDGER_CONN.upper()}", json.dumps({"conn_type": "sqlite", "host": str(ledger_file)})
    )
    monkeypatch.setenv("AIRFLOW__WAMM__WEBHOOK_CONN_ID", WA_CONN)
    monkeypatch.setenv("AIRFLOW__WAMM__LEDGER_CONN_ID", LEDGER_CONN)
    plugin_settings = AirflowWebhookSettings(ttl=0)
    app = create_app(plugin_settings)
    with serve_app(app) as url:
        sandbox.configure(
            access_token=TOKEN,
            app_id=APP_ID,
            app_secret=APP_SECRET,
            token_expires_at=int(time.time()) + 3600,  # expiring soon: the operator warns about it
            mps_cap=None,
            webhook_url=url,
            seed=9,
            fault_transient_rate=0.05,
            fault_lost_response_rate=0.03,
            lost_response_mode="drop",
            forced_outcomes={_digits(0): "error:131050", _digits(1): "error:131026"},
        )
        yield {"ledger_file": ledger_file, "app": app, "plugin_settings": plugin_settings}


def test_no_secret_or_phone_number_escapes(
    sandbox: Sandbox,
    env: dict[str, Any],
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    airflow_logs: list[MutableMapping[str, Any]],
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    exposed: dict[str, str] = {}  # what -> text, everything searched for the secrets

    # The connection test and the receiver's handshake (right and wrong token) and a forged POST.
    hook = WhatsAppHook(whatsapp_conn_id=WA_CONN)
    ok, message = hook.test_connection()
    assert ok, message
    exposed["connection test message"] = message
    receiver = ASGIClient(env["app"])
    challenge = receiver.get(
        "/", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "c42"}
    )
    assert challenge.status_code == 200 and challenge.text == "c42"
    wrong = receiver.get(
        "/", params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert wrong.status_code == 403
    forged = receiver.post("/", content=b"{}", headers={"X-Hub-Signature-256": sign(b"{}", "wrong-secret")})
    assert forged.status_code == 403
    for response in (challenge, wrong, forged):
        exposed[f"receiver answer {response.request.url}"] = f"{response.headers} {response.text}"

    # A campaign at DEBUG level with faults, the webhooks flowing into the plugin's receiver.
    rows = [{"phone": _phone(i), "name": f"N{i}"} for i in range(N)]
    ti = _TaskInstance()
    context: dict[str, Any] = {"ti": ti, "run_id": "manual__secrets", "logical_date": None}
    op = MarketingMessageOperator(
        task_id="send",
        template_name="welcome_named",
        language="en_US",
        whatsapp_conn_id=WA_CONN,
        ledger_conn_id=LEDGER_CONN,
        recipients=rows,
        body_parameters={"first_name": "{name}"},
        campaign_options={"retry_backoff_s": 0.01, "retry_backoff_max_s": 0.05},
    )
    summary = op.execute(context)  # type: ignore[arg-type]
    assert summary["accepted"] > 0 and summary["failed"] == 2 and summary["unknown"] > 0
    exposed["xcom summary"] = json.dumps(summary)
    assert sandbox.wait_webhooks_idle(30)
    assert sandbox.webhook_stats()["posts"] > 0 and sandbox.webhook_stats()["failures"] == 0

    # The token expires mid-way through the next campaign: it halts; exception chain and XCom searched.
    sandbox.configure(fault_transient_rate=0.0, fault_lost_response_rate=0.0)
    when_recorded(sandbox, len(sandbox.messages) + 30, lambda: sandbox.configure(token_expired=True))
    halted_ti = _TaskInstance()
    with pytest.raises(AirflowFailException) as failure:
        op.execute(cast(Any, {"ti": halted_ti, "run_id": "manual__secrets_2", "logical_date": None}))
    assert "190" in str(failure.value)
    exposed["halt exception chain"] = "".join(traceback.format_exception(failure.value))
    exposed["halt xcom"] = json.dumps(halted_ti.xcoms[HALTED_RESULT_KEY])
    sandbox.configure(token_expired=False)

    # The report: sensor XCom, report table in the ledger database, HTML page.
    html = tmp_path / "report.html"
    sensor = MarketingResponsesSensor(
        task_id="report",
        campaign_id=summary["campaign_id"],
        ledger_conn_id=LEDGER_CONN,
        settle_timeout=timedelta(hours=1),
        report_table="wamm_report",
        html_report_path=str(html),
    )
    poked = sensor.poke({})
    assert poked.is_done
    exposed["sensor xcom"] = json.dumps(poked.xcom_value)
    exposed["html report"] = html.read_text(encoding="utf-8")
    exposed["ledger tables"] = _dump_sqlite(env["ledger_file"])
    assert "wamm_report" in exposed["ledger tables"] and "wamm_statuses" in exposed["ledger tables"]

    # Reprs of everything holding a secret.
    client = hook.get_conn()
    webhook_settings = env["plugin_settings"]()
    objects: dict[str, object] = {
        "hook": hook,
        "hook settings": hook.settings,
        "client": client,
        "client attributes": vars(client),
        "operator": op,
        "sensor": sensor,
        "webhook settings": webhook_settings,
        "plugin settings": env["plugin_settings"],
        "ledger": Ledger.from_url(f"sqlite:///{env['ledger_file']}"),
        "sandbox": sandbox,
    }
    for name, obj in objects.items():
        exposed[f"repr({name})"] = repr(obj)
        exposed[f"str({name})"] = str(obj)
    assert isinstance(webhook_settings, WebhookSettings) and webhook_settings.app_secret == APP_SECRET

    # The logs, everywhere they go.
    records = [r for r in caplog.records if not _stand_in_access_line(r)]
    log_text = "\n".join(_record_text(r) for r in records)
    events_text = "\n".join(repr(dict(e)) for e in airflow_logs)
    out, err = capfd.readouterr()
    logs = {"stdlib logging": log_text, "airflow task logs": events_text, "stdout": out, "stderr": err}
    exposed.update(logs)

    # The run really logged at DEBUG (urllib3 included) and through Airflow's loggers.
    assert any(r.name.startswith("urllib3") and r.levelno == logging.DEBUG for r in records)
    assert any(r.name.startswith("airflow_provider_wamm") and r.levelno == logging.DEBUG for r in records)
    assert "debug_token" in log_text  # the token check ran (its URL carries the token: redacted)
    assert any("expire" in str(e.get("event", "")) for e in airflow_logs)
    assert any("halted" in str(e.get("event", "")) for e in airflow_logs)

    leaks = {what: _leaks(text) for what, text in exposed.items() if _leaks(text)}
    assert not leaks, f"secrets found in: {leaks}"

    numbers = [(_digits(i), _phone(i)) for i in range(N)]
    for where, text in logs.items():
        found = [d for d, p in numbers if d in text or p in text]
        assert not found, f"{len(found)} full phone numbers in {where}, e.g. {found[:3]}"
    assert "49*********" in log_text  # masked numbers are what the logs show


def test_graph_client_repr_and_errors_never_show_the_token(sandbox: Sandbox) -> None:
    sandbox.configure(access_token=TOKEN)
    client = GraphClient(TOKEN, phone_number_id="nope", base_url=sandbox.url, max_retries=0)
    with client:
        assert TOKEN not in repr(client) and TOKEN not in repr(vars(client))
        with pytest.raises(Exception) as info:
            client.get_phone_number()
        text = "".join(traceback.format_exception(info.value))
        assert TOKEN not in text and "nope" in text
        with pytest.raises(Exception) as info:
            client.debug_token(app_id=APP_ID, app_secret=APP_SECRET)  # wrong app secret for the sandbox
        text = "".join(traceback.format_exception(info.value))
        assert not _leaks(text), text


def test_plugin_receiver_behind_an_access_log_hides_the_verify_token(
    caplog: pytest.LogCaptureFixture, tmp_path: pathlib.Path
) -> None:
    """Meta's handshake puts the verify token in the query string; a server's access log prints it.

    The Airflow API server logs every request line; the receiver mounted by the plugin must see to it
    that ``hub.verify_token`` is blanked there, as the stand-alone ``wamm-webhooks`` command does.
    """
    import airflow_provider_wamm.webhooks.plugin  # noqa: F401  (loaded by the API server at start)

    verify_token = f"access-log-verify-{uuid.uuid4().hex}"
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    app = create_app(WebhookSettings(app_secret="s", verify_token=verify_token, ledger=ledger))
    # uvicorn may have set propagate=False on its access logger earlier in the run: listen on it directly.
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    access = logging.getLogger("uvicorn.access")
    keep, level = _Keep(logging.INFO), access.level
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    try:
        with serve_app(app, access_log=True) as url:
            import requests

            answer = requests.get(
                url,
                params={"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": "9"},
                timeout=5,
            )
    finally:
        access.removeHandler(keep)
        access.setLevel(level)
    ledger.dispose()
    assert answer.status_code == 200
    lines = [r.getMessage() for r in records]
    assert any("hub.challenge" in line for line in lines), lines  # the request line was logged
    assert not [line for line in lines if verify_token in line]
