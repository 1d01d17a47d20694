"""``GET /{version}/{waba_id}/template_analytics``: daily sent, delivered, read, clicked and cost per
template, counted from the messages the sandbox accepted, and conversions for Marketing Messages sends.

``product_type`` is ``CLOUD_API`` (Meta's default: sends that went through, or fell back to, the Cloud
API) or ``MARKETING_MESSAGES_API_FOR_WHATSAPP`` (its earlier name ``MARKETING_MESSAGES_LITE_API`` too);
conversion metrics exist only for the latter ("Analytics", Meta, Jun 11, 2026). Meta does not print
how conversions appear in the answer; the sandbox answers each as a key named after the metric in lower
case (a count, or an amount for ``*_CONVERSION_VALUE``), derived from the clicks it recorded.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_wamm.sandbox.config import SandboxConfig
from airflow_provider_wamm.sandbox.graph_call import GraphCall, run_graph_call
from airflow_provider_wamm.sandbox.params import encode_cursor, parse_day, parse_list
from airflow_provider_wamm.sandbox.responses import graph_error, json_response
from airflow_provider_wamm.sandbox.state import SandboxContext, SandboxMessage

_MM_PRODUCT_TYPES = frozenset({"MARKETING_MESSAGES_LITE_API", "MARKETING_MESSAGES_API_FOR_WHATSAPP"})
_PRODUCT_TYPES = _MM_PRODUCT_TYPES | {"CLOUD_API"}
_ANALYTICS_METRICS = ("SENT", "DELIVERED", "READ", "CLICKED", "COST")
#: Conversion metrics (Marketing Messages API only), as Meta lists them.
CONVERSION_METRICS = frozenset(
    {
        f"{source}_{event}"
        for source in ("APP", "WEBSITE")
        for event in (
            "ADD_TO_CART",
            "CHECKOUTS_INITIATED",
            "PURCHASES",
            "PURCHASES_CONVERSION_VALUE",
            "ADD_PAYMENT_INFO",
            "ADD_TO_WISHLIST",
            "COMPLETE_REGISTRATION",
            "SEARCH",
            "VIEW_CONTENT",
        )
    }
    | {"APP_ACTIVATIONS", "APP_LEVEL_ACHIEVED", "APP_OTHER", "APP_RATE", "APP_TUTORIAL_COMPLETION"}
    | {"WEBSITE_CUSTOM", "WEBSITE_LEAD"}
)
#: Conversions per click, by the end of the metric's name (others: none).
_CONVERSIONS_PER_CLICK = {"ADD_TO_CART": 1.0, "CHECKOUTS_INITIATED": 0.75, "PURCHASES": 0.5}
#: What one purchase is worth in ``*_PURCHASES_CONVERSION_VALUE``.
_PURCHASE_VALUE = 20.0
_DAY = 86400


@dataclass(frozen=True, slots=True)
class AnalyticsQuery:
    """What a ``template_analytics`` request asks for."""

    start: int
    """First day (unix seconds at 00:00 UTC)."""
    end: int
    """Day after the last one."""
    template_ids: list[str]
    metrics: list[str]
    product_type: str
    """``CLOUD_API`` or one of the Marketing Messages product types (upper case)."""

    @property
    def pricing_category(self) -> str:
        """The pricing category of the messages this product type counts."""
        return "marketing_lite" if self.product_type in _MM_PRODUCT_TYPES else "marketing"

    @classmethod
    def parse(cls, params: QueryParams) -> AnalyticsQuery:
        """Read and check the query parameters; raises the Graph error a bad one gets."""
        try:
            start = parse_day(params.get("start"), "start")
            end = parse_day(params.get("end"), "end")
        except ValueError as exc:
            raise graph_error(100, str(exc)) from None
        if end <= start:
            end = start + _DAY
        if (end - start) // _DAY > 90:
            raise graph_error(100, "Invalid parameter: the period cannot be longer than 90 days")
        if (params.get("granularity") or "DAILY").upper() != "DAILY":
            raise graph_error(100, "Invalid parameter granularity: only DAILY is supported")
        template_ids = parse_list(params.get("template_ids"))
        if not template_ids:
            raise graph_error(100, "The parameter template_ids is required.")
        if len(template_ids) > 10:
            raise graph_error(100, "Invalid parameter template_ids: at most 10 template ids")
        metrics = [m.upper() for m in parse_list(params.get("metric_types"))] or list(_ANALYTICS_METRICS)
        unknown = sorted(set(metrics) - set(_ANALYTICS_METRICS) - CONVERSION_METRICS)
        if unknown:
            raise graph_error(100, f"Invalid parameter metric_types: unknown metric {unknown[0]}")
        product_type = (params.get("product_type") or "CLOUD_API").upper()
        if product_type not in _PRODUCT_TYPES:
            raise graph_error(100, f"Invalid parameter product_type: {product_type}")
        return cls(start, end, template_ids, metrics, product_type)


async def get_template_analytics(request: Request, ctx: SandboxContext) -> Response:
    """The endpoint, in the common Graph frame."""
    return await run_graph_call(request, ctx, _analytics)


def _analytics(call: GraphCall) -> Response:
    call.require_node(call.config.waba_id)
    query = AnalyticsQuery.parse(call.request.query_params)
    counts = count_messages(call.state.messages, query)
    buttons = _button_labels(call.config, set(query.template_ids))
    points = [
        data_point(
            query,
            template_id,
            day,
            counts.get((template_id, day), (0, 0, 0, 0)),
            button_label=buttons.get(template_id, "Link"),
            price_per_message=call.config.price_per_message,
        )
        for template_id in query.template_ids
        for day in range(query.start, query.end, _DAY)
    ]
    data = {
        "data": [{"granularity": "DAILY", "product_type": query.product_type.lower(), "data_points": points}],
        "paging": {"cursors": {"before": encode_cursor(0), "after": encode_cursor(len(points))}},
    }
    return json_response(200, data)


def count_messages(
    messages: Iterable[SandboxMessage], query: AnalyticsQuery
) -> dict[tuple[str, int], list[int]]:
    """Sent, delivered, read and clicked per (template id, day) of the messages the query covers."""
    wanted = set(query.template_ids)
    counts: dict[tuple[str, int], list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    for msg in list(messages):
        if msg.template_id not in wanted or msg.pricing_category != query.pricing_category:
            continue
        day = int(msg.timestamp) - int(msg.timestamp) % _DAY
        if not query.start <= day < query.end or msg.outcome.startswith("failed:"):
            continue
        row = counts[(msg.template_id, day)]
        row[0] += 1
        row[1] += msg.outcome in ("delivered", "read")
        row[2] += msg.outcome == "read"
        row[3] += msg.clicked
    return counts


def _button_labels(cfg: SandboxConfig, wanted: set[str]) -> dict[str, str]:
    """The text of each wanted template's first URL button (``Link`` without one)."""
    buttons: dict[str, str] = {}
    for tpl in cfg.templates.values():
        if tpl.id in wanted:
            url_buttons = [b for b in tpl.buttons if str(b.get("type", "")).upper() == "URL"]
            buttons[tpl.id or ""] = str(url_buttons[0].get("text", "Link")) if url_buttons else "Link"
    return buttons


