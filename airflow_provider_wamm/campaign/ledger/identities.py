"""Who is the same person: the ``identities`` table links every key Meta has used for one person.

Meta names a person by phone number (the business's form, or the ``wa_id`` Meta rewrote it to in
Brazil and Mexico) or by business-scoped user id (BSUID), and an event may carry only one of them: a
send answer gives ``contacts[].wa_id`` (or ``user_id`` for a send by BSUID), a status webhook
``recipient_id`` and ``recipient_user_id``, a ``user_preferences`` webhook ``wa_id`` and ``user_id``
("Business-scoped user IDs",
``developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids``, Jun 29,
2026). A phone number change or a new BSUID arrives as a system message on the ``messages`` field,
``user_changed_number`` or ``user_changed_user_id``, with ``previous_user_id`` beside the new values
("System messages webhook reference", ``…/whatsapp/webhooks/reference/messages/system``, Aug 11, 2026).

Every pair of keys such an event ties together is a :class:`IdentityLink`. The table holds one row per
key with the person it belongs to (the smallest key of the group, so two writers merging the same
groups agree); linking two keys of different groups merges the groups. A changed number stays linked to
the person: suppressions and frequency caps keep holding for the old number too, which errs on the side
of not messaging (a number Meta recycles to someone else stays suppressed until it is lifted by hand).

:meth:`IdentityMap.person_keys` gives every key of a person (with the forms
:func:`~airflow_provider_wamm.campaign.identities.phone_aliases` derives), which the suppression lookup
and the frequency cap use, so a stop naming only the user id keeps the number out of the next campaign.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.identities import phone_aliases
from airflow_provider_wamm.campaign.ledger.records import as_utc, naive_utc, utcnow
from airflow_provider_wamm.campaign.ledger.schema import chunks, datetime_type, key_type, upsert
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

#: Longest key kept (a BSUID is a country code, ``.`` and up to 128 characters; a parent one has ``ENT.``).
IDENTITY_KEY_MAX = 191


class IdentitySource(StrEnum):
    """Which event tied two keys together (the ``source`` column of ``identities``)."""

    SEND_ANSWER = "send_answer"
    """A send answer's ``contacts[]``: the key sent and Meta's ``wa_id`` / ``user_id``."""
    STATUS_WEBHOOK = "status_webhook"
    """A status webhook: the send's key, ``recipient_id`` and ``recipient_user_id``."""
    USER_PREFERENCES = "user_preferences"
    """A ``user_preferences`` webhook naming both ``wa_id`` and ``user_id``."""
    CHANGED_NUMBER = "user_changed_number"
    """A ``user_changed_number`` system message: the old and the new number and user id."""
    CHANGED_USER_ID = "user_changed_user_id"
    """A ``user_changed_user_id`` system message: the previous and the new user id."""
    MANUAL = "manual"
    """The business itself (:meth:`IdentityMap.link_identities`)."""


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """Two keys (E.164 digits or business-scoped user ids) that name the same person."""

    key: str
    """One key."""
    other: str
    """The other key."""
    source: IdentitySource = IdentitySource.MANUAL
    """The event that said so."""
    at: datetime | None = None
    """When, by Meta's clock (``None``: when it is recorded)."""


def links_of(
    keys: Iterable[str | None], source: IdentitySource, at: datetime | None = None
) -> list[IdentityLink]:
    """Links tying the given keys (``None`` and repeats dropped) to the first of them."""
    present = list(dict.fromkeys(k for k in keys if k))
    return [IdentityLink(present[0], other, source, at) for other in present[1:]]


