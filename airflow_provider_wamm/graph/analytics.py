"""``template_analytics``: what it is asked for, and the typed shape of its answer.

``GET /<WABA_ID>/template_analytics`` counts, per template and day, what was sent, delivered, read
and clicked, what it cost, and (Marketing Messages API only) the conversions Meta attributes to it.
Without ``product_type`` Meta counts only Cloud API sends, so marketing messages that fell back to
the Cloud API and those sent through the Marketing Messages API are in two different series: ask for
both (:data:`ANALYTICS_PRODUCT_TYPES`) to see every send.

Sources: "Analytics", https://developers.facebook.com/documentation/business-messaging/whatsapp/analytics
(Meta, Jun 11, 2026: ``product_type`` values, metric types, lookback, at most 10 template ids);
"Viewing metrics", https://developers.facebook.com/documentation/business-messaging/whatsapp/marketing-messages/view-metrics
(Jun 30, 2026); the conversion metric types added on 2026-04-21 ("MM API Changelog"). Meta does not
print the answer's keys for conversion metrics; they are expected as the metric's name in lower case
(:func:`conversions`). Answers name the product type in lower case (``cloud_api``) and, in Meta's
max-price examples, as ``MARKETING_MESSAGES_LITE_API``: :func:`product_type_of` reads them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, TypedDict

__all__ = [
    "ANALYTICS_PRODUCT_TYPES",
    "BASIC_METRIC_TYPES",
    "CONVERSION_METRIC_TYPES",
    "LEGACY_MARKETING_MESSAGES_PRODUCT_TYPE",
    "MAX_ANALYTICS_TEMPLATES",
    "PRODUCT_TYPE_CLOUD_API",
    "PRODUCT_TYPE_MARKETING_MESSAGES",
    "AnalyticsClick",
    "AnalyticsCost",
    "AnalyticsDataPoint",
    "AnalyticsProductType",
    "TemplateAnalytics",
    "analytics_queries",
    "conversions",
    "product_type_of",
]

#: A ``product_type`` of ``template_analytics``.
AnalyticsProductType = Literal["CLOUD_API", "MARKETING_MESSAGES_API_FOR_WHATSAPP"]
#: Sends through the Cloud API (``/messages``), fallbacks of Marketing Messages sends included.
PRODUCT_TYPE_CLOUD_API: AnalyticsProductType = "CLOUD_API"
#: Sends through the Marketing Messages API (``/marketing_messages``).
PRODUCT_TYPE_MARKETING_MESSAGES: AnalyticsProductType = "MARKETING_MESSAGES_API_FOR_WHATSAPP"
#: Both product types: every send of a template.
ANALYTICS_PRODUCT_TYPES: tuple[AnalyticsProductType, ...] = (
    PRODUCT_TYPE_MARKETING_MESSAGES,
    PRODUCT_TYPE_CLOUD_API,
)
#: The earlier name of the Marketing Messages product type, still seen in Meta's answers.
LEGACY_MARKETING_MESSAGES_PRODUCT_TYPE = "MARKETING_MESSAGES_LITE_API"
#: Most template ids one request may name.
MAX_ANALYTICS_TEMPLATES = 10
#: The metrics every product type has.
BASIC_METRIC_TYPES = ("SENT", "DELIVERED", "READ", "CLICKED", "COST")
#: Conversion metrics, Marketing Messages API only (Meta Pixel or Conversions API of the same business).
CONVERSION_METRIC_TYPES = (
    "APP_ACTIVATIONS",
    "APP_ADD_TO_CART",
    "APP_CHECKOUTS_INITIATED",
    "APP_PURCHASES",
    "APP_PURCHASES_CONVERSION_VALUE",
    "WEBSITE_ADD_TO_CART",
    "WEBSITE_CHECKOUTS_INITIATED",
    "WEBSITE_PURCHASES",
    "WEBSITE_PURCHASES_CONVERSION_VALUE",
    "APP_ADD_PAYMENT_INFO",
    "APP_ADD_TO_WISHLIST",
    "APP_COMPLETE_REGISTRATION",
    "APP_LEVEL_ACHIEVED",
    "APP_OTHER",
    "APP_RATE",
    "APP_SEARCH",
    "APP_TUTORIAL_COMPLETION",
    "APP_VIEW_CONTENT",
    "WEBSITE_ADD_PAYMENT_INFO",
    "WEBSITE_ADD_TO_WISHLIST",
    "WEBSITE_COMPLETE_REGISTRATION",
    "WEBSITE_CUSTOM",
    "WEBSITE_LEAD",
    "WEBSITE_SEARCH",
    "WEBSITE_VIEW_CONTENT",
)
_CONVERSION_KEYS = frozenset(m.lower() for m in CONVERSION_METRIC_TYPES)


class AnalyticsClick(TypedDict, total=False):
    """One ``clicked`` entry of a data point; its ``type`` is ``quick_reply_button``, ``url_button`` or
    ``unique_url_button``."""

    type: str
    button_content: str
    """The button's label."""
    count: int
    """Clicks that day."""


