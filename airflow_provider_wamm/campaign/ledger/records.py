"""What the ledger stores and returns: send, run and delivery states, the record types, time functions.

The state values are the strings the database holds, so they never change: :class:`SendState` is a
``StrEnum`` and each member compares equal to its string (``SendState.ACCEPTED == "accepted"``). The
module-level names (:data:`CLAIMED`, :data:`ACCEPTED`, ...) are the same members under their
historical names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, overload

from airflow_provider_wamm.graph.codes import PER_USER_PERMANENT_CODES
from airflow_provider_wamm.graph.errors import CODE_PER_USER_LIMIT, CODE_STOPPED_MARKETING

# --- states ------------------------------------------------------------------------------------


class SendState(StrEnum):
    """Where one recipient of a campaign stands (the ``state`` column of the ``sends`` table)."""

    CLAIMED = "claimed"
    """Claimed by a running attempt; the request is about to leave or is in flight."""
    ACCEPTED = "accepted"
    """Meta answered with ``message_status`` ``accepted``."""
    HELD = "held"
    """Meta answered ``held_for_quality_assessment`` (template or portfolio pacing)."""
    PAUSED = "paused"
    """Meta answered ``paused``."""
    FAILED = "failed"
    """Meta refused the message (the error code and details are kept)."""
    SKIPPED = "skipped"
    """Not sent, because suppressed or inside the frequency cap (re-checked on a later run)."""
    INVALID = "invalid"
    """Not sent: the row had no usable phone number or could not be personalised (re-checked later)."""
    UNKNOWN = "unknown"
    """The request went out but no answer came back, or a crashed attempt left it claimed."""


class RunState(StrEnum):
    """How an attempt of a campaign stands (the ``state`` column of the ``runs`` table)."""

    RUNNING = "running"
    """Started and not finished (alive while its heartbeat is recent)."""
    FINISHED = "finished"
    """Went through every recipient."""
    HALTED = "halted"
    """Stopped by an error that makes further sends pointless (its unsent claims were released)."""
    ERROR = "error"
    """Stopped by an unexpected error."""
    KILLED = "killed"
    """Stopped from outside (the task was killed); answers in flight were recorded, unsent claims released."""


class DeliveryStatus(StrEnum):
    """A delivery status reported by a status webhook (the ``status`` column of ``statuses``)."""

    SENT = "sent"
    """Meta sent the message to the recipient's phone."""
    DELIVERED = "delivered"
    """The phone received it."""
    READ = "read"
    """The recipient opened it."""
    PLAYED = "played"
    """A voice message was played (ranks above ``read``)."""
    FAILED = "failed"
    """Meta could not deliver it (terminal; the error is kept)."""


class SuppressionSource(StrEnum):
    """Where a change of a person's suppression came from (the ``source`` of an audit row)."""

    USER_PREFERENCES = "user_preferences"
    """A ``user_preferences`` webhook: the person stopped or resumed marketing messages."""
    STATUS_WEBHOOK = "status_webhook"
    """A failed status webhook (131050 stopped marketing, 131049 Meta's per-user limit)."""
    SEND_ERROR = "send_error"
    """Meta's answer to a send of a campaign (131050, 131049)."""
    MANUAL = "manual"
    """The business itself (:meth:`Ledger.add_suppressions` / :meth:`Ledger.remove_suppressions`)."""


class SuppressionAction(StrEnum):
    """What a signal did to a person's suppression (the ``action`` of an audit row)."""

    ADDED = "added"
    """A suppression was created, or its reason or end changed."""
    UNCHANGED = "unchanged"
    """Nothing changed: a suppression already covered it, or a resume found no stop to lift."""
    LIFTED = "lifted"
    """The suppression was removed."""
    STALE = "stale"
    """Not applied: Meta's time of the signal is older than the last stop or resume applied."""


class PreferenceValue(StrEnum):
    """A person's marketing preference in a ``user_preferences`` webhook (``value``)."""

    STOP = "stop"
    """Stopped marketing messages from the business."""
    RESUME = "resume"
    """Resumed them."""


CLAIMED = SendState.CLAIMED
ACCEPTED = SendState.ACCEPTED
HELD = SendState.HELD
PAUSED = SendState.PAUSED
FAILED = SendState.FAILED
SKIPPED = SendState.SKIPPED
INVALID = SendState.INVALID
UNKNOWN = SendState.UNKNOWN

