"""Bad input through the operator: every bad row is counted with its reason, the good rows still go out."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import (
    CRM_CONN_ID,
    WHATSAPP_CONN_ID,
    digits,
    make_context,
    number,
    rows,
    seed_crm,
    send_operator,
)


def operator(**kwargs: Any) -> MarketingMessageOperator:
    return send_operator(**{"campaign_id": "bad-input", **kwargs})


def row(phone: Any, **fields: Any) -> dict[str, Any]:
    return {"phone": phone, "name": "Ana", "discount": "20%", "slug": "s", **fields}


#: (row, the reason recorded for it)
BAD_ROWS: list[tuple[dict[str, Any], str]] = [
    (row("+49 151 12ab34"), "phone: contains the character 'a'"),
    (row("+1 555 0100"), "phone: is not a valid phone number"),  # fictional, not a WhatsApp number
    (row("12345"), "phone: is not a valid phone number (include the country code, or set default_region)"),
    (row("4915100000099999999999"), "phone: is not a valid phone number"),  # too long
    (row(""), "phone: is empty"),
    (row(None), "phone: is missing"),
    (row("   "), "phone: is empty"),
    ({"phone": number(20), "discount": "5%", "slug": "x"}, "body_parameters[0]: missing field 'name'"),
    (row(number(21), name=None), "body_parameters[0]: field 'name' is empty (null)"),
    (row(number(22), name="A" * 1025), "is 1025 characters long; Meta allows at most 1024"),
    (row(number(23), name="Ana\nBob"), "must not contain new lines"),
]


def test_bad_rows_are_invalid_with_reasons_in_the_ledger_and_the_rest_is_sent(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    good = rows(10)
    duplicate = row("0049 (151) 0000-0001")  # recipient 1 again, written differently
    data = [good[0], *(bad for bad, _ in BAD_ROWS), *good[1:], duplicate]
    result = operator(recipients=data).execute(make_context())

    assert result["total"] == len(data)
    assert result["accepted"] == 10 and result["invalid"] == len(BAD_ROWS) and result["duplicates"] == 1
    sends = sandbox.sends_per_recipient()
    assert set(sends) == {digits(i) for i in range(10)} and set(sends.values()) == {1}

    invalid = [r for r in ledger.iter_sends("bad-input") if r["state"] == "invalid"]
    assert len(invalid) == len(BAD_ROWS)
    details = sorted(r["error_details"] for r in invalid)
    for _, reason in BAD_ROWS:
        assert any(reason in d for d in details), (reason, details)
    for i, (_, reason) in enumerate(BAD_ROWS):  # each reason names the row it came from
        assert any(d.startswith(f"row {i + 2}: ") and reason in d for d in details), reason
    # Bad rows with a valid number are recorded under the number; the others under their row.
    by_recipient = {r["recipient"]: r["error_details"] for r in invalid}
    assert "missing field 'name'" in by_recipient[digits(20)]
    assert "contains the character 'a'" in by_recipient["!2"]
    # The XCom summary keeps only counts by reason, never a number.
    assert sum(result["invalid_reasons"].values()) == len(BAD_ROWS)
    assert not any(digits(20) in reason for reason in result["invalid_reasons"])


def test_null_personalisation_column_from_sql_is_an_invalid_row(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    seed_crm(crm, [*rows(3), {"phone": number(7), "name": None, "discount": "1%", "slug": "q"}])
    op = operator(sql="SELECT phone, name, discount, slug FROM customers", sql_conn_id=CRM_CONN_ID)
    result = op.execute(make_context())
    assert result["accepted"] == 3 and result["invalid"] == 1
    assert result["invalid_reasons"] == {"body_parameters[0]: field 'name' is empty (null)": 1}


def test_sql_without_the_phone_column_names_the_columns_found(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    seed_crm(crm, [{"mobile": number(1), "Name": "Ana", "discount": "5%", "slug": "a"}])
    op = operator(sql="SELECT mobile, Name, discount, slug FROM customers", sql_conn_id=CRM_CONN_ID)
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context())
    message = str(info.value)
    assert "recipient column 'phone' not found in the query result" in message
    assert "['mobile', 'name', 'discount', 'slug']" in message and "set recipient_field" in message
    assert sandbox.messages == []
    # Naming the column fixes it.
    fixed = operator(
        sql="SELECT mobile, Name, discount, slug FROM customers",
        sql_conn_id=CRM_CONN_ID,
        recipient_field="mobile",
    )
    assert fixed.execute(make_context())["accepted"] == 1


def test_list_rows_without_the_recipient_field_fail_fast(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(recipients=[{"msisdn": number(1), "name": "Ana"}])
    with pytest.raises(
        AirflowFailException, match=r"recipient field 'phone' not found.*\['msisdn', 'name'\]"
    ):
        op.execute(make_context())
    assert sandbox.messages == []


def test_sql_that_is_not_a_query_is_a_clear_error(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    seed_crm(crm, rows(1))
    op = operator(sql="UPDATE customers SET name = 'x'", sql_conn_id=CRM_CONN_ID)
    with pytest.raises(AirflowFailException, match="'sql' returned no result set"):
        op.execute(make_context())
    assert sandbox.messages == []


def test_sql_conn_id_that_is_not_a_database(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(sql="SELECT phone FROM customers", sql_conn_id=WHATSAPP_CONN_ID)
    with pytest.raises(AirflowFailException, match="is a WhatsAppHook, not a SQL database connection"):
        op.execute(make_context())


def test_invalid_default_region_is_a_configuration_error(
    wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    with pytest.raises(AirflowFailException, match="misconfigured: default_region must be an ISO 3166"):
        operator(recipients=rows(1), default_region="Germany").execute(make_context())
