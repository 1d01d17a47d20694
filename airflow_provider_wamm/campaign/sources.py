"""Recipient sources: iterables of phone strings or dicts, and rows streamed from a DB-API cursor.

Everything here is lazy: rows are produced one at a time (cursors are read with ``fetchmany``), so a
campaign over millions of recipients never holds the list in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_wamm.graph.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One input row of a campaign."""

    number: int
    """1-based position of the row in the input."""
    phone: Any
    """The raw recipient value (normalised later; may be ``None`` or garbage)."""
    fields: Mapping[str, Any]
    """The row's fields, used for personalisation (just the recipient field for a bare string)."""
    error: str | None = None
    """A problem found while reading the row (e.g. the recipient field is missing)."""


def iter_rows(items: Iterable[Any], *, recipient_field: str = "phone") -> Iterator[SourceRow]:
    """Turn an iterable of recipients into :class:`SourceRow` objects, lazily.

    :param items: phone strings (or numbers), mappings with a ``recipient_field`` key, or ``None``
        (an empty row). Anything else is treated as a raw phone value.
    :param recipient_field: the key of the phone number in mapping rows (its lower-case form is
        accepted too, as cursor rows have lower-cased column names).
    :raises ConfigurationError: if the *first* mapping row has no ``recipient_field`` key, which
        nearly always means the field name is wrong for the whole input (the message lists the keys
        the row has). Later rows without it are reported per row.
    """
    first_mapping = True
    key = recipient_field
    for number, item in enumerate(items, start=1):
        if isinstance(item, Mapping):
            if first_mapping and key not in item and key.lower() in item:
                key = key.lower()  # rows from iter_cursor_rows have lower-cased column names
            if key not in item:
                if first_mapping:
                    raise ConfigurationError(
                        f"recipient field {recipient_field!r} not found in the recipient rows; the first "
                        f"row has the fields {sorted(map(str, item))}: set recipient_field to one of them"
                    )
                yield SourceRow(number, None, item, f"missing field {recipient_field!r}")
                continue
            first_mapping = False
            yield SourceRow(number, item[key], item)
        else:
            yield SourceRow(number, item, {recipient_field: item})


def iter_cursor_rows(
    cursor: Any, *, batch_size: int = 1000, required_field: str | None = None
) -> Iterator[dict[str, Any]]:
    """Stream the rows of an executed DB-API cursor as dicts, ``batch_size`` rows at a time.

    Column names come from ``cursor.description`` and are lower-cased, so ``SELECT Phone ...``
    gives the key ``phone``.

    :param cursor: a DB-API 2.0 cursor on which a query has been executed.
    :param batch_size: rows per ``fetchmany`` call.
    :param required_field: a column that must exist (compared case-insensitively); if it does not,
        :class:`ConfigurationError` names it and lists the columns the query returned.
    """
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
    if cursor.description is None:
        raise ConfigurationError(
            "the cursor has no result set: execute a SELECT before streaming rows from it"
        )
    columns = [str(col[0]).lower() for col in cursor.description]
    if required_field is not None and required_field.lower() not in columns:
        raise ConfigurationError(
            f"recipient column {required_field!r} not found in the query result; its columns are "
            f"{columns}: select the phone number as {required_field!r} or set recipient_field"
        )
    while True:
        batch = cursor.fetchmany(batch_size)
        if not batch:
            return
        for row in batch:
            if isinstance(row, Mapping):  # dict-style cursors (e.g. psycopg's dict_row)
                yield {str(k).lower(): v for k, v in row.items()}
            else:
                yield dict(zip(columns, row, strict=False))


__all__ = ["SourceRow", "iter_cursor_rows", "iter_rows"]