class AnalyticsCost(TypedDict, total=False):
    """One ``cost`` entry of a data point (in the account's currency); its ``type`` is ``amount_spent``,
    ``cost_per_delivered`` or ``cost_per_url_button_click``."""

    type: str
    value: float
    """The amount."""


class AnalyticsDataPoint(TypedDict, total=False):
    """One template on one day. Conversion metrics come as further keys (see :func:`conversions`)."""

    template_id: str
    """Meta's template id."""
    start: int
    """Start of the day, Unix seconds."""
    end: int
    """End of the day, Unix seconds."""
    sent: int
    """Messages sent."""
    delivered: int
    """Messages delivered."""
    read: int
    """Messages read (counted for 7 days after the send)."""
    clicked: list[AnalyticsClick]
    """Button clicks (marketing and utility templates)."""
    cost: list[AnalyticsCost]
    """What the messages cost (absent on a partner's credit line)."""


class TemplateAnalytics(TypedDict, total=False):
    """One ``data`` entry of a ``template_analytics`` answer: a series of one product type."""

    granularity: str
    """``DAILY``."""
    product_type: str
    """As Meta writes it (read it with :func:`product_type_of`)."""
    waba_timezone: str
    """The account's time zone, when the days follow it."""
    data_points: list[AnalyticsDataPoint]
    """The days."""


def product_type_of(value: object) -> AnalyticsProductType | None:
    """The product type Meta names in an answer (any case, earlier names included); ``None`` if unknown."""
    if not isinstance(value, str):
        return None
    name = value.strip().upper()
    if name == PRODUCT_TYPE_CLOUD_API:
        return PRODUCT_TYPE_CLOUD_API
    if name in (PRODUCT_TYPE_MARKETING_MESSAGES, LEGACY_MARKETING_MESSAGES_PRODUCT_TYPE):
        return PRODUCT_TYPE_MARKETING_MESSAGES
    return None


def conversions(point: Mapping[str, Any]) -> dict[str, float]:
    """The conversion metrics of a data point, by metric name (``website_purchases``...): numbers only."""
    return {
        key: float(value)
        for key, value in point.items()
        if key in _CONVERSION_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def analytics_queries(
    template_ids: Sequence[str],
    start: str,
    end: str,
    metric_types: Sequence[str] | None,
    product_type: str | Sequence[str] | None,
) -> Iterator[dict[str, Any]]:
    """The query parameters of the requests that cover ``template_ids`` (10 per request) for each
    product type asked for (``None``: Meta's default, the Cloud API only)."""
    if product_type is None or isinstance(product_type, str):
        product_types: Sequence[str | None] = [product_type or None]
    else:
        product_types = list(dict.fromkeys(product_type)) or [None]
    for kind in product_types:
        for i in range(0, len(template_ids), MAX_ANALYTICS_TEMPLATES):
            params: dict[str, Any] = {
                "start": start,
                "end": end,
                "granularity": "DAILY",
                "template_ids": json.dumps(list(template_ids[i : i + MAX_ANALYTICS_TEMPLATES])),
            }
            if metric_types:
                params["metric_types"] = json.dumps([str(m).upper() for m in metric_types])
            if kind:
                params["product_type"] = kind
            yield params
