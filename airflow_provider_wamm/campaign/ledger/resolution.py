"""Unknown sends resolved by Meta's status webhooks.

A send is ``unknown`` when its request got no answer (a lost answer, a crash): Meta may or may not have
taken it, and its wamid was never recorded. When Meta did take it, its status webhooks arrive anyway, under
a wamid no send row knows. They are matched to the send, in this order:

1. by wamid (the usual join; nothing to resolve);
2. by the callback key the send carried in ``biz_opaque_callback_data``
   (:mod:`~airflow_provider_wamm.campaign.callback`), when Meta echoes it;
3. by recipient: a status without a callback key for the same recipient, dated from shortly before
   the send was claimed to 24 hours after, when exactly one such status and one such send exist (two
   candidates either way stay unknown: no guess). The status names the recipient by ``recipient_id``
   (for Brazilian and Mexican numbers perhaps in the form Meta rewrote, see
   :func:`~airflow_provider_wamm.campaign.identities.phone_aliases`) or by ``recipient_user_id`` (a
   send by business-scoped user id).

A matched send becomes ``accepted`` with the status's wamid, so the report counts it taken and its
statuses join it. The receiver resolves as statuses arrive; the report's sensor resolves again before it
reports (a status may arrive before the run recorded its send ``unknown``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.callback import callback_key
from airflow_provider_wamm.campaign.identities import phone_aliases
from airflow_provider_wamm.campaign.ledger.records import ACCEPTED, UNKNOWN, as_utc, naive_utc
from airflow_provider_wamm.campaign.ledger.schema import LedgerTables, chunks

#: How long after a send's claim a status may still be its own (matching by recipient).
RESOLVE_WINDOW = timedelta(hours=24)
#: How long before the claim (clocks differ a little).
CLAIM_SLACK = timedelta(minutes=5)
#: What the ledger says of a resolved send.
RESOLVED_BY_KEY = "unknown until Meta's status webhook: resolved by its callback key"
RESOLVED_BY_RECIPIENT = "unknown until Meta's status webhook: resolved by its recipient and time"

_Row = tuple[str, str]  # (campaign_id, recipient)


def _status_time(t: Any) -> Any:
    """When Meta first reported a message."""
    return sa.func.coalesce(t.sent_at, t.delivered_at, t.read_at, t.failed_at, t.status_at)


def _unknown_rows(
    conn: Connection, tables: LedgerTables, campaign_ids: Sequence[str], recipients: Sequence[str]
) -> dict[_Row, datetime | None]:
    """The unknown sends without a wamid in the campaigns or of the recipients, with their claim time."""
    s = tables.sends.c
    found: dict[_Row, datetime | None] = {}
    for column, values in ((s.campaign_id, campaign_ids), (s.recipient, recipients)):
        for chunk in chunks(sorted(set(values))):
            query = sa.select(s.campaign_id, s.recipient, sa.func.coalesce(s.claimed_at, s.updated_at)).where(
                s.state == str(UNKNOWN), s.wamid.is_(None), column.in_(chunk)
            )
            for campaign_id, recipient, at in conn.execute(query):
                found[(campaign_id, recipient)] = as_utc(at)
    return found


def _orphans(tables: LedgerTables) -> Any:
    """Statuses whose wamid no send row has."""
    s, t = tables.sends.c, tables.statuses.c
    return ~sa.exists(sa.select(s.wamid).where(s.wamid == t.wamid))


def _by_key(conn: Connection, tables: LedgerTables, rows: Iterable[_Row]) -> dict[_Row, tuple[str, Any]]:
    """Sends matched by the callback key a status echoed."""
    t = tables.statuses.c
    keys = {callback_key(c, r): (c, r) for c, r in rows}
    matched: dict[_Row, tuple[str, Any]] = {}
    for chunk in chunks(sorted(keys)):
        query = sa.select(t.wamid, t.callback_key, _status_time(t)).where(
            t.callback_key.in_(chunk), _orphans(tables)
        )
        for wamid, key, when in conn.execute(query):
            matched[keys[key]] = (wamid, naive_utc(as_utc(when)))
    return matched


def _by_recipient(
    conn: Connection, tables: LedgerTables, rows: dict[_Row, datetime | None]
) -> dict[_Row, tuple[str, Any]]:
    """Sends matched by recipient and time, where the match is unique both ways."""
    t = tables.statuses.c
    by_recipient: dict[str, list[_Row]] = {}
    for row in rows:
        for form in phone_aliases(row[1]):
            by_recipient.setdefault(form, []).append(row)
    candidates: dict[_Row, list[tuple[str, Any]]] = {}
    claimants: dict[str, int] = {}
    seen: set[str] = set()
    for chunk in chunks(sorted(by_recipient)):
        query = sa.select(t.wamid, t.recipient_id, t.recipient_user_id, _status_time(t)).where(
            sa.or_(t.recipient_id.in_(chunk), t.recipient_user_id.in_(chunk)),
            t.callback_key.is_(None),
            _orphans(tables),
        )
        for wamid, recipient, user_id, when in conn.execute(query):
            if wamid in seen:  # found again in a later chunk by its other key
                continue
            seen.add(wamid)
            at = as_utc(when)
            named = {*by_recipient.get(recipient, []), *by_recipient.get(user_id, [])}
            for row in sorted(named):
                claimed = rows[row]
                if (
                    at is None
                    or claimed is None
                    or not claimed - CLAIM_SLACK <= at <= claimed + RESOLVE_WINDOW
                ):
                    continue
                candidates.setdefault(row, []).append((wamid, naive_utc(at)))
                claimants[wamid] = claimants.get(wamid, 0) + 1
    return {
        row: found[0] for row, found in candidates.items() if len(found) == 1 and claimants[found[0][0]] == 1
    }


def _apply(
    conn: Connection, tables: LedgerTables, matches: dict[_Row, tuple[str, Any]], note: str, db_now: Any
) -> int:
    """Record the matched sends ``accepted`` with their wamid (only while still unknown)."""
    s = tables.sends.c
    done = 0
    for (campaign_id, recipient), (wamid, when) in sorted(matches.items()):
        result = conn.execute(
            tables.sends.update()
            .where(s.campaign_id == campaign_id, s.recipient == recipient, s.state == str(UNKNOWN))
            .where(s.wamid.is_(None))
            .values(
                state=str(ACCEPTED),
                wamid=wamid,
                message_status="accepted",
                accepted_at=sa.func.coalesce(s.accepted_at, when, db_now),
                error_code=None,
                error_title=None,
                error_details=note,
                updated_at=db_now,
            )
        )
        done += result.rowcount or 0
    return done


def resolve_unknown(
    conn: Connection,
    tables: LedgerTables,
    *,
    campaign_ids: Sequence[str] = (),
    recipients: Sequence[str] = (),
    now: datetime | None = None,
) -> int:
    """Resolve the unknown sends of ``campaign_ids`` or of ``recipients`` that a stored status belongs
    to (in the caller's transaction); returns how many became ``accepted``."""
    rows = _unknown_rows(conn, tables, campaign_ids, [f for r in recipients for f in phone_aliases(r)])
    if not rows:
        return 0
    db_now = naive_utc(now)
    keyed = _by_key(conn, tables, rows)
    done = _apply(conn, tables, keyed, RESOLVED_BY_KEY, db_now)
    rest = {row: at for row, at in rows.items() if row not in keyed}
    return done + _apply(conn, tables, _by_recipient(conn, tables, rest), RESOLVED_BY_RECIPIENT, db_now)


__all__ = [
    "CLAIM_SLACK",
    "RESOLVED_BY_KEY",
    "RESOLVED_BY_RECIPIENT",
    "RESOLVE_WINDOW",
    "resolve_unknown",
]
