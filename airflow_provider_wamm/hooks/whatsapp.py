"""The Airflow hook of the ``whatsapp`` connection type.

:class:`WhatsAppHook` turns an Airflow connection into a
:class:`~airflow_provider_wamm.graph.client.GraphClient`. It reads the connection only when the client
is first needed, so building the hook (which operators do at DAG-parse time) costs nothing and sends
nothing. Its :meth:`~WhatsAppHook.test_connection` checks the phone number, the WABA's Marketing
Messages onboarding and the access token, and says what to fix when something is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.errors import (
    AuthenticationError,
    ConfigurationError,
    GraphError,
    GraphTransportError,
    PermissionDeniedError,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_MESSAGES_PER_SECOND",
    "DEFAULT_TIMEOUT",
    "REQUIRED_SCOPES",
    "SYSTEM_USER_TOKEN_HELP",
    "TokenInfo",
    "WhatsAppConnectionSettings",
    "WhatsAppHook",
    "base_url_from_connection",
]

#: Graph API host used when the connection's host is empty.
DEFAULT_BASE_URL = "https://graph.facebook.com"
#: Graph API version used when the connection does not name one.
DEFAULT_API_VERSION = "v23.0"
#: Meta's default per-number throughput cap (messages per second).
DEFAULT_MAX_MESSAGES_PER_SECOND = 80.0
#: Highest throughput Meta grants a phone number.
MAX_MESSAGES_PER_SECOND_LIMIT = 1000.0
#: Read timeout of each Graph API call, in seconds.
DEFAULT_TIMEOUT = 30.0

#: Permission the access token needs to send messages.
SCOPE_MESSAGING = "whatsapp_business_messaging"
#: Permission needed to read the WABA, its templates and their analytics.
SCOPE_MANAGEMENT = "whatsapp_business_management"
#: Scopes without which the provider cannot send at all.
REQUIRED_SCOPES: tuple[str, ...] = (SCOPE_MESSAGING,)

#: How to get a token that does not expire, quoted in error messages.
SYSTEM_USER_TOKEN_HELP = (
    "Use a system-user access token that never expires: Meta Business Settings > Users > System users > "
    "(add an admin system user and assign it the app and the WhatsApp account) > Generate new token, pick "
    "the app, set expiration to 'Never' and tick whatsapp_business_messaging and "
    "whatsapp_business_management; put it in the connection's password ('Access token') field."
)

#: Fields read from the phone-number object by :meth:`WhatsAppHook.test_connection`.
PHONE_FIELDS: tuple[str, ...] = ("display_phone_number", "verified_name", "quality_rating", "throughput")
#: Fields read from the WABA by :meth:`WhatsAppHook.test_connection`.
WABA_FIELDS: tuple[str, ...] = ("name", "marketing_messages_onboarding_status")

_ONBOARDED = "ONBOARDED"
_ONBOARDING_HELP: dict[str, str] = {
    "ELIGIBLE": "accept the Marketing Messages API terms for this WhatsApp Business Account (Meta Business "
    "Suite / WhatsApp Manager shows the onboarding prompt)",
    "NOT_STARTED": "start Marketing Messages onboarding and accept the terms in WhatsApp Manager",
    "INELIGIBLE": "this account cannot use the Marketing Messages API yet; check its status in "
    "WhatsApp Manager",
    "INELIGIBLE_ON_BEHALF_OF_WABA": "a WABA shared on behalf of another business cannot onboard; onboard "
    "from the owning business",
    "INELIGIBLE_INACTIVE_OR_RESTRICTED": "the account is inactive or restricted; resolve that in WhatsApp "
    "Manager first",
    "INELIGIBLE_COUNTRY_NOT_SUPPORTED": "the business's country is not supported by the Marketing "
    "Messages API",
    "INELIGIBLE_USING_WHATSAPP_BUSINESS_APP": "numbers on the WhatsApp Business app cannot onboard; use a "
    "Cloud API number",
    "PENDING_VALID_PAYMENT_METHOD": "add a valid payment method to the WhatsApp Business Account",
    "PENDING_INTERNAL_SETUP": "Meta is still setting the account up; try again later",
}
_FALLBACK_NOTE = (
    "until then sends fall back to the Cloud API (billed as regular marketing) or fail with "
    "product_policy=STRICT"
)

_API_VERSION_RE = re.compile(r"^v\d+\.\d+$")
_DIGITS_RE = re.compile(r"^\d+$")
_LOOSE_NUMBER_RE = re.compile(r"^\+?[\d\s().-]+$")


def _clean(value: Any) -> Any:
    """Strip strings; empty strings become ``None`` (old UIs stored empty values)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class _ExtraReader:
    """Reads connection extras: the plain key first, then the legacy ``extra__<type>__<key>`` form.

    Empty strings and ``None`` count as unset, so a blank legacy field never hides a real value.
    """

    def __init__(self, conn_type: str, extra: Mapping[str, Any]) -> None:
        self._prefix = f"extra__{conn_type}__"
        self._extra = extra

    def get(self, key: str) -> Any:
        for name in (key, self._prefix + key):
            value = _clean(self._extra.get(name))
            if value is not None:
                return value
        return None


