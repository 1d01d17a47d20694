"""Meta's price fields in the report: ``pricing.type`` counts and ``pricing.cost`` summed by currency,
in the report, its SQL table (with the time-to-live columns) and its HTML page."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import Ledger, StatusUpdate
from airflow_provider_wamm.campaign.report import build_report, report_table, write_report_table
from airflow_provider_wamm.campaign.report_html import render_html
from airflow_provider_wamm.webhooks.parsing import parse_status
from tests.report.seed import at, seed_sends


def priced(wamid: str, status: str, **extra: Any) -> StatusUpdate:
    return StatusUpdate(
        wamid, status, at(5), recipient_id="4915100000000", pricing_category="marketing_lite", **extra
    )


def test_the_webhook_price_fields_are_read() -> None:
    update = parse_status(
        {
            "id": "w0",
            "status": "delivered",
            "timestamp": "1764507600",
            "recipient_id": "4915100000000",
            "recipient_user_id": "DE.1502576394655843",
            "pricing": {
                "billable": True,
                "pricing_model": "PMP",
                "type": "free_entry_point",
                "category": "marketing_lite",
                "cost": {"amount": "0.0123", "currency": "USD"},
            },
        }
    )
    assert update is not None
    assert (update.pricing_type, update.cost_amount, update.cost_currency) == (
        "free_entry_point",
        0.0123,
        "USD",
    )
    assert update.recipient_user_id == "DE.1502576394655843"
    for bad in ("-1", "nan", "1e999", True, [], "x" * 40):
        broken = parse_status(
            {
                "id": "w",
                "status": "delivered",
                "timestamp": "1",
                "pricing": {"cost": {"amount": bad, "currency": "USD"}},
            }
        )
        assert broken is not None and broken.cost_amount is None and broken.cost_currency is None


def test_the_report_attributes_metas_cost(ledger: Ledger, tmp_path: Any) -> None:
    seed_sends(ledger, "c")
    ledger.record_statuses(
        [
            priced("w0", "sent", pricing_type="regular"),
            priced("w0", "delivered", pricing_type="regular", cost_amount=0.05, cost_currency="USD"),
            priced("w0", "read", cost_amount=0.05, cost_currency="USD"),  # the same cost again
            priced("w1", "delivered", pricing_type="regular", cost_amount=0.0625, cost_currency="USD"),
            priced("w2", "delivered", pricing_type="free_entry_point"),
            priced("w9", "delivered", cost_amount=9.0, cost_currency="USD"),  # not this campaign's
        ]
    )
    report = build_report(ledger, "c", now=at(60))
    assert report.attributed_cost == {"USD": 0.1125} and report.costed == 2
    assert report.pricing_types == {"regular": 2, "free_entry_point": 1, "unknown": 4}
    assert "Meta's cost 0.1125 USD (2 priced messages)" in report.summary()
    page = render_html(report.to_dict())
    assert 'cost (USD)</td><td class="n">0.1125' in page and "pricing type free_entry_point" in page

    report.ttl_s, report.expired = 43200.0, 3
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'report.db'}")
    # A table written by an earlier version, without the columns added since, gets them.
    added = ("ttl_s", "expired", "meta_cost", "meta_cost_currency", "costed", "free_entry_point")
    columns = [
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in report_table("campaign_report").c
        if c.name not in added
    ]
    old = sa.Table("campaign_report", sa.MetaData(), *columns)
    old.create(engine)
    write_report_table(engine, "campaign_report", [report])
    with engine.connect() as conn:
        query = f"SELECT {', '.join(added)} FROM campaign_report WHERE row_key = 'summary'"
        row = conn.execute(sa.text(query)).one()
    assert tuple(row) == (43200.0, 3, 0.1125, "USD", 2, 1)
