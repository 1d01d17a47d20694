"""A big campaign split across workers with dynamic task mapping.

Each of the four mapped tasks streams the same query and keeps only its stable hash slice of the
recipients, so no two shards ever message the same person. By default each shard takes a quarter of
the phone number's messages-per-second cap, so together they stay under Meta's limit. All shards share
one campaign id (``dag_id.task_id.run_id``) and the ledger of ``[wamm] ledger_conn_id``, which must be a
real database (PostgreSQL) when the shards run on different machines (Celery or Kubernetes workers).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor

SHARDS = 4

with DAG(
    dag_id="wamm_sharded_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["whatsapp", "example"],
):
    send = MarketingMessageOperator.partial(
        task_id="send",
        template_name="spring_sale",
        language="en_US",
        sql="SELECT phone, first_name, discount, promo_slug FROM customers",
        sql_conn_id="crm",
        default_region="DE",
        body_parameters=["{first_name}", "{discount}%"],
        buttons=[{"type": "url", "index": 0, "text": "{promo_slug}"}],
        shard_count=SHARDS,
        map_index_template="shard {{ task.shard_index }}",
    ).expand(shard_index=list(range(SHARDS)))

    # The shards share one campaign id, so one sensor reports on all of them.
    report = MarketingResponsesSensor(
        task_id="report",
        send_task_id="send",
        deferrable=True,
        poke_interval=30,
    )

    send >> report