def data_point(
    query: AnalyticsQuery,
    template_id: str,
    day: int,
    counts: Sequence[int],
    *,
    button_label: str,
    price_per_message: float,
) -> dict[str, Any]:
    """One day of one template, with the metrics the query asks for."""
    sent, delivered, read, clicked = counts
    metrics = query.metrics
    point: dict[str, Any] = {"template_id": template_id, "start": day, "end": day + _DAY}
    if "SENT" in metrics:
        point["sent"] = sent
    if "DELIVERED" in metrics:
        point["delivered"] = delivered
    if "READ" in metrics:
        point["read"] = read
    if "CLICKED" in metrics and clicked:
        point["clicked"] = [{"type": "url_button", "button_content": button_label, "count": clicked}]
    if "COST" in metrics:
        spent = round(delivered * price_per_message, 4)
        cost = [{"type": "amount_spent", "value": spent}]
        if delivered:
            cost.append({"type": "cost_per_delivered", "value": round(spent / delivered, 4)})
        if clicked:
            cost.append({"type": "cost_per_url_button_click", "value": round(spent / clicked, 4)})
        point["cost"] = cost
    if query.product_type in _MM_PRODUCT_TYPES:
        point.update(conversion_counts(metrics, clicked))
    return point


def conversion_counts(metrics: Sequence[str], clicked: int) -> dict[str, float | int]:
    """The asked-for conversion metrics of a day with ``clicked`` clicks (keys in lower case)."""
    out: dict[str, float | int] = {}
    for metric in metrics:
        if metric not in CONVERSION_METRICS:
            continue
        if metric.endswith("_PURCHASES_CONVERSION_VALUE"):
            out[metric.lower()] = round(
                int(clicked * _CONVERSIONS_PER_CLICK["PURCHASES"]) * _PURCHASE_VALUE, 2
            )
            continue
        share = next((v for k, v in _CONVERSIONS_PER_CLICK.items() if metric.endswith(k)), 0.0)
        out[metric.lower()] = int(clicked * share)
    return out
