"""Which recipients a retry after Meta's per-user marketing limit (131049) can ever help.

Meta answers 131049 both when a person got enough marketing messages for now (a retry a day or more
later may get through) and, for every US number, because marketing templates are not delivered to US
numbers at all (Meta's market rules). Retrying those is pointless; so it is for the other countries
Meta delivers nothing to. The market table of the cost planner knows both; it reads a number's
region through :mod:`~.markets`, as the skip of US numbers at intake does.
"""

from __future__ import annotations

from functools import lru_cache

from airflow_provider_wamm.campaign.pricing import MarketTable


@lru_cache(maxsize=1)
def _table() -> MarketTable:
    return MarketTable.shipped()


def retry_blocked(recipient: str) -> str | None:
    """Why a 131049 of ``recipient`` (E.164 digits) is never retried (``us_marketing_block``...), or
    ``None`` when a later retry may succeed."""
    country = _table().country_of(recipient)
    return country.not_delivered if country is not None else None


__all__ = ["retry_blocked"]
