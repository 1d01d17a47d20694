"""Report numbers on a seeded ledger, the report table and the HTML page."""

from __future__ import annotations

import json
import pathlib
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import (
    CampaignReport,
    build_report,
    campaign_activity,
    parse_table_name,
    settle_state,
    summarise_template_analytics,
    write_report_table,
)
from airflow_provider_wamm.campaign.report_html import funnel_svg, render_html, write_html
from tests.report.seed import EXPECTED, LANGUAGE, T0, TEMPLATE, seed_sends, seed_statuses


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    seed_sends(ledger, "c1")
    seed_statuses(ledger)
    return ledger


def test_counts_on_a_seeded_ledger(seeded: Ledger) -> None:
    r = build_report(seeded, "c1")
    assert r.campaign_id == "c1" and r.campaign_ids == ["c1"]
    assert r.total == EXPECTED["total"]
    assert {k: v for k, v in r.sends.items() if v} == EXPECTED["sends"]
    assert set(r.sends) >= {
        "claimed",
        "accepted",
        "held",
        "paused",
        "failed",
        "skipped",
        "invalid",
        "unknown",
    }
    assert r.accepted == EXPECTED["accepted"]
    assert r.delivery == EXPECTED["delivery"]
    assert (r.delivered, r.read, r.delivery_failed) == (4, 2, 1)
    assert (r.clicked, r.clicks) == (2, 3)
    assert r.routing == EXPECTED["routing"]
    assert (r.settled, r.unsettled, r.timed_out) == (False, 2, False)
    assert (r.template_name, r.language) == (TEMPLATE, LANGUAGE)
    assert r.first_send_at == T0.isoformat() and r.last_send_at == T0.isoformat()


def test_rates(seeded: Ledger) -> None:
    rates = build_report(seeded, "c1").rates
    assert rates == {
        "delivery_rate": round(4 / 7, 4),
        "read_rate": 0.5,
        "click_rate": 0.5,
        "delivery_failure_rate": round(1 / 7, 4),
        "send_failure_rate": round(2 / 9, 4),
        "fallback_rate": 0.2,
    }


def test_errors_by_code_with_metas_titles_for_both_stages(seeded: Ledger) -> None:
    errors = build_report(seeded, "c1").errors
    assert [(e["stage"], e["code"], e["count"]) for e in errors] == [
        ("delivery", 131049, 1),
        ("send", 131026, 1),
        ("send", 131050, 1),
    ]
    titles = {e["code"]: e["title"] for e in errors}
    assert titles == {
        131049: "Meta chose not to deliver",
        131026: "Message undeliverable",
        131050: "User has stopped marketing messages",  # the table's title, not the stored "stopped"
    }
    assert next(e for e in errors if e["code"] == 131026)["details"] == "x"


def test_time_to_deliver_exact(seeded: Ledger) -> None:
    latency = build_report(seeded, "c1").time_to_deliver_s
    # sorted [2, 4, 6, 10]: nearest-rank median is the 2nd value, p90 the 4th
    assert latency["count"] == 4
    assert latency["median"] == pytest.approx(4.0, abs=0.01)
    assert latency["p90"] == pytest.approx(10.0, abs=0.01)
    assert latency["mean"] == pytest.approx(5.5, abs=0.01)
    assert latency["max"] == pytest.approx(10.0, abs=0.01)


def test_time_to_deliver_from_buckets_matches_within_resolution(seeded: Ledger) -> None:
    latency = build_report(seeded, "c1", exact_percentile_limit=0).time_to_deliver_s
    assert latency["median"] == pytest.approx(4.0, abs=0.11)
    assert latency["p90"] == pytest.approx(10.0, abs=0.11)
    assert latency["mean"] == pytest.approx(5.5, abs=0.01)


def test_empty_campaign(ledger: Ledger) -> None:
    r = build_report(ledger, "nothing")
    assert (r.total, r.accepted, r.settled, r.unsettled) == (0, 0, True, 0)
    assert r.rates["delivery_rate"] is None
    assert r.time_to_deliver_s == {"count": 0, "median": None, "p90": None, "mean": None, "max": None}
    assert r.first_send_at is None


def test_settled_campaign(seeded: Ledger) -> None:
    seed_statuses(seeded, settle=True)
    r = build_report(seeded, "c1")
    assert r.settled and r.unsettled == 0
    assert r.delivery == {"sent": 0, "delivered": 3, "read": 2, "failed": 2, "pending": 0}


def test_several_campaigns_report_as_one(seeded: Ledger) -> None:
    seed_sends(seeded, "c2", prefix="v")
    seed_statuses(seeded, prefix="v", settle=True)
    both = build_report(seeded, ["c1", "c2"])
    one, two = build_report(seeded, "c1"), build_report(seeded, "c2")
    assert both.campaign_ids == ["c1", "c2"] and both.campaign_id == "c1,c2"
    assert both.total == one.total + two.total
    assert both.delivered == one.delivered + two.delivered
    assert both.unsettled == one.unsettled + two.unsettled == 2
    assert both.time_to_deliver_s["count"] == one.time_to_deliver_s["count"] + two.time_to_deliver_s["count"]
    assert sum(e["count"] for e in both.errors) == sum(e["count"] for e in one.errors + two.errors)


def test_to_dict_is_json_safe_and_round_trips(seeded: Ledger) -> None:
    r = build_report(seeded, "c1", analytics={"clicked": 3, "cost": 1.5})
    data = json.loads(json.dumps(r.to_dict()))
    assert CampaignReport.from_dict(data) == r
    assert "4915100000" not in json.dumps(data)  # no recipient data in a report


