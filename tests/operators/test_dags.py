"""Whole DAGs from ``tests/dags`` run with ``dag.test()`` on the SQLite metadata database.

The DAG files are parsed from the dags folder, so everything that changes per test (the sandbox's URL,
database files) reaches them through connections set as environment variables before ``dag.test()``.
Results are checked against the sandbox's own record of accepted messages and the tasks' XComs.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.hooks.ledger import ledger_url
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import digits, number

pytestmark = pytest.mark.airflow_db


def run_dag(dag: Any, **kwargs: Any) -> tuple[str, dict[str, str], dict[tuple[str, int], Any]]:
    """``dag.test()``; returns the run's state, its task instances' states and its return-value XComs.

    Task instances are keyed ``task_id`` or, for mapped ones, ``task_id[map index label]``.
    """
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    dagrun = dag.test(**kwargs)
    assert settings.Session is not None, "dag.test() configures the ORM"
    with settings.Session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dagrun.run_id
            )
        ).all()
        states = {}
        for ti in tis:
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.rendered_map_index or ti.map_index}]"
            states[key] = str(ti.state)
        xcoms = {
            (x.task_id, x.map_index): XComModel.deserialize_value(x)
            for x in session.scalars(
                XComModel.get_many(run_id=dagrun.run_id, dag_ids=dag.dag_id, key="return_value")
            )
        }
    return str(dagrun.state), states, xcoms


def asset_event_extras(uri: str) -> list[Any]:
    """The ``extra`` of every asset event recorded for ``uri``, oldest first."""
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    assert settings.Session is not None
    with settings.Session() as session:
        query = (
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        )
        return list(session.scalars(query))


def rendered_fields(dag_id: str, task_id: str) -> dict[str, Any]:
    """The rendered template fields Airflow stored for the latest run of a task (what the UI shows)."""
    from airflow import settings
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from sqlalchemy import select

    assert settings.Session is not None
    with settings.Session() as session:
        query = select(RTIF.rendered_fields).where(RTIF.dag_id == dag_id, RTIF.task_id == task_id)
        fields: dict[str, Any] = list(session.scalars(query))[-1]
    return fields


def seed_customers(path: pathlib.Path, count: int, *, bad: bool = True) -> set[str]:
    """A CRM with ``count`` opted-in customers (segment vip/new alternating), a few bad and opted-out rows.

    Returns the digits of the opted-in vip customers with a valid number.
    """
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, phone TEXT, first_name TEXT, discount TEXT, "
            "slug TEXT, segment TEXT, opted_in INTEGER)"
        )
        data = [
            (i, number(i), f"Ana{i}", "20%", f"s{i}", "vip" if i % 2 == 0 else "new", 1) for i in range(count)
        ]
        if bad:
            data += [
                (count, "not-a-number", "Bad", "5%", "b", "vip", 1),
                (count + 1, number(0), "Again", "5%", "a", "vip", 1),  # duplicate of customer 0
                (count + 2, number(count + 2), "Out", "5%", "o", "vip", 0),  # opted out
            ]
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", data)
    db.close()
    return {digits(i) for i in range(0, count, 2)}


def test_recipients_from_an_upstream_task_with_injected_faults(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    """2,000 recipients through XCom, 5 % transient and 5 % throttling errors: each gets one message."""
    from tests.dags.wamm_test_xcom import dag

    sandbox.configure(fault_transient_rate=0.05, fault_throttle_rate=0.05, seed=11)
    state, tis, xcoms = run_dag(dag, run_conf={"recipients": 2000})
    assert state == "success", tis
    assert tis == {"pick_recipients": "success", "send": "success"}

    sends = sandbox.sends_per_recipient()
    assert len(sends) == 2000 and set(sends.values()) == {1}
    errors = sandbox.errors()
    transient = errors[1] + errors[2] + errors[131000]
    throttled = errors[4] + errors[130429]
    assert transient > 50 and throttled > 50  # the faults really happened (about 5 % of requests each)

    result = xcoms[("send", -1)]
    assert result["total"] == 2000 and result["accepted"] == 2000 and result["failed"] == 0
    assert result["retries"] == transient and result["throttled"] == throttled
    assert result["campaign_id"].startswith("wamm_test_xcom.send.manual__")
    assert send_counts(ledger, result["campaign_id"]) == {"accepted": 2000}
    assert len(xcoms[("pick_recipients", -1)]) == 2000
    # The recipient rows are not stored as a rendered template field (shown in the UI): only a count.
    fields = rendered_fields("wamm_test_xcom", "send")
    assert fields["recipients"] == "<2000 recipients: not shown>"
    assert "49151" not in json.dumps(fields) and fields["template_name"] == "spring_sale"


def test_recipients_streamed_with_sql_from_a_templated_file(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    from tests.dags.wamm_test_sql import dag

    expected = seed_customers(crm, 120)
    logical_date = datetime(2026, 5, 4, tzinfo=UTC)
    events_before = len(asset_event_extras("wamm://tests/spring_sale"))
    state, tis, xcoms = run_dag(dag, logical_date=logical_date)
    assert state == "success", tis

    sends = sandbox.sends_per_recipient()
    assert set(sends) == expected and set(sends.values()) == {1}
    result = xcoms[("send", -1)]
    assert result["campaign_id"] == "spring_vip_20260504"  # rendered from params and ds_nodash
    assert result["accepted"] == 60 and result["invalid"] == 1 and result["duplicates"] == 1
    assert result["total"] == 62
    assert send_counts(ledger, "spring_vip_20260504") == {"accepted": 60, "invalid": 1}
    assert asset_event_extras("wamm://tests/spring_sale")[events_before:] == [
        {"campaign_id": "spring_vip_20260504", "total": 62, "accepted": 60, "failed": 0}
    ]
    # Personalisation came from the columns (first_name AS name).
    ana2 = next(m.payload for m in sandbox.messages if m.to == digits(2))
    assert ana2["template"]["components"][0]["parameters"][0]["text"] == "Ana2"

    # The same run again (a cleared task) sends nothing new; another segment via params is a new campaign.
    state, _, xcoms = run_dag(dag, logical_date=logical_date)
    assert state == "success" and xcoms[("send", -1)]["already_done"] == 60
    assert len(sandbox.messages) == 60
    state, _, xcoms = run_dag(dag, logical_date=logical_date, run_conf={"segment": "new", "limit": 5})
    assert state == "success" and xcoms[("send", -1)]["accepted"] == 5
    assert xcoms[("send", -1)]["campaign_id"] == "spring_new_20260504"


def test_one_campaign_sharded_over_mapped_tasks(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], crm: pathlib.Path
) -> None:
    from tests.dags.wamm_test_sharded import dag

    wa_sandbox(max_messages_per_second=600)
    seed_customers(crm, 300)
    expected = {digits(i) for i in range(300)}
    state, tis, xcoms = run_dag(dag)
    assert state == "success", tis
    assert tis == {"send[shard 0]": "success", "send[shard 1]": "success", "send[shard 2]": "success"}

    sends = sandbox.sends_per_recipient()
    assert set(sends) == expected and set(sends.values()) == {1}
    shards = [xcoms[("send", i)] for i in range(3)]
    assert len({s["campaign_id"] for s in shards}) == 1  # one campaign, three shards
    assert [s["shard_index"] for s in shards] == [0, 1, 2]
    assert sum(s["accepted"] for s in shards) == 300
    assert all(60 <= s["accepted"] <= 140 for s in shards)  # a stable hash split, roughly even
    # The shards share the number's 600 msg/s through the ledger; dag.test runs them one after the
    # other, so each had the whole cap (concurrent shards: tests/campaign/test_cap_share.py).
    assert all(s["final_rate"] == pytest.approx(600.0) for s in shards)
    # The bad row is counted once (by one shard), the duplicate by the shard owning that number.
    assert sum(s["invalid"] for s in shards) == 1 and sum(s["duplicates"] for s in shards) == 1
    # No ledger connection: the default SQLite file under AIRFLOW_HOME holds the campaign.
    default = Ledger.from_url(ledger_url(None))
    try:
        counts = send_counts(default, shards[0]["campaign_id"])
    finally:
        default.dispose()
    assert counts == {"accepted": 300, "invalid": 1}


def rendered_fields_by_map_index(dag_id: str, task_id: str) -> dict[int, dict[str, Any]]:
    """The rendered template fields Airflow stored for each mapped task instance of the latest run."""
    from airflow import settings
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from sqlalchemy import select

    assert settings.Session is not None
    with settings.Session() as session:
        query = select(RTIF.map_index, RTIF.rendered_fields).where(
            RTIF.dag_id == dag_id, RTIF.task_id == task_id
        )
        return {map_index: fields for map_index, fields in session.execute(query)}


def register_dag(dag: Any) -> Any:
    """Write a DAG defined in a test to the metadata database, where ``dag.test()`` looks for it.

    The same workaround as ``tests/examples/conftest.py`` uses for the example DAGs.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag


