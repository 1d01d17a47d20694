"""Lineage of the send operator: OpenLineage facets, and an extra link to the campaign's HTML report.

A mix-in of :class:`~airflow_provider_wamm.operators.marketing.MarketingMessageOperator`. With the
``apache-airflow-providers-openlineage`` provider installed, Airflow's OpenLineage listener asks each
finished task for :meth:`LineageArguments.get_openlineage_facets_on_complete`: the tables the
recipient query reads (parsed from the SQL), one output dataset per template sent, named by the
WhatsApp Business Account (``whatsapp://<waba id>``, ``<template>/<language>``), with the messages
sent as its row count, and a ``wamm_campaign`` run facet with the run's counts and estimated cost.
Without the provider nothing is imported and nothing happens.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, BaseOperatorLink

from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

#: The templated lineage arguments.
LINEAGE_TEMPLATE_FIELDS: tuple[str, ...] = ("report_url",)
#: Counts copied into the ``wamm_campaign`` run facet.
FACET_COUNTS = (
    "total",
    "sent",
    "accepted",
    "failed",
    "unknown",
    "skipped",
    "holdout",
    "global_control",
    "suppressed",
    "invalid",
    "duplicates",
)


class CampaignReportLink(BaseOperatorLink):
    """The task's "Campaign report" button: the operator's ``report_url`` (rendered)."""

    name = "Campaign report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """The rendered ``report_url`` (Airflow 3 computes it on the worker when the task ends)."""
        return str(getattr(operator, "report_url", None) or "")


class LineageArguments(BaseOperator):
    """Lineage arguments of the marketing operator.

    :param report_url: Where the campaign's HTML report is published (templated, e.g.
        ``"https://reports.example.com/{{ dag.dag_id }}/{{ run_id }}.html"``): the task gets a
        "Campaign report" extra link to it.
    """

    operator_extra_links = (CampaignReportLink(),)

    def __init__(self, *, report_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.report_url = report_url
        self._lineage: dict[str, Any] | None = None

    def remember_lineage(
        self, hook: WhatsAppHook, settings: CampaignSettings, summary: Mapping[str, Any]
    ) -> None:
        """Keep what the lineage facets say of this run (called at the end of ``execute``)."""
        plan = settings.experiment_plan()
        templates = plan.templates if plan is not None else [(settings.template_name, settings.language)]
        self._lineage = {
            "account": hook.waba_id or hook.phone_number_id,
            "templates": templates,
            "summary": dict(summary),
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """Inputs (the SQL source's tables), outputs (the templates sent) and the run's counts and cost."""
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:  # the OpenLineage provider is not installed
            return None
        if self._lineage is None:
            return None
        facet = _facet_types()
        summary = self._lineage["summary"]
        cost = summary.get("cost") or (summary.get("run_log") or {}).get("cost")
        run_facet = facet["campaign"](
            campaign_id=str(summary.get("campaign_id")),
            counts={k: int(summary.get(k) or 0) for k in FACET_COUNTS},
            cost=None
            if not cost
            else {"total_cost": cost.get("total_cost"), "currency": cost.get("currency")},
        )
        outputs = [
            facet["Dataset"](
                namespace=f"whatsapp://{self._lineage['account']}",
                name=f"{template}/{language}",
                facets={
                    "outputStatistics": facet["OutputStatistics"](rowCount=int(summary.get("sent") or 0))
                },
            )
            for template, language in self._lineage["templates"]
        ]
        return OperatorLineage(
            inputs=self._sql_inputs(facet["Dataset"]),
            outputs=outputs,
            run_facets={"wamm_campaign": run_facet},
        )

    def _sql_inputs(self, dataset: Any) -> list[Any]:
        """The tables the recipient query reads, named in its connection's namespace."""
        sql = getattr(self, "sql", None)
        conn_id = getattr(self, "sql_conn_id", None)
        if not sql or not conn_id:
            return []
        from openlineage.common.sql import parse

        from airflow_provider_wamm.hooks.recipients import sql_hook

        hook = sql_hook(conn_id)
        connection = hook.get_connection(conn_id)
        namespace = f"{connection.conn_type}://{connection.host or ''}"
        dialect = None
        try:
            info = hook.get_openlineage_database_info(connection)
            dialect = hook.get_openlineage_database_dialect(connection)
            if info is not None:
                namespace = f"{info.scheme}://{info.authority or ''}"
        except (AttributeError, NotImplementedError):
            pass
        meta = parse(str(sql), dialect=dialect if dialect != "generic" else None)
        if meta is None:
            return []
        return [dataset(namespace=namespace, name=table.qualified_name) for table in meta.in_tables]


@functools.cache
def _facet_types() -> dict[str, Any]:
    """The OpenLineage classes, and the ``wamm_campaign`` run facet (defined once, on first use)."""
    import attrs
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputStatisticsOutputDatasetFacet,
        RunFacet,
    )

    @attrs.define
    class WammCampaignRunFacet(RunFacet):
        """What a campaign run did: its id, counts and estimated cost."""

        campaign_id: str
        counts: dict[str, int]
        cost: dict[str, Any] | None = None

    return {
        "Dataset": Dataset,
        "OutputStatistics": OutputStatisticsOutputDatasetFacet,
        "campaign": WammCampaignRunFacet,
    }


__all__ = ["FACET_COUNTS", "LINEAGE_TEMPLATE_FIELDS", "CampaignReportLink", "LineageArguments"]
