"""Graph query parameters the read endpoints take: ``fields``, cursors, days and lists."""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import json
from collections.abc import Collection

from airflow_provider_wamm.sandbox.responses import graph_error


def split_fields(value: str | None) -> list[str]:
    """Top-level names of a Graph ``fields`` list (``a,b{c,d},e.limit(2)`` -> a, b, e)."""
    if not value:
        return []
    names: list[str] = []
    depth = 0
    current = ""
    for ch in value:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        if ch == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += ch
    names.append(current)
    result = []
    for name in names:
        base = name.strip().split("{", 1)[0].split(".", 1)[0].strip()
        if base:
            result.append(base)
    return result


def requested_fields(value: str | None, known: Collection[str], node_type: str) -> list[str]:
    """The fields a request asks for; raises 100 for one the node type does not have."""
    requested = split_fields(value)
    for name in requested:
        if name not in known:
            raise graph_error(
                100, message=f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})"
            )
    return requested


def encode_cursor(offset: int) -> str:
    """An opaque paging cursor for ``offset``."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The offset of a cursor from :func:`encode_cursor`; ``None`` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not text.startswith("offset:") or not text[7:].isdigit():
        return None
    return int(text[7:])


def parse_day(value: str | None, name: str) -> int:
    """Unix seconds (or YYYY-MM-DD) snapped to 00:00 UTC; ``ValueError`` names the parameter."""
    if value is None or value == "":
        raise ValueError(f"The parameter {name} is required.")
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"Invalid parameter {name}: must be a unix timestamp or YYYY-MM-DD") from None
        seconds = calendar.timegm(day.timetuple())
    return seconds - seconds % 86400


def parse_list(value: str | None) -> list[str]:
    """A Graph list parameter: JSON array (``["1","2"]``) or comma-separated."""
    if not value:
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = text.strip("[]").split(",")
        return [str(i).strip().strip('"') for i in items if str(i).strip()]
    return [part.strip() for part in text.split(",") if part.strip()]
