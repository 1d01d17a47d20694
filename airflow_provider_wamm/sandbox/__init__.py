"""A local stand-in for the Graph API's Marketing Messages endpoints (no Meta account needed).

A real HTTP server (Starlette on uvicorn) that answers
``POST /{version}/{phone_number_id}/marketing_messages``
and the read endpoints a campaign needs, enforces Meta's throughput and pair limits, injects faults,
answers with Meta-like latencies (log-normal times, tail spikes, a temporary slowdown), and sends
signed status webhooks. Used by the tests, the demo and the benchmarks; run it alone with the
``wamm-sandbox`` command.

Its checks of a send (:mod:`~airflow_provider_wamm.sandbox.validation`) are a second, independent
reading of Meta's rules: the sandbox never imports the provider's payload validation
(:mod:`airflow_provider_wamm.graph.payload`), so a misreading there is caught by the sandbox instead
of repeated by it. From the rest of the provider it takes only data and shared mechanics: Meta's
error titles (:func:`airflow_provider_wamm.graph.errors.error_title`) and the webhook signature
(:mod:`airflow_provider_wamm.webhooks.signature`). Nothing here imports Airflow.

>>> from airflow_provider_wamm.sandbox import Sandbox
>>> with Sandbox(mps_cap=200, latency_median_s=0.3, latency_sigma=0.6) as sb:  # doctest: +SKIP
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
from airflow_provider_wamm.sandbox.server import Sandbox
from airflow_provider_wamm.sandbox.state import SandboxContext, SandboxMessage
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
    "SandboxContext",
    "SandboxMessage",
    "SandboxTemplate",
    "build_payload",
    "default_templates",
    "parse_forced",
    "sign_payload",
    "verify_signature",
]
