"""Parse Meta's webhooks besides ``messages``: opt-outs, template lifecycle and account signals.

One parser per webhook ``field``, listed in :data:`SIGNAL_PARSERS`, which
:func:`~airflow_provider_wamm.webhooks.parsing.parse_webhook` uses to route each change. Like the
status parser, they never raise: an item that cannot be understood (missing or malformed ids, wrong
types, out-of-range values) is skipped and counted, and a well-formed item that is not for the ledger
(another preference category, an event name Meta does not document) is ignored and counted. An item
is either read whole or not at all, so no half row is ever stored.

What is read, from Meta's webhook references on developers.facebook.com
(``/documentation/business-messaging/whatsapp/webhooks/reference/<field>``):

* ``user_preferences`` (updated Jun 17, 2026; identifiers from "Business-scoped user IDs", Jun 29,
  2026): ``user_preferences[]`` with ``category: marketing_messages``, ``value`` ``stop`` or
  ``resume``, ``wa_id`` (may be omitted) or the business-scoped ``user_id``, ``timestamp`` (an integer).
* ``message_template_status_update`` (May 21, 2026): ``event``, ``message_template_id`` (an integer),
  ``message_template_name``, ``message_template_language``, ``reason``, ``message_template_category``,
  ``other_info``, ``rejection_info``, ``disable_info``; Meta's time is the entry's ``time``.
* ``message_template_quality_update`` (Jun 17, 2026): ``previous_quality_score``,
  ``new_quality_score`` and the template's id, name and language.
* ``template_category_update`` (Jun 17, 2026): ``new_category`` with ``correct_category`` (an
  announced change; ``new_category`` is still the current one) or ``previous_category`` (a completed
  change). "Route template messages by category" (Sep 21, 2026): route only on the completed one.
* ``account_update`` (May 21, 2026): ``event`` (``MM_LITE_TERMS_SIGNED``, ``ACCOUNT_RESTRICTION``...)
  with ``waba_info``, ``restriction_info``, ``violation_info``, ``ban_info``, ``volume_tier_info``.
* ``business_capability_update`` (May 21, 2026): ``max_daily_conversations_per_business``: the
  reference's table says a ``TIER_*`` string, its example an integer (``2000``); both are read.
* ``phone_number_quality_update`` (May 21, 2026): ``display_phone_number``, ``event``,
  ``max_daily_conversations_per_business`` (or the older ``current_limit`` / ``old_limit``).
* ``account_alerts`` (May 21, 2026): ``entity_type``, ``entity_id`` and ``alert_info``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple, TypeAlias, TypeVar

from airflow_provider_wamm.campaign.ledger import (
    AccountSignal,
    AccountSignalKind,
    PreferenceChange,
    PreferenceValue,
    SignalBatch,
    TemplateEvent,
    TemplateEventKind,
)
from airflow_provider_wamm.campaign.ledger.signal_records import CATEGORY_CHANGE_PENDING, CATEGORY_CHANGED
from airflow_provider_wamm.webhooks.signal_bodies import (
    ACCOUNT_EVENTS,
    MARKETING_PREFERENCE_CATEGORY,
    PHONE_NUMBER_EVENTS,
    QUALITY_SCORES,
    TEMPLATE_CATEGORIES,
    TEMPLATE_STATUS_EVENTS,
    TIER_BY_COUNT,
    AccountAlertValue,
    AccountUpdateValue,
    CapabilityValue,
    PhoneNumberQualityValue,
    TemplateCategoryValue,
    TemplateQualityValue,
    TemplateStatusValue,
    UserPreference,
    WebhookEntry,
)
from airflow_provider_wamm.webhooks.values import (
    clipped,
    digits,
    identifier,
    integer,
    mapping,
    picked,
    text,
    timestamp,
    token,
)

_NAME_MAX = 512
_LANGUAGE_MAX = 32
_DETAIL_MAX = 1000
_IGNORED: Final = "ignored"
_ItemT = TypeVar("_ItemT")
#: What reading one item gives: the record, ``"ignored"`` (well-formed, not for us) or ``None`` (skipped).
Read: TypeAlias = _ItemT | Literal["ignored"] | None


@dataclass
class ParseTally:
    """Items of one change that were skipped (not understood) or ignored (not for the ledger)."""

    skipped: int = 0
    ignored: int = 0

    def read_into(self, read: Callable[[], Read[_ItemT]], sink: list[_ItemT]) -> None:
        """Read one item and keep or count it; an unexpected error skips the item, never the body."""
        try:
            item = read()
        except Exception:  # defensive: one hostile item never fails the batch
            item = None
        self.collect(item, sink)

    def collect(self, item: Read[_ItemT], sink: list[_ItemT]) -> None:
        """Keep a read item, or count it."""
        if item is None:
            self.skipped += 1
        elif isinstance(item, str):  # records are never strings: this is "ignored"
            self.ignored += 1
        else:
            sink.append(item)


#: A parser of one ``field``: the change's ``value``, its entry and where records go -> the tally.
SignalParser = Callable[[Any, Mapping[str, Any], SignalBatch], ParseTally]


def entry_context(entry: WebhookEntry | Mapping[str, Any]) -> tuple[str | None, datetime | None]:
    """The WhatsApp Business Account id and Meta's time of an entry (``None`` when unusable)."""
    return digits(entry.get("id")), timestamp(entry.get("time"))


