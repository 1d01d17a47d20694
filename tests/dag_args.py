"""What the test DAGs in ``tests/dags`` share: how they are scheduled, and the template they send.

Kept outside the dags folder, so that Airflow does not parse it as a DAG file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

#: Arguments of every test DAG: run only when triggered, never retried, tagged for the tests.
TEST_DAG_ARGS: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2026, 1, 1),
    "catchup": False,
    "default_args": {"retries": 0},
    "tags": ["wamm-test"],
}

#: Personalisation of the sandbox's ``spring_sale`` template: "Hi {{1}}, ... {{2}} off" + a URL button.
SPRING_SALE: dict[str, Any] = {
    "template_name": "spring_sale",
    "language": "en_US",
    "body_parameters": ["{name}", "{discount}"],
    "buttons": [{"type": "url", "index": 0, "text": "{slug}"}],
}
