"""The attempts of a campaign: the ``runs`` table, one row per attempt (one shard of a campaign).

A running attempt beats a heartbeat, so a later attempt can tell its live claims from those of an
attempt that is over (see :class:`Liveness` and :meth:`Claims.mark_stale_claims
<airflow_provider_wamm.campaign.ledger.claims.Claims.mark_stale_claims>`). An attempt may name the
task instance it belongs to (an opaque ``owner``) and its ``try_number``: a newer try of the same owner
knows at once that an older try whose heartbeat stopped is over.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger.records import RunState, as_utc, naive_utc, utcnow
from airflow_provider_wamm.campaign.ledger.schema import LedgerTables
from airflow_provider_wamm.campaign.ledger.transactions import Transactions


@dataclass(frozen=True, slots=True)
class Liveness:
    """Which attempts of a campaign count as alive, as one attempt sees them.

    An attempt is alive while its run row is ``running`` and its heartbeat is younger than
    ``live_within`` (``None``: no attempt is alive). An older try of the same ``owner`` (a lower
    ``try_number``) is over sooner: once its heartbeat is older than ``older_try_live_within`` (a
    scheduler starts a new try only when the old one was stopped, so a short margin covers its last
    seconds). Attempts without an owner only follow the first rule.
    """

    live_within: timedelta | None
    """Heartbeat age up to which a running attempt is alive."""
    owner: str | None = None
    """The task instance the looking attempt belongs to."""
    try_number: int | None = None
    """Its try; older tries of ``owner`` are judged by ``older_try_live_within``."""
    older_try_live_within: timedelta | None = None
    """Heartbeat age up to which an older try of ``owner`` is alive."""


def live_attempts(runs: sa.Table, campaign_id: str, liveness: Liveness, now: datetime) -> sa.Select[Any]:
    """The ids of the attempts of ``campaign_id`` that are alive by ``liveness`` at ``now``."""
    r = runs.c
    beat = sa.func.coalesce(r.heartbeat_at, r.started_at)
    query = sa.select(r.attempt_id).where(r.campaign_id == campaign_id, r.state == RunState.RUNNING)
    if liveness.live_within is None:
        return query.where(sa.false())
    query = query.where(beat >= naive_utc(now - liveness.live_within))
    owner, try_number, older_within = liveness.owner, liveness.try_number, liveness.older_try_live_within
    if owner is None or try_number is None or older_within is None:
        return query
    older_try_over = sa.and_(
        r.owner.is_not(None),  # NULL owners never match (a NOT over a NULL would drop them too)
        r.try_number.is_not(None),
        r.owner == owner,
        r.try_number < try_number,
        beat < naive_utc(now - older_within),
    )
    return query.where(sa.not_(older_try_over))


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
        owner: str | None = None,
        try_number: int | None = None,
    ) -> None:
        """Record that an attempt of a campaign (one shard of it) started.

        :param owner: the task instance the attempt belongs to, if any (an opaque name such as
            ``dag_id.task_id.run_id.map_index``): a newer try of it takes over the older try's claims
            at once when that try stopped beating its heartbeat.
        :param try_number: which try of ``owner`` this is.
        """
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
            "owner": owner,
            "try_number": try_number,
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
        """Record how an attempt ended (``finished``, ``halted``, ``error``, ``killed``) with its counts."""
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


__all__ = ["Liveness", "Runs", "live_attempts"]
