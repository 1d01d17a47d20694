"""Draw ``docs/_static/architecture.svg``: the layers and one campaign's data flow.

Run ``python docs/diagrams/architecture.py`` after changing the picture; the SVG is committed so
the docs build needs nothing but Sphinx. Boxes are (x, y, width, height, layer, title, lines).
"""

from __future__ import annotations

import pathlib
from html import escape

OUT = pathlib.Path(__file__).resolve().parent.parent / "_static" / "architecture.svg"

#: Fill colours by layer (the same as in architecture.md's table).
COLOURS = {
    "airflow": "#e8f1fb",
    "campaign": "#e9f7ef",
    "graph": "#fff4e0",
    "webhooks": "#f4ecfb",
    "store": "#f2f2f2",
    "meta": "#fde8e8",
}

BOXES = {
    "operator": (
        20,
        20,
        250,
        78,
        "airflow",
        "MarketingMessageOperator",
        ["operators/: arguments, preflight,", "safeguards; on_kill"],
    ),
    "hooks": (
        20,
        128,
        250,
        78,
        "airflow",
        "hooks/",
        ["WhatsAppHook (connection, client),", "recipients (SQL streaming), ledger"],
    ),
    "intake": (320, 20, 190, 64, "campaign", "intake", ["normalise, dedupe, shard"]),
    "eligibility": (320, 100, 190, 74, "campaign", "eligibility", ["skip done, suppressed;", "personalise"]),
    "claim": (320, 188, 190, 64, "campaign", "hand-over", ["claims; guards, budget"]),
    "pacing": (540, 20, 190, 64, "campaign", "pacing", ["cap, 1-s window, throttle"]),
    "workers": (540, 104, 190, 64, "campaign", "worker pool", ["in flight follows round trip"]),
    "sender": (540, 188, 190, 64, "campaign", "sender loop", ["answers -> outcomes, flush"]),
    "client": (760, 62, 200, 64, "graph", "GraphClient", ["payloads, errors, classify"]),
    "transport": (760, 146, 200, 64, "graph", "transport", ["keep-alive socket pool"]),
    "meta": (760, 290, 200, 64, "meta", "Meta Graph API", ["POST marketing_messages"]),
    "ledger": (
        320,
        300,
        410,
        78,
        "store",
        "ledger (SQL: Postgres, MariaDB, SQLite)",
        ["sends, runs, statuses, clicks, suppressions,", "signals; one cap per number"],
    ),
    "receiver": (760, 410, 200, 64, "webhooks", "webhooks/ receiver", ["signed bodies -> ledger"]),
    "sensor": (
        20,
        300,
        250,
        78,
        "airflow",
        "MarketingResponsesSensor",
        ["sensors/ + triggers/: defer until", "statuses settle"],
    ),
    "report": (
        20,
        410,
        250,
        78,
        "campaign",
        "report",
        ["counts, funnel, errors, cost", "-> XCom, SQL table, HTML"],
    ),
}

#: Arrows: (from, to, label, from side, to side); sides are n, s, e, w.
ARROWS = [
    ("operator", "hooks", "reads", "s", "n"),
    ("hooks", "intake", "rows", "e", "w"),
    ("intake", "eligibility", "", "s", "n"),
    ("eligibility", "claim", "", "s", "n"),
    ("claim", "ledger", "claim", "s", "n"),
    ("claim", "workers", "jobs", "e", "w"),
    ("pacing", "workers", "turn", "s", "n"),
    ("workers", "client", "", "e", "w"),
    ("client", "transport", "", "s", "n"),
    ("transport", "meta", "HTTPS", "s", "n"),
    ("workers", "sender", "answers", "s", "n"),
    ("sender", "ledger", "outcomes", "s", "n"),
    ("meta", "receiver", "webhooks", "s", "n"),
    ("receiver", "ledger", "statuses, signals", "w", "e"),
    ("ledger", "sensor", "reads", "w", "e"),
    ("sensor", "report", "", "s", "n"),
]


def _anchor(box: tuple[int, int, int, int], side: str) -> tuple[float, float]:
    x, y, w, h = box
    return {"n": (x + w / 2, y), "s": (x + w / 2, y + h), "e": (x + w, y + h / 2), "w": (x, y + h / 2)}[side]


def _box(name: str) -> list[str]:
    x, y, w, h, layer, title, lines = BOXES[name]
    out = [
        f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{COLOURS[layer]}" stroke="#555"/>',
        f'<text x="{x + 10}" y="{y + 22}" font-weight="bold">{escape(title)}</text>',
    ]
    out += [f'<text x="{x + 10}" y="{y + 42 + 16 * i}">{escape(line)}</text>' for i, line in enumerate(lines)]
    return out


def _arrow(src: str, dst: str, label: str, side_from: str, side_to: str) -> list[str]:
    x1, y1 = _anchor(BOXES[src][:4], side_from)
    x2, y2 = _anchor(BOXES[dst][:4], side_to)
    out = [f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#333" marker-end="url(#head)"/>']
    if label:
        out.append(
            f'<text x="{(x1 + x2) / 2 + 4}" y="{(y1 + y2) / 2 - 4}" fill="#333">{escape(label)}</text>'
        )
    return out


def render() -> str:
    """The whole SVG document."""
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="980" height="500" viewBox="0 0 980 500" '
        'font-family="Helvetica, Arial, sans-serif" font-size="13">',
        '<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
        '<path d="M0,0 L10,4 L0,8 z" fill="#333"/></marker></defs>',
        '<rect width="980" height="500" fill="white"/>',
    ]
    for name in BOXES:
        parts += _box(name)
    for arrow in ARROWS:
        parts += _arrow(*arrow)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT.name}")
