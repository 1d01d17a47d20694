"""Fixtures of the real-deployment suite: the provider's wheel in a fresh environment, and one Airflow
deployment shared by the suite's tests (starting one takes about a minute).

On a machine without what the suite needs (PostgreSQL, Redis, Chromium, ``uv``), its tests are skipped
with the reason. Under ``CI=true`` they never are: a missing service is a failure there.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import time
from collections.abc import Iterator

import pytest

from tests.deployment.airflow_deployment import AirflowDeployment
from tests.deployment.install import InstalledAirflow, find_uv, install
from tests.deployment.services import (
    CHROMIUM,
    PG_HOST,
    PG_PORT,
    REDIS_HOST,
    REDIS_PORT,
    postgres_database,
    reachable,
)

ON_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
#: Wall time of the pieces of the suite, printed at the end of the session.
TIMINGS: dict[str, float] = {}
#: Lines the tests want in the session's summary (what the crash tests measured).
SUMMARY: list[str] = []


def missing(*needs: str) -> list[str]:
    """What of ``needs`` (``postgres``, ``redis``, ``chromium``, ``uv``) this machine lacks."""
    checks = {
        "postgres": lambda: reachable(PG_HOST, PG_PORT),
        "redis": lambda: reachable(REDIS_HOST, REDIS_PORT),
        "chromium": lambda: CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None,
        "uv": lambda: find_uv() is not None,
    }
    return [need for need in needs if not checks[need]()]


def require(*needs: str) -> None:
    """Skip the test when the machine lacks one of ``needs``; fail instead under ``CI=true``."""
    lacking = missing(*needs)
    if not lacking:
        return
    message = (
        f"this machine lacks {', '.join(lacking)} (the deployment suite needs it; `make test` installs it)"
    )
    if ON_CI:
        pytest.fail(message + " -- under CI=true the deployment suite must run")
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is a ``deployment`` test with a long timeout (the shared deployment starts first)."""
    here = pathlib.Path(__file__).parent
    for item in items:
        if here in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.deployment)
            item.add_marker(pytest.mark.timeout(1200))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in TIMINGS.items())
        terminalreporter.write_line(f"deployment suite timings: {parts}")
    for line in SUMMARY:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def installed_airflow(tmp_path_factory: pytest.TempPathFactory) -> InstalledAirflow:
    """The provider's wheel and Airflow in a fresh virtual environment."""
    require("postgres", "uv")
    uv = find_uv()
    assert uv is not None
    installed = install(tmp_path_factory.mktemp("wamm-install"), uv)
    TIMINGS["install"] = installed.seconds
    return installed


@pytest.fixture(scope="session")
def deployment(
    installed_airflow: InstalledAirflow, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowDeployment]:
    """Airflow on LocalExecutor with the examples, the sandbox and the webhook receiver, running."""
    started = time.monotonic()
    home = tmp_path_factory.mktemp("wamm-airflow-home")
    with postgres_database("wamm_meta") as metadata_db, postgres_database("wamm_ledger") as ledger_db:
        deployed = AirflowDeployment(installed_airflow, home, metadata_db, ledger_db)
        try:
            deployed.prepare()
            deployed.start()
            deployed.wait_for_dags()
            TIMINGS["deployment start"] = time.monotonic() - started
            yield deployed
            TIMINGS["deployment total"] = time.monotonic() - started
        finally:
            deployed.close()


@pytest.fixture(autouse=True)
def _quiet_afterwards(deployment: AirflowDeployment) -> Iterator[None]:
    """After each test, no run of an example is left going (it would read the next test's CRM)."""
    yield
    deployment.end_all_runs()
