"""The operator's retries after Meta's per-user marketing limit (131049): ``retry_limited``.

A mix-in of :class:`~airflow_provider_wamm.operators.marketing.MarketingMessageOperator`. A run with
``retry_limited=True`` sends only to the recipients of its campaign that are due for a retry (see
:mod:`airflow_provider_wamm.campaign.limited`); the others are not read. Its counts carry
``limited_retry``: due, waiting, exhausted, never retried (US numbers), the recovery rate so far and
why retries stopped, if they did.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.limited import LimitedRetryPlan, plan_limited_retries
from airflow_provider_wamm.campaign.narrow import narrow_rows
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.operators.arguments import as_bool
from airflow_provider_wamm.operators.extensions import CampaignSteps


class LimitedRetryOptions(CampaignSteps):
    """Retry arguments of the marketing operator.

    :param retry_limited: Send only to the recipients of this campaign (same ``campaign_id``, same
        recipient query) that Meta refused with its per-user marketing limit (131049) and that are due
        again: at least 24 h later, fewer than ``max_limited_tries`` sends (3), within
        ``limited_retry_for`` (7 days) of the first refusal; US numbers never. Retries stop for the
        campaign once their recovery rate is under ``min_recovery_rate`` (all four in
        ``campaign_options``). Schedule it daily; nobody is sent twice. Templated.
    """

    def __init__(self, *, retry_limited: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_limited = retry_limited
        self._limited_plan: LimitedRetryPlan | None = None

    def narrow_recipients(
        self, rows: Iterable[Any], settings: CampaignSettings, ledger: Ledger
    ) -> Iterable[Any]:
        """Only the recipients due for a retry, with ``retry_limited``."""
        rows = super().narrow_recipients(rows, settings, ledger)
        if not as_bool(self.retry_limited, "retry_limited"):
            return rows
        ledger.ensure_schema()
        plan = self._limited_plan = plan_limited_retries(ledger, settings, now=utcnow())
        if plan.stopped:
            self.log.warning("campaign %s: no retries: %s", settings.campaign_id, plan.stopped)
        self.log.info(
            "campaign %s: retries after Meta's per-user limit: %s", settings.campaign_id, plan.to_dict()
        )
        due = plan.due
        return narrow_rows(
            rows,
            lambda digits, _fields: digits in due,
            recipient_field=settings.recipient_field,
            default_region=settings.default_region,
        )

    def extend_summary(self, summary: dict[str, Any]) -> None:
        """``limited_retry`` in the counts of a retry run."""
        super().extend_summary(summary)
        if self._limited_plan is not None:
            summary["limited_retry"] = self._limited_plan.to_dict()


__all__ = ["LimitedRetryOptions"]
