"""One winner decision per campaign, shared by all its shards.

Mapped shards of a campaign each defer after sending their part of the test slice and resume on their
own. Were each to pick the winner from the statuses it sees when it resumes, two shards could send the
rest different variants. So the first shard to decide records its decision in the ledger's database
(``<prefix>experiment_decisions``, one row per campaign, inserted only if absent) and every shard,
itself included, sends the rest what that row says. The decision reads the test slice of every shard
(the readout counts the campaign's sends, whatever shard sent them) and names the shards it read.

The table lives beside the ledger's own (same database, prefix and schema) and is created on first use.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.ledger.records import RunState, as_utc, naive_utc
from airflow_provider_wamm.campaign.ledger.schema import datetime_type, key_type, upsert
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

#: A running shard whose heartbeat is older than this is taken for dead (it sends no more test messages).
SHARD_ALIVE_WITHIN = timedelta(minutes=5)


def define_decisions_table(metadata: sa.MetaData, table_prefix: str) -> sa.Table:
    """``<prefix>experiment_decisions``: the winner decision of each campaign (the prefix is validated
    by the ledger that owns it)."""
    return sa.Table(
        f"{table_prefix}experiment_decisions",
        metadata,
        sa.Column("campaign_id", key_type(255), primary_key=True),
        sa.Column("sent_to_rest", sa.String(64)),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_at", datetime_type(), nullable=False),
        sa.Column("decision_json", sa.Text, nullable=False),
    )


class WinnerDecisions:
    """Reads and records campaigns' winner decisions in the ledger's database.

    :param ledger: the campaign's ledger (its engine, table prefix and schema are used).
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.metadata = sa.MetaData(schema=ledger.schema)
        self.table = define_decisions_table(self.metadata, ledger.table_prefix)
        # Created on first use, retried when shards starting together race to create it.
        self._tx = Transactions(ledger.engine, self.metadata)

    def recorded(self, campaign_id: str) -> dict[str, Any] | None:
        """The campaign's recorded decision (the dict :meth:`record` stored), or ``None``."""
        t = self.table.c
        with self._tx.read() as conn:
            stored = conn.execute(sa.select(t.decision_json).where(t.campaign_id == campaign_id)).scalar()
        return None if stored is None else dict(json.loads(stored))

    def record(
        self, campaign_id: str, decision: Mapping[str, Any], *, decided_by: str | None = None
    ) -> dict[str, Any]:
        """Record ``decision`` unless the campaign has one already; returns the one that holds."""
        row = {
            "campaign_id": campaign_id,
            "sent_to_rest": decision.get("sent_to_rest"),
            "decision": str(decision.get("decision")),
            "metric": str(decision.get("metric")),
            "decided_by": decided_by,
            "decided_at": naive_utc(utcnow()),
            "decision_json": json.dumps(dict(decision), sort_keys=True, default=str),
        }
        self._tx.write(lambda conn: upsert(conn, self.table, [row], key=("campaign_id",)))
        held = self.recorded(campaign_id)
        assert held is not None  # inserted above, or there before
        return held

    def shared(
        self, campaign_id: str, decide: Callable[[], Mapping[str, Any]], *, decided_by: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """The campaign's decision: the recorded one, else ``decide()`` recorded now (unless another
        shard recorded one meanwhile). Returns the decision and whether this call's was the one kept."""
        held = self.recorded(campaign_id)
        if held is not None:
            return held, False
        mine = dict(decide()) | {"decided_by": decided_by, "decision_id": uuid.uuid4().hex}
        held = self.record(campaign_id, mine, decided_by=decided_by)
        return held, held.get("decision_id") == mine["decision_id"]


def shards_still_sending(
    ledger: Ledger, campaign_id: str, *, alive_within: timedelta = SHARD_ALIVE_WITHIN
) -> list[int]:
    """The shards of the campaign with a run still going (a live heartbeat): their test slice is not all
    sent yet, so a decision now would not read it."""
    now = utcnow()
    busy: set[int] = set()
    for run in ledger.list_runs(campaign_id):
        if run["state"] != RunState.RUNNING or run.get("dry_run"):
            continue
        beat = as_utc(run.get("heartbeat_at")) or run["started_at"]
        if beat is not None and now - beat <= alive_within:
            busy.add(int(run["shard_index"]))
    return sorted(busy)


__all__ = ["SHARD_ALIVE_WITHIN", "WinnerDecisions", "define_decisions_table", "shards_still_sending"]