def mapped_recipients_dag(dag_id: str, *, expand_recipients: bool) -> Any:
    """Recipients from an upstream task, sent by two mapped tasks.

    ``expand_recipients``: each mapped task gets its own batch (``.expand(recipients=...)``); otherwise
    both get the whole list and keep their shard of it (``.partial(recipients=...)``).
    """
    from airflow.sdk import DAG, task

    from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), default_args={"retries": 0}) as dag:

        @task
        def pick_recipients() -> list[dict[str, str]]:
            return [
                {"phone": number(i), "name": f"Ana{i}", "discount": "20%", "slug": f"s{i}"} for i in range(40)
            ]

        @task
        def split(recipients: list[dict[str, str]]) -> list[list[dict[str, str]]]:
            return [recipients[:25], recipients[25:]]

        common: dict[str, Any] = {
            "task_id": "send",
            "template_name": "spring_sale",
            "body_parameters": ["{name}", "{discount}"],
            "buttons": [{"type": "url", "index": 0, "text": "{slug}"}],
            "whatsapp_conn_id": "wamm_test_whatsapp",
            "ledger_conn_id": "wamm_test_ledger",
            "campaign_id": f"{dag_id}-campaign",
        }
        recipients = pick_recipients()
        if expand_recipients:
            MarketingMessageOperator.partial(**common).expand(recipients=split(recipients))
        else:
            partial = MarketingMessageOperator.partial(**common, shard_count=2, recipients=recipients)
            partial.expand(shard_index=[0, 1])
    return register_dag(dag)


