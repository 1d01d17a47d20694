"""A real Airflow deployment on loopback: API server, scheduler, DAG processor, triggerer (and Celery
workers), on a fresh PostgreSQL metadata database, with the examples in its dags folder.

Everything a user configures is set the way a user sets it: ``AIRFLOW__*`` options (the provider's
``[wamm] ledger_conn_id`` among them), the CRM and ledger connections as ``AIRFLOW_CONN_*``, and the
``whatsapp_default`` connection created through the REST API, so it lives in the metadata database like
one made in the UI. The webhook receiver is the provider's plugin on the API server
(``/whatsapp-webhooks/``), which writes the sandbox's signed webhooks into the same ledger.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pathlib
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.deployment.install import ROOT, InstalledAirflow
from tests.deployment.rest import AirflowApi
from tests.deployment.services import (
    PHONE_NUMBER_ID,
    SANDBOX_APP_SECRET,
    SANDBOX_TOKEN,
    SANDBOX_VERIFY_TOKEN,
    WABA_ID,
    SandboxProcess,
    Service,
    answers,
    free_port,
    postgres_url,
    start_sandbox,
    start_service,
    wait_until,
)

EXAMPLE_DAG_IDS = (
    "wamm_campaign_from_sql",
    "wamm_recipients_from_task",
    "wamm_report_on_asset",
    "wamm_safe_backfill",
    "wamm_sharded_campaign",
)
USERNAME, PASSWORD = "admin", "deployment-admin-password"
#: Columns of the examples' ``customers`` table.
CUSTOMER_COLUMNS = ("phone", "first_name", "discount", "promo_slug", "country", "signup_date")


def de_number(i: int) -> str:
    """A valid German mobile number written nationally, as a CRM holds it."""
    return f"0151 {30000000 + i:08d}"


def de_digits(i: int) -> str:
    """The same number as WhatsApp writes it (E.164 digits)."""
    return f"49151{30000000 + i:08d}"


@dataclass
class AirflowDeployment:
    """One running deployment; :meth:`close` stops everything it started."""

    installed: InstalledAirflow
    home: pathlib.Path
    metadata_db: str
    ledger_db: str
    executor: str = "LocalExecutor"
    services: dict[str, Service] = field(default_factory=dict)
    api_port: int = 0
    log_server_ports: tuple[int, int] = (0, 0)
    queue: str = field(default_factory=lambda: f"wamm_{uuid.uuid4().hex[:8]}")
    sandbox: SandboxProcess | None = None
    api: AirflowApi | None = None
    seeded_phones: set[str] = field(default_factory=set)
    """Every phone number any test put in the CRM, as written there."""

    # -- configuration ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def crm_path(self) -> pathlib.Path:
        return self.home / "crm.db"

    @property
    def ledger_url(self) -> str:
        return postgres_url(self.ledger_db)

    def env(self) -> dict[str, str]:
        """The environment of every Airflow process (what a user puts in airflow.cfg or the env)."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "WAMM_", "VIRTUAL_ENV", "PYTEST", "PYTHON"))
        }
        base["PATH"] = f"{self.installed.bin}{os.pathsep}{os.environ.get('PATH', '')}"
        options = {
            "CORE__EXECUTOR": self.executor,
            "CORE__DAGS_FOLDER": str(self.home / "dags"),
            "CORE__LOAD_EXAMPLES": "False",
            "CORE__PARALLELISM": "8",
            "CORE__FERNET_KEY": self._fernet_key(),
            "CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "CORE__TEST_CONNECTION": "Enabled",
            "CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "API__BASE_URL": self.api_url,
            "API__HOST": "127.0.0.1",
            "API__PORT": str(self.api_port),
            "API__WORKERS": "1",
            "API_AUTH__JWT_SECRET": self._secret("jwt"),
            "DATABASE__SQL_ALCHEMY_CONN": postgres_url(self.metadata_db),
            "DATABASE__SQL_ALCHEMY_CONN_ASYNC": postgres_url(self.metadata_db),  # psycopg 3 is async too
            "DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "LOGGING__LOGGING_LEVEL": "INFO",
            "LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_ports[0]),
            "LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_server_ports[1]),
            "OPERATORS__DEFAULT_QUEUE": self.queue,
            "CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
            "CELERY__RESULT_BACKEND": "db+" + postgres_url(self.metadata_db),
            "CELERY__WORKER_CONCURRENCY": "4",
            # The provider's one ledger setting, read by the tasks and by the webhook receiver.
            "WAMM__LEDGER_CONN_ID": "wamm_ledger",
        }
        env = {**base, **{f"AIRFLOW__{k}": v for k, v in options.items()}}
        env["AIRFLOW_HOME"] = str(self.home)
        env["AIRFLOW_CONN_WAMM_LEDGER"] = json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": 5432,
                "login": "postgres",
                "schema": self.ledger_db,
            }
        )
        env["AIRFLOW_CONN_CRM"] = json.dumps({"conn_type": "sqlite", "host": str(self.crm_path)})
        env["AIRFLOW_VAR_WAMM_REPORT_DIR"] = str(self.home / "reports")
        return env

    def _secret(self, name: str) -> str:
        path = self.home / f".{name}"
        if not path.exists():
            path.write_text(uuid.uuid4().hex + uuid.uuid4().hex, encoding="utf-8")
        return path.read_text(encoding="utf-8")

    def _fernet_key(self) -> str:
        return base64.urlsafe_b64encode(self._secret("fernet")[:32].encode()).decode()

    # -- lifecycle -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """AIRFLOW_HOME, the dags folder (the examples, as users copy them), users, the database."""
        self.home.mkdir(parents=True, exist_ok=True)
        dags = self.home / "dags"
        shutil.rmtree(dags, ignore_errors=True)
        shutil.copytree(ROOT / "dags_examples", dags)
        (self.home / "passwords.json").write_text(json.dumps({USERNAME: PASSWORD}), encoding="utf-8")
        self.api_port = self.api_port or free_port()
        self.log_server_ports = (free_port(), free_port())
        self.seed_customers([])
        self.airflow("db", "migrate", timeout=600)

    def airflow(self, *args: str, timeout: float = 180) -> str:
        """Run an ``airflow`` CLI command of the deployment; its output (raises on failure)."""
        import subprocess

        result = subprocess.run(
            [self.installed.command("airflow"), *args],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-4000:]}")
        return result.stdout

    def start(
        self, components: Sequence[str] = ("api-server", "scheduler", "dag-processor", "triggerer")
    ) -> None:
        """Start the Airflow components (each in its own process group) and the sandbox."""
        for component in components:
            self.start_component(component)
        wait_until(
            lambda: answers(f"{self.api_url}/api/v2/monitor/health") or self._died(), 120, "the API server"
        )
        self._check_alive()
        self.api = AirflowApi(self.api_url, USERNAME, PASSWORD)
        self.api.login()
        if self.sandbox is None:
            webhook_url = f"{self.api_url}/whatsapp-webhooks/"
            self.sandbox = start_sandbox(
                self.installed.command("wamm-sandbox"), self.home, self.env(), webhook_url
            )
        self.api.put_connection(self.whatsapp_connection())

    def start_component(self, component: str, *extra: str, name: str | None = None) -> Service:
        """Start one ``airflow <component>`` process."""
        name = name or component
        args = [self.installed.command("airflow"), *component.split(), *extra]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.api_port)]
        service = start_service(name, args, self.env(), self.home / "logs" / f"{name}.log", self.home)
        self.services[name] = service
        return service

    def stop_component(self, name: str) -> None:
        service = self.services.pop(name, None)
        if service is not None:
            service.stop()

    def _died(self) -> bool:
        return any(not s.alive() for s in self.services.values())

    def _check_alive(self) -> None:
        dead = [s for s in self.services.values() if not s.alive()]
        if dead:
            raise RuntimeError("\n\n".join(f"{s.name} exited:\n{s.tail()}" for s in dead))

    def close(self) -> None:
        """Stop every process this deployment started."""
        for name in list(self.services):
            self.stop_component(name)
        if self.sandbox is not None:
            self.sandbox.service.stop()

    def wait_for_dags(self, dag_ids: Iterable[str] = EXAMPLE_DAG_IDS, timeout: float = 180) -> None:
        """Until the DAG processor has parsed every example (and reported no import error)."""
        api = self.require_api()
        wanted = set(dag_ids)

        def parsed() -> bool:
            self._check_alive()
            errors = api.import_errors()
            if errors:
                raise AssertionError(f"import errors: {errors}")
            return wanted <= api.dag_ids()

        wait_until(parsed, timeout, f"the DAGs {sorted(wanted)}", interval=2)

    def end_all_runs(self, dag_ids: Iterable[str] = EXAMPLE_DAG_IDS) -> None:
        """Mark every unfinished run failed and pause the DAGs: the next test starts on a quiet deployment
        (a run left going would read the next test's CRM)."""
        api = self.require_api()
        for dag_id in dag_ids:
            api.set_paused(dag_id, True)
            for run in api.runs(dag_id):
                if run["state"] not in ("success", "failed"):
                    api.set_run_state(dag_id, run["dag_run_id"], "failed")

        def quiet() -> bool:
            return not any(
                t["state"] in ("running", "queued", "scheduled", "deferred", "restarting")
                for dag_id in dag_ids
                for run in api.runs(dag_id)
                for t in api.task_instances(dag_id, run["dag_run_id"])
            )

        wait_until(quiet, 120, "the task instances of ended runs to stop", interval=1)

    def require_api(self) -> AirflowApi:
        assert self.api is not None, "start() the deployment first"
        return self.api

    def require_sandbox(self) -> SandboxProcess:
        assert self.sandbox is not None, "start() the deployment first"
        return self.sandbox

    # -- data ------------------------------------------------------------------------------------

    def whatsapp_connection(self) -> dict[str, Any]:
        """``whatsapp_default`` as the REST API (and the UI) stores it: no port, secrets in the extra."""
        extra = {
            "phone_number_id": PHONE_NUMBER_ID,
            "waba_id": WABA_ID,
            "app_secret": SANDBOX_APP_SECRET,
            "webhook_verify_token": SANDBOX_VERIFY_TOKEN,
            "max_messages_per_second": 80,
            "timeout": 10,
        }
        return {
            "connection_id": "whatsapp_default",
            "conn_type": "whatsapp",
            "host": self.require_sandbox().url,
            "password": SANDBOX_TOKEN,
            "extra": json.dumps(extra),
        }

    def seed_customers(self, rows: Sequence[Sequence[Any]]) -> None:
        """(Re)create the CRM's ``customers`` table with ``rows`` (in :data:`CUSTOMER_COLUMNS` order)."""
        self.seeded_phones.update(str(row[0]) for row in rows)
        with contextlib.closing(sqlite3.connect(self.crm_path)) as db, db:
            db.execute("DROP TABLE IF EXISTS customers")
            db.execute(f"CREATE TABLE customers ({', '.join(f'{c} TEXT' for c in CUSTOMER_COLUMNS)})")
            db.executemany(f"INSERT INTO customers VALUES ({', '.join('?' * len(CUSTOMER_COLUMNS))})", rows)

    def ledger_rows(self, campaign_id: str, shard_index: int | None = None) -> dict[str, str]:
        """``recipient -> state`` of the ledger's sends for ``campaign_id`` (of one shard)."""
        import psycopg

        query = "SELECT recipient, state FROM wamm_sends WHERE campaign_id = %s"
        params: tuple[Any, ...] = (campaign_id,)
        if shard_index is not None:
            query, params = query + " AND shard_index = %s", (campaign_id, shard_index)
        with contextlib.closing(psycopg.connect(postgres_url(self.ledger_db, "postgresql"))) as db:
            try:
                rows = db.execute(query, params).fetchall()
            except psycopg.errors.UndefinedTable:  # no campaign has run yet: the tables come with the first
                return {}
        return {str(r): str(s) for r, s in rows}

    def resolved_rows(self, campaign_id: str) -> set[str]:
        """Recipients of ``campaign_id`` whose send was ``unknown`` until a status webhook resolved it."""
        import psycopg

        query = "SELECT recipient FROM wamm_sends WHERE campaign_id = %s AND error_details LIKE %s"
        with contextlib.closing(psycopg.connect(postgres_url(self.ledger_db, "postgresql"))) as db:
            rows = db.execute(query, (campaign_id, "unknown until Meta's status webhook%")).fetchall()
        return {str(r) for (r,) in rows}

    def task_log_files(self, dag_id: str, run_id: str, task_id: str) -> list[pathlib.Path]:
        """The task's log files, one per try (and map index), as the workers wrote them."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return sorted(folder.rglob("attempt=*.log"))

    def all_task_logs(self) -> Iterator[tuple[pathlib.Path, str]]:
        """Every task log of the deployment, with its text."""
        for path in sorted((self.home / "logs").rglob("attempt=*.log")):
            yield path, path.read_text(encoding="utf-8", errors="replace")
