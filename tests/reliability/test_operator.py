"""The same guarantees through the Airflow operator: connections, hook, engine, ledger connection.

``MarketingMessageOperator.execute`` runs with a small task context against the sandbox (every fault at
once), then again for the same run, as an Airflow task retry would.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from tests.reliability.harness import LANGUAGE, TEMPLATE, Wire, assert_clean, audience, verify

WHATSAPP = "wamm_reliability_whatsapp"
LEDGER = "wamm_reliability_ledger"


class _TaskInstance:
    dag_id = "wamm_reliability"
    task_id = "send"
    map_index = -1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))


def result_from_summary(summary: Mapping[str, Any]) -> CampaignResult:
    """The operator's XCom summary back as a ``CampaignResult`` (for the shared checks)."""
    names = {f.name for f in dataclasses.fields(CampaignResult)}
    return CampaignResult(**{k: v for k, v in summary.items() if k in names})


def test_operator_campaign_with_every_fault(
    sandbox: Sandbox, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = sandbox.config
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{WHATSAPP.upper()}",
        json.dumps(
            {
                "conn_type": "whatsapp",
                "host": sandbox.url,
                "password": cfg.access_token,
                "extra": {
                    "phone_number_id": cfg.phone_number_id,
                    "waba_id": cfg.waba_id,
                    "max_messages_per_second": 1000,
                    "timeout": 0.5,
                },
            }
        ),
    )
    ledger_file = tmp_path / "ledger.db"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{LEDGER.upper()}", json.dumps({"conn_type": "sqlite", "host": str(ledger_file)})
    )

    sandbox.configure(
        mps_cap=None,
        seed=5,
        fault_5xx_rate=0.02,
        fault_transient_rate=0.04,
        fault_throttle_rate=0.03,
        fault_lost_response_rate=0.01,
        fault_drop_rate=0.01,
        fault_slow_rate=0.01,
        slow_response_s=1.0,
        hang_s=1.0,
        forced_outcomes={f"49151{i:08d}": "error:131056#1" for i in range(7, 600, 40)},
    )
    crowd = audience(600)
    op = MarketingMessageOperator(
        task_id="send",
        template_name=TEMPLATE,
        language=LANGUAGE,
        whatsapp_conn_id=WHATSAPP,
        ledger_conn_id=LEDGER,
        recipients=crowd.rows,
        body_parameters={"first_name": "{name}"},
        concurrency=16,
        batch_size=100,
        campaign_options={
            "retry_backoff_s": 0.02,
            "retry_backoff_max_s": 0.2,
            "throttle_recovery_s": 0.2,
            "min_messages_per_second": 200.0,
            "max_attempts": 10,
        },
    )
    context: dict[str, Any] = {"ti": _TaskInstance(), "run_id": "manual__reliability", "logical_date": None}
    started = time.monotonic()
    with Wire() as wire:
        summary = op.execute(context)  # type: ignore[arg-type]
    campaign_id = summary["campaign_id"]
    assert campaign_id == "wamm_reliability.send.manual__reliability"

    ledger = Ledger.from_url(f"sqlite:///{ledger_file}")
    try:
        row = verify(
            "all faults, through MarketingMessageOperator",
            sandbox=sandbox,
            ledger=ledger,
            campaign_id=campaign_id,
            crowd=crowd,
            results=[result_from_summary(summary)],
            started=started,
            wire=wire,
        )
        assert_clean(row)
        assert summary["unknown"] > 0 and summary["retries"] > 0 and summary["pair_limited"] > 0

        # An Airflow retry of the same run: same campaign, nothing sent again.
        before = len(sandbox.messages)
        sandbox.configure(
            fault_5xx_rate=0.0,
            fault_transient_rate=0.0,
            fault_throttle_rate=0.0,
            fault_lost_response_rate=0.0,
            fault_drop_rate=0.0,
            fault_slow_rate=0.0,
        )
        again = op.execute(context)  # type: ignore[arg-type]
        assert len(sandbox.messages) == before
        assert again["sent"] == 0 and again["already_done"] == len(crowd.valid)
    finally:
        ledger.dispose()
