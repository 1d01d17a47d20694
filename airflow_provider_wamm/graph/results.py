"""What Meta answers to an accepted send, read from the answer's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

__all__ = ["SendAnswer", "SendAnswerContact", "SendAnswerMessage", "SendResult"]


class SendAnswerContact(TypedDict, total=False):
    """One entry of a send answer's ``contacts``."""

    input: str
    wa_id: str
    user_id: str


class SendAnswerMessage(TypedDict, total=False):
    """One entry of a send answer's ``messages``."""

    id: str
    message_status: str


class SendAnswer(TypedDict, total=False):
    """The JSON object Meta answers to an accepted ``marketing_messages`` request."""

    messaging_product: str
    contacts: list[SendAnswerContact]
    messages: list[SendAnswerMessage]


@dataclass(frozen=True)
class SendResult:
    """What Meta answered to an accepted ``marketing_messages`` request."""

    wamid: str
    """The WhatsApp message id; status webhooks refer to it."""
    message_status: str
    """``accepted``, ``held_for_quality_assessment`` or ``paused`` (none of them means delivered)."""
    wa_id: str | None
    """The recipient's WhatsApp id as Meta resolved it."""
    input: str | None
    """The recipient as sent."""
    user_id: str | None = None
    """The business-scoped user id, when the message was sent by BSUID."""

    @classmethod
    def from_response(cls, body: SendAnswer | Mapping[str, Any]) -> SendResult:
        """Read a send answer (shaped as :class:`SendAnswer`, but checked, as it comes from the wire);
        raise ``ValueError`` if it has no message id."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[0], Mapping):
            raise ValueError("no messages[] in the response")
        message = messages[0]
        wamid = message.get("id")
        if not isinstance(wamid, str) or not wamid:
            raise ValueError("no message id in the response")
        contacts = body.get("contacts")
        contact: Mapping[str, Any] = (
            contacts[0]
            if isinstance(contacts, list) and contacts and isinstance(contacts[0], Mapping)
            else {}
        )
        return cls(
            wamid=wamid,
            message_status=str(message.get("message_status") or "accepted"),
            wa_id=contact.get("wa_id"),
            input=contact.get("input"),
            user_id=contact.get("user_id"),
        )
