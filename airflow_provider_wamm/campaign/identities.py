"""Who a recipient key is: a phone number (E.164 digits), or a business-scoped user id sent as is.

A recipient column may hold a business-scoped user id (BSUID, ``US.13491208655302741918``): the
campaign keys the ledger on it and the message goes out with ``recipient`` instead of ``to``
("Business-scoped user IDs",
``developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids``,
Jun 29, 2026). A stop that names only the user id then suppresses that recipient.

Meta may answer a phone number with another ``wa_id``: "For Brazil and Mexico, the extra added prefix
of the phone number may be modified by the Cloud API" ("Service messages",
``developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages``, May 21,
2026), and its webhooks then name that ``wa_id``. :func:`phone_aliases` gives the forms a number may
take (the Brazilian mobile ninth digit dropped or added, the ``1`` after Mexico's ``52`` added or
dropped: what integrators report, not a rule Meta publishes), so a suppression recorded for any of
them holds for the person.
"""

from __future__ import annotations

from airflow_provider_wamm.graph.errors import InvalidRecipientError
from airflow_provider_wamm.graph.recipients import is_bsuid

#: Longest recipient key the ledger stores (``sends.recipient``).
RECIPIENT_KEY_MAX = 64


def recipient_key(value: object, field: str = "to") -> str | None:
    """The ledger key of a business-scoped user id written in a recipient column, else ``None``.

    :raises InvalidRecipientError: a user id longer than the ledger's key (Meta allows up to 128
        characters after the country code; the ones it gives are far shorter).
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not is_bsuid(text):
        return None
    if len(text) > RECIPIENT_KEY_MAX:
        raise InvalidRecipientError(
            field,
            f"is a business-scoped user id of {len(text)} characters; the ledger keeps {RECIPIENT_KEY_MAX}",
        )
    return text


def phone_aliases(key: str) -> tuple[str, ...]:
    """``key`` and the other forms Meta's ``wa_id`` may give the same number (Brazil, Mexico)."""
    if not key.isdigit():
        return (key,)
    if key.startswith("55") and len(key) == 13 and key[4] == "9":  # 55 AA 9XXXXXXXX
        return key, key[:4] + key[5:]
    if key.startswith("55") and len(key) == 12 and key[4] in "6789":  # 55 AA XXXXXXXX, a mobile
        return key, key[:4] + "9" + key[4:]
    if key.startswith("521") and len(key) == 13:
        return key, "52" + key[3:]
    if key.startswith("52") and len(key) == 12:
        return key, "521" + key[2:]
    return (key,)


__all__ = ["RECIPIENT_KEY_MAX", "phone_aliases", "recipient_key"]
