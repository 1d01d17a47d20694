"""A reporting DAG scheduled on the campaign's Asset.

``campaign_from_sql.py`` lists ``Asset("whatsapp://campaigns/spring_sale")`` in the send task's
outlets; every successful send emits an asset event whose ``extra`` carries the campaign id and
counts. This DAG runs on each such event and waits, in the triggerer, for the campaign to settle.
To report an older campaign again, trigger the DAG by hand with ``{"campaign_id": "..."}`` as config
(``airflow dags trigger wamm_report_on_asset --conf '{"campaign_id": "spring_sale_20260301"}'``). It reads
the ledger of ``[wamm] ledger_conn_id``, the one the campaign DAG and the webhook receiver use.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset

from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor

CAMPAIGNS = Asset("whatsapp://campaigns/spring_sale")

with DAG(
    dag_id="wamm_report_on_asset",
    schedule=[CAMPAIGNS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"campaign_id": ""},  # empty: take it from the asset event
    tags=["whatsapp", "example"],
):
    MarketingResponsesSensor(
        task_id="report",
        # The campaign of each asset event that triggered this run (usually one; several are reported
        # together): triggering_asset_events maps each asset to its events.
        campaign_id=(
            "{{ params.campaign_id or (triggering_asset_events.values() | first"
            " | map(attribute='extra') | map(attribute='campaign_id') | list) }}"
        ),
        settle_timeout=timedelta(hours=6),
        min_delivery_ratio=0.5,  # fail loudly when the campaign clearly did not reach people
        deferrable=True,
        poke_interval=60,
        report_table="wamm_campaign_report",  # in the ledger database
    )