def messaging_limit_tier(value: Any) -> str | None:
    """A messaging limit as Meta's tier name: ``TIER_*`` strings as given, numbers of users mapped
    (``2000`` -> ``TIER_2K``, ``-1`` -> ``TIER_UNLIMITED``); ``None`` for anything else."""
    if isinstance(value, str) and value.strip().upper().startswith("TIER_"):
        return token(value)
    count = integer(value, -1, 10**9)
    return TIER_BY_COUNT.get(count) if count is not None else None


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- user_preferences ------------------------------------------------------------------------------


def read_preference(
    item: UserPreference | Mapping[str, Any] | Any,
    waba_id: str | None = None,
    entry_time: datetime | None = None,
) -> Read[PreferenceChange]:
    """One ``user_preferences[]`` item -> :class:`PreferenceChange` (keyed by ``wa_id``, else by the
    business-scoped ``user_id``); ``"ignored"`` for another category or value; ``None`` when unusable."""
    if not isinstance(item, Mapping):
        return None
    category = text(item.get("category"), 64)
    value = text(item.get("value"), 16)
    if category is None or value is None:
        return None
    if category.lower() != MARKETING_PREFERENCE_CATEGORY or value.lower() not in set(PreferenceValue):
        return _IGNORED
    wa_id = digits(item.get("wa_id"), 20)
    if wa_id is None and not _absent(item.get("wa_id")):
        return None  # a malformed phone number: do not guess who it was
    user_id = identifier(item.get("user_id"))
    recipient = wa_id or user_id
    when = timestamp(item.get("timestamp")) or entry_time
    if recipient is None or when is None:
        return None
    return PreferenceChange(
        recipient=recipient,
        value=PreferenceValue(value.lower()),
        timestamp=when,
        user_id=user_id,
        waba_id=waba_id,
        detail=clipped(item.get("detail"), 200),
    )


def parse_user_preferences(value: Any, entry: Mapping[str, Any], sink: SignalBatch) -> ParseTally:
    """A ``user_preferences`` change: every item of its list."""
    tally = ParseTally()
    items = mapping(value).get("user_preferences")
    if not isinstance(items, list):
        tally.skipped += 1
        return tally
    waba_id, entry_time = entry_context(entry)
    for item in items:
        tally.read_into(functools.partial(read_preference, item, waba_id, entry_time), sink.preferences)
    return tally


# --- template lifecycle ----------------------------------------------------------------------------


class _TemplateIds(NamedTuple):
    """The template a change is about, named as :class:`TemplateEvent` names it."""

    template_id: str | None
    template_name: str | None
    language: str | None


