"""Test DAG: recipients streamed with SQL (a templated ``.sql`` file) from the ``wamm_test_crm`` database.

Connections (set by the test as environment variables): ``wamm_test_whatsapp`` (the sandbox),
``wamm_test_ledger`` and ``wamm_test_crm`` (SQLite files).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

with DAG(
    dag_id="wamm_test_sql",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"segment": "vip", "limit": 0},
    default_args={"retries": 0},
    tags=["wamm-test"],
) as dag:
    MarketingMessageOperator(
        task_id="send",
        sql="sql/wamm_audience.sql",
        sql_conn_id="wamm_test_crm",
        parameters={"segment": "{{ params.segment }}"},
        template_name="spring_sale",
        language="en_US",
        body_parameters=["{name}", "{discount}"],
        buttons=[{"type": "url", "index": 0, "text": "{slug}"}],
        campaign_id="spring_{{ params.segment }}_{{ ds_nodash }}",
        whatsapp_conn_id="wamm_test_whatsapp",
        ledger_conn_id="wamm_test_ledger",
        batch_size=50,
        outlets=[Asset("wamm://tests/spring_sale")],  # each finished campaign emits an asset event
    )
