"""Four shards of one campaign, sent at the same time from four processes into one ledger.

As Airflow's dynamic task mapping would run them (``shard_index`` 0..3 of ``shard_count=4``, one
``campaign_id``), on each database: the four processes race to create the tables, claim in parallel
and write their outcomes; every recipient must end with exactly one message and one ledger row, in
the shard its number hashes to.
"""

from __future__ import annotations

import collections
import json
import time

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.sharding import in_shard
from airflow_provider_wamm.sandbox import Sandbox
from tests.reliability.harness import audience, child_spec, spawn

SHARDS = 4
N = 1200


def test_four_shards_from_four_processes(backend: str, sandbox: Sandbox, db_url: str, prefix: str) -> None:
    sandbox.configure(mps_cap=None, seed=4, fault_transient_rate=0.03)
    crowd = audience(N, extras=False)
    campaign_id = f"shards-{backend}"
    started = time.monotonic()
    procs = [
        spawn(
            child_spec(
                sandbox,
                db_url,
                campaign_id,
                count=N,
                table_prefix=prefix,
                settings={
                    "shard_index": i,
                    "shard_count": SHARDS,
                    "max_messages_per_second": 500.0,
                    "concurrency": 4,
                    "batch_size": 50,
                },
            )
        )
        for i in range(SHARDS)
    ]
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.monotonic() - started

    per = sandbox.sends_per_recipient()
    assert max(per.values()) == 1, "a recipient got two messages"
    assert set(per) == crowd.valid, "a recipient got no message"
    assert sum(s["total"] for s in summaries) == N
    assert sum(s["accepted"] for s in summaries) == N
    assert all(s["unknown"] == 0 and s["failed"] == 0 for s in summaries)

    ledger = Ledger.from_url(db_url, table_prefix=prefix)
    try:
        rows = list(ledger.iter_sends(campaign_id))
        assert len(rows) == N
        wamids = {m.to: m.wamid for m in sandbox.messages}
        shards: collections.Counter[int] = collections.Counter()
        for row in rows:
            assert row["state"] == L.ACCEPTED
            assert row["wamid"] == wamids[row["recipient"]]
            assert in_shard(row["recipient"], row["shard_index"], SHARDS)
            shards[row["shard_index"]] += 1
        assert set(shards) == set(range(SHARDS))
        assert [shards[i] for i in range(SHARDS)] == [s["accepted"] for s in summaries]
        runs = ledger.list_runs(campaign_id)
        assert sorted(r["shard_index"] for r in runs) == list(range(SHARDS))
        assert all(r["state"] == "finished" for r in runs)
    finally:
        ledger.dispose()
    assert elapsed < 60