def _template_ids(value: Mapping[str, Any]) -> _TemplateIds | None:
    """(id, name, language) of the template a change is about; ``None`` when none is usable or one
    is given but malformed."""
    raw_id = value.get("message_template_id")
    template_id = digits(raw_id)
    name = text(value.get("message_template_name"), _NAME_MAX)
    language = identifier(value.get("message_template_language"))
    if language is not None and len(language) > _LANGUAGE_MAX:
        language = None
    if template_id is None and not _absent(raw_id):
        return None
    if template_id is None and name is None:
        return None
    return _TemplateIds(template_id, name, language)


def _joined(*parts: str | None) -> str | None:
    kept = [p for p in parts if p]
    return ": ".join(kept) if kept else None


def _template_event(
    kind: TemplateEventKind,
    event: str,
    ids: _TemplateIds,
    waba_id: str | None,
    event_at: datetime | None,
    **fields: Any,
) -> TemplateEvent:
    """A :class:`TemplateEvent` about the template ``ids`` names."""
    return TemplateEvent(
        kind=kind, event=event, waba_id=waba_id, event_at=event_at, **ids._asdict(), **fields
    )


#: What a template change's reader adds to its event: ``fields(value, event)``.
_TemplateFields = Callable[[Mapping[str, Any], str], dict[str, Any]]
#: A reader of one item: the item, the entry's WhatsApp Business Account id and Meta's time.
_TemplateReader = Callable[[Mapping[str, Any], str | None, datetime | None], Read[TemplateEvent]]


def _template_change(
    kind: TemplateEventKind, key: str, known: frozenset[str], fields: _TemplateFields
) -> _TemplateReader:
    """A reader of a template webhook naming its event in ``key``: ``"ignored"`` for an event not
    ``known``, ``None`` when the event is not a string or the template is not usable, else a ``kind``
    :class:`TemplateEvent` with ``fields(value, event)``."""

    def read(value: Mapping[str, Any], waba_id: str | None, event_at: datetime | None) -> Read[TemplateEvent]:
        raw = value.get(key)
        if not isinstance(raw, str):
            return None
        ids = _template_ids(value)
        if ids is None:
            return None
        event = token(raw, known)
        if event is None:
            return _IGNORED
        return _template_event(kind, event, ids, waba_id, event_at, **fields(value, event))

    return read


def _status_fields(value: TemplateStatusValue | Mapping[str, Any], _event: str) -> dict[str, Any]:
    """What a ``message_template_status_update`` adds: reason, category, detail and when it applies."""
    other = mapping(value.get("other_info"))
    rejection = mapping(value.get("rejection_info"))
    detail = _joined(clipped(other.get("title"), 64), clipped(other.get("description"), _DETAIL_MAX))
    detail = detail or _joined(
        clipped(rejection.get("reason"), _DETAIL_MAX), clipped(rejection.get("recommendation"), _DETAIL_MAX)
    )
    return {
        "reason": token(value.get("reason")),
        "category": token(value.get("message_template_category"), TEMPLATE_CATEGORIES),
        "detail": clipped(detail, _DETAIL_MAX),
        "effective_at": timestamp(mapping(value.get("disable_info")).get("disable_date")),
    }


def _quality_fields(value: TemplateQualityValue | Mapping[str, Any], score: str) -> dict[str, Any]:
    """What a ``message_template_quality_update`` adds: the new and the previous score."""
    return {"quality_score": score, "previous": token(value.get("previous_quality_score"), QUALITY_SCORES)}


#: A ``message_template_status_update`` value -> a status :class:`TemplateEvent`.
read_template_status = _template_change(
    TemplateEventKind.STATUS, "event", TEMPLATE_STATUS_EVENTS, _status_fields
)
#: A ``message_template_quality_update`` value -> a quality :class:`TemplateEvent`.
read_template_quality = _template_change(
    TemplateEventKind.QUALITY, "new_quality_score", QUALITY_SCORES, _quality_fields
)


