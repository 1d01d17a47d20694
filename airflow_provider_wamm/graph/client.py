"""A small, safe client for the Graph API endpoints a marketing campaign needs.

* sends go through one :class:`~airflow_provider_wamm.graph.transport.Transport`: by default a pool
  of keep-alive sockets shared by sender threads (see :mod:`airflow_provider_wamm.graph.connections`);
  tests and special setups pass their own (``GraphClient(..., transport=...)``). Reads go through
  one pooled :class:`requests.Session`;
* every answer is read by one interpreter (:mod:`airflow_provider_wamm.graph.answers`) and every
  transport failure mapped by one table (:data:`~airflow_provider_wamm.graph.transport.TRANSPORT_ERRORS`);
* HTTPS only, except to the loopback interface (the local sandbox) or when explicitly allowed;
* a connect and a read timeout on every call;
* retries with exponential backoff and full jitter, only where a retry cannot send a message
  twice: errors classified :attr:`~airflow_provider_wamm.graph.codes.Action.RETRY` or
  :attr:`~airflow_provider_wamm.graph.codes.Action.THROTTLE`, and connection failures before
  the request left. A send whose outcome is unknown (read timeout, connection dropped after
  the request was written, a gateway timeout) raises
  :class:`~airflow_provider_wamm.graph.errors.UnknownOutcomeError` and is never retried, because
  the Graph API has no idempotency key;
* the access token never appears in ``repr()``, exception text or log lines (``urllib3``'s debug
  lines included: query-string secrets are redacted by a logging filter,
  :mod:`airflow_provider_wamm.graph.redaction`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import logging
import random as _random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import requests
import requests.utils
from requests.adapters import HTTPAdapter

from airflow_provider_wamm import __version__
from airflow_provider_wamm.graph.analytics import TemplateAnalytics, analytics_queries
from airflow_provider_wamm.graph.answers import read_answer, read_send_answer
from airflow_provider_wamm.graph.client_checks import (
    check_base_url,
    check_settings,
    check_token,
    is_loopback_host,
)
from airflow_provider_wamm.graph.codes import Action
from airflow_provider_wamm.graph.connections import default_transport
from airflow_provider_wamm.graph.errors import (
    ConfigurationError,
    GraphError,
    GraphTransportError,
    InvalidRequestError,
)
from airflow_provider_wamm.graph.recipients import mask_phone
from airflow_provider_wamm.graph.redaction import Secret, scrub
from airflow_provider_wamm.graph.results import SendResult
from airflow_provider_wamm.graph.transport import RawResponse, Transport, map_transport_errors, post_paced
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PHONE_NUMBER_FIELDS",
    "DEFAULT_TEMPLATE_FIELDS",
    "DEFAULT_WABA_FIELDS",
    "GraphClient",
    "SendRequest",
    "SendResult",
    "check_base_url",
    "is_loopback_host",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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
#: Fields read by :meth:`GraphClient.list_templates` unless told otherwise (``message_send_ttl_seconds``:
#: the template's time-to-live, "Configure message time-to-live", Meta, May 21, 2026).
DEFAULT_TEMPLATE_FIELDS = (
    "id",
    "name",
    "language",
    "status",
    "category",
    "parameter_format",
    "components",
    "message_send_ttl_seconds",
)

_RETRIED_ACTIONS = frozenset({Action.RETRY, Action.THROTTLE})


class SendRequest(NamedTuple):
    """One send as it goes on the wire (:meth:`GraphClient.marketing_request`)."""

    what: str
    """``POST /{version}/{phone_number_id}/marketing_messages``: how errors name the request."""
    path: str
    """The path below the base URL."""
    body: bytes
    """The JSON body."""
    headers: Mapping[str, str]
    """The request's headers (``Content-Length`` and ``Host`` are the transport's)."""
    to: str
    """The recipient: the payload's ``to`` (or ``recipient``); never logged unmasked."""


#: Encodes the bodies of sends (one encoder: building one per send costs more than the encoding).
_JSON = json.JSONEncoder(allow_nan=False)


def _encode(payload: Mapping[str, Any], what: str) -> bytes:
    """The JSON body of a send; a payload that is not JSON is never sent."""
    try:
        return _JSON.encode(payload).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{what} failed (InvalidJSONError: {exc})") from None


