"""MarketingResponsesSensor on a real SQLite ledger: poke, timeouts, ratios, report table, HTML, deferral."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor, parse_campaign_ids
from airflow_provider_wamm.triggers.responses import MarketingResponsesTrigger
from tests.report.seed import seed_sends, seed_statuses
from tests.sensors.conftest import LEDGER_CONN_ID


def sensor(**kwargs: Any) -> MarketingResponsesSensor:
    defaults: dict[str, Any] = {
        "task_id": "responses",
        "campaign_id": "c1",
        "ledger_conn_id": LEDGER_CONN_ID,
        "poke_interval": 0.05,
        "deferrable": False,
    }
    defaults.update(kwargs)
    return MarketingResponsesSensor(**defaults)


@pytest.fixture
def open_campaign(ledger: Ledger) -> Ledger:
    """Sent just now; two of seven accepted messages still lack a final status."""
    seed_sends(ledger, "c1", now=utcnow())
    seed_statuses(ledger)
    return ledger


@pytest.fixture
def settled_campaign(open_campaign: Ledger) -> Ledger:
    seed_statuses(open_campaign, settle=True)
    return open_campaign


def test_poke_not_settled_then_settled(open_campaign: Ledger, context: dict[str, Any]) -> None:
    s = sensor()
    first = s.poke(context)
    assert first.is_done is False and first.xcom_value is None
    seed_statuses(open_campaign, settle=True)
    second = s.poke(context)
    assert second.is_done is True
    report = second.xcom_value
    assert report["campaign_id"] == "c1" and report["settled"] is True and report["timed_out"] is False
    assert report["accepted"] == 7 and report["delivered"] == 5 and report["delivery_failed"] == 2
    assert report["rates"]["delivery_rate"] == round(5 / 7, 4)


def test_poke_mode_execute_returns_the_report(open_campaign: Ledger, context: dict[str, Any]) -> None:
    timer = threading.Timer(0.3, seed_statuses, args=(open_campaign,), kwargs={"settle": True})
    timer.start()
    try:
        started = time.monotonic()
        report = sensor(mode="poke", timeout=30).execute(context)
    finally:
        timer.cancel()
    assert time.monotonic() - started >= 0.25
    assert report["settled"] is True and report["unsettled"] == 0


def test_settle_timeout_reports_what_it_has(ledger: Ledger, context: dict[str, Any]) -> None:
    seed_sends(ledger, "c1", now=utcnow() - timedelta(hours=2))
    seed_statuses(ledger)
    result = sensor(settle_timeout=timedelta(hours=1)).poke(context)
    assert result.is_done
    assert result.xcom_value["timed_out"] is True and result.xcom_value["unsettled"] == 2


def test_settle_timeout_with_fail_on_timeout(
    ledger: Ledger, context: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    seed_sends(ledger, "c1", now=utcnow() - timedelta(hours=2))
    seed_statuses(ledger)
    html = tmp_path / "late.html"
    with pytest.raises(AirflowFailException, match="2 messages still had no final status"):
        sensor(settle_timeout=timedelta(hours=1), fail_on_timeout=True, html_report_path=str(html)).poke(
            context
        )
    assert html.exists(), "the report is written before failing"


def test_not_timed_out_before_the_deadline(open_campaign: Ledger, context: dict[str, Any]) -> None:
    assert sensor(settle_timeout=timedelta(hours=1), fail_on_timeout=True).poke(context).is_done is False


def test_min_delivery_ratio(settled_campaign: Ledger, context: dict[str, Any]) -> None:
    with pytest.raises(AirflowFailException, match=r"delivery ratio 71\.4% \(5 of 7 accepted\).*131049"):
        sensor(min_delivery_ratio=0.9).poke(context)
    assert sensor(min_delivery_ratio=0.7).poke(context).is_done


def test_min_delivery_ratio_applies_after_a_timeout_too(ledger: Ledger, context: dict[str, Any]) -> None:
    seed_sends(ledger, "c1", now=utcnow() - timedelta(hours=2))
    seed_statuses(ledger)  # 4 of 7 delivered
    with pytest.raises(AirflowFailException, match=r"delivery ratio 57\.1%"):
        sensor(settle_timeout=timedelta(hours=1), min_delivery_ratio=0.6).poke(context)


def test_report_table_upserted_twice_gives_the_same_rows(
    settled_campaign: Ledger,
    context: dict[str, Any],
    tmp_path: pathlib.Path,
    airflow_connection: Callable[..., str],
) -> None:
    reports_db = tmp_path / "reports.db"
    airflow_connection("wamm_reports", conn_type="sqlite", host=str(reports_db))
    s = sensor(report_table="wa_campaign_report", report_conn_id="wamm_reports")
    s.poke(context)
    engine = sa.create_engine(f"sqlite:///{reports_db}")
    query = sa.text(
        "SELECT campaign_id, row_key, kind, stage, error_code, count, delivered "
        "FROM wa_campaign_report ORDER BY row_key"
    )
    with engine.connect() as conn:
        first = [tuple(r) for r in conn.execute(query)]
    s.poke(context)
    with engine.connect() as conn:
        second = [tuple(r) for r in conn.execute(query)]
    engine.dispose()
    assert first == second
    assert first == [
        ("c1", "error:delivery:131049", "error", "delivery", 131049, 2, None),
        ("c1", "error:send:131026", "error", "send", 131026, 1, None),
        ("c1", "error:send:131050", "error", "send", 131050, 1, None),
        ("c1", "summary", "summary", None, None, 11, 5),
    ]


def test_report_table_defaults_to_the_ledger_database(
    settled_campaign: Ledger, context: dict[str, Any]
) -> None:
    sensor(report_table="campaign_report").poke(context)
    with settled_campaign.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign_report")).scalar() == 4


def test_several_campaigns_one_row_set_each(ledger: Ledger, context: dict[str, Any]) -> None:
    seed_sends(ledger, "c1", now=utcnow())
    seed_sends(ledger, "c2", now=utcnow(), prefix="v")
    seed_statuses(ledger, settle=True)
    seed_statuses(ledger, prefix="v", settle=True)
    result = sensor(campaign_id=["c1", "c2"], report_table="rep").poke(context)
    assert result.xcom_value["campaign_ids"] == ["c1", "c2"] and result.xcom_value["total"] == 22
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT campaign_id, count(*) FROM rep GROUP BY campaign_id")).all()
    assert sorted(tuple(r) for r in rows) == [("c1", 4), ("c2", 4)]


def test_invalid_report_table_is_refused_at_parse_time() -> None:
    with pytest.raises(ValueError, match="invalid report table name"):
        sensor(report_table="reports; drop table x")


def test_html_report_written(
    settled_campaign: Ledger, context: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "reports" / "c1.html"
    sensor(html_report_path=str(path)).poke(context)
    page = path.read_text(encoding="utf-8")
    assert "<svg" in page and "campaign c1" in page


def test_campaign_id_from_the_send_task(ledger: Ledger, context: dict[str, Any]) -> None:
    campaign = f"campaign_dag.send.{context['run_id']}"
    seed_sends(ledger, campaign, now=utcnow())
    seed_statuses(ledger, settle=True)
    result = sensor(campaign_id=None, send_task_id="send").poke(context)
    assert result.xcom_value["campaign_id"] == campaign and result.xcom_value["total"] == 11


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("c1", ["c1"]),
        (["a", "b", "a"], ["a", "b"]),
        ("['a', 'b']", ["a", "b"]),
        ('["a"]', ["a"]),
        ("", []),
        (None, []),
    ],
)
def test_parse_campaign_ids(value: Any, expected: list[str]) -> None:
    assert parse_campaign_ids(value) == expected


def test_needs_a_campaign() -> None:
    with pytest.raises(ValueError, match="campaign_id"):
        MarketingResponsesSensor(task_id="x")
    with pytest.raises(ValueError, match="min_delivery_ratio"):
        sensor(min_delivery_ratio=1.5)


# --- deferral -------------------------------------------------------------------------------------


def test_deferrable_defers_to_the_trigger(open_campaign: Ledger, context: dict[str, Any]) -> None:
    s = sensor(deferrable=True, settle_timeout=timedelta(minutes=30), poke_interval=5, timeout=3600)
    with pytest.raises(TaskDeferred) as deferred:
        s.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, MarketingResponsesTrigger)
    assert trigger.campaign_ids == ["c1"] and trigger.ledger_conn_id == LEDGER_CONN_ID
    assert trigger.settle_timeout == 1800.0 and trigger.poll_interval == 5.0
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=3600)


def test_deferrable_returns_at_once_when_already_settled(
    settled_campaign: Ledger, context: dict[str, Any]
) -> None:
    report = sensor(deferrable=True).execute(context)
    assert report["settled"] is True


def test_execute_complete_builds_the_report_on_the_worker(
    settled_campaign: Ledger, context: dict[str, Any], tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "r.html"
    s = sensor(deferrable=True, html_report_path=str(path))
    report = s.execute_complete(context, event={"status": "settled", "campaign_ids": ["c1"]})
    assert report["delivered"] == 5 and path.exists()


def test_execute_complete_on_timeout_respects_fail_on_timeout(
    open_campaign: Ledger, context: dict[str, Any]
) -> None:
    s = sensor(deferrable=True, fail_on_timeout=True)
    with pytest.raises(AirflowFailException):
        s.execute_complete(context, event={"status": "timeout", "campaign_ids": ["c1"]})
    report = sensor(deferrable=True).execute_complete(
        context, event={"status": "timeout", "campaign_ids": ["c1"]}
    )
    assert report["timed_out"] is True


def test_execute_complete_on_trigger_error(context: dict[str, Any]) -> None:
    with pytest.raises(AirflowException, match="database is locked"):
        sensor(deferrable=True).execute_complete(
            context, event={"status": "error", "campaign_ids": ["c1"], "message": "database is locked"}
        )


def test_deferred_round_trip_through_the_trigger(open_campaign: Ledger, context: dict[str, Any]) -> None:
    """Defer, run the serialised trigger, resume with its event: the way the triggerer does it."""
    import asyncio
    import importlib

    s = sensor(deferrable=True, poke_interval=0.05)
    with pytest.raises(TaskDeferred) as deferred:
        s.execute(context)
    path, kwargs = deferred.value.trigger.serialize()
    module, _, name = path.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)
    seed_statuses(open_campaign, settle=True)

    async def fire() -> dict[str, Any]:
        gen = trigger.run()
        event = await asyncio.wait_for(anext(gen), 10)
        await gen.aclose()
        return dict(event.payload)

    event = asyncio.run(fire())
    report = getattr(s, deferred.value.method_name)(context, event=event, **(deferred.value.kwargs or {}))
    assert report["settled"] is True and report["delivered"] == 5
