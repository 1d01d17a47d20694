"""Fixtures of the operator tests: connections to the sandbox and to SQLite databases, and a runner.

Most tests call ``MarketingMessageOperator.execute`` directly with a small task context (fast, and
the campaign still goes over real HTTP to the sandbox and into a real SQLite ledger); the DAG tests
run whole DAGs with ``dag.test()``.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from tests.dag_args import SPRING_SALE

#: Connection ids used by the operator tests and by the DAGs in ``tests/dags``.
WHATSAPP_CONN_ID = "wamm_test_whatsapp"
LEDGER_CONN_ID = "wamm_test_ledger"
CRM_CONN_ID = "wamm_test_crm"


#: Engine settings that keep fault-heavy tests short (quick retries, quick recovery after throttling).
FAST_RETRIES: dict[str, Any] = {
    "retry_backoff_s": 0.02,
    "retry_backoff_max_s": 0.2,
    "throttle_recovery_s": 0.2,
    "min_messages_per_second": 200.0,
    "progress_interval_s": 0.5,
    # A killed attempt's claims count as abandoned 1.5 s after its last heartbeat (60 s by default).
    "heartbeat_interval_s": 0.1,
    "claims_abandoned_after_s": 1.5,
}


def send_operator(**kwargs: Any) -> MarketingMessageOperator:
    """The operator wired to the test connections, sending ``spring_sale`` unless told otherwise."""
    args: dict[str, Any] = {
        "task_id": "send",
        "whatsapp_conn_id": WHATSAPP_CONN_ID,
        "ledger_conn_id": LEDGER_CONN_ID,
        **SPRING_SALE,
    }
    return MarketingMessageOperator(**{**args, **kwargs})


def number(i: int) -> str:
    """A valid German mobile number, as a person would type it."""
    return f"+49 151 {i:08d}"


def digits(i: int) -> str:
    """The same number as WhatsApp writes it (E.164 digits without '+')."""
    return f"49151{i:08d}"


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Recipient rows for ``spring_sale``."""
    return [
        {"phone": number(i), "name": f"Ana{i}", "discount": "20%", "slug": f"s{i}"}
        for i in range(start, start + n)
    ]


@dataclass
class TaskInstanceStub:
    """The few task-instance attributes the operator uses when called outside a task runner."""

    dag_id: str = "wamm_ops"
    task_id: str = "send"
    map_index: int = -1
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        """Keep the value (JSON round trip, like a real XCom)."""
        self.xcoms[key] = json.loads(json.dumps(value))


def make_context(
    *, run_id: str = "manual__2026-05-01T10:00:00+00:00", logical_date: datetime | None = None, **extra: Any
) -> Any:
    """A task context with a task-instance stub (``context["ti"].xcoms`` holds what was pushed)."""
    context: dict[str, Any] = {
        "ti": TaskInstanceStub(),
        "run_id": run_id,
        "logical_date": logical_date if logical_date is not None else datetime.now(UTC),
    }
    context.update(extra)
    return context


def sandbox_connection_json(
    sandbox: Sandbox, *, max_messages_per_second: float = 1000.0, **extra: Any
) -> str:
    """JSON of a ``whatsapp`` connection to the sandbox (loopback HTTP is allowed)."""
    cfg = sandbox.config
    fields = {
        "phone_number_id": cfg.phone_number_id,
        "waba_id": cfg.waba_id,
        "max_messages_per_second": max_messages_per_second,
        "timeout": 5,
        **extra,
    }
    return json.dumps(
        {
            "conn_type": "whatsapp",
            "host": sandbox.url,
            "password": cfg.access_token,
            "extra": {k: v for k, v in fields.items() if v is not None},
        }
    )


def sqlite_connection_json(path: pathlib.Path) -> str:
    """JSON of a ``sqlite`` connection to a database file."""
    return json.dumps({"conn_type": "sqlite", "host": str(path)})


@pytest.fixture
def wa_sandbox(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point the ``wamm_test_whatsapp`` connection at the sandbox (no rate cap in the sandbox by default).

    Call it again with other extra fields (``max_messages_per_second=...``, ``waba_id=None``).
    """
    sandbox.configure(mps_cap=None)

    def configure(**extra: Any) -> str:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{WHATSAPP_CONN_ID.upper()}", sandbox_connection_json(sandbox, **extra)
        )
        return WHATSAPP_CONN_ID

    configure()
    return configure


@pytest.fixture
def ledger_path(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A fresh SQLite ledger file behind the ``wamm_test_ledger`` connection."""
    path = tmp_path / "ledger.db"
    monkeypatch.setenv(f"AIRFLOW_CONN_{LEDGER_CONN_ID.upper()}", sqlite_connection_json(path))
    return path


@pytest.fixture
def ledger(ledger_path: pathlib.Path) -> Iterator[Ledger]:
    """The test's ledger, opened for inspection."""
    led = Ledger.from_url(f"sqlite:///{ledger_path}")
    yield led
    led.dispose()


def seed_crm(path: pathlib.Path, data: Iterable[dict[str, Any]], *, table: str = "customers") -> None:
    """Create ``table`` in a SQLite file with one column per key of the first row, and fill it."""
    items = list(data)
    columns = list(items[0])
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE {table} ({', '.join(f'{c} TEXT' for c in columns)})")
        db.executemany(
            f"INSERT INTO {table} VALUES ({', '.join('?' for _ in columns)})",
            [tuple(row.get(c) for c in columns) for row in items],
        )
    db.close()


@pytest.fixture
def crm(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Path of a SQLite "CRM" database behind the ``wamm_test_crm`` connection (seed it with seed_crm)."""
    path = tmp_path / "crm.db"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CRM_CONN_ID.upper()}", sqlite_connection_json(path))
    return path
