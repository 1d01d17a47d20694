"""Run logs in the warehouse: a change row for every recipient of a run, a summary row, alerts."""

from __future__ import annotations

import pathlib
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import Ledger, StatusUpdate, utcnow
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.run_log import RunLog, change_of
from airflow_provider_wamm.notifications.run_alerts import RunAlertNotifier, run_alerts
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import (
    CRM_CONN_ID,
    LEDGER_CONN_ID,
    digits,
    make_context,
    rows,
    send_operator,
)


def operator(**kwargs: Any) -> MarketingMessageOperator:
    return send_operator(**{"run_log": True, **kwargs})


def audience(n: int) -> list[dict[str, Any]]:
    """``n`` rows, two of them without a usable number and one without a name."""
    data = rows(n)
    data[3]["phone"] = "not a number"
    data[7]["phone"] = ""
    data[11]["name"] = ""
    return data


def test_every_recipient_of_a_run_has_a_change_row_and_the_counts_match_the_report(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(forced_outcomes={digits(1): "error:131026", digits(2): "error:131049"})
    ledger.add_suppressions([])
    result = operator(recipients=audience(200), campaign_id="log-1", holdout=0.1).execute(make_context())
    log = RunLog(ledger.engine)
    changes = log.changes(result["attempt_id"])
    # One row per recipient (and per row without a usable number), each once.
    assert len(changes) == len({c["recipient"] for c in changes}) == result["total"] - result["duplicates"]
    by_state = Counter(c["state"] for c in changes)
    assert by_state == Counter(send_counts(ledger, "log-1"))  # the report's counts, state by state
    by_change = Counter((c["change"], c["reason"]) for c in changes)
    assert by_change[("sent", None)] == result["accepted"]
    assert by_change[("skipped", "holdout")] == result["holdout"] > 0
    assert sum(n for (change, _), n in by_change.items() if change == "invalid") == result["invalid"] == 3
    assert sum(n for (change, _), n in by_change.items() if change == "failed") == result["failed"] == 2
    failed = {c["recipient"]: c for c in changes if c["change"] == "failed"}
    assert failed[digits(1)]["reason"] == "131026" and failed[digits(1)]["error_title"]
    # The summary row: counts as in XCom, ratios, a cost, and what was written.
    [summary] = log.summaries("log-1")
    assert {k: summary[k] for k in ("total", "accepted", "failed", "invalid", "holdout")} == {
        k: result[k] for k in ("total", "accepted", "failed", "invalid", "holdout")
    }
    assert summary["dag_id"] == "wamm_ops" and summary["outcome"] == "finished"
    assert summary["invalid_ratio"] == pytest.approx(3 / 200)
    assert summary["estimated_cost"] > 0 and summary["currency"] == "USD"
    assert result["run_log"]["changes"] == len(changes) and result["run_log"]["previous_total"] is None
    assert result["run_log"]["cost"]["total_cost"] == pytest.approx(summary["estimated_cost"])

    # The next run of the task (another campaign) compares its volume with this one.
    second = operator(recipients=audience(100), campaign_id="log-2").execute(make_context(run_id="r2"))
    assert second["run_log"]["previous_total"] == 200
    assert second["run_log"]["volume_change"] == pytest.approx(-0.5)
    alerts = run_alerts(second, max_volume_change=0.3, max_invalid_ratio=0.01)
    assert len(alerts) == 2 and "-50%" in alerts[1] and "invalid" in alerts[0]


def test_run_log_into_another_database_has_the_documented_columns(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    result = operator(recipients=rows(20), run_log=CRM_CONN_ID, campaign_id="elsewhere").execute(
        make_context()
    )
    engine = sa.create_engine(f"sqlite:///{crm}")
    inspector = sa.inspect(engine)
    changes = [c["name"] for c in inspector.get_columns("wamm_run_changes")]
    summaries = [c["name"] for c in inspector.get_columns("wamm_run_summaries")]
    documented = pathlib.Path(__file__).parents[2].joinpath("docs", "run-log.md").read_text()
    for column in changes + summaries:
        assert f"`{column}`" in documented, column
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM wamm_run_changes")).scalar() == 20
    engine.dispose()
    assert result["run_log"]["changes"] == 20
    assert not sa.inspect(ledger.engine).has_table("wamm_run_changes")


def test_change_of_reads_the_reason_of_each_state() -> None:
    assert change_of({"state": "accepted"}) == ("sent", None)
    assert change_of({"state": "skipped", "error_details": "suppressed: stop"}) == ("skipped", "suppressed")
    assert change_of({"state": "skipped", "error_details": "frequency cap: x"}) == (
        "skipped",
        "frequency_capped",
    )
    assert change_of({"state": "failed", "error_code": 131026}) == ("failed", "131026")
    assert change_of({"state": "unknown"}) == ("unknown", None)


class TIStub:
    task_id = "send"
    map_index = -1

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def xcom_pull(self, *, task_ids: str, key: str, **_: Any) -> Any:
        assert task_ids == "send"
        return self.values.get(key)


def test_notifier_calls_its_notifiers_only_past_a_threshold() -> None:
    calls: list[list[str]] = []
    notifier = RunAlertNotifier(
        max_failure_ratio=0.1, notifiers=[lambda ctx: calls.append(ctx["wamm_alerts"])]
    )
    fine = {"campaign_id": "c", "total": 100, "sent": 95, "failed": 5}
    notifier.notify({"ti": TIStub({"return_value": fine})})
    assert calls == []
    bad = {"campaign_id": "c", "total": 100, "sent": 80, "failed": 20, "errors_by_code": {"131026": 20}}
    notifier.notify({"ti": TIStub({"campaign_result": bad})})  # a halted run's counts
    assert len(calls) == 1 and "20.0% of the sends failed" in calls[0][0] and "131026: 20" in calls[0][0]
    with pytest.raises(ValueError, match="max_failure_ratio"):
        RunAlertNotifier(max_failure_ratio=-1)


def webhook_statuses(sandbox: Sandbox, *, only: str | None = None) -> list[StatusUpdate]:
    """What the webhook receiver would store of the sandbox's outcomes (``only``: just that one, and
    ``delivered`` for messages that end read)."""
    updates = []
    for m in sandbox.messages:
        outcome = m.outcome
        if only == "delivered" and outcome == "read":
            outcome = "delivered"
        elif only is not None and outcome != only:
            continue
        if outcome.startswith("failed:"):
            code = int(outcome.split(":")[1])
            updates.append(
                StatusUpdate(
                    wamid=m.wamid,
                    status="failed",
                    timestamp=utcnow(),
                    recipient_id=m.to,
                    error_code=code,
                    error_title="Message undeliverable",
                    error_details=f"code {code} for {m.to}",
                )
            )
        else:
            updates.append(StatusUpdate(wamid=m.wamid, status=outcome, timestamp=utcnow(), recipient_id=m.to))
    return updates


def test_status_changes_reach_the_run_log_and_match_the_report(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor

    sandbox.configure(outcomes={"read": 0.4, "delivered": 0.2, "sent": 0.1, "failed:131026": 0.3})
    result = operator(recipients=rows(300), campaign_id="status-log").execute(make_context())
    assert result["run_log"]["status_changes"] == 0  # no webhook yet when the run ended
    sensor = MarketingResponsesSensor(
        task_id="responses",
        campaign_id="status-log",
        ledger_conn_id=LEDGER_CONN_ID,
        settle_timeout=timedelta(0),
        run_log=True,
    )
    log = RunLog(ledger.engine)

    def by_status() -> Counter[str]:
        return Counter(r["status"] for r in log.status_changes("status-log"))

    # First only deliveries arrive (the read ones are delivered, not read yet)...
    ledger.record_statuses(webhook_statuses(sandbox, only="delivered"))
    first = sensor.poke(make_context()).xcom_value
    assert by_status() == {"delivered": first["delivered"]} and first["read"] == 0
    delivered_at = {r["wamid"]: r["logged_at"] for r in log.status_changes("status-log")}
    # ...then everything: reads and failures with Meta's error.
    ledger.record_statuses(webhook_statuses(sandbox))
    report = sensor.poke(make_context()).xcom_value
    counts = by_status()
    assert counts == {
        "delivered": report["delivered"],
        "read": report["read"],
        "failed": report["delivery_failed"],
    }
    assert report["read"] > 0 and report["delivery_failed"] > 0 and report["delivered"] > report["read"]
    assert report["run_log"]["status_changes"] == sum(counts.values())
    rows_now = log.status_changes("status-log")
    for row in rows_now:
        assert row["attempt_id"] == result["attempt_id"] and row["campaign_id"] == "status-log"
        if row["status"] == "delivered" and row["wamid"] in delivered_at:
            assert row["logged_at"] == delivered_at[row["wamid"]]  # logged once, kept
    failed = [r for r in rows_now if r["status"] == "failed"]
    assert all(r["error_code"] == 131026 and r["error_title"] and r["error_details"] for r in failed)
    assert all(r["status_at"] is not None for r in rows_now)
    # Reporting again logs nothing twice.
    sensor.poke(make_context())
    assert by_status() == counts
    # The documented columns.
    documented = pathlib.Path(__file__).parents[2].joinpath("docs", "run-log.md").read_text()
    for column in sa.inspect(ledger.engine).get_columns("wamm_run_status_changes"):
        assert f"`{column['name']}`" in documented, column["name"]
