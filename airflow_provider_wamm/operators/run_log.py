"""The operator's ``run_log`` argument: write each run's change log and summary to a database.

A mix-in of :class:`~airflow_provider_wamm.operators.marketing.MarketingMessageOperator`: at the end of
every run that wrote to the ledger (finished, halted or stopped) it writes the run's change rows and
summary row (:mod:`airflow_provider_wamm.campaign.run_log`) into the ledger's database or another
one, and adds what it wrote to the task's counts (``run_log``). A failure to write is logged, never
fails a campaign that was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_wamm.campaign.ledger import DEFAULT_TABLE_PREFIX, Ledger
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.run_log import RunLog, TaskRef, sent_cost
from airflow_provider_wamm.hooks.ledger import get_ledger


class RunLogArguments(BaseOperator):
    """Run-log arguments of the marketing operator (see the run-log page of the docs).

    :param run_log: Write a change row per recipient and a summary row per run: ``True`` into the
        ledger's database, or the id of another connection (postgres, mysql, sqlite) to write there.
        ``False`` (default) writes nothing.
    :param run_log_table_prefix: Prefix of the tables ``<prefix>run_changes`` and
        ``<prefix>run_summaries`` (default: ``wamm_``).
    """

    def __init__(
        self,
        *,
        run_log: bool | str = False,
        run_log_table_prefix: str = DEFAULT_TABLE_PREFIX,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(run_log, (bool, str)):
            raise ValueError(f"run_log must be True, False or a connection id, got {run_log!r}")
        self.run_log = run_log
        self.run_log_table_prefix = run_log_table_prefix

    def write_run_log(
        self, context: Mapping[str, Any], ledger: Ledger, result: CampaignResult, outcome: str
    ) -> dict[str, Any]:
        """Write the run's log (when ``run_log`` is set and the run wrote to the ledger); returns
        ``{"run_log": {...}}`` to add to the counts, or ``{}``."""
        if self.run_log is False or self.run_log == "" or result.dry_run:
            return {}
        target = ledger if self.run_log is True else get_ledger(str(self.run_log))
        try:
            log = RunLog(target.engine, table_prefix=self.run_log_table_prefix)
            cost = sent_cost(ledger, result)
            written = log.write(ledger, result, outcome=outcome, task=_task_ref(context), cost=cost)
        except Exception as exc:  # the messages are sent: a log that cannot be written must not fail them
            self.log.warning("run log of campaign %s not written: %s", result.campaign_id, exc)
            return {"run_log": {"error": str(exc)[:500]}}
        finally:
            if target is not ledger:
                target.dispose()
        self.log.info(
            "run log: %d change rows written to %s (previous run's total: %s)",
            written["changes"],
            "the ledger database" if self.run_log is True else self.run_log,
            written["previous_total"],
        )
        return {"run_log": written | {"cost": cost}}


def write_status_log(
    ledger: Ledger, campaign_ids: list[str], run_log: bool | str, table_prefix: str, log: Any
) -> dict[str, Any]:
    """Log the campaigns' status changes (delivered, read, failed) into the run log ``run_log`` names
    (``True``: the ledger's database); returns ``{"run_log": {...}}`` to add to a report, or ``{}``."""
    if run_log is False or run_log == "":
        return {}
    target = ledger if run_log is True else get_ledger(str(run_log))
    try:
        written = RunLog(target.engine, table_prefix=table_prefix).write_status_changes(ledger, campaign_ids)
    except Exception as exc:  # the report is made: a log that cannot be written must not fail it
        log.warning("status changes of %s not logged: %s", ", ".join(campaign_ids), exc)
        return {"run_log": {"error": str(exc)[:500]}}
    finally:
        if target is not ledger:
            target.dispose()
    log.info("run log: %d status changes of %s logged", written, ", ".join(campaign_ids))
    return {"run_log": {"status_changes": written}}


def _task_ref(context: Mapping[str, Any]) -> TaskRef:
    ti = context.get("ti")
    try_number = getattr(ti, "try_number", None)
    map_index = getattr(ti, "map_index", None)
    return TaskRef(
        dag_id=getattr(ti, "dag_id", None),
        task_id=getattr(ti, "task_id", None),
        run_id=context.get("run_id"),
        map_index=map_index if isinstance(map_index, int) else None,
        try_number=try_number if isinstance(try_number, int) else None,
    )


__all__ = ["RunLogArguments", "write_status_log"]
