"""The :class:`Ledger`: one object over the ledger's parts (claims, runs, deliveries, suppressions).

Each part gets the tables and the transaction runner it needs; the ledger only composes them and
keeps the one public API the sender, the operator, the webhook receiver and the report use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from airflow_provider_wamm.campaign.ledger.claims import Claims
from airflow_provider_wamm.campaign.ledger.deliveries import Deliveries
from airflow_provider_wamm.campaign.ledger.records import (
    FINAL_STATES,
    ClickEvent,
    ExistingSend,
    SendOutcome,
    StatusUpdate,
    Suppression,
)
from airflow_provider_wamm.campaign.ledger.runs import Liveness, Runs
from airflow_provider_wamm.campaign.ledger.schema import DEFAULT_TABLE_PREFIX, define_tables, ledger_engine
from airflow_provider_wamm.campaign.ledger.suppressions import SuppressionList
from airflow_provider_wamm.campaign.ledger.transactions import Transactions


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
        self._tx = Transactions(engine, tables.metadata)
        self._claims = Claims(tables, self._tx)
        self._runs = Runs(tables, self._tx)
        self._suppression_list = SuppressionList(tables, self._tx)
        self._deliveries = Deliveries(tables, self._tx, self._suppression_list)

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

    def remove_suppressions(self, recipients: Sequence[str]) -> int:
        """Lift suppressions (e.g. a user opted back in); returns how many were removed."""
        return self._suppression_list.remove_suppressions(recipients)

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
