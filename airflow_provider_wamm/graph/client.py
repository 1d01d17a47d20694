"""A small, safe client for the Graph API endpoints a marketing campaign needs.

* one pooled :class:`requests.Session` (keep-alive connections shared by sender threads); bulk
  senders post through :meth:`GraphClient.send_marketing_message_fast` instead, a pool of the
  standard library's keep-alive ``http.client`` connections (same answers and errors as the session,
  a third of the CPU per message);
* HTTPS only, except to the loopback interface (the local sandbox) or when explicitly allowed;
* a connect and a read timeout on every call;
* retries with exponential backoff and full jitter, only where a retry cannot send a message
  twice: errors classified :attr:`~airflow_provider_wamm.graph.errors.Action.RETRY` or
  :attr:`~airflow_provider_wamm.graph.errors.Action.THROTTLE`, and connection failures before
  the request left. A send whose outcome is unknown (read timeout, connection dropped after
  the request was written, a gateway timeout) raises
  :class:`~airflow_provider_wamm.graph.errors.UnknownOutcomeError` and is never retried, because
  the Graph API has no idempotency key;
* the access token never appears in ``repr()``, exception text or log lines (``urllib3``'s debug
  lines included: query-string secrets are redacted by a logging filter).
"""

from __future__ import annotations

import datetime as _dt
import http.client
import ipaddress
import json
import logging
import os
import random as _random
import re
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.utils
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from airflow_provider_wamm import __version__
from airflow_provider_wamm.graph.errors import (
    Action,
    ConfigurationError,
    GraphError,
    GraphTransportError,
    InsecureTransportError,
    UnknownOutcomeError,
    parse_error_envelope,
)
from airflow_provider_wamm.graph.recipients import mask_phone

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PHONE_NUMBER_FIELDS",
    "DEFAULT_TEMPLATE_FIELDS",
    "DEFAULT_WABA_FIELDS",
    "GraphClient",
    "SendResult",
    "is_loopback_host",
]

log = logging.getLogger(__name__)

#: Meta's Graph API.
DEFAULT_BASE_URL = "https://graph.facebook.com"
#: Fields read by :meth:`GraphClient.get_phone_number` unless told otherwise.
DEFAULT_PHONE_NUMBER_FIELDS = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "platform_type",
    "throughput",
    "health_status",
)
#: Fields read by :meth:`GraphClient.get_waba` unless told otherwise.
DEFAULT_WABA_FIELDS = ("id", "name", "marketing_messages_onboarding_status")
#: Fields read by :meth:`GraphClient.list_templates` unless told otherwise.
DEFAULT_TEMPLATE_FIELDS = ("id", "name", "language", "status", "category", "parameter_format", "components")

_API_VERSION_RE = re.compile(r"v\d+\.\d+")
_QUERY_SECRET_RE = re.compile(
    r"((?:access_token|input_token|client_secret|appsecret_proof|hub\.verify_token|fb_exchange_token)=)[^&\s\"']+",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._|\-]+", re.IGNORECASE)
_UNKNOWN_GATEWAY_STATUSES = frozenset({502, 504})
_MAX_ANALYTICS_TEMPLATES = 10


def redact(text: str) -> str:
    """Blank out query-string secrets and bearer tokens in ``text``."""
    return _BEARER_RE.sub(r"\1***", _QUERY_SECRET_RE.sub(r"\1***", text))


