"""A million-send campaign is reported from SQL aggregates in a few seconds (slow: seeding takes a while)."""

from __future__ import annotations

import pathlib
import random
import time
from datetime import datetime, timedelta

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import build_report, settle_state

N = 1_000_000


@pytest.mark.slow
def test_report_of_a_million_sends(tmp_path: pathlib.Path) -> None:
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'big.db'}")
    ledger.ensure_schema()
    base = datetime(2026, 1, 1)
    rnd = random.Random(7)
    delivered = 0
    with ledger.engine.begin() as conn:
        for start in range(0, N, 50_000):
            sends, statuses = [], []
            for i in range(start, start + 50_000):
                accepted = base + timedelta(milliseconds=i)
                state = "accepted" if i % 20 else "failed"
                wamid = f"wamid.{i}" if state == "accepted" else None
                sends.append(
                    {
                        "campaign_id": "big",
                        "recipient": f"49{i:011d}",
                        "state": state,
                        "attempt_id": "a",
                        "shard_index": i % 4,
                        "template_name": "promo",
                        "language": "en_US",
                        "wamid": wamid,
                        "error_code": 131026 if state == "failed" else None,
                        "attempts": 1,
                        "claimed_at": accepted,
                        "accepted_at": accepted if wamid else None,
                        "updated_at": accepted,
                    }
                )
                if wamid:
                    at = accepted + timedelta(seconds=rnd.expovariate(1 / 5))
                    delivered += 1
                    statuses.append(
                        {
                            "wamid": wamid,
                            "status": "delivered",
                            "status_rank": 2,
                            "status_at": at,
                            "sent_at": accepted,
                            "delivered_at": at,
                            "pricing_category": "marketing_lite",
                            "click_count": 0,
                            "updated_at": at,
                        }
                    )
            conn.execute(ledger.sends.insert(), sends)
            conn.execute(ledger.statuses.insert(), statuses)
    started = time.perf_counter()
    report = build_report(ledger, "big")
    elapsed = time.perf_counter() - started
    assert report.total == N and report.delivered == delivered and report.settled
    assert report.time_to_deliver_s["count"] == delivered
    # exponential with mean 5 s: median 5 ln 2 = 3.47 s, p90 5 ln 10 = 11.5 s (0.1 s buckets)
    assert report.time_to_deliver_s["median"] == pytest.approx(3.47, abs=0.15)
    assert report.time_to_deliver_s["p90"] == pytest.approx(11.5, abs=0.3)
    assert elapsed < 15, f"report took {elapsed:.1f} s"
    started = time.perf_counter()
    assert settle_state(ledger, "big", settle_timeout=timedelta(hours=1)).settled
    assert time.perf_counter() - started < 8
    ledger.dispose()
