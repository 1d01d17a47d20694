"""The campaign report: what happened to every message of a campaign, aggregated in the database.

A report counts recipients by send state (what the Graph API answered), the messages Meta took by
delivery status (what the webhooks said since), errors by code for both stages with Meta's title,
routing (``marketing_lite``: sent by the Marketing Messages API; ``marketing``: fell back to the Cloud
API), clicks, the delivery/read/click rates and the time from acceptance to delivery (median and p90).
Every number comes from SQL aggregates (:mod:`~airflow_provider_wamm.campaign.report_queries`), so a
campaign of a million sends is reported without loading its rows; each section of the report is one
small function over them. The simple counts of one campaign (:func:`send_counts`,
:func:`delivery_counts`, :func:`error_counts`) run the same queries.

Beside it: :mod:`~airflow_provider_wamm.campaign.report_latency` (time to deliver),
:mod:`~airflow_provider_wamm.campaign.report_sql` (the report as SQL table rows) and
:mod:`~airflow_provider_wamm.campaign.report_analytics` (Meta's template analytics); their public
names are importable from here too.

Nothing here imports Airflow: the sensor, the trigger and any script can build the same report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from airflow_provider_wamm.campaign.ledger import (
    CLAIMED,
    DELIVERED_TO_META,
    FAILED,
    SEND_STATES,
    SETTLED_STATUSES,
    UNKNOWN,
    DeliveryStatus,
    Ledger,
    utcnow,
)
from airflow_provider_wamm.campaign.report_analytics import summarise_template_analytics
from airflow_provider_wamm.campaign.report_cost import cost_from_rows
from airflow_provider_wamm.campaign.report_latency import (
    EXACT_PERCENTILE_LIMIT,
    LATENCY_PERCENTILES,
    time_to_deliver,
)
from airflow_provider_wamm.campaign.report_queries import (
    PENDING,
    ROUTING_CATEGORIES,
    CampaignActivity,
    ErrorRow,
    click_counts,
    delivery_error_rows,
    delivery_groups,
    message_outcomes,
    read_activity,
    routing_counts,
    send_error_rows,
    status_counts,
    unsettled_count,
)
from airflow_provider_wamm.campaign.report_sql import (
    parse_table_name,
    report_rows,
    report_table,
    write_report_table,
)
from airflow_provider_wamm.campaign.report_variants import variant_counts, variant_section
from airflow_provider_wamm.campaign.ttl import recorded_ttl_s
from airflow_provider_wamm.graph.errors import ERROR_TITLES, error_title

#: Delivery statuses listed in every report (``pending``: Meta took the message, no webhook yet).
DELIVERY_STATUSES = ("sent", "delivered", "read", "failed", PENDING)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ratio(numerator: int, denominator: int) -> float | None:
    """``numerator / denominator`` rounded to 4 places; ``None`` when the denominator is 0."""
    if denominator <= 0:
        return None
    return round(numerator / denominator, 4)


def _ids(campaign_ids: str | Sequence[str]) -> list[str]:
    ids = [campaign_ids] if isinstance(campaign_ids, str) else list(dict.fromkeys(campaign_ids))
    if not ids:
        raise ValueError("at least one campaign id is needed")
    return ids


# --- campaign activity and settling ---------------------------------------------------------------


def campaign_activity(ledger: Ledger, campaign_ids: str | Sequence[str]) -> CampaignActivity:
    """Send states, first and last send time and template of one campaign or several (one query)."""
    ids = _ids(campaign_ids)
    with ledger.read() as conn:
        return read_activity(conn, ledger, ids)


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
    with ledger.read() as conn:
        activity = read_activity(conn, ledger, ids)
        unsettled = activity.states.get(CLAIMED, 0) + unsettled_count(conn, ledger, ids)
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
    unknown_unresolved: int = 0
    """Sends still ``unknown`` when the report was made (no status webhook resolved them: Meta most
    likely never took them; see the reliability page, "Resolving unknown")."""
    ttl_s: float | None = None
    """The template's time-to-live the operator recorded (seconds; ``None``: not known)."""
    expired: int = 0
    """Messages Meta took more than ``ttl_s`` ago without a final status: Meta drops a message its TTL
    outlived without a webhook (see :mod:`~.ttl`), so these were most likely never delivered."""
    attributed_cost: dict[str, float] = field(default_factory=dict)
    """What Meta's status webhooks say the messages cost (``pricing.cost``, sent for messages with a max
    price), summed by currency; ``{}`` when no webhook gave a cost (see :mod:`~.report_cost`)."""
    costed: int = 0
    """Messages Meta gave a cost for (the rest are not in :attr:`attributed_cost`)."""
    pricing_types: dict[str, int] = field(default_factory=dict)
    """Messages Meta took by ``pricing.type``: ``regular`` (billable), ``free_entry_point``,
    ``free_customer_service``, ``unknown`` (no priced webhook yet)."""
    variants: list[dict[str, Any]] = field(default_factory=list)
    """With an experiment: each variant's funnel, rates and lift against the baseline variant, then
    the held-back groups (:func:`~airflow_provider_wamm.campaign.report_variants.variant_section`)."""

    def __post_init__(self) -> None:
        self.unknown_unresolved = int(self.sends.get(UNKNOWN, 0))

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
        if self.expired:
            parts.append(f"{self.expired} outlived the template's TTL undelivered")
        for currency, amount in sorted(self.attributed_cost.items()):
            parts.append(f"Meta's cost {amount:g} {currency} ({self.costed} priced messages)")
        return ", ".join(parts)


