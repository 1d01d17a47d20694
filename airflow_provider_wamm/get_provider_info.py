"""Provider metadata that Airflow reads through the ``apache_airflow_provider`` entry point.

The ``whatsapp`` connection form is declared here (``conn-fields``, ``ui-field-behaviour``), which is
what the Airflow 3.2+ UI renders; custom fields are stored as plain keys in the connection's extra.
The ``[wamm]`` configuration section is declared here too (``config``), so ``airflow config list`` and
``airflow config get-value wamm <option>`` document it and Airflow's ``conf`` knows its defaults.
"""

from __future__ import annotations

from typing import Any

# Equal to graph.versions.DEFAULT_API_VERSION and API_VERSION_FORM_PATTERN, and to
# campaign.ledger.DEFAULT_TABLE_PREFIX below (tests keep them so): Airflow imports this module in every
# command while it discovers providers, so it imports nothing of the package.
DEFAULT_API_VERSION = "v25.0"
API_VERSION_FORM_PATTERN = "^(v[0-9]+\\.[0-9]+)?$"

PACKAGE = "airflow_provider_wamm"
DOCS_URL = "https://developers.facebook.com/docs/whatsapp/marketing-messages-lite-api"


def _field(label: str, description: str, kind: str, **rules: Any) -> dict[str, Any]:
    """A connection form field holding a ``kind`` (JSON schema type) or nothing, with its schema ``rules``."""
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], **rules}}


#: Schema rules of an ID field: digits only.
_DIGITS = {"pattern": "^[0-9]*$"}
#: Schema rules of a secret: the form masks it.
_SECRET = {"format": "password"}


#: Custom fields of the ``whatsapp`` connection (stored in ``extra``).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "phone_number_id": _field(
        "Phone number ID",
        "ID of the WhatsApp business phone number that sends (WhatsApp Manager > Phone numbers).",
        "string",
        **_DIGITS,
    ),
    "waba_id": _field(
        "WhatsApp Business Account ID",
        "Enables template preflight checks, onboarding status and template analytics.",
        "string",
        **_DIGITS,
    ),
    "api_version": _field(
        "Graph API version",
        f"Graph API version used in request paths, e.g. {DEFAULT_API_VERSION}.",
        "string",
        default=DEFAULT_API_VERSION,
        pattern=API_VERSION_FORM_PATTERN,
    ),
    "app_id": _field(
        "App ID",
        "Meta app ID; with the app secret, lets the connection test check the token's expiry and scopes.",
        "string",
    ),
    "app_secret": _field(
        "App secret",
        "Meta app secret: verifies webhook signatures and inspects the access token.",
        "string",
        **_SECRET,
    ),
    "webhook_verify_token": _field(
        "Webhook verify token",
        "The token you typed in the app's webhook settings; answers Meta's verification handshake.",
        "string",
        **_SECRET,
    ),
    "max_messages_per_second": _field(
        "Max messages per second",
        "Throughput cap of the phone number (80 by default, up to 1000 once Meta upgrades it).",
        "integer",
        default=80,
        minimum=1,
        maximum=1000,
    ),
    "timeout": _field(
        "Timeout (seconds)",
        "Read timeout of each Graph API call.",
        "number",
        default=30,
        minimum=1,
    ),
}


#: Section of the provider's options in ``airflow.cfg`` (env ``AIRFLOW__WAMM__<OPTION>``).
CONFIG_SECTION = "wamm"


def _option(description: str, kind: str, default: str, example: str | None) -> dict[str, Any]:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": kind,
        "example": example,
        "default": default,
    }