@pytest.mark.parametrize("expand_recipients", [False, True], ids=["partial", "expand"])
def test_mapped_tasks_keep_the_recipient_rows_out_of_the_rendered_fields(
    expand_recipients: bool, sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    """Rendered template fields of mapped tasks hold only a count of the rows, never a phone number.

    Airflow renders a mapped task on the operator it builds for the map index, through the same
    getattr/setattr on its template fields as a plain task; if that ever changes, this test fails.
    """
    dag_id = f"wamm_test_mapped_privacy_{'expand' if expand_recipients else 'partial'}"
    state, tis, xcoms = run_dag(mapped_recipients_dag(dag_id, expand_recipients=expand_recipients))
    assert state == "success", tis

    sends = sandbox.sends_per_recipient()
    assert set(sends) == {digits(i) for i in range(40)} and set(sends.values()) == {1}
    assert sum(xcoms[("send", i)]["accepted"] for i in range(2)) == 40
    fields = rendered_fields_by_map_index(dag_id, "send")
    assert set(fields) == {0, 1}
    counts = ["<25 recipients: not shown>", "<15 recipients: not shown>"]
    for map_index, rendered in fields.items():
        expected = counts[map_index] if expand_recipients else "<40 recipients: not shown>"
        assert rendered["recipients"] == expected
        assert "49151" not in json.dumps(rendered) and rendered["template_name"] == "spring_sale"
