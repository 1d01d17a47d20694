"""Recipients from an upstream task: any Python logic decides who gets the message.

The list travels through XCom, so keep it to a few thousand recipients; for more, read them with
``sql`` (rows are streamed) or shard them (see ``sharded_campaign.py``). The upstream task does not print
what it returns (``show_return_value_in_logs=False``): phone numbers stay out of the task logs.
The campaign id is the operator's default, ``dag_id.task_id.run_id``: one campaign per run.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["whatsapp", "example"])
def wamm_recipients_from_task() -> None:
    @task(show_return_value_in_logs=False)  # the return value holds phone numbers: keep it out of the log
    def pick_recipients() -> list[dict[str, str]]:
        # Call your CRM, a feature store, a model... and return phone numbers with their fields.
        return [
            {"phone": "+49 151 23456701", "first_name": "Ana"},
            {"phone": "+49 151 23456702", "first_name": "Ben"},
            {"phone": "+34 612 345 678", "first_name": "Carla"},
        ]

    MarketingMessageOperator(
        task_id="send",
        template_name="welcome_named",
        language="en_US",
        recipients=pick_recipients(),  # an XComArg: resolved at run time, keeps its list type
        body_parameters={"first_name": "{first_name}"},  # a template with named parameters
    )


wamm_recipients_from_task()
