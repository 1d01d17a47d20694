"""A weekly campaign: recipients from SQL, personalised parameters, then a report.

Connections used: ``whatsapp_default`` (type ``whatsapp``) and ``crm`` (any common.sql database holding a
``customers`` table). Every send is written down in the ledger named by ``[wamm] ledger_conn_id`` (all
examples and the webhook receiver share it; PostgreSQL in production).

Trigger it with ``airflow dags trigger wamm_campaign_from_sql``, the REST API or the UI: nothing here
needs a logical date (Airflow 3's manual runs have none), only the time the run was due (``run_after``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor

# One campaign per day the run is due: a retry, a cleared task or a second trigger the same day resumes it
# instead of sending again. ``run_after`` is set for scheduled and manual runs alike.
RUN_DAY = "{{ dag_run.run_after | ds_nodash }}"
CAMPAIGN_ID = f"spring_sale_{RUN_DAY}"
# Where the HTML report goes: the ``wamm_report_dir`` Variable (a relative path is taken from the worker's
# working folder).
REPORT_DIR = "{{ var.value.get('wamm_report_dir', 'wamm-reports') }}"

with DAG(
    dag_id="wamm_campaign_from_sql",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["whatsapp", "example"],
):
    send = MarketingMessageOperator(
        task_id="send",
        template_name="spring_sale",
        language="en_US",
        # Rows are streamed; the query's columns feed the template parameters below.
        sql="SELECT phone, first_name, discount, promo_slug FROM customers WHERE country = :country",
        parameters={"country": "DE"},  # always bound, never formatted in (placeholder style of your driver)
        sql_conn_id="crm",
        default_region="DE",  # numbers stored without +49 are read as German numbers
        body_parameters=["{first_name}", "{discount}%"],  # {{1}} and {{2}} of the template body
        buttons=[{"type": "url", "index": 0, "text": "{promo_slug}"}],  # suffix of the URL button
        campaign_id=CAMPAIGN_ID,
        # A run more than a week late (an old week run again) is skipped rather than sent stale. The run
        # Airflow creates when you unpause the DAG (the latest Sunday) is at most a week old, so it is sent;
        # a manual run has no logical date and is never late.
        max_lateness=timedelta(days=7),
        max_failure_ratio=0.2,  # fail the task when more than 20 % of sends fail
        outlets=[Asset("whatsapp://campaigns/spring_sale")],
    )

    report = MarketingResponsesSensor(
        task_id="report",
        campaign_id=CAMPAIGN_ID,
        settle_timeout=timedelta(hours=2),  # report what is known two hours after the last send
        deferrable=True,  # wait in the triggerer, holding no worker slot
        poke_interval=15,  # seconds between two looks at the ledger (a cheap read)
        include_analytics=True,  # clicks and cost from Meta's template analytics (needs the WABA id)
        report_table="wamm_campaign_report",  # one row per campaign and error code, in the ledger database
        # Folder from the ``wamm_report_dir`` Variable (relative paths are relative to the worker's folder).
        html_report_path="{{ var.value.get('wamm_report_dir', 'wamm-reports') }}/spring_sale_"
        + RUN_DAY
        + ".html",
    )

    send >> report
