"""Records to table rows and back, by one rule for every column a record shares with its table.

Writing, a value is stored as its column holds it: a time as naive UTC, text cut to the column's
length (:func:`~airflow_provider_wamm.campaign.ledger.records.clip`), anything else as it is. Reading,
each field of the record comes from the column of its name, times as aware UTC. What a column holds
differently (JSON, an enum, a key that must never be cut) is given by the caller.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger.records import as_utc, clip, naive_utc

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_RecordT = TypeVar("_RecordT", bound="DataclassInstance")


def stored_value(column: sa.Column[Any], value: Any) -> Any:
    """``value`` as ``column`` stores it: naive UTC for a time, text cut to the column's length."""
    if isinstance(value, datetime):
        return naive_utc(value)
    length = getattr(column.type, "length", None)
    if isinstance(column.type, sa.String) and length is not None:
        return clip(value, length)
    return value


def row_values(table: sa.Table, record: Any, *, skip: tuple[str, ...] = (), **values: Any) -> dict[str, Any]:
    """The bound values of ``record`` for ``table``: every column but ``skip`` from the attribute of its
    name (see :func:`stored_value`), ``values`` as given."""
    return {
        column.name: values[column.name]
        if column.name in values
        else stored_value(column, getattr(record, column.name))
        for column in table.columns
        if column.name not in skip
    }


def record_from_row(cls: type[_RecordT], row: Any, **values: Any) -> _RecordT:
    """A stored row read back as the dataclass ``cls``: each field from the column of its name (times
    as aware UTC), ``values`` as given; fields without a column keep their defaults."""
    columns = row._mapping
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in values:
            fields[field.name] = values[field.name]
        elif field.name in columns:
            value = columns[field.name]
            fields[field.name] = as_utc(value) if isinstance(value, datetime) else value
    return cls(**fields)


__all__ = ["record_from_row", "row_values", "stored_value"]