def identities_table(metadata: sa.MetaData, p: str) -> sa.Table:
    """One row per key: the person (group of keys) it belongs to."""
    return sa.Table(
        f"{p}identities",
        metadata,
        sa.Column("key", key_type(IDENTITY_KEY_MAX), primary_key=True),
        sa.Column("person", key_type(IDENTITY_KEY_MAX), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("linked_at", datetime_type()),
        sa.Column("updated_at", datetime_type(), nullable=False),
        sa.Index(f"ix_{p}identities_person", "person"),
    )


def _kind(key: str) -> str:
    return "phone" if key.isdigit() else "user_id"


class IdentityMap:
    """Link keys of one person and read every key of a person.

    :param table: the ``identities`` table.
    :param tx: the ledger's transaction runner.
    """

    def __init__(self, table: sa.Table, tx: Transactions) -> None:
        self.table = table
        self.tx = tx

    def link_identities(self, links: Sequence[IdentityLink], *, now: datetime | None = None) -> int:
        """Record that each link's two keys name one person (merging what was known of each);
        returns how many links were usable (two different keys)."""
        at = as_utc(now) or utcnow()
        return int(self.tx.write(lambda conn: self.link_in(conn, links, at)))

    def link_in(self, conn: Connection, links: Sequence[IdentityLink], at: datetime) -> int:
        """:meth:`link_identities` inside the caller's transaction."""
        usable = [
            link
            for link in links
            if link.key
            and link.other
            and link.key != link.other
            and max(len(link.key), len(link.other)) <= IDENTITY_KEY_MAX
        ]
        if not usable:
            return 0
        persons = self._persons(conn, {k for link in usable for k in (link.key, link.other)})
        rows: dict[str, dict[str, object]] = {}
        for link in sorted(usable, key=lambda item: (item.key, item.other)):
            first, second = persons.get(link.key, link.key), persons.get(link.other, link.other)
            target, merged = min(first, second), max(first, second)
            if target != merged:
                conn.execute(self.table.update().where(self.table.c.person == merged).values(person=target))
                for key, person in list(persons.items()):
                    if person == merged:
                        persons[key] = target
                for row in rows.values():
                    if row["person"] == merged:
                        row["person"] = target
            for key in (link.key, link.other):
                persons[key] = target
                rows[key] = {
                    "key": key,
                    "person": target,
                    "kind": _kind(key),
                    "source": str(link.source),
                    "linked_at": naive_utc(as_utc(link.at) or at),
                    "updated_at": naive_utc(at),
                }
        upsert(
            conn,
            self.table,
            [rows[k] for k in sorted(rows)],
            key=("key",),
            update=lambda new: {"person": new.person, "updated_at": new.updated_at},
        )
        return len(usable)

    def _persons(self, conn: Connection, keys: Iterable[str]) -> dict[str, str]:
        """The person of each of ``keys`` that has a row."""
        t = self.table.c
        out: dict[str, str] = {}
        for chunk in chunks(sorted(set(keys))):
            out.update((k, p) for k, p in conn.execute(sa.select(t.key, t.person).where(t.key.in_(chunk))))
        return out

    def person_keys(self, keys: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Every key known for the person of each of ``keys``: the key itself first, the forms Meta's
        ``wa_id`` may give the same number, then the keys linked to any of them."""
        with self.tx.read() as conn:
            return self.person_keys_in(conn, keys)

    def person_keys_in(self, conn: Connection, keys: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """:meth:`person_keys` inside the caller's transaction."""
        forms = {key: phone_aliases(key) for key in keys}
        persons = self._persons(conn, {f for fs in forms.values() for f in fs})
        members: dict[str, list[str]] = {}
        t = self.table.c
        for chunk in chunks(sorted(set(persons.values()))):
            for key, person in conn.execute(sa.select(t.key, t.person).where(t.person.in_(chunk))):
                members.setdefault(person, []).append(key)
        out: dict[str, tuple[str, ...]] = {}
        for key, own in forms.items():
            found = list(own)
            for form in own:
                person = persons.get(form)
                if person is not None:
                    found.extend(sorted(members.get(person, ())))
            out[key] = tuple(dict.fromkeys(found))
        return out


__all__ = [
    "IDENTITY_KEY_MAX",
    "IdentityLink",
    "IdentityMap",
    "IdentitySource",
    "identities_table",
    "links_of",
]
