"""Recipient sources: iterables of phone strings or dicts, and rows streamed from a DB-API cursor.

Everything here is lazy: rows are produced one at a time (cursors are read with ``fetchmany``), so a
campaign over millions of recipients never holds the list in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_wamm.graph.errors import ConfigurationError

FieldUses = Mapping[str, Sequence[str]]
"""Fields a campaign needs in every row, each with the places that use it (``{"city": ["header.text"]}``,
as :attr:`~airflow_provider_wamm.campaign.personalise.Personaliser.field_uses` gives them)."""


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


def missing_fields(required: Collection[str], available: Collection[str]) -> list[str]:
    """The ``required`` fields that ``available`` lacks; a field is also found under its lower-case
    name (SQL rows come with lower-cased column names, and personalisation looks there too)."""
    return [name for name in required if name not in available and name.lower() not in available]


def missing_fields_message(
    required: FieldUses, missing: Sequence[str], where: str, available: Collection[str]
) -> str:
    """What :func:`iter_rows` and :func:`iter_cursor_rows` say when a personalisation field is absent."""
    used = "; ".join(
        f"{name!r} (used in {', '.join(required[name]) or 'the personalisation'})" for name in missing
    )
    noun = "field" if len(missing) == 1 else "fields"
    return (
        f"personalisation {noun} {used} not found in {where}, which has {list(available)}: "
        "rename the field in the format string, or add it to the recipients (e.g. select it in 'sql')"
    )


def check_first_row(fields: Mapping[str, Any], required: FieldUses) -> None:
    """Raise :class:`ConfigurationError` if the first row lacks a field the personalisation uses: every
    row would then be invalid, so the whole input is almost certainly wrong, not the row."""
    available = sorted(str(k) for k in fields)
    missing = missing_fields(list(required), available)
    if missing:
        raise ConfigurationError(
            missing_fields_message(required, missing, "the first recipient row", available)
        )


def iter_rows(
    items: Iterable[Any], *, recipient_field: str = "phone", required_fields: FieldUses | None = None
) -> Iterator[SourceRow]:
    """Turn an iterable of recipients into :class:`SourceRow` objects, lazily.

    :param items: phone strings (or numbers), mappings with a ``recipient_field`` key, or ``None``
        (an empty row). Anything else is treated as a raw phone value.
    :param recipient_field: the key of the phone number in mapping rows (its lower-case form is
        accepted too, as cursor rows have lower-cased column names).
    :param required_fields: the fields the personalisation uses, with where (see :data:`FieldUses`);
        the first row that is not ``None`` must have them all (a bare phone number has only
        ``recipient_field``).
    :raises ConfigurationError: if the *first* mapping row has no ``recipient_field`` key, or the first
        row lacks a field of ``required_fields``, which nearly always means a name is wrong for the whole
        input (the message lists the fields the row has). Later rows without them are reported per row.
    """
    first_mapping = True
    key = recipient_field
    to_check = required_fields or None
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
            row = SourceRow(number, item[key], item)
        else:
            row = SourceRow(number, item, {recipient_field: item})
        if to_check is not None and item is not None:
            check_first_row(row.fields, to_check)
            to_check = None
        yield row


def iter_cursor_rows(
    cursor: Any,
    *,
    batch_size: int = 1000,
    required_field: str | None = None,
    required_fields: FieldUses | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream the rows of an executed DB-API cursor as dicts, ``batch_size`` rows at a time.

    Column names come from ``cursor.description`` and are lower-cased, so ``SELECT Phone ...``
    gives the key ``phone``.

    :param cursor: a DB-API 2.0 cursor on which a query has been executed.
    :param batch_size: rows per ``fetchmany`` call.
    :param required_field: a column that must exist (compared case-insensitively); if it does not,
        :class:`ConfigurationError` names it and lists the columns the query returned.
    :param required_fields: the fields the personalisation uses, with where (see :data:`FieldUses`):
        columns that must exist too (compared case-insensitively), or :class:`ConfigurationError`
        names the missing ones, where they are used, and the columns the query returned.
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
    missing = missing_fields(list(required_fields or {}), columns)
    if required_fields and missing:
        raise ConfigurationError(
            missing_fields_message(required_fields, missing, "the query result", columns)
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


__all__ = [
    "FieldUses",
    "SourceRow",
    "check_first_row",
    "iter_cursor_rows",
    "iter_rows",
    "missing_fields",
    "missing_fields_message",
]
