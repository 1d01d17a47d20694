"""Run logs in the warehouse: one change row per recipient a run handled, one summary row per run.

The ledger is the sender's working state (rows are rewritten as a campaign resumes); the run log is
its history, written once at the end of each run into two append-only tables with a stable schema
(documented column by column in the docs' run-log page), so dbt models and BI tools can read them:

- ``<prefix>run_changes``: what happened to each recipient in a run (sent, skipped with the reason,
  failed with Meta's code, title and details, invalid), keyed by ``(attempt_id, recipient)``;
- ``<prefix>run_summaries``: the run's counts, ratios, estimated cost and the change in volume
  against the previous run of the same task, keyed by ``attempt_id``;
- ``<prefix>run_status_changes``: what Meta's status webhooks said of each message afterwards
  (delivered, read, failed with Meta's code, title and details), keyed by ``(wamid, status)``
  (:mod:`~airflow_provider_wamm.campaign.run_status_log`).

Writing is idempotent (a row already there is left alone), streamed in batches from the ledger, and
works with the ledger's own database or any other SQLAlchemy-capable one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.ledger.records import naive_utc
from airflow_provider_wamm.campaign.ledger.schema import (
    DEFAULT_TABLE_PREFIX,
    datetime_type,
    error_columns,
    key_column,
    template_columns,
    upsert,
    validate_schema_name,
    validate_table_prefix,
)
from airflow_provider_wamm.campaign.ledger.transactions import Transactions
from airflow_provider_wamm.campaign.pricing import RateCard
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.run_status_log import (
    define_status_changes,
    iter_messages,
    logged_details,
    status_rows,
)

#: The kinds of change a ``run_changes`` row records (its ``change`` column).
CHANGES = ("sent", "skipped", "failed", "invalid", "unknown")
#: The counts of a run copied into columns of ``run_summaries`` (the rest is in ``summary_json``).
SUMMARY_COUNTS = (
    "total",
    "sent",
    "accepted",
    "held",
    "paused",
    "failed",
    "unknown",
    "skipped",
    "already_done",
    "frequency_capped",
    "holdout",
    "global_control",
    "rest",
    "suppressed",
    "invalid",
    "duplicates",
    "released",
)
_SENT_STATES = {"accepted": "sent", "held": "sent", "paused": "sent"}
_SKIP_PREFIXES = (
    ("suppressed", "suppressed"),
    ("frequency cap", "frequency_capped"),
    ("holdout", "holdout"),
    ("global_control", "global_control"),
    ("rest", "rest"),
)


@dataclass(frozen=True)
class RunLogTables:
    """The two run-log tables, in one :class:`sqlalchemy.MetaData`."""

    metadata: sa.MetaData
    changes: sa.Table
    """One row per (run, recipient)."""
    summaries: sa.Table
    """One row per run."""
    status_changes: sa.Table
    """One row per (message, status it reached)."""


def define_run_log_tables(
    table_prefix: str = DEFAULT_TABLE_PREFIX, schema: str | None = None
) -> RunLogTables:
    """Define (not create) ``<prefix>run_changes`` and ``<prefix>run_summaries``."""
    validate_table_prefix(table_prefix)
    validate_schema_name(schema)
    md = sa.MetaData(schema=schema)
    p, dt = table_prefix, datetime_type
    changes = sa.Table(
        f"{p}run_changes",
        md,
        key_column("attempt_id", primary_key=True),
        key_column("recipient", primary_key=True),
        key_column("campaign_id", nullable=False),
        sa.Column("shard_index", sa.Integer, nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("variant", sa.String(64)),
        *template_columns(),
        sa.Column("wamid", sa.String(191)),
        sa.Column("message_status", sa.String(64)),
        *error_columns(),
        sa.Column("attempts", sa.Integer),
        sa.Column("changed_at", dt(), nullable=False),
        sa.Column("logged_at", dt(), nullable=False),
        sa.Index(f"ix_{p}run_changes_campaign", "campaign_id", "change"),
    )
    summaries = sa.Table(
        f"{p}run_summaries",
        md,
        key_column("attempt_id", primary_key=True),
        key_column("campaign_id", nullable=False),
        sa.Column("dag_id", sa.String(250)),
        sa.Column("task_id", sa.String(250)),
        sa.Column("run_id", sa.String(250)),
        sa.Column("map_index", sa.Integer),
        sa.Column("try_number", sa.Integer),
        sa.Column("shard_index", sa.Integer, nullable=False),
        sa.Column("shard_count", sa.Integer, nullable=False),
        *template_columns(),
        sa.Column("outcome", sa.String(16), nullable=False),
        *(sa.Column(name, sa.Integer, nullable=False) for name in SUMMARY_COUNTS),
        sa.Column("invalid_ratio", sa.Float),
        sa.Column("failure_ratio", sa.Float),
        sa.Column("estimated_cost", sa.Float),
        sa.Column("currency", sa.String(8)),
        sa.Column("previous_total", sa.Integer),
        sa.Column("volume_change", sa.Float),
        sa.Column("elapsed_s", sa.Float),
        sa.Column("summary_json", sa.Text),
        sa.Column("logged_at", dt(), nullable=False),
        sa.Index(f"ix_{p}run_summaries_task", "dag_id", "task_id", "logged_at"),
        sa.Index(f"ix_{p}run_summaries_campaign", "campaign_id"),
    )
    return RunLogTables(md, changes, summaries, define_status_changes(md, p))


@dataclass(frozen=True)
class TaskRef:
    """The Airflow task instance a run belongs to (all optional: the engine runs without Airflow)."""

    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None


def change_of(row: Mapping[str, Any]) -> tuple[str, str | None]:
    """The ``change`` and ``reason`` of a ledger ``sends`` row."""
    state = str(row["state"])
    details = str(row.get("error_details") or "")
    if state in _SENT_STATES:
        return "sent", None
    if state == "skipped":
        reason = next((r for prefix, r in _SKIP_PREFIXES if details.startswith(prefix)), "other")
        return "skipped", reason
    if state == "failed":
        code = row.get("error_code")
        return "failed", None if code is None else str(code)
    if state == "invalid":
        return "invalid", details.split(": ", 1)[-1][:64] or None
    return "unknown", None


def sent_cost(ledger: Ledger, result: CampaignResult, card: RateCard | None = None) -> dict[str, Any]:
    """What the messages this run sent cost at most (every one assumed delivered): the run's own
    pricing when it had a budget, else the shipped rate card (or ``card``) in force today."""
    if result.cost is not None:
        return {"total_cost": result.cost["total_cost"], "currency": result.cost["currency"]}
    card = card or RateCard.shipped()
    sent = (
        row["recipient"]
        for row in ledger.iter_sends(result.campaign_id, states=tuple(_SENT_STATES))
        if row["attempt_id"] == result.attempt_id
    )
    estimate = card.estimate(sent)
    return {"total_cost": float(estimate.total_cost), "currency": estimate.currency}


def ratios(result: Mapping[str, Any]) -> dict[str, float | None]:
    """``invalid_ratio`` (invalid / total) and ``failure_ratio`` (failed / attempted) of a run."""
    total = int(result.get("total") or 0)
    attempted = int(result.get("sent") or 0) + int(result.get("failed") or 0)
    return {
        "invalid_ratio": int(result.get("invalid") or 0) / total if total else None,
        "failure_ratio": int(result.get("failed") or 0) / attempted if attempted else None,
    }


class RunLog:
    """Writes run logs into a database (the ledger's own, or any other).

    :param engine: where the tables live.
    :param table_prefix: prefix of the two tables (the ledger's by default).
    :param schema: database schema of the tables (``None``: the default one).
    """

    def __init__(
        self, engine: Engine, *, table_prefix: str = DEFAULT_TABLE_PREFIX, schema: str | None = None
    ) -> None:
        self.engine = engine
        self.tables = define_run_log_tables(table_prefix, schema)

    def ensure_schema(self) -> None:
        """Create the tables if missing, and add columns a newer version defines (retried when shards
        ending together race to create them)."""
        Transactions(self.engine, self.tables.metadata).ensure_schema()

    def write(
        self,
        ledger: Ledger,
        result: CampaignResult,
        *,
        outcome: str,
        task: TaskRef | None = None,
        cost: Mapping[str, Any] | None = None,
        batch_size: int = 1000,
    ) -> dict[str, Any]:
        """Write the run's change rows (from the ledger rows it wrote last), its summary row and the
        status changes of the messages its shard owns.

        :param outcome: how the run ended (``finished``, ``halted``, ``stopped``).
        :param cost: ``{"total_cost": ..., "currency": ...}`` of the messages sent, if estimated.
        :returns: ``changes`` (rows written), ``status_changes`` (the status-change rows of this
            shard's messages), ``previous_total`` and ``volume_change``.
        """
        self.ensure_schema()
        logged_at = naive_utc(utcnow())
        written = 0
        for batch in self._change_rows(ledger, result, logged_at, batch_size):
            with self.engine.begin() as conn:
                upsert(conn, self.tables.changes, batch, key=("attempt_id", "recipient"))
            written += len(batch)
        task = task or TaskRef()
        previous = self.previous_total(task, result.campaign_id)
        volume = (result.total - previous) / previous if previous else None
        row = self._summary_row(result, outcome, task, cost, logged_at)
        row |= {"previous_total": previous, "volume_change": volume}
        with self.engine.begin() as conn:
            upsert(conn, self.tables.summaries, [row], key=("attempt_id",))
        statuses = self.write_status_changes(
            ledger,
            [result.campaign_id],
            batch_size=batch_size,
            shard=(result.shard_index, result.shard_count),
        )
        return {
            "changes": written,
            "status_changes": statuses,
            "previous_total": previous,
            "volume_change": volume,
        }

    def write_status_changes(
        self,
        ledger: Ledger,
        campaign_ids: Sequence[str],
        *,
        batch_size: int = 1000,
        shard: tuple[int, int] | None = None,
    ) -> int:
        """Log the status changes the ledger holds for the campaigns' messages (those already logged are
        kept); returns how many those messages have in all (per status, the report's counts).

        :param shard: ``(shard_index, shard_count)`` of a send task that is one shard of the campaign:
            only the messages that shard owns are read and logged (and counted), so each message is
            logged by one shard, not by every one. ``None`` (the sensor): the whole campaigns.
        """
        self.ensure_schema()
        logged_at = naive_utc(utcnow())
        assert logged_at is not None
        total, batch = 0, []
        for message in iter_messages(ledger, campaign_ids, batch_size=batch_size, shard=shard):
            batch += status_rows(message, logged_at)
            if len(batch) >= batch_size:
                total += self._upsert_status_changes(batch)
                batch = []
        return total + self._upsert_status_changes(batch)

    def _upsert_status_changes(self, rows: list[dict[str, Any]]) -> int:
        if rows:
            with self.engine.begin() as conn:
                upsert(conn, self.tables.status_changes, rows, key=("wamid", "status"))
        return len(rows)

    def _change_rows(
        self, ledger: Ledger, result: CampaignResult, logged_at: datetime | None, batch_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for row in ledger.iter_sends(result.campaign_id, batch_size=batch_size):
            if row["attempt_id"] != result.attempt_id or row["state"] == "claimed":
                continue
            change, reason = change_of(row)
            batch.append(
                {
                    "attempt_id": result.attempt_id,
                    "recipient": row["recipient"],
                    "campaign_id": result.campaign_id,
                    "shard_index": row.get("shard_index") or 0,
                    "change": change,
                    "state": row["state"],
                    "reason": reason,
                    "variant": row.get("variant"),
                    "template_name": row.get("template_name"),
                    "language": row.get("language"),
                    "wamid": row.get("wamid"),
                    "message_status": row.get("message_status"),
                    "error_code": row.get("error_code"),
                    "error_title": row.get("error_title"),
                    "error_details": logged_details(row.get("error_details")),
                    "attempts": row.get("attempts"),
                    "changed_at": row.get("updated_at") or logged_at,
                    "logged_at": logged_at,
                }
            )
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _summary_row(
        self,
        result: CampaignResult,
        outcome: str,
        task: TaskRef,
        cost: Mapping[str, Any] | None,
        logged_at: datetime | None,
    ) -> dict[str, Any]:
        summary = result.to_dict()
        return {
            "attempt_id": result.attempt_id,
            "campaign_id": result.campaign_id,
            "dag_id": task.dag_id,
            "task_id": task.task_id,
            "run_id": task.run_id,
            "map_index": task.map_index,
            "try_number": task.try_number,
            "shard_index": result.shard_index,
            "shard_count": result.shard_count,
            "template_name": result.template_name,
            "language": result.language,
            "outcome": outcome,
            **{name: int(summary[name]) for name in SUMMARY_COUNTS},
            **ratios(summary),
            "estimated_cost": None if cost is None else float(cost["total_cost"]),
            "currency": None if cost is None else cost.get("currency"),
            "elapsed_s": result.elapsed_s,
            "summary_json": json.dumps(summary, sort_keys=True, default=str),
            "logged_at": logged_at,
        }

    def previous_total(self, task: TaskRef, campaign_id: str) -> int | None:
        """``total`` of the latest earlier run of the same task in another campaign (another run),
        summed over its shards; ``None`` without one (or without a task to compare)."""
        if task.dag_id is None or task.task_id is None:
            return None
        s = self.tables.summaries.c
        where = sa.and_(s.dag_id == task.dag_id, s.task_id == task.task_id, s.campaign_id != campaign_id)
        with self.engine.connect() as conn:
            last = conn.execute(
                sa.select(s.campaign_id).where(where).order_by(s.logged_at.desc()).limit(1)
            ).scalar()
            if last is None:
                return None
            totals = conn.execute(
                sa.select(s.shard_index, sa.func.max(s.total))
                .where(where, s.campaign_id == last)
                .group_by(s.shard_index)
            ).all()
        return sum(int(t or 0) for _, t in totals)

    def status_changes(self, campaign_id: str) -> list[dict[str, Any]]:
        """The status-change rows of a campaign (for tests and small campaigns)."""
        c = self.tables.status_changes
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c).where(c.c.campaign_id == campaign_id)).mappings().all()
        return [dict(r) for r in rows]

    def changes(self, attempt_id: str) -> list[dict[str, Any]]:
        """The change rows of one run (for tests and small runs; query the table for big ones)."""
        c = self.tables.changes
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c).where(c.c.attempt_id == attempt_id)).mappings().all()
        return [dict(r) for r in rows]

    def summaries(self, campaign_id: str) -> list[dict[str, Any]]:
        """The summary rows of a campaign's runs, oldest first."""
        c = self.tables.summaries
        with self.engine.connect() as conn:
            query = sa.select(c).where(c.c.campaign_id == campaign_id).order_by(c.c.logged_at)
            return [dict(r) for r in conn.execute(query).mappings().all()]


__all__ = [
    "CHANGES",
    "SUMMARY_COUNTS",
    "RunLog",
    "RunLogTables",
    "TaskRef",
    "change_of",
    "define_run_log_tables",
    "ratios",
    "sent_cost",
]