def _as_str(value: Any) -> str | None:
    value = _clean(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _as_number(value: Any, *, name: str, conn_id: str, default: float, low: float, high: float) -> float:
    value = _clean(value)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"Connection {conn_id!r}: extra field {name!r} must be a number, got {type(value).__name__} "
            f"{str(value)[:40]!r}."
        ) from None
    if isinstance(value, bool) or not (low < number <= high):
        raise ConfigurationError(
            f"Connection {conn_id!r}: extra field {name!r} must be above {low:g} and at most {high:g}, "
            f"got {value!r}."
        )
    return number


def _as_graph_id(value: Any, *, name: str, conn_id: str, what: str) -> str | None:
    text = _as_str(value)
    if text is None:
        return None
    if _DIGITS_RE.match(text):
        return text
    hint = ""
    if name == "phone_number_id" and _LOOSE_NUMBER_RE.match(text):
        hint = (
            " This field takes the number's ID from WhatsApp Manager > Phone numbers, not the number itself."
        )
    raise ConfigurationError(
        f"Connection {conn_id!r}: extra field {name!r} must be the {what} (digits only), "
        f"got {len(text)} characters that are not all digits.{hint}"
    )


def base_url_from_connection(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """The Graph API base URL from a connection's ``host`` (scheme optional), ``schema`` and ``port``.

    An empty host means :data:`DEFAULT_BASE_URL`. A host without a scheme gets ``https://`` unless the
    ``schema`` field says ``http`` or ``https``. A path or trailing slash on the host is kept/stripped
    as given, so ``http://127.0.0.1:8080`` (a local sandbox) works as is.
    """
    text = (host or "").strip()
    if not text.rstrip("/"):
        return DEFAULT_BASE_URL
    if "://" not in text:
        scheme = (schema or "").strip().lower()
        text = f"{scheme if scheme in ('http', 'https') else 'https'}://{text}"
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"The connection's host must be a Graph API URL such as {DEFAULT_BASE_URL}, got {host!r}."
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{int(port)}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True, repr=False)
class WhatsAppConnectionSettings:
    """Everything the provider reads from a ``whatsapp`` connection, parsed and checked.

    The ``repr`` shows which secrets are set but never their values.
    """

    #: The Airflow connection id the settings came from (named in every error message).
    conn_id: str
    #: Graph API base URL, e.g. ``https://graph.facebook.com``.
    base_url: str = DEFAULT_BASE_URL
    #: The access token (the connection's password); a secret.
    access_token: str | None = field(default=None, compare=False)
    #: ID of the sending phone number.
    phone_number_id: str | None = None
    #: ID of the WhatsApp Business Account (enables templates checks, onboarding status, analytics).
    waba_id: str | None = None
    #: Graph API version used in request paths.
    api_version: str = DEFAULT_API_VERSION
    #: Meta app ID (with ``app_secret``: token inspection).
    app_id: str | None = None
    #: Meta app secret (webhook signatures, token inspection); a secret.
    app_secret: str | None = field(default=None, compare=False)
    #: Token answering Meta's webhook verification handshake; a secret.
    webhook_verify_token: str | None = field(default=None, compare=False)
    #: Throughput cap of the phone number, in messages per second.
    max_messages_per_second: float = DEFAULT_MAX_MESSAGES_PER_SECOND
    #: Read timeout of each Graph API call, in seconds.
    timeout: float = DEFAULT_TIMEOUT

    _SECRET_FIELDS = ("access_token", "app_secret", "webhook_verify_token")

    def __repr__(self) -> str:
        shown = []
        for name in (
            "conn_id",
            "base_url",
            "access_token",
            "phone_number_id",
            "waba_id",
            "api_version",
            "app_id",
            "app_secret",
            "webhook_verify_token",
            "max_messages_per_second",
            "timeout",
        ):
            value = getattr(self, name)
            if name in self._SECRET_FIELDS:
                shown.append(f"{name}={'***' if value else None}")
            else:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values that are set (to scrub them from any text shown to people)."""
        return tuple(v for v in (self.access_token, self.app_secret, self.webhook_verify_token) if v)

    def require(self, name: str) -> str:
        """The value of the setting ``name``; :class:`ConfigurationError` naming it when it is not set."""
        value = getattr(self, name)
        if value:
            return str(value)
        if name == "access_token":
            raise ConfigurationError(
                f"Connection {self.conn_id!r} has no access token. {SYSTEM_USER_TOKEN_HELP}"
            )
        raise ConfigurationError(
            f"Connection {self.conn_id!r} has no {name!r}: set it in the connection's extra "
            f"(the form field of the same name)."
        )

    @classmethod
    def from_connection(
        cls,
        conn: Any,
        *,
        api_version: str | None = None,
        timeout: float | None = None,
    ) -> WhatsAppConnectionSettings:
        """Parse an Airflow ``Connection`` (any object with the usual attributes and ``extra_dejson``).

        ``api_version`` and ``timeout`` override the connection's values. Raises
        :class:`~airflow_provider_wamm.graph.errors.ConfigurationError` naming the field and the connection.
        """
        conn_id = str(getattr(conn, "conn_id", None) or "?")
        conn_type = str(getattr(conn, "conn_type", None) or "whatsapp")
        extra_dict = getattr(conn, "extra_dejson", None) or {}
        if not isinstance(extra_dict, Mapping):
            raise ConfigurationError(f"Connection {conn_id!r}: extra must be a JSON object.")
        extras = _ExtraReader(conn_type, extra_dict)
        try:
            base_url = base_url_from_connection(
                getattr(conn, "host", None), getattr(conn, "schema", None), getattr(conn, "port", None)
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"Connection {conn_id!r}: {exc}") from None
        version = _as_str(api_version) or _as_str(extras.get("api_version")) or DEFAULT_API_VERSION
        if not _API_VERSION_RE.match(version):
            raise ConfigurationError(
                f"Connection {conn_id!r}: 'api_version' must look like {DEFAULT_API_VERSION!r}, "
                f"got {version!r}."
            )
        return cls(
            conn_id=conn_id,
            base_url=base_url,
            access_token=_as_str(getattr(conn, "password", None)),
            phone_number_id=_as_graph_id(
                extras.get("phone_number_id"), name="phone_number_id", conn_id=conn_id, what="phone number ID"
            ),
            waba_id=_as_graph_id(
                extras.get("waba_id"), name="waba_id", conn_id=conn_id, what="WhatsApp Business Account ID"
            ),
            api_version=version,
            app_id=_as_str(extras.get("app_id")),
            app_secret=_as_str(extras.get("app_secret")),
            webhook_verify_token=_as_str(extras.get("webhook_verify_token")),
            max_messages_per_second=_as_number(
                extras.get("max_messages_per_second"),
                name="max_messages_per_second",
                conn_id=conn_id,
                default=DEFAULT_MAX_MESSAGES_PER_SECOND,
                low=0.0,
                high=MAX_MESSAGES_PER_SECOND_LIMIT,
            ),
            timeout=_as_number(
                timeout if timeout is not None else extras.get("timeout"),
                name="timeout",
                conn_id=conn_id,
                default=DEFAULT_TIMEOUT,
                low=0.0,
                high=600.0,
            ),
        )


@dataclass(frozen=True)
class TokenInfo:
    """What Graph's ``debug_token`` says about the access token (never the token itself)."""

    #: Whether Meta accepts the token now.
    is_valid: bool
    #: When it expires (UTC); ``None`` means it never expires.
    expires_at: datetime | None = None
    #: Granted permissions, e.g. ``whatsapp_business_messaging``.
    scopes: frozenset[str] = frozenset()
    #: Token type as Meta reports it (``SYSTEM_USER``, ``USER``, ``PAGE``, ``APP``...).
    token_type: str | None = None
    #: The app the token belongs to.
    app_id: str | None = None
    #: Meta's explanation when the token is not valid.
    error: str | None = None

    @classmethod
    def from_debug_token(cls, response: Mapping[str, Any]) -> TokenInfo:
        """Build from a ``debug_token`` answer (the whole body or its ``data`` object)."""
        inner = response.get("data")
        data: Mapping[str, Any] = inner if isinstance(inner, Mapping) else response
        expires = data.get("expires_at")
        expires_at = None
        try:
            if expires is not None and int(expires) > 0:
                expires_at = datetime.fromtimestamp(int(expires), tz=UTC)
        except (TypeError, ValueError):
            expires_at = None
        scopes = data.get("scopes") or ()
        error = data.get("error")
        error_text = None
        if isinstance(error, Mapping):
            error_text = str(error.get("message") or error.get("code") or "") or None
        elif error:
            error_text = str(error)
        return cls(
            is_valid=bool(data.get("is_valid")),
            expires_at=expires_at,
            scopes=frozenset(str(s) for s in scopes if s)
            if isinstance(scopes, (list, tuple))
            else frozenset(),
            token_type=_as_str(data.get("type")),
            app_id=_as_str(data.get("app_id")),
            error=error_text,
        )

    @property
    def never_expires(self) -> bool:
        """``True`` for tokens without an expiry (system-user tokens set to 'Never')."""
        return self.expires_at is None

    def expires_within(self, window: timedelta, *, now: datetime | None = None) -> bool:
        """Whether the token expires less than ``window`` from ``now`` (or already has)."""
        if self.expires_at is None:
            return False
        return self.expires_at - (now or datetime.now(UTC)) <= window

    @property
    def missing_scopes(self) -> tuple[str, ...]:
        """Required scopes the token lacks."""
        return tuple(s for s in REQUIRED_SCOPES if s not in self.scopes)

    def describe_expiry(self, *, now: datetime | None = None) -> str:
        """``"never expires"`` or ``"expires 2026-01-02 03:04 UTC (in 5 h)"``."""
        if self.expires_at is None:
            return "never expires"
        left = self.expires_at - (now or datetime.now(UTC))
        stamp = self.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        if left.total_seconds() <= 0:
            return f"expired {stamp}"
        return f"expires {stamp} (in {_human(left)})"


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{max(1, seconds // 60)} min"


class WhatsAppHook(BaseHook):
    """Hook for the ``whatsapp`` connection: settings and a Graph API client for one phone number.

    The connection holds the access token in ``password``, the Graph API base URL in ``host`` (empty:
    ``https://graph.facebook.com``) and the fields ``phone_number_id``, ``waba_id``, ``api_version``,
    ``app_id``, ``app_secret``, ``webhook_verify_token``, ``max_messages_per_second`` and ``timeout`` in
    its extra. Nothing is read or sent until a property or :meth:`get_conn` is first used.

    :param whatsapp_conn_id: Airflow connection id of type ``whatsapp``.
    :param api_version: Graph API version overriding the connection's (e.g. ``"v23.0"``).
    :param timeout: read timeout in seconds overriding the connection's.
    :param max_retries: retries of transient errors per call (the client's default when ``None``).
    :param allow_insecure_http: allow plain HTTP to a host that is not on the loopback interface
        (never in production: the token would travel in clear text).
    :param pool_maxsize: HTTP connections kept open to the Graph API; size it to the number of
        concurrent senders (the client's default when ``None``).
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
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.pool_maxsize = pool_maxsize
        self.whatsapp_conn_id = whatsapp_conn_id
        self.api_version = api_version
        self.timeout = timeout
        self.max_retries = max_retries
        self.allow_insecure_http = allow_insecure_http
        self._settings: WhatsAppConnectionSettings | None = None
        self._client: GraphClient | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(whatsapp_conn_id={self.whatsapp_conn_id!r})"

    # -- settings ---------------------------------------------------------------------------------

    @property
    def settings(self) -> WhatsAppConnectionSettings:
        """The parsed connection (read once, then cached); secrets are registered with the log masker."""
        if self._settings is None:
            conn = self.get_connection(self.whatsapp_conn_id)
            settings = WhatsAppConnectionSettings.from_connection(
                conn, api_version=self.api_version, timeout=self.timeout
            )
            for secret in settings.secrets:
                mask_secret(secret)
            self._settings = settings
        return self._settings

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
            kwargs: dict[str, Any] = {
                "phone_number_id": settings.require("phone_number_id"),
                "waba_id": settings.waba_id,
                "base_url": settings.base_url,
                "api_version": settings.api_version,
                "timeout": settings.timeout,
            }
            if self.max_retries is not None:
                kwargs["max_retries"] = self.max_retries
            if self.allow_insecure_http is not None:
                kwargs["allow_insecure_http"] = self.allow_insecure_http
            if self.pool_maxsize is not None:
                kwargs["pool_maxsize"] = self.pool_maxsize
            self._client = GraphClient(settings.require("access_token"), **kwargs)
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
            return self._test_connection()
        except ConfigurationError as exc:
            return False, self._scrub(str(exc))
        except Exception as exc:
            return False, self._scrub(f"Connection test failed: {type(exc).__name__}: {exc}")

    def _test_connection(self) -> tuple[bool, str]:
        settings = self.settings
        client = self.get_conn()
        problems: list[str] = []
        facts: list[str] = []

        try:
            phone = client.get_phone_number(fields=list(PHONE_FIELDS))
        except GraphError as exc:
            return False, self._scrub(self._explain_phone_error(exc))
        except GraphTransportError as exc:
            return False, self._scrub(
                f"Could not reach the Graph API at {settings.base_url}: {exc}. Check the connection's host "
                "and the worker's network access."
            )
        facts.append(_describe_phone(phone, settings.phone_number_id))

        if settings.waba_id:
            self._check_waba(client, settings.waba_id, problems, facts)
        else:
            facts.append("waba_id not set (template checks, onboarding status and analytics are off)")

        self._check_token_for_test(settings, problems, facts)

        summary = "; ".join(facts)
        if problems:
            return False, self._scrub(" ".join(problems) + " | " + summary)
        return True, self._scrub(summary)

    def _check_waba(self, client: GraphClient, waba_id: str, problems: list[str], facts: list[str]) -> None:
        try:
            waba = client.get_waba(fields=list(WABA_FIELDS))
        except PermissionDeniedError as exc:
            problems.append(
                f"The token may not read WABA {waba_id} ({_short(exc)}): give the system user access to this "
                f"WhatsApp account and the {SCOPE_MANAGEMENT} permission, or fix waba_id."
            )
            return
        except AuthenticationError as exc:
            problems.append(
                f"The token was rejected reading WABA {waba_id} ({_short(exc)}). {SYSTEM_USER_TOKEN_HELP}"
            )
            return
        except GraphError as exc:
            problems.append(
                f"WABA {waba_id} could not be read ({_short(exc)}): check waba_id (WhatsApp Manager > "
                "Account tools > WhatsApp Business Account ID)."
            )
            return
        except GraphTransportError as exc:
            problems.append(f"WABA {waba_id} could not be read: {exc}.")
            return
        status = _as_str(waba.get("marketing_messages_onboarding_status"))
        if status is None:
            status = _as_str(waba.get("marketing_messages_lite_api_status"))
        if status is None:
            facts.append(
                f"WABA {waba_id} marketing messages: status not returned (needs api_version v23.0 or later "
                f"and the {SCOPE_MANAGEMENT} permission)"
            )
            return
        status = status.upper()
        facts.append(f"WABA {waba_id} marketing messages: {status}")
        if status != _ONBOARDED:
            advice = _ONBOARDING_HELP.get(
                status, "complete Marketing Messages onboarding in WhatsApp Manager"
            )
            problems.append(
                f"WABA {waba_id} is not onboarded to the Marketing Messages API (status {status}): "
                f"{advice}; {_FALLBACK_NOTE}."
            )

    def _check_token_for_test(
        self, settings: WhatsAppConnectionSettings, problems: list[str], facts: list[str]
    ) -> None:
        if not (settings.app_id and settings.app_secret):
            missing = " and ".join(n for n in ("app_id", "app_secret") if not getattr(settings, n))
            facts.append(f"token: expiry and scopes not checked (set {missing} to check them)")
            return
        try:
            info = self.get_token_info()
        except GraphError as exc:
            problems.append(
                f"Graph's debug_token refused the app credentials ({_short(exc)}): check app_id and "
                "app_secret (App dashboard > App settings > Basic); the app secret also verifies webhook "
                "signatures."
            )
            return
        except GraphTransportError as exc:
            facts.append(f"token: not checked ({exc})")
            return
        if info is None:  # pragma: no cover - both values were checked above
            return
        if not info.is_valid:
            problems.append(
                f"The access token is not valid ({info.error or 'no reason given'}). {SYSTEM_USER_TOKEN_HELP}"
            )
            facts.append(f"token: invalid, {info.describe_expiry()}")
            return
        text = f"token: {info.describe_expiry()}"
        if info.expires_within(timedelta(days=1)):
            text += " - WARNING: replace it soon with a system-user token that never expires"
        elif not info.never_expires:
            text += " (consider a system-user token that never expires)"
        facts.append(text)
        if info.missing_scopes:
            problems.append(
                f"The access token lacks the {', '.join(info.missing_scopes)} permission: generate a new "
                f"system-user token with whatsapp_business_messaging and whatsapp_business_management ticked."
            )
        elif SCOPE_MANAGEMENT not in info.scopes:
            facts.append(f"token lacks {SCOPE_MANAGEMENT} (template checks and analytics will fail)")

    def _explain_phone_error(self, exc: GraphError) -> str:
        pnid = self.settings.phone_number_id
        if isinstance(exc, AuthenticationError):
            reason = ""
            try:
                info = self.get_token_info()
            except (GraphError, GraphTransportError):
                info = None
            if info is not None:
                reason = f" Token: {info.describe_expiry()}{', invalid' if not info.is_valid else ''}."
            return (
                f"The access token was rejected (Graph error {exc.code}: {exc.message}).{reason} "
                f"{SYSTEM_USER_TOKEN_HELP}"
            )
        if isinstance(exc, PermissionDeniedError):
            return (
                f"The token may not use phone number {pnid} (Graph error {exc.code}: {exc.message}): "
                f"give the system user access to the WhatsApp account that owns it and the "
                f"{SCOPE_MESSAGING} and {SCOPE_MANAGEMENT} permissions."
            )
        return (
            f"Phone number {pnid} could not be read (Graph error {exc.code}: {exc.message}"
            f"{'; ' + exc.details if exc.details else ''}): check phone_number_id (WhatsApp Manager > Phone "
            "numbers, or the app's WhatsApp > API Setup page) and api_version."
        )

    def _scrub(self, text: str) -> str:
        """Replace any secret of the connection that slipped into ``text``."""
        settings = self._settings
        if settings is None:
            return text
        for secret in settings.secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


def _short(exc: GraphError) -> str:
    return f"Graph error {exc.code}: {exc.message}"


def _describe_phone(phone: Mapping[str, Any], phone_number_id: str | None) -> str:
    number = _as_str(phone.get("display_phone_number")) or f"phone number {phone_number_id}"
    details: list[str] = []
    name = _as_str(phone.get("verified_name"))
    if name:
        details.append(name)
    quality = _as_str(phone.get("quality_rating"))
    if quality:
        details.append(f"quality {quality}")
    throughput = phone.get("throughput")
    level = throughput.get("level") if isinstance(throughput, Mapping) else throughput
    if _as_str(level):
        details.append(f"throughput {level}")
    return f"Connected to {number}" + (f" ({', '.join(details)})" if details else "")
