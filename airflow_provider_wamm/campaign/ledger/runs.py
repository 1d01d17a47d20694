"""The attempts of a campaign: the ``runs`` table, one row per attempt (one shard of a campaign).

A running attempt beats a heartbeat, so a later attempt can tell its live claims from those of an
attempt that died (see :meth:`Claims.mark_stale_claims
<airflow_provider_wamm.campaign.ledger.claims.Claims.mark_stale_claims>`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger.records import RunState, as_utc, naive_utc, utcnow
from airflow_provider_wamm.campaign.ledger.schema import LedgerTables
from airflow_provider_wamm.campaign.ledger.transactions import Transactions


class Runs:
    """Start, heartbeat, finish and list the attempts of campaigns.

    :param tables: the ledger's tables (``runs``).
    :param tx: the ledger's transaction runner.
    """

    def __init__(self, tables: LedgerTables, tx: Transactions) -> None:
        self.tables = tables
        self.tx = tx

    def start_run(
        self,
        campaign_id: str,
        attempt_id: str,
        *,
        shard_index: int = 0,
        shard_count: int = 1,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> None:
        """Record that an attempt of a campaign (one shard of it) started."""
        started = naive_utc(now or utcnow())
        row = {
            "attempt_id": attempt_id,
            "campaign_id": campaign_id,
            "shard_index": shard_index,
            "shard_count": shard_count,
            "dry_run": dry_run,
            "state": RunState.RUNNING,
            "started_at": started,
            "heartbeat_at": started,
        }

        def work(conn: Connection) -> None:
            conn.execute(self.tables.runs.insert(), row)

        self.tx.write(work)

    def heartbeat(self, attempt_id: str, *, now: datetime | None = None) -> None:
        """Record that a running attempt is alive (its claims are not abandoned)."""
        runs = self.tables.runs
        stmt = (
            runs.update()
            .where(runs.c.attempt_id == attempt_id)
            .values(heartbeat_at=naive_utc(now or utcnow()))
        )

        def work(conn: Connection) -> None:
            conn.execute(stmt)

        self.tx.write(work)

    def finish_run(
        self, attempt_id: str, *, state: str, summary: Mapping[str, Any], now: datetime | None = None
    ) -> None:
        """Record how an attempt ended (a :class:`RunState`: ``finished``, ``halted``, ``error``)."""
        runs = self.tables.runs
        stmt = (
            runs.update()
            .where(runs.c.attempt_id == attempt_id)
            .values(
                state=state,
                finished_at=naive_utc(now or utcnow()),
                summary=json.dumps(summary, sort_keys=True, default=str),
            )
        )

        def work(conn: Connection) -> None:
            conn.execute(stmt)

        self.tx.write(work)

    def list_runs(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every recorded attempt of a campaign, oldest first, with its summary decoded."""
        runs = self.tables.runs
        query = (
            sa.select(runs)
            .where(runs.c.campaign_id == campaign_id)
            .order_by(runs.c.started_at, runs.c.attempt_id)
        )
        with self.tx.read() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for item in rows:
            item["summary"] = json.loads(item["summary"]) if item["summary"] else None
            item["started_at"] = as_utc(item["started_at"])
            item["finished_at"] = as_utc(item["finished_at"])
        return rows


__all__ = ["Runs"]
