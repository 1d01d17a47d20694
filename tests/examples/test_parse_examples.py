"""The example DAGs in ``dags_examples/`` parse cleanly and have the shape their docs describe.

No metadata database is needed: a ``DagBag`` imports the files (as the DAG processor would) and the
tests look at the resulting DAG objects. The campaign id template of ``report_on_asset.py`` is rendered
against the context Airflow builds for an asset-triggered run.
"""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor, parse_campaign_ids
from tests.examples.conftest import EXAMPLES

CAMPAIGN_ASSET = "whatsapp://campaigns/spring_sale"

#: Every example DAG and its tasks with their upstream task ids.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "wamm_campaign_from_sql": {"send": set(), "report": {"send"}},
    "wamm_recipients_from_task": {"pick_recipients": set(), "send": {"pick_recipients"}},
    "wamm_sharded_campaign": {"send": set(), "report": {"send"}},
    "wamm_report_on_asset": {"report": set()},
    "wamm_safe_backfill": {"send": set()},
    "wamm_campaign_on_template_approval": {"send": set()},
}


def test_every_example_file_parses_without_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=EXAMPLES)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == set(EXPECTED)
    files = sorted(pathlib.Path(dag.fileloc).name for dag in bag.dags.values())
    assert files == sorted(p.name for p in EXAMPLES.glob("*.py"))  # one DAG per file, none without


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_tasks_and_dependencies(example_dags: dict[str, Any], dag_id: str) -> None:
    dag = example_dags[dag_id]
    assert {tid: set(task.upstream_task_ids) for tid, task in dag.task_dict.items()} == EXPECTED[dag_id]
    assert "example" in dag.tags and "whatsapp" in dag.tags
    assert dag.start_date == datetime(2026, 1, 1, tzinfo=UTC)


def test_campaign_from_sql_is_resumable_and_publishes_its_asset(example_dags: dict[str, Any]) -> None:
    dag = example_dags["wamm_campaign_from_sql"]
    send, report = dag.get_task("send"), dag.get_task("report")
    assert isinstance(send, MarketingMessageOperator) and isinstance(report, MarketingResponsesSensor)
    # One campaign per logical date, watched by the sensor: same template string on both tasks.
    assert send.campaign_id == report.campaign_id == "spring_sale_{{ ds_nodash }}"
    assert send.sql_conn_id == "crm" and send.ledger_conn_id == report.ledger_conn_id == "wamm_ledger"
    assert send.parameters == {"country": "DE"} and ":country" in str(send.sql)
    assert [a.uri for a in send.outlets] == [CAMPAIGN_ASSET]
    assert report.deferrable is True
    assert send.max_lateness == timedelta(hours=12) and dag.max_active_runs == 1


def test_report_on_asset_is_scheduled_on_the_campaign_asset(example_dags: dict[str, Any]) -> None:
    dag = example_dags["wamm_report_on_asset"]
    assert [a.uri for a in dag.timetable.asset_condition.objects] == [CAMPAIGN_ASSET]
    sensor = dag.get_task("report")
    assert isinstance(sensor, MarketingResponsesSensor) and sensor.deferrable is True
    assert sensor.ledger_conn_id == "wamm_ledger" and sensor.min_delivery_ratio == 0.5


def test_sharded_campaign_maps_four_shards_watched_by_one_sensor(example_dags: dict[str, Any]) -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag = example_dags["wamm_sharded_campaign"]
    send = dag.get_task("send")
    assert isinstance(send, MappedOperator)
    assert send.expand_input.value == {"shard_index": [0, 1, 2, 3]}
    assert send.partial_kwargs["shard_count"] == 4
    report = dag.get_task("report")
    assert report.send_task_id == "send" and report.campaign_id is None


def test_safe_backfill_guards(example_dags: dict[str, Any]) -> None:
    dag = example_dags["wamm_safe_backfill"]
    send = dag.get_task("send")
    assert dag.catchup is True
    assert send.max_lateness == timedelta(days=2) and send.frequency_cap == timedelta(hours=24)
    assert send.campaign_id is None  # the default, dag_id.task_id.run_id: a retry resumes its own run
    assert send.parameters == {"day": "{{ ds }}"} and send.retries == 3


def _asset_event(campaign_id: str, *, minutes_ago: int, uri: str = CAMPAIGN_ASSET) -> Any:
    """An asset event as the task runner hands it to an asset-triggered run's context."""
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult

    return AssetEventDagRunReferenceResult.model_validate(
        {
            "asset": {"name": uri, "uri": uri, "extra": {}},
            "extra": {"campaign_id": campaign_id, "total": 3, "accepted": 3, "failed": 0},
            "source_task_id": "send",
            "source_dag_id": "wamm_campaign_from_sql",
            "source_run_id": f"scheduled__{campaign_id}",
            "source_map_index": -1,
            "source_aliases": [],
            "timestamp": datetime.now(UTC) - timedelta(minutes=minutes_ago),
        }
    )


def test_report_on_asset_renders_the_campaign_ids_of_the_triggering_events(
    example_dags: dict[str, Any],
) -> None:
    """Airflow 3's ``triggering_asset_events``: a mapping of asset -> its events, oldest first."""
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    sensor = example_dags["wamm_report_on_asset"].get_task("report")
    one = TriggeringAssetEventsAccessor.build([_asset_event("spring_sale_20260112", minutes_ago=1)])
    context: dict[str, Any] = {"triggering_asset_events": one, "params": {"campaign_id": ""}}
    assert parse_campaign_ids(sensor.render_template(sensor.campaign_id, context)) == ["spring_sale_20260112"]

    # Two campaigns sent before the reporting run started: both are reported.
    context["triggering_asset_events"] = TriggeringAssetEventsAccessor.build(
        [
            _asset_event("spring_sale_20260105", minutes_ago=10),
            _asset_event("spring_sale_20260112", minutes_ago=1),
        ]
    )
    rendered = sensor.render_template(sensor.campaign_id, context)
    assert parse_campaign_ids(rendered) == ["spring_sale_20260105", "spring_sale_20260112"]

    # A manual run with {"campaign_id": ...} reports that campaign (no asset event needed).
    manual = {
        "triggering_asset_events": TriggeringAssetEventsAccessor.build([]),
        "params": {"campaign_id": "x1"},
    }
    assert sensor.render_template(sensor.campaign_id, manual) == "x1"
