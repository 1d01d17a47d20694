"""Graph API errors: the envelope parsed into typed exceptions, and what a sender should do about each.

Meta asks integrators to act on the numeric ``code`` (and ``error_data.details``), never on titles,
subcodes or HTTP status. :func:`classify` maps a code to an :class:`Action`; :func:`error_from_response`
turns an HTTP error response into the exception class of that action's family, in the spirit of
``httpx``'s typed errors and ``pywa``'s per-family classes.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any


class Action(enum.StrEnum):
    """What a bulk sender does when a request fails with a given error."""

    RETRY = "retry"
    """Transient: back off (exponential, with jitter) and send again."""
    THROTTLE = "throttle"
    """A rate limit of the app, account or number: slow the whole sender down, then send again."""
    PAIR_LIMIT = "pair_limit"
    """Too many messages to this one recipient: delay only this recipient (4^X seconds)."""
    RECIPIENT = "recipient"
    """Permanent for this message or recipient: record it and go on with the campaign."""
    HALT = "halt"
    """The token, account, number or template is broken: stop the campaign at once."""


#: Codes that are transient on Meta's side.
RETRY_CODES = frozenset({1, 2, 131000, 131016, 131057, 133004})
#: Rate limits: the sender as a whole must slow down.
THROTTLE_CODES = frozenset({4, 17, 341, 613, 80007, 80008, 130429, 133016})
#: Pair rate limit: one recipient got too many messages too fast.
PAIR_LIMIT_CODES = frozenset({131056})
#: The account, token, number or whole template is unusable: every further send would fail too.
HALT_CODES = frozenset(
    {0, 3, 10, 102, 104, 190, 368, 131005, 131031, 131037, 131042, 131045, 131048, 131055, 131063, 131064}
    | set(range(200, 300))
    | {133000, 133005, 133006, 133008, 133009, 133010, 133015}
    # Template-wide problems: the same template fails for everyone, so burning the list is pointless.
    | {132000, 132001, 132015, 132016, 134100, 134101}
)
#: Permanent for one message or recipient; the campaign goes on.
RECIPIENT_CODES = frozenset(
    {
        100,
        130472,
        130497,
        131008,
        131009,
        131021,
        131026,
        131030,
        131047,
        131049,
        131050,
        131051,
        131052,
        131053,
        131061,
        131062,
        132005,
        132007,
        132008,
        132012,
        132018,
        132068,
        132069,
        134102,
        134103,
        135000,
    }
)

#: The recipient asked not to receive marketing messages from this business: suppress them.
CODE_STOPPED_MARKETING = 131050
#: Meta's per-user marketing limit: do not try this recipient again for 24 hours.
CODE_PER_USER_LIMIT = 131049
#: Expired or invalid access token.
CODE_TOKEN_EXPIRED = 190

#: Meta's short titles, used in reports and log lines.
ERROR_TITLES: dict[int, str] = {
    0: "AuthException",
    1: "API Unknown",
    2: "API Service",
    3: "API Method",
    4: "API Too Many Calls",
    10: "Permission denied",
    17: "API User Too Many Calls",
    100: "Invalid parameter",
    102: "API Session",
    104: "Access token required",
    190: "Access token has expired",
    341: "Application limit reached",
    368: "Temporarily blocked for policies violations",
    613: "Calls within one hour have exceeded the rate",
    80007: "Rate limit issues",
    80008: "Business use case rate limit",
    130429: "Rate limit hit",
    130472: "User's number is part of an experiment",
    130497: "Business account is restricted from messaging users in this country",
    131000: "Something went wrong",
    131005: "Access denied",
    131008: "Required parameter is missing",
    131009: "Parameter value is not valid",
    131016: "Service unavailable",
    131021: "Recipient cannot be sender",
    131026: "Message undeliverable",
    131030: "Recipient phone number not in allowed list",
    131031: "Account has been locked",
    131037: "WhatsApp provided number needs display name approval",
    131042: "Business eligibility payment issue",
    131045: "Incorrect certificate",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "Meta chose not to deliver",
    131050: "User has stopped marketing messages",
    131051: "Unsupported message type",
    131052: "Media download error",
    131053: "Media upload error",
    131055: "Method not allowed",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131057: "Account in maintenance mode",
    131061: "Max price template sent to the wrong endpoint",
    131062: "Business-scoped user ID recipients not supported",
    131063: "Marketing templates disabled on Cloud API",
    131064: "Messaging limit reached (template classification)",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template does not exist",
    132005: "Template hydrated text too long",
    132007: "Template format character policy violated",
    132008: "Template parameter format mismatch",
    132012: "Template parameter format mismatch",
    132015: "Template is paused",
    132016: "Template is disabled",
    132018: "Template parameter issue",
    132068: "Flow is blocked",
    132069: "Flow is throttled",
    133000: "Incomplete deregistration",
    133004: "Server temporarily unavailable",
    133005: "Two step verification PIN mismatch",
    133006: "Phone number re-verification needed",
    133008: "Too many two step verification PIN guesses",
    133009: "Two step verification PIN guessed too fast",
    133010: "Phone number not registered",
    133015: "Please wait a few minutes before attempting to register this phone number",
    133016: "Account register/deregister rate limit exceeded",
    134100: "Only marketing templates can be sent with the Marketing Messages API",
    134101: "Template not yet ready for the Marketing Messages API",
    134102: "Marketing Messages API: template or user not eligible",
    134103: "Marketing Messages API error",
    135000: "Generic user error",
}


def classify(code: int | None, *, http_status: int | None = None, is_transient: bool | None = None) -> Action:
    """Return the :class:`Action` for a Graph error ``code``.

    Unknown codes fall back on what Meta's flags and the HTTP status suggest: ``is_transient`` or a
    5xx means retry, 429 throttle, 401/403 halt; anything else is treated as a permanent failure of
    that one message (the safe choice: it is recorded, never re-sent blindly).
    """
    if code is not None:
        if code in RETRY_CODES:
            return Action.RETRY
        if code in THROTTLE_CODES:
            return Action.THROTTLE
        if code in PAIR_LIMIT_CODES:
            return Action.PAIR_LIMIT
        if code in HALT_CODES:
            return Action.HALT
        if code in RECIPIENT_CODES:
            return Action.RECIPIENT
    if is_transient:
        return Action.RETRY
    if http_status is not None:
        if http_status >= 500:
            return Action.RETRY
        if http_status == 429:
            return Action.THROTTLE
        if http_status in (401, 403):
            return Action.HALT
    return Action.RECIPIENT


def error_title(code: int | None) -> str:
    """Meta's short title for ``code`` (``"Unknown error"`` when it is not in the table)."""
    if code is None:
        return "No error code"
    if code not in ERROR_TITLES and 200 <= code <= 299:
        return "API Permission"
    return ERROR_TITLES.get(code, "Unknown error")


