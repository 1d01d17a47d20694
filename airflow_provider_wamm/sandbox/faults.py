"""Injected faults: which one a request gets, and the error answers of the failing kinds."""

from __future__ import annotations

import random
from typing import Literal

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
