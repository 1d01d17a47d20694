"""Meta's example bodies of the signal webhooks, as its webhook references print them.

Sources (developers.facebook.com, ``/documentation/business-messaging/whatsapp/webhooks/reference/``):
``user_preferences`` (Jun 17, 2026, identifiers from "Business-scoped user IDs", Jun 29, 2026),
``message_template_status_update`` (May 21, 2026), ``message_template_quality_update`` and
``template_category_update`` (Jun 17, 2026), ``account_update``, ``business_capability_update``,
``phone_number_quality_update`` and ``account_alerts`` (May 21, 2026). Placeholders are filled with
plausible values.
"""

from __future__ import annotations

import copy
from typing import Any

WABA = "102290129340398"


def envelope(field: str, value: Any, *, waba: str = WABA, time: int | None = 1751247548) -> dict[str, Any]:
    """A whole ``whatsapp_business_account`` body with one change."""
    entry: dict[str, Any] = {"id": waba, "changes": [{"value": value, "field": field}]}
    if time is not None:
        entry["time"] = time
    return {"object": "whatsapp_business_account", "entry": [entry]}


def user_preferences(
    value: str = "stop",
    *,
    wa_id: str | None = "16505551234",
    user_id: str | None = "US.13491208655302741918",
    timestamp: Any = 1731705721,
) -> dict[str, Any]:
    """A ``user_preferences`` body (Meta's example, with the business-scoped ids)."""
    item: dict[str, Any] = {
        "detail": f"User requested to {value} marketing messages",
        "category": "marketing_messages",
        "value": value,
        "timestamp": timestamp,
    }
    contact: dict[str, Any] = {"profile": {"name": "Sheena Nelson"}}
    if wa_id is not None:
        item["wa_id"] = contact["wa_id"] = wa_id
    if user_id is not None:
        item["user_id"] = contact["user_id"] = user_id
    body = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [contact],
        "user_preferences": [item],
    }
    return envelope("user_preferences", body, time=None)


TEMPLATE_STATUS: dict[str, Any] = {
    "event": "REJECTED",
    "message_template_id": 1689556908129835,
    "message_template_name": "abandoned_cart",
    "message_template_language": "en",
    "reason": "INVALID_FORMAT",
    "message_template_category": "MARKETING",
    "rejection_info": {"reason": "The template has formatting issues.", "recommendation": "Fix them."},
}

TEMPLATE_PAUSED: dict[str, Any] = {
    "event": "PAUSED",
    "message_template_id": 1689556908129835,
    "message_template_name": "abandoned_cart",
    "message_template_language": "en",
    "reason": "NONE",
    "message_template_category": "MARKETING",
    "other_info": {"title": "FIRST_PAUSE", "description": "Paused for 3 hours for low quality."},
}

TEMPLATE_QUALITY: dict[str, Any] = {
    "previous_quality_score": "GREEN",
    "new_quality_score": "YELLOW",
    "message_template_id": 806312974732579,
    "message_template_name": "welcome_template",
    "message_template_language": "en-US",
}

CATEGORY_PENDING: dict[str, Any] = {
    "message_template_id": 278077987957091,
    "message_template_name": "welcome_template",
    "message_template_language": "en-US",
    "new_category": "UTILITY",
    "correct_category": "MARKETING",
    "category_update_timestamp": 1746169200,
}

CATEGORY_DONE: dict[str, Any] = {
    "message_template_id": 278077987957091,
    "message_template_name": "welcome_template",
    "message_template_language": "en-US",
    "previous_category": "UTILITY",
    "new_category": "MARKETING",
}

ACCOUNT_UPDATE: dict[str, Any] = {
    "event": "MM_LITE_TERMS_SIGNED",
    "waba_info": {"owner_business_id": "2329417887457253", "waba_id": "980198427658004"},
}

ACCOUNT_RESTRICTION: dict[str, Any] = {
    "event": "ACCOUNT_RESTRICTION",
    "restriction_info": [
        {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1767225600}
    ],
}

CAPABILITY_INT: dict[str, Any] = {
    "max_daily_conversations_per_business": 2000,
    "max_phone_numbers_per_waba": 25,
}
CAPABILITY_TIER: dict[str, Any] = {"max_daily_conversations_per_business": "TIER_10K"}

PHONE_QUALITY: dict[str, Any] = {
    "display_phone_number": "15550783881",
    "event": "THROUGHPUT_UPGRADE",
    "current_limit": "TIER_UNLIMITED",
    "max_daily_conversations_per_business": "TIER_2K",
}

ACCOUNT_ALERT: dict[str, Any] = {
    "entity_type": "BUSINESS",
    "entity_id": "506914307656634",
    "alert_info": {
        "alert_severity": "WARNING",
        "alert_status": "ACTIVE",
        "alert_type": "INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED",
        "alert_description": "Your messaging limit increase was deferred.",
    },
}

#: Every signal field with one of Meta's example values.
EXAMPLES: dict[str, dict[str, Any]] = {
    "message_template_status_update": TEMPLATE_STATUS,
    "message_template_quality_update": TEMPLATE_QUALITY,
    "template_category_update": CATEGORY_DONE,
    "account_update": ACCOUNT_UPDATE,
    "business_capability_update": CAPABILITY_INT,
    "phone_number_quality_update": PHONE_QUALITY,
    "account_alerts": ACCOUNT_ALERT,
}


def example(field: str, **changes: Any) -> dict[str, Any]:
    """Meta's example body of ``field``, with ``changes`` applied to its value (``None`` deletes a key)."""
    value = copy.deepcopy(EXAMPLES[field])
    for key, item in changes.items():
        if item is None:
            value.pop(key, None)
        else:
            value[key] = item
    return envelope(field, value)