#: The ``[wamm]`` options: Airflow registers them with these defaults, and the provider reads them
#: through ``conf`` with the same defaults.
CONFIG_OPTIONS: dict[str, dict[str, Any]] = {
    "ledger_conn_id": _option(
        "Connection of the send ledger (postgres, mysql or sqlite) used by every MarketingMessageOperator, "
        "MarketingResponsesSensor and trigger that is not given ``ledger_conn_id``, and by the webhook "
        "receiver on the API server, so all of them read and write one ledger. Empty: a SQLite file "
        "under AIRFLOW_HOME (one machine only). Use PostgreSQL when tasks run on several machines.",
        "string",
        "",
        "wamm_ledger",
    ),
    # Equal to campaign.ledger.DEFAULT_TABLE_PREFIX (see the note at the top of the module).
    "ledger_table_prefix": _option(
        "Prefix of the ledger's tables written by the webhook receiver; keep it equal to the "
        "operators' and sensors' ``ledger_table_prefix`` (default ``wamm_``).",
        "string",
        "wamm_",
        "wamm_",
    ),
    "webhook_conn_id": _option(
        "The ``whatsapp`` connection whose extra holds ``app_secret`` and ``webhook_verify_token`` for "
        "the webhook receiver mounted on the API server at /whatsapp-webhooks/.",
        "string",
        "whatsapp_default",
        "whatsapp_default",
    ),
    "webhook_max_body_bytes": _option(
        "Largest webhook body (bytes) the receiver accepts; larger requests are refused with 413.",
        "integer",
        "4194304",
        "4194304",
    ),
}


def config_default(option: str) -> str:
    """The registered default of ``[wamm] option``."""
    return str(CONFIG_OPTIONS[option]["default"])


def read_config(option: str) -> str:
    """``[wamm] option`` from Airflow's configuration (``airflow.cfg`` or ``AIRFLOW__WAMM__*``), stripped.

    The registered default applies when it is unset, also in processes that have not loaded the providers'
    configuration. Imported lazily: Airflow imports this module while it discovers providers.
    """
    from airflow.providers.common.compat.sdk import conf

    default = config_default(option)
    value = conf.get(CONFIG_SECTION, option, fallback=default)
    return default if value is None else str(value).strip()


INTEGRATION = "WhatsApp Marketing Messages"

#: The ``whatsapp`` connection type: the hook, and the form the UI draws for it.
CONNECTION_TYPE: dict[str, Any] = {
    "connection-type": "whatsapp",
    "hook-class-name": f"{PACKAGE}.hooks.whatsapp.WhatsAppHook",
    "hook-name": INTEGRATION,
    # Port stays visible: Airflow 3.3's Test button (connections list) posts the stored port as a number,
    # 0 when none is stored, and the API server refuses a test whose port differs from the stored one
    # ("Bad Request"). With a port stored (443 for Meta) the test runs.
    "ui-field-behaviour": {
        "hidden-fields": ["login", "schema", "extra"],
        "relabeling": {"password": "Access token", "host": "Graph API base URL", "port": "Port"},
        "placeholders": {
            "host": "https://graph.facebook.com",
            "port": "443",
            "password": "System-user access token",
            "phone_number_id": "123456789012345",
            "api_version": DEFAULT_API_VERSION,
        },
    },
    "conn-fields": CONN_FIELDS,
}


def _modules(*modules: str) -> list[dict[str, Any]]:
    return [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.{m}" for m in modules]}]


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow's ``ProvidersManager`` validates and registers."""
    return {
        "package-name": "airflow-provider-wamm",
        "name": INTEGRATION,
        "description": "Send WhatsApp marketing template campaigns with the Marketing Messages API, "
        "idempotently and at Meta's throughput cap, and report what happened to every message.",
        "integrations": [
            {"integration-name": INTEGRATION, "external-doc-url": DOCS_URL, "tags": ["service"]}
        ],
        "hooks": _modules("hooks.whatsapp"),
        "operators": _modules("operators.marketing", "operators.attribution"),
        "sensors": _modules("sensors.responses"),
        "triggers": _modules("triggers.responses", "triggers.templates", "triggers.window"),
        "notifications": [f"{PACKAGE}.notifications.run_alerts.RunAlertNotifier"],
        "extra-links": [f"{PACKAGE}.operators.lineage.CampaignReportLink"],
        "config": {
            CONFIG_SECTION: {
                "description": "WhatsApp Marketing Messages provider: where the send ledger lives and how "
                "the webhook receiver on the API server finds its secrets.",
                "options": CONFIG_OPTIONS,
            }
        },
        "connection-types": [dict(CONNECTION_TYPE)],
    }
