"""Send a campaign as soon as Meta approves its template: a DAG scheduled on a template event.

The webhook receiver stores Meta's ``message_template_status_update`` webhooks in the ledger. The
asset below is watched by a ``TemplateEventTrigger``: each time ``spring_sale`` (``en_US``) becomes
``APPROVED``, the triggerer emits an asset event and this DAG runs. The event's ``extra`` holds what
Meta said (template id, event, reason, category, times).

The campaign id is fixed, not per run: when a paused template is approved again, the new run resumes
the same campaign and the ledger keeps everyone who already got the message from getting it twice.
Watch for a pause the same way: ``TemplateEventTrigger(events=["PAUSED"], ...)`` on another asset.

Connections used: ``whatsapp_default``, ``crm`` and ``wamm_ledger`` (also the webhook receiver's
``[wamm] ledger_conn_id``).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.triggers.templates import TemplateEventTrigger

TEMPLATE_APPROVED = Asset(
    "whatsapp://templates/spring_sale/en_US/approved",
    watchers=[
        AssetWatcher(
            name="spring_sale_en_us_approved",
            trigger=TemplateEventTrigger(
                events=["APPROVED"],
                template_name="spring_sale",
                language="en_US",
                ledger_conn_id="wamm_ledger",
                poll_interval=60,  # seconds between two looks at the ledger (a cheap read)
            ),
        )
    ],
)

with DAG(
    dag_id="wamm_campaign_on_template_approval",
    schedule=[TEMPLATE_APPROVED],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["whatsapp", "example"],
):
    MarketingMessageOperator(
        task_id="send",
        template_name="spring_sale",
        language="en_US",
        sql="SELECT phone, first_name, discount, promo_slug FROM customers WHERE country = :country",
        parameters={"country": "DE"},
        sql_conn_id="crm",
        default_region="DE",
        body_parameters=["{first_name}", "{discount}%"],
        buttons=[{"type": "url", "index": 0, "text": "{promo_slug}"}],
        campaign_id="spring_sale_launch",  # one campaign, whatever the run: never sent twice
        ledger_conn_id="wamm_ledger",
    )
