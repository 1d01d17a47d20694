"""Test DAG: one campaign split over three mapped tasks (``.partial(...).expand(shard_index=...)``).

Each shard streams the query and keeps its stable hash slice of the recipients; the shards share the
campaign id and the ledger (here the default SQLite file under ``AIRFLOW_HOME``) and split the phone
number's rate cap. Connections: ``wamm_test_whatsapp`` (the sandbox) and ``wamm_test_crm``.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from tests.dag_args import SPRING_SALE, TEST_DAG_ARGS

with DAG(
    dag_id="wamm_test_sharded",
    **TEST_DAG_ARGS,
) as dag:
    MarketingMessageOperator.partial(
        task_id="send",
        shard_count=3,
        sql="SELECT phone, first_name AS name, discount, slug FROM customers WHERE opted_in = 1",
        sql_conn_id="wamm_test_crm",
        **SPRING_SALE,
        whatsapp_conn_id="wamm_test_whatsapp",
        map_index_template="shard {{ task.shard_index }}",
    ).expand(shard_index=[0, 1, 2])
