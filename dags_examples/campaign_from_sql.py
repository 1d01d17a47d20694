"""A weekly campaign: recipients from SQL, personalised parameters, then a report.

Connections used: ``whatsapp_default`` (type ``whatsapp``), ``crm`` (any common.sql database holding a
``customers`` table) and ``wamm_ledger`` (where every send is written down; PostgreSQL in production).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor

# One campaign per logical date: a retry or a cleared task resumes it instead of sending again.
CAMPAIGN_ID = "spring_sale_{{ ds_nodash }}"

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
        ledger_conn_id="wamm_ledger",
        max_lateness=timedelta(hours=12),  # a late run is skipped rather than sent stale
        max_failure_ratio=0.2,  # fail the task when more than 20 % of sends fail
        outlets=[Asset("whatsapp://campaigns/spring_sale")],
    )

    report = MarketingResponsesSensor(
        task_id="report",
        campaign_id=CAMPAIGN_ID,
        ledger_conn_id="wamm_ledger",
        settle_timeout=timedelta(hours=2),  # report what is known two hours after the last send
        deferrable=True,  # wait in the triggerer, holding no worker slot
        poke_interval=15,  # seconds between two looks at the ledger (a cheap read)
        include_analytics=True,  # clicks and cost from Meta's template analytics (needs the WABA id)
        report_table="wamm_campaign_report",  # one row per campaign and error code, for BI tools
        report_conn_id="wamm_ledger",
        html_report_path="{{ var.value.get('wamm_report_dir', '/tmp') }}/spring_sale_{{ ds_nodash }}.html",
    )

    send >> report
