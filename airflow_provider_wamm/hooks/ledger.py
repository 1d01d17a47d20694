"""Where the send ledger lives: an Airflow connection, or a SQLite file under ``AIRFLOW_HOME``.

The ledger is plain SQLAlchemy Core (``campaign.ledger``); this module only turns an Airflow connection
into a database URL, so any SQLAlchemy-capable database works (PostgreSQL in production).

One setting names the ledger for the whole deployment: ``[wamm] ledger_conn_id`` (env
``AIRFLOW__WAMM__LEDGER_CONN_ID``). Operators, sensors and triggers given no ``ledger_conn_id``, and the
webhook receiver on the API server, all resolve it here, so they read and write the same tables.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseHook
from sqlalchemy.engine import URL, make_url

from airflow_provider_wamm.campaign.ledger import DEFAULT_TABLE_PREFIX, Ledger, default_ledger_path
from airflow_provider_wamm.get_provider_info import read_config
from airflow_provider_wamm.graph.errors import ConfigurationError

#: SQLAlchemy drivers used for connection types whose Airflow provider may not be installed.
_DIALECTS: dict[str, str] = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}


def configured_ledger_conn_id() -> str | None:
    """``[wamm] ledger_conn_id``: the deployment's ledger connection (``None``: the SQLite file)."""
    return read_config("ledger_conn_id") or None


def configured_table_prefix() -> str:
    """``[wamm] ledger_table_prefix``: prefix of the tables the webhook receiver writes."""
    return read_config("ledger_table_prefix") or DEFAULT_TABLE_PREFIX


def ledger_url(ledger_conn_id: str | None) -> URL:
    """The SQLAlchemy URL of the ledger named by ``ledger_conn_id``.

    ``None`` or empty: the connection of ``[wamm] ledger_conn_id``, or when that is unset too the SQLite
    file :func:`default_ledger_path` (one machine only).
    """
    ledger_conn_id = ledger_conn_id or configured_ledger_conn_id()
    if not ledger_conn_id:
        path = default_ledger_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return URL.create("sqlite", database=str(path))
    conn = BaseHook.get_connection(ledger_conn_id)
    extra = conn.extra_dejson
    explicit = extra.get("sqlalchemy_url")
    if explicit:
        return make_url(str(explicit))
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        database = conn.host or conn.schema
        if not database:
            raise ConfigurationError(
                f"Ledger connection {ledger_conn_id!r}: a sqlite connection needs the database file "
                "in 'host'."
            )
        return URL.create("sqlite", database=database)
    drivername = _DIALECTS.get(conn_type)
    if drivername is None:
        raise ConfigurationError(
            f"Ledger connection {ledger_conn_id!r} has type {conn_type!r}; use postgres, mysql or sqlite, "
            "or set 'sqlalchemy_url' in its extra."
        )
    return URL.create(
        drivername,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )


def get_ledger(
    ledger_conn_id: str | None, *, table_prefix: str = DEFAULT_TABLE_PREFIX, **engine_kwargs: Any
) -> Ledger:
    """Open the ledger of ``ledger_conn_id`` (``None``: the configured one); tables are made on first use."""
    return Ledger.from_url(ledger_url(ledger_conn_id), table_prefix=table_prefix, **engine_kwargs)
