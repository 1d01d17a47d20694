"""The base of the operator's option mix-ins: the two moments a mix-in may act on a campaign run.

Each group of options (cost, retries after Meta's per-user limit, send windows, rollout) is a mix-in
of :class:`~airflow_provider_wamm.operators.marketing.MarketingMessageOperator` in a module of its
own. A mix-in subclasses :class:`CampaignSteps` (so its arguments work with ``partial()`` and
``expand()``), overrides the steps it needs and calls ``super()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.settings import CampaignSettings


class CampaignSteps(BaseOperator):
    """Steps of a campaign run the operator's mix-ins may extend (each does nothing here)."""

    def narrow_recipients(
        self, rows: Iterable[Any], settings: CampaignSettings, ledger: Ledger
    ) -> Iterable[Any]:
        """The recipients this run reads, from the input rows (all of them here)."""
        return rows

    def extend_summary(self, summary: dict[str, Any]) -> None:
        """Add a mix-in's counts to the run's XCom summary, and log them."""


__all__ = ["CampaignSteps"]
