"""A daily campaign that is safe to backfill, clear and re-run.

* ``max_lateness`` skips runs whose logical date is too old, so a backfill of last month does not
  become thirty messages per person in ten minutes (clear a run with a larger value to send it anyway).
  A manual run (``airflow dags trigger``, the REST API, the UI) has no logical date and is never late.
* Each run welcomes the people who signed up the day before it was due (``run_after``): the scheduled
  midnight run takes the day that just ended, a manual run today takes yesterday.
* ``frequency_cap`` skips anyone who got a marketing message recorded in the ledger in the last 24 h,
  across all campaigns.
* The campaign id comes from the run, so a retry or a clear resumes the run's campaign and never
  messages anyone twice; recipients whose outcome is ``unknown`` (the request may have reached Meta)
  are left alone unless ``resend_unknown=True``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

with DAG(
    dag_id="wamm_safe_backfill",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    # Unpausing schedules only the latest day. Missed days are run on purpose, with
    # ``airflow backfill create --dag-id wamm_safe_backfill --from-date ... --to-date ...``: the operator
    # then decides what is still worth sending. (catchup=True would queue a run for every day since
    # start_date the moment the DAG is unpaused.)
    catchup=False,
    max_active_runs=1,
    tags=["whatsapp", "example"],
):
    MarketingMessageOperator(
        task_id="send",
        template_name="spring_sale",
        language="en_US",
        sql="SELECT phone, first_name, discount, promo_slug FROM customers WHERE signup_date = :day",
        parameters={"day": "{{ macros.ds_add(dag_run.run_after | ds, -1) }}"},  # the day before the run
        sql_conn_id="crm",
        default_region="DE",
        body_parameters=["{first_name}", "{discount}%"],
        buttons=[{"type": "url", "index": 0, "text": "{promo_slug}"}],
        max_lateness=timedelta(days=2),
        frequency_cap=timedelta(hours=24),
        retries=3,
        retry_delay=timedelta(minutes=10),
    )
