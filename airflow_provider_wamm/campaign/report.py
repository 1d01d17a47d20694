"""The campaign report: what happened to every message of a campaign, aggregated in the database.

A report counts recipients by send state (what the Graph API answered), the messages Meta took by
delivery status (what the webhooks said since), errors by code for both stages with Meta's title,
routing (``marketing_lite``: sent by the Marketing Messages API; ``marketing``: fell back to the Cloud
API), clicks, the delivery/read/click rates and the time from acceptance to delivery (median and p90).
Every number comes from SQL aggregates, so a campaign of a million sends is reported without loading
its rows.

Nothing here imports Airflow: the sensor, the trigger and any script can build the same report.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import expression

from airflow_provider_wamm.campaign.ledger import (
    CLAIMED,
    DELIVERED_TO_META,
    FAILED,
    SEND_STATES,
    SETTLED_STATUSES,
    UNKNOWN,
    Ledger,
    utcnow,
)
from airflow_provider_wamm.graph.errors import ERROR_TITLES, error_title

#: Delivery statuses listed in every report (``pending``: Meta took the message, no webhook yet).
DELIVERY_STATUSES = ("sent", "delivered", "read", "failed", "pending")
#: Routing categories listed in every report.
ROUTING_CATEGORIES = ("marketing_lite", "marketing", "unknown")
#: Percentiles of the time to deliver.
LATENCY_PERCENTILES = (50, 90)


def _as_utc(value: Any) -> datetime | None:
    """A datetime read from the ledger (naive UTC, or text on SQLite) -> aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ratio(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator`` rounded to 4 places; ``None`` when the denominator is 0."""
    if denominator <= 0:
        return None
    return round(numerator / denominator, 4)


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(max(0.0, number), 3) if math.isfinite(number) else None


def _ids(campaign_ids: str | Sequence[str]) -> list[str]:
    ids = [campaign_ids] if isinstance(campaign_ids, str) else list(dict.fromkeys(campaign_ids))
    if not ids:
        raise ValueError("at least one campaign id is needed")
    return ids


@contextlib.contextmanager
def _reading(ledger: Ledger) -> Iterator[Connection]:
    """A read-only connection of the ledger (SQLite: no write lock taken, so webhooks keep flowing)."""
    with ledger.read() as conn:
        yield conn


# --- SQL ---------------------------------------------------------------------------------------------


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


#: Up to this many delivered messages, percentiles are exact (sorted lookups); above, they come from
#: one grouped pass over latency buckets (0.1 s resolution under a minute, 1 s under an hour).
EXACT_PERCENTILE_LIMIT = 50_000


def _latency(conn: Connection, ledger: Ledger, ids: list[str], exact_limit: int) -> dict[str, Any]:
    s, t = ledger.sends.c, ledger.statuses.c
    delivered_at = sa.func.coalesce(t.delivered_at, t.read_at)
    raw = _SecondsBetween(delivered_at, s.accepted_at)
    seconds = sa.case((raw < 0, 0.0), else_=raw)
    inner = (
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
    x = inner.c.seconds
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


# --- campaign activity and settling ---------------------------------------------------------------


@dataclass(frozen=True)
class CampaignActivity:
    """Recipients by send state, when the campaign sent, and with which template (``sends`` table)."""

    states: dict[str, int]
    """Recipients by send state (only states that occur)."""
    first_send_at: datetime | None
    """Earliest claim of a recipient (``None``: nothing was ever recorded)."""
    last_send_at: datetime | None
    """Latest change of a send row: the last claim, acceptance or refusal."""
    template_name: str | None
    """The template the campaign sent (the greatest name if several)."""
    language: str | None
    """The template's language code."""


def _activity(conn: Connection, ledger: Ledger, ids: list[str]) -> CampaignActivity:
    s = ledger.sends.c
    rows = conn.execute(
        sa.select(
            s.state,
            sa.func.count(),
            sa.func.min(sa.func.coalesce(s.claimed_at, s.updated_at)),
            sa.func.max(s.updated_at),
            sa.func.max(s.template_name),
            sa.func.max(s.language),
        )
        .where(s.campaign_id.in_(ids))
        .group_by(s.state)
    ).all()
    states: dict[str, int] = {}
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    templates: list[str] = []
    languages: list[str] = []
    for state, n, first, last, template, language in rows:
        states[str(state)] = int(n)
        if (value := _as_utc(first)) is not None:
            firsts.append(value)
        if (value := _as_utc(last)) is not None:
            lasts.append(value)
        if template:
            templates.append(str(template))
        if language:
            languages.append(str(language))
    return CampaignActivity(
        states=states,
        first_send_at=min(firsts) if firsts else None,
        last_send_at=max(lasts) if lasts else None,
        template_name=max(templates) if templates else None,
        language=max(languages) if languages else None,
    )


def campaign_activity(ledger: Ledger, campaign_ids: str | Sequence[str]) -> CampaignActivity:
    """Send states, first and last send time and template of one campaign or several (one query)."""
    ids = _ids(campaign_ids)
    with _reading(ledger) as conn:
        return _activity(conn, ledger, ids)


def _unsettled(conn: Connection, ledger: Ledger, ids: list[str]) -> int:
    s, t = ledger.sends.c, ledger.statuses.c
    waiting = conn.execute(
        sa.select(sa.func.count())
        .select_from(ledger.sends.outerjoin(ledger.statuses, t.wamid == s.wamid))
        .where(
            s.campaign_id.in_(ids),
            s.state.in_(DELIVERED_TO_META),
            sa.or_(t.status.is_(None), t.status.not_in(SETTLED_STATUSES)),
        )
    ).scalar()
    return int(waiting or 0)


@dataclass(frozen=True)
class SettleState:
    """Whether a campaign (or several) is settled, and when waiting for it stops."""

    settled: bool
    """Every message Meta took has a final status (delivered, read or failed) and nothing is in flight."""
    unsettled: int
    """Recipients still in flight or without a final status."""
    last_send_at: datetime | None
    """The latest send activity (the settle timeout counts from here)."""
    deadline: datetime | None
    """``last_send_at + settle_timeout`` (``None`` without a timeout or without sends)."""
    timed_out: bool
    """Not settled, and the deadline has passed."""

    @property
    def done(self) -> bool:
        """Waiting is over: settled, or timed out."""
        return self.settled or self.timed_out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (e.g. a trigger event's payload)."""
        return {
            "settled": self.settled,
            "unsettled": self.unsettled,
            "last_send_at": _iso(self.last_send_at),
            "deadline": _iso(self.deadline),
            "timed_out": self.timed_out,
        }


def settle_state(
    ledger: Ledger,
    campaign_ids: str | Sequence[str],
    *,
    settle_timeout: timedelta | None,
    now: datetime | None = None,
) -> SettleState:
    """Check whether ``campaign_ids`` are settled or their settle timeout has passed.

    :param ledger: the campaign ledger.
    :param campaign_ids: one campaign id or several (all must settle).
    :param settle_timeout: how long after the last send to wait for final statuses (``None``: for ever).
    :param now: the current time (tests).
    """
    ids = _ids(campaign_ids)
    with _reading(ledger) as conn:
        activity = _activity(conn, ledger, ids)
        unsettled = activity.states.get(CLAIMED, 0) + _unsettled(conn, ledger, ids)
    last = activity.last_send_at
    deadline = last + settle_timeout if (last is not None and settle_timeout is not None) else None
    now = now or utcnow()
    timed_out = unsettled > 0 and deadline is not None and now >= deadline
    return SettleState(unsettled == 0, unsettled, last, deadline, timed_out)


# --- the report ------------------------------------------------------------------------------------


@dataclass
class CampaignReport:
    """Outcome of one campaign (or of several together). :meth:`to_dict` is JSON-safe."""

    campaign_id: str
    """The campaign (several ids joined with ``,`` for a combined report)."""
    generated_at: str
    """When the report was built (ISO 8601, UTC)."""
    settled: bool
    """Every message Meta took has a final delivery status, and nothing is in flight."""
    unsettled: int
    """Messages still waiting for a final status (or still in flight)."""
    campaign_ids: list[str] = field(default_factory=list)
    """Every campaign the report covers."""
    timed_out: bool = False
    """The report was made when the settle timeout ran out, before the campaign settled."""
    template_name: str | None = None
    """Template of the campaign."""
    language: str | None = None
    """Template language."""
    first_send_at: str | None = None
    """First claim (ISO 8601)."""
    last_send_at: str | None = None
    """Last send activity (ISO 8601)."""
    total: int = 0
    """Recipients recorded in the ledger (every state)."""
    sends: dict[str, int] = field(default_factory=dict)
    """Recipients by send state: claimed, accepted, held, paused, failed, skipped, invalid, unknown."""
    accepted: int = 0
    """Messages Meta took (accepted + held + paused): the denominator of the delivery rate."""
    delivery: dict[str, int] = field(default_factory=dict)
    """Messages Meta took, by latest delivery status: sent, delivered, read, failed, pending."""
    delivered: int = 0
    """Messages delivered (a ``read`` counts as delivered too)."""
    read: int = 0
    """Messages read."""
    delivery_failed: int = 0
    """Messages Meta took that later failed (a ``failed`` webhook)."""
    clicked: int = 0
    """Messages with at least one link click."""
    clicks: int = 0
    """Link clicks in total."""
    routing: dict[str, int] = field(default_factory=dict)
    """Messages by pricing category: marketing_lite, marketing (Cloud API fallback), unknown."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """Failures by code and stage (``send``: the API refused; ``delivery``: a failed webhook), most
    frequent first: ``code``, ``title``, ``stage``, ``count``, ``details`` (one example)."""
    rates: dict[str, float | None] = field(default_factory=dict)
    """``delivery_rate`` (delivered/accepted), ``read_rate`` (read/delivered), ``click_rate``
    (clicked/delivered), ``delivery_failure_rate`` (failed webhooks/accepted), ``send_failure_rate``
    (refused/attempted), ``fallback_rate`` (marketing/priced). ``None`` when undefined."""
    time_to_deliver_s: dict[str, float | int | None] = field(default_factory=dict)
    """Seconds from acceptance to delivery: ``count``, ``median``, ``p90``, ``mean``, ``max``."""
    analytics: dict[str, Any] | None = None
    """Meta's template analytics for the campaign's template and days, when requested."""

    @property
    def delivery_ratio(self) -> float | None:
        """Delivered / accepted (``None`` when Meta took nothing)."""
        return self.rates.get("delivery_rate")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the whole report."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignReport:
        """Rebuild a report from :meth:`to_dict` output (unknown keys are ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self) -> str:
        """One line for a task log: counts and rates, no recipient data."""
        rate = self.rates.get("delivery_rate")
        parts = [
            f"campaign {self.campaign_id}: {self.total} recipients",
            f"{self.accepted} accepted",
            f"{self.delivered} delivered" + (f" ({rate:.1%})" if rate is not None else ""),
            f"{self.read} read",
            f"{self.clicked} clicked",
            f"{self.sends.get(FAILED, 0)} refused",
            f"{self.delivery_failed} failed later",
        ]
        if not self.settled:
            parts.append(f"{self.unsettled} without a final status")
        return ", ".join(parts)


def _title(code: Any, stored: Any) -> str:
    """Meta's title from the error table; the title the API or webhook sent for codes not in it."""
    if isinstance(code, int) and code in ERROR_TITLES:
        return ERROR_TITLES[code]
    if isinstance(stored, str) and stored.strip():
        return stored
    return error_title(code if isinstance(code, int) else None)


def _error_sort_key(item: Mapping[str, Any]) -> tuple[int, str, int]:
    code = item["code"]
    return (-int(item["count"]), str(item["stage"]), code if isinstance(code, int) else -1)


def build_report(
    ledger: Ledger,
    campaign_ids: str | Sequence[str],
    *,
    timed_out: bool = False,
    analytics: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    exact_percentile_limit: int = EXACT_PERCENTILE_LIMIT,
) -> CampaignReport:
    """Aggregate the report of one campaign, or of several together, from the ledger.

    Four aggregate queries (send states; delivery status x pricing x error code; send errors; latency
    buckets), plus two sorted lookups for exact percentiles of small campaigns.

    :param ledger: the campaign ledger.
    :param campaign_ids: a campaign id, or several to report as one.
    :param timed_out: mark the report as made at the settle timeout (kept only if not settled).
    :param analytics: Meta's analytics summary to attach (see :func:`summarise_template_analytics`).
    :param now: the report time (tests).
    :param exact_percentile_limit: above this many delivered messages, percentiles come from latency
        buckets (0.1 s resolution under a minute, 1 s under an hour, 1 min beyond) instead of sorting.
    """
    ids = _ids(campaign_ids)
    s, t = ledger.sends.c, ledger.statuses.c
    with _reading(ledger) as conn:
        activity = _activity(conn, ledger, ids)
        delivery_rows = conn.execute(
            sa.select(
                t.status,
                t.pricing_category,
                t.error_code,
                sa.func.count(),
                sa.func.count(t.clicked_at),
                sa.func.coalesce(sa.func.sum(t.click_count), 0),
                sa.func.max(t.error_title),
                sa.func.max(t.error_details),
            )
            .select_from(ledger.sends.outerjoin(ledger.statuses, t.wamid == s.wamid))
            .where(s.campaign_id.in_(ids), s.state.in_(DELIVERED_TO_META))
            .group_by(t.status, t.pricing_category, t.error_code)
        ).all()
        send_error_rows = conn.execute(
            sa.select(s.error_code, sa.func.count(), sa.func.max(s.error_title), sa.func.max(s.error_details))
            .where(s.campaign_id.in_(ids), s.state == FAILED)
            .group_by(s.error_code)
        ).all()
        latency = _latency(conn, ledger, ids, exact_percentile_limit)

    sends = {state: int(activity.states.get(state, 0)) for state in SEND_STATES}
    sends.update({k: v for k, v in activity.states.items() if k not in sends})
    total = sum(sends.values())
    accepted = sum(sends.get(state, 0) for state in DELIVERED_TO_META)

    delivery: dict[str, int] = dict.fromkeys(DELIVERY_STATUSES, 0)
    routing: dict[str, int] = dict.fromkeys(ROUTING_CATEGORIES, 0)
    errors_by_key: dict[tuple[str, Any], dict[str, Any]] = {}
    clicked = clicks = waiting = 0
    for status, category, code, raw_n, clicked_n, clicks_n, title, details in delivery_rows:
        n = int(raw_n)
        name = str(status) if status is not None else "pending"
        delivery[name] = delivery.get(name, 0) + n
        route = str(category) if category else "unknown"
        routing[route] = routing.get(route, 0) + n
        clicked += int(clicked_n or 0)
        clicks += int(clicks_n or 0)
        if status is None or status not in SETTLED_STATUSES:
            waiting += n
        if status == "failed":
            slot = errors_by_key.setdefault(
                ("delivery", code),
                {
                    "code": code,
                    "title": _title(code, title),
                    "stage": "delivery",
                    "count": 0,
                    "details": details,
                },
            )
            slot["count"] += n
    for code, n, title, details in send_error_rows:
        errors_by_key[("send", code)] = {
            "code": code,
            "title": _title(code, title),
            "stage": "send",
            "count": int(n),
            "details": details,
        }
    errors = sorted(errors_by_key.values(), key=_error_sort_key)

    played = delivery.pop("played", 0)
    read = delivery["read"] + played
    if played:
        delivery["played"] = played
    delivered = delivery["delivered"] + read
    delivery_failed = delivery["failed"]
    unsettled = sends.get(CLAIMED, 0) + waiting

    refused = sends.get(FAILED, 0)
    attempted = accepted + refused + sends.get(UNKNOWN, 0)
    priced = routing["marketing_lite"] + routing["marketing"]
    rates = {
        "delivery_rate": _ratio(delivered, accepted),
        "read_rate": _ratio(read, delivered),
        "click_rate": _ratio(clicked, delivered),
        "delivery_failure_rate": _ratio(delivery_failed, accepted),
        "send_failure_rate": _ratio(refused, attempted),
        "fallback_rate": _ratio(routing["marketing"], priced),
    }
    return CampaignReport(
        campaign_id=",".join(ids),
        campaign_ids=ids,
        generated_at=(now or utcnow()).astimezone(UTC).isoformat(),
        settled=unsettled == 0,
        unsettled=unsettled,
        timed_out=timed_out and unsettled > 0,
        template_name=activity.template_name,
        language=activity.language,
        first_send_at=_iso(activity.first_send_at),
        last_send_at=_iso(activity.last_send_at),
        total=total,
        sends=sends,
        accepted=accepted,
        delivery=delivery,
        delivered=delivered,
        read=read,
        delivery_failed=delivery_failed,
        clicked=clicked,
        clicks=clicks,
        routing=routing,
        errors=errors,
        rates=rates,
        time_to_deliver_s={
            "count": latency["count"],
            "median": latency["p50"],
            "p90": latency["p90"],
            "mean": latency["mean"],
            "max": latency["max"],
        },
        analytics=dict(analytics) if analytics is not None else None,
    )


# --- Meta's template analytics -----------------------------------------------------------------------


def summarise_template_analytics(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the ``data_points`` of a ``template_analytics`` answer into one small dict.

    Returns ``sent``, ``delivered``, ``read``, ``clicked`` (all button types), ``clicks_by_type``,
    ``cost`` (``amount_spent``, in the account's currency), ``cost_per_delivered`` and
    ``cost_per_click`` (recomputed), and ``days`` (data points summed). Malformed entries are skipped.
    """

    def number(value: Any) -> float:
        if isinstance(value, bool):
            return 0.0
        try:
            result = float(value)
        except (TypeError, ValueError):
            return 0.0
        return result if math.isfinite(result) else 0.0

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
            if not isinstance(point, Mapping):
                continue
            days += 1
            for key in ("sent", "delivered", "read"):
                out[key] += int(number(point.get(key)))
            for item in point.get("clicked") or []:
                if isinstance(item, Mapping):
                    count = int(number(item.get("count")))
                    kind = str(item.get("type") or "unknown")
                    out["clicked"] += count
                    out["clicks_by_type"][kind] = out["clicks_by_type"].get(kind, 0) + count
            for item in point.get("cost") or []:
                if isinstance(item, Mapping) and item.get("type") == "amount_spent":
                    out["cost"] += number(item.get("value"))
    out["cost"] = round(out["cost"], 6)
    out["cost_per_delivered"] = round(out["cost"] / out["delivered"], 6) if out["delivered"] else None
    out["cost_per_click"] = round(out["cost"] / out["clicked"], 6) if out["clicked"] else None
    out["days"] = days
    return out


# --- the report table ----------------------------------------------------------------------------------

_TABLE_NAME = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]{0,62})\.)?([A-Za-z_][A-Za-z0-9_]{0,62})$")


def parse_table_name(name: str) -> tuple[str | None, str]:
    """``"table"`` or ``"schema.table"`` -> ``(schema, table)``, both plain SQL identifiers.

    :raises ValueError: for anything else (quotes, spaces, dashes...), so a table name can never carry SQL.
    """
    match = _TABLE_NAME.match(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            f"invalid report table name {name!r}: use letters, digits and '_' (optionally 'schema.table'), "
            "starting with a letter or '_', at most 63 characters each"
        )
    return match.group(1), match.group(2)


def report_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The report table's definition: one row per campaign (``row_key='summary'``) and per error code
    and stage (``row_key='error:<stage>:<code>'``), keyed by ``(campaign_id, row_key)``."""
    schema, table = parse_table_name(name)
    return sa.Table(
        table,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("campaign_id", sa.String(255), primary_key=True),
        sa.Column("row_key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16)),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_title", sa.String(255)),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("template_name", sa.String(512)),
        sa.Column("language", sa.String(32)),
        sa.Column("total", sa.Integer),
        sa.Column("accepted", sa.Integer),
        sa.Column("refused", sa.Integer),
        sa.Column("delivered", sa.Integer),
        sa.Column("read", sa.Integer),
        sa.Column("delivery_failed", sa.Integer),
        sa.Column("pending", sa.Integer),
        sa.Column("clicked", sa.Integer),
        sa.Column("marketing_lite", sa.Integer),
        sa.Column("marketing", sa.Integer),
        sa.Column("delivery_rate", sa.Float),
        sa.Column("read_rate", sa.Float),
        sa.Column("click_rate", sa.Float),
        sa.Column("median_deliver_s", sa.Float),
        sa.Column("p90_deliver_s", sa.Float),
        sa.Column("cost", sa.Float),
        sa.Column("settled", sa.Boolean),
        sa.Column("timed_out", sa.Boolean),
        sa.Column("generated_at", sa.DateTime, nullable=False),
        schema=schema,
    )


def report_rows(report: CampaignReport) -> list[dict[str, Any]]:
    """The report table rows of one campaign's report: a summary row, then one row per error."""
    generated = _as_utc(report.generated_at) or utcnow()
    generated_naive = generated.astimezone(UTC).replace(tzinfo=None)
    cost = report.analytics.get("cost") if isinstance(report.analytics, Mapping) else None
    rows: list[dict[str, Any]] = [
        {
            "campaign_id": report.campaign_id,
            "row_key": "summary",
            "kind": "summary",
            "stage": None,
            "error_code": None,
            "error_title": None,
            "count": report.total,
            "template_name": report.template_name,
            "language": report.language,
            "total": report.total,
            "accepted": report.accepted,
            "refused": report.sends.get(FAILED, 0),
            "delivered": report.delivered,
            "read": report.read,
            "delivery_failed": report.delivery_failed,
            "pending": report.delivery.get("pending", 0),
            "clicked": report.clicked,
            "marketing_lite": report.routing.get("marketing_lite", 0),
            "marketing": report.routing.get("marketing", 0),
            "delivery_rate": report.rates.get("delivery_rate"),
            "read_rate": report.rates.get("read_rate"),
            "click_rate": report.rates.get("click_rate"),
            "median_deliver_s": report.time_to_deliver_s.get("median"),
            "p90_deliver_s": report.time_to_deliver_s.get("p90"),
            "cost": float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
            "settled": report.settled,
            "timed_out": report.timed_out,
            "generated_at": generated_naive,
        }
    ]
    empty = {k: None for k in rows[0] if k not in ("campaign_id", "row_key", "kind", "count", "generated_at")}
    for error in report.errors:
        code = error.get("code")
        rows.append(
            {
                **empty,
                "campaign_id": report.campaign_id,
                "row_key": f"error:{error.get('stage')}:{code if code is not None else 'none'}"[:64],
                "kind": "error",
                "stage": error.get("stage"),
                "error_code": code,
                "error_title": (str(error.get("title") or ""))[:255] or None,
                "count": int(error.get("count", 0)),
                "template_name": report.template_name,
                "language": report.language,
                "generated_at": generated_naive,
            }
        )
    return rows


def write_report_table(engine: Engine, table_name: str, reports: Iterable[CampaignReport]) -> int:
    """Replace each report's campaign rows in ``table_name`` (created if missing); returns rows written.

    One transaction: the campaign's old rows are deleted and the new ones inserted, so a re-run
    replaces its rows (an error code that no longer occurs disappears) and readers never see half a
    report. Values are always bound parameters; the table name is validated as an identifier.
    """
    table = report_table(table_name)
    items = list(reports)
    rows = [row for report in items for row in report_rows(report)]
    table.create(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.campaign_id.in_([r.campaign_id for r in items])))
        if rows:
            conn.execute(table.insert(), rows)
    return len(rows)


__all__ = [
    "DELIVERY_STATUSES",
    "EXACT_PERCENTILE_LIMIT",
    "LATENCY_PERCENTILES",
    "ROUTING_CATEGORIES",
    "CampaignActivity",
    "CampaignReport",
    "SettleState",
    "build_report",
    "campaign_activity",
    "parse_table_name",
    "report_rows",
    "report_table",
    "settle_state",
    "summarise_template_analytics",
    "write_report_table",
]
