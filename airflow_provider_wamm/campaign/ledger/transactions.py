"""How every part of the ledger reaches its database: retried write transactions, read-only reads.

The tables are created (or given the columns added since) on first use. Writes run in one transaction
each and are redone when the database reports a deadlock or a busy lock; reads take no write lock on
SQLite, so webhooks keep flowing while a report runs.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from airflow_provider_wamm.campaign.ledger.schema import add_missing_columns, is_retryable

#: Tries of one transaction (and of creating the tables) before the error is raised.
TX_RETRIES = 6

_ResultT = TypeVar("_ResultT")


class Transactions:
    """The transaction runner shared by the parts of one ledger.

    :param engine: the ledger's SQLAlchemy engine.
    :param metadata: the ledger's tables, created on first use.
    """

    def __init__(self, engine: Engine, metadata: sa.MetaData) -> None:
        self.engine = engine
        self.metadata = metadata
        self._ready = False
        self._init_lock = threading.Lock()
        self._ambient = threading.local()  # the connection of this thread's write in progress
        # SQLite has a single writer anyway; serialising here avoids "database is locked" surprises
        # and makes a shared in-memory connection (StaticPool) safe across threads.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    def ensure_schema(self) -> None:
        """Create the tables and indexes that do not exist yet (safe to call any number of times)."""
        if self._ready:
            return
        with self._init_lock:
            if self._ready:
                return
            for attempt in range(TX_RETRIES):
                try:
                    self.metadata.create_all(self.engine, checkfirst=True)
                    add_missing_columns(self.engine, self.metadata)  # tables of an earlier version
                    break
                except sa.exc.DBAPIError:
                    # Another process created one of the tables between the check and the CREATE
                    # (shards starting together race through all of them): check again.
                    if attempt == TX_RETRIES - 1:
                        raise
                    time.sleep(random.uniform(0.01, 0.1) * (attempt + 1))
            self._ready = True

    def write(self, work: Callable[[Connection], _ResultT]) -> _ResultT:
        """Run ``work`` in one transaction, retried when the database reports a deadlock.

        Concurrent claims of overlapping recipients can deadlock on PostgreSQL and MySQL (each waits
        for a key the other inserted); the database aborts one transaction and it is simply redone.
        A write started inside another one on the same thread joins its transaction (and its retries).
        """
        ambient: Connection | None = getattr(self._ambient, "conn", None)
        if ambient is not None:
            return work(ambient)
        self.ensure_schema()
        for attempt in range(TX_RETRIES):
            try:
                with self._lock, self.engine.begin() as conn:
                    self._ambient.conn = conn
                    try:
                        return work(conn)
                    finally:
                        self._ambient.conn = None
            except sa.exc.DBAPIError as exc:
                if attempt == TX_RETRIES - 1 or not is_retryable(exc):
                    raise
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection (SQLite: no write lock is taken, so webhooks keep flowing)."""
        self.ensure_schema()
        with self._lock, self.engine.connect() as raw:
            yield raw.execution_options(wamm_read_only=True)


__all__ = ["TX_RETRIES", "Transactions"]
