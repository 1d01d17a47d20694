"""SQL identifiers a user passes (ledger table prefix and schema, report table name) are validated.

Values are always bound parameters; the only names that reach SQL text are these identifiers, so
anything that is not a plain identifier is refused with an error saying what is allowed, before any
table is created or any message sent.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, cast

import pytest
import sqlalchemy as sa
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import parse_table_name, write_report_table
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor
from airflow_provider_wamm.webhooks import create_app, sign
from airflow_provider_wamm.webhooks.plugin import AirflowWebhookSettings
from tests.webhooks.conftest import ASGIClient

INJECTIONS = [
    "x; DROP TABLE wamm_sends; --",
    "x'); DROP TABLE y; --",
    'x"; DELETE FROM wamm_sends; --',
    "x` OR 1=1 #",
    "wamm sends",
    "wamm-sends",
    "x/*c*/",
    "1starts_with_digit",
    "ünïcode",
    "x\x00y",
    "a" * 64,
    "schema.table.extra",
    ".table",
    "table.",
]


def _tables(engine: sa.engine.Engine) -> list[str]:
    return sa.inspect(engine).get_table_names()


@pytest.mark.parametrize("prefix", INJECTIONS)
def test_ledger_table_prefix_is_an_identifier(prefix: str, tmp_path: pathlib.Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'l.db'}")
    with pytest.raises(ConfigurationError) as info:
        Ledger(engine, table_prefix=prefix)
    assert "letters, digits and '_'" in str(info.value)
    with pytest.raises(ConfigurationError):
        Ledger(engine, schema=prefix)
    assert _tables(engine) == []


@pytest.mark.parametrize("name", [*INJECTIONS, "", "a" * 70])
def test_report_table_name_is_an_identifier(name: str, tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="report table name"):
        parse_table_name(name)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ValueError):
        write_report_table(engine, name, [])
    assert _tables(engine) == []
    if name and "{{" not in name:
        with pytest.raises(ValueError):
            MarketingResponsesSensor(task_id="r", campaign_id="c", report_table=name)


@pytest.mark.parametrize("name", ["wamm_report", "analytics.wamm_report", "_x9", "A" * 63])
def test_plain_report_table_names_are_accepted(name: str) -> None:
    schema, table = parse_table_name(name)
    assert (f"{schema}.{table}" if schema else table) == name


def test_operator_refuses_a_bad_prefix_before_sending(
    sandbox: Sandbox, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = sandbox.config
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAMM_IDENT_WA",
        json.dumps(
            {
                "conn_type": "whatsapp",
                "host": sandbox.url,
                "password": cfg.access_token,
                "extra": {"phone_number_id": cfg.phone_number_id},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAMM_IDENT_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "l.db")})
    )
    op = MarketingMessageOperator(
        task_id="send",
        template_name="welcome_named",
        whatsapp_conn_id="wamm_ident_wa",
        ledger_conn_id="wamm_ident_ledger",
        ledger_table_prefix=INJECTIONS[0],
        recipients=[{"phone": "+4915100000001", "name": "A"}],
        body_parameters={"first_name": "{name}"},
        campaign_id="ident",
    )
    with pytest.raises(AirflowFailException, match="table prefix"):
        op.execute(cast(Any, {"ti": None, "run_id": "r", "logical_date": None}))
    assert sandbox.messages == []
    assert _tables(sa.create_engine(f"sqlite:///{tmp_path / 'l.db'}")) == []


def test_webhook_receiver_with_a_bad_configured_prefix_stores_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "ident-app-secret"
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAMM_IDENT_WA",
        json.dumps({"conn_type": "whatsapp", "password": "t", "extra": {"app_secret": secret}}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAMM_IDENT_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "l.db")})
    )
    monkeypatch.setenv("AIRFLOW__WAMM__WEBHOOK_CONN_ID", "wamm_ident_wa")
    monkeypatch.setenv("AIRFLOW__WAMM__LEDGER_CONN_ID", "wamm_ident_ledger")
    monkeypatch.setenv("AIRFLOW__WAMM__LEDGER_TABLE_PREFIX", "x; DROP TABLE y; --")
    client = ASGIClient(create_app(AirflowWebhookSettings(ttl=0)))
    raw = b'{"object":"whatsapp_business_account","entry":[]}'
    response = client.post("/", content=raw, headers={"X-Hub-Signature-256": sign(raw, secret)})
    assert response.status_code == 503
    assert "DROP" not in response.text
    assert (
        not (tmp_path / "l.db").exists() or _tables(sa.create_engine(f"sqlite:///{tmp_path / 'l.db'}")) == []
    )
