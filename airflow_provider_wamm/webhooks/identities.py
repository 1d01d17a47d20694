"""Keys of one person named by webhooks: system messages (a changed number or user id) and the
``wa_id`` / ``user_id`` pairs of ``contacts[]``.

Meta reports a changed phone number or business-scoped user id (BSUID) as a system message on the
``messages`` field ("System messages webhook reference",
``developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/system``,
Aug 11, 2026; "WhatsApp changelog", Aug 11, 2026): ``messages[]`` with ``type: "system"``, ``from``
(the number before the change) and ``system.type``:

* ``user_changed_number``: the new number (``system.wa_id``), the new ``system.user_id`` and the
  ``system.previous_user_id`` (a number change also makes a new BSUID);
* ``user_changed_user_id``: only the BSUID changed (``system.user_id``, ``system.previous_user_id``),
  no number is shared.

Both link the old and the new keys to one person in the ledger
(:mod:`~airflow_provider_wamm.campaign.ledger.identities`), so a stop recorded under the old key keeps
the person out of later campaigns under the new one. ``contacts[]`` entries that give both ``wa_id`` and
``user_id`` (statuses and ``user_preferences`` carry them since 2026-04, "Business-scoped user IDs", Jun
29, 2026) are linked the same way. Parsing never raises; an unusable item is counted as skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from airflow_provider_wamm.campaign.ledger import IdentityLink, IdentitySource, SignalBatch
from airflow_provider_wamm.campaign.ledger.identities import links_of
from airflow_provider_wamm.webhooks.signals import ParseTally
from airflow_provider_wamm.webhooks.values import digits, identifier, mapping, timestamp

#: ``system.type`` of the system messages read, and the link source each gives.
SYSTEM_TYPES: dict[str, IdentitySource] = {
    "user_changed_number": IdentitySource.CHANGED_NUMBER,
    "user_changed_user_id": IdentitySource.CHANGED_USER_ID,
}


class WebhookSystem(TypedDict, total=False):
    """``messages[].system`` of a system message (the fields read)."""

    body: str
    """Meta's sentence ("User A changed from X to Y")."""
    type: str  # user_changed_number or user_changed_user_id
    wa_id: str
    """The new phone number (``user_changed_number``)."""
    user_id: str
    """The new business-scoped user id."""
    previous_user_id: str
    """The business-scoped user id before the change."""


def read_system_message(obj: Any) -> list[IdentityLink] | None:
    """One ``messages[]`` object of ``type: "system"`` -> the links it makes (``[]`` when it names fewer
    than two keys); ``None`` when it is not a system message about a changed number or user id."""
    if not isinstance(obj, Mapping) or obj.get("type") != "system":
        return None
    system = mapping(obj.get("system"))
    kind = system.get("type")
    source = SYSTEM_TYPES.get(kind) if isinstance(kind, str) else None
    if source is None:
        return None
    keys = (
        digits(obj.get("from"), 20),
        identifier(obj.get("from_user_id")),
        identifier(system.get("previous_user_id")),
        digits(system.get("wa_id"), 20) or digits(system.get("new_wa_id"), 20),
        identifier(system.get("user_id")),
    )
    return links_of(keys, source, timestamp(obj.get("timestamp")))


def contact_links(value: Mapping[str, Any]) -> list[IdentityLink]:
    """Links of the ``contacts[]`` entries of a change that give both ``wa_id`` and ``user_id``."""
    contacts = value.get("contacts")
    if not isinstance(contacts, list):
        return []
    links: list[IdentityLink] = []
    for contact in contacts:
        item = mapping(contact)
        keys = (digits(item.get("wa_id"), 20), identifier(item.get("user_id")))
        if all(keys):
            links.extend(links_of(keys, IdentitySource.STATUS_WEBHOOK))
    return links


def parse_identity_messages(value: Mapping[str, Any], sink: SignalBatch) -> ParseTally:
    """The system messages of a ``messages`` change, and its ``contacts[]`` pairs, into ``sink``.

    Counts a system message it cannot use as skipped and any other inbound message as ignored.
    """
    tally = ParseTally()
    sink.identities.extend(contact_links(value))
    messages = value.get("messages")
    if not isinstance(messages, list):
        return tally
    for message in messages:
        links = read_system_message(message)
        if links is None:
            tally.ignored += 1
        elif links:
            sink.identities.extend(links)
        else:
            tally.skipped += 1
    return tally


__all__ = ["SYSTEM_TYPES", "WebhookSystem", "contact_links", "parse_identity_messages", "read_system_message"]
