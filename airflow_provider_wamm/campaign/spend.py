"""What a campaign run spends, by market, and the budget that stops it.

A :class:`SpendGuard` prices every recipient the run sends to (or would send to, in a dry run) with the
card in force on the day of the send (:class:`~.pricing.MarketRates`), and keeps the counts by market:
``guard.estimate()`` is then the cost of exactly the reach after suppressions, caps and windows. With a
:class:`~.pricing.Budget`, each message's cost is *reserved* when its request is handed to a worker and
given back when Meta refuses it or it is never sent, so the spend of what is in flight plus what was
taken never passes ``max_cost``: the run stops handing over at the first recipient it cannot afford,
and releases the rest for a later run (or a bigger budget).

Numbers Meta does not deliver marketing to (US numbers) cost nothing here: they fail, uncharged.

A later run of the same campaign starts with what the earlier runs spent (:meth:`SpendGuard.charge_taken`):
Meta's own ``pricing.cost`` where a status webhook gave it (messages with a max price), else the card's
rate; a message whose delivery failed costs nothing (Meta charges on delivery).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from airflow_provider_wamm.campaign.pricing import Budget, CostEstimate, MarketRates
from airflow_provider_wamm.campaign.report_cost import TakenMessage
from airflow_provider_wamm.campaign.workers import Job


@dataclass(frozen=True, slots=True)
class Price:
    """The market of one recipient and what one delivered message to them costs."""

    market: str
    """Market or region name (``"not_delivered"`` reasons are kept apart, see :attr:`delivered`)."""
    cost: Decimal
    """Rate of the market (0 when the card has none, or Meta does not deliver there)."""
    delivered: bool = True
    """Meta delivers marketing messages there (``False`` for US numbers: never charged)."""
    priced: bool = True
    """The card has a rate for the market."""


class SpendGuard:
    """Prices a run's sends by market and, with a budget, refuses the first one it cannot afford.

    Only the sender's coordinating thread calls it.

    :param rates: the card in force on the day of the send.
    :param on: that day (reported with the estimate).
    :param budget: the ceiling, if any (``None``: count and price only).
    """

    def __init__(self, rates: MarketRates, on: date, budget: Budget | None = None) -> None:
        self.rates = rates
        self.on = on
        self.budget = budget
        self.reached = False
        """The budget stopped the run: the next recipient did not fit."""
        self._counts: Counter[str] = Counter()
        self._blocked: Counter[str] = Counter()
        self._reserved: dict[str, Price] = {}
        self._lock = threading.Lock()

    def price(self, recipient: str) -> Price:
        """The market and cost of one message to ``recipient`` (E.164 digits)."""
        country = self.rates.table.country_of(recipient)
        if country is not None and country.not_delivered:
            return Price(country.not_delivered, Decimal(0), delivered=False)
        market = self.rates.market_of(country)
        rate = self.rates.rates.get(market)
        return Price(market, rate if rate is not None else Decimal(0), priced=rate is not None)

    def charge_taken(self, taken: Iterable[TakenMessage]) -> tuple[Decimal, Decimal]:
        """Charge the budget with messages earlier runs sent (:func:`~.report_cost.taken_messages`):
        Meta's cost when a webhook gave one in the budget's currency, else the estimate; returns
        ``(charged in total, of which Meta's own cost)``."""
        total = actual = Decimal(0)
        currency = self.budget.currency if self.budget is not None else self.rates.currency
        for message in taken:
            if message.failed:
                continue
            if message.amount is not None and (message.currency or "").upper() == currency:
                cost = Decimal(str(message.amount))
                actual += cost
            else:
                cost = self.price(message.recipient).cost
            total += cost
        if self.budget is not None:
            self.budget.charge(total)
        return total, actual

    def count(self, recipient: str) -> None:
        """Count a message a dry run would send (priced, never reserved)."""
        self._tally(self.price(recipient), 1)

    def reserve(self, recipient: str) -> bool:
        """Reserve the cost of a request about to leave; ``False`` when it does not fit in the budget.

        While other requests are out, one of them may be refused and give its cost back, so the
        recipient waits; with nothing out, the budget is :attr:`reached`. A recipient already reserved
        (a retry) is not charged twice.
        """
        if recipient in self._reserved:
            return True
        price = self.price(recipient)
        if self.budget is not None and not self.budget.can_afford(price.cost):
            self.reached = not self._reserved
            return False
        if self.budget is not None:
            self.budget.charge(price.cost)
        self._reserved[recipient] = price
        self._tally(price, 1)
        return True

    def affordable(self, jobs: Sequence[Job]) -> tuple[list[Job], list[Job]]:
        """Reserve ``jobs`` in order up to the first that does not fit; returns the reserved ones and
        the rest (none once the budget is reached)."""
        for i, job in enumerate(jobs):
            if not self.reserve(job.recipient):
                return list(jobs[:i]), list(jobs[i:])
        return list(jobs), []

    def refund(self, recipient: str) -> None:
        """Give back the reservation of a request Meta refused, or that never left."""
        price = self._reserved.pop(recipient, None)
        if price is None:
            return
        if self.budget is not None:
            self.budget.correct(price.cost, 0)
        self._tally(price, -1)

    def answered(self, recipient: str, *, taken: bool, queued: bool) -> None:
        """Settle the reservation of an answered request: spent when Meta took the message (or may
        have), kept while the recipient waits for a retry (``queued``), given back otherwise."""
        if taken:
            self._reserved.pop(recipient, None)
        elif not queued:
            self.refund(recipient)

    def _tally(self, price: Price, n: int) -> None:
        with self._lock:
            if price.delivered:
                self._counts[price.market] += n
            else:
                self._blocked[price.market] += n

    def estimate(self) -> CostEstimate:
        """The cost of what was sent (or would be, in a dry run), by market."""
        with self._lock:
            counts = +self._counts
            blocked = +self._blocked
        return CostEstimate.from_counts(self.rates, self.on, counts, blocked, 0)

    def __repr__(self) -> str:
        return f"SpendGuard(on={self.on}, budget={self.budget!r}, reached={self.reached})"

    def to_dict(self) -> dict[str, Any]:
        """The estimate as XCom carries it, with the budget when there is one."""
        out = self.estimate().to_dict()
        if self.budget is not None:
            out["budget"] = self.budget.to_dict()
            out["budget_reached"] = self.reached
        return out


__all__ = ["Price", "SpendGuard"]
