"""Test DAG: an A/B test with a holdout, a run log and a report link, for the OpenLineage events.

Connections (set by the test as environment variables): ``wamm_test_whatsapp`` (the sandbox),
``wamm_test_ledger`` and ``wamm_test_crm`` (SQLite files, the CRM seeded with ``customers``).
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from tests.dag_args import SPRING_SALE, TEST_DAG_ARGS

with DAG(
    dag_id="wamm_test_lineage",
    **TEST_DAG_ARGS,
) as dag:
    MarketingMessageOperator(
        task_id="send",
        sql="SELECT phone, name, discount, slug FROM customers",
        sql_conn_id="wamm_test_crm",
        **SPRING_SALE,
        whatsapp_conn_id="wamm_test_whatsapp",
        ledger_conn_id="wamm_test_ledger",
        holdout=0.1,
        variants=[{"name": "A"}, {"name": "B", "template_name": "spring_sale_v2"}],
        run_log=True,
        report_url="https://reports.example.com/{{ run_id }}.html",
    )
