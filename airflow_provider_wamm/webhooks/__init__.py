"""The WhatsApp status-webhook receiver: signature check, parsing and storage in the campaign ledger.

Use :func:`create_app` to embed it in any ASGI server, the ``wamm-webhooks`` command to run it on its
own, or the Airflow plugin (:mod:`airflow_provider_wamm.webhooks.plugin`) to serve it from the Airflow
API server at ``/whatsapp-webhooks/``.
"""

from __future__ import annotations

from airflow_provider_wamm.webhooks.app import DEFAULT_MAX_BODY_BYTES, WebhookSettings, create_app
from airflow_provider_wamm.webhooks.parsing import ParsedWebhook, WebhookFormatError, parse_webhook
from airflow_provider_wamm.webhooks.signature import SIGNATURE_HEADER, sign, verify_signature

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "SIGNATURE_HEADER",
    "ParsedWebhook",
    "WebhookFormatError",
    "WebhookSettings",
    "create_app",
    "parse_webhook",
    "sign",
    "verify_signature",
]
