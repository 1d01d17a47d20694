"""The :class:`Ledger`: one object over the ledger's parts (claims, runs, deliveries, suppressions, and
Meta's other signals: the suppression audit, template events, account signals).

Each part gets the tables and the transaction runner it needs; the ledger only composes them and
keeps the one public API the sender, the operator, the webhook receiver and the report use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from airflow_provider_wamm.campaign.ledger.account_signals import AccountLog
from airflow_provider_wamm.campaign.ledger.claims import Claims
from airflow_provider_wamm.campaign.ledger.deliveries import Deliveries
from airflow_provider_wamm.campaign.ledger.records import (
    FINAL_STATES,
    ClickEvent,
    ExistingSend,
    PreferenceChange,
    SendOutcome,
    StatusUpdate,
    Suppression,
    SuppressionChange,
    as_utc,
    utcnow,
)
from airflow_provider_wamm.campaign.ledger.runs import Liveness, Runs
from airflow_provider_wamm.campaign.ledger.schema import DEFAULT_TABLE_PREFIX, define_tables, ledger_engine
from airflow_provider_wamm.campaign.ledger.signal_records import (
    AccountSignal,
    SignalBatch,
    TemplateEvent,
    TemplateState,
)
from airflow_provider_wamm.campaign.ledger.suppressions import SuppressionList
from airflow_provider_wamm.campaign.ledger.template_events import TemplateLog
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

_ResultT = TypeVar("_ResultT")


class Ledger:
    """Campaign bookkeeping in any SQLAlchemy database (SQLite, PostgreSQL, MySQL/MariaDB).

    :param engine: a SQLAlchemy engine; the tables are created on first use if they do not exist.
    :param table_prefix: prefix of every table name (letters, digits, ``_``; at most 32 characters),
        so several ledgers can share a database.
    :param schema: optional database schema (PostgreSQL) holding the tables.
    """

    def __init__(
        self, engine: Engine, *, table_prefix: str = DEFAULT_TABLE_PREFIX, schema: str | None = None
    ) -> None:
        tables = define_tables(table_prefix, schema)
        self.engine = engine
        self.table_prefix = table_prefix
        self.schema = schema
        self.metadata = tables.metadata
        self.sends = tables.sends
        self.statuses = tables.statuses
        self.clicks = tables.clicks
        self.suppressions = tables.suppressions
        self.runs = tables.runs
        self.suppression_audit = tables.signals.suppression_audit
        self.template_events = tables.signals.template_events
        self.account_signals = tables.signals.account_signals
        self._tx = Transactions(engine, tables.metadata)
        self._claims = Claims(tables, self._tx)
        self._runs = Runs(tables, self._tx)
        self._suppression_list = SuppressionList(tables, self._tx)
        self._deliveries = Deliveries(tables, self._tx, self._suppression_list)
        self._templates = TemplateLog(tables.signals.template_events, self._tx)
        self._accounts = AccountLog(tables.signals.account_signals, self._tx)

    @classmethod
    def from_url(
        cls, url: str | sa.engine.URL, *, table_prefix: str = DEFAULT_TABLE_PREFIX, **engine_kwargs: Any
    ) -> Ledger:
        """Create a ledger from a SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://...``).

        SQLite gets sensible defaults: a shared connection for ``:memory:`` (so every thread sees the
        same database), and for files WAL journaling, a 30 s busy timeout and ``BEGIN IMMEDIATE``
        transactions, so concurrent writers wait for each other instead of failing.
        """
        return cls(ledger_engine(url, **engine_kwargs), table_prefix=table_prefix)

    def __repr__(self) -> str:
        return f"Ledger(dialect={self.engine.dialect.name!r}, table_prefix={self.table_prefix!r})"

    def dispose(self) -> None:
        """Close the engine's pooled connections (call when done with a ledger made by :meth:`from_url`)."""
        self.engine.dispose()

    # -- plumbing -------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables and indexes that do not exist yet (safe to call any number of times)."""
        self._tx.ensure_schema()

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (SQLite: no write lock is taken, so webhooks keep flowing)."""
        with self._tx.read() as conn:
            yield conn

    def atomic(self, work: Callable[[], _ResultT]) -> _ResultT:
        """Run ``work`` so that every ledger write it makes (on this thread) is one transaction.

        Either all of them are stored or none (the webhook receiver stores one body this way). The
        whole of ``work`` is run again when the database reports a deadlock, so keep it to ledger calls.
        """
        return self._tx.write(lambda _conn: work())

    # -- runs -----------------------------------------------------------------------------------

    def start_run(
        self,
        campaign_id: str,
        attempt_id: str,
        *,
        shard_index: int = 0,
        shard_count: int = 1,
        dry_run: bool = False,
        now: datetime | None = None,
        owner: str | None = None,
        try_number: int | None = None,
    ) -> None:
        """Record that an attempt of a campaign (one shard of it) started.

        :param owner: the task instance the attempt belongs to, if any (an opaque name such as
            ``dag_id.task_id.run_id.map_index``): a newer try of it takes over the older try's claims
            at once when that try stopped beating its heartbeat.
        :param try_number: which try of ``owner`` this is.
        """
        self._runs.start_run(
            campaign_id,
            attempt_id,
            shard_index=shard_index,
            shard_count=shard_count,
            dry_run=dry_run,
            now=now,
            owner=owner,
            try_number=try_number,
        )

    def heartbeat(self, attempt_id: str, *, now: datetime | None = None) -> None:
        """Record that a running attempt is alive (its claims are not abandoned)."""
        self._runs.heartbeat(attempt_id, now=now)

    def finish_run(
        self, attempt_id: str, *, state: str, summary: Mapping[str, Any], now: datetime | None = None
    ) -> None:
        """Record how an attempt ended (``finished``, ``halted``, ``error``, ``killed``) with its counts."""
        self._runs.finish_run(attempt_id, state=state, summary=summary, now=now)

    def list_runs(self, campaign_id: str) -> list[dict[str, Any]]:
        """Every recorded attempt of a campaign, oldest first, with its summary decoded."""
        return self._runs.list_runs(campaign_id)

    # -- sends ----------------------------------------------------------------------------------

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

        Called when an attempt starts, and for the recipients it waits for. An attempt still
        ``running`` whose last heartbeat is within ``live_within`` is alive (two runs of one campaign at
        once): its claims are left to it. ``liveness`` says the same with the looking attempt's task
        instance, so that an older try of it is over sooner (see
        :class:`~airflow_provider_wamm.campaign.ledger.runs.Liveness`). Restrict it to the attempt's
        own ``shard_index`` when shards of the same campaign run concurrently, or to ``recipients``.
        """
        return self._claims.mark_stale_claims(
            campaign_id,
            attempt_id=attempt_id,
            shard_index=shard_index,
            live_within=live_within,
            now=now,
            liveness=liveness,
            recipients=recipients,
        )

    def take_over_claims(
        self,
        campaign_id: str,
        *,
        attempt_id: str,
        liveness: Liveness,
        shard_index: int | None = None,
        recipients: Sequence[str] | None = None,
    ) -> list[str]:
        """:meth:`mark_stale_claims` for an attempt that names what it took over: returns the recipients
        whose claims became ``unknown``, sorted."""
        return self._claims.take_over_claims(
            campaign_id,
            attempt_id=attempt_id,
            liveness=liveness,
            shard_index=shard_index,
            recipients=recipients,
        )

    def existing_sends(self, campaign_id: str, recipients: Sequence[str]) -> dict[str, ExistingSend]:
        """The ledger rows of ``recipients`` in this campaign (absent ones are missing from the dict)."""
        return self._claims.existing_sends(campaign_id, recipients)

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

        Absent recipients are inserted as ``claimed`` (insert-if-absent: the primary key makes sure
        two attempts or shards never both claim one); recipients whose row may be re-sent (see
        :meth:`ExistingSend.reclaimable`) are taken over with a conditional update that only succeeds
        if the row is still as it was read (the rows are read in the claiming transaction).
        """
        return self._claims.claim(
            campaign_id,
            recipients,
            attempt_id=attempt_id,
            shard_index=shard_index,
            template_name=template_name,
            language=language,
            variant=variant,
            resend_unknown=resend_unknown,
            now=now,
        )

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

        Only absent rows and rows that never reached Meta (``skipped``, ``invalid``) are written; a
        row recording a real send is never overwritten.
        """
        self._claims.record_unsent(
            campaign_id,
            outcomes,
            attempt_id=attempt_id,
            shard_index=shard_index,
            template_name=template_name,
            language=language,
            variant=variant,
            now=now,
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

        Only rows claimed by ``attempt_id`` are touched.
        """
        return self._claims.record_results(campaign_id, outcomes, attempt_id=attempt_id, now=now)

    def release_claims(
        self, campaign_id: str, *, attempt_id: str, recipients: Sequence[str] | None = None
    ) -> int:
        """Delete this attempt's rows still ``claimed`` (never sent), so a later run sends them.

        Used when a campaign halts or stops (results of in-flight requests must be recorded first), and
        for ``recipients`` whose request was answered with an error and waits for a retry.
        """
        return self._claims.release_claims(campaign_id, attempt_id=attempt_id, recipients=recipients)

    def iter_sends(
        self, campaign_id: str, *, states: Iterable[str] | None = None, batch_size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Stream the ``sends`` rows of a campaign (optionally only some states), in key order."""
        return self._claims.iter_sends(campaign_id, states=states, batch_size=batch_size)

    def iter_final_recipients(
        self, campaign_id: str, *, states: Iterable[str] = FINAL_STATES
    ) -> Iterator[str]:
        """Stream the recipients of a campaign whose send is in a final state."""
        return self._claims.iter_final_recipients(campaign_id, states=states)

    # -- suppressions and frequency cap ---------------------------------------------------------

    def add_suppressions(self, entries: Sequence[Suppression], *, now: datetime | None = None) -> None:
        """Add or extend suppressions (one executemany).

        A suppression for ever is never shortened; otherwise the later ``until`` wins.
        """
        self._suppression_list.add_suppressions(entries, now=now)

    def remove_suppressions(self, recipients: Sequence[str], *, now: datetime | None = None) -> int:
        """Lift suppressions by hand (the business's decision, audited as ``manual``); returns how many
        were removed. A person's own resume arrives as a ``user_preferences`` webhook instead
        (:meth:`record_preferences`)."""
        return self._suppression_list.remove_suppressions(recipients, now=now)

    def active_suppressions(
        self, recipients: Sequence[str], *, now: datetime | None = None
    ) -> dict[str, Suppression]:
        """Suppressions in force at ``now`` for any of ``recipients``, by recipient."""
        return self._suppression_list.active_suppressions(recipients, now=now)

    def recently_messaged(
        self,
        recipients: Sequence[str],
        *,
        since: datetime,
        exclude_campaign_id: str | None = None,
    ) -> set[str]:
        """Recipients Meta took a message for (accepted/held/paused) in any campaign since ``since``."""
        return self._suppression_list.recently_messaged(
            recipients, since=since, exclude_campaign_id=exclude_campaign_id
        )

    def suppression_history(self, recipient: str) -> list[SuppressionChange]:
        """Every change of one person's suppression, oldest first: what, when (Meta's time and the
        recording time), and from which signal (webhook, error code and campaign, or by hand).

        :param recipient: E.164 digits, or a business-scoped user id.
        """
        return self._suppression_list.history(recipient)

    # -- Meta's other signals -------------------------------------------------------------------

    def record_preferences(self, changes: Sequence[PreferenceChange], *, now: datetime | None = None) -> int:
        """Apply stops and resumes of marketing messages (``user_preferences``); returns how many.

        A stop suppresses the person for ever; a resume lifts a stop (from a webhook or a 131050) but
        never a ``manual`` suppression nor a per-user-limit wait. A change older, by Meta's clock, than
        the last one applied to that person is recorded as stale and not applied. Every change is audited.
        """
        return self._suppression_list.record_preferences(changes, now=now)

    def record_template_events(self, events: Sequence[TemplateEvent], *, now: datetime | None = None) -> int:
        """Store template status, quality and category events (deduplicated); returns how many distinct."""
        at = as_utc(now) or utcnow()
        return int(self._tx.write(lambda conn: self._templates.record_in(conn, events, at)))

    def record_account_signals(self, signals: Sequence[AccountSignal], *, now: datetime | None = None) -> int:
        """Store account, capability, phone-number quality and alert signals (deduplicated)."""
        at = as_utc(now) or utcnow()
        return int(self._tx.write(lambda conn: self._accounts.record_in(conn, signals, at)))

    def record_signals(self, batch: SignalBatch, *, now: datetime | None = None) -> dict[str, int]:
        """Store everything in ``batch`` in one transaction; returns the counts per kind."""

        def work() -> dict[str, int]:
            return {
                "preferences": self.record_preferences(batch.preferences, now=now),
                "template_events": self.record_template_events(batch.template_events, now=now),
                "account_signals": self.record_account_signals(batch.account_signals, now=now),
            }

        return self.atomic(work)

    def template_state(
        self,
        *,
        template_id: str | None = None,
        name: str | None = None,
        language: str | None = None,
        waba_id: str | None = None,
    ) -> TemplateState | None:
        """The current status, category and quality of one template, from its newest events by Meta's
        time (``None`` when no event named it).

        Name it by ``template_id``, or by ``name`` and ``language``. The category changes only on a
        completed category change; an announced one shows as ``pending_category``.
        """
        return self._templates.template_state(
            template_id=template_id, name=name, language=language, waba_id=waba_id
        )

    def template_events_since(
        self,
        since: datetime | None = None,
        *,
        after_id: int | None = None,
        kinds: Iterable[str] | None = None,
        events: Iterable[str] | None = None,
        template_id: str | None = None,
        name: str | None = None,
        language: str | None = None,
        waba_id: str | None = None,
        limit: int = 1000,
    ) -> list[TemplateEvent]:
        """Template events received at or after ``since`` (and after row ``after_id``), oldest first.

        ``kinds`` (``status``, ``quality``, ``category``), ``events`` (``APPROVED``, ``PAUSED``,
        ``RED``...) and a template (by id, or by name and language) narrow them.
        """
        return self._templates.events_since(
            since,
            after_id=after_id,
            kinds=kinds,
            events=events,
            template_id=template_id,
            name=name,
            language=language,
            waba_id=waba_id,
            limit=limit,
        )

    def latest_messaging_limit(
        self, *, phone_number: str | None = None, waba_id: str | None = None
    ) -> AccountSignal | None:
        """The newest signal that reported a messaging limit (``messaging_limit`` holds the tier), for a
        phone number (as displayed, digits compared) and/or an account; ``None`` when none did."""
        return self._accounts.latest_messaging_limit(phone_number=phone_number, waba_id=waba_id)

    def phone_number_quality(self, phone_number: str) -> AccountSignal | None:
        """The newest ``phone_number_quality_update`` of a number (its ``event``: ``FLAGGED``,
        ``UNFLAGGED``, ``THROUGHPUT_UPGRADE``...; its limit), or ``None``."""
        return self._accounts.phone_number_quality(phone_number)

    def latest_account_signal(
        self, kind: str, *, waba_id: str | None = None, events: Iterable[str] | None = None
    ) -> AccountSignal | None:
        """The newest signal of one kind (``account_update``...), optionally of one account and event."""
        return self._accounts.latest_signal(kind, waba_id=waba_id, events=events)

    def account_signals_since(
        self,
        since: datetime | None = None,
        *,
        after_id: int | None = None,
        kinds: Iterable[str] | None = None,
        waba_id: str | None = None,
        limit: int = 1000,
    ) -> list[AccountSignal]:
        """Account signals received at or after ``since`` (and after row ``after_id``), oldest first."""
        return self._accounts.signals_since(
            since, after_id=after_id, kinds=kinds, waba_id=waba_id, limit=limit
        )

    # -- webhook statuses and clicks ------------------------------------------------------------

    def record_statuses(self, updates: Sequence[StatusUpdate], *, now: datetime | None = None) -> int:
        """Apply webhook statuses; returns the number of distinct (wamid, status) events applied.

        Idempotent and order-independent: duplicates are ignored, a status never replaces one of a
        higher rank (``sent`` < ``delivered`` < ``read``; ``failed`` is terminal and keeps its error),
        each per-status timestamp keeps its earliest value. A status whose wamid has no send row (yet)
        is stored anyway and joins its send later by wamid. Unknown status names are ignored.
        A failed status for an opt-out (131050) or Meta's per-user limit (131049) adds a suppression.
        """
        return self._deliveries.record_statuses(updates, now=now)

    def record_clicks(self, clicks: Sequence[ClickEvent], *, now: datetime | None = None) -> int:
        """Store link clicks (deduplicated by click id); returns how many distinct clicks were given.

        Clicks that name their message update its ``clicked_at`` (first click) and ``click_count``.
        """
        return self._deliveries.record_clicks(clicks, now=now)

    def status_of(self, wamid: str) -> dict[str, Any] | None:
        """The stored delivery status row of one message (``None`` if no webhook came yet)."""
        return self._deliveries.status_of(wamid)


__all__ = ["Ledger"]
