"""A SQLite ledger reachable through an Airflow connection, as the sensor and trigger open it."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger

LEDGER_CONN_ID = "wamm_test_ledger"


@pytest.fixture
def ledger_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(ledger_path: pathlib.Path, airflow_connection: Callable[..., str]) -> Iterator[Ledger]:
    """The ledger behind the ``wamm_test_ledger`` connection (a SQLite file)."""
    airflow_connection(LEDGER_CONN_ID, conn_type="sqlite", host=str(ledger_path))
    led = Ledger.from_url(f"sqlite:///{ledger_path}")
    led.ensure_schema()
    yield led
    led.dispose()


@pytest.fixture
def context() -> dict[str, Any]:
    """The bits of a task context the sensor reads."""

    class TI:
        dag_id = "campaign_dag"
        task_id = "responses"

    return {"ti": TI(), "run_id": "manual__2026-11-24T00:00:00+00:00"}
