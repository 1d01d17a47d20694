"""The status part of the run log and the shared winner decision, on every ledger database."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import build_report
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
