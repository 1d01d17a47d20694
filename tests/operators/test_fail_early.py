"""Nothing silently does nothing: wrong columns and connections fail before any message, a run with too
many invalid rows fails with its reasons, SQL progress has a total and an ETA, a late run says why."""

from __future__ import annotations

import json
import logging
import pathlib
import re
import sqlite3
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.hooks.recipients import count_query, count_rows
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.operators.safeguards import describe_duration, skip_if_too_late
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import (
    CRM_CONN_ID,
    digits,
    make_context,
    number,
    rows,
    seed_crm,
    send_operator,
)

Logs = list[MutableMapping[str, Any]]


def operator(**kwargs: Any) -> MarketingMessageOperator:
    return send_operator(**{"campaign_id": "fail-early", **kwargs})


def log_lines(events: Logs) -> list[str]:
    """The captured log events as the lines a user reads (``%`` arguments applied)."""
    lines = []
    for event in events:
        text, args = str(event.get("event", "")), event.get("positional_args")
        lines.append(text % tuple(args) if args else text)
    return lines


# --- a wrong personalisation column ------------------------------------------------------------


def test_wrong_personalisation_field_in_a_list_fails_before_any_send(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    data = [{"phone": number(i), "nmae": f"Ana{i}", "discount": "20%", "slug": "s"} for i in range(50)]
    with pytest.raises(AirflowFailException) as info:
        operator(recipients=data).execute(make_context())
    message = str(info.value)
    assert "personalisation field 'name' (used in body_parameters[0]) not found in the first" in message
    assert "['discount', 'nmae', 'phone', 'slug']" in message
    assert sandbox.messages == []
    # The check needs no request at all: without the template check, nothing reaches the sandbox.
    with pytest.raises(AirflowFailException, match="personalisation field 'name'"):
        operator(recipients=data, preflight=False, campaign_id="no-preflight").execute(make_context())
    # The first run's reads only: the template check and the account check (phone number, WABA).
    assert sandbox.counts()["requests"] == 3


def test_wrong_personalisation_column_in_sql_fails_before_any_send(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    seed_crm(crm, rows(5))
    op = operator(
        sql="SELECT phone, name AS first_name, discount, slug FROM customers",
        sql_conn_id=CRM_CONN_ID,
        preflight=False,
    )
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context())
    message = str(info.value)
    assert (
        "personalisation field 'name' (used in body_parameters[0]) not found in the query result" in message
    )
    assert "['phone', 'first_name', 'discount', 'slug']" in message
    assert sandbox.counts()["requests"] == 0
    # Columns are matched case-insensitively, as for the phone column.
    fixed = operator(
        sql="SELECT phone, name AS NAME, Discount, SLUG FROM customers",
        sql_conn_id=CRM_CONN_ID,
        campaign_id="fixed",
    )
    assert fixed.execute(make_context())["accepted"] == 5


# --- a sql_conn_id that is not a database ------------------------------------------------------


@pytest.mark.parametrize("conn_type", ["http", "generic"])
def test_sql_conn_id_without_a_sql_hook_fails_before_any_request(
    conn_type: str,
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAMM_TEST_API", json.dumps({"conn_type": conn_type, "host": "x.test"}))
    op = operator(sql="SELECT phone FROM customers", sql_conn_id="wamm_test_api")
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context())
    message = str(info.value)
    assert (
        f"sql_conn_id 'wamm_test_api' is a connection of type '{conn_type}', which has no SQL hook" in message
    )
    assert "common.sql hook, such as postgres, mysql, sqlite" in message
    assert "rsplit" not in message and "Unknown hook type" not in message
    assert sandbox.counts()["requests"] == 0 and sandbox.messages == []


# --- max_invalid_ratio and the invalid reasons in the log --------------------------------------


def bad_rows(n: int) -> list[dict[str, Any]]:
    return [{"phone": "", "name": "X", "discount": "1%", "slug": "x"} for _ in range(n)]


def test_max_invalid_ratio_fails_a_run_over_it_with_the_top_reasons(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    data = [*rows(4), *bad_rows(5), {"phone": "12345", "name": "X", "discount": "1%", "slug": "x"}]
    with pytest.raises(AirflowFailException) as info:
        operator(recipients=data).execute(make_context())  # default 0.5
    message = str(info.value)
    assert "6 of 10 rows were invalid (60.0%), more than max_invalid_ratio=50.0%" in message
    assert "top reasons: phone: is empty (5); phone: is not a valid phone number" in message
    assert len(sandbox.messages) == 4  # the valid rows were sent
    # Under the limit, or with the check off, the run succeeds.
    assert operator(recipients=data, max_invalid_ratio=0.6, campaign_id="b").execute(make_context())
    assert operator(recipients=data, max_invalid_ratio=None, campaign_id="c").execute(make_context())
    with pytest.raises(ValueError, match="'max_invalid_ratio' must be between 0 and 1"):
        operator(recipients=data, max_invalid_ratio=1.5)


def test_top_invalid_reasons_are_in_the_log_with_numbers_masked(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, airflow_logs: Logs
) -> None:
    link = "https://cdn.example.com/a.png"
    data: list[dict[str, Any]] = [{**row, "image": link} for row in rows(8)]
    data[3]["image"] = f"https://shop.example.com/?to={number(3)}"  # a space: not a URL
    data += bad_rows(2)
    op = operator(recipients=data, header={"type": "image", "link": "{image}"}, dry_run=True)
    result = op.execute(make_context())
    assert result["invalid"] == 3 and result["would_send"] == 7
    summary = [line for line in log_lines(airflow_logs) if "most frequent reasons" in line]
    assert len(summary) == 1
    assert (
        "3 of 10 rows invalid; most frequent reasons: 2 x phone: is empty; 1 x header.image.link"
        in (summary[0])
    )
    assert "+49*********03" in summary[0]
    text = "\n".join(log_lines(airflow_logs)) + json.dumps(result)
    assert digits(3) not in text and number(3) not in text and "00000003" not in text


# --- SQL progress: a total and an ETA ----------------------------------------------------------


def progress_of_a_sql_run(
    sandbox: Sandbox, crm: pathlib.Path, airflow_logs: Logs, **kwargs: Any
) -> tuple[list[str], dict[str, Any]]:
    seed_crm(crm, rows(150))
    sandbox.configure(latency_s=0.01)
    op = operator(
        sql="SELECT phone, name, discount, slug FROM customers -- every customer\n;",
        sql_conn_id=CRM_CONN_ID,
        concurrency=4,
        max_messages_per_second=150,
        campaign_options={"progress_interval_s": 0.05},
        **kwargs,
    )
    result = op.execute(make_context())
    return [line for line in log_lines(airflow_logs) if "rows done" in line], result


def test_sql_progress_lines_carry_the_total_and_an_eta(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path, airflow_logs: Logs
) -> None:
    lines, result = progress_of_a_sql_run(sandbox, crm, airflow_logs)
    assert result["accepted"] == 150 and lines
    assert all(re.search(r": \d+/150 rows done", line) for line in lines), lines
    assert any(re.search(r", ETA \d+ s$", line) for line in lines), lines
    assert any("about 150 recipients" in line for line in log_lines(airflow_logs))


def test_count_rows_false_skips_the_count(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path, airflow_logs: Logs
) -> None:
    lines, result = progress_of_a_sql_run(sandbox, crm, airflow_logs, count_rows=False)
    assert result["accepted"] == 150 and lines
    assert not any("/150" in line or "ETA" in line for line in lines), lines


def test_count_query_wraps_the_query(tmp_path: pathlib.Path) -> None:
    assert count_query("SELECT 1;\n") == "SELECT COUNT(*) FROM (\nSELECT 1\n) wamm_rows"
    seed_crm(tmp_path / "crm.db", rows(7))
    db = sqlite3.connect(tmp_path / "crm.db")
    sql = "SELECT phone FROM customers WHERE name <> :skip -- a comment\n;"
    assert count_rows(db, sql, {"skip": "Ana0"}) == 6
    db.close()


def test_a_failed_count_only_loses_the_total(caplog: pytest.LogCaptureFixture) -> None:
    class Cursor:
        def execute(self, *args: Any) -> None:
            raise RuntimeError("subqueries are not supported here")

        def close(self) -> None:
            pass

    class Database:
        rolled_back = False

        def cursor(self) -> Cursor:
            return Cursor()

        def rollback(self) -> None:
            self.rolled_back = True

    db = Database()
    with caplog.at_level(logging.WARNING):
        assert count_rows(db, "SELECT phone FROM t", None) is None
    assert db.rolled_back  # PostgreSQL would refuse the real query in an aborted transaction
    assert "Could not count the rows of 'sql'" in caplog.text and "going on without a total" in caplog.text


# --- a late run ------------------------------------------------------------------------------------


def test_durations_read_in_plain_words() -> None:
    assert describe_duration(timedelta(days=2, hours=3, minutes=4)) == "2 days 3 hours"
    assert describe_duration(timedelta(days=1, seconds=30)) == "1 day"
    assert describe_duration(timedelta(hours=1, minutes=1)) == "1 hour 1 minute"
    assert describe_duration(timedelta(seconds=45.7)) == "45 seconds"
    assert describe_duration(timedelta(0)) == "0 seconds"


def test_lateness_message_reads_in_plain_words_and_says_what_to_do() -> None:
    logical_date = pendulum.now("UTC") - timedelta(days=2, hours=3, minutes=10)  # Airflow's type
    with pytest.raises(AirflowSkipException) as info:
        skip_if_too_late(logical_date, timedelta(days=1), logging.getLogger("test"))
    message = str(info.value)
    assert "is 2 days 3 hours old, more than max_lateness (1 day). Nothing was sent." in message
    assert "trigger a new run of the DAG" in message and "raise max_lateness in the DAG" in message
    assert "days," not in message and ":10:" not in message  # not a raw timedelta or Interval
    skip_if_too_late(datetime.now(UTC), timedelta(days=1), logging.getLogger("test"))  # not late
