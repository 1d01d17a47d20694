"""A campaign and its report end to end: operator -> sandbox -> signed webhooks -> receiver -> sensor.

Everything is real: Airflow runs the DAG with ``dag.test()`` (the deferred sensor's trigger runs
inline), the sandbox answers over HTTP and later posts signed status webhooks (with duplicates and
reordering) to the webhook receiver under uvicorn, which writes them into the SQLite ledger the sensor
reads. The report must match the sandbox's own record count for count.
"""

from __future__ import annotations

import collections
import pathlib
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import uvicorn

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.webhooks.app import WebhookSettings, create_app
from tests.operators.conftest import (
    LEDGER_CONN_ID,
    WHATSAPP_CONN_ID,
    sandbox_connection_json,
    sqlite_connection_json,
)
from tests.operators.test_dags import run_dag

pytestmark = pytest.mark.airflow_db

RECIPIENTS = 500
OUTCOMES = {"read": 0.4, "delivered": 0.3, "failed:131026": 0.15, "failed:131049": 0.15}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver(tmp_path: pathlib.Path, sandbox: Sandbox) -> Iterator[tuple[str, pathlib.Path]]:
    """The webhook receiver under uvicorn, writing into a fresh SQLite ledger; yields (url, ledger path)."""
    path = tmp_path / "ledger.db"
    ledger = Ledger.from_url(f"sqlite:///{path}")
    app = create_app(
        WebhookSettings(app_secret=sandbox.config.app_secret, verify_token="verify-me", ledger=ledger)
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the webhook receiver did not start"
    try:
        yield f"http://127.0.0.1:{port}/", path
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        ledger.dispose()


def test_report_matches_the_sandbox_record(
    sandbox: Sandbox,
    receiver: tuple[str, pathlib.Path],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.dags.wamm_test_report import dag

    url, ledger_path = receiver
    sandbox.configure(
        mps_cap=None,
        pair_limit=False,
        outcomes=OUTCOMES,
        webhook_url=url,
        webhook_batch_size=100,
        # Each message's statuses travel together, so "settled" (delivered) never precedes its "read".
        webhook_step_s=0.0,
        webhook_duplicate_rate=0.1,
        webhook_reorder_rate=0.2,
        click_rate=0.0,
        seed=4,
    )
    monkeypatch.setenv(f"AIRFLOW_CONN_{WHATSAPP_CONN_ID.upper()}", sandbox_connection_json(sandbox))
    monkeypatch.setenv(f"AIRFLOW_CONN_{LEDGER_CONN_ID.upper()}", sqlite_connection_json(ledger_path))
    monkeypatch.setenv("AIRFLOW_VAR_WAMM_TEST_REPORT_DIR", str(tmp_path))

    state, states, xcoms = run_dag(dag, run_conf={"recipients": RECIPIENTS})
    assert state == "success", states

    # The sandbox's own record: one message per recipient, each with the outcome it then reported.
    assert set(sandbox.sends_per_recipient().values()) == {1}
    assert len(sandbox.messages) == RECIPIENTS
    outcomes = collections.Counter(m.outcome for m in sandbox.messages)
    assert {o.split(":")[0] for o in outcomes} == {"read", "delivered", "failed"}

    report = xcoms[("report", -1)]
    assert report["settled"] is True and report["unsettled"] == 0
    assert report["total"] == RECIPIENTS and report["accepted"] == RECIPIENTS
    delivery = report["delivery"]
    assert delivery["read"] == outcomes["read"]
    assert delivery["delivered"] == outcomes["delivered"]
    assert delivery["failed"] == outcomes["failed:131026"] + outcomes["failed:131049"]
    assert delivery.get("pending", 0) == 0 and delivery.get("sent", 0) == 0
    assert report["delivered"] == outcomes["read"] + outcomes["delivered"]
    assert report["routing"]["marketing_lite"] == report["delivered"]
    errors = {(e["code"], e["stage"]): e["count"] for e in report["errors"]}
    assert errors == {
        (131026, "delivery"): outcomes["failed:131026"],
        (131049, "delivery"): outcomes["failed:131049"],
    }
    assert report["rates"]["delivery_rate"] == pytest.approx(report["delivered"] / RECIPIENTS)

    # The send task's counts agree with the ledger behind the report.
    sent = xcoms[("send", -1)]
    assert sent["accepted"] == RECIPIENTS and sent["campaign_id"] == report["campaign_id"]

    # The SQL report table holds the same numbers as the XCom.
    engine = sa.create_engine(f"sqlite:///{ledger_path}")
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM wamm_test_campaign_report"))]
    engine.dispose()
    assert rows, "the report table is empty"
    assert all(r["campaign_id"] == report["campaign_id"] for r in rows)
    (summary,) = [r for r in rows if r["error_code"] is None]
    for column in ("total", "accepted", "delivered", "read", "delivery_failed"):
        assert summary[column] == report[column], column
    table_errors = {(r["error_code"], r["stage"]): r["count"] for r in rows if r["error_code"] is not None}
    assert table_errors == errors

    # The HTML report exists and, where Chromium is installed, its funnel chart is really drawn.
    (html,) = tmp_path.glob("*.html")
    text = html.read_text()
    assert "<svg" in text and str(report["delivered"]) in text
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "demo"))
    from screenshot import colour_share, find_chromium, screenshot

    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): screenshot not checked")
    png = tmp_path / "report.png"
    screenshot(html, png, width=900, height=420)
    assert colour_share(png, "#25D366", max_rows=420) > 0.002  # the 'delivered' bar
    assert colour_share(png, "#34B7F1", max_rows=420) > 0.001  # the 'read' bar