class _RedactingFilter(logging.Filter):
    """Redacts secrets that ``urllib3`` would log with request URLs at DEBUG level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


_FILTER_LOCK = threading.Lock()


def _install_log_filter() -> None:
    with _FILTER_LOCK:
        for name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry"):
            logger = logging.getLogger(name)
            if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
                logger.addFilter(_RedactingFilter())


_install_log_filter()


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is on the loopback interface (``localhost``, 127.0.0.0/8, ``::1``)."""
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _Secret:
    """Holds a secret so that ``repr``/``vars`` of its owner never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"


@dataclass(frozen=True)
class SendResult:
    """What Meta answered to an accepted ``marketing_messages`` request."""

    wamid: str
    """The WhatsApp message id; status webhooks refer to it."""
    message_status: str
    """``accepted``, ``held_for_quality_assessment`` or ``paused`` (none of them means delivered)."""
    wa_id: str | None
    """The recipient's WhatsApp id as Meta resolved it."""
    input: str | None
    """The recipient as sent."""
    user_id: str | None = None
    """The business-scoped user id, when the message was sent by BSUID."""

    @classmethod
    def from_response(cls, body: Mapping[str, Any]) -> SendResult:
        """Read a send response; raise ``ValueError`` if it has no message id."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[0], Mapping):
            raise ValueError("no messages[] in the response")
        message = messages[0]
        wamid = message.get("id")
        if not isinstance(wamid, str) or not wamid:
            raise ValueError("no message id in the response")
        contacts = body.get("contacts")
        contact: Mapping[str, Any] = (
            contacts[0]
            if isinstance(contacts, list) and contacts and isinstance(contacts[0], Mapping)
            else {}
        )
        return cls(
            wamid=wamid,
            message_status=str(message.get("message_status") or "accepted"),
            wa_id=contact.get("wa_id"),
            input=contact.get("input"),
            user_id=contact.get("user_id"),
        )


def _to_param(value: str | int | float | _dt.date | _dt.datetime) -> str:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return str(int(value.timestamp()))
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value))
    return str(value)


def _csv(value: str | Sequence[str] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


def _request_not_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether a connection error certainly happened before any byte of the request was written."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    if isinstance(exc, requests.exceptions.ProxyError):
        return True
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


class _NotSent(Exception):
    """The connection could not be opened: nothing of the request was written."""


class _NoAnswer(Exception):
    """The request was (maybe) written, but no complete answer came back."""


def _is_dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket was closed by the server (readable means EOF or junk)."""
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _DirectConnections:
    """Keep-alive HTTP/1.1 connections to one origin for POSTs of JSON, shared by sender threads.

    The request is written in one ``sendall`` (head and body together: one packet, one syscall) and
    the answer is read by the standard library's parser (:class:`http.client.HTTPResponse`: status
    line, headers, ``Content-Length`` or chunked bodies, ``Connection: close``). Each request takes an
    idle connection, dropping those the server closed meanwhile, or opens a new one, and gives it back
    afterwards unless the answer asked to close it. At most ``maxsize`` idle connections are kept.
    """

    def __init__(
        self,
        base_url: str,
        *,
        maxsize: int,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or ""
        self.https = parts.scheme == "https"
        self.port = parts.port or (443 if self.https else 80)
        name = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.https else 80
        self.host_header = name if self.port == default_port else f"{name}:{self.port}"
        self.maxsize = maxsize
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ssl_context = ssl_context
        self._idle: deque[socket.socket] = deque()
        self._closed = False

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def _take(self) -> socket.socket:
        while True:
            try:
                sock = self._idle.pop()
            except IndexError:
                break
            if not _is_dropped(sock):
                return sock
            sock.close()
        try:
            return self._connect()
        except (OSError, ValueError) as exc:  # refused, unreachable, connect timeout, TLS, bad host
            raise _NotSent(exc) from exc

    def _give_back(self, sock: socket.socket) -> None:
        if self._closed or len(self._idle) >= self.maxsize:
            sock.close()
        else:
            self._idle.append(sock)

    def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Send ``head`` (request line and headers, ending in a blank line) and ``body``; return the
        status and the answer's body; raise ``_NotSent`` or ``_NoAnswer``."""
        sock = self._take()
        try:
            sock.sendall(head + body)
            response = http.client.HTTPResponse(sock, method="POST")
            response.begin()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            sock.close()
            raise _NoAnswer(exc) from exc
        if response.will_close:
            sock.close()
        else:
            self._give_back(sock)
        return response.status, data

    def close(self) -> None:
        """Close the idle connections; connections in use are closed when given back."""
        self._closed = True
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return


class GraphClient:
    """Client for the WhatsApp Graph API (Marketing Messages, phone number, WABA and templates).

    :param access_token: a system-user token with ``whatsapp_business_messaging`` (and
        ``whatsapp_business_management`` for account and template reads).
    :param phone_number_id: the sending phone number's id (needed for sends).
    :param waba_id: the WhatsApp Business Account id (needed for templates and analytics).
    :param base_url: ``https://graph.facebook.com`` or a local sandbox URL.
    :param api_version: Graph API version such as ``v23.0``.
    :param timeout: read timeout in seconds for every call.
    :param connect_timeout: connect timeout in seconds.
    :param max_retries: retries (after the first attempt) for retryable failures; ``0`` disables.
    :param backoff_base: first backoff ceiling in seconds; doubles on every retry (full jitter).
    :param backoff_max: largest backoff in seconds.
    :param allow_insecure_http: allow ``http://`` to a host that is not loopback (never do
        this with a real token).
    :param pool_maxsize: connections kept per host; size it to the number of sender threads.
    :param session: a session to use instead of a new one (it is not closed by :meth:`close`).
    :param sleep: how to wait between retries (injectable for tests).
    :param random: a ``() -> float in [0, 1)`` source for jitter (injectable for tests).
    """

    def __init__(
        self,
        access_token: str,
        *,
        phone_number_id: str | None = None,
        waba_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = "v23.0",
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        allow_insecure_http: bool = False,
        pool_maxsize: int = 64,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not isinstance(access_token, str) or not access_token.strip():
            raise ConfigurationError(
                "access_token is required: put the WhatsApp token in the connection's password"
            )
        if any(ch.isspace() for ch in access_token.strip()):
            raise ConfigurationError("access_token contains white space; check the connection's password")
        self._token = _Secret(access_token.strip())
        self.phone_number_id = str(phone_number_id) if phone_number_id else None
        self.waba_id = str(waba_id) if waba_id else None
        self.base_url = self._check_base_url(base_url, allow_insecure_http)
        if not isinstance(api_version, str) or not _API_VERSION_RE.fullmatch(api_version):
            raise ConfigurationError(f"api_version must look like 'v23.0', got {api_version!r}")
        self.api_version = api_version
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600:
                raise ConfigurationError(f"{name} must be a number of seconds in (0, 600], got {value!r}")
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 20:
            raise ConfigurationError(f"max_retries must be an integer 0-20, got {max_retries!r}")
        self.max_retries = max_retries
        if not 0 <= backoff_base <= backoff_max:
            raise ConfigurationError(
                "backoff_base and backoff_max must satisfy 0 <= backoff_base <= backoff_max"
            )
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._sleep = sleep
        self._random = random
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, int(pool_maxsize)), max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self._session = session
        self._headers = {"User-Agent": f"airflow-provider-wamm/{__version__}", "Accept": "application/json"}
        # The connections of send_marketing_message_fast; None means "send through the session".
        self._fast_pool = self._direct_pool(pool_maxsize) if self._own_session else None
        self._base_path = urlsplit(self.base_url).path
        self._fast_key: tuple[str, str] | None = None
        self._fast_head = ""

    @staticmethod
    def _check_base_url(base_url: str, allow_insecure_http: bool) -> str:
        if not isinstance(base_url, str) or not base_url.strip():
            raise ConfigurationError("base_url must be a URL such as https://graph.facebook.com")
        url = base_url.strip().rstrip("/")
        if "://" not in url:
            url = "https://" + url
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"base_url must be an http(s) URL, got {redact(base_url)!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigurationError("base_url must not contain credentials, a query or a fragment")
        if scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
            raise InsecureTransportError(
                f"refusing plain http to {parts.hostname}: the access token would travel unencrypted. "
                "Use https, or a loopback address for the local sandbox"
            )
        return url

    def _direct_pool(self, pool_maxsize: int) -> _DirectConnections | None:
        """Direct connections to the base URL, verified as ``requests`` verifies them, or ``None`` when a
        proxy from the environment applies (those requests stay on the session, which knows proxies)."""
        if requests.utils.get_environ_proxies(self.base_url):
            return None
        context = None
        if self.base_url.startswith("https://"):
            env = os.environ
            default = requests.utils.DEFAULT_CA_BUNDLE_PATH
            bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or default
            if os.path.isdir(bundle):
                context = ssl.create_default_context(capath=bundle)
            else:
                context = ssl.create_default_context(cafile=bundle)
        return _DirectConnections(
            self.base_url,
            maxsize=max(1, int(pool_maxsize)),
            connect_timeout=self.connect_timeout,
            read_timeout=self.timeout,
            ssl_context=context,
        )

    # ----------------------------------------------------------------------------------------
    # Plumbing
    # ----------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"GraphClient(base_url={self.base_url!r}, api_version={self.api_version!r}, "
            f"phone_number_id={self.phone_number_id!r}, waba_id={self.waba_id!r})"
        )

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections (only when the session was created here)."""
        if self._own_session:
            self._session.close()
        if self._fast_pool is not None:
            self._fast_pool.close()

    def _scrub(self, text: str, extra_secrets: Sequence[str] = ()) -> str:
        for secret in (self._token.get(), *extra_secrets):
            if secret and secret in text:
                text = text.replace(secret, "***")
        return redact(text)

    def _scrub_error(self, err: GraphError, extra_secrets: Sequence[str] = ()) -> GraphError:
        err.message = self._scrub(err.message, extra_secrets)
        err.args = (err.message,)
        for attr in ("details", "user_message", "title"):
            value = getattr(err, attr)
            if isinstance(value, str):
                setattr(err, attr, self._scrub(value, extra_secrets))
        return err

    def _need(self, value: str | None, name: str) -> str:
        if not value:
            raise ConfigurationError(f"{name} is required for this call: set it in the connection's extra")
        return value

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}/{path.lstrip('/')}"

    def backoff_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay before retry number ``attempt`` (0-based): full jitter over ``base * 2**attempt``, capped."""
        ceiling = min(self.backoff_max, self.backoff_base * (2.0**attempt))
        delay = self._random() * ceiling
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    @staticmethod
    def _retry_after(response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            return None
        return seconds if seconds >= 0 else None

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        retry: bool = True,
        headers: Mapping[str, str] | None = None,
        extra_secrets: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Send one request (with retries where safe) and return the decoded JSON object."""
        url = self._url(path)
        what = f"{method} /{self.api_version}/{path.lstrip('/')}"
        idempotent = method in ("GET", "HEAD")
        secret_in_url = bool(extra_secrets) or any(
            k in ("input_token", "access_token") for k in (params or {})
        )
        attempts = 1 + (self.max_retries if retry else 0)
        send_headers = {**self._headers, "Authorization": f"Bearer {self._token.get()}", **(headers or {})}
        for attempt in range(attempts):
            last = attempt == attempts - 1
            started = time.monotonic()
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=send_headers,
                    timeout=(self.connect_timeout, self.timeout),
                    allow_redirects=False,
                )
            except requests.exceptions.RequestException as exc:
                err, retryable = self._transport_error(exc, what, idempotent, extra_secrets)
                if last or not retryable:
                    log.warning("%s failed: %s", what, err)
                    raise err from (None if secret_in_url else exc)
                delay = self.backoff_delay(attempt)
                log.warning(
                    "%s failed (%s); retry %d/%d in %.2fs",
                    what,
                    type(exc).__name__,
                    attempt + 1,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
                continue
            elapsed = time.monotonic() - started
            status = response.status_code
            log.debug("%s -> HTTP %d in %.3fs", what, status, elapsed)
            if 200 <= status < 300:
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    return body
                if not idempotent:
                    raise UnknownOutcomeError(
                        f"{what} answered HTTP {status} without a JSON object: the request may have "
                        "been accepted"
                    )
                if last:
                    raise GraphTransportError(
                        f"{what} answered HTTP {status} without a JSON object", request_sent=True
                    )
                self._sleep(self.backoff_delay(attempt))
                continue
            if 300 <= status < 400:
                raise ConfigurationError(
                    f"{what} was redirected (HTTP {status}); check the base URL ({self.base_url})"
                )
            error = self._scrub_error(
                parse_error_envelope(response.content, http_status=status), extra_secrets
            )
            if not idempotent and error.code is None and status in _UNKNOWN_GATEWAY_STATUSES:
                log.warning("%s: HTTP %d from a gateway without a Graph error; outcome unknown", what, status)
                raise UnknownOutcomeError(
                    f"{what} answered HTTP {status} without a Graph error envelope (a gateway timeout or "
                    "failure): the request may have reached Meta"
                )
            if last or error.action not in (Action.RETRY, Action.THROTTLE):
                log.log(
                    logging.DEBUG if status < 500 else logging.WARNING,
                    "%s -> Graph error %s (%s)",
                    what,
                    error.code,
                    error.title,
                )
                raise error
            delay = self.backoff_delay(attempt, self._retry_after(response))
            log.warning(
                "%s -> Graph error %s (%s, %s); retry %d/%d in %.2fs",
                what,
                error.code,
                error.title,
                error.action.value,
                attempt + 1,
                attempts - 1,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _transport_error(
        self,
        exc: requests.exceptions.RequestException,
        what: str,
        idempotent: bool,
        extra_secrets: Sequence[str],
    ) -> tuple[GraphTransportError, bool]:
        """Map a ``requests`` failure to our error and whether retrying it is safe and useful."""
        detail = self._scrub(f"{type(exc).__name__}: {exc}", extra_secrets)
        if isinstance(exc, requests.exceptions.SSLError):
            # Certificate or TLS setup problems do not fix themselves.
            return GraphTransportError(f"{what}: TLS failure ({detail})", request_sent=False), False
        if isinstance(exc, requests.exceptions.ConnectionError) and _request_not_sent(exc):
            return GraphTransportError(f"{what} could not connect ({detail})", request_sent=False), True
        if isinstance(
            exc,
            (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
        ):
            # A read timeout, or the connection broke after the request was (maybe) written.
            if not idempotent:
                err = UnknownOutcomeError(
                    f"{what}: no usable answer after the request was sent ({detail}); Meta may or may not "
                    "have accepted it, so it is not retried"
                )
                return err, False
            return GraphTransportError(f"{what} failed after sending ({detail})", request_sent=True), True
        # Invalid URL, too many redirects and the like: nothing was sent and a retry would not help.
        return GraphTransportError(f"{what} failed ({detail})", request_sent=False), False

    # ----------------------------------------------------------------------------------------
    # Endpoints
    # ----------------------------------------------------------------------------------------

    def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> SendResult:
        """``POST /{phone_number_id}/marketing_messages``.

        :param payload: a body from :func:`~airflow_provider_wamm.graph.payload.build_marketing_message`.
        :param retry: retry transient and throttling errors here; bulk senders pass ``False`` and
            schedule retries themselves.
        :raises GraphError: (a subclass per action) when Meta refuses the message.
        :raises UnknownOutcomeError: when the request left but no usable answer came back.
        :raises GraphTransportError: when the request could not be sent.
        """
        phone_number_id = self._need(self.phone_number_id, "phone_number_id")
        body = self._request("POST", f"{phone_number_id}/marketing_messages", json_body=payload, retry=retry)
        return _send_result(body, payload)

    def send_marketing_message_fast(self, payload: Mapping[str, Any]) -> SendResult:
        """``POST /{phone_number_id}/marketing_messages`` once, on direct keep-alive connections.

        For bulk senders, which schedule retries themselves: the same request, answers and errors as
        ``send_marketing_message(payload, retry=False)``, sent with the standard library's
        ``http.client`` instead of ``requests``, whose per-request work (environment, proxy and netrc
        lookups, hooks, request preparation, the ``urllib3`` layers) costs twice as much CPU as
        everything else a send does. Clients given their own ``session``, and base URLs an
        environment proxy applies to, send through the session instead.

        :param payload: a body from :func:`~airflow_provider_wamm.graph.payload.build_marketing_message`.
        :raises GraphError: (a subclass per action) when Meta refuses the message.
        :raises UnknownOutcomeError: when the request left but no usable answer came back.
        :raises GraphTransportError: when the request could not be sent.
        """
        pool = self._fast_pool
        if pool is None:
            return self.send_marketing_message(payload, retry=False)
        phone_number_id = self._need(self.phone_number_id, "phone_number_id")
        key = (self.api_version, phone_number_id)
        if key != self._fast_key:
            path = requests.utils.requote_uri(
                f"{self._base_path}/{self.api_version}/{phone_number_id}/marketing_messages"
            )
            self._fast_head = (
                f"POST {path} HTTP/1.1\r\nHost: {pool.host_header}\r\n"
                + "".join(f"{name}: {value}\r\n" for name, value in self._headers.items())
                + "Content-Type: application/json\r\n"
            )
            self._fast_key = key
        what = f"POST /{self.api_version}/{phone_number_id}/marketing_messages"
        try:
            body = json.dumps(payload, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            err = GraphTransportError(f"{what} failed (InvalidJSONError: {exc})", request_sent=False)
            log.warning("%s failed: %s", what, err)
            raise err from None
        head = (
            f"{self._fast_head}Authorization: Bearer {self._token.get()}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        started = time.monotonic()
        try:
            status, content = pool.post(head, body)
        except _NotSent as exc:
            cause = exc.__cause__ or exc
            detail = self._scrub(f"{type(cause).__name__}: {cause}")
            if isinstance(cause, ssl.SSLError | ssl.CertificateError):
                err = GraphTransportError(f"{what}: TLS failure ({detail})", request_sent=False)
            else:
                err = GraphTransportError(f"{what} could not connect ({detail})", request_sent=False)
            log.warning("%s failed: %s", what, err)
            raise err from None
        except _NoAnswer as exc:
            cause = exc.__cause__ or exc
            detail = self._scrub(f"{type(cause).__name__}: {cause}")
            err = UnknownOutcomeError(
                f"{what}: no usable answer after the request was sent ({detail}); Meta may or may not "
                "have accepted it, so it is not retried"
            )
            log.warning("%s failed: %s", what, err)
            raise err from None
        log.debug("%s -> HTTP %d in %.3fs", what, status, time.monotonic() - started)
        if 200 <= status < 300:
            try:
                answer = json.loads(content)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise UnknownOutcomeError(
                    f"{what} answered HTTP {status} without a JSON object: the request may have been accepted"
                )
            return _send_result(answer, payload)
        if 300 <= status < 400:
            raise ConfigurationError(
                f"{what} was redirected (HTTP {status}); check the base URL ({self.base_url})"
            )
        error = self._scrub_error(parse_error_envelope(content, http_status=status))
        if error.code is None and status in _UNKNOWN_GATEWAY_STATUSES:
            log.warning("%s: HTTP %d from a gateway without a Graph error; outcome unknown", what, status)
            raise UnknownOutcomeError(
                f"{what} answered HTTP {status} without a Graph error envelope (a gateway timeout or "
                "failure): the request may have reached Meta"
            )
        log.log(
            logging.DEBUG if status < 500 else logging.WARNING,
            "%s -> Graph error %s (%s)",
            what,
            error.code,
            error.title,
        )
        raise error

    def get_phone_number(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """``GET /{phone_number_id}``: name, quality rating, throughput, health (the connection test)."""
        phone_number_id = self._need(self.phone_number_id, "phone_number_id")
        params = {"fields": _csv(fields or DEFAULT_PHONE_NUMBER_FIELDS)}
        return self._request("GET", phone_number_id, params=params)

    def get_waba(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """``GET /{waba_id}``: by default including ``marketing_messages_onboarding_status``."""
        waba_id = self._need(self.waba_id, "waba_id")
        return self._request("GET", waba_id, params={"fields": _csv(fields or DEFAULT_WABA_FIELDS)})

    def _paged(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        while True:
            body = self._request("GET", path, params=params)
            data = body.get("data")
            if not isinstance(data, list):
                data = []
            for item in data:
                if isinstance(item, Mapping):
                    yield dict(item)
            paging = body.get("paging")
            cursors = paging.get("cursors") if isinstance(paging, Mapping) else None
            after = cursors.get("after") if isinstance(cursors, Mapping) else None
            if (
                not data
                or not isinstance(paging, Mapping)
                or not paging.get("next")
                or not after
                or after in seen
            ):
                return
            seen.add(after)
            params = {**params, "after": after}

    def list_templates(
        self,
        *,
        name: str | None = None,
        language: str | None = None,
        status: str | Sequence[str] | None = None,
        category: str | Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
        limit: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """``GET /{waba_id}/message_templates``, following cursor paging; yields one template at a time.

        :param name: filter by name (Meta matches partially; compare names yourself if it matters).
        :param language: filter by language code.
        :param status: e.g. ``APPROVED`` (or several).
        :param category: e.g. ``MARKETING`` (or several).
        :param fields: fields to read; defaults to :data:`DEFAULT_TEMPLATE_FIELDS`.
        :param limit: page size.
        """
        waba_id = self._need(self.waba_id, "waba_id")
        params: dict[str, Any] = {"fields": _csv(fields or DEFAULT_TEMPLATE_FIELDS), "limit": int(limit)}
        for key, value in (
            ("name", name),
            ("language", language),
            ("status", _csv(status)),
            ("category", _csv(category)),
        ):
            if value:
                params[key] = value
        return self._paged(f"{waba_id}/message_templates", params)

    def get_template(self, name: str, language: str) -> dict[str, Any] | None:
        """The template with exactly this name and language, or ``None``."""
        for template in self.list_templates(name=name, language=language):
            if template.get("name") == name and template.get("language") == language:
                return template
        return None

    def template_analytics(
        self,
        *,
        template_ids: Sequence[str | int],
        start: str | int | _dt.date | _dt.datetime,
        end: str | int | _dt.date | _dt.datetime,
        metric_types: Sequence[str] | None = None,
        product_type: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /{waba_id}/template_analytics`` (daily); more than 10 ids are fetched in chunks.

        :param template_ids: Meta template ids.
        :param start: first day: Unix seconds, a ``date`` or ``datetime``, or ``YYYY-MM-DD``.
        :param end: last day, same forms.
        :param metric_types: e.g. ``["SENT", "DELIVERED", "READ", "CLICKED"]``; Meta's default when ``None``.
        :param product_type: e.g. ``MARKETING_MESSAGES_LITE_API``; omitted means Cloud API only.
        :returns: the ``data`` entries of every page (each with ``data_points``).
        """
        waba_id = self._need(self.waba_id, "waba_id")
        ids = [str(t) for t in template_ids]
        if not ids:
            raise ConfigurationError("template_ids must name at least one template")
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), _MAX_ANALYTICS_TEMPLATES):
            params: dict[str, Any] = {
                "start": _to_param(start),
                "end": _to_param(end),
                "granularity": "DAILY",
                "template_ids": json.dumps(ids[i : i + _MAX_ANALYTICS_TEMPLATES]),
            }
            if metric_types:
                params["metric_types"] = json.dumps([str(m).upper() for m in metric_types])
            if product_type:
                params["product_type"] = product_type
            out.extend(self._paged(f"{waba_id}/template_analytics", params))
        return out

    def debug_token(self, *, app_id: str, app_secret: str) -> dict[str, Any]:
        """``GET /debug_token``: the token's app, expiry (``expires_at`` 0 = never), scopes and validity.

        Authenticated with the app access token ``app_id|app_secret``; neither the token nor the
        app secret reaches a log line or an exception message.
        """
        if not app_id or not app_secret:
            raise ConfigurationError("debug_token needs the app id and app secret (connection extra)")
        body = self._request(
            "GET",
            "debug_token",
            params={"input_token": self._token.get()},
            headers={"Authorization": f"Bearer {app_id}|{app_secret}"},
            extra_secrets=(app_secret, f"{app_id}|{app_secret}"),
        )
        data = body.get("data")
        return dict(data) if isinstance(data, Mapping) else {}


def _send_result(body: Any, payload: Mapping[str, Any]) -> SendResult:
    """The :class:`SendResult` of a 200 answer to a send; no usable message id means an unknown outcome."""
    try:
        result = SendResult.from_response(body)
    except ValueError as exc:
        raise UnknownOutcomeError(
            f"marketing_messages answered HTTP 200 without a usable message id ({exc})"
        ) from None
    if log.isEnabledFor(logging.DEBUG):
        to = payload.get("to") or payload.get("recipient")
        log.debug("sent to %s: %s (%s)", mask_phone(to), result.wamid, result.message_status)
    return result
