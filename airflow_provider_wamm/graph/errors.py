"""The provider's exceptions, and the Graph error envelope parsed into them.

Every error the provider raises on purpose derives from :class:`WammError`, so ``except WammError``
catches all of them and nothing else. The tree (the leaves of :class:`GraphError` are chosen from
Meta's code by :func:`error_class_for`, see :mod:`airflow_provider_wamm.graph.codes`)::

    WammError                          every error the provider raises on purpose
    +-- ConfigurationError             a setting or argument is wrong (also a ValueError)
    |   +-- InsecureTransportError     plain HTTP to a host off the loopback interface
    |   +-- PayloadError               a message payload is invalid (.field, .reason)
    |       +-- InvalidRecipientError  the recipient cannot receive a WhatsApp message
    +-- GraphTransportError            the request failed below HTTP (.request_sent)
    |   +-- ConnectError               could not connect: nothing sent, safe to retry
    |   +-- TLSError                   TLS or certificate failure: nothing sent, not retried
    |   +-- InvalidRequestError        the request could not be built: nothing sent, not retried
    |   +-- NoAnswerError              the request (maybe) left, no usable answer: a read is retried
    |       +-- UnknownOutcomeError    ... and it was a send: never retried (no idempotency key)
    +-- GraphError                     Meta answered with its error envelope (.code, .details, ...)
        +-- TransientError             Action.RETRY: back off and send again
        +-- ThrottlingError            Action.THROTTLE: slow the whole sender down
        +-- PairRateLimitError         Action.PAIR_LIMIT: delay only this recipient
        +-- RecipientError             Action.RECIPIENT: record it and go on
        +-- HaltError                  Action.HALT: stop the campaign
            +-- AuthenticationError    the token is missing, expired or revoked
            +-- PermissionDeniedError  the token lacks a permission
            +-- TemplateError          the template cannot be sent to anyone

Other layers extend it: ``campaign.personalise.PersonalisationError`` is a :class:`PayloadError`,
``campaign.result.CampaignHalted`` a :class:`WammError`.

:func:`parse_error_envelope` turns an HTTP error answer into the exception class of its code's
family, in the spirit of ``httpx``'s typed errors and ``pywa``'s per-family classes, and
:func:`advice_for` says what to fix when one of them halts a campaign. The code tables themselves
(:func:`classify`, :data:`ERROR_TITLES` and the code sets, re-exported here) live in
:mod:`airflow_provider_wamm.graph.codes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict

from airflow_provider_wamm.graph.codes import (
    CODE_PER_USER_LIMIT,
    CODE_STOPPED_MARKETING,
    CODE_TOKEN_EXPIRED,
    ERROR_TITLES,
    HALT_ADVICE,
    HALT_CODES,
    PAIR_LIMIT_CODES,
    PER_USER_PERMANENT_CODES,
    PERMISSION_ADVICE,
    RECIPIENT_CODES,
    RETRY_CODES,
    TEMPLATE_ADVICE,
    TEMPLATE_HALT_CODES,
    THROTTLE_CODES,
    Action,
    classify,
    error_title,
)

__all__ = [
    "CODE_PER_USER_LIMIT",
    "CODE_STOPPED_MARKETING",
    "CODE_TOKEN_EXPIRED",
    "ERROR_TITLES",
    "HALT_CODES",
    "PAIR_LIMIT_CODES",
    "PER_USER_PERMANENT_CODES",
    "RECIPIENT_CODES",
    "RETRY_CODES",
    "THROTTLE_CODES",
    "Action",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectError",
    "ErrorBody",
    "ErrorData",
    "ErrorEnvelope",
    "GraphError",
    "GraphTransportError",
    "HaltError",
    "InsecureTransportError",
    "InvalidRecipientError",
    "InvalidRequestError",
    "NoAnswerError",
    "PairRateLimitError",
    "PayloadError",
    "PermissionDeniedError",
    "RecipientError",
    "TLSError",
    "TemplateError",
    "ThrottlingError",
    "TransientError",
    "UnknownOutcomeError",
    "WammError",
    "advice_for",
    "classify",
    "error_class_for",
    "error_title",
    "parse_error_envelope",
]


class WammError(Exception):
    """Base class of every error this provider raises on purpose."""

    #: The attributes that are the constructor's arguments, in order, for an error whose constructor
    #: takes other arguments than its message: pickling (Airflow sends errors between processes)
    #: rebuilds the error from them.
    _init_args: ClassVar[tuple[str, ...]] = ()

    def __reduce__(self) -> str | tuple[Any, ...]:
        if not self._init_args:
            return super().__reduce__()
        return (type(self), tuple(getattr(self, name) for name in self._init_args))


class ConfigurationError(WammError, ValueError):
    """A setting is missing or invalid (connection field, operator argument)."""


class InsecureTransportError(ConfigurationError):
    """Plain HTTP to a host that is not on the loopback interface was refused."""


class PayloadError(ConfigurationError):
    """A message payload (or one of its parts) is invalid; ``field`` says where, ``reason`` why."""

    _init_args = ("field", "reason")

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        #: Dotted path of the offending field, e.g. ``template.components[1].parameters[0].text``.
        self.field = field
        #: What is wrong with it and, where possible, how to fix it.
        self.reason = reason


class InvalidRecipientError(PayloadError):
    """The recipient (phone number or business-scoped user id) cannot receive a WhatsApp message."""


# --------------------------------------------------------------------------------------------
# Below HTTP
# --------------------------------------------------------------------------------------------


class GraphTransportError(WammError):
    """The request failed below HTTP (DNS, refused connection, TLS, reset)."""

    #: Whether sending the same request again is safe and may succeed.
    retry_safe = False

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        #: Whether the request may have reached Meta (``False``: it certainly did not).
        self.request_sent = request_sent


class ConnectError(GraphTransportError):
    """The connection could not be opened (refused, unknown host, connect timeout, proxy failure).

    Nothing of the request was written, so sending again cannot duplicate a message.
    """

    retry_safe = True

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=False)


class TLSError(GraphTransportError):
    """The TLS handshake failed (an untrusted certificate, a protocol mismatch): nothing was sent.

    Not retried: certificate and TLS setup problems do not fix themselves.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=False)