def _to_param(value: str | int | float | _dt.date | _dt.datetime) -> str:
    """A query parameter: datetimes as Unix seconds (naive ones taken as UTC), dates as ISO days."""
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
    """A list as Graph's comma-separated form (a string as it is)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


class GraphClient:
    """Client for the WhatsApp Graph API (Marketing Messages, phone number, WABA and templates).

    :param access_token: a system-user token with ``whatsapp_business_messaging`` (and
        ``whatsapp_business_management`` for account and template reads).
    :param phone_number_id: the sending phone number's id (needed for sends).
    :param waba_id: the WhatsApp Business Account id (needed for templates and analytics).
    :param base_url: ``https://graph.facebook.com`` or a local sandbox URL.
    :param api_version: Graph API version such as ``v25.0`` (the default,
        :data:`~airflow_provider_wamm.graph.versions.DEFAULT_API_VERSION`).
    :param timeout: read timeout in seconds for every call.
    :param connect_timeout: connect timeout in seconds.
    :param max_retries: retries (after the first attempt) for retryable failures; ``0`` disables.
    :param backoff_base: first backoff ceiling in seconds; doubles on every retry (full jitter).
    :param backoff_max: largest backoff in seconds.
    :param allow_insecure_http: allow ``http://`` to a host that is not loopback (never do
        this with a real token).
    :param pool_maxsize: connections kept per host; size it to the number of sender threads.
    :param session: a session to use instead of a new one for reads, and for sends unless a
        ``transport`` is given (it is not closed by :meth:`close`).
    :param transport: what sends go through (it is not closed by :meth:`close`); by default a
        :class:`~airflow_provider_wamm.graph.connections.SocketPoolTransport`, or a
        :class:`~airflow_provider_wamm.graph.connections.SessionTransport` over the session when the
        caller gave one or an environment proxy applies to ``base_url``.
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
        api_version: str = DEFAULT_API_VERSION,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        allow_insecure_http: bool = False,
        pool_maxsize: int = 64,
        session: requests.Session | None = None,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._token = Secret(check_token(access_token))
        self.phone_number_id = str(phone_number_id) if phone_number_id else None
        self.waba_id = str(waba_id) if waba_id else None
        self.base_url = check_base_url(base_url, allow_insecure_http)
        timeouts = {"timeout": timeout, "connect_timeout": connect_timeout}
        check_settings(api_version, timeouts, max_retries, (backoff_base, backoff_max))
        self.api_version = api_version
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_retries = max_retries
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
        self._own_transport = transport is None
        #: What sends go through.
        self.transport: Transport = (
            transport
            if transport is not None
            else default_transport(
                self.base_url,
                session=session,
                maxsize=max(1, int(pool_maxsize)),
                connect_timeout=self.connect_timeout,
                read_timeout=self.timeout,
                pooled=self._own_session,
            )
        )
        self._headers = {"User-Agent": f"airflow-provider-wamm/{__version__}", "Accept": "application/json"}
        self._send_paths: dict[tuple[str, str], str] = {}

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
        """Close the pooled connections (of the session and transport created here)."""
        if self._own_transport:
            self.transport.close()
        if self._own_session:
            self._session.close()

    def _scrub(self, text: str, extra_secrets: Sequence[str] = ()) -> str:
        """``text`` without the token, ``extra_secrets`` or query-string secrets."""
        return scrub(text, (self._token.get(), *extra_secrets))

    def _scrub_error(self, err: GraphError, extra_secrets: Sequence[str] = ()) -> GraphError:
        """``err`` with its texts scrubbed (Meta echoes what it was sent, tokens included)."""
        err.message = self._scrub(err.message, extra_secrets)
        err.args = (err.message,)
        for attr in ("details", "user_message", "title"):
            value = getattr(err, attr)
            if isinstance(value, str):
                setattr(err, attr, self._scrub(value, extra_secrets))
        return err

    def _need(self, value: str | None, name: str) -> str:
        """``value``, which the call needs; refuse an empty one naming the setting."""
        if not value:
            raise ConfigurationError(f"{name} is required for this call: set it in the connection's extra")
        return value

    def backoff_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay before retry number ``attempt`` (0-based): full jitter over ``base * 2**attempt``, capped."""
        ceiling = min(self.backoff_max, self.backoff_base * (2.0**attempt))
        delay = self._random() * ceiling
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _with_retries(self, what: str, attempt: Callable[[], _T], attempts: int) -> _T:
        """Run ``attempt`` up to ``attempts`` times: again after a Graph error classified RETRY or
        THROTTLE and after a transport failure that is safe to retry, with backoff; else raise."""
        for n in range(attempts):
            last = n == attempts - 1
            try:
                return attempt()
            except GraphTransportError as err:
                if last or not err.retry_safe:
                    log.warning("%s failed: %s", what, err)
                    raise
                delay = self.backoff_delay(n)
                why = type(err.__cause__ or err).__name__
                log.warning("%s failed (%s); retry %d/%d in %.2fs", what, why, n + 1, attempts - 1, delay)
            except GraphError as err:
                if last or err.action not in _RETRIED_ACTIONS:
                    level = logging.DEBUG if (err.http_status or 0) < 500 else logging.WARNING
                    log.log(level, "%s -> Graph error %s (%s)", what, err.code, err.title)
                    raise
                delay = self.backoff_delay(n, err.retry_after)
                log.warning(
                    "%s -> Graph error %s (%s, %s); retry %d/%d in %.2fs",
                    what,
                    err.code,
                    err.title,
                    err.action.value,
                    n + 1,
                    attempts - 1,
                    delay,
                )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(
        self,
        path: str,
        *,
        params: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
        extra_secrets: Sequence[str] = (),
    ) -> dict[str, Any]:
        """``GET`` through the session (retried where safe); the answer's JSON object."""
        url = f"{self.base_url}/{self.api_version}/{path.lstrip('/')}"
        what = f"GET /{self.api_version}/{path.lstrip('/')}"
        # A failure's text would show a secret of the query string: keep the original exception out.
        secret_in_url = bool(extra_secrets) or any(k in ("input_token", "access_token") for k in params)
        send_headers = {**self._headers, "Authorization": f"Bearer {self._token.get()}", **(headers or {})}
        scrub_text = functools.partial(self._scrub, extra_secrets=extra_secrets)
        clean = functools.partial(self._scrub_error, extra_secrets=extra_secrets)

        def attempt() -> dict[str, Any]:
            started = time.monotonic()
            with map_transport_errors(what, idempotent=True, scrub=scrub_text, keep_cause=not secret_in_url):
                response = self._session.get(
                    url,
                    params=params,
                    headers=send_headers,
                    timeout=(self.connect_timeout, self.timeout),
                    allow_redirects=False,
                )
            raw = RawResponse(response.status_code, response.content, response.headers)
            log.debug("%s -> HTTP %d in %.3fs", what, raw.status, time.monotonic() - started)
            return read_answer(raw, what, idempotent=True, base_url=self.base_url, clean=clean)

        return self._with_retries(what, attempt, 1 + self.max_retries)

    # ----------------------------------------------------------------------------------------
    # Endpoints
    # ----------------------------------------------------------------------------------------

    def send_marketing_message(
        self,
        payload: Mapping[str, Any],
        *,
        retry: bool = True,
        before_write: Callable[[], None] | None = None,
    ) -> SendResult:
        """``POST /{phone_number_id}/marketing_messages`` through the client's transport.

        :param payload: a body from :func:`~airflow_provider_wamm.graph.builders.build_marketing_message`.
        :param retry: retry transient and throttling errors here; ``False`` makes one attempt, which
            is what bulk senders call (they schedule retries themselves).
        :param before_write: called before each attempt is written, its connection ready (a bulk
            sender's pacing turn); what it raises propagates and nothing is sent.
        :raises GraphError: (a subclass per action) when Meta refuses the message.
        :raises UnknownOutcomeError: when the request left but no usable answer came back.
        :raises GraphTransportError: when the request could not be sent.
        """
        return self._send(payload, retry=retry, before_write=before_write)

    def send_marketing_message_fast(self, payload: Mapping[str, Any]) -> SendResult:
        """The same as ``send_marketing_message(payload, retry=False)``: one attempt.

        Kept for the callers of its earlier form, a send on connections of its own; every send now
        goes through the client's transport.
        """
        return self._send(payload, retry=False)

    def marketing_request(self, payload: Mapping[str, Any]) -> SendRequest:
        """What a send of ``payload`` writes: its path, JSON body and headers (the token included).

        An engine that posts on connections of its own (:mod:`~airflow_provider_wamm.campaign.loop_pool`)
        writes exactly this and reads the answer with :meth:`read_marketing_answer`.

        :raises InvalidRequestError: ``payload`` is not JSON.
        """
        phone_number_id = self._need(self.phone_number_id, "phone_number_id")
        key = (self.api_version, phone_number_id)
        path = self._send_paths.get(key)
        if path is None:
            path = requests.utils.requote_uri(f"/{self.api_version}/{phone_number_id}/marketing_messages")
            self._send_paths[key] = path
        what = f"POST /{self.api_version}/{phone_number_id}/marketing_messages"
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self._token.get()}",
        }
        to = str(payload.get("to") or payload.get("recipient") or "")
        return SendRequest(what, path, _encode(payload, what), headers, to)

    def read_marketing_answer(self, request: SendRequest, response: RawResponse) -> SendResult:
        """The result of ``request`` from its answer; a Graph error or an unusable answer raises."""
        result = read_send_answer(response, request.what, base_url=self.base_url, clean=self._scrub_error)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sent to %s: %s (%s)", mask_phone(request.to), result.wamid, result.message_status)
        return result

    def send_failures(self, request: SendRequest) -> contextlib.AbstractContextManager[None]:
        """A block in which transport failures of ``request`` become the project's errors (an
        answer lost after the write: :class:`~airflow_provider_wamm.graph.errors.UnknownOutcomeError`)."""
        return map_transport_errors(request.what, idempotent=False, scrub=self._scrub)

    def _send(
        self, payload: Mapping[str, Any], *, retry: bool, before_write: Callable[[], None] | None = None
    ) -> SendResult:
        """One send through the transport: one attempt, or retried as :meth:`_with_retries` allows."""
        request = self.marketing_request(payload)
        what, path, body, headers, _ = request

        def attempt() -> SendResult:
            started = time.monotonic()
            with self.send_failures(request):
                response = post_paced(self.transport, path, body, headers, before_write)
            log.debug("%s -> HTTP %d in %.3fs", what, response.status, time.monotonic() - started)
            return self.read_marketing_answer(request, response)

        return self._with_retries(what, attempt, 1 + (self.max_retries if retry else 0))

    def get_phone_number(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """``GET /{phone_number_id}``: name, quality rating, throughput, health (the connection test)."""
        phone_number_id = self._need(self.phone_number_id, "phone_number_id")
        params = {"fields": _csv(fields or DEFAULT_PHONE_NUMBER_FIELDS)}
        return self._get(phone_number_id, params=params)

    def get_waba(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """``GET /{waba_id}``: by default including ``marketing_messages_onboarding_status``."""
        waba_id = self._need(self.waba_id, "waba_id")
        return self._get(waba_id, params={"fields": _csv(fields or DEFAULT_WABA_FIELDS)})

    def _paged(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        while True:
            body = self._get(path, params=params)
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
        product_type: str | Sequence[str] | None = None,
    ) -> list[TemplateAnalytics]:
        """``GET /{waba_id}/template_analytics`` (daily); more than 10 ids are fetched in chunks.

        :param template_ids: Meta template ids.
        :param start: first day: Unix seconds, a ``date`` or ``datetime``, or ``YYYY-MM-DD``.
        :param end: last day, same forms.
        :param metric_types: e.g. ``["SENT", "DELIVERED", "READ", "CLICKED"]`` or conversion metrics
            (:data:`~airflow_provider_wamm.graph.analytics.CONVERSION_METRIC_TYPES`); Meta's default
            when ``None``.
        :param product_type: ``MARKETING_MESSAGES_API_FOR_WHATSAPP`` or ``CLOUD_API``, or several
            (:data:`~airflow_provider_wamm.graph.analytics.ANALYTICS_PRODUCT_TYPES`: every send,
            fallbacks to the Cloud API included), each asked for in its own requests; omitted means
            Cloud API only.
        :returns: the ``data`` entries of every page (each with ``product_type`` and ``data_points``).
        """
        waba_id = self._need(self.waba_id, "waba_id")
        ids = [str(t) for t in template_ids]
        if not ids:
            raise ConfigurationError("template_ids must name at least one template")
        out: list[TemplateAnalytics] = []
        path = f"{waba_id}/template_analytics"
        for params in analytics_queries(ids, _to_param(start), _to_param(end), metric_types, product_type):
            out.extend(cast(TemplateAnalytics, entry) for entry in self._paged(path, params))
        return out

    def debug_token(self, *, app_id: str, app_secret: str) -> dict[str, Any]:
        """``GET /debug_token``: the token's app, expiry (``expires_at`` 0 = never), scopes and validity.

        Authenticated with the app access token ``app_id|app_secret``; neither the token nor the
        app secret reaches a log line or an exception message.
        """
        if not app_id or not app_secret:
            raise ConfigurationError("debug_token needs the app id and app secret (connection extra)")
        body = self._get(
            "debug_token",
            params={"input_token": self._token.get()},
            headers={"Authorization": f"Bearer {app_id}|{app_secret}"},
            extra_secrets=(app_secret, f"{app_id}|{app_secret}"),
        )
        data = body.get("data")
        return dict(data) if isinstance(data, Mapping) else {}
