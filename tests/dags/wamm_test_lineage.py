"""Test DAG: an A/B test with a holdout, a run log and a report link, for the OpenLineage events.

Connections (set by the test as environment variables): ``wamm_test_whatsapp`` (the sandbox),
``wamm_test_ledger`` and ``wamm_test_crm`` (SQLite files, the CRM seeded with ``customers``).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

with DAG(
    dag_id="wamm_test_lineage",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["wamm-test"],
) as dag:
    MarketingMessageOperator(
        task_id="send",
        sql="SELECT phone, name, discount, slug FROM customers",
        sql_conn_id="wamm_test_crm",
        template_name="spring_sale",
        language="en_US",
        body_parameters=["{name}", "{discount}"],
        buttons=[{"type": "url", "index": 0, "text": "{slug}"}],
        whatsapp_conn_id="wamm_test_whatsapp",
        ledger_conn_id="wamm_test_ledger",
        holdout=0.1,
        variants=[{"name": "A"}, {"name": "B", "template_name": "spring_sale_v2"}],
        run_log=True,
        report_url="https://reports.example.com/{{ run_id }}.html",
    )
