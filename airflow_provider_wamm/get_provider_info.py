"""Provider metadata that Airflow reads through the ``apache_airflow_provider`` entry point.

The ``whatsapp`` connection form is declared here (``conn-fields``, ``ui-field-behaviour``), which is
what the Airflow 3.2+ UI renders; custom fields are stored as plain keys in the connection's extra.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_wamm.graph.versions import API_VERSION_FORM_PATTERN, DEFAULT_API_VERSION

PACKAGE = "airflow_provider_wamm"
DOCS_URL = "https://developers.facebook.com/docs/whatsapp/marketing-messages-lite-api"


def _field(label: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": schema}


#: Custom fields of the ``whatsapp`` connection (stored in ``extra``).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "phone_number_id": _field(
        "Phone number ID",
        "ID of the WhatsApp business phone number that sends (WhatsApp Manager > Phone numbers).",
        {"type": ["string", "null"], "pattern": "^[0-9]*$"},
    ),
    "waba_id": _field(
        "WhatsApp Business Account ID",
        "Enables template preflight checks, onboarding status and template analytics.",
        {"type": ["string", "null"], "pattern": "^[0-9]*$"},
    ),
    "api_version": _field(
        "Graph API version",
        f"Graph API version used in request paths, e.g. {DEFAULT_API_VERSION}.",
        {"type": ["string", "null"], "default": DEFAULT_API_VERSION, "pattern": API_VERSION_FORM_PATTERN},
    ),
    "app_id": _field(
        "App ID",
        "Meta app ID; with the app secret, lets the connection test check the token's expiry and scopes.",
        {"type": ["string", "null"]},
    ),
    "app_secret": _field(
        "App secret",
        "Meta app secret: verifies webhook signatures and inspects the access token.",
        {"type": ["string", "null"], "format": "password"},
    ),
    "webhook_verify_token": _field(
        "Webhook verify token",
        "The token you typed in the app's webhook settings; answers Meta's verification handshake.",
        {"type": ["string", "null"], "format": "password"},
    ),
    "max_messages_per_second": _field(
        "Max messages per second",
        "Throughput cap of the phone number (80 by default, up to 1000 once Meta upgrades it).",
        {"type": ["integer", "null"], "default": 80, "minimum": 1, "maximum": 1000},
    ),
    "timeout": _field(
        "Timeout (seconds)",
        "Read timeout of each Graph API call.",
        {"type": ["number", "null"], "default": 30, "minimum": 1},
    ),
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow's ``ProvidersManager`` validates and registers."""
    return {
        "package-name": "airflow-provider-wamm",
        "name": "WhatsApp Marketing Messages",
        "description": "Send WhatsApp marketing template campaigns with the Marketing Messages API, "
        "idempotently and at Meta's throughput cap, and report what happened to every message.",
        "integrations": [
            {
                "integration-name": "WhatsApp Marketing Messages",
                "external-doc-url": DOCS_URL,
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "WhatsApp Marketing Messages",
                "python-modules": [f"{PACKAGE}.hooks.whatsapp"],
            }
        ],
        "operators": [
            {
                "integration-name": "WhatsApp Marketing Messages",
                "python-modules": [f"{PACKAGE}.operators.marketing"],
            }
        ],
        "sensors": [
            {
                "integration-name": "WhatsApp Marketing Messages",
                "python-modules": [f"{PACKAGE}.sensors.responses"],
            }
        ],
        "triggers": [
            {
                "integration-name": "WhatsApp Marketing Messages",
                "python-modules": [f"{PACKAGE}.triggers.responses"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "whatsapp",
                "hook-class-name": f"{PACKAGE}.hooks.whatsapp.WhatsAppHook",
                "hook-name": "WhatsApp Marketing Messages",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "port", "schema", "extra"],
                    "relabeling": {"password": "Access token", "host": "Graph API base URL"},
                    "placeholders": {
                        "host": "https://graph.facebook.com",
                        "password": "System-user access token",
                        "phone_number_id": "123456789012345",
                        "api_version": DEFAULT_API_VERSION,
                    },
                },
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
