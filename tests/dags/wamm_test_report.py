"""Test DAG: send a campaign, then wait (deferred) for its status webhooks and report.

Connections (set by the test as environment variables): ``wamm_test_whatsapp`` (the sandbox, which
posts signed status webhooks to a receiver writing into the same ledger) and ``wamm_test_ledger``.
The report directory comes from the ``wamm_test_report_dir`` Variable.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor
from tests.dag_args import SPRING_SALE, TEST_DAG_ARGS

with DAG(
    dag_id="wamm_test_report",
    params={"recipients": 500},
    **TEST_DAG_ARGS,
) as dag:

    @task
    def pick_recipients(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        count = int((params or {}).get("recipients", 500))
        return [
            {"phone": f"+49 151 {i:08d}", "name": f"Ana{i}", "discount": "20%", "slug": f"s{i}"}
            for i in range(count)
        ]

    send = MarketingMessageOperator(
        task_id="send",
        recipients=pick_recipients(),
        **SPRING_SALE,
        whatsapp_conn_id="wamm_test_whatsapp",
        ledger_conn_id="wamm_test_ledger",
    )

    report = MarketingResponsesSensor(
        task_id="report",
        send_task_id="send",
        ledger_conn_id="wamm_test_ledger",
        deferrable=True,
        poke_interval=0.5,
        settle_timeout=timedelta(minutes=2),
        fail_on_timeout=True,
        report_table="wamm_test_campaign_report",
        report_conn_id="wamm_test_ledger",
        html_report_path="{{ var.value.wamm_test_report_dir }}/{{ run_id | replace(':', '_') }}.html",
    )

    send >> report
