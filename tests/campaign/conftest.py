"""Fixtures of the campaign engine tests: ledgers on SQLite (file, memory), PostgreSQL and MariaDB.

The PostgreSQL and MariaDB servers are the ones of ``tests/realdb/servers.py`` (URLs from
``WAMM_TEST_POSTGRES_URL`` / ``WAMM_TEST_MYSQL_URL``; skipped when absent, a failure under CI).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from tests.realdb.servers import drop_prefixed_tables, server_url, unique_prefix


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the test PostgreSQL server (skips when none answers)."""
    return server_url("postgres")


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """URL of the test MariaDB/MySQL server (skips when none answers)."""
    return server_url("mysql")


@pytest.fixture
def ledger_path(tmp_path: pathlib.Path) -> pathlib.Path:
    """Path of a fresh SQLite ledger file."""
    return tmp_path / "ledger.db"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.realdb),
        pytest.param("mariadb", marks=pytest.mark.realdb),
    ]
)
def ledger_url(request: pytest.FixtureRequest, ledger_path: pathlib.Path) -> str:
    """A database URL per backend: a SQLite file, or the session's PostgreSQL / MariaDB server."""
    if request.param == "sqlite":
        return f"sqlite:///{ledger_path}"
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def table_prefix(ledger_url: str) -> Iterator[str]:
    """A table prefix unique to the test (servers are shared); its tables are dropped afterwards."""
    prefix = unique_prefix()
    yield prefix
    drop_prefixed_tables(ledger_url, prefix)


@pytest.fixture
def ledger(ledger_url: str, table_prefix: str) -> Iterator[Ledger]:
    """A ledger on each backend, disposed after the test."""
    led = Ledger.from_url(ledger_url, table_prefix=table_prefix)
    yield led
    led.dispose()


@pytest.fixture
def sqlite_ledger(ledger_path: pathlib.Path) -> Iterator[Ledger]:
    """A ledger in a SQLite file only (for tests that are about the engine, not the database)."""
    led = Ledger.from_url(f"sqlite:///{ledger_path}")
    yield led
    led.dispose()


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    """A ledger in an in-memory SQLite database shared by all threads (StaticPool)."""
    led = Ledger.from_url("sqlite://")
    yield led
    led.dispose()