#: Every send state.
SEND_STATES: tuple[SendState, ...] = tuple(SendState)
#: States in which Meta took the message (a frequency cap counts these).
DELIVERED_TO_META: tuple[SendState, ...] = (ACCEPTED, HELD, PAUSED)
#: States that say the campaign is done with a recipient (nothing in flight).
FINAL_STATES: tuple[SendState, ...] = (ACCEPTED, HELD, PAUSED, FAILED, SKIPPED, INVALID, UNKNOWN)

#: Delivery statuses from webhooks, by rank: a status only ever replaces one of lower rank.
STATUS_RANKS: dict[str, int] = {
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
    DeliveryStatus.PLAYED: 4,
    DeliveryStatus.FAILED: 10,
}
#: Delivery statuses after which nothing more is expected for the report.
SETTLED_STATUSES: tuple[DeliveryStatus, ...] = (
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
    DeliveryStatus.PLAYED,
    DeliveryStatus.FAILED,
)

#: Suppression reason of a user who stopped marketing messages (131050): for ever.
SUPPRESS_STOPPED_MARKETING = "stopped_marketing"
#: Suppression reason of Meta's per-user marketing limit (131049): for :data:`PER_USER_LIMIT_WAIT`.
SUPPRESS_PER_USER_LIMIT = "per_user_limit"
#: Suppression reason of an entry added by hand.
SUPPRESS_MANUAL = "manual"
#: Suppression reason of a per-user permanent code other than 131050 (130472 Meta's experiment, 137000
#: identity changed): resending fails the same way, for a long while.
SUPPRESS_PER_USER_PERMANENT = "per_user_permanent"
#: How long Meta's per-user marketing limit (131049) keeps a recipient out of later campaigns.
PER_USER_LIMIT_WAIT = timedelta(hours=24)
#: How long a per-user permanent code keeps a recipient out of later campaigns by default.
PER_USER_PERMANENT_WAIT = timedelta(days=90)


# --- time and text -----------------------------------------------------------------------------


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def naive_utc(value: datetime | None) -> datetime | None:
    """Aware or naive-UTC datetime -> naive UTC (what every backend stores the same way)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: Any) -> datetime | None: ...
def as_utc(value: Any) -> datetime | None:
    """A datetime read from the database (naive UTC, aware, or ISO text on SQLite) -> aware UTC.

    ``None`` for ``None`` and for anything that is not a datetime.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def clip(value: Any, limit: int) -> str | None:
    """``value`` as text of at most ``limit`` characters (cut with an ellipsis); ``None`` stays ``None``."""
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExistingSend:
    """What the ledger already knows about one recipient of a campaign."""

    state: SendState
    """The send state."""
    attempt_id: str
    """The attempt that wrote the row last."""
    not_before: datetime | None = None
    """Earliest time a failed send may be retried by a later run."""
    limited_tries: int = 0
    """Answers of Meta's per-user marketing limit (131049) this recipient got in the campaign."""
    limited_since: datetime | None = None
    """When the first of them came."""
    retry_after: datetime | None = None
    """When a retry after the last of them is due (``None``: none is planned)."""

    def reclaimable(self, now: datetime, *, resend_unknown: bool = False) -> bool:
        """Whether a new attempt may claim this recipient again.

        ``skipped`` and ``invalid`` rows never reached Meta and are re-evaluated; ``failed`` rows
        with a ``not_before`` that has passed (transient failures, Meta's 24 h per-user limit) are
        retried, and so are messages Meta took and then failed with its per-user limit once their
        ``retry_after`` has passed; ``unknown`` only when ``resend_unknown`` is set.
        """
        if self.state in (SKIPPED, INVALID):
            return True
        if self.state in DELIVERED_TO_META and self.retry_after is not None:  # 131049 by webhook
            return self.retry_after <= now
        if self.state == FAILED:
            return self.not_before is not None and self.not_before <= now
        return self.state == UNKNOWN and resend_unknown


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The outcome of one recipient, written by :meth:`Ledger.record_results` and friends."""

    recipient: str
    """Recipient key (E.164 digits, or ``!<row>`` for a row without a usable number)."""
    state: SendState
    """The new send state."""
    wamid: str | None = None
    """Meta's message id when the message was accepted."""
    message_status: str | None = None
    """Meta's ``message_status`` (``accepted``, ``held_for_quality_assessment``, ``paused``)."""
    error_code: int | None = None
    """Graph error code of a failure (or of the suppression that caused a skip)."""
    error_title: str | None = None
    """Meta's short title for the error."""
    error_details: str | None = None
    """What went wrong, in words (Meta's ``error_data.details`` or the reason a row was skipped)."""
    attempts: int = 0
    """Requests made for this recipient by this attempt."""
    not_before: datetime | None = None
    """Earliest time a later run may retry this recipient (failures worth retrying only)."""
    accepted_at: datetime | None = None
    """When Meta accepted the message (defaults to the recording time for accepted states)."""
    retry_after: datetime | None = None
    """After Meta's per-user limit (131049): when a retry is due (``None``: none, e.g. US numbers)."""
    wa_id: str | None = None
    """The ``contacts[].wa_id`` of Meta's answer (may differ from the number sent: Brazil, Mexico)."""
    user_id: str | None = None
    """The ``contacts[].user_id`` of Meta's answer (the business-scoped user id of a send by BSUID)."""