def test_settle_state(seeded: Ledger) -> None:
    waiting = settle_state(seeded, "c1", settle_timeout=timedelta(hours=1), now=T0 + timedelta(minutes=5))
    assert (waiting.settled, waiting.timed_out, waiting.done, waiting.unsettled) == (False, False, False, 2)
    assert waiting.deadline == T0 + timedelta(hours=1)
    late = settle_state(
        seeded, "c1", settle_timeout=timedelta(hours=1), now=T0 + timedelta(hours=1, seconds=1)
    )
    assert late.timed_out and late.done and not late.settled
    forever = settle_state(seeded, "c1", settle_timeout=None, now=T0 + timedelta(days=365))
    assert not forever.done and forever.deadline is None
    seed_statuses(seeded, settle=True)
    assert settle_state(seeded, "c1", settle_timeout=timedelta(0)).settled


def test_claimed_rows_keep_a_campaign_unsettled(ledger: Ledger) -> None:
    ledger.claim("c3", ["491700000001"], attempt_id="a", now=T0)
    state = settle_state(ledger, "c3", settle_timeout=None)
    assert (state.settled, state.unsettled) == (False, 1)
    assert campaign_activity(ledger, "c3").states == {"claimed": 1}


# --- report table ---------------------------------------------------------------------------------


def test_report_table_written_twice_has_the_same_rows(seeded: Ledger, tmp_path: pathlib.Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'reports.db'}")
    report = build_report(seeded, "c1")
    assert write_report_table(engine, "campaign_reports", [report]) == 4
    first = _rows(engine)
    assert write_report_table(engine, "campaign_reports", [build_report(seeded, "c1")]) == 4
    second = _rows(engine)
    assert [r[:3] for r in first] == [r[:3] for r in second]
    assert len(second) == 4
    summary = next(r for r in second if r[1] == "summary")
    assert summary[3] == 11  # count = total recipients


def test_report_table_rerun_drops_stale_error_rows(seeded: Ledger, tmp_path: pathlib.Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'reports.db'}")
    report = build_report(seeded, "c1")
    write_report_table(engine, "r", [report])
    report.errors = report.errors[:1]
    write_report_table(engine, "r", [report])
    assert [r[1] for r in _rows(engine, "r")] == ["error:delivery:131049", "summary"]


def _rows(engine: sa.Engine, table: str = "campaign_reports") -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(f"SELECT campaign_id, row_key, kind, count, error_code FROM {table} ORDER BY row_key")
            )
        ]


@pytest.mark.parametrize("name", ["t", "schema_1.reports", "_x"])
def test_valid_table_names(name: str) -> None:
    parse_table_name(name)


@pytest.mark.parametrize(
    "name", ["", "a b", "x;drop table y", 'r"', "a.b.c", "1abc", "reports-2026", "a" * 64, "s.", ".t"]
)
def test_invalid_table_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid report table name"):
        parse_table_name(name)


# --- analytics ------------------------------------------------------------------------------------


def test_summarise_template_analytics() -> None:
    data = [
        {
            "granularity": "DAILY",
            "data_points": [
                {
                    "template_id": "1",
                    "sent": 10,
                    "delivered": 8,
                    "read": 5,
                    "clicked": [
                        {"type": "url_button", "count": 2},
                        {"type": "quick_reply_button", "count": 1},
                    ],
                    "cost": [
                        {"type": "amount_spent", "value": 0.8},
                        {"type": "cost_per_delivered", "value": 0.1},
                    ],
                },
                {"template_id": "1", "sent": "5", "delivered": 2, "read": None, "clicked": [{"count": "x"}]},
                "junk",
            ],
        },
        {"data_points": "junk"},
        "junk",
    ]
    summary = summarise_template_analytics(data)  # type: ignore[arg-type]
    assert summary["sent"] == 15 and summary["delivered"] == 10 and summary["read"] == 5
    assert summary["clicked"] == 3 and summary["clicks_by_type"] == {
        "url_button": 2,
        "quick_reply_button": 1,
        "unknown": 0,
    }
    assert summary["cost"] == pytest.approx(0.8)
    assert summary["cost_per_delivered"] == pytest.approx(0.08)
    assert summary["days"] == 2


# --- HTML -----------------------------------------------------------------------------------------


def test_html_page_is_self_contained_with_a_funnel(seeded: Ledger, tmp_path: pathlib.Path) -> None:
    report = build_report(seeded, "c1")
    path = write_html(tmp_path / "out" / "report.html", report)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 1 and "</svg>" in page
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "Meta chose not to deliver" in page and "131026" in page
    for label in ("Sent (accepted)", "Delivered", "Read", "Clicked"):
        assert label in page
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_html_escapes_everything(seeded: Ledger) -> None:
    report = build_report(seeded, "c1")
    report.errors.append(
        {"code": 1, "title": "<script>alert(1)</script>", "stage": "send", "count": 1, "details": '"&'}
    )
    report.campaign_id = "<b>x</b>"
    page = render_html(report.to_dict())
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>x</b>" not in page


def test_funnel_bars_are_proportional() -> None:
    svg = funnel_svg([("a", 100), ("b", 50), ("c", 0)], width=600)
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([0-9.]+)"', svg)]
    assert widths[0] == pytest.approx(2 * widths[1]) and widths[2] == 0
    assert "(50.0%)" in svg


def test_funnel_with_nothing_sent() -> None:
    svg = funnel_svg([("a", 0), ("b", 0)])
    assert svg.startswith("<svg") and "NaN" not in svg
