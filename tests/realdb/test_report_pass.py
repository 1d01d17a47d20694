"""The report's one grouped pass gives the figures of the per-section queries, on every backend.

:func:`~airflow_provider_wamm.campaign.report_queries.message_outcomes` reads the delivery groups, the
cost rows and the latency buckets of a report in one query; :func:`delivery_groups`,
:func:`cost_section` and :func:`latency_stats` read each alone. Both must give the same report.
"""

from __future__ import annotations

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger, StatusUpdate
from airflow_provider_wamm.campaign.report import build_report
from airflow_provider_wamm.campaign.report_cost import cost_from_rows, cost_section
from airflow_provider_wamm.campaign.report_latency import time_to_deliver
from airflow_provider_wamm.campaign.report_queries import delivery_groups, message_outcomes
from tests.report.seed import EXPECTED, at, seed_sends, seed_statuses


def _priced(wamid: str, status: str, seconds: float, **extra: object) -> StatusUpdate:
    return StatusUpdate(
        wamid, status, at(seconds), recipient_id="4915100000000", pricing_category="marketing_lite", **extra
    )


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    seed_sends(ledger, "c1")
    seed_statuses(ledger)
    ledger.record_statuses(
        [
            _priced("w0", "read", 30, pricing_type="regular", cost_amount=0.05, cost_currency="USD"),
            _priced("w1", "read", 30, pricing_type="regular", cost_amount=0.0625, cost_currency="USD"),
            _priced("w6", "read", 30, pricing_type="free_entry_point"),
            _priced("w9", "delivered", 30, cost_amount=9.0, cost_currency="USD"),  # not this campaign's
        ]
    )
    return ledger


def test_one_pass_gives_the_section_queries_figures(seeded: Ledger) -> None:
    ids = ["c1"]
    with seeded.read() as conn:
        outcomes = message_outcomes(conn, seeded, ids)
        by_key = {(g.status, g.pricing_category, g.error_code): g for g in delivery_groups(conn, seeded, ids)}
        assert {(g.status, g.pricing_category, g.error_code): g for g in outcomes.groups} == by_key
        assert cost_from_rows(outcomes.costs) == cost_section(conn, seeded, ids)
        for limit in (0, 1000):  # percentiles from the buckets, then exact
            one_pass = time_to_deliver(conn, seeded, ids, limit, buckets=outcomes.buckets)
            assert one_pass == time_to_deliver(conn, seeded, ids, limit)


def test_the_report_figures_on_every_backend(seeded: Ledger) -> None:
    report = build_report(seeded, "c1")
    assert report.delivery == {"sent": 1, "delivered": 0, "read": 4, "failed": 1, "pending": 1}
    assert (report.delivered, report.read, report.delivery_failed) == (4, 4, 1)
    assert (report.clicked, report.clicks) == (EXPECTED["clicked"], EXPECTED["clicks"])
    assert report.routing == EXPECTED["routing"]
    assert report.attributed_cost == {"USD": 0.1125} and report.costed == 2
    assert report.pricing_types == {"regular": 2, "free_entry_point": 1, "unknown": 4}
    # delivered after 2, 4, 10 and 6 s (a later read keeps the delivery time)
    expected = {"count": 4, "median": 4.0, "p90": 10.0, "mean": 5.5, "max": 10.0}
    assert report.time_to_deliver_s == expected
    assert [(e["stage"], e["code"], e["count"]) for e in report.errors] == [
        ("delivery", 131049, 1),
        ("send", 131026, 1),
        ("send", 131050, 1),
    ]
    bucketed = build_report(seeded, "c1", exact_percentile_limit=0).time_to_deliver_s
    assert bucketed == expected