@dataclass(frozen=True, slots=True)
class Suppression:
    """A recipient later campaigns must skip, for ever (``until`` is ``None``) or until a time."""

    recipient: str
    """E.164 digits."""
    reason: str
    """Why (``stopped_marketing`` for 131050, ``per_user_limit`` for 131049, ``manual``...)."""
    error_code: int | None = None
    """The Graph error code that caused it, if any."""
    until: datetime | None = None
    """End of the suppression; ``None`` means for ever."""
    campaign_id: str | None = None
    """The campaign whose send revealed it."""
    event_at: datetime | None = None
    """When the signal happened by Meta's clock (``None``: when it is recorded)."""
    source: SuppressionSource | None = None
    """Where it came from; ``None`` derives it (see :func:`suppression_source`)."""


def suppression_source(entry: Suppression) -> SuppressionSource:
    """The source of a suppression: as given, else a send error when an error code and a campaign name
    it, a status webhook when only an error code does, and the business itself otherwise."""
    if entry.source is not None:
        return entry.source
    if entry.error_code is not None:
        return SuppressionSource.SEND_ERROR if entry.campaign_id else SuppressionSource.STATUS_WEBHOOK
    return SuppressionSource.MANUAL


def suppression_for_error(recipient: str, code: int | None, at: datetime) -> Suppression | None:
    """The suppression a failed status webhook's error code calls for: 131050 for ever, 131049 for a
    day, the other per-user permanent codes (130472, 137000) for :data:`PER_USER_PERMANENT_WAIT`; else
    none. ``at`` is the status's time."""
    webhook = SuppressionSource.STATUS_WEBHOOK
    if code == CODE_STOPPED_MARKETING:
        return Suppression(recipient, SUPPRESS_STOPPED_MARKETING, code, event_at=at, source=webhook)
    if code == CODE_PER_USER_LIMIT:
        until = at + PER_USER_LIMIT_WAIT
        return Suppression(recipient, SUPPRESS_PER_USER_LIMIT, code, until, event_at=at, source=webhook)
    if code in PER_USER_PERMANENT_CODES:
        until = at + PER_USER_PERMANENT_WAIT
        return Suppression(recipient, SUPPRESS_PER_USER_PERMANENT, code, until, event_at=at, source=webhook)
    return None


@dataclass(frozen=True, slots=True)
class PreferenceChange:
    """A person stopped or resumed marketing messages (one ``user_preferences[]`` item of a webhook)."""

    recipient: str
    """Who: the ``wa_id`` (digits), or the business-scoped user id when Meta gives no ``wa_id``."""
    value: PreferenceValue
    """``stop`` or ``resume``."""
    timestamp: datetime
    """When the person changed it, by Meta's clock (aware UTC)."""
    user_id: str | None = None
    """The business-scoped user id, when Meta gives it."""
    waba_id: str | None = None
    """The WhatsApp Business Account the webhook is for."""
    detail: str | None = None
    """Meta's ``detail`` text."""


