"""Airflow fixtures: connections from environment variables, and the metadata database.

Connections
    Hooks and operators find connections through the ``AIRFLOW_CONN_<ID>`` environment variables, so
    unit tests need no database. ``airflow_connection(conn_id, conn_type=..., ...)`` sets one in the JSON
    form; ``whatsapp_connection(conn_id="whatsapp_default", ...)`` sets a ``whatsapp`` connection with
    test defaults (a token, a phone number ID and a WABA ID) and returns the connection id. Both undo
    themselves after the test (``monkeypatch``). ``whatsapp_connection_json(...)`` builds the same JSON
    outside a fixture, e.g. for a subprocess environment.

Logs
    Hooks and operators log through ``self.log``, a structlog logger that pytest's ``caplog`` does not
    see. ``airflow_logs`` captures those events for the duration of the test: a list of dicts with
    ``event`` (the formatted message) and ``log_level``.

Metadata database
    ``airflow_db`` (session scope) runs ``airflow db migrate`` once, in a subprocess with the current
    interpreter, against the private ``AIRFLOW_HOME`` of ``tests/conftest.py`` (SQLite). Suites that call
    ``dag.test()`` request it, or carry the ``airflow_db`` marker, which adds the fixture automatically.
    The migration takes a few seconds, so unit tests should not use it.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import pytest

#: Values used by ``whatsapp_connection`` unless a test passes its own.
TEST_ACCESS_TOKEN = "test-access-token-EAAG0123456789"
TEST_PHONE_NUMBER_ID = "100000000000001"
TEST_WABA_ID = "200000000000001"


def connection_json(
    *,
    conn_type: str,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    schema: str | None = None,
    port: int | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """The JSON form of an Airflow connection, as ``AIRFLOW_CONN_<ID>`` accepts it."""
    data: dict[str, Any] = {"conn_type": conn_type}
    for key, value in (("host", host), ("login", login), ("password", password), ("schema", schema)):
        if value is not None:
            data[key] = value
    if port is not None:
        data["port"] = port
    if extra:
        data["extra"] = extra
    return json.dumps(data)


def whatsapp_connection_json(
    *,
    access_token: str | None = TEST_ACCESS_TOKEN,
    host: str | None = None,
    phone_number_id: str | None = TEST_PHONE_NUMBER_ID,
    waba_id: str | None = TEST_WABA_ID,
    **extra: Any,
) -> str:
    """JSON of a ``whatsapp`` connection; ``None`` leaves a field out, ``extra`` adds extra keys."""
    fields = {"phone_number_id": phone_number_id, "waba_id": waba_id, **extra}
    return connection_json(
        conn_type="whatsapp",
        host=host,
        password=access_token,
        extra={k: v for k, v in fields.items() if v is not None},
    )


def _env_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


@pytest.fixture
def airflow_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Set a connection from its parts: ``airflow_connection(conn_id, conn_type=..., host=..., extra=...)``.

    Pass ``uri=...`` instead of the parts to use the URI form. Returns the connection id.
    """

    def set_connection(conn_id: str, *, uri: str | None = None, **parts: Any) -> str:
        monkeypatch.setenv(_env_name(conn_id), uri if uri is not None else connection_json(**parts))
        return conn_id

    return set_connection


@pytest.fixture
def whatsapp_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Set a ``whatsapp`` connection: ``whatsapp_connection("wa", host="http://127.0.0.1:8080", ...)``.

    Takes the keyword arguments of :func:`whatsapp_connection_json`; returns the connection id
    (``whatsapp_default`` unless given).
    """

    def set_connection(conn_id: str = "whatsapp_default", **kwargs: Any) -> str:
        monkeypatch.setenv(_env_name(conn_id), whatsapp_connection_json(**kwargs))
        return conn_id

    return set_connection


@pytest.fixture
def airflow_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Events logged through Airflow's structlog loggers (``self.log``) while the test runs."""
    from structlog.testing import capture_logs

    with capture_logs() as events:
        yield events


@pytest.fixture(scope="session")
def airflow_db() -> pathlib.Path:
    """Migrate the metadata database of the tests' ``AIRFLOW_HOME`` once per session; returns that home."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=False,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        pytest.fail(f"`airflow db migrate` failed with exit code {result.returncode}:\n{tail}")
    return pathlib.Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(autouse=True)
def _airflow_db_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """Give every test marked ``airflow_db`` the ``airflow_db`` fixture."""
    if request.node.get_closest_marker("airflow_db") is not None:
        request.getfixturevalue("airflow_db")
