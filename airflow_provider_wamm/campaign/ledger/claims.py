"""Claims and send outcomes: the ``sends`` table, one row per recipient of a campaign.

Each recipient is *claimed* (insert-if-absent on the table's primary key) before its request leaves,
so two attempts or shards never both send to one person; outcomes are recorded in batches afterwards.
A ``claimed`` row left behind by an attempt that is over (it crashed, or a newer try replaced it)
becomes ``unknown``; a claim given back unsent is deleted, so a later run sends it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.ledger.identities import (
    IdentityLink,
    IdentityMap,
    IdentitySource,
    links_of,
)
from airflow_provider_wamm.campaign.ledger.prepared import Prepared
from airflow_provider_wamm.campaign.ledger.records import (
    DELIVERED_TO_META,
    FINAL_STATES,
    ExistingSend,
    SendOutcome,
    SendState,
    as_utc,
    clip,
    naive_utc,
    utcnow,
)
from airflow_provider_wamm.campaign.ledger.runs import Liveness, live_attempts
from airflow_provider_wamm.campaign.ledger.schema import (
    DETAILS_MAX,
    TITLE_MAX,
    LedgerTables,
    chunks,
    datetime_type,
    error_values,
    upsert,
    upsert_statement,
)
from airflow_provider_wamm.campaign.ledger.transactions import Transactions
from airflow_provider_wamm.graph.errors import CODE_PER_USER_LIMIT

#: What a stale claim's row says about it once it became ``unknown``.
STALE_CLAIM_DETAILS = "claimed by an attempt that did not finish: the message may or may not have been sent"
#: What a send's answer left on a row, cleared when another attempt takes the row over as a new claim.
_ANSWER_COLUMNS = (
    "wamid",
    "message_status",
    "error_code",
    "error_title",
    "error_details",
    "not_before",
    "accepted_at",
)
_TIME_COLUMNS = ("not_before", "claimed_at", "accepted_at", "updated_at", "limited_since", "retry_after")


def read_existing_sends(
    conn: Connection, sends: sa.Table, campaign_id: str, recipients: Sequence[str]
) -> dict[str, ExistingSend]:
    """The ``sends`` rows of ``recipients`` in one campaign, read on ``conn`` (absent ones are missing)."""
    select = _existing_select(sends)
    out: dict[str, ExistingSend] = {}
    for chunk in chunks(list(recipients)):
        rows = conn.execute(select, {"b_campaign_id": campaign_id, "b_recipients": list(chunk)})
        for recipient, state, attempt, not_before, tries, since, retry_after in rows:
            out[recipient] = ExistingSend(
                SendState(state), attempt, as_utc(not_before), tries or 0, as_utc(since), as_utc(retry_after)
            )
    return out


@functools.lru_cache(maxsize=64)
def _existing_select(sends: sa.Table) -> sa.Select[Any]:
    """What :func:`read_existing_sends` reads, built once per table."""
    s = sends.c
    return sa.select(
        s.recipient, s.state, s.attempt_id, s.not_before, s.limited_tries, s.limited_since, s.retry_after
    ).where(
        s.campaign_id == sa.bindparam("b_campaign_id"),
        s.recipient.in_(sa.bindparam("b_recipients", expanding=True)),
    )


class Claims:
    """Claims, outcomes and reads of the ``sends`` table.

    :param tables: the ledger's tables (``sends``, and ``runs`` to tell live attempts from dead ones).
    :param tx: the ledger's transaction runner.
    :param identities: where the keys Meta's answers name for a recipient are linked to it.
    """

    def __init__(self, tables: LedgerTables, tx: Transactions, identities: IdentityMap | None = None) -> None:
        self.tables = tables
        self.tx = tx
        self.identities = identities
        sends = tables.sends
        self._claim_insert = Prepared(
            functools.partial(_claim_statement, sends), names=("b_recipient",), common=_CLAIM_COMMON
        )
        self._result_update = Prepared(
            functools.partial(_result_statement, sends), names=_RESULT_NAMES, common=_RESULT_COMMON
        )

    def existing_sends(self, campaign_id: str, recipients: Sequence[str]) -> dict[str, ExistingSend]:
        """The ledger rows of ``recipients`` in this campaign (absent ones are missing from the dict)."""
        if not recipients:
            return {}
        with self.tx.read() as conn:
            return read_existing_sends(conn, self.tables.sends, campaign_id, recipients)

    # -- claims ---------------------------------------------------------------------------------

    def claim(
        self,
        campaign_id: str,
        recipients: Sequence[str],
        *,
        attempt_id: str,
        shard_index: int = 0,
        template_name: str | None = None,
        language: str | None = None,
        variant: str | None = None,
        resend_unknown: bool = False,
        now: datetime | None = None,
    ) -> set[str]:
        """Claim ``recipients`` for this attempt; returns those actually claimed by it.

        Absent recipients are inserted as ``claimed`` (insert-if-absent: the primary key makes sure two
        attempts or shards never both claim one); unless every one of them was inserted (SQLite and
        PostgreSQL count the rows inserted), the rows are then read in the same transaction, and
        recipients whose row may be re-sent (see :meth:`ExistingSend.reclaimable`) are taken over with
        a conditional update that only succeeds if the row is still as it was read. One statement for
        recipients new to the campaign, two when nothing is taken over (a claim per hand-over to the
        workers must stay cheap).
        """
        if not recipients:
            return set()
        now = now or utcnow()
        wanted = sorted(set(recipients))
        owner = {
            "attempt_id": attempt_id,
            "shard_index": shard_index,
            "template_name": template_name,
            "language": language,
            "variant": variant,
            "claimed_at": naive_utc(now),
            "updated_at": naive_utc(now),
        }
        common = (campaign_id, *(owner[name.removeprefix("b_")] for name in _CLAIM_COMMON[1:]))
        sends = self.tables.sends

        def work(conn: Connection) -> set[str]:
            inserted = self._claim_insert.execute(conn, [(r,) for r in wanted], common).rowcount
            if inserted == len(wanted) and _counts_inserted_rows(conn):
                return set(wanted)  # every row is new: this attempt claimed them all
            known = read_existing_sends(conn, sends, campaign_id, wanted)
            claimed: set[str] = set()
            retake: list[dict[str, Any]] = []
            for recipient, prior in known.items():
                if prior.attempt_id == attempt_id and prior.state == SendState.CLAIMED:
                    claimed.add(recipient)
                elif prior.reclaimable(now, resend_unknown=resend_unknown):
                    retake.append(_retake_params(recipient, prior))
            if retake:
                conn.execute(self._retake_statement(campaign_id, owner), retake)
                taken = [p["b_recipient"] for p in retake]
                claimed |= self._claimed_by(conn, campaign_id, taken, attempt_id)
            return claimed

        return self.tx.write(work)

    def _retake_statement(self, campaign_id: str, owner: dict[str, Any]) -> sa.Update:
        """Take a reclaimable row over, only if it is still in the state and attempt it was read in."""
        s = self.tables.sends.c
        return (
            self.tables.sends.update()
            .where(
                s.campaign_id == campaign_id,
                s.recipient == sa.bindparam("b_recipient"),
                s.state == sa.bindparam("b_state"),
                s.attempt_id == sa.bindparam("b_prior_attempt"),
            )
            .values(state=SendState.CLAIMED, attempts=0, **dict.fromkeys(_ANSWER_COLUMNS), **owner)
        )

    def _claimed_by(
        self, conn: Connection, campaign_id: str, recipients: Sequence[str], attempt_id: str
    ) -> set[str]:
        """Which of ``recipients`` are claimed by ``attempt_id`` now."""
        s = self.tables.sends.c
        claimed: set[str] = set()
        for chunk in chunks(recipients):
            claimed.update(
                conn.execute(
                    sa.select(s.recipient).where(
                        s.campaign_id == campaign_id,
                        s.recipient.in_(chunk),
                        s.attempt_id == attempt_id,
                        s.state == SendState.CLAIMED,
                    )
                ).scalars()
            )
        return claimed

    def mark_stale_claims(
        self,
        campaign_id: str,
        *,
        attempt_id: str,
        shard_index: int | None = None,
        live_within: timedelta | None = None,
        now: datetime | None = None,
        liveness: Liveness | None = None,
        recipients: Sequence[str] | None = None,
    ) -> int:
        """Turn ``claimed`` rows of other attempts that are over into ``unknown``; returns how many.

        An attempt is over unless ``liveness`` says it is alive (see :class:`Liveness`: running, with a
        recent heartbeat); its claims are then left to it. ``live_within`` is the short form of
        ``Liveness(live_within)``; with neither, every other attempt is over. ``shard_index`` restricts
        it to one shard's rows, ``recipients`` to those recipients.
        """
        return len(
            self.take_over_claims(
                campaign_id,
                attempt_id=attempt_id,
                shard_index=shard_index,
                liveness=liveness if liveness is not None else Liveness(live_within),
                now=now,
                recipients=recipients,
            )
        )

    def take_over_claims(
        self,
        campaign_id: str,
        *,
        attempt_id: str,
        liveness: Liveness,
        shard_index: int | None = None,
        now: datetime | None = None,
        recipients: Sequence[str] | None = None,
    ) -> list[str]:
        """:meth:`mark_stale_claims`, returning the recipients whose claims became ``unknown`` (sorted),
        so that the attempt taking them over can name them."""
        at = now or utcnow()
        s = self.tables.sends.c
        cond = sa.and_(s.campaign_id == campaign_id, s.state == SendState.CLAIMED, s.attempt_id != attempt_id)
        if shard_index is not None:
            cond = sa.and_(cond, s.shard_index == shard_index)
        if liveness.live_within is not None:
            alive = live_attempts(self.tables.runs, campaign_id, liveness, at)
            cond = sa.and_(cond, s.attempt_id.not_in(alive))
        if recipients is not None and not recipients:
            return []
        values = {
            "state": SendState.UNKNOWN,
            "error_details": STALE_CLAIM_DETAILS,
            "updated_at": naive_utc(at),
        }
        select = sa.select(s.recipient).where(cond)

        def work(conn: Connection) -> list[str]:
            if recipients is None:
                stale = list(conn.execute(select).scalars())
            else:
                stale = [
                    r
                    for chunk in chunks(sorted(set(recipients)))
                    for r in conn.execute(select.where(s.recipient.in_(chunk))).scalars()
                ]
            for chunk in chunks(sorted(stale)):
                conn.execute(self.tables.sends.update().where(cond, s.recipient.in_(chunk)).values(values))
            return sorted(stale)

        return self.tx.write(work)

    def release_claims(
        self, campaign_id: str, *, attempt_id: str, recipients: Sequence[str] | None = None
    ) -> int:
        """Delete this attempt's rows still ``claimed`` (never sent), so a later run sends them.

        :param recipients: only these (a job waiting for a retry); default every such row.
        """
        s = self.tables.sends.c
        cond = sa.and_(s.campaign_id == campaign_id, s.attempt_id == attempt_id, s.state == SendState.CLAIMED)
        statements = (
            [self.tables.sends.delete().where(cond)]
            if recipients is None
            else [
                self.tables.sends.delete().where(cond, s.recipient.in_(chunk))
                for chunk in chunks(sorted(set(recipients)))
            ]
        )

        def work(conn: Connection) -> int:
            return sum(int(conn.execute(stmt).rowcount or 0) for stmt in statements)

        return self.tx.write(work) if statements else 0

    # -- outcomes -------------------------------------------------------------------------------

    def record_unsent(
        self,
        campaign_id: str,
        outcomes: Sequence[SendOutcome],
        *,
        attempt_id: str,
        shard_index: int = 0,
        template_name: str | None = None,
        language: str | None = None,
        variant: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record recipients that were not sent (``skipped``/``invalid``) with the reason.

        The rows are read in the same transaction. Only absent rows and rows that never reached Meta
        (``skipped``, ``invalid``) are written; a row recording a real send is never overwritten.
        """
        if not outcomes:
            return
        db_now = naive_utc(now or utcnow())
        ordered = sorted(outcomes, key=lambda item: item.recipient)
        owner = {"attempt_id": attempt_id, "shard_index": shard_index}
        labels = {"template_name": template_name, "language": language, "variant": variant, "attempts": 0}
        sends = self.tables.sends

        def work(conn: Connection) -> None:
            known = read_existing_sends(conn, sends, campaign_id, [o.recipient for o in ordered])
            fresh: list[dict[str, Any]] = []
            rewrite: list[dict[str, Any]] = []
            for o in ordered:
                prior = known.get(o.recipient)
                if prior is None:
                    row = {"campaign_id": campaign_id, "recipient": o.recipient, "updated_at": db_now}
                    fresh.append(row | owner | labels | _unsent_values(o))
                elif prior.state in (SendState.SKIPPED, SendState.INVALID):
                    values = {f"b_{k}": v for k, v in _unsent_values(o).items()}
                    rewrite.append({"b_recipient": o.recipient, "b_prior_state": prior.state} | values)
            upsert(conn, sends, fresh, key=("campaign_id", "recipient"))
            if rewrite:
                conn.execute(self._rewrite_unsent_statement(campaign_id, attempt_id, db_now), rewrite)

        self.tx.write(work)

    def _rewrite_unsent_statement(
        self, campaign_id: str, attempt_id: str, db_now: datetime | None
    ) -> sa.Update:
        """Rewrite an unsent row, only if it is still in the state it was read in."""
        s = self.tables.sends.c
        return (
            self.tables.sends.update()
            .where(
                s.campaign_id == campaign_id,
                s.recipient == sa.bindparam("b_recipient"),
                s.state == sa.bindparam("b_prior_state"),
            )
            .values(
                state=sa.bindparam("b_state"),
                error_code=sa.bindparam("b_error_code"),
                error_title=sa.bindparam("b_error_title"),
                error_details=sa.bindparam("b_error_details"),
                attempt_id=attempt_id,
                updated_at=db_now,
            )
        )

    def record_results(
        self,
        campaign_id: str,
        outcomes: Sequence[SendOutcome],
        *,
        attempt_id: str,
        now: datetime | None = None,
    ) -> int:
        """Write the outcomes of claimed recipients (one executemany); returns rows updated.

        Only rows claimed by ``attempt_id`` are touched. The ``wa_id`` and ``user_id`` Meta answered
        are kept on the row and linked to the recipient
        (:mod:`~airflow_provider_wamm.campaign.ledger.identities`).
        """
        if not outcomes:
            return 0
        db_now = naive_utc(now or utcnow())
        ordered = sorted(outcomes, key=lambda item: item.recipient)
        rows = [_result_row(o, db_now) for o in ordered]
        links = [link for o in outcomes if _links_elsewhere(o) for link in _answer_links(o)]

        def work(conn: Connection) -> int:
            result = self._result_update.execute(conn, rows, (campaign_id, attempt_id, db_now))
            if links and self.identities is not None:
                self.identities.link_in(conn, links, as_utc(db_now) or utcnow())
            return int(result.rowcount or 0) if result.rowcount is not None and result.rowcount >= 0 else 0

        return self.tx.write(work)

    # -- streaming reads ------------------------------------------------------------------------

    def iter_sends(
        self, campaign_id: str, *, states: Iterable[str] | None = None, batch_size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Stream the ``sends`` rows of a campaign (optionally only some states), in key order."""
        s = self.tables.sends.c
        last = ""
        state_list = list(states) if states is not None else None
        while True:
            query = sa.select(self.tables.sends).where(s.campaign_id == campaign_id, s.recipient > last)
            if state_list is not None:
                query = query.where(s.state.in_(state_list))
            with self.tx.read() as conn:
                rows = [
                    dict(r) for r in conn.execute(query.order_by(s.recipient).limit(batch_size)).mappings()
                ]
            for row in rows:
                for col in _TIME_COLUMNS:
                    row[col] = as_utc(row[col])
                yield row
            if len(rows) < batch_size:
                return
            last = rows[-1]["recipient"]

    def iter_final_recipients(
        self, campaign_id: str, *, states: Iterable[str] = FINAL_STATES
    ) -> Iterator[str]:
        """Stream the recipients of a campaign whose send is in a final state."""
        for row in self.iter_sends(campaign_id, states=states):
            yield row["recipient"]


#: What one claim gives every row it inserts (after ``b_campaign_id``, the owner of :meth:`Claims.claim`).
_CLAIM_COMMON = (
    "b_campaign_id",
    "b_attempt_id",
    "b_shard_index",
    "b_template_name",
    "b_language",
    "b_variant",
    "b_claimed_at",
    "b_updated_at",
)
#: What each outcome gives :func:`_result_statement` (:func:`_result_row`), and what one call gives all.
_RESULT_NAMES = (
    "b_recipient",
    "b_state",
    "b_wamid",
    "b_message_status",
    "b_error_code",
    "b_error_title",
    "b_error_details",
    "b_attempts",
    "b_not_before",
    "b_accepted_at",
    "b_limited",
    "b_retry_after",
    "b_wa_id",
    "b_user_id",
)
_RESULT_COMMON = ("b_campaign_id", "b_attempt_id", "b_now")


def _claim_statement(sends: sa.Table, dialect_name: str) -> Any:
    """Insert a recipient's row as ``claimed`` unless the campaign has a row for it already."""
    owner: dict[str, Any] = {name.removeprefix("b_"): sa.bindparam(name) for name in _CLAIM_COMMON}
    values = {**owner, "recipient": sa.bindparam("b_recipient"), "state": SendState.CLAIMED, "attempts": 0}
    return upsert_statement(dialect_name, sends, key=("campaign_id", "recipient")).values(values)


def _result_statement(sends: sa.Table, dialect_name: str) -> sa.Update:
    """Write one outcome on a row this attempt claimed (see :meth:`Claims.record_results`)."""
    s = sends.c
    dt = datetime_type()
    now = sa.bindparam("b_now", type_=dt)
    limited = sa.bindparam("b_limited", type_=sa.Integer) == 1
    return (
        sends.update()
        .where(
            s.campaign_id == sa.bindparam("b_campaign_id"),
            s.recipient == sa.bindparam("b_recipient"),
            s.attempt_id == sa.bindparam("b_attempt_id"),
        )
        .values(
            state=sa.bindparam("b_state"),
            wamid=sa.bindparam("b_wamid"),
            message_status=sa.bindparam("b_message_status"),
            error_code=sa.bindparam("b_error_code"),
            error_title=sa.bindparam("b_error_title"),
            error_details=sa.bindparam("b_error_details"),
            attempts=sa.bindparam("b_attempts"),
            not_before=sa.bindparam("b_not_before", type_=dt),
            accepted_at=sa.bindparam("b_accepted_at", type_=dt),
            wa_id=sa.func.coalesce(sa.bindparam("b_wa_id", type_=sa.String()), s.wa_id),
            user_id=sa.func.coalesce(sa.bindparam("b_user_id", type_=sa.String()), s.user_id),
            updated_at=now,
            # Meta's per-user limit (131049): one more try, the time of the first kept, the next retry;
            # any other outcome clears the retry only.
            limited_tries=sa.case((limited, sa.func.coalesce(s.limited_tries, 0) + 1), else_=s.limited_tries),
            limited_since=sa.case((limited, sa.func.coalesce(s.limited_since, now)), else_=s.limited_since),
            retry_after=sa.bindparam("b_retry_after", type_=dt),
        )
    )


def _counts_inserted_rows(conn: Connection) -> bool:
    """Whether the row count of an insert that skips existing keys counts the rows inserted only (not
    on MySQL/MariaDB, which count a row found as changed)."""
    return conn.dialect.name in ("sqlite", "postgresql") and bool(conn.dialect.supports_sane_multi_rowcount)


def _retake_params(recipient: str, prior: ExistingSend) -> dict[str, Any]:
    """The bound values that take a reclaimable row over only if it is still as it was read."""
    return {"b_recipient": recipient, "b_state": prior.state, "b_prior_attempt": prior.attempt_id}


def _unsent_values(outcome: SendOutcome) -> dict[str, Any]:
    """The columns an unsent outcome writes: its state and why."""
    return {
        "state": outcome.state,
        **error_values(outcome.error_code, outcome.error_title, outcome.error_details),
    }


def _result_row(outcome: SendOutcome, db_now: datetime | None) -> tuple[Any, ...]:
    """The values of one outcome for :meth:`Claims.record_results`, in the order of ``_RESULT_NAMES``."""
    o = outcome
    accepted_at = naive_utc(o.accepted_at) or (db_now if o.state in DELIVERED_TO_META else None)
    return (
        o.recipient,
        o.state,
        o.wamid,
        o.message_status,
        o.error_code,
        clip(o.error_title, TITLE_MAX),
        clip(o.error_details, DETAILS_MAX),
        o.attempts,
        naive_utc(o.not_before),
        accepted_at,
        1 if o.error_code == CODE_PER_USER_LIMIT else 0,
        naive_utc(o.retry_after),
        clip(o.wa_id, 64),
        clip(o.user_id, 191),
    )


def _links_elsewhere(outcome: SendOutcome) -> bool:
    """Whether Meta's answer names the recipient by another key (most answers name the number sent)."""
    o = outcome
    return bool((o.wa_id and o.wa_id != o.recipient) or (o.user_id and o.user_id != o.recipient))


def _answer_links(outcome: SendOutcome) -> list[IdentityLink]:
    """The keys Meta's answer names for the recipient, linked to it."""
    return links_of((outcome.recipient, outcome.wa_id, outcome.user_id), IdentitySource.SEND_ANSWER)


__all__ = ["STALE_CLAIM_DETAILS", "Claims", "read_existing_sends"]
