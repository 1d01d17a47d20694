"""Can this number send marketing messages now, and how many people may it reach today?

Read before a campaign's first send: the phone number's ``health_status`` (``can_send_message``:
``AVAILABLE``, ``LIMITED`` or ``BLOCKED``, with the entities and errors behind it), the business's
messaging limit (``whatsapp_business_manager_messaging_limit``; the deprecated ``messaging_limit_tier``
as a fallback) and the WABA's Marketing Messages onboarding status. Meta's messaging limit counts the
unique users a business portfolio reaches with business-initiated messages in a moving 24 hours; new
portfolios start at 250 ("Messaging limits", Meta).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

#: Fields of the phone number read for the account check.
HEALTH_PHONE_FIELDS: tuple[str, ...] = (
    "display_phone_number",
    "health_status",
    "whatsapp_business_manager_messaging_limit",
    "messaging_limit_tier",
)
#: ``can_send_message`` values.
CanSend = Literal["AVAILABLE", "LIMITED", "BLOCKED"]
#: The onboarding status that lets sends go through the Marketing Messages API.
ONBOARDED = "ONBOARDED"
#: Unique users per 24 hours of each messaging-limit tier (``None``: unlimited).
TIER_USERS: dict[str, int | None] = {
    "TIER_50": 50,
    "TIER_250": 250,
    "TIER_1K": 1000,
    "TIER_2K": 2000,
    "TIER_10K": 10_000,
    "TIER_100K": 100_000,
    "TIER_UNLIMITED": None,
}
#: What to do for each onboarding status that is not ONBOARDED.
ONBOARDING_HELP: dict[str, str] = {
    "ELIGIBLE": "accept the Marketing Messages API terms for this WhatsApp Business Account (Meta Business "
    "Suite / WhatsApp Manager shows the onboarding prompt)",
    "NOT_STARTED": "start Marketing Messages onboarding and accept the terms in WhatsApp Manager",
    "INELIGIBLE": "this account cannot use the Marketing Messages API yet; check its status in "
    "WhatsApp Manager",
    "INELIGIBLE_ON_BEHALF_OF_WABA": "a WABA shared on behalf of another business cannot onboard; onboard "
    "from the owning business",
    "INELIGIBLE_INACTIVE_OR_RESTRICTED": "the account is inactive or restricted; resolve that in WhatsApp "
    "Manager first",
    "INELIGIBLE_COUNTRY_NOT_SUPPORTED": "the business's country is not supported by the Marketing "
    "Messages API",
    "INELIGIBLE_USING_WHATSAPP_BUSINESS_APP": "numbers on the WhatsApp Business app cannot onboard; use a "
    "Cloud API number",
    "PENDING_VALID_PAYMENT_METHOD": "add a valid payment method to the WhatsApp Business Account",
    "PENDING_INTERNAL_SETUP": "Meta is still setting the account up; try again later",
}
#: Help for an onboarding status :data:`ONBOARDING_HELP` does not know.
ONBOARDING_DEFAULT_HELP = "complete Marketing Messages onboarding in WhatsApp Manager"
#: What happens to sends meanwhile.
FALLBACK_NOTE = (
    "until then sends fall back to the Cloud API (billed as regular marketing) or fail with "
    "product_policy=STRICT"
)
_CAN_SEND: dict[str, CanSend] = {"AVAILABLE": "AVAILABLE", "LIMITED": "LIMITED", "BLOCKED": "BLOCKED"}
_MAX_ERRORS = 5
_TEXT_MAX = 300


class HealthError(TypedDict, total=False):
    """One reason an entity cannot send (or only with limits)."""

    error_code: int
    error_description: str
    possible_solution: str


class HealthEntity(TypedDict, total=False):
    """One entity of ``health_status`` (phone number, WABA, business, app)."""

    entity_type: str
    id: str
    can_send_message: str
    errors: list[HealthError]


class HealthStatus(TypedDict, total=False):
    """``health_status`` of a phone number, WABA or template."""

    can_send_message: str
    entities: list[HealthEntity]


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """What the account check read."""

    can_send: CanSend | None = None
    """The aggregate ``can_send_message`` (``None``: not returned)."""
    problems: list[str] = field(default_factory=list)
    """Each entity that is not AVAILABLE, with Meta's description and possible solution."""
    tier: str | None = None
    """The messaging-limit tier (``TIER_250``...), if returned."""
    limit: int | None = None
    """Unique users per 24 hours (``None``: unlimited or unknown; see :attr:`limit_known`)."""
    limit_known: bool = False
    """Whether the limit was read (an unlimited tier is known and has ``limit`` ``None``)."""


