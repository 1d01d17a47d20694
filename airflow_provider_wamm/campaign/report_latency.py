"""The report's time to deliver: seconds from Meta's acceptance to delivery, aggregated in SQL.

One grouped pass over latency buckets gives the count, mean and maximum whatever the campaign size.
Percentiles are exact (sorted lookups) up to :data:`EXACT_PERCENTILE_LIMIT` delivered messages, and
come from the buckets above that (0.1 s resolution under a minute, 1 s under an hour, 1 min beyond).
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import expression

from airflow_provider_wamm.campaign.ledger import DELIVERED_TO_META, Ledger

#: Percentiles of the time to deliver.
LATENCY_PERCENTILES = (50, 90)
#: Up to this many delivered messages, percentiles are exact (sorted lookups); above, they come from
#: one grouped pass over latency buckets (0.1 s resolution under a minute, 1 s under an hour).
EXACT_PERCENTILE_LIMIT = 50_000


class _SecondsBetween(expression.FunctionElement[float]):
    """``later - earlier`` in seconds, compiled per dialect."""

    type = sa.Float()
    name = "wamm_report_seconds_between"
    inherit_cache = True


@compiles(_SecondsBetween)
def _seconds_default(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(_SecondsBetween, "sqlite")
def _seconds_sqlite(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


@compiles(_SecondsBetween, "mysql")
@compiles(_SecondsBetween, "mariadb")
def _seconds_mysql(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"(TIMESTAMPDIFF(MICROSECOND, {earlier}, {later}) / 1000000.0)"


def _bucket(seconds: Any) -> Any:
    """A latency bucket in tenths of a second: 0.1 s wide below a minute, 1 s below an hour, then 1 min.

    ``CAST(x + 0.5 AS INTEGER)`` rounds on every backend (SQLite truncates a cast, PostgreSQL and MySQL
    round it, so there the bucket may be one step higher: well within the stated resolution).
    """
    return sa.case(
        (seconds < 60, sa.cast(seconds * 10 + 0.5, sa.Integer)),
        (seconds < 3600, sa.cast(seconds + 0.5, sa.Integer) * 10),
        else_=sa.cast(seconds / 60 + 0.5, sa.Integer) * 600,
    )


def _nearest_rank(count: int, percentile: float) -> int:
    """0-based index of the nearest-rank percentile among ``count`` sorted values."""
    return min(count - 1, max(0, math.ceil(percentile / 100.0 * count) - 1))


def _seconds(value: Any) -> float | None:
    """A number of seconds rounded to the millisecond, never negative; ``None`` for no finite value."""
    if value is None:
        return None
    number = float(value)
    return round(max(0.0, number), 3) if math.isfinite(number) else None


def _delivery_seconds(ledger: Ledger, ids: list[str]) -> Any:
    """A subquery with one column, ``seconds``: acceptance to delivery of each delivered message."""
    s, t = ledger.sends.c, ledger.statuses.c
    delivered_at = sa.func.coalesce(t.delivered_at, t.read_at)
    raw = _SecondsBetween(delivered_at, s.accepted_at)
    seconds = sa.case((raw < 0, 0.0), else_=raw)
    return (
        sa.select(seconds.label("seconds"))
        .select_from(ledger.sends.join(ledger.statuses, t.wamid == s.wamid))
        .where(
            s.campaign_id.in_(ids),
            s.state.in_(DELIVERED_TO_META),
            s.accepted_at.is_not(None),
            delivered_at.is_not(None),
        )
        .subquery()
    )


def latency_stats(conn: Connection, ledger: Ledger, ids: list[str], exact_limit: int) -> dict[str, Any]:
    """``count``, ``mean``, ``max`` and ``p50``/``p90`` (seconds) of the campaigns' delivered messages.

    :param exact_limit: up to this many delivered messages, percentiles are exact sorted lookups;
        above, they come from the latency buckets.
    """
    x = _delivery_seconds(ledger, ids).c.seconds
    bucket = _bucket(x).label("bucket")
    # One pass: count, sum and max per latency bucket (a few hundred rows whatever the campaign size).
    rows = conn.execute(
        sa.select(bucket, sa.func.count(), sa.func.sum(x), sa.func.max(x)).group_by(bucket).order_by(bucket)
    ).all()
    count = sum(int(n) for _, n, _, _ in rows)
    out: dict[str, Any] = {"count": count, "mean": None, "max": None}
    out.update({f"p{p}": None for p in LATENCY_PERCENTILES})
    if not count:
        return out
    out["mean"] = _seconds(sum(float(total or 0) for _, _, total, _ in rows) / count)
    out["max"] = _seconds(max(float(longest or 0) for _, _, _, longest in rows))
    if count <= exact_limit:
        for p in LATENCY_PERCENTILES:
            value = conn.execute(sa.select(x).order_by(x).limit(1).offset(_nearest_rank(count, p))).scalar()
            out[f"p{p}"] = _seconds(value)
        return out
    targets = {p: _nearest_rank(count, p) for p in LATENCY_PERCENTILES}
    seen = 0
    for key, n, _, _ in rows:
        seen += int(n)
        for p, rank in targets.items():
            if out[f"p{p}"] is None and seen > rank:
                out[f"p{p}"] = _seconds(int(key) / 10.0)
    return out


def time_to_deliver(
    conn: Connection, ledger: Ledger, ids: list[str], exact_limit: int = EXACT_PERCENTILE_LIMIT
) -> dict[str, float | int | None]:
    """The report's ``time_to_deliver_s``: ``count``, ``median``, ``p90``, ``mean``, ``max`` (seconds)."""
    stats = latency_stats(conn, ledger, ids, exact_limit)
    return {
        "count": stats["count"],
        "median": stats["p50"],
        "p90": stats["p90"],
        "mean": stats["mean"],
        "max": stats["max"],
    }


__all__ = ["EXACT_PERCENTILE_LIMIT", "LATENCY_PERCENTILES", "latency_stats", "time_to_deliver"]
