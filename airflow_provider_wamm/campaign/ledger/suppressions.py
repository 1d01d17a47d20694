"""Who later campaigns must leave alone: the ``suppressions`` table, its audit, and the frequency cap.

Opt-outs (131050, a ``user_preferences`` stop) are kept for ever and Meta's per-user limit (131049) for
a day; every campaign checks them before it claims a recipient. A ``resume`` lifts a stop, whether a
webhook or a 131050 put it there, but never what the business added itself (``manual``) nor a
per-user-limit wait. Every change is also written to the suppression audit (see
:mod:`~airflow_provider_wamm.campaign.ledger.audit`) in the same transaction, and a stop or resume
older, by Meta's clock, than the last one applied is recorded as stale and not applied. The frequency
cap looks at what other campaigns sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.identities import phone_aliases
from airflow_provider_wamm.campaign.ledger.audit import SuppressionAudit
from airflow_provider_wamm.campaign.ledger.identities import IdentityMap, IdentitySource, links_of
from airflow_provider_wamm.campaign.ledger.records import (
    DELIVERED_TO_META,
    SUPPRESS_PER_USER_LIMIT,
    SUPPRESS_STOPPED_MARKETING,
    PreferenceChange,
    PreferenceValue,
    Suppression,
    SuppressionAction,
    SuppressionChange,
    SuppressionSource,
    as_utc,
    naive_utc,
    suppression_source,
    utcnow,
)
from airflow_provider_wamm.campaign.ledger.schema import LedgerTables, chunks, upsert
from airflow_provider_wamm.campaign.ledger.transactions import Transactions


@dataclass(frozen=True, slots=True)
class HeldSuppression:
    """The suppression in force for one recipient, as stored."""

    reason: str
    """Why."""
    until: datetime | None
    """Its end (aware UTC); ``None`` for ever."""

    def covers(self, entry: Suppression) -> bool:
        """Whether this suppression already covers ``entry`` (it lasts at least as long)."""
        new_until = as_utc(entry.until)
        return self.until is None or (new_until is not None and self.until >= new_until)


def _lasting(entry: Suppression) -> tuple[bool, datetime]:
    """Orders suppressions by how long they last (for ever last)."""
    return entry.until is None, entry.until or datetime.min.replace(tzinfo=UTC)


def _merge(table: sa.Table) -> Any:
    """The upsert's update: an existing row wins when it is for ever, or lasts longer than the new one."""
    t = table.c

    def merge(new: Any) -> dict[str, Any]:
        keep_old = sa.or_(t.until.is_(None), sa.and_(new.until.is_not(None), t.until >= new.until))
        return {
            "reason": sa.case((keep_old, t.reason), else_=new.reason),
            "error_code": sa.case((keep_old, t.error_code), else_=new.error_code),
            "campaign_id": sa.case((keep_old, t.campaign_id), else_=new.campaign_id),
            "updated_at": new.updated_at,
            "until": sa.case((keep_old, t.until), else_=new.until),  # last: MySQL order
        }

    return merge


def _change_of(
    entry: Suppression, action: SuppressionAction, at: datetime, detail: str | None = None
) -> SuppressionChange:
    """The audit row of a suppression added (or found already covered)."""
    return SuppressionChange(
        recipient=entry.recipient,
        action=action,
        reason=entry.reason,
        source=suppression_source(entry),
        recorded_at=at,
        event_at=as_utc(entry.event_at),
        error_code=entry.error_code,
        campaign_id=entry.campaign_id,
        until=as_utc(entry.until),
        detail=detail,
    )


def _preference_change(
    change: PreferenceChange,
    action: SuppressionAction,
    at: datetime,
    *,
    reason: str = SUPPRESS_STOPPED_MARKETING,
    detail: str | None = None,
) -> SuppressionChange:
    """The audit row of a ``user_preferences`` stop or resume."""
    return SuppressionChange(
        recipient=change.recipient,
        action=action,
        reason=reason,
        source=SuppressionSource.USER_PREFERENCES,
        recorded_at=at,
        event_at=change.timestamp,
        preference=change.value,
        user_id=change.user_id,
        waba_id=change.waba_id,
        detail=detail or change.detail,
    )


