"""PrivateRowsField: recipient rows are rendered as usual but read back only as a count.

The DAG tests check what Airflow really stores (plain and mapped tasks); these check the field itself.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow.sdk import DAG

from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.operators.private_rows import PrivateRowsField, is_rows, rows_placeholder
from tests.operators.conftest import SPRING_SALE, make_context, rows


def operator(**kwargs: Any) -> MarketingMessageOperator:
    with DAG("wamm_private_rows", schedule=None):
        return MarketingMessageOperator(task_id="send", **SPRING_SALE, **kwargs)


def field_rows(op: MarketingMessageOperator) -> Any:
    return MarketingMessageOperator.recipients.rows(op)


def test_the_argument_reads_back_unchanged_until_rendered() -> None:
    data = rows(3)
    op = operator(recipients=data)
    assert op.recipients is data and field_rows(op) is data
    assert isinstance(MarketingMessageOperator.recipients, PrivateRowsField)


def test_rendering_renders_the_rows_then_parks_them() -> None:
    op = operator(recipients=[{"phone": "{{ params.phone }}", "name": "Ana"}, "+4915100000002"])
    op.render_template_fields(make_context(params={"phone": "+4915100000001"}))
    assert op.recipients == "<2 recipients: not shown>"
    assert field_rows(op) == [{"phone": "+4915100000001", "name": "Ana"}, "+4915100000002"]


def test_rendering_twice_keeps_the_rows() -> None:
    op = operator(recipients=rows(5))
    op.render_template_fields(make_context())
    op.render_template_fields(make_context())
    assert op.recipients == "<5 recipients: not shown>" and field_rows(op) == rows(5)


def test_values_that_are_not_rows_are_kept_as_they_are() -> None:
    op = operator(recipients="{{ params.numbers }}")
    op.render_template_fields(make_context(params={"numbers": "+4915100000001"}))
    assert op.recipients == "+4915100000001" == field_rows(op)  # execute() says it is not a list
    empty = operator(recipients=None)
    empty.render_template_fields(make_context())
    assert empty.recipients is None and field_rows(empty) is None


def test_a_copy_keeps_the_parked_rows() -> None:
    op = operator(recipients=rows(2))
    op.render_template_fields(make_context())
    for other in (copy.copy(op), copy.deepcopy(op)):
        assert other.recipients == "<2 recipients: not shown>" and field_rows(other) == rows(2)


def test_what_counts_as_rows() -> None:
    from airflow.sdk import task

    @task
    def upstream() -> list[str]:
        return []

    with DAG("wamm_private_rows_xcom", schedule=None):
        xcom_arg = upstream()
    assert is_rows([]) and is_rows(("+1",)) and is_rows(iter(["+1"]))
    assert not any(is_rows(v) for v in (None, "+1", b"+1", {"phone": "+1"}, 5, xcom_arg))
    assert rows_placeholder(iter([])) == "<recipients: not shown>"
