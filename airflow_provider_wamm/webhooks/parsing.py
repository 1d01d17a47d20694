"""Parse Meta's ``whatsapp_business_account`` webhook bodies into ledger records, defensively.

The body comes from the internet: even with a valid signature (a leaked secret, a replay of an old
body, a future format change), every field may be missing or of the wrong type. Parsing never raises
for a body that has Meta's outer shape (an object with an ``entry`` list): an item that cannot be
understood is skipped and counted, and a well-formed item that is not for us (an inbound message, an
unknown status or action type, another webhook field) is ignored and counted. Only a body that is not
Meta's shape at all raises :class:`WebhookFormatError`.

What is read (Meta's "Status messages" and "Tracking click events" webhook references):

* ``entry[].changes[].value.statuses[]``: ``id`` (wamid), ``status`` (``sent``, ``delivered``,
  ``read``, ``failed``, ``played``), ``timestamp`` (unix seconds, usually a string),
  ``recipient_id``, ``recipient_user_id``, ``pricing.category`` (``marketing_lite`` or ``marketing``),
  ``pricing.pricing_model``, ``pricing.type``, ``pricing.cost.{amount, currency}`` and, for ``failed``,
  ``errors[].code/title/message/error_data.details``.
* ``entry[].changes[].value.messages[]`` of ``type: "system"`` (a changed number or user id) and
  ``contacts[]`` giving both ``wa_id`` and ``user_id``: the keys of one person
  (:mod:`~airflow_provider_wamm.webhooks.identities`).
* ``entry[].changes[].value.user_actions[]`` with ``action_type: marketing_messages_link_click``:
  ``timestamp`` and ``marketing_messages_link_click_data.{click_id, click_component, product_id,
  tracking_token}``.

This is the only place webhook objects become ledger records: the receiver uses
:func:`parse_webhook`, and code that holds one status or click object uses :func:`status_from_webhook`
or :func:`click_from_webhook` (the same parsing, raising instead of skipping).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from airflow_provider_wamm.campaign.callback import find_callback_key
from airflow_provider_wamm.campaign.ledger import ClickEvent, DeliveryStatus, SignalBatch, StatusUpdate
from airflow_provider_wamm.graph.errors import error_title
from airflow_provider_wamm.webhooks.identities import parse_identity_messages
from airflow_provider_wamm.webhooks.signals import SIGNAL_PARSERS
from airflow_provider_wamm.webhooks.values import amount, identifier, integer, mapping, text, timestamp

#: Delivery statuses the ledger stores; other status names are ignored.
KNOWN_STATUSES = frozenset(status.value for status in DeliveryStatus)
#: The user action that is a link click on a marketing message.
CLICK_ACTION = "marketing_messages_link_click"

_MAX_ID = 191  # the ledger's key columns
_MAX_RECIPIENT = 64
_MAX_CATEGORY = 40
_MAX_MODEL = 16
_MAX_COMPONENT = 32
_MAX_PRODUCT = 191
_MAX_TOKEN = 255
_MAX_TEXT = 2000


class WebhookCost(TypedDict, total=False):
    """``statuses[].pricing.cost``: an estimate in the currency's base unit ("Set a max price for
    marketing messages", ``…/whatsapp/marketing-messages/pricing``, Jun 26, 2026)."""

    amount: float | str
    """The amount (``0.0123`` is 0.0123 USD)."""
    currency: str
    """ISO 4217 code."""


class WebhookPricing(TypedDict, total=False):
    """``statuses[].pricing`` of a status webhook (the fields read)."""

    category: str
    """``marketing_lite`` (Marketing Messages API) or ``marketing`` (Cloud API)."""
    pricing_model: str
    """``PMP`` or ``CBP``."""
    type: str  # regular (billable), free_customer_service or free_entry_point (v24.0 and later)
    cost: WebhookCost
    """What Meta says the message costs (messages sent with a max price, on ``delivered``/``read``)."""


