"""Mount the webhook receiver on the Airflow 3 API server, through an Airflow plugin.

Airflow mounts every plugin's ``fastapi_apps`` entry on its API server, so Meta's callback URL becomes
``https://<airflow api server>/whatsapp-webhooks/``. A small root middleware also routes the URL without
the trailing slash there (otherwise the Airflow UI's catch-all route would answer it, and Meta's
verification would fail). The settings are read when a request arrives, not when the plugin loads, and
cached for a minute. They are the provider's registered ``[wamm]`` options (``airflow config list``
shows them with their defaults; env ``AIRFLOW__WAMM__<OPTION>``):

* ``[wamm] webhook_conn_id`` (default ``whatsapp_default``): the ``whatsapp`` connection whose extra
  holds ``app_secret`` and ``webhook_verify_token``;
* ``[wamm] ledger_conn_id`` (default: none, the SQLite file under ``AIRFLOW_HOME``) and
  ``[wamm] ledger_table_prefix`` (default ``wamm_``): the ledger the statuses go to, the same one the
  operators and sensors use when they are given no ``ledger_conn_id`` (PostgreSQL in production);
* ``[wamm] webhook_max_body_bytes`` (default 4 MiB).

The endpoints carry no Airflow login: Meta cannot log in. Every POST is authenticated by its HMAC
signature instead, and the handshake by the verify token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.providers.common.compat.sdk import AirflowPlugin

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.get_provider_info import CONFIG_SECTION, config_default, read_config
from airflow_provider_wamm.webhooks.app import WebhookSettings, create_app
from airflow_provider_wamm.webhooks.cli import RedactVerifyToken

# The API server's access log prints request lines, and Meta's handshake puts the verify token in the
# query string: blank it there, as the stand-alone ``wamm-webhooks`` command does.
for _access_log in ("uvicorn.access", "gunicorn.access"):
    logging.getLogger(_access_log).addFilter(RedactVerifyToken())

#: Where the receiver is mounted on the API server.
URL_PREFIX = "/whatsapp-webhooks"
DEFAULT_WEBHOOK_CONN_ID = config_default("webhook_conn_id")
DEFAULT_TABLE_PREFIX = config_default("ledger_table_prefix")


class AirflowWebhookSettings:
    """Reads the receiver's settings from Airflow's configuration and connections, with a short cache.

    :param ttl: seconds a read is reused; a changed secret or connection applies after at most this long.
    """

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: WebhookSettings | None = None
        self._expires = 0.0
        self._ledgers: dict[tuple[str, str], Ledger] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ttl={self.ttl})"

    def _ledger(self) -> Ledger:
        """The ledger of ``[wamm] ledger_conn_id``, opened once per (connection, prefix)."""
        from airflow_provider_wamm.hooks.ledger import (
            configured_ledger_conn_id,
            configured_table_prefix,
            get_ledger,
        )

        conn_id, prefix = configured_ledger_conn_id(), configured_table_prefix()
        key = (conn_id or "", prefix)
        ledger = self._ledgers.get(key)
        if ledger is None:
            ledger = self._ledgers[key] = get_ledger(conn_id, table_prefix=prefix)
        return ledger

    def read(self) -> WebhookSettings:
        """Read the settings now (no cache)."""
        from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook

        conn_id = read_config("webhook_conn_id") or DEFAULT_WEBHOOK_CONN_ID
        wa = WhatsAppHook(whatsapp_conn_id=conn_id).settings
        max_body = int(read_config("webhook_max_body_bytes") or config_default("webhook_max_body_bytes"))
        ledger = self._ledger()
        return WebhookSettings(
            app_secret=wa.app_secret,
            verify_token=wa.webhook_verify_token,
            ledger=ledger,
            max_body_bytes=max_body,
        )

    def __call__(self) -> WebhookSettings:
        now = time.monotonic()
        with self._lock:
            if self._cached is not None and now < self._expires:
                return self._cached
            settings = self.read()
            self._cached = settings
            self._expires = now + self.ttl
            return settings


_Scope = MutableMapping[str, Any]
_ASGIApp = Callable[[_Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class TrailingSlashMiddleware:
    """ASGI middleware sending a request for exactly ``path`` to ``path + "/"`` (where the app is mounted).

    :param app: the wrapped ASGI app.
    :param path: the mount path without its trailing slash.
    """

    def __init__(self, app: _ASGIApp, path: str = URL_PREFIX) -> None:
        self.app = app
        self.path = path.rstrip("/")

    async def __call__(
        self, scope: _Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope.get("type") == "http":
            path = scope.get("path", "")
            root = str(scope.get("root_path", "")).rstrip("/")
            if path in (self.path, root + self.path):
                scope = dict(scope)
                scope["path"] = path + "/"
                raw = scope.get("raw_path")
                if isinstance(raw, bytes) and not raw.endswith(b"/"):
                    scope["raw_path"] = raw + b"/"
        await self.app(scope, receive, send)


#: The receiver app mounted by the plugin (settings are read per request, lazily).
webhook_app = create_app(AirflowWebhookSettings())


class WhatsAppWebhooksPlugin(AirflowPlugin):
    """Serves the WhatsApp status-webhook receiver at ``/whatsapp-webhooks/`` on the API server."""

    name = "wamm_webhooks"
    fastapi_apps: list[Any] = [
        {"app": webhook_app, "url_prefix": URL_PREFIX, "name": "WhatsApp webhooks"},
    ]
    fastapi_root_middlewares: list[Any] = [
        {
            "middleware": TrailingSlashMiddleware,
            "args": [],
            "kwargs": {"path": URL_PREFIX},
            "name": "WhatsApp webhooks: path without trailing slash",
        },
    ]


__all__ = [
    "CONFIG_SECTION",
    "URL_PREFIX",
    "AirflowWebhookSettings",
    "TrailingSlashMiddleware",
    "WhatsAppWebhooksPlugin",
    "webhook_app",
]
