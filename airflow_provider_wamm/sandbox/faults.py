"""Injected faults: which one a request gets, and the error answers of the failing kinds.

The media links of a message are read here by the sandbox's own :func:`_header_links`. The provider's
circuit breaker has a reader of the same links; the sandbox does not import it, because all its
reading of what it is sent is a second, independent reading of Meta's message format (see the
package's docstring): a shared reader would hide the mistake it is there to catch.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from starlette.responses import Response

from airflow_provider_wamm.sandbox.config import SandboxConfig
from airflow_provider_wamm.sandbox.responses import GraphFailure, graph_error

#: A fault a request can get (the configuration's ``fault_*_rate`` fields).
FaultKind = Literal["drop", "5xx", "transient", "throttle", "lost", "slow"]
#: Faults answered with an error (the others close the connection or delay the answer).
ERROR_FAULTS: frozenset[str] = frozenset({"5xx", "transient", "throttle"})


def random_fault(cfg: SandboxConfig, rng: random.Random) -> FaultKind | None:
    """One draw decides which fault (if any) this request gets."""
    r = rng.random()
    rates: tuple[tuple[FaultKind, float], ...] = (
        ("drop", cfg.fault_drop_rate),
        ("5xx", cfg.fault_5xx_rate),
        ("transient", cfg.fault_transient_rate),
        ("throttle", cfg.fault_throttle_rate),
        ("lost", cfg.fault_lost_response_rate),
        ("slow", cfg.fault_slow_rate),
    )
    for name, rate in rates:
        if r < rate:
            return name
        r -= rate
    return None


def whole_list_fault(
    cfg: SandboxConfig, first_send_at: float | None, components: list[dict[str, Any]]
) -> GraphFailure | None:
    """The error every row of a campaign gets alike: 131009 while the template is "syncing"
    (``template_sync_s`` from the first send after the reset), 131053 for a header link in
    ``broken_media_links``."""
    since = 0.0 if first_send_at is None else time.monotonic() - first_send_at
    if cfg.template_sync_s and since < cfg.template_sync_s:
        return graph_error(131009, "Parameter value is not valid: the template is not synced yet")
    if cfg.broken_media_links:
        for link in _header_links(components):
            if link in cfg.broken_media_links:
                return graph_error(131053, f"Unable to upload the media used in the message: {link}")
    return None


def _header_links(components: Any) -> Iterator[str]:
    """Media links of header parameters: the message's own components first, then its carousel
    cards', level by level."""
    levels: deque[Any] = deque([components])
    while levels:
        level = levels.popleft()
        for component in level if isinstance(level, list) else []:
            if not isinstance(component, Mapping):
                continue
            cards = component.get("cards")
            levels.extend(c.get("components") for c in cards or [] if isinstance(c, Mapping))
            if component.get("type") == "header":
                yield from _media_links(component.get("parameters"))


def _media_links(parameters: Any) -> Iterator[str]:
    """The ``link`` of each media parameter (``{"type": "image", "image": {"link": ...}}``)."""
    for parameter in parameters if isinstance(parameters, list) else []:
        media = parameter.get(parameter.get("type")) if isinstance(parameter, Mapping) else None
        link = media.get("link") if isinstance(media, Mapping) else None
        if isinstance(link, str):
            yield link


def fault_error(kind: str, cfg: SandboxConfig, rng: random.Random) -> GraphFailure:
    """The answer of an error fault: a 5xx (with or without Graph's envelope), a transient Graph
    error, or a throttling error."""
    choice = rng.randrange(3) if kind != "throttle" else rng.randrange(2)
    if kind == "5xx":
        if choice == 0:
            return graph_error(2, "Service temporarily unavailable", status=500)
        if choice == 1:
            page = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
            return GraphFailure(Response(page, status_code=502, media_type="text/html"), None)
        return GraphFailure(Response(b"", status_code=503), None)
    if kind == "transient":
        code = (1, 2, 131000)[choice]
        return graph_error(code, "Temporary error, please retry", status=503 if code == 2 else 500)
    if choice == 0:
        return graph_error(4, "Application request limit reached")
    return graph_error(130429, "Message throughput limit reached", status=cfg.rate_limit_http_status)
