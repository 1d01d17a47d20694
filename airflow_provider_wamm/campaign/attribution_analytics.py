"""Meta's conversion metrics beside an attribution: ``template_analytics`` per template the groups sent.

The attribution counts conversions from a table of the business's own; Meta counts, per template and
day, the conversions its Pixel or Conversions API attributes to Marketing Messages sends
(:data:`~airflow_provider_wamm.graph.analytics.CONVERSION_METRIC_TYPES`). This module finds the
templates each group was sent (from the ledger), asks ``template_analytics`` for them over the days of
the campaign, and sums each template's sends, deliveries and conversion metrics, so the two can be read
side by side. Meta's numbers cover the template's every send on those days, other campaigns included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import ACCEPTED, Ledger
from airflow_provider_wamm.graph.analytics import PRODUCT_TYPE_MARKETING_MESSAGES, conversions
from airflow_provider_wamm.graph.client import GraphClient

#: The conversion metrics asked for unless others are given.
DEFAULT_CONVERSION_METRICS = (
    "WEBSITE_PURCHASES",
    "WEBSITE_PURCHASES_CONVERSION_VALUE",
    "WEBSITE_ADD_TO_CART",
    "WEBSITE_CHECKOUTS_INITIATED",
    "APP_PURCHASES",
    "APP_PURCHASES_CONVERSION_VALUE",
)
#: What the numbers cover (Meta counts per template and day).
SCOPE = "template and days (other sends of the template on these days are included)"


def group_templates(ledger: Ledger, campaign_ids: Sequence[str]) -> dict[tuple[str, str], list[str]]:
    """The (template, language) pairs the campaigns' accepted sends used, with the groups that used
    each (a variant's name, ``rest:<variant>``, or ``treatment`` without an experiment)."""
    s = ledger.sends.c
    query = (
        sa.select(s.template_name, s.language, s.variant)
        .where(s.campaign_id.in_(list(campaign_ids)), s.state == ACCEPTED, s.template_name.is_not(None))
        .distinct()
    )
    with ledger.read() as conn:
        rows = conn.execute(query).all()
    pairs: dict[tuple[str, str], list[str]] = {}
    for template, language, variant in rows:
        groups = pairs.setdefault((str(template), str(language or "")), [])
        group = str(variant) if variant else "treatment"
        if group not in groups:
            groups.append(group)
    return {pair: sorted(groups) for pair, groups in sorted(pairs.items())}


def summarise_conversions(data: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the ``sent``, ``delivered`` and conversion metrics of every data point of an answer, with
    each conversion count per delivered message (``<metric>_per_delivered``)."""
    sent = delivered = days = 0
    totals: dict[str, float] = {}
    for entry in data:
        points = entry.get("data_points") if isinstance(entry, Mapping) else None
        for point in points if isinstance(points, list) else []:
            if not isinstance(point, Mapping):
                continue
            days += 1
            sent += int(point.get("sent") or 0)
            delivered += int(point.get("delivered") or 0)
            for name, value in conversions(point).items():
                totals[name] = totals.get(name, 0.0) + value
    rates = {
        f"{name}_per_delivered": (value / delivered if delivered else None)
        for name, value in totals.items()
        if not name.endswith("_conversion_value")
    }
    return {"sent": sent, "delivered": delivered, "days": days, "conversions": totals, **rates}


def meta_conversions(
    client: GraphClient,
    templates: Mapping[tuple[str, str], Sequence[str]],
    *,
    start: datetime,
    end: datetime,
    metrics: Sequence[str] = DEFAULT_CONVERSION_METRICS,
) -> list[dict[str, Any]]:
    """Per template: its groups, Meta's id, and the summed analytics of the Marketing Messages API sends
    from ``start`` to ``end`` (a template Meta does not know gets an ``error`` instead)."""
    out: list[dict[str, Any]] = []
    for (name, language), groups in templates.items():
        entry: dict[str, Any] = {"template_name": name, "language": language, "groups": list(groups)}
        template = client.get_template(name, language)
        template_id = template.get("id") if template else None
        if not template_id:
            out.append(entry | {"error": f"template {name!r} ({language}) not found"})
            continue
        data = client.template_analytics(
            template_ids=[str(template_id)],
            start=start,
            end=end,
            metric_types=["SENT", "DELIVERED", *metrics],
            product_type=PRODUCT_TYPE_MARKETING_MESSAGES,
        )
        out.append(entry | {"template_id": str(template_id), **summarise_conversions(data)})
    return out


__all__ = [
    "DEFAULT_CONVERSION_METRICS",
    "SCOPE",
    "group_templates",
    "meta_conversions",
    "summarise_conversions",
]
