"""The campaign report as one self-contained HTML page: an inline SVG funnel and tables.

No scripts, fonts, stylesheets or images are loaded from anywhere: the file can be mailed, attached
to a ticket or opened offline. Every value is HTML-escaped. No recipient data is in a report, so none
is in the page.
"""

from __future__ import annotations

import html
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_wamm.campaign.report import CampaignReport

_BAR_COLOURS = ("#128C7E", "#25D366", "#34B7F1", "#F5A623")
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:2rem;color:#1f2933;max-width:60rem}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}
.meta{color:#52606d;font-size:.9rem}
table{border-collapse:collapse;margin-top:.5rem;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;font-size:.8rem;color:#fff}
.ok{background:#2f9e44}.wait{background:#f08c00}.late{background:#c92a2a}
.variants{display:flex;flex-wrap:wrap;gap:1rem}.variant h3{font-size:1rem;margin:.5rem 0 0}
"""


def _e(value: Any) -> str:
    """Escape any value for HTML text and attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def _pct(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.1%}"
    return "-"


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return _e(value)


def funnel_svg(stages: Sequence[tuple[str, int]], *, width: int = 640, bar_height: int = 34) -> str:
    """An inline SVG funnel: one horizontal bar per stage, scaled to the first, with count and share.

    :param stages: ``(label, count)`` pairs, widest first (e.g. sent, delivered, read, clicked).
    :param width: drawing width in pixels.
    :param bar_height: height of one bar in pixels.
    """
    label_w = 150
    value_w = 150
    bar_area = max(50, width - label_w - value_w)
    gap = 10
    height = len(stages) * (bar_height + gap) + gap
    base = max((count for _, count in stages[:1]), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Delivery funnel">',
        "<title>Delivery funnel</title>",
    ]
    for i, (label, count) in enumerate(stages):
        y = gap + i * (bar_height + gap)
        share = (count / base) if base > 0 else 0.0
        bar = max(0.0, min(1.0, share)) * bar_area
        x = label_w + (bar_area - bar) / 2  # centred bars make the funnel shape
        colour = _BAR_COLOURS[i % len(_BAR_COLOURS)]
        text_y = y + bar_height / 2 + 5
        parts.append(
            f'<text x="{label_w - 10}" y="{text_y:.1f}" text-anchor="end" font-size="14" '
            f'fill="#1f2933">{_e(label)}</text>'
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{bar_height}" rx="4" fill="{colour}">'
            f"<title>{_e(label)}: {count:,}</title></rect>"
        )
        share_text = f" ({share:.1%})" if base > 0 and i > 0 else ""
        parts.append(
            f'<text x="{label_w + bar_area + 10}" y="{text_y:.1f}" font-size="14" '
            f'fill="#1f2933">{count:,}{_e(share_text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if i in numeric:
                cells.append(f'<td class="n">{_num(value)}</td>')
            else:
                cells.append(f"<td>{_e(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(headers)}">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _badge(r: CampaignReport) -> str:
    """Settled, waiting, or timed out, as a coloured badge."""
    if r.settled:
        return '<span class="badge ok">settled</span>'
    if r.timed_out:
        return f'<span class="badge late">settle timeout: {r.unsettled:,} without a final status</span>'
    return f'<span class="badge wait">{r.unsettled:,} without a final status yet</span>'


def _funnel(r: CampaignReport) -> str:
    """The funnel drawing: accepted, delivered, read, clicked.

    Meta's click webhooks rarely name their message; its template analytics count clicks per day,
    so those stand in (marked with ``*``) when no click could be joined to a message.
    """
    analytics_clicks = int((r.analytics or {}).get("clicked") or 0)
    clicked = ("Clicked", r.clicked) if r.clicked or not analytics_clicks else ("Clicked*", analytics_clicks)
    stages = [("Sent (accepted)", r.accepted), ("Delivered", r.delivered), ("Read", r.read), clicked]
    funnel = funnel_svg(stages)
    if clicked[0].endswith("*"):
        funnel += '<p class="meta">* clicks counted by Meta&#39;s template analytics for these days</p>'
    return funnel


def _summary_rows(r: CampaignReport) -> list[tuple[str, Any]]:
    return [
        ("Recipients", r.total),
        ("Accepted by Meta", r.accepted),
        ("Refused by the API", r.sends.get("failed", 0)),
        ("Delivered", r.delivered),
        ("Read", r.read),
        ("Failed after acceptance", r.delivery_failed),
        ("Clicked (messages)", r.clicked),
        ("Clicks", r.clicks),
        *([("Outlived the template's TTL undelivered", r.expired)] if r.ttl_s is not None else []),
    ]


def _rate_rows(r: CampaignReport) -> list[tuple[str, str]]:
    rates, latency = r.rates, r.time_to_deliver_s
    return [
        ("Delivery rate (delivered / accepted)", _pct(rates.get("delivery_rate"))),
        ("Read rate (read / delivered)", _pct(rates.get("read_rate"))),
        ("Click rate (clicked / delivered)", _pct(rates.get("click_rate"))),
        ("Send failure rate", _pct(rates.get("send_failure_rate"))),
        ("Cloud API fallback (marketing / priced)", _pct(rates.get("fallback_rate"))),
        ("Time to deliver, median (s)", _num(latency.get("median"))),
        ("Time to deliver, p90 (s)", _num(latency.get("p90"))),
    ]


def _routing_rows(r: CampaignReport) -> list[tuple[str, int]]:
    return [
        ("marketing_lite (Marketing Messages API)", r.routing.get("marketing_lite", 0)),
        ("marketing (Cloud API fallback)", r.routing.get("marketing", 0)),
        ("unknown (no priced status yet)", r.routing.get("unknown", 0)),
    ]


def _price_section(r: CampaignReport) -> list[str]:
    """Messages by Meta's ``pricing.type`` and the cost Meta's webhooks gave, when there is either."""
    if not r.attributed_cost and set(r.pricing_types) <= {"unknown"}:
        return []
    rows: list[tuple[str, Any]] = [(f"pricing type {kind}", n) for kind, n in sorted(r.pricing_types.items())]
    rows += [
        (f"Meta's cost ({currency})", f"{amount:g}") for currency, amount in sorted(r.attributed_cost.items())
    ]
    if r.attributed_cost:
        rows.append(("messages with a cost from Meta", r.costed))
    return [
        "<h2>Price</h2>",
        '<p class="meta">From the status webhooks: <code>pricing.type</code>, and <code>pricing.cost</code> '
        "for messages sent with a max price.</p>",
        _table(("", "value"), rows, numeric=(1,)),
    ]


def _analytics_section(r: CampaignReport) -> list[str]:
    """Meta's template analytics, when the report has them."""
    if not r.analytics:
        return []
    analytics_rows = [
        (key, value)
        for key, value in r.analytics.items()
        if isinstance(value, (str, int, float)) and not isinstance(value, bool)
    ]
    return [
        "<h2>Meta template analytics</h2>",
        '<p class="meta">Per template and day, so other sends of the same template on these days '
        "are included.</p>",
        _table(("metric", "value"), analytics_rows, numeric=(1,)),
    ]


def _ci(interval: Sequence[float] | None, *, points: bool = False) -> str:
    """``[low, high]`` as text (percent, or percentage points for a lift)."""
    if not interval:
        return "-"
    low, high = interval
    if points:
        return f"[{low * 100:+.1f}, {high * 100:+.1f}] pts"
    return f"[{low:.1%}, {high:.1%}]"


def _lift(entry: Mapping[str, Any], metric: str) -> str:
    if entry.get("baseline"):
        return "baseline"
    value = entry.get(f"{metric}_lift")
    if value is None:
        return "-"
    p = entry.get(f"{metric}_lift_p_value")
    return f"{value * 100:+.1f} pts {_ci(entry.get(f'{metric}_lift_interval'), points=True)}, p={p:.3g}"


def _experiment_section(r: CampaignReport) -> list[str]:
    """Each variant's funnel side by side, then a table of rates, lifts and held-back groups."""
    if not r.variants:
        return []
    variants = [v for v in r.variants if not v.get("held_back")]
    funnels = [
        f'<div class="variant"><h3>Variant {_e(v["group"])}</h3>'
        + funnel_svg(
            [
                ("Sent", v["sent"]),
                ("Delivered", v["delivered"]),
                ("Read", v["read"]),
                ("Clicked", v["clicked"]),
            ],
            width=420,
            bar_height=26,
        )
        + "</div>"
        for v in variants
    ]
    rows = [
        (
            v["group"],
            v["recipients"],
            v.get("sent", "-"),
            v.get("read", "-"),
            "-" if v.get("held_back") else f"{_pct(v.get('read_rate'))} {_ci(v.get('read_rate_interval'))}",
            "held back" if v.get("held_back") else _lift(v, "read"),
            "-" if v.get("held_back") else f"{_pct(v.get('click_rate'))} {_ci(v.get('click_rate_interval'))}",
            "held back" if v.get("held_back") else _lift(v, "click"),
        )
        for v in r.variants
    ]
    headers = ("group", "recipients", "sent", "read", "read rate", "read lift", "click rate", "click lift")
    return [
        "<h2>Experiment</h2>",
        '<p class="meta">Rates are of the messages Meta took, with 95% intervals; lifts are against the '
        "baseline variant (Newcombe interval, two-proportion z-test). Held-back groups were sent nothing: "
        "measure them with conversions.</p>",
        f'<div class="variants">{"".join(funnels)}</div>',
        _table(headers, rows, numeric=(1, 2, 3)),
    ]


def render_html(report: CampaignReport | Mapping[str, Any], *, title: str | None = None) -> str:
    """The whole report page as a string.

    :param report: a :class:`CampaignReport` or its :meth:`~CampaignReport.to_dict` form.
    :param title: page title (default: "WhatsApp campaign <id>").
    """
    r = report if isinstance(report, CampaignReport) else CampaignReport.from_dict(report)
    page_title = title or f"WhatsApp campaign {r.campaign_id}"
    template = f"{r.template_name} ({r.language})" if r.template_name else "-"
    errors = [
        (e.get("code"), e.get("title"), e.get("stage"), e.get("count"), e.get("details")) for e in r.errors
    ]
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(page_title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(page_title)}</h1>",
        f'<p class="meta">Template {_e(template)} · sends {_e(r.first_send_at or "-")} to '
        f"{_e(r.last_send_at or '-')} · report {_e(r.generated_at)} · {_badge(r)}</p>",
        "<h2>Funnel</h2>",
        _funnel(r),
        "<h2>Summary</h2>",
        _table(("", "count"), _summary_rows(r), numeric=(1,)),
        "<h2>Rates</h2>",
        _table(("", "value"), _rate_rows(r)),
        "<h2>Send states</h2>",
        _table(("state", "recipients"), sorted(r.sends.items()), numeric=(1,)),
        "<h2>Delivery statuses</h2>",
        _table(("status", "messages"), list(r.delivery.items()), numeric=(1,)),
        "<h2>Routing</h2>",
        _table(("pricing category", "messages"), _routing_rows(r), numeric=(1,)),
        "<h2>Errors</h2>",
        _table(("code", "title", "stage", "count", "example details"), errors, numeric=(3,)),
        *_price_section(r),
        *_experiment_section(r),
        *_analytics_section(r),
        "</body></html>",
    ]
    return "\n".join(sections)


def write_html(
    path: str | pathlib.Path, report: CampaignReport | Mapping[str, Any], *, title: str | None = None
) -> pathlib.Path:
    """Write :func:`render_html` to ``path`` (parent folders are created); returns the path.

    The file is written next to its final name first and then renamed, so a reader never sees half a page.
    """
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(render_html(report, title=title), encoding="utf-8")
    tmp.replace(target)
    return target


__all__ = ["funnel_svg", "render_html", "write_html"]
