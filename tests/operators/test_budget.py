"""Cost options of the operator: the dry run's estimate by market, ``rates_file`` and ``max_cost``."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import make_context, rows
from tests.operators.test_marketing_operator import operator

#: Eight markets, 1,250 numbers each, and each market's marketing rate on the card effective
#: 2026-10-01 (copied by hand from data/marketing_rates.csv).
MARKETS: dict[str, tuple[str, Decimal]] = {
    "Germany": ("+49 151 {:08d}", Decimal("0.1365")),
    "France": ("+33 6 {:08d}", Decimal("0.0859")),
    "India": ("+91 98{:08d}", Decimal("0.0118")),
    "Brazil": ("+55 11 9{:08d}", Decimal("0.0625")),
    "United Kingdom": ("+44 7911 {:06d}", Decimal("0.0635")),
    "Mexico": ("+52 55 {:08d}", Decimal("0.0397")),
    "Indonesia": ("+62 812 {:08d}", Decimal("0.0411")),
    # Jamaica shares +1 with the US: Meta bills its area code 876 as Rest of Latin America.
    "Rest of Latin America": ("+1 876 512 {:04d}", Decimal("0.0740")),
}
PER_MARKET = 1250


def audience() -> list[dict[str, Any]]:
    """10,000 recipients across the eight markets, plus 40 US numbers (never delivered, never charged)."""
    people = [
        {"phone": pattern.format(i), "name": "Ana", "discount": "20%", "slug": "s"}
        for pattern, _rate in MARKETS.values()
        for i in range(PER_MARKET)
    ]
    us = [{"phone": f"+1 212 555 {i:04d}", "name": "Al", "discount": "5%", "slug": "u"} for i in range(40)]
    return people + us


def test_dry_run_estimate_of_ten_thousand_recipients_equals_the_hand_computed_total(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    # 1,250 x (0.1365 + 0.0859 + 0.0118 + 0.0625 + 0.0635 + 0.0397 + 0.0411 + 0.0740) = 1,250 x 0.5150
    hand_computed = Decimal("643.75")
    assert sum(PER_MARKET * rate for _p, rate in MARKETS.values()) == hand_computed

    result = operator(recipients=audience(), dry_run=True, batch_size=1000).execute(make_context())

    assert result["would_send"] == 10_000  # US numbers are skipped at intake (market_not_supported)
    cost = result["cost"]
    assert cost["currency"] == "USD" and cost["effective_from"] == "2026-10-01"
    assert Decimal(str(cost["total_cost"])) == hand_computed
    assert cost["priced_recipients"] == 10_000
    by_market = {m["market"]: (m["recipients"], Decimal(str(m["rate"]))) for m in cost["markets"]}
    assert by_market == {name: (PER_MARKET, rate) for name, (_p, rate) in MARKETS.items()}
    assert sandbox.counts()["requests"] == 0


def test_the_estimate_is_of_the_reach_after_suppressions(
    wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    from airflow_provider_wamm.campaign.ledger import Suppression

    ledger.ensure_schema()
    ledger.add_suppressions([Suppression(f"49151{i:08d}", "manual") for i in range(10)])
    result = operator(recipients=rows(30), dry_run=True).execute(make_context())
    assert result["suppressed"] == 10 and result["would_send"] == 20
    assert Decimal(str(result["cost"]["total_cost"])) == 20 * Decimal("0.1365")


def test_rates_file_prices_with_the_user_s_card(
    tmp_path: pathlib.Path, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    card = tmp_path / "rates.csv"
    card.write_text(
        "Cost per message in EUR, effective September 1, 2026\nMarket,Currency,Marketing\nGermany,EUR,0.2\n"
    )
    result = operator(recipients=rows(7), dry_run=True, rates_file=str(card)).execute(make_context())
    assert result["cost"]["currency"] == "EUR"
    assert Decimal(str(result["cost"]["total_cost"])) == Decimal("1.4")


def test_max_cost_halts_within_the_budget_and_a_later_run_continues(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    rate = Decimal("0.1365")  # Germany
    op = operator(recipients=rows(300), max_cost=10, batch_size=50, concurrency=8)
    result = op.execute(make_context())

    affordable = int(Decimal(10) / rate)  # 73 messages: 9.9645 USD
    assert result["budget_reached"] is True
    assert result["accepted"] == affordable == len(sandbox.messages)
    # What was read and not sent is released; the rest of the input is not even read.
    assert result["released"] + result["accepted"] == result["total"] < 300
    budget = result["cost"]["budget"]
    assert budget["spent"] <= 10 and Decimal(str(budget["spent"])) == affordable * rate
    assert send_counts(ledger, result["campaign_id"]) == {"accepted": affordable}

    again = operator(recipients=rows(300), max_cost=100, batch_size=50).execute(make_context())
    assert again["budget_reached"] is False
    assert again["accepted"] == 300 - affordable and again["already_done"] == affordable
    assert max(sandbox.sends_per_recipient().values()) == 1


def test_refused_messages_give_their_reservation_back(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(forced_outcomes={f"49151{i:08d}": "error:131026" for i in range(5)})
    result = operator(recipients=rows(20), max_cost=2).execute(make_context())
    # 2 USD buys 14 German messages; the 5 refused ones cost nothing, so all 15 others fit.
    assert result["failed"] == 5 and result["accepted"] == 14 and result["budget_reached"] is True
    assert Decimal(str(result["cost"]["budget"]["spent"])) == 14 * Decimal("0.1365")


def test_a_max_cost_that_is_not_an_amount_fails_the_task(
    wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    with pytest.raises(ValueError, match="'max_cost': an amount must be a number, got 'lots'"):
        operator(recipients=rows(3), max_cost="lots")
    templated = operator(recipients=rows(3), max_cost="{{ params.budget }}")
    templated.max_cost = "lots"  # as rendered
    with pytest.raises(AirflowFailException, match="max_cost: an amount must be a number"):
        templated.execute(make_context())


def test_a_later_run_starts_with_what_earlier_runs_spent_metas_cost_first(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    """The budget of a later run is charged with the earlier runs' messages: Meta's ``pricing.cost`` where
    a status webhook gave one, the card's rate otherwise, nothing for a message whose delivery failed."""
    from datetime import UTC, datetime

    from airflow_provider_wamm.campaign.ledger import StatusUpdate

    rate = Decimal("0.1365")  # Germany
    first = operator(recipients=rows(300), max_cost=10, batch_size=50).execute(make_context())
    wamids = [row["wamid"] for row in ledger.iter_sends(first["campaign_id"])]
    assert len(wamids) == 73
    now = datetime.now(UTC)
    costed = [StatusUpdate(w, "delivered", now, cost_amount=0.01, cost_currency="USD") for w in wamids[:10]]
    failed = [StatusUpdate(w, "failed", now, error_code=131026) for w in wamids[10:13]]
    ledger.record_statuses(costed + failed)
    earlier = 60 * rate + 10 * Decimal("0.01")  # 8.29 USD

    again = operator(recipients=rows(300), max_cost=earlier + 5 * rate + Decimal("0.05"), batch_size=50)
    result = again.execute(make_context())
    assert result["budget_reached"] is True and result["accepted"] == 5
    assert Decimal(str(result["cost"]["budget"]["spent"])) == earlier + 5 * rate
