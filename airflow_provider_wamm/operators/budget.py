"""The operator's cost options: the rate card to price with and the campaign's budget.

A mix-in of :class:`~airflow_provider_wamm.operators.marketing.MarketingMessageOperator`, so that its
arguments (``max_cost``, ``rates_file``) work with ``partial()``/``expand()`` like the operator's own.
A dry run always prices its reach with the card in force today (the shipped card unless ``rates_file``
names another): the counts then carry ``cost`` (by market, total, currency). With ``max_cost`` a real
run prices each request before it leaves and stops at the first recipient that does not fit: the task
succeeds with ``budget_reached`` set and the rest released for a later run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.pricing import Budget, RateCard
from airflow_provider_wamm.campaign.report_cost import taken_messages
from airflow_provider_wamm.campaign.spend import SpendGuard
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.operators.arguments import is_templated
from airflow_provider_wamm.operators.extensions import CampaignSteps

#: The operator's templated cost arguments.
BUDGET_TEMPLATE_FIELDS: tuple[str, ...] = ("max_cost", "rates_file")


class CostOptions(CampaignSteps):
    """Pricing and budget arguments of the marketing operator.

    :param max_cost: Budget of the task, in the card's currency (``500`` or ``"500.00"``): each request
        is priced by the recipient's market before it leaves, and the task stops handing requests over at
        the first one that would take the spend past it (in-flight requests included, refused ones given
        back). The task then succeeds with ``budget_reached`` and ``released`` in its counts; a later run
        (same ``campaign_id``) starts with what the earlier runs spent (Meta's ``pricing.cost`` from the
        status webhooks where Meta sent one, else the estimate), so a bigger budget continues where the
        last one stopped. Mapped shards each get ``max_cost / shard_count``. Meta charges on delivery,
        so the real spend is at most this.
    :param rates_file: A rate card CSV to price with instead of the shipped one (Meta's own rate-card
        file, or the shipped layout; see the cost planner recipe).
    """

    def __init__(
        self,
        *,
        max_cost: float | str | Decimal | None = None,
        rates_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_cost is not None and not is_templated(max_cost):
            try:
                Budget(str(max_cost))
            except ConfigurationError as exc:  # a DAG with a bad budget does not load
                raise ValueError(f"'max_cost': {exc}") from None
        self.max_cost = max_cost
        self.rates_file = rates_file

    def spend_guard(
        self, *, dry_run: bool, shard_count: int, log: Any, ledger: Ledger | None = None, settings: Any = None
    ) -> SpendGuard | None:
        """The guard pricing this run: always in a dry run, with ``max_cost`` otherwise. With the
        ``ledger`` and the run's ``settings``, the budget starts with what earlier runs of the campaign
        (its shard) spent: Meta's ``pricing.cost`` from the webhooks where given, else the estimate.

        :raises ConfigurationError: no card in force today, or a ``max_cost`` that is not an amount.
        """
        if self.max_cost in (None, "") and not dry_run:
            return None
        today = datetime.now(UTC).date()
        try:
            card = RateCard.from_csv(self.rates_file) if self.rates_file else RateCard.shipped()
            rates = card.in_force(today)
        except (ConfigurationError, OSError) as exc:
            if self.max_cost in (None, ""):  # a dry run without a budget: no estimate, no failure
                log.warning("no cost estimate: %s", exc)
                return None
            raise ConfigurationError(f"max_cost needs a rate card: {exc}") from None
        budget = None
        if self.max_cost not in (None, ""):
            try:
                ceiling = Budget(str(self.max_cost)).max_cost
            except ConfigurationError as exc:
                raise ConfigurationError(f"max_cost: {exc}") from None
            budget = Budget(ceiling / max(shard_count, 1), currency=rates.currency)
        guard = SpendGuard(rates, today, budget)
        if budget is not None and ledger is not None and settings is not None and not dry_run:
            shard = settings.shard_index if shard_count > 1 else None
            spent, actual = guard.charge_taken(
                taken_messages(ledger, settings.campaign_id, shard_index=shard)
            )
            if spent:
                log.info(
                    "max_cost: earlier runs spent %s %s (%s of it Meta's own cost)",
                    spent,
                    budget.currency,
                    actual,
                )
        return guard

    def extend_summary(self, summary: dict[str, Any]) -> None:
        """Log what the run cost (or would cost), by market."""
        super().extend_summary(summary)
        log_cost(summary, self.log)


def log_cost(summary: dict[str, Any], log: Any) -> None:
    """One log line with the estimate by market, and a warning when the budget stopped the run."""
    cost = summary.get("cost")
    if not cost:
        return
    markets = ", ".join(f"{m['market']} {m['recipients']} x {m['rate']:g}" for m in cost["markets"][:10])
    verb = "would cost" if summary.get("dry_run") else "cost at most"
    log.info(
        "campaign %s %s %.4f %s (card effective %s): %s",
        summary.get("campaign_id"),
        verb,
        cost["total_cost"],
        cost["currency"],
        cost["effective_from"],
        markets or "nothing priced",
    )
    if summary.get("budget_reached"):
        log.warning(
            "campaign %s stopped at max_cost (%s): %s recipients released unsent for a later run",
            summary.get("campaign_id"),
            cost.get("budget"),
            summary.get("released"),
        )


__all__ = ["BUDGET_TEMPLATE_FIELDS", "CostOptions", "log_cost"]
