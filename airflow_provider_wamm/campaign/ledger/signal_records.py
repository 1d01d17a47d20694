"""Meta's signals besides delivery statuses, as the ledger stores and returns them.

Template lifecycle events (status, quality and category of a message template) and account signals
(account updates, the messaging limit, phone-number quality, account alerts) arrive as webhooks; the
receiver turns them into these records, the ledger keeps them as dated rows, and the queries of
:class:`~airflow_provider_wamm.campaign.ledger.facade.Ledger` return them. Opt-outs and opt-ins
(``user_preferences``) are :class:`~airflow_provider_wamm.campaign.ledger.records.PreferenceChange`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from airflow_provider_wamm.campaign.ledger.identities import IdentityLink
from airflow_provider_wamm.campaign.ledger.records import PreferenceChange


class TemplateEventKind(StrEnum):
    """Which template webhook an event came from (the ``kind`` column of ``template_events``)."""

    STATUS = "status"
    """``message_template_status_update``: approved, paused, disabled, rejected..."""
    QUALITY = "quality"
    """``message_template_quality_update``: the template's quality score changed."""
    CATEGORY = "category"
    """``template_category_update``: Meta changed (or will change) the template's category."""


#: ``event`` of a completed category change (``previous_category`` -> ``new_category``).
CATEGORY_CHANGED = "CATEGORY_CHANGED"
#: ``event`` of an announced category change (``correct_category`` applies in about 24 hours).
CATEGORY_CHANGE_PENDING = "CATEGORY_CHANGE_PENDING"


@dataclass(frozen=True, slots=True)
class TemplateEvent:
    """One event in a message template's life, as a template webhook reports it."""

    kind: TemplateEventKind
    """Which webhook field it came from."""
    event: str
    """Status events: Meta's ``event`` (``APPROVED``, ``PAUSED``, ``DISABLED``, ``REJECTED``...);
    quality events: the new score (``GREEN``, ``YELLOW``, ``RED``, ``UNKNOWN``); category events:
    :data:`CATEGORY_CHANGED` or :data:`CATEGORY_CHANGE_PENDING`."""
    waba_id: str | None = None
    """The WhatsApp Business Account."""
    template_id: str | None = None
    """Meta's template id (digits)."""
    template_name: str | None = None
    """The template's name."""
    language: str | None = None
    """The template's language code."""
    event_at: datetime | None = None
    """When it happened by Meta's clock (the entry's ``time``), if given."""
    reason: str | None = None
    """Status events: Meta's ``reason`` (``INVALID_FORMAT``, ``NONE``...)."""
    category: str | None = None
    """The category after the event: ``message_template_category`` of a status event, ``new_category``
    of a completed category change (a pending change keeps the current one here)."""
    previous: str | None = None
    """The category or quality score before a category or quality event."""
    correct_category: str | None = None
    """The category a pending category change will set."""
    quality_score: str | None = None
    """Quality events: the new score."""
    effective_at: datetime | None = None
    """When a pending category change applies, or when a disabled template was disabled."""
    detail: str | None = None
    """Meta's words: ``other_info`` (``FIRST_PAUSE``: ...) or ``rejection_info`` of a status event."""
    id: int | None = None
    """The stored row's id (order of arrival); ``None`` before it is stored."""
    received_at: datetime | None = None
    """When the receiver stored it; ``None`` before it is stored."""


@dataclass(frozen=True, slots=True)
class TemplateState:
    """What the stored events say about one template now (each part from its newest event by Meta's time)."""

    template_id: str | None
    """Meta's template id, if any event named it."""
    template_name: str | None
    """The template's name, if any event named it."""
    language: str | None
    """The language code, if any event named it."""
    waba_id: str | None
    """The WhatsApp Business Account of its newest event."""
    status: str | None = None
    """The newest status event (``APPROVED``, ``PAUSED``...), if any."""
    status_at: datetime | None = None
    """When that status was set (Meta's time, else when it was received)."""
    reason: str | None = None
    """Meta's reason for that status."""
    category: str | None = None
    """The current category: a completed category change, or the category a status event named."""
    category_at: datetime | None = None
    """When that category was reported."""
    pending_category: str | None = None
    """A category change Meta announced and has not completed yet (monitor it; do not route on it)."""
    pending_at: datetime | None = None
    """When Meta said the pending change applies."""
    quality_score: str | None = None
    """The newest quality score, if any."""
    quality_at: datetime | None = None
    """When that score was reported."""


