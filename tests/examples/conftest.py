"""Fixtures of the example-DAG tests: the examples' connections pointed at the sandbox, a CRM, a ledger and
a live webhook receiver, and a loader that gets an example DAG into the metadata database.

Why a loader: ``dag.test()`` only runs DAGs it finds serialized in the metadata database, and it syncs
only the configured dags folder (``tests/dags`` for the whole test session, see ``tests/conftest.py``).
The examples live in ``dags_examples/`` and must stay there (users copy them), so
:func:`load_example_dags` parses that folder with a ``DagBag`` and writes its DAGs to the database under
the ``dags-folder`` bundle, the workaround Airflow's own tests use
(``DagBundlesManager().sync_bundles_to_db()``, ``DagBag.bag_dag()``, ``sync_bag_to_db()``). ``dag.test()``
then finds each DAG by id, re-syncs ``tests/dags`` (which leaves these DAGs in place) and runs the
in-memory DAG object, so the example files are tested exactly as written. Copying or symlinking them
into ``tests/dags`` would work too, but would leak them into the other suites' DAG runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.sandbox import Sandbox

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags_examples"

#: Verify token of the test receiver (the handshake is not exercised here).
VERIFY_TOKEN = "examples-verify-token"

#: Columns of the ``customers`` table the examples query.
CUSTOMER_COLUMNS = ("phone", "first_name", "discount", "promo_slug", "country", "signup_date")


def de_number(i: int) -> str:
    """A valid German mobile number written nationally, as a CRM holds it (read with region DE)."""
    return f"0151 {20000000 + i:08d}"


def de_digits(i: int) -> str:
    """The same number as WhatsApp writes it (E.164 digits without '+')."""
    return f"49151{20000000 + i:08d}"


@dataclass
class Customer:
    """One row of the CRM's ``customers`` table."""

    phone: str
    first_name: str
    discount: int = 20
    promo_slug: str = "spring"
    country: str = "DE"
    signup_date: str = "2026-01-01"

    def row(self) -> tuple[Any, ...]:
        """The row in column order."""
        return tuple(getattr(self, c) for c in CUSTOMER_COLUMNS)


def seed_customers(path: pathlib.Path, customers: list[Customer]) -> None:
    """(Re)create the ``customers`` table in a SQLite file."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DROP TABLE IF EXISTS customers")
        db.execute(
            "CREATE TABLE customers (phone TEXT, first_name TEXT, discount INTEGER, promo_slug TEXT, "
            "country TEXT, signup_date TEXT)"
        )
        db.executemany(
            f"INSERT INTO customers VALUES ({', '.join('?' * len(CUSTOMER_COLUMNS))})",
            [c.row() for c in customers],
        )


#: App secret shared by the sandbox (signs webhooks) and the receiver (checks them).
APP_SECRET = "examples-app-secret"


@dataclass
class Receiver:
    """The webhook receiver app served by uvicorn; ``ledger`` is where it writes (set per test)."""

    url: str = ""
    ledger: Ledger | None = None
    gate: threading.Event | None = None
    """When set, each webhook waits (up to 10 s) for this event before it is stored."""


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[Receiver]:
    """``airflow_provider_wamm.webhooks.create_app`` under uvicorn in a thread, on a free port."""
    import uvicorn

    from airflow_provider_wamm.webhooks import WebhookSettings, create_app

    receiver = Receiver()

    def settings() -> WebhookSettings:  # called per request, in a worker thread
        gate = receiver.gate
        if gate is not None:
            gate.wait(10)
        return WebhookSettings(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, ledger=receiver.ledger)

    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", access_log=False, log_config=None, timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the webhook receiver did not start"
        time.sleep(0.01)
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class ExampleEnv:
    """What one example run uses: the sandbox, the CRM file, the ledger and the report folder."""

    sandbox: Sandbox
    crm: pathlib.Path
    ledger_path: pathlib.Path
    report_dir: pathlib.Path


@pytest.fixture
def example_env(
    sandbox: Sandbox, receiver_server: Receiver, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ExampleEnv]:
    """The examples' connections and Variables, set as ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*``.

    ``whatsapp_default`` points at the sandbox (no rate cap there, a high one in the connection),
    ``crm`` at an empty SQLite file (seed it with :func:`seed_customers`), ``wamm_ledger`` at a fresh
    SQLite ledger named by ``[wamm] ledger_conn_id`` (``AIRFLOW__WAMM__LEDGER_CONN_ID``: the examples name
    no ledger of their own), which the receiver writes the sandbox's signed status webhooks into.
    Webhooks come quickly (a few ms apart, each message's statuses in one POST) so that a campaign
    settles before its sensor first looks.
    """
    crm, ledger_path, report_dir = tmp_path / "crm.db", tmp_path / "ledger.db", tmp_path / "reports"
    report_dir.mkdir()
    ledger = Ledger.from_url(f"sqlite:///{ledger_path}")
    ledger.ensure_schema()
    receiver_server.ledger = ledger
    sandbox.configure(
        mps_cap=None,
        app_secret=APP_SECRET,
        webhook_url=receiver_server.url,
        webhook_delay_s=0.01,
        webhook_step_s=0.0,
        webhook_flush_s=0.02,
        webhook_batch_size=1000,
    )
    cfg = sandbox.config
    conns: Mapping[str, dict[str, Any]] = {
        "whatsapp_default": {
            "conn_type": "whatsapp",
            "host": sandbox.url,
            "password": cfg.access_token,
            "extra": {
                "phone_number_id": cfg.phone_number_id,
                "waba_id": cfg.waba_id,
                "max_messages_per_second": 1000,
                "timeout": 5,
            },
        },
        "crm": {"conn_type": "sqlite", "host": str(crm)},
        "wamm_ledger": {"conn_type": "sqlite", "host": str(ledger_path)},
    }
    for conn_id, data in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(data))
    monkeypatch.setenv("AIRFLOW__WAMM__LEDGER_CONN_ID", "wamm_ledger")
    monkeypatch.setenv("AIRFLOW_VAR_WAMM_REPORT_DIR", str(report_dir))
    try:
        yield ExampleEnv(sandbox, crm, ledger_path, report_dir)
    finally:
        sandbox.configure(webhook_url=None)
        receiver_server.ledger = None
        ledger.dispose()


@pytest.fixture(scope="session")
def example_dags() -> dict[str, Any]:
    """Every DAG of ``dags_examples/`` by id, parsed once (no database needed)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=EXAMPLES)
    assert not bag.import_errors, bag.import_errors
    return dict(bag.dags)


@pytest.fixture(scope="session")
def load_example_dags(airflow_db: pathlib.Path, example_dags: dict[str, Any]) -> Callable[..., Any]:
    """``load(dag_id)``: the example DAG, written to the metadata database so ``dag.test()`` runs it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()  # the bundle row must exist before DAGs point at it
    bag = DagBag(collect_dags=False)
    for dag in example_dags.values():
        bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)

    def load(dag_id: str) -> Any:
        return example_dags[dag_id]

    return load


def run_dag(dag: Any, **kwargs: Any) -> tuple[Any, dict[str, str], dict[tuple[str, int], Any]]:
    """``dag.test(**kwargs)``; returns the run, its task instances' states and its return-value XComs."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dagrun = dag.test(**kwargs)
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dagrun.run_id
            )
        ).all()
        states = {
            f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state) for ti in tis
        }
        rows: list[Any] = list(
            session.scalars(XComModel.get_many(run_id=dagrun.run_id, dag_ids=dag.dag_id, key="return_value"))
        )
        xcoms = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in rows}
    return dagrun, states, xcoms
