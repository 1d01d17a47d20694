"""Meta's error codes: what each one means for a sender, its title, and what to do about the worst ones.

Meta asks integrators to act on the numeric ``code`` (and ``error_data.details``), never on titles,
subcodes or HTTP status. :func:`classify` maps a code to an :class:`Action`; the code sets below are
the table it reads, :data:`ERROR_TITLES` names the codes in reports and log lines, and
:data:`HALT_ADVICE` says what to fix when an account-level code stops a campaign. The exception
classes built from these codes live in :mod:`airflow_provider_wamm.graph.errors`.

Besides the action, some codes say something about the recipient or the template that outlasts one
campaign; that is kept as data here (:data:`PER_USER_PERMANENT_CODES`, :data:`TEMPLATE_SYNC_CODES`)
for the campaign engine to act on. Sources (Meta's pages, developers.facebook.com):

* "WhatsApp error codes" (``/documentation/business-messaging/whatsapp/support/error-codes``,
  Jun 18, 2026): act on ``code`` and ``error_data.details``, never on titles;
* 131009 on ``marketing_messages``: "Using Templates before syncing is complete may send the message
  without optimization or conversion tracking enabled, or may fail with error 131009"; the sync takes
  up to 10 minutes after a template is created, after onboarding, and on the first send of a
  template unused for 7 days ("Marketing Messages Lite API support",
  ``developers.secure.facebook.com/docs/whatsapp/marketing-messages-lite-api/support``; "Send
  Marketing Messages",
  ``/documentation/business-messaging/whatsapp/marketing-messages/send-marketing-messages``,
  May 21, 2026);
* 130472: the user is in Meta's marketing-message experiment; "Attempting to resend the message will
  result in the same error", with no end date and no opt-out ("Experiments",
  ``/documentation/business-messaging/whatsapp/support/experiments``, Jun 17, 2026);
* 131050: the user stopped marketing messages from the business, until they resume them
  ("Marketing templates", ``/documentation/business-messaging/whatsapp/templates/marketing-templates``,
  Jun 17, 2026);
* 137000: the message carried ``recipient_identity_key_hash`` and the user's identity changed: "assume
  the customer's phone number can no longer be trusted" (Business phone numbers, identity change
  check);
* 131062: a business-scoped user id as recipient of a template with a max price, or of an
  authentication template ("Business-scoped user IDs",
  ``/documentation/business-messaging/whatsapp/business-scoped-user-ids``, Jun 29, 2026);
* 131052 / 131053: media download / upload errors; 131053 names the unusable header media in
  ``error_data.details``;
* 134102 / 134103: Marketing Messages API codes listed since v23.0 ("MM API Changelog", May 20,
  2025) whose meaning Meta does not publish; their titles here are descriptive only.
"""

from __future__ import annotations

import enum

__all__ = [
    "CODE_PER_USER_LIMIT",
    "CODE_STOPPED_MARKETING",
    "CODE_TOKEN_EXPIRED",
    "ERROR_TITLES",
    "HALT_ADVICE",
    "HALT_CODES",
    "PAIR_LIMIT_CODES",
    "PERMISSION_ADVICE",
    "PER_USER_PERMANENT_CODES",
    "RECIPIENT_CODES",
    "RETRY_CODES",
    "TEMPLATE_ADVICE",
    "TEMPLATE_HALT_CODES",
    "TEMPLATE_SYNC_CODES",
    "TEMPLATE_SYNC_WAIT_S",
    "THROTTLE_CODES",
    "Action",
    "classify",
    "error_title",
]


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
        137000,
    }
)

#: The recipient asked not to receive marketing messages from this business: suppress them.
CODE_STOPPED_MARKETING = 131050
#: Meta's per-user marketing limit: do not try this recipient again for 24 hours.
CODE_PER_USER_LIMIT = 131049
#: Expired or invalid access token.
CODE_TOKEN_EXPIRED = 190

#: Codes that are final for the recipient, not just this message: resending the same marketing message
#: fails the same way until the user acts (130472: Meta's experiment holds the user out of marketing
#: messages, for now without an end; 131050: the user stopped marketing messages until they resume;
#: 137000: the user's identity changed and must be verified again). Sources in the module docstring.
PER_USER_PERMANENT_CODES = frozenset({130472, 131050, 137000})

#: Codes that may mean a template is not yet synced for the Marketing Messages API (131009 on
#: ``marketing_messages``, 134101): a send after :data:`TEMPLATE_SYNC_WAIT_S` may work.
TEMPLATE_SYNC_CODES = frozenset({131009, 134101})
#: How long Meta says a template's sync takes ("about 10 minutes"), in seconds.
TEMPLATE_SYNC_WAIT_S = 600

#: Template-wide halts: the template itself cannot be sent to anyone. 134101 (template not synced
#: yet) is not among them: it is a plain halt, since an Airflow retry ten minutes later works.
TEMPLATE_HALT_CODES = frozenset({132000, 132001, 132015, 132016, 134100})

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
    131009: "Parameter value is not valid (or the template is not synced yet: wait about 10 minutes)",
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
    137000: "Identity key hash mismatch",
}


#: What to do about the account-level codes that halt a campaign (token errors explain themselves in
#: their message; permission and template halts get :data:`PERMISSION_ADVICE` and
#: :data:`TEMPLATE_ADVICE`).
HALT_ADVICE: dict[int, str] = {
    131031: "The WhatsApp Business Account is locked: see Account quality in Meta Business Suite.",
    131042: "Meta reports a payment issue: add or fix the WhatsApp Business Account's payment method.",
    131048: "Meta limited this number for spam (low quality or many blocks): send less, to people "
    "who opted in, and retry later.",
    131063: "Marketing templates are disabled on Cloud API for this account; check WhatsApp Manager.",
    131064: "The number reached its messaging limit: wait for the limit to reset or raise the tier.",
    133010: "The phone number is not registered with Cloud API: register it first.",
    368: "The account is temporarily blocked for policy violations: see Account quality in Meta "
    "Business Suite.",
}
#: What to do when the token lacks a permission (10, 200-299).
PERMISSION_ADVICE = (
    "The access token may not send from this phone number: give the system user access to the "
    "WhatsApp account that owns it and the whatsapp_business_messaging permission."
)
#: What to do when the template cannot be sent to anyone (:data:`TEMPLATE_HALT_CODES`).
TEMPLATE_ADVICE = (
    "The template cannot be sent to anyone: check its status, category (MARKETING), language and "
    "parameters in WhatsApp Manager > Message templates."
)


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
