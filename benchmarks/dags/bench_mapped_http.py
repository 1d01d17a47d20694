"""Baseline DAG of benchmark B3: ``HttpOperator`` mapped once per recipient, each posting one message.

This is what a DAG author would write without the provider. The number of recipients comes from
``WAMM_BENCH_HTTP_COUNT``; the ``bench_http`` connection points at the sandbox.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common

COUNT = int(os.environ.get("WAMM_BENCH_HTTP_COUNT", "10"))

with DAG(
    dag_id="bench_mapped_http",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"retries": 0},
) as dag:
    HttpOperator.partial(
        task_id="send",
        http_conn_id="bench_http",
        endpoint=f"v23.0/{common.PHONE_NUMBER_ID}/marketing_messages",
        method="POST",
        headers={"Authorization": f"Bearer {common.TOKEN}", "Content-Type": "application/json"},
    ).expand(data=[json.dumps(common.payload(i)) for i in range(COUNT)])