# --- the report's fields, section by section -------------------------------------------------------


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


def _sends_section(activity: CampaignActivity) -> dict[str, int]:
    """Recipients by send state: every state listed, then any other state the ledger holds."""
    sends = {state.value: int(activity.states.get(state, 0)) for state in SEND_STATES}
    sends.update({k: v for k, v in activity.states.items() if k not in sends})
    return sends


class _DeliverySection(NamedTuple):
    """The delivery section of a report: statuses and the totals derived from them."""

    delivery: dict[str, int]
    delivered: int
    read: int
    failed: int


def _delivery_section(statuses: Mapping[str, int]) -> _DeliverySection:
    """Delivery statuses (every one listed) and the delivered/read/failed totals.

    A ``read`` (or ``played``) message was delivered too; ``played`` is listed only when it occurs.
    """
    delivery: dict[str, int] = dict.fromkeys(DELIVERY_STATUSES, 0)
    for name, n in statuses.items():
        delivery[name] = delivery.get(name, 0) + n
    played = delivery.pop(DeliveryStatus.PLAYED.value, 0)
    read = delivery["read"] + played
    if played:
        delivery[DeliveryStatus.PLAYED.value] = played
    return _DeliverySection(delivery, delivery["delivered"] + read, read, delivery["failed"])


def _errors_section(send_rows: list[ErrorRow], delivery_rows: list[ErrorRow]) -> list[dict[str, Any]]:
    """Failures by code and stage with Meta's titles, most frequent first."""
    items = [
        {
            "code": row.code,
            "title": _title(row.code, row.title),
            "stage": stage,
            "count": row.count,
            "details": row.details,
        }
        for stage, rows in (("delivery", delivery_rows), ("send", send_rows))
        for row in rows
    ]
    return sorted(items, key=_error_sort_key)


def _waiting(statuses: Mapping[str, int]) -> int:
    """Messages Meta took whose latest status is not final (``pending`` or ``sent``)."""
    return sum(n for name, n in statuses.items() if name not in SETTLED_STATUSES)


def _rates_section(
    sends: Mapping[str, int], delivery: _DeliverySection, routing: Mapping[str, int], clicked: int
) -> dict[str, float | None]:
    """Delivery, read, click, failure and fallback rates (``None`` when undefined)."""
    accepted = sum(sends.get(state, 0) for state in DELIVERED_TO_META)
    refused = sends.get(FAILED, 0)
    attempted = accepted + refused + sends.get(UNKNOWN, 0)
    priced = routing["marketing_lite"] + routing["marketing"]
    return {
        "delivery_rate": _ratio(delivery.delivered, accepted),
        "read_rate": _ratio(delivery.read, delivery.delivered),
        "click_rate": _ratio(clicked, delivery.delivered),
        "delivery_failure_rate": _ratio(delivery.failed, accepted),
        "send_failure_rate": _ratio(refused, attempted),
        "fallback_rate": _ratio(routing["marketing"], priced),
    }


def add_ttl(
    report: CampaignReport, ledger: Ledger, *, ttl_s: float | None = None, now: datetime | None = None
) -> CampaignReport:
    """Fill the report's ``ttl_s`` (default: the time-to-live the campaign's runs recorded) and
    ``expired``: messages Meta took more than ``ttl_s`` before ``now`` without a final status."""
    ids = report.campaign_ids or _ids(report.campaign_id)
    report.ttl_s = ttl_s if ttl_s is not None else recorded_ttl_s(ledger, ids)
    if report.ttl_s is not None:
        before = (now or utcnow()) - timedelta(seconds=report.ttl_s)
        with ledger.read() as conn:
            report.expired = unsettled_count(conn, ledger, ids, accepted_before=before)
    return report


