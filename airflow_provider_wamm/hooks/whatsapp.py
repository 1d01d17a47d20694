"""The Airflow hook of the ``whatsapp`` connection type.

:class:`WhatsAppHook` turns an Airflow connection into a
:class:`~airflow_provider_wamm.graph.client.GraphClient`. It reads the connection only when the client
is first needed, so building the hook (which operators do at DAG-parse time) costs nothing and sends
nothing. Its :meth:`~WhatsAppHook.test_connection` checks the phone number, the WABA's Marketing
Messages onboarding and the access token, and says what to fix when something is wrong.

The connection's settings (:class:`WhatsAppConnectionSettings`), the token inspection
(:class:`TokenInfo`) and the connection test live in their own modules; their public names are
importable from here too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.errors import ConfigurationError, GraphError, GraphTransportError
from airflow_provider_wamm.hooks import connection_settings as _settings
from airflow_provider_wamm.hooks.connection_check import PHONE_FIELDS, WABA_FIELDS, ConnectionCheck
from airflow_provider_wamm.hooks.connection_settings import *  # noqa: F403 (its __all__, importable from here)
from airflow_provider_wamm.hooks.connection_settings import SYSTEM_USER_TOKEN_HELP, WhatsAppConnectionSettings
from airflow_provider_wamm.hooks.token_info import (
    REQUIRED_SCOPES,
    SCOPE_MANAGEMENT,
    SCOPE_MESSAGING,
    TokenInfo,
)

__all__ = [
    "PHONE_FIELDS",
    "REQUIRED_SCOPES",
    "SCOPE_MANAGEMENT",
    "SCOPE_MESSAGING",
    "WABA_FIELDS",
    "TokenInfo",
    "WhatsAppHook",
]
# The connection's settings (defaults, limits, the settings class) are importable from here too.
__all__ += _settings.__all__


class WhatsAppHook(BaseHook):
    """Hook for the ``whatsapp`` connection: settings and a Graph API client for one phone number.

    The connection holds the access token in ``password``, the Graph API base URL in ``host`` (empty:
    ``https://graph.facebook.com``) and the fields ``phone_number_id``, ``waba_id``, ``api_version``,
    ``app_id``, ``app_secret``, ``webhook_verify_token``, ``max_messages_per_second`` and ``timeout`` in
    its extra. Nothing is read or sent until a property or :meth:`get_conn` is first used.

    Everything that shapes the client is a constructor argument: the hook is never reconfigured after it
    is built. To size the client from the connection (its pool from the rate cap), read the settings
    first with :meth:`read_connection_settings` and hand them over as ``connection_settings``.

    :param whatsapp_conn_id: Airflow connection id of type ``whatsapp``.
    :param api_version: Graph API version overriding the connection's (e.g. ``"v23.0"``).
    :param timeout: read timeout in seconds overriding the connection's.
    :param max_retries: retries of transient errors per call (the client's default when ``None``).
    :param allow_insecure_http: allow plain HTTP to a host that is not on the loopback interface
        (never in production: the token would travel in clear text).
    :param pool_maxsize: HTTP connections kept open to the Graph API; size it to the number of
        concurrent senders (the client's default when ``None``).
    :param connection_settings: the connection, already read with :meth:`read_connection_settings`
        (then ``api_version`` and ``timeout`` were applied when reading it); read on first use when ``None``.
    :param logger_name: name of the logger (Airflow's default for hooks when ``None``).
    """

    conn_name_attr = "whatsapp_conn_id"
    default_conn_name = "whatsapp_default"
    conn_type = "whatsapp"
    hook_name = "WhatsApp Marketing Messages"

    def __init__(
        self,
        *,
        whatsapp_conn_id: str = default_conn_name,
        api_version: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        allow_insecure_http: bool | None = None,
        pool_maxsize: int | None = None,
        connection_settings: WhatsAppConnectionSettings | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.whatsapp_conn_id = whatsapp_conn_id
        self.api_version = api_version
        self.timeout = timeout
        self.max_retries = max_retries
        self.allow_insecure_http = allow_insecure_http
        self._pool_maxsize = pool_maxsize
        self._settings: WhatsAppConnectionSettings | None = connection_settings
        self._client: GraphClient | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(whatsapp_conn_id={self.whatsapp_conn_id!r})"

    # -- settings ---------------------------------------------------------------------------------

    @classmethod
    def read_connection_settings(
        cls, whatsapp_conn_id: str, *, api_version: str | None = None, timeout: float | None = None
    ) -> WhatsAppConnectionSettings:
        """Read and parse the connection ``whatsapp_conn_id``; its secrets are registered with the log masker.

        ``api_version`` and ``timeout`` override the connection's values. Raises
        :class:`~airflow_provider_wamm.graph.errors.ConfigurationError` naming the field and the connection.
        """
        conn = cls.get_connection(whatsapp_conn_id)
        settings = WhatsAppConnectionSettings.from_connection(conn, api_version=api_version, timeout=timeout)
        for secret in settings.secrets:
            mask_secret(secret)
        return settings

    @property
    def settings(self) -> WhatsAppConnectionSettings:
        """The parsed connection (read once, then cached); secrets are registered with the log masker."""
        if self._settings is None:
            self._settings = self.read_connection_settings(
                self.whatsapp_conn_id, api_version=self.api_version, timeout=self.timeout
            )
        return self._settings

    @property
    def pool_maxsize(self) -> int | None:
        """HTTP connections the client keeps open, fixed when the hook is built (``None``: the client's)."""
        return self._pool_maxsize

    @property
    def phone_number_id(self) -> str:
        """ID of the sending phone number (:class:`ConfigurationError` when the connection lacks it)."""
        return self.settings.require("phone_number_id")

    @property
    def waba_id(self) -> str | None:
        """ID of the WhatsApp Business Account, or ``None`` when not configured."""
        return self.settings.waba_id

    @property
    def max_messages_per_second(self) -> float:
        """Throughput cap of the phone number (messages per second; 80 unless the connection says more)."""
        return self.settings.max_messages_per_second

    @property
    def app_secret(self) -> str | None:
        """The Meta app secret (verifies webhook signatures), or ``None``."""
        return self.settings.app_secret

    @property
    def webhook_verify_token(self) -> str | None:
        """The webhook verify token (answers Meta's subscription handshake), or ``None``."""
        return self.settings.webhook_verify_token

    # -- client -----------------------------------------------------------------------------------

    def get_conn(self) -> GraphClient:
        """The Graph API client of this connection (built on first use, then reused).

        Raises :class:`~airflow_provider_wamm.graph.errors.ConfigurationError` when the access token or
        ``phone_number_id`` is missing, or the host is not a usable URL.
        """
        if self._client is None:
            settings = self.settings
            # The options this hook was given; the client's own defaults for the others.
            given: dict[str, Any] = {
                "max_retries": self.max_retries,
                "allow_insecure_http": self.allow_insecure_http,
                "pool_maxsize": self._pool_maxsize,
            }
            self._client = GraphClient(
                settings.require("access_token"),
                phone_number_id=settings.require("phone_number_id"),
                waba_id=settings.waba_id,
                base_url=settings.base_url,
                api_version=settings.api_version,
                timeout=settings.timeout,
                **{name: value for name, value in given.items() if value is not None},
            )
        return self._client

    def close(self) -> None:
        """Close the client's HTTP connections (a later call to :meth:`get_conn` opens new ones)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- token ------------------------------------------------------------------------------------

    def get_token_info(self) -> TokenInfo | None:
        """Inspect the access token with Graph's ``debug_token`` (``None`` without app_id and app_secret).

        Raises the client's errors (:class:`~airflow_provider_wamm.graph.errors.GraphError` when Meta
        rejects the app credentials, :class:`~airflow_provider_wamm.graph.errors.GraphTransportError`).
        """
        settings = self.settings
        if not (settings.app_id and settings.app_secret):
            return None
        response = self.get_conn().debug_token(app_id=settings.app_id, app_secret=settings.app_secret)
        return TokenInfo.from_debug_token(response)

    def check_token(self, warn_within: timedelta = timedelta(days=1)) -> TokenInfo | None:
        """Warn in the task log when the access token expires within ``warn_within`` or is invalid.

        Meant to run before a campaign starts. Does nothing (returns ``None``) without app_id and
        app_secret in the connection, and never raises for a failed check: the check is advisory.
        """
        try:
            info = self.get_token_info()
        except (GraphError, GraphTransportError) as exc:
            self.log.warning(
                "Could not inspect the access token of connection %r: %s",
                self.whatsapp_conn_id,
                self._scrub(str(exc)),
            )
            return None
        if info is None:
            return None
        if not info.is_valid:
            self.log.warning(
                "The access token of connection %r is not valid (%s). %s",
                self.whatsapp_conn_id,
                self._scrub(info.error or "no reason given"),
                SYSTEM_USER_TOKEN_HELP,
            )
        elif info.expires_within(warn_within):
            self.log.warning(
                "The access token of connection %r %s; sends fail with error 190 once it has expired. %s",
                self.whatsapp_conn_id,
                info.describe_expiry(),
                SYSTEM_USER_TOKEN_HELP,
            )
        if info.is_valid and info.missing_scopes:
            self.log.warning(
                "The access token of connection %r lacks %s: sends will be refused.",
                self.whatsapp_conn_id,
                ", ".join(info.missing_scopes),
            )
        return info

    # -- connection test --------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection end to end without sending anything; returns ``(ok, message)``.

        Reads the phone number (display number, verified name, quality rating, throughput), the WABA's
        Marketing Messages onboarding status when ``waba_id`` is set, and, with ``app_id`` and
        ``app_secret``, the token's validity, expiry and scopes. A failure message starts with what to fix.
        """
        try:
            ok, message = ConnectionCheck(self.settings, self.get_conn(), self.get_token_info).run()
        except ConfigurationError as exc:
            return False, self._scrub(str(exc))
        except Exception as exc:
            return False, self._scrub(f"Connection test failed: {type(exc).__name__}: {exc}")
        return ok, self._scrub(message)

    def _scrub(self, text: str) -> str:
        """Replace any secret of the connection that slipped into ``text``."""
        if self._settings is None:
            return text
        return self._settings.scrub(text)
