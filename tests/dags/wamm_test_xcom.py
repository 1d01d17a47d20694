"""Test DAG: an upstream task picks the recipients and hands them to the operator through XCom.

Connections (set by the test as environment variables): ``wamm_test_whatsapp`` (the sandbox) and
``wamm_test_ledger`` (a SQLite file). The number of recipients comes from the run's ``params``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from tests.dag_args import SPRING_SALE, TEST_DAG_ARGS

with DAG(
    dag_id="wamm_test_xcom",
    params={"recipients": 10},
    **TEST_DAG_ARGS,
) as dag:

    @task
    def pick_recipients(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Recipients +49 151 00000000 and up, with the fields the template needs."""
        count = int((params or {}).get("recipients", 10))
        return [
            {"phone": f"+49 151 {i:08d}", "name": f"Ana{i}", "discount": "20%", "slug": f"s{i}"}
            for i in range(count)
        ]

    MarketingMessageOperator(
        task_id="send",
        recipients=pick_recipients(),
        **SPRING_SALE,
        whatsapp_conn_id="wamm_test_whatsapp",
        ledger_conn_id="wamm_test_ledger",
        max_failure_ratio=0.01,
        # Quick retries and recovery: the sandbox injects faults at random, not because we send fast.
        campaign_options={
            "retry_backoff_s": 0.02,
            "retry_backoff_max_s": 0.2,
            "throttle_recovery_s": 0.2,
            "min_messages_per_second": 200.0,
        },
    )
