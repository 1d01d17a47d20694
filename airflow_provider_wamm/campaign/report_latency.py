"""The report's time to deliver: seconds from Meta's acceptance to delivery, aggregated in SQL.

One grouped pass over latency buckets gives the count, mean and maximum whatever the campaign size.
Percentiles are exact (sorted lookups) up to :data:`EXACT_PERCENTILE_LIMIT` delivered messages, and
come from the buckets above that (0.1 s resolution under a minute, 1 s under an hour, 1 min beyond).
The report reads its buckets from the pass that also counts the delivery statuses
(:func:`~airflow_provider_wamm.campaign.report_queries.message_outcomes`) and turns them into figures
with :func:`stats_from_buckets`; :func:`latency_stats` runs the same pass on its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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


class _NotBelowZero(expression.FunctionElement[float]):
    """A number of seconds, 0 where it is negative (``NULL`` stays ``NULL``)."""

    type = sa.Float()
    name = "wamm_report_not_below_zero"
    inherit_cache = True


@compiles(_NotBelowZero)
def _not_below_zero_default(element: _NotBelowZero, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"CASE WHEN ({value}) < 0 THEN 0.0 ELSE {value} END"


@compiles(_NotBelowZero, "sqlite")
def _not_below_zero_sqlite(element: _NotBelowZero, compiler: Any, **kw: Any) -> str:
    # SQLite's max() of several values is NULL when one is, and computes the difference only once.
    (value,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"max(0.0, {value})"


def seconds_to_deliver(sends: Any, statuses: Any) -> Any:
    """Seconds from Meta's acceptance (``sends.accepted_at``) to delivery (``delivered_at``, else
    ``read_at``), 0 when the webhook's time is earlier; ``NULL`` when either time is missing."""
    delivered_at = sa.func.coalesce(statuses.delivered_at, statuses.read_at)
    return _NotBelowZero(_SecondsBetween(delivered_at, sends.accepted_at))


def computed_once(query: Any, dialect_name: str) -> Any:
    """``query``, to be used as a subquery whose columns are computed once per row.

    SQLite copies a subquery's expressions into the outer query wherever a column is used (the time
    to deliver would be computed once for each of the bucket's comparisons and each aggregate); a
    subquery with an ``OFFSET`` is not merged into the outer query, so each row is computed once.
    Other databases get ``query`` unchanged.
    """
    return query.offset(0) if dialect_name == "sqlite" else query


def latency_bucket(seconds: Any) -> Any:
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


def _delivery_seconds(conn: Connection, ledger: Ledger, ids: list[str]) -> Any:
    """A subquery with one column, ``seconds``: acceptance to delivery of each delivered message."""
    s, t = ledger.sends.c, ledger.statuses.c
    seconds = seconds_to_deliver(s, t)
    query = (
        sa.select(seconds.label("seconds"))
        .select_from(ledger.sends.join(ledger.statuses, t.wamid == s.wamid))
        .where(
            s.campaign_id.in_(ids),
            s.state.in_(DELIVERED_TO_META),
            s.accepted_at.is_not(None),
            sa.func.coalesce(t.delivered_at, t.read_at).is_not(None),
        )
    )
    return computed_once(query, conn.dialect.name).subquery()


#: One latency bucket: ``(bucket in tenths of a second, messages, seconds in total, longest)``.
BucketRow = tuple[int, int, float, float]


def latency_stats(conn: Connection, ledger: Ledger, ids: list[str], exact_limit: int) -> dict[str, Any]:
    """``count``, ``mean``, ``max`` and ``p50``/``p90`` (seconds) of the campaigns' delivered messages.

    :param exact_limit: up to this many delivered messages, percentiles are exact sorted lookups;
        above, they come from the latency buckets.
    """
    x = _delivery_seconds(conn, ledger, ids).c.seconds
    bucket = latency_bucket(x).label("bucket")
    # One pass: count, sum and max per latency bucket (a few hundred rows whatever the campaign size).
    rows = conn.execute(sa.select(bucket, sa.func.count(), sa.func.sum(x), sa.func.max(x)).group_by(bucket))
    return stats_from_buckets(conn, ledger, ids, rows, exact_limit)


def _merged_buckets(buckets: Iterable[Sequence[Any]]) -> list[BucketRow]:
    """One row per bucket, in order (rows of the same bucket added up; no bucket: not delivered)."""
    merged: dict[int, tuple[int, float, float]] = {}
    for key, n, total, longest in buckets:
        if key is None:
            continue
        seen, seconds, most = merged.get(int(key), (0, 0.0, 0.0))
        merged[int(key)] = (seen + int(n), seconds + float(total or 0), max(most, float(longest or 0)))
    return [(key, *merged[key]) for key in sorted(merged)]


def stats_from_buckets(
    conn: Connection, ledger: Ledger, ids: list[str], buckets: Iterable[Sequence[Any]], exact_limit: int
) -> dict[str, Any]:
    """:func:`latency_stats` from the campaigns' latency buckets (rows of :data:`BucketRow`; a bucket
    may come in several rows, which are added up). Exact percentiles are looked up in ``conn``."""
    rows = _merged_buckets(buckets)
    count = sum(n for _, n, _, _ in rows)
    out: dict[str, Any] = {"count": count, "mean": None, "max": None}
    out.update({f"p{p}": None for p in LATENCY_PERCENTILES})
    if not count:
        return out
    out["mean"] = _seconds(sum(total for _, _, total, _ in rows) / count)
    out["max"] = _seconds(max(longest for _, _, _, longest in rows))
    if count <= exact_limit:
        x = _delivery_seconds(conn, ledger, ids).c.seconds
        for p in LATENCY_PERCENTILES:
            value = conn.execute(sa.select(x).order_by(x).limit(1).offset(_nearest_rank(count, p))).scalar()
            out[f"p{p}"] = _seconds(value)
        return out
    targets = {p: _nearest_rank(count, p) for p in LATENCY_PERCENTILES}
    seen = 0
    for key, n, _, _ in rows:
        seen += n
        for p, rank in targets.items():
            if out[f"p{p}"] is None and seen > rank:
                out[f"p{p}"] = _seconds(int(key) / 10.0)
    return out


def time_to_deliver(
    conn: Connection,
    ledger: Ledger,
    ids: list[str],
    exact_limit: int = EXACT_PERCENTILE_LIMIT,
    *,
    buckets: Iterable[Sequence[Any]] | None = None,
) -> dict[str, float | int | None]:
    """The report's ``time_to_deliver_s``: ``count``, ``median``, ``p90``, ``mean``, ``max`` (seconds).

    :param buckets: the campaigns' latency buckets when already read (:data:`BucketRow`); by default
        they are read with :func:`latency_stats`.
    """
    if buckets is None:
        stats = latency_stats(conn, ledger, ids, exact_limit)
    else:
        stats = stats_from_buckets(conn, ledger, ids, buckets, exact_limit)
    return {
        "count": stats["count"],
        "median": stats["p50"],
        "p90": stats["p90"],
        "mean": stats["mean"],
        "max": stats["max"],
    }


__all__ = [
    "EXACT_PERCENTILE_LIMIT",
    "LATENCY_PERCENTILES",
    "BucketRow",
    "computed_once",
    "latency_bucket",
    "latency_stats",
    "seconds_to_deliver",
    "stats_from_buckets",
    "time_to_deliver",
]
