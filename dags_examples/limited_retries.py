"""Daily retries after Meta's per-user marketing limit (131049) for the weekly campaign.

Meta refuses a marketing message with 131049 when the person got enough marketing messages for now;
the ledger then schedules a retry a day later (never for US numbers: Meta delivers no marketing
templates there). Every morning this DAG looks at the campaigns of ``wamm_campaign_from_sql`` of the
last seven days and, with ``retry_limited=True``, sends only to their recipients that are due: a day
after the refusal, three sends at most, within seven days of the first refusal. The recipient query is
the campaign's own, so the messages are personalised as before; nobody gets two messages, as the
ledger's claims are per campaign. A campaign whose retries stop paying (fewer than 10 % get through)
is left alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

with DAG(
    dag_id="wamm_limited_retries",
    schedule="0 9 * * *",  # every day at 09:00 UTC
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["whatsapp", "example"],
):

    @task
    def recent_campaigns(dag_run: Any = None) -> list[str]:
        """The ids of the weekly campaign's runs of the last seven days (one a week, named by day)."""
        today = dag_run.run_after.date()
        return [f"spring_sale_{today - timedelta(days=n):%Y%m%d}" for n in range(1, 8)]

    MarketingMessageOperator.partial(
        task_id="retry",
        template_name="spring_sale",
        language="en_US",
        sql="SELECT phone, first_name, discount, promo_slug FROM customers WHERE country = :country",
        parameters={"country": "DE"},
        sql_conn_id="crm",
        default_region="DE",
        body_parameters=["{first_name}", "{discount}%"],
        buttons=[{"type": "url", "index": 0, "text": "{promo_slug}"}],
        retry_limited=True,
        campaign_options={"max_limited_tries": 3, "min_recovery_rate": 0.1},
    ).expand(campaign_id=recent_campaigns())