def _text(value: Any) -> str | None:
    """A short printable string, or ``None``."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = " ".join(str(value).split())[:_TEXT_MAX]
        return text or None
    return None


def tier_users(value: Any) -> tuple[str | None, int | None, bool]:
    """``(tier, users, known)`` of a messaging-limit value: a tier name (``TIER_2K``), a number of users
    (``2000``; ``-1`` or ``UNLIMITED`` unlimited), or a dict with ``max_daily_conversations``; anything
    else is unknown."""
    if isinstance(value, dict):
        return tier_users(value.get("max_daily_conversations") or value.get("tier") or value.get("limit"))
    if isinstance(value, bool) or value is None:
        return None, None, False
    text = str(value).strip().upper()
    if text in TIER_USERS:
        return text, TIER_USERS[text], True
    if text in ("UNLIMITED", "-1"):
        return "TIER_UNLIMITED", None, True
    if re.fullmatch(r"[0-9]{1,12}", text):
        users = int(text)
        if users <= 0:
            return None, None, False
        named = {v: k for k, v in TIER_USERS.items() if v is not None}
        return named.get(users, f"USERS_{users}"), users, True
    return None, None, False


def health_problems(health: Any) -> tuple[CanSend | None, list[str]]:
    """The aggregate ``can_send_message`` and a line per entity that is not AVAILABLE."""
    if not isinstance(health, dict):
        return None, []
    can = (_text(health.get("can_send_message")) or "").upper()
    can_send = _CAN_SEND.get(can)
    problems: list[str] = []
    entities = health.get("entities")
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict) or str(entity.get("can_send_message", "")).upper() == "AVAILABLE":
            continue
        who = f"{_text(entity.get('entity_type')) or 'entity'} {_text(entity.get('id')) or ''}".strip()
        state = _text(entity.get("can_send_message")) or "unknown"
        errors = entity.get("errors")
        reasons = [_error_line(e) for e in (errors if isinstance(errors, list) else [])[:_MAX_ERRORS]]
        detail = "; ".join(r for r in reasons if r)
        problems.append(f"{who} is {state}" + (f": {detail}" if detail else ""))
    return can_send, problems


def _error_line(error: Any) -> str | None:
    """``code description (solution)`` of one health error."""
    if not isinstance(error, dict):
        return None
    parts = [f"error {_text(error.get('error_code'))}" if _text(error.get("error_code")) else None]
    parts.append(_text(error.get("error_description")))
    solution = _text(error.get("possible_solution"))
    parts.append(f"(what to do: {solution})" if solution else None)
    return " ".join(p for p in parts if p) or None


def account_health(phone_number: dict[str, Any]) -> AccountHealth:
    """What a phone-number read (:data:`HEALTH_PHONE_FIELDS`) says about sending."""
    can_send, problems = health_problems(phone_number.get("health_status"))
    tier, users, known = tier_users(phone_number.get("whatsapp_business_manager_messaging_limit"))
    if not known:  # the deprecated field, as a fallback
        tier, users, known = tier_users(phone_number.get("messaging_limit_tier"))
    return AccountHealth(can_send=can_send, problems=problems, tier=tier, limit=users, limit_known=known)


def onboarding_problem(waba: dict[str, Any], waba_id: str | None) -> str | None:
    """Why the WABA's sends would not go through the Marketing Messages API (``None``: onboarded, or
    the status was not returned)."""
    status = _text(waba.get("marketing_messages_onboarding_status")) or _text(
        waba.get("marketing_messages_lite_api_status")
    )
    if status is None or status.upper() == ONBOARDED:
        return None
    status = status.upper()
    advice = ONBOARDING_HELP.get(status, ONBOARDING_DEFAULT_HELP)
    return (
        f"WABA {waba_id} is not onboarded to the Marketing Messages API (status {status}): {advice}; "
        f"{FALLBACK_NOTE}."
    )


__all__ = [
    "FALLBACK_NOTE",
    "HEALTH_PHONE_FIELDS",
    "ONBOARDED",
    "ONBOARDING_DEFAULT_HELP",
    "ONBOARDING_HELP",
    "TIER_USERS",
    "AccountHealth",
    "CanSend",
    "HealthEntity",
    "HealthError",
    "HealthStatus",
    "account_health",
    "health_problems",
    "onboarding_problem",
    "tier_users",
]
