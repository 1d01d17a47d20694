"""The operator with PostgreSQL as both the recipient source and the ledger (a throw-away local server).

Slow (the server takes several seconds to start): run with ``-m slow``. Skipped when the PostgreSQL
server binaries are not installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.hooks.recipients import streaming_cursor
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from tests.campaign.realdb import postgres_server
from tests.operators.conftest import SPRING_SALE, WHATSAPP_CONN_ID, digits, make_context
from tests.realdb.servers import drop_prefixed_tables, unique_prefix

pytestmark = [pytest.mark.slow, pytest.mark.realdb]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def prefix(postgres_url: str) -> Iterator[str]:
    """A table prefix of this test alone (the server is shared): the customers and the ledger's tables."""
    prefix = unique_prefix()
    yield prefix
    drop_prefixed_tables(postgres_url, prefix)


@pytest.fixture
def pg_conn_id(postgres_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_url(postgres_url)
    conn = {"conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username}
    monkeypatch.setenv("AIRFLOW_CONN_WAMM_TEST_PG", json.dumps({**conn, "schema": url.database}))
    engine = sa.create_engine(postgres_url)
    with engine.begin() as db:
        db.execute(
            sa.text(
                f"CREATE TABLE {prefix}customers (id int, phone text, name text, discount text, slug text)"
            )
        )
        db.execute(
            sa.text(
                f"INSERT INTO {prefix}customers SELECT g, '+49151' || lpad(g::text, 8, '0'), 'Ana' || g, "
                "'20%', 's' || g FROM generate_series(0, 2499) g"
            )
        )
    engine.dispose()
    return "wamm_test_pg"


def test_postgres_source_streams_with_a_server_side_cursor_and_postgres_ledger(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], pg_conn_id: str, postgres_url: str, prefix: str
) -> None:
    from airflow.providers.common.compat.sdk import BaseHook

    hook = BaseHook.get_connection(pg_conn_id).get_hook()
    db = hook.get_conn()
    try:
        assert type(streaming_cursor(db)).__name__ == "ServerCursor"  # rows are fetched as they are read
    finally:
        db.close()

    op = MarketingMessageOperator(
        task_id="send",
        sql=f"SELECT phone, name, discount, slug FROM {prefix}customers WHERE id >= %(first)s ORDER BY id",
        sql_conn_id=pg_conn_id,
        parameters={"first": 500},
        whatsapp_conn_id=WHATSAPP_CONN_ID,
        ledger_conn_id=pg_conn_id,
        ledger_table_prefix=prefix,
        campaign_id="pg-campaign",
        batch_size=300,
        **SPRING_SALE,
    )
    result = op.execute(make_context())
    assert result["total"] == result["accepted"] == 2000
    sends = sandbox.sends_per_recipient()
    assert set(sends) == {digits(i) for i in range(500, 2500)} and set(sends.values()) == {1}
    ledger = Ledger.from_url(postgres_url, table_prefix=prefix)
    try:
        assert send_counts(ledger, "pg-campaign") == {"accepted": 2000}
    finally:
        ledger.dispose()
    again = op.execute(make_context())
    assert again["already_done"] == 2000 and len(sandbox.messages) == 2000
