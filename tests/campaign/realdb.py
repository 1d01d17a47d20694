"""PostgreSQL and MariaDB for the portability tests: the shared test servers of ``tests/realdb/servers.py``.

The servers are not started here any more: their URLs come from ``WAMM_TEST_POSTGRES_URL`` and
``WAMM_TEST_MYSQL_URL`` (defaults: the local servers). A server that does not answer skips the test,
or fails it under CI. Tests using these must keep to their own tables (see
:func:`tests.realdb.servers.unique_prefix`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.realdb.servers import server_url


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the SQLAlchemy URL of the test PostgreSQL server (psycopg 3)."""
    yield server_url("postgres")


@contextmanager
def mariadb_server() -> Iterator[str]:
    """Yield the SQLAlchemy URL of the test MariaDB/MySQL server (PyMySQL)."""
    yield server_url("mysql")
