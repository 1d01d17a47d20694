"""Test DAG: recipients streamed with SQL (a templated ``.sql`` file) from the ``wamm_test_crm`` database.

Connections (set by the test as environment variables): ``wamm_test_whatsapp`` (the sandbox),
``wamm_test_ledger`` and ``wamm_test_crm`` (SQLite files).
"""

from __future__ import annotations

from airflow.sdk import DAG, Asset

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from tests.dag_args import SPRING_SALE, TEST_DAG_ARGS

with DAG(
    dag_id="wamm_test_sql",
    params={"segment": "vip", "limit": 0},
    **TEST_DAG_ARGS,
) as dag:
    MarketingMessageOperator(
        task_id="send",
        sql="sql/wamm_audience.sql",
        sql_conn_id="wamm_test_crm",
        parameters={"segment": "{{ params.segment }}"},
        **SPRING_SALE,
        campaign_id="spring_{{ params.segment }}_{{ ds_nodash }}",
        whatsapp_conn_id="wamm_test_whatsapp",
        ledger_conn_id="wamm_test_ledger",
        batch_size=50,
        outlets=[Asset("wamm://tests/spring_sale")],  # each finished campaign emits an asset event
    )