class WebhookErrorData(TypedDict, total=False):
    """``errors[].error_data`` of a failed status."""

    details: str
    """What went wrong, in words."""


class WebhookError(TypedDict, total=False):
    """One ``errors[]`` item of a failed status (the fields read)."""

    code: int | str
    """The Graph error code."""
    title: str
    """Meta's short title."""
    message: str
    """Meta's message (used when there are no details)."""
    error_data: WebhookErrorData
    """Details of the error."""


class WebhookStatus(TypedDict, total=False):
    """One ``value.statuses[]`` object of a ``messages`` webhook (the fields read)."""

    id: str
    """The wamid."""
    status: str
    """``sent``, ``delivered``, ``read``, ``failed`` or ``played``."""
    timestamp: str | int | float
    """Unix seconds (usually a string)."""
    recipient_id: str
    """The recipient's WhatsApp id (absent when the number cannot be shared)."""
    recipient_user_id: str
    """The recipient's business-scoped user id (since 2026-04)."""
    pricing: WebhookPricing
    """How the message is priced."""
    errors: list[WebhookError]
    """Why a ``failed`` status failed."""


class WebhookClickData(TypedDict, total=False):
    """``marketing_messages_link_click_data`` of a link click."""

    click_id: str
    """Meta's click id."""
    click_component: str
    """``cta`` or ``body``."""
    product_id: str
    """The catalogue product, if any."""
    tracking_token: str
    """Meta's tracking token."""


class WebhookClickAction(TypedDict, total=False):
    """One ``value.user_actions[]`` object of type ``marketing_messages_link_click`` (the fields read)."""

    action_type: str
    """``marketing_messages_link_click``."""
    timestamp: str | int | float
    """Unix seconds."""
    id: str
    """The clicked message's wamid, when Meta names it (``wamid`` is read too)."""
    wamid: str
    """The clicked message's wamid (alternative spelling)."""
    recipient_id: str
    """The clicking user, when Meta names it (``from`` is read too)."""
    marketing_messages_link_click_data: WebhookClickData
    """The click itself."""


class WebhookFormatError(ValueError):
    """The body is valid JSON but not a ``whatsapp_business_account`` webhook (no ``entry`` list)."""


@dataclass
class ParsedWebhook:
    """What one webhook body contained, ready for the ledger."""

    statuses: list[StatusUpdate] = field(default_factory=list)
    """Delivery statuses, in body order (duplicates kept: the ledger deduplicates)."""
    clicks: list[ClickEvent] = field(default_factory=list)
    """Link clicks on marketing messages."""
    skipped: int = 0
    """Items that could not be understood (wrong types, missing ids or timestamps) and were dropped."""
    ignored: int = 0
    """Well-formed items that are not for the ledger (inbound messages, other fields, other statuses)."""
    signals: SignalBatch = field(default_factory=SignalBatch)
    """Opt-outs, template and account signals (the other webhook fields, see
    :data:`airflow_provider_wamm.webhooks.signals.SIGNAL_PARSERS`)."""

    def counts(self) -> dict[str, int]:
        """``{"statuses": n, "clicks": n, "skipped": n, "ignored": n}`` (for the response and logs)."""
        return {
            "statuses": len(self.statuses),
            "clicks": len(self.clicks),
            "skipped": self.skipped,
            "ignored": self.ignored,
        }


# --- scalar readers: return None for anything unusable, never raise ------------------------------
# The shared ones are in :mod:`airflow_provider_wamm.webhooks.values`.