def read_template_category(
    value: TemplateCategoryValue | Mapping[str, Any], waba_id: str | None, event_at: datetime | None
) -> Read[TemplateEvent]:
    """A ``template_category_update`` value -> a category :class:`TemplateEvent`, announced
    (``correct_category`` given) or completed."""
    new = token(value.get("new_category"), TEMPLATE_CATEGORIES)
    ids = _template_ids(value)
    if new is None or ids is None:
        return None
    correct_raw = value.get("correct_category")
    correct = token(correct_raw, TEMPLATE_CATEGORIES)
    if correct is None and not _absent(correct_raw):
        return None
    kind = TemplateEventKind.CATEGORY
    if correct is not None:
        effective = timestamp(value.get("category_update_timestamp"))
        return _template_event(
            kind,
            CATEGORY_CHANGE_PENDING,
            ids,
            waba_id,
            event_at,
            category=new,
            correct_category=correct,
            effective_at=effective,
        )
    previous = token(value.get("previous_category"), TEMPLATE_CATEGORIES)
    return _template_event(kind, CATEGORY_CHANGED, ids, waba_id, event_at, category=new, previous=previous)


def _one_item(
    read: Callable[[Mapping[str, Any], str | None, datetime | None], Read[_ItemT]],
    sink_of: Callable[[SignalBatch], list[_ItemT]],
) -> SignalParser:
    """A parser of a field whose ``value`` is one item, read by ``read`` into the list ``sink_of`` picks."""

    def parse(value: Any, entry: Mapping[str, Any], sink: SignalBatch) -> ParseTally:
        tally = ParseTally()
        if not isinstance(value, Mapping):
            tally.skipped += 1
            return tally
        waba_id, event_at = entry_context(entry)
        tally.read_into(lambda: read(value, waba_id, event_at), sink_of(sink))
        return tally

    return parse


def _template_events(batch: SignalBatch) -> list[TemplateEvent]:
    return batch.template_events


# --- account signals -------------------------------------------------------------------------------

_ACCOUNT_DETAIL_FIELDS: dict[str, tuple[str, ...]] = {
    "waba_info": ("waba_id", "owner_business_id", "ad_account_linked"),
    "violation_info": ("violation_type",),
    "ban_info": ("waba_ban_state", "waba_ban_date"),
    "volume_tier_info": ("tier_update_time", "pricing_category", "tier", "effective_month", "region"),
    "disconnection_info": ("reason", "initiated_by"),
}


def _account_details(value: Mapping[str, Any]) -> dict[str, Any]:
    """The sub-objects of an ``account_update`` worth keeping, as bounded scalars."""
    details: dict[str, Any] = {}
    for key, fields in _ACCOUNT_DETAIL_FIELDS.items():
        kept = picked(value.get(key), fields)
        if kept:
            details[key] = kept
    restrictions = value.get("restriction_info")
    if isinstance(restrictions, list):
        items = [picked(r, ("restriction_type", "expiration", "remediation")) for r in restrictions[:20]]
        if any(items):
            details["restriction_info"] = [i for i in items if i]
    country = token(value.get("country"))
    if country is not None:
        details["country"] = country
    return details


def read_account_update(
    value: AccountUpdateValue | Mapping[str, Any], waba_id: str | None, event_at: datetime | None
) -> Read[AccountSignal]:
    """An ``account_update`` value -> :class:`AccountSignal`."""
    raw_event = value.get("event")
    if not isinstance(raw_event, str):
        return None
    event = token(raw_event, ACCOUNT_EVENTS)
    if event is None:
        return _IGNORED
    return AccountSignal(
        kind=AccountSignalKind.ACCOUNT_UPDATE,
        waba_id=digits(mapping(value.get("waba_info")).get("waba_id")) or waba_id,
        event=event,
        event_at=event_at,
        details=_account_details(value),
    )


