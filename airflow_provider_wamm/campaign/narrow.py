"""Narrowing a campaign's input to some recipients before the sender reads it.

Retries after Meta's per-user limit, send windows and rollout slices each decide by the recipient's
number (and row) whether this run sends to them. The rows they drop are not read by the run at all:
they are neither counted nor recorded, so a later run finds them as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_wamm.campaign.sources import iter_rows
from airflow_provider_wamm.graph.payload import PayloadError
from airflow_provider_wamm.graph.recipients import normalize_phone

#: Decides about one recipient: its E.164 digits and its row's fields; ``True`` keeps it.
Keep = Callable[[str, Mapping[str, Any]], bool]


def narrow_rows(
    rows: Iterable[Any], keep: Keep, *, recipient_field: str, default_region: str | None
) -> Iterator[Mapping[str, Any]]:
    """The rows ``keep`` accepts (as mappings), read lazily; rows without a usable number pass through,
    so that the run records them as invalid."""
    for row in iter_rows(rows, recipient_field=recipient_field):
        if row.error is not None:
            yield row.fields
            continue
        try:
            digits = normalize_phone(row.phone, default_region=default_region, field=recipient_field)
        except PayloadError:
            yield row.fields
            continue
        if keep(digits, row.fields):
            yield row.fields


__all__ = ["Keep", "narrow_rows"]
