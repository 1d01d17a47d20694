"""A local stand-in for the Graph API's Marketing Messages endpoints (no Meta account needed).

A real HTTP server (Starlette on uvicorn) that answers
``POST /{version}/{phone_number_id}/marketing_messages``
and the read endpoints a campaign needs, enforces Meta's throughput and pair limits, injects faults,
and sends signed status webhooks. Used by the tests, the demo and the benchmarks; run it alone with
the ``wamm-sandbox`` command.

>>> from airflow_provider_wamm.sandbox import Sandbox
>>> with Sandbox(mps_cap=200, latency_s=0.05) as sb:  # doctest: +SKIP
...     ...  # point a client at sb.url with token sb.config.access_token
"""

from __future__ import annotations

from airflow_provider_wamm.sandbox.config import (
    ForcedOutcome,
    SandboxConfig,
    SandboxTemplate,
    default_templates,
    parse_forced,
)
from airflow_provider_wamm.sandbox.server import Sandbox, SandboxMessage
from airflow_provider_wamm.sandbox.webhooks import (
    SIGNATURE_HEADER,
    build_payload,
    sign_payload,
    verify_signature,
)

__all__ = [
    "SIGNATURE_HEADER",
    "ForcedOutcome",
    "Sandbox",
    "SandboxConfig",
    "SandboxMessage",
    "SandboxTemplate",
    "build_payload",
    "default_templates",
    "parse_forced",
    "sign_payload",
    "verify_signature",
]
