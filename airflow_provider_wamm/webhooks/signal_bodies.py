"""Meta's webhook bodies besides ``messages``: the shapes the signal parsers read, and documented values.

The shapes and values come from Meta's webhook references on developers.facebook.com
(``/documentation/business-messaging/whatsapp/webhooks/reference/<field>``): ``user_preferences``
(updated Jun 17, 2026), ``message_template_status_update`` (May 21, 2026),
``message_template_quality_update`` (Jun 17, 2026), ``template_category_update`` (Jun 17, 2026),
``account_update``, ``business_capability_update``, ``phone_number_quality_update`` and
``account_alerts`` (May 21, 2026). The parsers are in :mod:`~airflow_provider_wamm.webhooks.signals`.
"""

from __future__ import annotations

from typing import Any, TypedDict

#: The ``user_preferences`` category of marketing messages (the only one read).
MARKETING_PREFERENCE_CATEGORY = "marketing_messages"
#: Template status events Meta documents (``message_template_status_update``).
TEMPLATE_STATUS_EVENTS = frozenset(
    {
        "APPROVED",
        "ARCHIVED",
        "DELETED",
        "DISABLED",
        "FLAGGED",
        "IN_APPEAL",
        "LIMIT_EXCEEDED",
        "LOCKED",
        "PAUSED",
        "PENDING",
        "PENDING_DELETION",
        "REINSTATED",
        "REJECTED",
        "UNARCHIVED",
    }
)
#: Template quality scores.
QUALITY_SCORES = frozenset({"GREEN", "YELLOW", "RED", "UNKNOWN"})
#: Template categories.
TEMPLATE_CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})
#: ``account_update`` events Meta documents.
ACCOUNT_EVENTS = frozenset(
    {
        "ACCOUNT_DELETED",
        "ACCOUNT_OFFBOARDED",
        "ACCOUNT_RECONNECTED",
        "ACCOUNT_RESTRICTION",
        "ACCOUNT_VIOLATION",
        "AD_ACCOUNT_LINKED",
        "AUTH_INTL_PRICE_ELIGIBILITY_UPDATE",
        "BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE",
        "DISABLED_UPDATE",
        "MM_LITE_TERMS_SIGNED",
        "PARTNER_ADDED",
        "PARTNER_APP_INSTALLED",
        "PARTNER_APP_UNINSTALLED",
        "PARTNER_CLIENT_CERTIFICATION_STATUS_UPDATE",
        "PARTNER_REMOVED",
        "VOLUME_BASED_PRICING_TIER_UPDATE",
    }
)
#: ``phone_number_quality_update`` events: the current two and the older quality and limit ones.
PHONE_NUMBER_EVENTS = frozenset(
    {"ONBOARDING", "THROUGHPUT_UPGRADE", "FLAGGED", "UNFLAGGED", "UPGRADE", "DOWNGRADE"}
)
#: Messaging limits given as a number of users, by Meta's tier name (``-1``: unlimited).
TIER_BY_COUNT: dict[int, str] = {
    50: "TIER_50",
    250: "TIER_250",
    1000: "TIER_1K",
    2000: "TIER_2K",
    10000: "TIER_10K",
    100000: "TIER_100K",
    -1: "TIER_UNLIMITED",
}


class UserPreference(TypedDict, total=False):
    """One ``value.user_preferences[]`` item."""

    wa_id: str
    """The person's WhatsApp id (phone digits); omitted for some username users."""
    user_id: str
    """The business-scoped user id."""
    parent_user_id: str
    """The parent business-scoped user id, when enabled."""
    detail: str
    """``User requested to stop marketing messages`` (or ``resume``)."""
    category: str
    """``marketing_messages``."""
    value: str
    """``stop`` or ``resume``."""
    timestamp: int | str
    """Unix seconds (an integer)."""


class TemplateStatusValue(TypedDict, total=False):
    """``value`` of a ``message_template_status_update`` webhook."""

    event: str
    message_template_id: int | str
    message_template_name: str
    message_template_language: str
    reason: str | None
    message_template_category: str
    other_info: dict[str, str]
    rejection_info: dict[str, str]
    disable_info: dict[str, int | str]


class TemplateQualityValue(TypedDict, total=False):
    """``value`` of a ``message_template_quality_update`` webhook."""

    previous_quality_score: str
    new_quality_score: str
    message_template_id: int | str
    message_template_name: str
    message_template_language: str


class TemplateCategoryValue(TypedDict, total=False):
    """``value`` of a ``template_category_update`` webhook (announced or completed)."""

    message_template_id: int | str
    message_template_name: str
    message_template_language: str
    new_category: str
    correct_category: str
    previous_category: str
    category_update_timestamp: int


class AccountUpdateValue(TypedDict, total=False):
    """``value`` of an ``account_update`` webhook (the fields read)."""

    event: str
    waba_info: dict[str, str]
    restriction_info: list[dict[str, Any]]
    violation_info: dict[str, str]
    ban_info: dict[str, str]
    volume_tier_info: dict[str, Any]
    disconnection_info: dict[str, str]
    country: str


class CapabilityValue(TypedDict, total=False):
    """``value`` of a ``business_capability_update`` webhook."""

    max_daily_conversations_per_business: int | str
    max_daily_conversation_per_phone: int
    max_phone_numbers_per_business: int
    max_phone_numbers_per_waba: int


class PhoneNumberQualityValue(TypedDict, total=False):
    """``value`` of a ``phone_number_quality_update`` webhook."""

    display_phone_number: str
    event: str
    current_limit: str
    old_limit: str
    max_daily_conversations_per_business: str


class AccountAlertValue(TypedDict, total=False):
    """``value`` of an ``account_alerts`` webhook."""

    entity_type: str
    entity_id: str
    alert_info: dict[str, str]


class WebhookEntry(TypedDict, total=False):
    """One ``entry[]`` of a webhook body (the fields the signal parsers read)."""

    id: str
    """The WhatsApp Business Account id."""
    time: int
    """When Meta sent the change (unix seconds)."""
    changes: list[dict[str, Any]]
    """``{"field": ..., "value": ...}`` objects."""


__all__ = [
    "ACCOUNT_EVENTS",
    "MARKETING_PREFERENCE_CATEGORY",
    "PHONE_NUMBER_EVENTS",
    "QUALITY_SCORES",
    "TEMPLATE_CATEGORIES",
    "TEMPLATE_STATUS_EVENTS",
    "TIER_BY_COUNT",
    "AccountAlertValue",
    "AccountUpdateValue",
    "CapabilityValue",
    "PhoneNumberQualityValue",
    "TemplateCategoryValue",
    "TemplateQualityValue",
    "TemplateStatusValue",
    "UserPreference",
    "WebhookEntry",
]
