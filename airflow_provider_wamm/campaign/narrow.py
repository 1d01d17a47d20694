"""Narrowing a campaign's input to some recipients before the sender reads it.

Retries after Meta's per-user limit, send windows and rollout slices each decide by the recipient's
number (and row) whether this run sends to them. The rows they drop are not read by the run at all:
they are neither counted nor recorded, so a later run finds them as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from airflow_provider_wamm.campaign.sources import iter_rows
from airflow_provider_wamm.graph.payload import PayloadError
from airflow_provider_wamm.graph.recipients import normalize_phone

#: Decides about one recipient: its E.164 digits and its row's fields; ``True`` keeps it.
Keep = Callable[[str, Mapping[str, Any]], bool]
_T = TypeVar("_T")


def recipients_of(
    rows: Iterable[Any], *, recipient_field: str, default_region: str | None
) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    """Each row's E.164 digits (``None`` without a usable number) and its fields, read lazily."""
    for row in iter_rows(rows, recipient_field=recipient_field):
        if row.error is not None:
            yield None, row.fields
            continue
        try:
            yield normalize_phone(row.phone, default_region=default_region, field=recipient_field), row.fields
        except PayloadError:
            yield None, row.fields


def in_batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """``items`` in lists of at most ``size``, read lazily."""
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def narrow_rows(
    rows: Iterable[Any], keep: Keep, *, recipient_field: str, default_region: str | None
) -> Iterator[Mapping[str, Any]]:
    """The rows ``keep`` accepts (as mappings), read lazily; rows without a usable number pass through,
    so that the run records them as invalid."""
    for digits, fields in recipients_of(rows, recipient_field=recipient_field, default_region=default_region):
        if digits is None or keep(digits, fields):
            yield fields


__all__ = ["Keep", "in_batches", "narrow_rows", "recipients_of"]
