"""The PostgreSQL and MariaDB/MySQL servers the real-database tests use, and how to clean up after them.

The URLs come from the environment, with defaults for servers on this machine:

* ``WAMM_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
* ``WAMM_TEST_MYSQL_URL`` (default ``mysql+pymysql://root@127.0.0.1:3306/test``).

A server that does not answer skips its tests with the reason, except under CI (``CI=true``), where
that is a failure: CI must not go green without having tested the real databases. Tests share the
servers with other runs, so each test uses its own table prefix (:func:`unique_prefix`) and drops its
tables afterwards (:func:`drop_prefixed_tables`).
"""

from __future__ import annotations

import functools
import json
import os
import uuid

import pytest
import sqlalchemy as sa

POSTGRES_ENV = "WAMM_TEST_POSTGRES_URL"
MYSQL_ENV = "WAMM_TEST_MYSQL_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
#: Backends of the parametrised tests: a SQLite file and the two servers.
BACKENDS = ("sqlite", "postgres", "mysql")


#: Airflow connection types of the backends, as a user would create them.
CONN_TYPES = {"sqlite": "sqlite", "postgres": "postgres", "mysql": "mysql"}


def in_ci() -> bool:
    """Whether this is a CI run (``CI=true``), where a missing database server is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def configured_url(backend: str) -> str:
    """The URL of ``backend`` (``postgres`` or ``mysql``) from the environment or the default."""
    if backend == "postgres":
        return os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
    if backend == "mysql":
        return os.environ.get(MYSQL_ENV) or DEFAULT_MYSQL_URL
    raise ValueError(f"unknown backend {backend!r}")


@functools.cache
def _probe(url: str) -> str | None:
    """``None`` when a server answers at ``url``, else why not (checked once per session)."""
    parsed = sa.engine.make_url(url)
    connect_args: dict[str, object] = {}
    if parsed.get_backend_name() == "postgresql" or parsed.get_backend_name() in ("mysql", "mariadb"):
        connect_args["connect_timeout"] = 3
    engine = sa.create_engine(parsed, connect_args=connect_args, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first[:300]}"
    finally:
        engine.dispose()
    return None


def server_url(backend: str) -> str:
    """The URL of a reachable ``backend`` server; skips the test (fails it under CI) otherwise."""
    url = configured_url(backend)
    problem = _probe(url)
    if problem is not None:
        env = POSTGRES_ENV if backend == "postgres" else MYSQL_ENV
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        message = f"no {backend} server answers at {shown} ({problem}); set {env} to one"
        if in_ci():
            pytest.fail(f"{message}. CI=true: the real-database tests must run", pytrace=False)
        pytest.skip(message)
    return url


def unique_prefix() -> str:
    """A table prefix no other test or run uses (``t<12 hex>_``)."""
    return f"t{uuid.uuid4().hex[:12]}_"


def drop_prefixed_tables(url: str | sa.engine.URL, prefix: str) -> None:
    """Drop every table whose name starts with ``prefix`` in the database of ``url``."""
    if not prefix or not prefix.startswith("t") or not prefix.endswith("_"):
        raise ValueError(f"refusing to drop tables by the prefix {prefix!r}")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        names = [n for n in sa.inspect(engine).get_table_names() if n.startswith(prefix)]
        if not names:
            return
        # One statement, no reflection of each table (slow on MariaDB): foreign keys between the
        # dropped tables are dropped with them (CASCADE), or not checked meanwhile (MySQL).
        listed = ", ".join(engine.dialect.identifier_preparer.quote(n) for n in names)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {listed} CASCADE")
            elif engine.dialect.name in ("mysql", "mariadb"):
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {listed}")
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
            else:
                metadata = sa.MetaData()
                tables = [sa.Table(n, metadata, autoload_with=conn) for n in names]
                metadata.drop_all(conn, tables=tables)
    finally:
        engine.dispose()


def connection_json(backend: str, url: str) -> str:
    """The Airflow connection (JSON form) a user would create for the database at ``url``."""
    parsed = sa.engine.make_url(url)
    if backend == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": parsed.database})
    data = {
        "conn_type": CONN_TYPES[backend],
        "host": parsed.host,
        "port": parsed.port,
        "login": parsed.username,
        "password": parsed.password,
        "schema": parsed.database,
    }
    return json.dumps({k: v for k, v in data.items() if v is not None})
