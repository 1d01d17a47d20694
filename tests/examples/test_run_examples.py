"""Every example DAG of ``dags_examples/`` run with ``dag.test()`` against the sandbox.

The examples run as written: their connections (``whatsapp_default``, ``crm``, ``wamm_ledger``), the
``[wamm] ledger_conn_id`` option and the ``wamm_report_dir`` Variable come from ``AIRFLOW_CONN_*`` /
``AIRFLOW__WAMM__*`` / ``AIRFLOW_VAR_*`` environment variables set by the ``example_env`` fixture, and
the DAGs reach the metadata database through ``load_example_dags`` (see ``conftest.py`` for why and how).
``tests/deployment/`` runs the same examples the way users do: triggered through a real Airflow's REST
API. The sandbox POSTs signed status webhooks to a live receiver that writes into the same ledger the
DAGs use, so the sensors settle on real webhooks.

Each test checks the sandbox's own record (exactly one message per valid recipient), the send task's
XCom (counts), and, where a sensor reports, that its report matches the sandbox's stored outcomes count
for count.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from airflow_provider_wamm.sandbox import Sandbox
from tests.examples.conftest import (
    Customer,
    ExampleEnv,
    Receiver,
    de_digits,
    de_number,
    run_dag,
    seed_customers,
)

pytestmark = pytest.mark.airflow_db

CAMPAIGN_ASSET = "whatsapp://campaigns/spring_sale"


def quick_sensor(monkeypatch: pytest.MonkeyPatch, dag: Any, task_id: str = "report") -> None:
    """Let the example's sensor look at the ledger every 0.2 s (the examples wait 15 to 60 s between two
    looks; if a test's campaign is not settled at the first look, the test should not wait that long)."""
    monkeypatch.setattr(dag.get_task(task_id), "poke_interval", 0.2)
    # A test must never wait the example's hours: give up (and fail) after a minute.
    monkeypatch.setattr(dag.get_task(task_id), "settle_timeout", timedelta(minutes=1))
    monkeypatch.setattr(dag.get_task(task_id), "fail_on_timeout", True)


def crm_with_extras(count: int) -> tuple[list[Customer], set[str]]:
    """``count`` valid German customers, plus one in Spain, a bad number and one listed twice.

    Returns the rows and the digits of the valid German numbers.
    """
    customers = [
        Customer(de_number(i), f"Ana{i}", discount=10 + 5 * (i % 3), promo_slug=f"s-{i}")
        for i in range(count)
    ]
    customers += [
        Customer("+34 612 345 678", "Carla", country="ES"),
        Customer("12345", "Bad"),
        Customer("+49 151 " + de_digits(1)[5:], "Again"),  # customer 1 again, written another way
    ]
    return customers, {de_digits(i) for i in range(count)}


def outcome_counts(sandbox: Sandbox) -> dict[str, int]:
    """What the sandbox decided for its messages, in the report's terms."""
    outcomes = collections.Counter(m.outcome for m in sandbox.messages)
    return {
        "delivered": outcomes["delivered"],
        "read": outcomes["read"],
        "failed": sum(n for outcome, n in outcomes.items() if outcome.startswith("failed:")),
        "sent": outcomes["sent"],
        "pending": 0,
    }


def assert_report_matches_sandbox(report: dict[str, Any], sandbox: Sandbox) -> None:
    """The sensor's report equals the sandbox's record, count for count."""
    assert sandbox.wait_webhooks_idle(10)
    assert sandbox.webhook_stats()["dropped"] == 0
    assert report["settled"] is True and report["timed_out"] is False and report["unsettled"] == 0
    assert report["accepted"] == len(sandbox.messages)
    assert report["delivery"] == outcome_counts(sandbox)
    failed = collections.Counter(
        int(m.outcome[7:]) for m in sandbox.messages if m.outcome.startswith("failed:")
    )
    assert {e["code"]: e["count"] for e in report["errors"] if e["stage"] == "delivery"} == failed
    delivered = sum(1 for m in sandbox.messages if m.outcome in ("delivered", "read"))
    assert report["delivered"] == delivered
    assert report["routing"]["marketing_lite"] == delivered  # priced statuses of delivered messages


def assert_one_message_each(sandbox: Sandbox, expected: set[str]) -> None:
    sends = sandbox.sends_per_recipient()
    assert set(sends) == expected
    assert set(sends.values()) == {1}


