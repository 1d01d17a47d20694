"""Run one MarketingMessageOperator campaign in this process, so that a test can SIGKILL it midway.

Usage: ``python campaign_child.py '<json>'`` where the JSON has ``operator`` (keyword arguments of the
operator, JSON-safe), ``count`` (recipients +49 151 00000000 .. count-1, with spring_sale fields) and
``run_id``. Connections come from the ``AIRFLOW_CONN_*`` environment variables of the parent.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any


class _TaskInstance:
    dag_id = "wamm_child"
    task_id = "send"
    map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        print(json.dumps({key: value}), flush=True)


def main(argv: list[str]) -> int:
    from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

    spec = json.loads(argv[0])
    recipients = [
        {"phone": f"+49151{i:08d}", "name": f"Ana{i}", "discount": "20%", "slug": f"s{i}"}
        for i in range(int(spec["count"]))
    ]
    op = MarketingMessageOperator(task_id="send", recipients=recipients, **spec["operator"])
    context = {"ti": _TaskInstance(), "run_id": spec["run_id"], "logical_date": datetime.now(UTC)}
    print(json.dumps(op.execute(context)), flush=True)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
