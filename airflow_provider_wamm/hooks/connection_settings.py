"""What a ``whatsapp`` connection holds, parsed and checked: :class:`WhatsAppConnectionSettings`.

The connection keeps the access token in ``password``, the Graph API base URL in ``host`` and the other
settings in its extra (plain keys, or the legacy ``extra__whatsapp__<key>`` form older UIs stored). Every
problem is a :class:`~airflow_provider_wamm.graph.errors.ConfigurationError` naming the connection and
the field, so the message says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_wamm.graph.client import DEFAULT_BASE_URL
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.redaction import scrub
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION, is_api_version

#: Meta's default per-number throughput cap (messages per second).
DEFAULT_MAX_MESSAGES_PER_SECOND = 80.0
#: Highest throughput Meta grants a phone number.
MAX_MESSAGES_PER_SECOND_LIMIT = 1000.0
#: Read timeout of each Graph API call, in seconds.
DEFAULT_TIMEOUT = 30.0
#: Longest read timeout a connection may ask for, in seconds.
MAX_TIMEOUT = 600.0

#: How to get a token that does not expire, quoted in error messages.
SYSTEM_USER_TOKEN_HELP = (
    "Use a system-user access token that never expires: Meta Business Settings > Users > System users > "
    "(add an admin system user and assign it the app and the WhatsApp account) > Generate new token, pick "
    "the app, set expiration to 'Never' and tick whatsapp_business_messaging and "
    "whatsapp_business_management; put it in the connection's password ('Access token') field."
)

_DIGITS_RE = re.compile(r"^\d+$")
_LOOSE_NUMBER_RE = re.compile(r"^\+?[\d\s().-]+$")


def clean_value(value: Any) -> Any:
    """Strip strings; empty strings become ``None`` (old UIs stored empty values)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def optional_text(value: Any) -> str | None:
    """A connection or API value as stripped text (booleans as ``true``/``false``); ``None`` when empty."""
    value = clean_value(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class ConnectionExtras:
    """Reads connection extras: the plain key first, then the legacy ``extra__<type>__<key>`` form.

    Empty strings and ``None`` count as unset, so a blank legacy field never hides a real value.
    """

    def __init__(self, conn_type: str, extra: Mapping[str, Any]) -> None:
        self._prefix = f"extra__{conn_type}__"
        self._extra = extra

    @classmethod
    def of(cls, conn: Any, conn_id: str) -> ConnectionExtras:
        """The extras of an Airflow ``Connection``; :class:`ConfigurationError` unless they are an object."""
        conn_type = str(getattr(conn, "conn_type", None) or "whatsapp")
        extra = getattr(conn, "extra_dejson", None) or {}
        if not isinstance(extra, Mapping):
            raise ConfigurationError(f"Connection {conn_id!r}: extra must be a JSON object.")
        return cls(conn_type, extra)

    def get(self, key: str) -> Any:
        """The value of ``key`` (either spelling), or ``None`` when unset or blank."""
        for name in (key, self._prefix + key):
            value = clean_value(self._extra.get(name))
            if value is not None:
                return value
        return None


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


def _base_url(conn: Any, conn_id: str) -> str:
    """The connection's Graph API base URL; its errors name the connection."""
    try:
        return base_url_from_connection(
            getattr(conn, "host", None), getattr(conn, "schema", None), getattr(conn, "port", None)
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"Connection {conn_id!r}: {exc}") from None


def _api_version(override: Any, extras: ConnectionExtras, conn_id: str) -> str:
    """The Graph API version: ``override``, else the connection's, else :data:`DEFAULT_API_VERSION`."""
    version = optional_text(override) or optional_text(extras.get("api_version")) or DEFAULT_API_VERSION
    if not is_api_version(version):
        raise ConfigurationError(
            f"Connection {conn_id!r}: 'api_version' must look like {DEFAULT_API_VERSION!r}, got {version!r}."
        )
    return version


def _number(value: Any, *, name: str, conn_id: str, default: float, high: float) -> float:
    """A number above 0 and at most ``high``; ``default`` when unset."""
    value = clean_value(value)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"Connection {conn_id!r}: extra field {name!r} must be a number, got {type(value).__name__} "
            f"{str(value)[:40]!r}."
        ) from None
    if isinstance(value, bool) or not (0.0 < number <= high):
        raise ConfigurationError(
            f"Connection {conn_id!r}: extra field {name!r} must be above 0 and at most {high:g}, "
            f"got {value!r}."
        )
    return number


def _graph_id(extras: ConnectionExtras, name: str, *, conn_id: str, what: str) -> str | None:
    """The Graph object ID in extra field ``name`` (digits only), or ``None`` when unset."""
    text = optional_text(extras.get(name))
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


#: Settings whose values are secrets: shown as ``***`` and scrubbed from any text shown to people.
SECRET_FIELDS: tuple[str, ...] = ("access_token", "app_secret", "webhook_verify_token")
#: Every setting, in the order ``repr`` shows them.
_REPR_FIELDS: tuple[str, ...] = (
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
)


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

    def __repr__(self) -> str:
        shown = []
        for name in _REPR_FIELDS:
            value = getattr(self, name)
            if name in SECRET_FIELDS:
                shown.append(f"{name}={'***' if value else None}")
            else:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values that are set (to scrub them from any text shown to people)."""
        return tuple(v for v in (self.access_token, self.app_secret, self.webhook_verify_token) if v)

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this connection (of 4 characters or more) replaced by ``***``."""
        return scrub(text, self.secrets)

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
        extras = ConnectionExtras.of(conn, conn_id)
        base_url = _base_url(conn, conn_id)
        version = _api_version(api_version, extras, conn_id)
        return cls(
            conn_id=conn_id,
            base_url=base_url,
            access_token=optional_text(getattr(conn, "password", None)),
            phone_number_id=_graph_id(extras, "phone_number_id", conn_id=conn_id, what="phone number ID"),
            waba_id=_graph_id(extras, "waba_id", conn_id=conn_id, what="WhatsApp Business Account ID"),
            api_version=version,
            app_id=optional_text(extras.get("app_id")),
            app_secret=optional_text(extras.get("app_secret")),
            webhook_verify_token=optional_text(extras.get("webhook_verify_token")),
            max_messages_per_second=_number(
                extras.get("max_messages_per_second"),
                name="max_messages_per_second",
                conn_id=conn_id,
                default=DEFAULT_MAX_MESSAGES_PER_SECOND,
                high=MAX_MESSAGES_PER_SECOND_LIMIT,
            ),
            timeout=_number(
                timeout if timeout is not None else extras.get("timeout"),
                name="timeout",
                conn_id=conn_id,
                default=DEFAULT_TIMEOUT,
                high=MAX_TIMEOUT,
            ),
        )


__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_MESSAGES_PER_SECOND",
    "DEFAULT_TIMEOUT",
    "MAX_MESSAGES_PER_SECOND_LIMIT",
    "MAX_TIMEOUT",
    "SECRET_FIELDS",
    "SYSTEM_USER_TOKEN_HELP",
    "ConnectionExtras",
    "WhatsAppConnectionSettings",
    "base_url_from_connection",
    "clean_value",
    "optional_text",
]
