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
    "wamm_limited_retries": {"recent_campaigns": set(), "retry": {"recent_campaigns"}},
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
    # One campaign per day a run is due, watched by the sensor: same template string on both tasks.
    assert send.campaign_id == report.campaign_id == "spring_sale_{{ dag_run.run_after | ds_nodash }}"
    # The ledger is the deployment's ([wamm] ledger_conn_id), the same for every example.
    assert send.sql_conn_id == "crm" and send.ledger_conn_id is None and report.ledger_conn_id is None
    assert send.parameters == {"country": "DE"} and ":country" in str(send.sql)
    assert [a.uri for a in send.outlets] == [CAMPAIGN_ASSET]
    assert report.deferrable is True
    # The run created on unpausing the weekly DAG (the latest Sunday) is sent, not skipped.
    assert send.max_lateness == timedelta(days=7) and dag.max_active_runs == 1


def test_report_on_asset_is_scheduled_on_the_campaign_asset(example_dags: dict[str, Any]) -> None:
    dag = example_dags["wamm_report_on_asset"]
    assert [a.uri for a in dag.timetable.asset_condition.objects] == [CAMPAIGN_ASSET]
    sensor = dag.get_task("report")
    assert isinstance(sensor, MarketingResponsesSensor) and sensor.deferrable is True
    assert sensor.ledger_conn_id is None and sensor.min_delivery_ratio == 0.5
    assert sensor.report_conn_id is None  # the report table lives in the ledger database


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
    # Unpausing runs the latest day only; older days are backfilled on purpose (and max_lateness guards).
    assert dag.catchup is False
    assert send.max_lateness == timedelta(days=2) and send.frequency_cap == timedelta(hours=24)
    assert send.campaign_id is None  # the default, dag_id.task_id.run_id: a retry resumes its own run
    assert send.parameters == {"day": "{{ macros.ds_add(dag_run.run_after | ds, -1) }}"}
    assert send.retries == 3


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


# -- runs without a logical date (airflow dags trigger, the REST API, the UI) ---------------------------

#: Context keys Airflow 3 sets only for runs with a logical date (see the task runner's
#: ``get_template_context``): an example that uses one fails on every manual trigger.
LOGICAL_DATE_KEYS = (
    "logical_date",
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
    "data_interval_start",
    "data_interval_end",
    "prev_data_interval_start_success",
    "prev_data_interval_end_success",
)


def _manual_run_context(dag: Any, task: Any, run_after: datetime) -> dict[str, Any]:
    """What the task runner hands a template of a manual run: ``run_after`` but no logical date."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.context import MacrosAccessor, TriggeringAssetEventsAccessor

    run_id = f"manual__{run_after.isoformat()}"
    dag_run = SimpleNamespace(
        dag_id=dag.dag_id, run_id=run_id, run_after=run_after, logical_date=None, conf={}, run_type="manual"
    )
    return {
        "dag": dag,
        "task": task,
        "run_id": run_id,
        "dag_run": dag_run,
        "params": {k: v for k, v in dag.params.items()},
        "macros": MacrosAccessor(),
        "var": {"value": {}, "json": {}},  # the ``.get(name, default)`` form the examples use
        "triggering_asset_events": TriggeringAssetEventsAccessor.build([]),
        "ti": SimpleNamespace(dag_id=dag.dag_id, task_id=task.task_id, run_id=run_id, map_index=-1),
    }


def _template_values(task: Any) -> dict[str, Any]:
    """The task's templated arguments (a mapped task keeps them in ``partial_kwargs``); an upstream task's
    XCom is resolved at run time, not rendered, so it is left out."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    values = getattr(task, "partial_kwargs", None)
    if values is None:
        values = {name: getattr(task, name) for name in task.template_fields}
    return {
        name: values[name]
        for name in task.template_fields
        if name in values and not isinstance(values[name], XComArg)
    }


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_templates_render_for_a_run_without_a_logical_date(example_dags: dict[str, Any], dag_id: str) -> None:
    dag = example_dags[dag_id]
    run_after = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    env = dag.get_template_env()  # StrictUndefined, as in a real run
    rendered: dict[str, Any] = {}
    for task in dag.task_dict.values():
        context = _manual_run_context(dag, task, run_after)
        assert not set(LOGICAL_DATE_KEYS) & set(context)
        for name, value in _template_values(task).items():
            rendered[f"{task.task_id}.{name}"] = task.render_template(value, context, jinja_env=env)
    if dag_id == "wamm_campaign_from_sql":
        assert rendered["send.campaign_id"] == rendered["report.campaign_id"] == "spring_sale_20260302"
        assert rendered["report.html_report_path"] == "wamm-reports/spring_sale_20260302.html"
    if dag_id == "wamm_safe_backfill":
        assert rendered["send.parameters"] == {"day": "2026-03-01"}  # the day before the run was due


def test_no_example_template_uses_the_logical_date() -> None:
    import re

    key = re.compile(r"(?<![\w.])(" + "|".join(LOGICAL_DATE_KEYS) + r")\b")
    for path in sorted(EXAMPLES.glob("*.py")):
        for block in re.findall(r"\{\{(.*?)\}\}", path.read_text(encoding="utf-8")):
            variables = re.sub(r"\|\s*\w+", "", block)  # filters such as ``| ds_nodash`` are fine
            assert not key.search(variables), f"{path.name}: {{{{{block}}}}}"


def test_the_upstream_task_keeps_phone_numbers_out_of_its_log(example_dags: dict[str, Any]) -> None:
    task = example_dags["wamm_recipients_from_task"].get_task("pick_recipients")
    assert task.show_return_value_in_logs is False