def _clipped(value: Any, limit: int) -> str | None:
    """A string as Meta sent it (not stripped), cut to ``limit`` characters (error titles and details)."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --- items ---------------------------------------------------------------------------------------


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def parse_status(obj: Any) -> StatusUpdate | None:
    """One ``statuses[]`` object -> :class:`StatusUpdate`; ``None`` when it is unusable.

    Raises :class:`LookupError` (``KeyError``) for a well-formed status whose name the ledger does not
    track, so callers can count it as ignored rather than broken.
    """
    if not isinstance(obj, Mapping):
        return None
    wamid = text(obj.get("id"), _MAX_ID)
    raw_status = obj.get("status")
    if wamid is None or not isinstance(raw_status, str):
        return None
    status = raw_status.strip().lower()
    when = timestamp(obj.get("timestamp"))
    if when is None:
        return None
    if status not in KNOWN_STATUSES:
        raise KeyError(status)
    pricing = mapping(obj.get("pricing"))
    category = text(pricing.get("category"), _MAX_CATEGORY)
    cost = mapping(pricing.get("cost"))
    cost_amount = amount(cost.get("amount"))
    code: int | None = None
    title: str | None = None
    details: str | None = None
    errors = obj.get("errors")
    if isinstance(errors, list):
        first = next((e for e in errors if isinstance(e, Mapping)), None)
        if first is not None:
            code = integer(first.get("code"))
            title = _clipped(first.get("title"), 255)
            error_data = mapping(first.get("error_data"))
            details = _clipped(error_data.get("details"), _MAX_TEXT) or _clipped(
                first.get("message"), _MAX_TEXT
            )
    if title is None and code is not None:
        title = error_title(code)
    return StatusUpdate(
        wamid=wamid,
        status=status,
        timestamp=when,
        recipient_id=text(obj.get("recipient_id"), _MAX_RECIPIENT),
        pricing_category=category.lower() if category else None,
        pricing_model=text(pricing.get("pricing_model"), _MAX_MODEL),
        pricing_type=_lower(text(pricing.get("type"), 32)),
        cost_amount=cost_amount,
        cost_currency=text(cost.get("currency"), 8) if cost_amount is not None else None,
        recipient_user_id=identifier(obj.get("recipient_user_id")),
        error_code=code,
        error_title=title,
        error_details=details,
        callback_key=find_callback_key(obj.get("biz_opaque_callback_data")),
    )


def parse_click(obj: Any) -> ClickEvent | None:
    """One ``user_actions[]`` object of type ``marketing_messages_link_click`` -> :class:`ClickEvent`.

    ``None`` when it is unusable; :class:`LookupError` (``KeyError``) for another action type.
    A click without ``click_id`` gets a stable id derived from its content, so a redelivered webhook
    is still counted once.
    """
    if not isinstance(obj, Mapping):
        return None
    action = obj.get("action_type")
    if not isinstance(action, str):
        return None
    if action.strip().lower() != CLICK_ACTION:
        raise KeyError(action)
    when = timestamp(obj.get("timestamp"))
    if when is None:
        return None
    data = mapping(obj.get("marketing_messages_link_click_data"))
    click_id = text(data.get("click_id"), _MAX_ID)
    if click_id is None:
        try:
            raw = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=True).encode()
        except (TypeError, ValueError, RecursionError):
            return None
        click_id = "h:" + hashlib.blake2b(raw, digest_size=16).hexdigest()
    component = text(data.get("click_component"), _MAX_COMPONENT)
    return ClickEvent(
        click_id=click_id,
        timestamp=when,
        wamid=text(obj.get("id"), _MAX_ID) or text(obj.get("wamid"), _MAX_ID),
        recipient=text(obj.get("from"), _MAX_RECIPIENT) or text(obj.get("recipient_id"), _MAX_RECIPIENT),
        click_component=component.lower() if component else None,
        product_id=text(data.get("product_id"), _MAX_PRODUCT),
        tracking_token=text(data.get("tracking_token"), _MAX_TOKEN),
    )


def status_from_webhook(status: WebhookStatus | Mapping[str, Any]) -> StatusUpdate:
    """One ``value.statuses[]`` object -> :class:`StatusUpdate`, raising where :func:`parse_status` skips.

    :raises ValueError: when the object has no usable ``id``, ``status`` or ``timestamp``.
    :raises KeyError: for a status name the ledger does not track.
    """
    update = parse_status(status)
    if update is None:
        raise ValueError(
            "invalid status object: it needs an 'id', a 'status' name and a 'timestamp' in unix seconds"
        )
    return update


def click_from_webhook(
    action: WebhookClickAction | Mapping[str, Any], *, wamid: str | None = None, recipient: str | None = None
) -> ClickEvent:
    """One link-click ``value.user_actions[]`` object -> :class:`ClickEvent`, raising where
    :func:`parse_click` skips.

    :param wamid: the clicked message, when the caller knows it better than the object.
    :param recipient: the clicking user, when the caller knows it better than the object.
    :raises ValueError: when the object has no ``action_type`` or no usable ``timestamp``.
    :raises KeyError: for another action type.
    """
    click = parse_click(action)
    if click is None:
        raise ValueError("invalid click object: it needs an 'action_type' and a 'timestamp' in unix seconds")
    return dataclasses.replace(click, wamid=wamid or click.wamid, recipient=recipient or click.recipient)


def _parse_items(items: Any, parse: Any, sink: list[Any], result: ParsedWebhook) -> None:
    if not isinstance(items, list):
        result.skipped += 1
        return
    for item in items:
        try:
            parsed = parse(item)
        except LookupError:
            result.ignored += 1
            continue
        except Exception:  # defensive: one hostile item never fails the batch
            parsed = None
        if parsed is None:
            result.skipped += 1
        else:
            sink.append(parsed)


def _parse_messages(value: Any, result: ParsedWebhook) -> None:
    """The ``messages`` field: statuses and link clicks (inbound messages are not ours)."""
    if not isinstance(value, Mapping):
        result.skipped += 1
        return
    known = False
    if "statuses" in value:
        known = True
        _parse_items(value["statuses"], parse_status, result.statuses, result)
    if "user_actions" in value:
        known = True
        _parse_items(value["user_actions"], parse_click, result.clicks, result)
    if "messages" in value or "contacts" in value:
        known = True  # system messages (a changed number or user id) and wa_id/user_id pairs
        tally = parse_identity_messages(value, result.signals)
        result.skipped += tally.skipped
        result.ignored += tally.ignored
    if not known:
        result.ignored += 1  # inbound messages and anything else on the messages field


def _parse_change(change: Any, entry: Mapping[str, Any], result: ParsedWebhook) -> None:
    """One ``entry[].changes[]`` item, routed by its ``field``."""
    if not isinstance(change, Mapping):
        result.skipped += 1
        return
    name = change.get("field")
    value = change.get("value")
    signal_parser = SIGNAL_PARSERS.get(name) if isinstance(name, str) else None
    if signal_parser is not None:
        tally = signal_parser(value, entry, result.signals)
        result.skipped += tally.skipped
        result.ignored += tally.ignored
    elif name is not None and name != "messages":
        result.ignored += 1  # a field the receiver does not read
    else:
        _parse_messages(value, result)


def parse_webhook(payload: Any) -> ParsedWebhook:
    """Parse a decoded webhook body.

    :param payload: the JSON-decoded body.
    :raises WebhookFormatError: when ``payload`` is not an object with an ``entry`` list.
    """
    if not isinstance(payload, Mapping):
        raise WebhookFormatError("the body is not a JSON object")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise WebhookFormatError("the body has no 'entry' list")
    result = ParsedWebhook()
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        if not isinstance(changes, list):
            result.skipped += 1
            continue
        for change in changes:
            _parse_change(change, entry, result)
    return result


__all__ = [
    "CLICK_ACTION",
    "KNOWN_STATUSES",
    "ParsedWebhook",
    "WebhookClickAction",
    "WebhookClickData",
    "WebhookError",
    "WebhookErrorData",
    "WebhookFormatError",
    "WebhookPricing",
    "WebhookStatus",
    "click_from_webhook",
    "parse_click",
    "parse_status",
    "parse_webhook",
    "status_from_webhook",
]
