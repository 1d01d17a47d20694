"""OpenLineage events of the send operator, captured from Airflow's OpenLineage listener in a real
``dag.test()`` run, and its "Campaign report" extra link."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_wamm.operators.lineage import CampaignReportLink
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox, SandboxTemplate, default_templates
from tests.operators.conftest import (
    rows,
    seed_crm,
)

pytest.importorskip("airflow.providers.openlineage")
pytestmark = pytest.mark.airflow_db


@pytest.fixture
def lineage_events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every OpenLineage event the listener emits during the test.

    Robust to what ran before in the session: the provider's configuration caches are cleared, its
    listener is added to the task runner's listener manager if plugin discovery did not add it (and
    removed again afterwards), and its client is replaced by one whose transport keeps the events.
    Events are emitted in a thread, not a forked child, so that the test sees them.
    """
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.sdk.listener import get_listener_manager
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import Transport

    events: list[Any] = []

    class Capture(Transport):
        kind = "wamm_capture"

        def emit(self, event: Any) -> None:
            events.append(event)

    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", '{"type": "console"}')
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    for name in dir(conf):
        cached = getattr(getattr(conf, name), "cache_clear", None)
        if callable(cached):
            cached()
    listener = get_openlineage_listener()
    monkeypatch.setattr(listener.adapter, "_client", OpenLineageClient(transport=Capture()))
    manager = get_listener_manager()
    added = not manager.pm.is_registered(listener)
    if added:
        manager.add_listener(listener)
    try:
        yield events
    finally:
        if added:
            manager.pm.unregister(listener)
        for name in dir(conf):
            cached = getattr(getattr(conf, name), "cache_clear", None)
            if callable(cached):
                cached()


def test_complete_event_names_the_query_tables_the_templates_and_the_counts(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger_path: pathlib.Path,
    crm: pathlib.Path,
    lineage_events: list[Any],
) -> None:
    from tests.dags.wamm_test_lineage import dag

    spring = default_templates()["spring_sale"]
    v2 = SandboxTemplate.from_dict({**spring.to_meta(), "name": "spring_sale_v2", "id": "v2"})
    sandbox.configure(templates={**default_templates(), "spring_sale_v2": v2})
    seed_crm(crm, rows(40))
    dag.test()
    complete = [
        e for e in lineage_events if getattr(e, "eventType", None) and e.eventType.value == "COMPLETE"
    ]
    task_events = [e for e in complete if e.job.name.endswith(".send")]
    assert task_events, [getattr(e, "eventType", e) for e in lineage_events]
    event = task_events[-1]
    assert [d.name for d in event.inputs] == ["customers"] and "sqlite" in event.inputs[0].namespace
    outputs = {d.name: d for d in event.outputs}
    assert set(outputs) == {"spring_sale/en_US", "spring_sale_v2/en_US"}
    account = sandbox.config.waba_id
    assert {d.namespace for d in event.outputs} == {f"whatsapp://{account}"}
    facet = event.run.facets["wamm_campaign"]
    assert facet.counts["total"] == 40 and facet.counts["sent"] + facet.counts["holdout"] == 40
    assert outputs["spring_sale/en_US"].facets["outputStatistics"].rowCount == facet.counts["sent"]
    assert facet.cost is not None and facet.cost["currency"] == "USD" and facet.cost["total_cost"] > 0


def test_report_link_is_the_rendered_report_url() -> None:
    op = MarketingMessageOperator(
        task_id="send", template_name="t", recipients=[], report_url="https://r/x.html"
    )
    assert [link.name for link in op.operator_extra_links] == ["Campaign report"]
    assert CampaignReportLink().get_link(op, ti_key=None) == "https://r/x.html"
    assert "report_url" in MarketingMessageOperator.template_fields