def read_capability_update(
    value: CapabilityValue | Mapping[str, Any], waba_id: str | None, event_at: datetime | None
) -> Read[AccountSignal]:
    """A ``business_capability_update`` value -> :class:`AccountSignal` with the messaging limit."""
    limit_raw = value.get("max_daily_conversations_per_business")
    limit = messaging_limit_tier(limit_raw)
    per_phone = integer(value.get("max_daily_conversation_per_phone"), -1, 10**9)
    numbers = integer(value.get("max_phone_numbers_per_waba"), 0, 10**6)
    if numbers is None:
        numbers = integer(value.get("max_phone_numbers_per_business"), 0, 10**6)
    if limit is None and per_phone is None and numbers is None:
        return None
    details: dict[str, Any] = {}
    if per_phone is not None:
        details["max_daily_conversation_per_phone"] = per_phone
    return AccountSignal(
        kind=AccountSignalKind.CAPABILITY_UPDATE,
        waba_id=waba_id,
        event_at=event_at,
        messaging_limit=limit,
        max_phone_numbers=numbers,
        details=details,
    )


def read_phone_number_quality(
    value: PhoneNumberQualityValue | Mapping[str, Any], waba_id: str | None, event_at: datetime | None
) -> Read[AccountSignal]:
    """A ``phone_number_quality_update`` value -> :class:`AccountSignal` for the number."""
    raw_event = value.get("event")
    number = digits(value.get("display_phone_number"), 20)
    if not isinstance(raw_event, str) or number is None:
        return None
    event = token(raw_event, PHONE_NUMBER_EVENTS)
    if event is None:
        return _IGNORED
    limit = messaging_limit_tier(value.get("max_daily_conversations_per_business"))
    return AccountSignal(
        kind=AccountSignalKind.PHONE_NUMBER_QUALITY,
        waba_id=waba_id,
        event=event,
        event_at=event_at,
        phone_number=number,
        messaging_limit=limit or messaging_limit_tier(value.get("current_limit")),
        previous_limit=messaging_limit_tier(value.get("old_limit")),
        details=picked(value, ("current_limit", "old_limit", "max_daily_conversations_per_business"), 32),
    )


def read_account_alert(
    value: AccountAlertValue | Mapping[str, Any], waba_id: str | None, event_at: datetime | None
) -> Read[AccountSignal]:
    """An ``account_alerts`` value -> :class:`AccountSignal` (``event`` is the ``alert_type``)."""
    info = mapping(value.get("alert_info"))
    alert_type = token(info.get("alert_type"))
    if alert_type is None:
        return None
    details: dict[str, Any] = picked(value, ("entity_type", "entity_id"), 64)
    details.update(picked(info, ("alert_severity", "alert_status", "alert_description"), 500))
    return AccountSignal(
        kind=AccountSignalKind.ACCOUNT_ALERT,
        waba_id=waba_id,
        event=alert_type,
        event_at=event_at,
        details=details,
    )


def _account_signals(batch: SignalBatch) -> list[AccountSignal]:
    return batch.account_signals


#: The parser of each webhook ``field`` besides ``messages``; any other field is ignored.
SIGNAL_PARSERS: dict[str, SignalParser] = {
    "user_preferences": parse_user_preferences,
    "message_template_status_update": _one_item(read_template_status, _template_events),
    "message_template_quality_update": _one_item(read_template_quality, _template_events),
    "template_category_update": _one_item(read_template_category, _template_events),
    "account_update": _one_item(read_account_update, _account_signals),
    "business_capability_update": _one_item(read_capability_update, _account_signals),
    "phone_number_quality_update": _one_item(read_phone_number_quality, _account_signals),
    "account_alerts": _one_item(read_account_alert, _account_signals),
}


__all__ = [
    "SIGNAL_PARSERS",
    "ParseTally",
    "Read",
    "SignalParser",
    "entry_context",
    "messaging_limit_tier",
    "parse_user_preferences",
    "read_account_alert",
    "read_account_update",
    "read_capability_update",
    "read_phone_number_quality",
    "read_preference",
    "read_template_category",
    "read_template_quality",
    "read_template_status",
]
