"""Meta's template analytics for a report: the daily data points of a ``template_analytics`` answer.

Meta counts per template and day, so other sends of the same template on those days are included;
the report shows them beside its own numbers (and uses the clicks when webhooks name no message).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def _number(value: Any) -> float:
    """A finite number from a JSON value; 0 for anything else (booleans included)."""
    if isinstance(value, bool):
        return 0.0
    try:
        result = float(value)
    except (TypeError, ValueError):
        return 0.0
    return result if math.isfinite(result) else 0.0


def _add_point(out: dict[str, Any], point: Mapping[str, Any]) -> None:
    """Add one day's data point to the running sums."""
    for key in ("sent", "delivered", "read"):
        out[key] += int(_number(point.get(key)))
    for item in point.get("clicked") or []:
        if isinstance(item, Mapping):
            count = int(_number(item.get("count")))
            kind = str(item.get("type") or "unknown")
            out["clicked"] += count
            out["clicks_by_type"][kind] = out["clicks_by_type"].get(kind, 0) + count
    for item in point.get("cost") or []:
        if isinstance(item, Mapping) and item.get("type") == "amount_spent":
            out["cost"] += _number(item.get("value"))


def summarise_template_analytics(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the ``data_points`` of a ``template_analytics`` answer into one small dict.

    Returns ``sent``, ``delivered``, ``read``, ``clicked`` (all button types), ``clicks_by_type``,
    ``cost`` (``amount_spent``, in the account's currency), ``cost_per_delivered`` and
    ``cost_per_click`` (recomputed), and ``days`` (data points summed). Malformed entries are skipped.
    """
    out: dict[str, Any] = {
        "sent": 0,
        "delivered": 0,
        "read": 0,
        "clicked": 0,
        "clicks_by_type": {},
        "cost": 0.0,
    }
    days = 0
    for entry in data:
        points = entry.get("data_points") if isinstance(entry, Mapping) else None
        if not isinstance(points, list):
            continue
        for point in points:
            if isinstance(point, Mapping):
                days += 1
                _add_point(out, point)
    out["cost"] = round(out["cost"], 6)
    out["cost_per_delivered"] = round(out["cost"] / out["delivered"], 6) if out["delivered"] else None
    out["cost_per_click"] = round(out["cost"] / out["clicked"], 6) if out["clicked"] else None
    out["days"] = days
    return out


__all__ = ["summarise_template_analytics"]
