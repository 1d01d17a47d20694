"""Graph API versions: the provider's default, the shape of a version string, and Meta's calendar.

This module is the one place the default version and the version pattern are written; the client,
the connection settings and the connection form import them from here.

Why :data:`DEFAULT_API_VERSION` is ``v25.0``:

* it is the newest version for which Meta publishes the WhatsApp references the provider is built
  against: the Marketing Messages API reference (``marketing_messages``, ``v25.0``) and the webhook
  references the receiver reads (status webhooks without ``conversation``, ``pricing.type``,
  ``pricing.cost``, business-scoped user ids). Meta's send examples on the "Single-product message
  templates" (Jun 24, 2026) and "Product card carousel templates" (Jun 18, 2026) pages call ``v25.0``;
* Meta keeps it available until 2028-07-29 ("Graph API Changelog", Available Graph API Versions,
  https://developers.facebook.com/docs/graph-api/changelog, updated Oct 29, 2026);
* ``v26.0`` (2026-07-29) and ``v27.0`` (2026-11-04, "Introducing Graph API v27.0 and Marketing API
  v27.0", https://developers.facebook.com/blog/post/2026/11/04/introducing-graph-api-v27-and-marketing-api-v27/)
  announce no WhatsApp change, so a connection may pin them, but no WhatsApp reference written for
  them was available to check the payloads against.

Any version that matches :data:`API_VERSION_PATTERN` is accepted: connections pinned to an older one
(``v23.0``, ``v24.0``) keep working until Meta retires it.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

__all__ = [
    "API_VERSION_FORM_PATTERN",
    "API_VERSION_PATTERN",
    "API_VERSION_RE",
    "DEFAULT_API_VERSION",
    "GRAPH_API_VERSIONS",
    "GraphApiVersion",
    "is_api_version",
]

#: The Graph API version used when neither the call nor the connection names one.
DEFAULT_API_VERSION = "v25.0"
#: A Graph API version as written in request paths: ``v`` then major and minor number (``v25.0``).
API_VERSION_PATTERN = r"v[0-9]+\.[0-9]+"
#: :data:`API_VERSION_PATTERN` compiled (use ``fullmatch``).
API_VERSION_RE = re.compile(API_VERSION_PATTERN)
#: The JSON-schema pattern of the connection form's field: a version, or empty (the default applies).
API_VERSION_FORM_PATTERN = f"^({API_VERSION_PATTERN})?$"


@dataclass(frozen=True)
class GraphApiVersion:
    """One Graph API version in Meta's calendar."""

    version: str
    """The version as written in request paths, e.g. ``v25.0``."""
    introduced: _dt.date
    """The day Meta released it."""
    available_until: _dt.date | None
    """The last day Meta serves it; ``None`` while Meta says "TBD"."""


#: Meta's calendar of the versions a connection may still name, newest first (Graph API Changelog,
#: "Available Graph API Versions", updated Oct 29, 2026; v27.0 from Meta's blog of Nov 4, 2026).
GRAPH_API_VERSIONS: tuple[GraphApiVersion, ...] = (
    GraphApiVersion("v27.0", _dt.date(2026, 11, 4), None),
    GraphApiVersion("v26.0", _dt.date(2026, 7, 29), None),
    GraphApiVersion("v25.0", _dt.date(2026, 2, 18), _dt.date(2028, 7, 29)),
    GraphApiVersion("v24.0", _dt.date(2025, 10, 8), _dt.date(2028, 2, 18)),
    GraphApiVersion("v23.0", _dt.date(2025, 5, 29), _dt.date(2027, 10, 8)),
    GraphApiVersion("v22.0", _dt.date(2025, 1, 21), _dt.date(2027, 5, 20)),
    GraphApiVersion("v21.0", _dt.date(2024, 10, 2), _dt.date(2027, 1, 21)),
)


def is_api_version(value: object) -> bool:
    """Whether ``value`` is a version string such as ``v25.0`` (Meta decides whether it is served)."""
    return isinstance(value, str) and API_VERSION_RE.fullmatch(value) is not None
