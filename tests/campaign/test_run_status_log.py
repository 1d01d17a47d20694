"""The status part of the run log and the shared winner decision, on every ledger database."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import ACCEPTED, Ledger, SendOutcome, StatusUpdate, utcnow
from airflow_provider_wamm.campaign.report import build_report
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.run_log import RunLog
from airflow_provider_wamm.campaign.winner_decisions import WinnerDecisions
from tests.report.seed import seed_sends, seed_statuses


def test_status_changes_follow_the_report_on_each_database(ledger: Ledger) -> None:
    seed_sends(ledger, "c1")
    seed_statuses(ledger)  # w2 is read without a delivery, w4 only sent, w5 nothing yet
    log = RunLog(ledger.engine, table_prefix=ledger.table_prefix)
    log.write_status_changes(ledger, ["c1"])
    seed_statuses(ledger, settle=True)  # w4 delivered, w5 failed
    assert log.write_status_changes(ledger, ["c1"], batch_size=2) == 5 + 2 + 2
    rows = log.status_changes("c1")
    report = build_report(ledger, "c1")
    assert Counter(r["status"] for r in rows) == {
        "delivered": report.delivered,
        "read": report.read,
        "failed": report.delivery_failed,
    }
    by_key = {(r["wamid"], r["status"]): r for r in rows}
    assert ("w2", "delivered") in by_key and by_key[("w2", "delivered")]["status_at"] is not None
    assert ("w4", "sent") not in by_key and ("w4", "delivered") in by_key
    failed = by_key[("w5", "failed")]
    assert (failed["error_code"], failed["error_title"]) == (131049, "Meta chose not to deliver")
    assert failed["attempt_id"] == "att-1" and failed["recipient"] == "4915100000005"


def _send_as_shard(ledger: Ledger, index: int, recipients: list[str]) -> None:
    attempt = f"att-shard-{index}"
    ledger.claim("c2", recipients, attempt_id=attempt, shard_index=index)
    outcomes = [SendOutcome(r, ACCEPTED, wamid=f"m{r}", attempts=1) for r in recipients]
    ledger.record_results("c2", outcomes, attempt_id=attempt)


def test_two_shards_each_log_a_status_change_once(ledger: Ledger) -> None:
    shards = {0: ["4915100000010", "4915100000012"], 1: ["4915100000011", "4915100000013"]}
    for index, recipients in shards.items():
        _send_as_shard(ledger, index, recipients)
    everyone = [r for recipients in shards.values() for r in recipients]
    ledger.record_statuses(
        [
            StatusUpdate(wamid=f"m{r}", status="delivered", timestamp=utcnow(), recipient_id=r)
            for r in everyone
        ]
    )
    log = RunLog(ledger.engine, table_prefix=ledger.table_prefix)
    log.ensure_schema()
    inserted: list[str] = []

    def count_inserts(conn: Any, statement: Any, multiparams: Any, params: Any, options: Any) -> None:
        if getattr(statement, "is_insert", False) and statement.table is log.tables.status_changes:
            for rows in multiparams:
                inserted.extend(row["wamid"] for row in (rows if isinstance(rows, list) else [rows]))

    sa.event.listen(log.engine, "before_execute", count_inserts)
    try:
        written = {
            index: log.write(
                ledger,
                CampaignResult("c2", attempt_id=f"att-shard-{index}", shard_index=index, shard_count=2),
                outcome="finished",
            )["status_changes"]
            for index in shards
        }
    finally:
        sa.event.remove(log.engine, "before_execute", count_inserts)
    rows = log.status_changes("c2")
    assert sorted(r["recipient"] for r in rows) == sorted(everyone)
    assert written == {0: 2, 1: 2}, "each shard logs only the messages of its own shard"
    assert Counter(inserted) == {f"m{r}": 1 for r in everyone}, "each change is written by one shard"
    assert {r["recipient"]: r["shard_index"] for r in rows} == {
        r: index for index, recipients in shards.items() for r in recipients
    }


def test_shards_deciding_at_once_keep_one_decision(ledger: Ledger) -> None:
    decisions = WinnerDecisions(ledger)
    results: list[tuple[dict[str, Any], bool]] = []
    start = threading.Barrier(4)

    def shard(i: int) -> None:
        start.wait()
        results.append(
            decisions.shared(
                "c1",
                lambda: {"sent_to_rest": f"V{i}", "decision": "winner", "metric": "read"},
                decided_by=f"shard {i}",
            )
        )

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r[0]["sent_to_rest"] for r in results}) == 1
    assert sum(mine for _, mine in results) == 1
    [kept] = [d for d, mine in results if mine]
    assert decisions.recorded("c1") == kept and decisions.recorded("other") is None