class InvalidRequestError(GraphTransportError):
    """The request could not be built (a body that is not JSON, a malformed URL): nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=False)


class NoAnswerError(GraphTransportError):
    """The request was (maybe) written but no usable answer came back (read timeout, dropped connection).

    Raised for reads, which are safe to send again; a send gets :class:`UnknownOutcomeError` instead.
    """

    retry_safe = True

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=True)


class UnknownOutcomeError(NoAnswerError):
    """A send went out but no usable answer came back (read timeout, connection dropped mid-response,
    a gateway's 502/504, a 200 without a message id).

    Meta may or may not have accepted the message. It is never retried automatically, since the
    Graph API has no idempotency key: the recipient is recorded as ``unknown``.
    """

    retry_safe = False


# --------------------------------------------------------------------------------------------
# Meta's answers
# --------------------------------------------------------------------------------------------

#: The attributes :meth:`GraphError.to_dict` keeps of an error, in this order.
_SUMMARY_FIELDS = (
    "code",
    "subcode",
    "title",
    "message",
    "details",
    "fbtrace_id",
    "is_transient",
    "http_status",
)


class GraphError(WammError):
    """An error answered by the Graph API (its JSON error envelope).

    Attributes mirror the envelope: ``code``, ``subcode``, ``message``, ``title`` (Meta's
    ``error_user_title`` or the table title), ``user_message``, ``details`` (``error_data.details``,
    the part that says what to fix), ``fbtrace_id`` (quote it to Meta support), ``is_transient`` and
    the HTTP status; ``retry_after`` is the answer's ``Retry-After`` in seconds, when it had one.
    """

    action: Action = Action.RECIPIENT

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str | None = None,
        title: str | None = None,
        user_message: str | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        is_transient: bool | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.title = title or error_title(code)
        self.user_message = user_message
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.is_transient = bool(is_transient)
        self.http_status = http_status
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [f"Graph API error {self.code}: {self.message}"]
        if self.details:
            parts.append(f"details: {self.details}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.fbtrace_id:
            parts.append(f"fbtrace_id {self.fbtrace_id}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"http_status={self.http_status!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary (for the ledger and logs)."""
        return {name: getattr(self, name) for name in _SUMMARY_FIELDS}


class TransientError(GraphError):
    """Meta had a temporary problem (codes 1, 2, 131000, 131016, 131057, 5xx): retry with backoff."""

    action = Action.RETRY


class ThrottlingError(GraphError):
    """A rate limit of the app, WABA or number (4, 17, 80007, 80008, 130429): slow down, then retry."""

    action = Action.THROTTLE


class PairRateLimitError(GraphError):
    """Too many messages to the same recipient too fast (131056): wait 4^X seconds for that one."""

    action = Action.PAIR_LIMIT


class RecipientError(GraphError):
    """Permanent for this message or recipient (100, 131026, 131049, 131050, ...): record and go on."""

    action = Action.RECIPIENT


class HaltError(GraphError):
    """The account, number, token or template is unusable: the campaign stops at once."""

    action = Action.HALT


class AuthenticationError(HaltError):
    """The access token is missing, expired or revoked (0, 190)."""

    def __str__(self) -> str:
        return (
            super().__str__() + " | The WhatsApp access token is invalid or expired. Use a system-user token "
            "that never expires (Meta Business Settings > System users > Generate token, with "
            "whatsapp_business_messaging and whatsapp_business_management) and put it in the connection's "
            "password field."
        )


class PermissionDeniedError(HaltError):
    """The token lacks a permission (10, 200-299)."""


class TemplateError(HaltError):
    """The template cannot be sent to anyone (missing, paused, disabled, not marketing, wrong parameters)."""


_ACTION_CLASSES: dict[Action, type[GraphError]] = {
    Action.RETRY: TransientError,
    Action.THROTTLE: ThrottlingError,
    Action.PAIR_LIMIT: PairRateLimitError,
    Action.RECIPIENT: RecipientError,
    Action.HALT: HaltError,
}


def error_class_for(
    code: int | None, *, http_status: int | None = None, is_transient: bool | None = None
) -> type[GraphError]:
    """The most specific :class:`GraphError` subclass for an error code."""
    if code in (0, 190, 102, 104):
        return AuthenticationError
    if code == 10 or (code is not None and 200 <= code <= 299):
        return PermissionDeniedError
    if code in TEMPLATE_HALT_CODES:
        return TemplateError
    return _ACTION_CLASSES[classify(code, http_status=http_status, is_transient=is_transient)]


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ErrorData(TypedDict, total=False):
    """``error.error_data`` of an error envelope."""

    messaging_product: str
    details: str


class ErrorBody(TypedDict, total=False):
    """``error`` of an error envelope."""

    message: str
    type: str
    code: int
    error_subcode: int
    error_user_title: str
    error_user_msg: str
    error_data: ErrorData
    fbtrace_id: str
    is_transient: bool


class ErrorEnvelope(TypedDict):
    """The JSON body of a Graph API error answer."""

    error: ErrorBody


def parse_error_envelope(
    body: ErrorEnvelope | Mapping[str, Any] | str | bytes | None, *, http_status: int | None = None
) -> GraphError:
    """Build a typed :class:`GraphError` from a Graph error body (:class:`ErrorEnvelope` as a ``dict``,
    JSON ``str`` or ``bytes``), checked field by field since it comes from the wire.

    A body that is not Meta's envelope (a proxy's HTML page, an empty 502) still gives a usable error,
    classified by its HTTP status.
    """
    data: Any = body
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            data = {}
    error = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(error, Mapping):
        text = body if isinstance(body, str) else ""
        snippet = " ".join(text.split())[:200] or "empty body"
        cls = error_class_for(None, http_status=http_status)
        return cls(f"HTTP {http_status} without a Graph error envelope ({snippet})", http_status=http_status)
    code = _as_int(error.get("code"))
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, Mapping) else None
    transient = error.get("is_transient")
    cls = error_class_for(code, http_status=http_status, is_transient=bool(transient))
    return cls(
        str(error.get("message") or error_title(code)),
        code=code,
        subcode=_as_int(error.get("error_subcode")),
        error_type=error.get("type"),
        title=error.get("error_user_title"),
        user_message=error.get("error_user_msg"),
        details=str(details) if details is not None else None,
        fbtrace_id=error.get("fbtrace_id"),
        is_transient=bool(transient) if transient is not None else None,
        http_status=http_status,
    )


def advice_for(error: GraphError) -> str:
    """What to fix after ``error`` halted a campaign, in one or two sentences (empty when the error's own
    message already says it, as an :class:`AuthenticationError` does, or when there is nothing to add)."""
    if isinstance(error, PermissionDeniedError):
        return PERMISSION_ADVICE
    if isinstance(error, TemplateError):
        return TEMPLATE_ADVICE
    if error.code is None or isinstance(error, AuthenticationError):
        return ""
    return HALT_ADVICE.get(error.code, "")