class AccountSignalKind(StrEnum):
    """Which account webhook a signal came from (the ``kind`` column of ``account_signals``)."""

    ACCOUNT_UPDATE = "account_update"
    """The account changed: Marketing Messages terms signed, restricted, disabled, partner changes..."""
    CAPABILITY_UPDATE = "business_capability_update"
    """The portfolio's messaging limit or phone-number limit changed."""
    PHONE_NUMBER_QUALITY = "phone_number_quality_update"
    """A phone number's limit, throughput or quality flag changed."""
    ACCOUNT_ALERT = "account_alerts"
    """An alert about the account (for example a messaging-limit increase that was deferred)."""


@dataclass(frozen=True, slots=True)
class AccountSignal:
    """One account signal: an account update, a capability or phone-number change, or an alert."""

    kind: AccountSignalKind
    """Which webhook field it came from."""
    waba_id: str | None = None
    """The WhatsApp Business Account."""
    event: str | None = None
    """Meta's ``event`` (``MM_LITE_TERMS_SIGNED``, ``ACCOUNT_RESTRICTION``, ``THROUGHPUT_UPGRADE``,
    ``FLAGGED``...) or an alert's ``alert_type``; ``None`` for capability updates, which have none."""
    event_at: datetime | None = None
    """When it happened by Meta's clock (the entry's ``time``), if given."""
    phone_number: str | None = None
    """The phone number's digits as displayed (``phone_number_quality_update``)."""
    messaging_limit: str | None = None
    """The messaging limit it reports, as Meta's tier (``TIER_250``, ``TIER_2K``... ``TIER_UNLIMITED``)."""
    previous_limit: str | None = None
    """The limit before the change, when Meta says."""
    max_phone_numbers: int | None = None
    """How many phone numbers the account may register (capability updates)."""
    details: dict[str, Any] = field(default_factory=dict)
    """The other fields read (restrictions, ban state, alert text...), JSON-safe and size-limited."""
    id: int | None = None
    """The stored row's id (order of arrival); ``None`` before it is stored."""
    received_at: datetime | None = None
    """When the receiver stored it; ``None`` before it is stored."""


@dataclass
class SignalBatch:
    """Everything besides statuses and clicks that one webhook body carried, stored in one go."""

    preferences: list[PreferenceChange] = field(default_factory=list)
    """Stops and resumes of marketing messages."""
    template_events: list[TemplateEvent] = field(default_factory=list)
    """Template status, quality and category events."""
    account_signals: list[AccountSignal] = field(default_factory=list)
    """Account updates, capability and phone-number changes, alerts."""
    identities: list[IdentityLink] = field(default_factory=list)
    """Keys of one person (a changed number or user id, a ``wa_id`` beside a ``user_id``)."""

    def __bool__(self) -> bool:
        return bool(self.preferences or self.template_events or self.account_signals or self.identities)

    def counts(self) -> dict[str, int]:
        """``{"preferences": n, "template_events": n, "account_signals": n, "identities": n}``."""
        return {
            "preferences": len(self.preferences),
            "template_events": len(self.template_events),
            "account_signals": len(self.account_signals),
            "identities": len(self.identities),
        }


__all__ = [
    "CATEGORY_CHANGED",
    "CATEGORY_CHANGE_PENDING",
    "AccountSignal",
    "AccountSignalKind",
    "SignalBatch",
    "TemplateEvent",
    "TemplateEventKind",
    "TemplateState",
]
