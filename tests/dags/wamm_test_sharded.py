"""Test DAG: one campaign split over three mapped tasks (``.partial(...).expand(shard_index=...)``).

Each shard streams the query and keeps its stable hash slice of the recipients; the shards share the
campaign id and the ledger (here the default SQLite file under ``AIRFLOW_HOME``) and split the phone
number's rate cap. Connections: ``wamm_test_whatsapp`` (the sandbox) and ``wamm_test_crm``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

with DAG(
    dag_id="wamm_test_sharded",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["wamm-test"],
) as dag:
    MarketingMessageOperator.partial(
        task_id="send",
        shard_count=3,
        sql="SELECT phone, first_name AS name, discount, slug FROM customers WHERE opted_in = 1",
        sql_conn_id="wamm_test_crm",
        template_name="spring_sale",
        language="en_US",
        body_parameters=["{name}", "{discount}"],
        buttons=[{"type": "url", "index": 0, "text": "{slug}"}],
        whatsapp_conn_id="wamm_test_whatsapp",
        map_index_template="shard {{ task.shard_index }}",
    ).expand(shard_index=[0, 1, 2])