class SuppressionList:
    """Add, lift and look up suppressions (each change audited); find recipients messaged recently.

    :param tables: the ledger's tables (``suppressions`` and its audit, ``sends`` for the frequency cap).
    :param tx: the ledger's transaction runner.
    :param identities: the keys of each person; lookups then find a suppression or a send under any of
        them (without it, under the recipient's own key and its :func:`~.phone_aliases` forms).
    """

    def __init__(self, tables: LedgerTables, tx: Transactions, identities: IdentityMap | None = None) -> None:
        self.tables = tables
        self.tx = tx
        self.identities = identities
        self.audit = SuppressionAudit(tables.signals.suppression_audit, tx)

    def _forms(self, conn: Connection, recipients: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Every key each recipient may be known by (own key first)."""
        if self.identities is None:
            return {recipient: phone_aliases(recipient) for recipient in recipients}
        return self.identities.person_keys_in(conn, recipients)

    def add_suppressions(self, entries: Sequence[Suppression], *, now: datetime | None = None) -> None:
        """Add or extend suppressions (one executemany), each change audited.

        A suppression for ever is never shortened; otherwise the later ``until`` wins. A stop
        (``stopped_marketing``) older, by its ``event_at``, than the recipient's last stop or resume is
        recorded as stale and not applied.
        """
        if not entries:
            return
        at = as_utc(now) or utcnow()
        self.tx.write(lambda conn: self.add_in(conn, entries, at))

    def add_in(self, conn: Connection, entries: Sequence[Suppression], at: datetime) -> None:
        """:meth:`add_suppressions` inside the caller's transaction."""
        ordered = sorted(entries, key=lambda item: item.recipient)
        held = self.held(conn, [e.recipient for e in ordered])
        stops = [e.recipient for e in ordered if e.reason == SUPPRESS_STOPPED_MARKETING]
        latest = self.audit.latest_stop_or_resume(conn, stops) if stops else {}
        applied: list[Suppression] = []
        changes: list[SuppressionChange] = []
        for entry in ordered:
            if entry.reason == SUPPRESS_STOPPED_MARKETING:
                event_at = as_utc(entry.event_at) or at
                last = latest.get(entry.recipient)
                if last is not None and event_at < last:
                    detail = "older than the last stop or resume applied"
                    changes.append(_change_of(entry, SuppressionAction.STALE, at, detail))
                    continue
                latest[entry.recipient] = event_at
            current = held.get(entry.recipient)
            if current is not None and current.covers(entry):
                detail = f"already suppressed: {current.reason}"
                changes.append(_change_of(entry, SuppressionAction.UNCHANGED, at, detail))
                continue
            held[entry.recipient] = HeldSuppression(entry.reason, as_utc(entry.until))
            applied.append(entry)
            changes.append(_change_of(entry, SuppressionAction.ADDED, at))
        self.upsert_rows(conn, applied, at)
        self.audit.write(conn, changes)

    def upsert_rows(self, conn: Connection, entries: Sequence[Suppression], at: datetime) -> None:
        """Insert or merge ``entries`` into ``suppressions`` (an existing longer suppression wins)."""
        if not entries:
            return
        db_now = naive_utc(at)
        rows = [
            {
                "recipient": e.recipient,
                "reason": e.reason,
                "error_code": e.error_code,
                "campaign_id": e.campaign_id,
                "until": naive_utc(e.until),
                "created_at": db_now,
                "updated_at": db_now,
            }
            for e in entries
        ]
        table = self.tables.suppressions
        upsert(conn, table, rows, key=("recipient",), update=_merge(table))

    def held(self, conn: Connection, recipients: Iterable[str]) -> dict[str, HeldSuppression]:
        """The stored suppression of each of ``recipients`` that has one (expired ones included)."""
        t = self.tables.suppressions.c
        out: dict[str, HeldSuppression] = {}
        for chunk in chunks(sorted(set(recipients))):
            for recipient, reason, until in conn.execute(
                sa.select(t.recipient, t.reason, t.until).where(t.recipient.in_(chunk))
            ):
                out[recipient] = HeldSuppression(reason, as_utc(until))
        return out

    def remove_suppressions(self, recipients: Sequence[str], *, now: datetime | None = None) -> int:
        """Lift suppressions by hand (the business's decision, audited as ``manual``); returns how many
        were removed. A person's own resume arrives as a ``user_preferences`` webhook instead
        (:meth:`record_preferences`)."""
        table = self.tables.suppressions
        at = as_utc(now) or utcnow()

        def work(conn: Connection) -> int:
            held = self.held(conn, recipients)
            removed = 0
            for chunk in chunks(sorted(recipients)):
                result = conn.execute(table.delete().where(table.c.recipient.in_(chunk)))
                removed += int(result.rowcount or 0)
            lifted = [
                SuppressionChange(
                    recipient, SuppressionAction.LIFTED, s.reason, SuppressionSource.MANUAL, at, until=s.until
                )
                for recipient, s in sorted(held.items())
            ]
            self.audit.write(conn, lifted)
            return removed

        return int(self.tx.write(work))

    def record_preferences(self, changes: Sequence[PreferenceChange], *, now: datetime | None = None) -> int:
        """Apply stops and resumes (``user_preferences`` webhooks); returns how many were given.

        Each recipient's changes apply in the order of Meta's timestamps; one older than the last stop
        or resume applied is recorded as stale. A stop adds a ``stopped_marketing`` suppression for
        ever (unless one already covers it); a resume lifts a ``stopped_marketing`` one (from a webhook
        or a 131050) and restores a per-user-limit wait it had replaced, and leaves any other
        suppression (``manual``...) alone. Every change is audited.
        """
        if not changes:
            return 0
        at = as_utc(now) or utcnow()
        return int(self.tx.write(lambda conn: self.preferences_in(conn, changes, at)))

    def preferences_in(self, conn: Connection, changes: Sequence[PreferenceChange], at: datetime) -> int:
        """:meth:`record_preferences` inside the caller's transaction."""
        ordered = sorted(changes, key=lambda c: (c.recipient, c.timestamp))
        if self.identities is not None:
            links = [
                link
                for c in ordered
                for link in links_of((c.recipient, c.user_id), IdentitySource.USER_PREFERENCES, c.timestamp)
            ]
            self.identities.link_in(conn, links, at)
        recipients = {c.recipient for c in ordered}
        held = self.held(conn, recipients)
        latest = self.audit.latest_stop_or_resume(conn, recipients)
        audit: list[SuppressionChange] = []
        for change in ordered:
            last = latest.get(change.recipient)
            if last is not None and change.timestamp < last:
                detail = "older than the last stop or resume applied"
                audit.append(_preference_change(change, SuppressionAction.STALE, at, detail=detail))
                continue
            latest[change.recipient] = change.timestamp
            if change.value == PreferenceValue.STOP:
                audit.append(self._stop(conn, change, held, at))
            else:
                audit.extend(self._resume(conn, change, held, at))
        self.audit.write(conn, audit)
        return len(ordered)

    def _stop(
        self, conn: Connection, change: PreferenceChange, held: dict[str, HeldSuppression], at: datetime
    ) -> SuppressionChange:
        """Suppress a person who stopped marketing messages (for ever)."""
        entry = Suppression(
            change.recipient,
            SUPPRESS_STOPPED_MARKETING,
            event_at=change.timestamp,
            source=SuppressionSource.USER_PREFERENCES,
        )
        current = held.get(change.recipient)
        if current is not None and current.covers(entry):
            detail = f"already suppressed: {current.reason}"
            return _preference_change(change, SuppressionAction.UNCHANGED, at, detail=detail)
        self.upsert_rows(conn, [entry], at)
        held[change.recipient] = HeldSuppression(SUPPRESS_STOPPED_MARKETING, None)
        return _preference_change(change, SuppressionAction.ADDED, at)

    def _resume(
        self, conn: Connection, change: PreferenceChange, held: dict[str, HeldSuppression], at: datetime
    ) -> list[SuppressionChange]:
        """Lift a stop; restore the per-user-limit wait the stop had replaced, if it still runs."""
        current = held.get(change.recipient)
        if current is None or current.reason != SUPPRESS_STOPPED_MARKETING:
            detail = "no stop to lift" if current is None else f"kept: {current.reason}"
            return [_preference_change(change, SuppressionAction.UNCHANGED, at, detail=detail)]
        table = self.tables.suppressions
        conn.execute(table.delete().where(table.c.recipient == change.recipient))
        del held[change.recipient]
        out = [_preference_change(change, SuppressionAction.LIFTED, at)]
        wait = self.audit.open_wait(conn, change.recipient, at)
        if wait is not None:
            entry = Suppression(
                change.recipient,
                SUPPRESS_PER_USER_LIMIT,
                wait.error_code,
                wait.until,
                wait.campaign_id,
                source=wait.source,
            )
            self.upsert_rows(conn, [entry], at)
            held[change.recipient] = HeldSuppression(SUPPRESS_PER_USER_LIMIT, wait.until)
            out.append(_change_of(entry, SuppressionAction.ADDED, at, "per-user limit wait restored"))
        return out

    def history(self, recipient: str) -> list[SuppressionChange]:
        """Every change of one person's suppression, oldest first: what, when (Meta's time and the
        recording time), and from which signal (webhook, error code and campaign, or by hand).

        :param recipient: E.164 digits, or a business-scoped user id.
        """
        return self.audit.history(recipient)

    def active_suppressions(
        self, recipients: Sequence[str], *, now: datetime | None = None
    ) -> dict[str, Suppression]:
        """Suppressions in force at ``now`` for any of ``recipients``, by recipient.

        A person's suppression holds whichever key it was recorded under: the recipient's own, a form
        Meta's ``wa_id`` gives the same number, or a key linked to it
        (:mod:`~airflow_provider_wamm.campaign.ledger.identities`); the one that lasts longest is
        returned (its ``recipient`` is the key it is stored under).
        """
        if not recipients:
            return {}
        db_now = naive_utc(now or utcnow())
        t = self.tables.suppressions.c
        held: dict[str, Suppression] = {}
        with self.tx.read() as conn:
            forms = self._forms(conn, recipients)
            for chunk in chunks(sorted({f for fs in forms.values() for f in fs})):
                rows = conn.execute(
                    sa.select(t.recipient, t.reason, t.error_code, t.until, t.campaign_id).where(
                        t.recipient.in_(chunk), sa.or_(t.until.is_(None), t.until > db_now)
                    )
                )
                for recipient, reason, code, until, campaign in rows:
                    held[recipient] = Suppression(recipient, reason, code, as_utc(until), campaign)
        out: dict[str, Suppression] = {}
        for recipient, keys in forms.items():
            hits = [held[key] for key in keys if key in held]
            if hits:
                out[recipient] = max(hits, key=_lasting)
        return out

    def recently_messaged(
        self,
        recipients: Sequence[str],
        *,
        since: datetime,
        exclude_campaign_id: str | None = None,
    ) -> set[str]:
        """Recipients Meta took a message for (accepted/held/paused) in any campaign since ``since``,
        under their own key or any other key of the same person
        (:mod:`~airflow_provider_wamm.campaign.ledger.identities`)."""
        if not recipients:
            return set()
        s = self.tables.sends.c
        found: set[str] = set()
        with self.tx.read() as conn:
            forms = self._forms(conn, recipients)
            for chunk in chunks(sorted({f for fs in forms.values() for f in fs})):
                query = (
                    sa.select(s.recipient)
                    .distinct()
                    .where(
                        s.recipient.in_(chunk),
                        s.updated_at >= naive_utc(since),
                        s.state.in_(DELIVERED_TO_META),
                    )
                )
                if exclude_campaign_id is not None:
                    query = query.where(s.campaign_id != exclude_campaign_id)
                found.update(conn.execute(query).scalars())
        return {recipient for recipient, keys in forms.items() if any(key in found for key in keys)}


__all__ = ["SuppressionList"]