@dataclass(frozen=True, slots=True)
class SuppressionChange:
    """One dated row of a person's suppression history: what changed, when, and which signal did it."""

    recipient: str
    """Whose suppression (E.164 digits, or a business-scoped user id)."""
    action: SuppressionAction
    """What the signal did."""
    reason: str
    """The suppression's reason (``stopped_marketing``, ``per_user_limit``, ``manual``...)."""
    source: SuppressionSource
    """Where the signal came from."""
    recorded_at: datetime
    """When the ledger recorded it (aware UTC)."""
    event_at: datetime | None = None
    """When the signal happened by Meta's clock (a webhook's timestamp), if known."""
    preference: PreferenceValue | None = None
    """``stop`` or ``resume`` for a ``user_preferences`` webhook."""
    error_code: int | None = None
    """The Graph error code of a failed send or status (131050, 131049)."""
    campaign_id: str | None = None
    """The campaign whose send revealed it."""
    until: datetime | None = None
    """End of the suppression the change left in force (``None``: for ever or none)."""
    user_id: str | None = None
    """The business-scoped user id, when known."""
    waba_id: str | None = None
    """The WhatsApp Business Account of a webhook signal."""
    detail: str | None = None
    """A short note (Meta's ``detail`` text, or why nothing changed)."""
    id: int | None = None
    """The row's id (order of recording); ``None`` before it is stored."""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One delivery status of a message, as a status webhook reports it.

    Built from a webhook body by :func:`airflow_provider_wamm.webhooks.parsing.parse_status`.
    """

    wamid: str
    """Meta's message id (``statuses[].id``)."""
    status: str
    """``sent``, ``delivered``, ``read``, ``failed`` (``played`` for voice): a :class:`DeliveryStatus`."""
    timestamp: datetime
    """When it happened (aware UTC)."""
    recipient_id: str | None = None
    """The recipient's WhatsApp id (digits)."""
    pricing_category: str | None = None
    """``marketing_lite`` (went through the Marketing Messages API) or ``marketing`` (Cloud API)."""
    pricing_model: str | None = None
    """``PMP`` (per-message pricing) or ``CBP``."""
    error_code: int | None = None
    """The error code of a ``failed`` status."""
    error_title: str | None = None
    """Meta's title of the error of a ``failed`` status."""
    error_details: str | None = None
    """The ``error_data.details`` (or message) of a ``failed`` status."""
    callback_key: str | None = None
    """The send's callback key found in ``biz_opaque_callback_data`` (:mod:`~..callback`), if any."""
    recipient_user_id: str | None = None
    """The recipient's business-scoped user id (``recipient_user_id``), when Meta gives it."""
    pricing_type: str | None = None
    """``pricing.type``: ``regular`` (billable), ``free_entry_point``, ``free_customer_service``."""
    cost_amount: float | None = None
    """``pricing.cost.amount``: what Meta says the message costs, in the currency's base unit (sent
    for messages with a max price)."""
    cost_currency: str | None = None
    """``pricing.cost.currency`` (``USD``...)."""


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """A link click on a marketing message (``user_actions[]`` of a ``messages`` webhook).

    Built from a webhook body by :func:`airflow_provider_wamm.webhooks.parsing.parse_click`.
    """

    click_id: str
    """Meta's click id (the deduplication key)."""
    timestamp: datetime
    """When the click happened (aware UTC)."""
    wamid: str | None = None
    """The clicked message, when known (joins the click to its campaign)."""
    recipient: str | None = None
    """The clicking user's digits, when known."""
    click_component: str | None = None
    """``cta`` or ``body``."""
    product_id: str | None = None
    """The catalogue product, if any."""
    tracking_token: str | None = None
    """Meta's tracking token."""


__all__ = [
    "ACCEPTED",
    "CLAIMED",
    "DELIVERED_TO_META",
    "FAILED",
    "FINAL_STATES",
    "HELD",
    "INVALID",
    "PAUSED",
    "PER_USER_LIMIT_WAIT",
    "PER_USER_PERMANENT_WAIT",
    "SEND_STATES",
    "SETTLED_STATUSES",
    "SKIPPED",
    "STATUS_RANKS",
    "SUPPRESS_MANUAL",
    "SUPPRESS_PER_USER_LIMIT",
    "SUPPRESS_PER_USER_PERMANENT",
    "SUPPRESS_STOPPED_MARKETING",
    "UNKNOWN",
    "ClickEvent",
    "DeliveryStatus",
    "ExistingSend",
    "PreferenceChange",
    "PreferenceValue",
    "RunState",
    "SendOutcome",
    "SendState",
    "StatusUpdate",
    "Suppression",
    "SuppressionAction",
    "SuppressionChange",
    "SuppressionSource",
    "as_utc",
    "clip",
    "naive_utc",
    "suppression_for_error",
    "suppression_source",
    "utcnow",
]
