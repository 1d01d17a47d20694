"""The :class:`Ledger`: one object over the ledger's parts (claims, runs, deliveries, suppressions, and
Meta's other signals: the suppression audit, template events, account signals).

Each part gets the tables and the transaction runner it needs; the ledger only composes them and
keeps the one public API the sender, the operator, the webhook receiver and the report use.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from airflow_provider_wamm.campaign.ledger.account_signals import AccountLog
from airflow_provider_wamm.campaign.ledger.claims import Claims
from airflow_provider_wamm.campaign.ledger.deliveries import Deliveries
from airflow_provider_wamm.campaign.ledger.identities import IdentityMap
from airflow_provider_wamm.campaign.ledger.records import as_utc, utcnow
from airflow_provider_wamm.campaign.ledger.runs import Runs
from airflow_provider_wamm.campaign.ledger.schema import DEFAULT_TABLE_PREFIX, define_tables, ledger_engine
from airflow_provider_wamm.campaign.ledger.senders import SenderRegistry
from airflow_provider_wamm.campaign.ledger.signal_records import AccountSignal, SignalBatch, TemplateEvent
from airflow_provider_wamm.campaign.ledger.suppressions import SuppressionList
from airflow_provider_wamm.campaign.ledger.template_events import TemplateLog
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

_ResultT = TypeVar("_ResultT")
_P = ParamSpec("_P")


def forward(
    part: str, method: Callable[Concatenate[Any, _P], _ResultT]
) -> Callable[Concatenate[Any, _P], _ResultT]:
    """A :class:`Ledger` method that calls ``method`` on the ledger's part named ``part``.

    The part's method is the one definition: its signature and docstring are the ledger's.
    """
    name = method.__name__

    @functools.wraps(method)
    def forwarded(self: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _ResultT:
        bound: Callable[_P, _ResultT] = getattr(getattr(self, part), name)
        return bound(*args, **kwargs)

    return forwarded


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
        self.senders = tables.senders
        self.suppression_audit = tables.signals.suppression_audit
        self.template_events = tables.signals.template_events
        self.account_signals = tables.signals.account_signals
        self.identities = tables.identities
        self._tx = Transactions(engine, tables.metadata)
        self._identities = IdentityMap(tables.identities, self._tx)
        self._claims = Claims(tables, self._tx, self._identities)
        self._runs = Runs(tables, self._tx)
        self.sender_registry = SenderRegistry(tables, self._tx)
        """The running senders of each phone number (the shared cap)."""
        self._suppression_list = SuppressionList(tables, self._tx, self._identities)
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

    start_run = forward("_runs", Runs.start_run)
    heartbeat = forward("_runs", Runs.heartbeat)
    finish_run = forward("_runs", Runs.finish_run)
    list_runs = forward("_runs", Runs.list_runs)

    # -- sends ----------------------------------------------------------------------------------

    mark_stale_claims = forward("_claims", Claims.mark_stale_claims)
    take_over_claims = forward("_claims", Claims.take_over_claims)
    existing_sends = forward("_claims", Claims.existing_sends)
    claim = forward("_claims", Claims.claim)
    record_unsent = forward("_claims", Claims.record_unsent)
    record_results = forward("_claims", Claims.record_results)
    release_claims = forward("_claims", Claims.release_claims)
    iter_sends = forward("_claims", Claims.iter_sends)
    iter_final_recipients = forward("_claims", Claims.iter_final_recipients)

    # -- suppressions and frequency cap ---------------------------------------------------------

    add_suppressions = forward("_suppression_list", SuppressionList.add_suppressions)
    remove_suppressions = forward("_suppression_list", SuppressionList.remove_suppressions)
    active_suppressions = forward("_suppression_list", SuppressionList.active_suppressions)
    recently_messaged = forward("_suppression_list", SuppressionList.recently_messaged)
    suppression_history = forward("_suppression_list", SuppressionList.history)

    # -- who is the same person ------------------------------------------------------------------

    link_identities = forward("_identities", IdentityMap.link_identities)
    person_keys = forward("_identities", IdentityMap.person_keys)

    # -- Meta's other signals -------------------------------------------------------------------

    record_preferences = forward("_suppression_list", SuppressionList.record_preferences)

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
                "identities": self.link_identities(batch.identities, now=now),
            }

        return self.atomic(work)

    template_state = forward("_templates", TemplateLog.template_state)
    template_events_since = forward("_templates", TemplateLog.events_since)
    latest_messaging_limit = forward("_accounts", AccountLog.latest_messaging_limit)
    phone_number_quality = forward("_accounts", AccountLog.phone_number_quality)
    latest_account_signal = forward("_accounts", AccountLog.latest_signal)
    account_signals_since = forward("_accounts", AccountLog.signals_since)

    # -- webhook statuses and clicks ------------------------------------------------------------

    record_statuses = forward("_deliveries", Deliveries.record_statuses)
    record_clicks = forward("_deliveries", Deliveries.record_clicks)
    status_of = forward("_deliveries", Deliveries.status_of)
    resolve_unknown = forward("_deliveries", Deliveries.resolve_unknown)


__all__ = ["Ledger"]
