"""The ``value`` of each signal webhook the sandbox sends, shaped like Meta's examples.

Read independently from Meta's webhook references (developers.facebook.com,
``/documentation/business-messaging/whatsapp/webhooks/reference/<field>``): ``user_preferences``
(Jun 17, 2026), ``message_template_status_update`` (May 21, 2026),
``message_template_quality_update`` and ``template_category_update`` (Jun 17, 2026),
``account_update``, ``business_capability_update`` and ``phone_number_quality_update`` (May 21,
2026). The capability update carries the limit as a number of users, as Meta's example does; the
phone-number update as a ``TIER_*`` name, as its example does, so a receiver sees both forms.
"""

from __future__ import annotations

import hashlib
from typing import Any

from airflow_provider_wamm.sandbox.config import MESSAGING_TIERS, SandboxConfig
from airflow_provider_wamm.sandbox.templates import SandboxTemplate

#: Users a messaging limit allows per 24 hours, as ``business_capability_update`` writes it.
USERS_BY_TIER: dict[str, int] = {
    "TIER_50": 50,
    "TIER_250": 250,
    "TIER_1K": 1000,
    "TIER_2K": 2000,
    "TIER_10K": 10000,
    "TIER_100K": 100000,
    "TIER_UNLIMITED": -1,
}
#: Phone-number limit in a capability update (Meta's example).
MAX_PHONE_NUMBERS = 25
#: ``other_info`` of the template status events the sandbox sends.
_OTHER_INFO: dict[str, dict[str, str]] = {
    "PAUSED": {"title": "FIRST_PAUSE", "description": "Your template was paused because of low quality."},
    "UNPAUSE": {"title": "UNPAUSE", "description": "Your template is no longer paused."},
    "DISABLED": {"title": "DISABLED", "description": "Your template was disabled because of low quality."},
}


def _metadata(config: SandboxConfig) -> dict[str, str]:
    return {
        "display_phone_number": display_digits(config),
        "phone_number_id": config.phone_number_id,
    }


def display_digits(config: SandboxConfig) -> str:
    """The number's digits as webhooks show it (``+1 555-010-0001`` -> ``15550100001``)."""
    return "".join(ch for ch in config.display_phone_number if ch.isdigit())


def sandbox_user_id(recipient: str) -> str:
    """The business-scoped user id the sandbox gives a recipient: the BSUID itself for a send by BSUID,
    else a stable one made from the number (``ZZ.`` and 20 digits)."""
    if not recipient.isdigit():
        return recipient
    digest = hashlib.blake2b(recipient.encode(), digest_size=16, person=b"wamm-sandbox-uid").digest()
    return "ZZ." + str(int.from_bytes(digest, "big"))[:20]


def user_preferences_value(config: SandboxConfig, recipient: str, preference: str, at: int) -> dict[str, Any]:
    """A ``user_preferences`` value: ``recipient`` (digits, or a business-scoped user id) chose
    ``stop`` or ``resume`` at unix time ``at``; a number comes with its user id, as Meta sends both
    since April 2026."""
    who = (
        {"wa_id": recipient, "user_id": sandbox_user_id(recipient)}
        if recipient.isdigit()
        else {"user_id": recipient}
    )
    item = {
        **who,
        "detail": f"User requested to {preference} marketing messages",
        "category": "marketing_messages",
        "value": preference,
        "timestamp": at,
    }
    return {
        "messaging_product": "whatsapp",
        "metadata": _metadata(config),
        "contacts": [{"profile": {"name": "Sandbox User"}, **who}],
        "user_preferences": [item],
    }


def template_status_value(template: SandboxTemplate, event: str, previous: str, at: int) -> dict[str, Any]:
    """A ``message_template_status_update`` value: ``template`` went from ``previous`` to ``event``."""
    value: dict[str, Any] = {
        "event": event,
        "message_template_id": int(template.id or 0),
        "message_template_name": template.name,
        "message_template_language": template.language,
        "reason": "NONE",
        "message_template_category": template.category,
    }
    info = "UNPAUSE" if event == "APPROVED" and previous == "PAUSED" else event
    if info in _OTHER_INFO:
        value["other_info"] = dict(_OTHER_INFO[info])
    if event == "DISABLED":
        value["disable_info"] = {"disable_date": at}
    return value


def template_quality_value(template: SandboxTemplate, previous: str, new: str) -> dict[str, Any]:
    """A ``message_template_quality_update`` value."""
    return {
        "previous_quality_score": previous,
        "new_quality_score": new,
        "message_template_id": int(template.id or 0),
        "message_template_name": template.name,
        "message_template_language": template.language,
    }


def template_category_value(template: SandboxTemplate, previous: str, new: str) -> dict[str, Any]:
    """A completed ``template_category_update`` value (``previous_category`` -> ``new_category``)."""
    return {
        "message_template_id": int(template.id or 0),
        "message_template_name": template.name,
        "message_template_language": template.language,
        "previous_category": previous,
        "new_category": new,
    }


def account_update_value(config: SandboxConfig, event: str, at: int) -> dict[str, Any]:
    """An ``account_update`` value for ``event`` (a restriction carries one for business-initiated
    messages, a day long)."""
    value: dict[str, Any] = {"event": event}
    if event == "MM_LITE_TERMS_SIGNED":
        value["waba_info"] = {"waba_id": config.waba_id, "owner_business_id": config.app_id}
    elif event == "ACCOUNT_RESTRICTION":
        value["restriction_info"] = [
            {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": at + 86400}
        ]
    return value


def capability_value(tier: str) -> dict[str, Any]:
    """A ``business_capability_update`` value for a new messaging limit."""
    return {
        "max_daily_conversations_per_business": USERS_BY_TIER[tier],
        "max_phone_numbers_per_waba": MAX_PHONE_NUMBERS,
    }


def limit_event(previous: str, new: str) -> str:
    """``UPGRADE`` or ``DOWNGRADE`` between two tiers (an unknown previous tier counts as lower)."""
    old_rank = MESSAGING_TIERS.index(previous) if previous in MESSAGING_TIERS else -1
    return "DOWNGRADE" if MESSAGING_TIERS.index(new) < old_rank else "UPGRADE"


def phone_quality_value(
    config: SandboxConfig, event: str, previous_tier: str | None = None
) -> dict[str, Any]:
    """A ``phone_number_quality_update`` value for the sandbox's number (its limit as in ``config``)."""
    value: dict[str, Any] = {
        "display_phone_number": display_digits(config),
        "event": event,
        "max_daily_conversations_per_business": config.messaging_limit,
    }
    if previous_tier is not None:
        value["old_limit"] = previous_tier
    return value


__all__ = [
    "MAX_PHONE_NUMBERS",
    "USERS_BY_TIER",
    "account_update_value",
    "capability_value",
    "display_digits",
    "limit_event",
    "phone_quality_value",
    "template_category_value",
    "template_quality_value",
    "template_status_value",
    "user_preferences_value",
]