def build_report(
    ledger: Ledger,
    campaign_ids: str | Sequence[str],
    *,
    timed_out: bool = False,
    analytics: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    exact_percentile_limit: int = EXACT_PERCENTILE_LIMIT,
) -> CampaignReport:
    """Aggregate the report of one or several campaigns in a few grouped queries (send states; latency x
    status x pricing x error code, which gives the cost too; send errors; variants) and two lookups.

    :param ledger: the campaign ledger.
    :param campaign_ids: a campaign id, or several to report as one.
    :param timed_out: mark the report as made at the settle timeout (kept only if not settled).
    :param analytics: Meta's analytics summary to attach (see :func:`summarise_template_analytics`).
    :param now: the report time (tests).
    :param exact_percentile_limit: above this many delivered messages, percentiles come from latency
        buckets (0.1 s resolution under a minute, 1 s under an hour, 1 min beyond) instead of sorting.
    """
    ids = _ids(campaign_ids)
    with ledger.read() as conn:
        activity = read_activity(conn, ledger, ids)
        outcomes = message_outcomes(conn, ledger, ids)
        send_errors = send_error_rows(conn, ledger, ids)
        latency = time_to_deliver(conn, ledger, ids, exact_percentile_limit, buckets=outcomes.buckets)
        variants = variant_counts(conn, ledger, ids) if activity.in_experiment else {}
    groups, sends = outcomes.groups, _sends_section(activity)
    delivery, routing = _delivery_section(status_counts(groups)), routing_counts(groups)
    clicked, clicks = click_counts(groups)
    unsettled = sends.get(CLAIMED, 0) + _waiting(delivery.delivery)
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
        total=sum(sends.values()),
        sends=sends,
        accepted=sum(sends.get(state, 0) for state in DELIVERED_TO_META),
        delivery=delivery.delivery,
        delivered=delivery.delivered,
        read=delivery.read,
        delivery_failed=delivery.failed,
        clicked=clicked,
        clicks=clicks,
        routing=routing,
        errors=_errors_section(send_errors, delivery_error_rows(groups)),
        rates=_rates_section(sends, delivery, routing, clicked),
        time_to_deliver_s=latency,
        analytics=dict(analytics) if analytics is not None else None,
        variants=variant_section(variants),
        **cost_from_rows(outcomes.costs).report_fields(),
    )


# --- simple counts of one campaign ------------------------------------------------------------------


def send_counts(ledger: Ledger, campaign_id: str) -> dict[str, int]:
    """Number of recipients of one campaign by send state (only the states that occur)."""
    with ledger.read() as conn:
        return read_activity(conn, ledger, [campaign_id]).states


def delivery_counts(ledger: Ledger, campaign_id: str) -> dict[str, int]:
    """Messages Meta took (accepted/held/paused) by latest delivery status (``pending`` = none yet)."""
    with ledger.read() as conn:
        return status_counts(delivery_groups(conn, ledger, [campaign_id]))


def error_counts(ledger: Ledger, campaign_id: str) -> list[dict[str, Any]]:
    """Failures of one campaign by error code, most frequent first.

    Each item: ``code``, ``title`` (as stored, else Meta's), ``count``, ``stage`` (``send`` for a
    refused request, ``delivery`` for a ``failed`` webhook), and one example ``details``.
    """
    with ledger.read() as conn:
        by_stage = (
            ("send", send_error_rows(conn, ledger, [campaign_id])),
            ("delivery", delivery_error_rows(delivery_groups(conn, ledger, [campaign_id]))),
        )
    out: list[dict[str, Any]] = [
        {
            "code": row.code,
            "title": row.title or error_title(row.code),
            "count": row.count,
            "stage": stage,
            "details": row.details,
        }
        for stage, rows in by_stage
        for row in rows
    ]
    out.sort(key=lambda item: (-item["count"], item["stage"], item["code"] or 0))
    return out


__all__ = [
    "DELIVERY_STATUSES",
    "EXACT_PERCENTILE_LIMIT",
    "LATENCY_PERCENTILES",
    "PENDING",
    "ROUTING_CATEGORIES",
    "CampaignActivity",
    "CampaignReport",
    "ErrorRow",
    "SettleState",
    "add_ttl",
    "build_report",
    "campaign_activity",
    "delivery_counts",
    "error_counts",
    "parse_table_name",
    "report_rows",
    "report_table",
    "send_counts",
    "settle_state",
    "summarise_template_analytics",
    "write_report_table",
]