def asset_events(uri: str) -> list[Any]:
    """The asset events recorded for ``uri``, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        )
        events = list(session.scalars(query))
        session.expunge_all()
    return events


def rendered_map_indexes(dagrun: Any, task_id: str) -> list[str | None]:
    """The labels the UI shows for a mapped task's instances (``map_index_template``), by map index."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(TaskInstance).where(
            TaskInstance.dag_id == dagrun.dag_id,
            TaskInstance.run_id == dagrun.run_id,
            TaskInstance.task_id == task_id,
        )
        return [ti.rendered_map_index for ti in sorted(session.scalars(query), key=lambda ti: ti.map_index)]


# -- campaign_from_sql.py --------------------------------------------------------------------------


def test_campaign_from_sql_sends_once_reports_and_publishes_the_asset(
    example_env: ExampleEnv, load_example_dags: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = load_example_dags("wamm_campaign_from_sql")
    quick_sensor(monkeypatch, dag)
    customers, expected = crm_with_extras(40)
    seed_customers(example_env.crm, customers)
    # A scheduled run an hour late (inside max_lateness): the campaign id is the day it was due.
    logical_date = datetime.now(UTC) - timedelta(hours=1)
    ds_nodash = logical_date.strftime("%Y%m%d")
    before = len(asset_events(CAMPAIGN_ASSET))

    dagrun, tis, xcoms = run_dag(dag, logical_date=logical_date, run_after=logical_date)
    assert str(dagrun.state) == "success", tis
    assert tis == {"send": "success", "report": "success"}

    sandbox = example_env.sandbox
    assert_one_message_each(sandbox, expected)  # Spain filtered by the query, bad and repeated rows not sent
    msg = next(m for m in sandbox.messages if m.to == de_digits(2))
    body, button = msg.payload["template"]["components"]
    assert [p["text"] for p in body["parameters"]] == ["Ana2", "20%"]
    assert button["sub_type"] == "url" and button["parameters"][0]["text"] == "s-2"

    send = xcoms[("send", -1)]
    assert send["campaign_id"] == f"spring_sale_{ds_nodash}"
    assert (send["total"], send["accepted"], send["invalid"], send["duplicates"]) == (42, 40, 1, 1)
    assert send["failed"] == 0 and send["unknown"] == 0

    report = xcoms[("report", -1)]
    assert report["campaign_ids"] == [send["campaign_id"]]
    assert report["sends"]["accepted"] == 40 and report["sends"]["invalid"] == 1
    assert_report_matches_sandbox(report, sandbox)

    # The report table and the HTML page (its folder from the wamm_report_dir Variable).
    with contextlib.closing(sqlite3.connect(example_env.ledger_path)) as db:
        rows = db.execute(
            "SELECT COUNT(*) FROM wamm_campaign_report WHERE campaign_id = ?", (send["campaign_id"],)
        ).fetchone()[0]
    assert rows >= 1
    html = example_env.report_dir / f"spring_sale_{ds_nodash}.html"
    assert send["campaign_id"] in html.read_text(encoding="utf-8")

    # The send task's outlet: one asset event carrying the campaign id, for report_on_asset.py.
    events = asset_events(CAMPAIGN_ASSET)[before:]
    assert [e.extra for e in events] == [
        {"campaign_id": send["campaign_id"], "total": 42, "accepted": 40, "failed": 0}
    ]

    # The same run again (a cleared run): the campaign resumes and nobody gets a second message.
    dagrun, tis, xcoms = run_dag(dag, logical_date=logical_date, run_after=logical_date)
    assert str(dagrun.state) == "success", tis
    again = xcoms[("send", -1)]
    assert again["campaign_id"] == send["campaign_id"]
    assert again["already_done"] == 40 and again["accepted"] == 0
    assert_one_message_each(sandbox, expected)


# -- recipients_from_task.py -----------------------------------------------------------------------


def test_recipients_from_task(example_env: ExampleEnv, load_example_dags: Any) -> None:
    dag = load_example_dags("wamm_recipients_from_task")
    dagrun, tis, xcoms = run_dag(dag)
    assert str(dagrun.state) == "success", tis
    assert tis == {"pick_recipients": "success", "send": "success"}

    sandbox = example_env.sandbox
    assert_one_message_each(sandbox, {"4915123456701", "4915123456702", "34612345678"})
    names = {m.to: m.payload["template"]["components"][0]["parameters"][0] for m in sandbox.messages}
    assert names["34612345678"] == {"type": "text", "parameter_name": "first_name", "text": "Carla"}
    assert {m.template for m in sandbox.messages} == {"welcome_named"}

    send = xcoms[("send", -1)]
    assert send["campaign_id"] == f"wamm_recipients_from_task.send.{dagrun.run_id}"
    assert (send["total"], send["accepted"], send["failed"]) == (3, 3, 0)
    assert len(xcoms[("pick_recipients", -1)]) == 3


# -- sharded_campaign.py ---------------------------------------------------------------------------


@pytest.fixture
def held_webhooks(receiver_server: Receiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Hold the sandbox's webhooks at the receiver until the sensor's trigger first reads the ledger.

    So the sensor always finds the campaign unsettled, defers, and settles in its trigger (which
    ``dag.test()`` runs in line). Yields the list of unsettled counts the trigger saw, poll by poll.
    """
    from airflow_provider_wamm.triggers.responses import MarketingResponsesTrigger

    gate = threading.Event()
    polls: list[int] = []
    check = MarketingResponsesTrigger._check

    def counting_check(self: MarketingResponsesTrigger) -> Any:
        state = check(self)
        polls.append(state.unsettled)
        gate.set()
        return state

    monkeypatch.setattr(MarketingResponsesTrigger, "_check", counting_check)
    receiver_server.gate = gate
    try:
        yield polls
    finally:
        gate.set()
        receiver_server.gate = None


def test_sharded_campaign_defers_and_reports_every_shard(
    example_env: ExampleEnv,
    load_example_dags: Any,
    held_webhooks: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dag = load_example_dags("wamm_sharded_campaign")
    quick_sensor(monkeypatch, dag)
    customers, expected = crm_with_extras(80)
    seed_customers(example_env.crm, customers)

    dagrun, tis, xcoms = run_dag(dag)
    assert str(dagrun.state) == "success", tis
    assert tis == {**{f"send[{i}]": "success" for i in range(4)}, "report": "success"}
    assert rendered_map_indexes(dagrun, "send") == ["shard 0", "shard 1", "shard 2", "shard 3"]

    sandbox = example_env.sandbox
    assert_one_message_each(sandbox, expected | {"34612345678"})  # no country filter in this example
    shards = [xcoms[("send", i)] for i in range(4)]
    campaign_ids = {s["campaign_id"] for s in shards}
    assert campaign_ids == {f"wamm_sharded_campaign.send.{dagrun.run_id}"}
    assert [s["shard_index"] for s in shards] == [0, 1, 2, 3]
    assert sum(s["accepted"] for s in shards) == 81 and all(s["accepted"] > 0 for s in shards)
    # The shards share the number's 1000 msg/s through the ledger; here they run one after another, so
    # each is alone on the number and takes the whole cap (nothing is split up front any more).
    assert all(s["final_rate"] == pytest.approx(1000.0) for s in shards)
    assert sum(s["invalid"] for s in shards) == 1 and sum(s["duplicates"] for s in shards) == 1

    # The sensor found nothing settled, deferred, and its trigger polled until every status was in.
    assert held_webhooks[0] == 81 and held_webhooks[-1] == 0
    report = xcoms[("report", -1)]
    assert report["campaign_ids"] == sorted(campaign_ids)
    assert report["total"] == 82 and report["sends"]["invalid"] == 1
    assert_report_matches_sandbox(report, sandbox)


# -- report_on_asset.py ----------------------------------------------------------------------------


def test_report_on_asset_reports_the_campaign_of_the_triggering_event(
    example_env: ExampleEnv, load_example_dags: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The campaign DAG emits the asset event; the reporting DAG's run consumes it, as the scheduler
    would arrange (``dag.test()`` creates a manual run, so the test links the event to it)."""
    from airflow.models import dagrun as dagrun_module

    customers, expected = crm_with_extras(12)
    seed_customers(example_env.crm, customers)
    producer = load_example_dags("wamm_campaign_from_sql")
    producer_run, _, xcoms = run_dag(producer, mark_success_pattern="report")  # only its send task
    assert str(producer_run.state) == "success"
    campaign_id = xcoms[("send", -1)]["campaign_id"]
    event = asset_events(CAMPAIGN_ASSET)[-1]
    assert event.extra["campaign_id"] == campaign_id
    assert_one_message_each(example_env.sandbox, expected)

    consumer = load_example_dags("wamm_report_on_asset")
    quick_sensor(monkeypatch, consumer)

    # Triggered by hand with the campaign id as config.
    dagrun, tis, xcoms = run_dag(consumer, run_conf={"campaign_id": campaign_id})
    assert str(dagrun.state) == "success", tis
    assert xcoms[("report", -1)]["campaign_ids"] == [campaign_id]

    # Triggered by the asset event.
    create = dagrun_module.get_or_create_dagrun

    def create_consuming_run(**kwargs: Any) -> Any:
        from airflow.models.asset import AssetEvent

        run = create(**kwargs)
        session = kwargs["session"]
        run.consumed_asset_events.append(session.get(AssetEvent, event.id))
        session.commit()
        return run

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", create_consuming_run)
    dagrun, tis, xcoms = run_dag(consumer)
    assert str(dagrun.state) == "success", tis
    report = xcoms[("report", -1)]
    assert report["campaign_ids"] == [campaign_id]
    assert report["sends"]["accepted"] == 12
    assert_report_matches_sandbox(report, example_env.sandbox)
    with contextlib.closing(sqlite3.connect(example_env.ledger_path)) as db:
        stored = {r[0] for r in db.execute("SELECT DISTINCT campaign_id FROM wamm_campaign_report")}
    assert campaign_id in stored


# -- safe_backfill.py ------------------------------------------------------------------------------


def midnight(day: date) -> datetime:
    """The logical date (and ``run_after``) of a daily run."""
    return datetime.combine(day, time.min, UTC)


def run_daily(dag: Any, day: date) -> tuple[Any, dict[str, str], dict[tuple[str, int], Any]]:
    """The scheduled run of ``day``, as the scheduler creates it (logical date = run_after = midnight)."""
    return run_dag(dag, logical_date=midnight(day), run_after=midnight(day))


def test_safe_backfill_skips_stale_runs_and_caps_frequency(
    example_env: ExampleEnv, load_example_dags: Any
) -> None:
    dag = load_example_dags("wamm_safe_backfill")
    today = datetime.now(UTC).date()
    yesterday, old = today - timedelta(days=1), today - timedelta(days=10)
    # Each daily run welcomes the sign-ups of the day before it was due.
    signups = {old - timedelta(days=1): range(0, 3), yesterday - timedelta(days=1): range(10, 15)}
    signups[yesterday] = range(20, 24)
    customers = [
        Customer(de_number(i), f"Ana{i}", signup_date=str(day)) for day, ids in signups.items() for i in ids
    ]
    # Two of the earlier sign-ups registered again yesterday: they already got the earlier message.
    customers += [Customer(de_number(i), f"Again{i}", signup_date=str(yesterday)) for i in (10, 11)]
    seed_customers(example_env.crm, customers)
    sandbox = example_env.sandbox

    # A backfilled run ten days late is skipped by max_lateness (two days): nothing is sent.
    _, tis, xcoms = run_daily(dag, old)
    assert tis == {"send": "skipped"}
    assert ("send", -1) not in xcoms and sandbox.messages == []

    # Yesterday's run sends to the sign-ups of the day before (the query binds run_after's day - 1).
    _, tis, xcoms = run_daily(dag, yesterday)
    assert tis == {"send": "success"}
    first = xcoms[("send", -1)]
    assert (first["total"], first["accepted"]) == (5, 5)
    earlier = signups[yesterday - timedelta(days=1)]
    assert_one_message_each(sandbox, {de_digits(i) for i in earlier})

    # Today's run is a new campaign, but the frequency cap skips the two messaged within 24 h.
    _, tis, xcoms = run_daily(dag, today)
    assert tis == {"send": "success"}
    second = xcoms[("send", -1)]
    assert second["campaign_id"] != first["campaign_id"]
    assert second["campaign_id"].startswith("wamm_safe_backfill.send.")
    assert (second["total"], second["accepted"], second["frequency_capped"]) == (6, 4, 2)
    assert_one_message_each(sandbox, {de_digits(i) for i in (*earlier, *signups[yesterday])})
