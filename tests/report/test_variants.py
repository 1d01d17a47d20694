"""The experiment section of the report: each variant's funnel, rates and lift, and the holdout, in the
report and on the HTML page (drawn side by side in headless Chromium)."""

from __future__ import annotations

import math
import pathlib
import sys

import pytest

from airflow_provider_wamm.campaign.ledger import (
    ACCEPTED,
    SKIPPED,
    ClickEvent,
    Ledger,
    SendOutcome,
    StatusUpdate,
)
from airflow_provider_wamm.campaign.report import build_report
from airflow_provider_wamm.campaign.report_html import render_html
from tests.report.seed import T0, at

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Per variant: messages Meta took, read, clicked (of those read).
PLAN = {"A": (400, 120, 40), "B": (400, 200, 80)}
HOLDOUT = 90


def seed_experiment(ledger: Ledger, campaign_id: str = "ab") -> None:
    """Two variants with different read and click rates, and a holdout, through the ledger's API."""
    statuses, clicks = [], []
    for v, (sent, read, clicked) in PLAN.items():
        recipients = [f"49151{v}{i:07d}".replace("A", "1").replace("B", "2") for i in range(sent)]
        template = "spring_sale" if v == "A" else "spring_sale_v2"
        ledger.claim(
            campaign_id, recipients, attempt_id="a1", template_name=template, language="en_US", variant=v
        )
        ledger.record_results(
            campaign_id,
            [SendOutcome(r, ACCEPTED, wamid=f"w{r}", attempts=1, accepted_at=T0) for r in recipients],
            attempt_id="a1",
            now=T0,
        )
        for i, r in enumerate(recipients):
            status = "read" if i < read else "delivered"
            statuses.append(StatusUpdate(wamid=f"w{r}", status=status, timestamp=at(5), recipient_id=r))
            if i < clicked:
                clicks.append(ClickEvent(click_id=f"k{r}", timestamp=at(9), wamid=f"w{r}"))
    ledger.record_statuses(statuses)
    ledger.record_clicks(clicks)
    held = [
        SendOutcome(f"4915190{i:06d}", SKIPPED, error_details="holdout: experiment 'ab'")
        for i in range(HOLDOUT)
    ]
    ledger.record_unsent(campaign_id, held, attempt_id="a1", template_name="spring_sale", variant="holdout")


def test_report_has_each_variants_funnel_and_the_lift_against_the_baseline(ledger: Ledger) -> None:
    seed_experiment(ledger)
    report = build_report(ledger, "ab")
    a, b, holdout = report.variants
    assert (a["group"], b["group"], holdout["group"]) == ("A", "B", "holdout")
    assert (a["sent"], a["delivered"], a["read"], a["clicked"]) == (400, 400, 120, 40)
    assert (b["sent"], b["read"], b["clicked"]) == (400, 200, 80)
    assert holdout == {"group": "holdout", "held_back": True, "recipients": HOLDOUT}
    assert a["baseline"] and "read_lift" not in a
    # The lift by hand: 200/400 - 120/400 = 0.2, and its Newcombe interval brackets it.
    assert b["read_lift"] == pytest.approx(0.2)
    low, high = b["read_lift_interval"]
    assert 0.13 < low < 0.2 < high < 0.27
    assert b["read_lift_p_value"] < 1e-6
    se = math.sqrt(0.3 * 0.7 / 400 + 0.5 * 0.5 / 400)  # Wald, for scale: Newcombe is close to it here
    assert abs((high - low) / 2 - 1.96 * se) < 0.01
    assert b["click_lift"] == pytest.approx(0.1)


def experiment_page(html: str) -> str:
    """The report page cut down to its head and the experiment section (for the docs' screenshot)."""
    head = html[: html.index("<body>") + len("<body>")]
    start = html.index("<h2>Experiment</h2>")
    end = (
        html.index("<h2>Meta template analytics</h2>")
        if "template analytics" in html
        else html.index("</body>")
    )
    return f"{head}{html[start:end]}</body></html>"


def test_html_draws_the_variants_side_by_side(ledger: Ledger, tmp_path: pathlib.Path) -> None:
    seed_experiment(ledger)
    html = render_html(build_report(ledger, "ab"))
    assert "<h2>Experiment</h2>" in html and "Variant A" in html and "Variant B" in html
    assert "+20.0 pts" in html and "held back" in html and "baseline" in html
    sys.path.insert(0, str(ROOT / "demo"))
    from screenshot import find_chromium, read_png, screenshot

    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): screenshot not checked")
    page = tmp_path / "variants.html"
    page.write_text(experiment_page(html), encoding="utf-8")
    png = tmp_path / "variants.png"
    screenshot(page, png, width=960, height=560)
    width, _, rows = read_png(png)
    read_colour = (0x34, 0xB7, 0xF1)  # the 'Read' bar of each funnel

    def read_pixels(x0: int, x1: int) -> int:
        return sum(
            1
            for row in rows
            for x in range(x0, x1)
            if all(abs(row[3 * x + c] - read_colour[c]) <= 12 for c in range(3))
        )

    left, right = read_pixels(0, width // 2), read_pixels(width // 2, width)
    assert left > 500 and right > 500  # two funnels, side by side
    assert right > left  # B's read bar is wider: it was read more