class WammError(Exception):
    """Base class of every error this provider raises on purpose."""


class ConfigurationError(WammError, ValueError):
    """A setting is missing or invalid (connection field, operator argument)."""


class InsecureTransportError(ConfigurationError):
    """Plain HTTP to a host that is not on the loopback interface was refused."""


class GraphTransportError(WammError):
    """The request failed below HTTP (DNS, refused connection, TLS, reset)."""

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        #: Whether the request may have reached Meta (``False``: it certainly did not).
        self.request_sent = request_sent


class UnknownOutcomeError(GraphTransportError):
    """A send went out but no answer came back (read timeout, connection dropped mid-response).

    Meta may or may not have accepted the message. It is never retried automatically, since the
    Graph API has no idempotency key: the recipient is recorded as ``unknown``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=True)


class GraphError(WammError):
    """An error answered by the Graph API (its JSON error envelope).

    Attributes mirror the envelope: ``code``, ``subcode``, ``message``, ``title`` (Meta's
    ``error_user_title`` or the table title), ``user_message``, ``details`` (``error_data.details``,
    the part that says what to fix), ``fbtrace_id`` (quote it to Meta support), ``is_transient`` and
    the HTTP status.
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
        return {
            "code": self.code,
            "subcode": self.subcode,
            "title": self.title,
            "message": self.message,
            "details": self.details,
            "fbtrace_id": self.fbtrace_id,
            "is_transient": self.is_transient,
            "http_status": self.http_status,
        }


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


# 134101 (template not synced yet) is a plain halt, not a TemplateError: a retry ten minutes later works.
_TEMPLATE_HALT_CODES = frozenset({132000, 132001, 132015, 132016, 134100})
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
    if code in _TEMPLATE_HALT_CODES:
        return TemplateError
    return _ACTION_CLASSES[classify(code, http_status=http_status, is_transient=is_transient)]


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_error_envelope(body: Any, *, http_status: int | None = None) -> GraphError:
    """Build a typed :class:`GraphError` from a Graph error body (``dict``, JSON ``str`` or ``bytes``).

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
