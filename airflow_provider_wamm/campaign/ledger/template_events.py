"""Template lifecycle: the ``template_events`` table and what it says about a template now.

Every template status, quality and category webhook is kept as one dated row, deduplicated (a
redelivered webhook is stored once). A template's current status, category and quality are read from
its newest events by Meta's time, so webhooks that arrive out of order are harmless. Following Meta's
routing rule, the category changes only on a completed category change; an announced one is kept as
``pending_category`` for monitoring.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger.event_log import EventLog, define_event_table, event_key
from airflow_provider_wamm.campaign.ledger.rows import record_from_row
from airflow_provider_wamm.campaign.ledger.schema import TEMPLATE_NAME_MAX, datetime_type, key_type
from airflow_provider_wamm.campaign.ledger.signal_records import (
    CATEGORY_CHANGE_PENDING,
    CATEGORY_CHANGED,
    TemplateEvent,
    TemplateEventKind,
    TemplateState,
)
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

#: Longest stored ``detail`` of a template event.
TEMPLATE_DETAIL_MAX = 1000
#: Most events one query returns unless told otherwise.
DEFAULT_EVENT_LIMIT = 1000


def define_template_events(metadata: sa.MetaData, p: str) -> sa.Table:
    """The ``template_events`` table of a ledger with table prefix ``p``."""
    columns: list[sa.Column[Any]] = [
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("waba_id", key_type(64)),
        sa.Column("template_id", key_type(64)),
        sa.Column("template_name", key_type(TEMPLATE_NAME_MAX)),
        sa.Column("language", key_type(32)),
        sa.Column("reason", sa.String(64)),
        sa.Column("category", sa.String(32)),
        sa.Column("previous", sa.String(32)),
        sa.Column("correct_category", sa.String(32)),
        sa.Column("quality_score", sa.String(16)),
        sa.Column("detail", sa.String(TEMPLATE_DETAIL_MAX)),
        sa.Column("effective_at", datetime_type()),
    ]
    indexes = [
        sa.Index(f"ix_{p}tplevents_template", "template_id"),
        sa.Index(f"ix_{p}tplevents_name", "template_name", "language"),
    ]
    return define_event_table(metadata, f"{p}template_events", f"ix_{p}tplevents", columns, indexes)


def _event(row: Any) -> TemplateEvent:
    """A stored row read back."""
    return record_from_row(TemplateEvent, row, kind=TemplateEventKind(row.kind))


def _when(event: TemplateEvent) -> datetime | None:
    """Meta's time of an event, else when it was received."""
    return event.event_at or event.received_at


def fold_state(events: Sequence[TemplateEvent]) -> TemplateState | None:
    """What ``events`` (one template's, oldest first by Meta's time) say about it now."""
    if not events:
        return None
    state: dict[str, Any] = {
        "template_id": None,
        "template_name": None,
        "language": None,
        "waba_id": None,
    }
    for e in events:
        for name in ("template_id", "template_name", "language", "waba_id"):
            state[name] = getattr(e, name) or state[name]
        when = _when(e)
        if e.kind == TemplateEventKind.STATUS:
            state.update(status=e.event, status_at=when, reason=e.reason)
            if e.category:
                state.update(category=e.category, category_at=when)
        elif e.kind == TemplateEventKind.QUALITY:
            state.update(quality_score=e.quality_score or e.event, quality_at=when)
        elif e.event == CATEGORY_CHANGED:
            state.update(category=e.category, category_at=when, pending_category=None, pending_at=None)
        elif e.event == CATEGORY_CHANGE_PENDING:
            state.update(pending_category=e.correct_category, pending_at=e.effective_at)
    return TemplateState(**state)


class TemplateLog(EventLog[TemplateEvent]):
    """Store template events and answer "what is template X now" and "which events since t".

    :param table: the ``template_events`` table.
    :param tx: the ledger's transaction runner.
    """

    def __init__(self, table: sa.Table, tx: Transactions) -> None:
        super().__init__(table, tx, _event)

    def _matching(
        self,
        *,
        template_id: str | None,
        name: str | None,
        language: str | None,
        waba_id: str | None,
    ) -> list[Any]:
        """WHERE clauses naming one template by id, or by name (and language)."""
        t = self.table.c
        if template_id is None and name is None:
            raise ValueError("name a template by template_id, or by name (and language)")
        where: list[Any] = []
        if template_id is not None:
            where.append(t.template_id == str(template_id))
        else:
            where.append(t.template_name == name)
            if language is not None:
                where.append(t.language == language)
        if waba_id is not None:
            where.append(t.waba_id == str(waba_id))
        return where

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
        where = self._matching(template_id=template_id, name=name, language=language, waba_id=waba_id)
        return fold_state(self.in_meta_order(*where))

    def events_since(
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
        limit: int = DEFAULT_EVENT_LIMIT,
    ) -> list[TemplateEvent]:
        """Template events received at or after ``since`` (and after row ``after_id``), oldest first.

        ``kinds`` (``status``, ``quality``, ``category``), ``events`` (``APPROVED``, ``PAUSED``,
        ``RED``...) and a template (by id, or by name and language) narrow them.
        """
        t = self.table.c
        where: list[Any] = []
        if events is not None:
            where.append(t.event.in_([str(e).upper() for e in events]))
        if template_id is not None or name is not None:
            where.extend(
                self._matching(template_id=template_id, name=name, language=language, waba_id=waba_id)
            )
        elif waba_id is not None:
            where.append(t.waba_id == str(waba_id))
        return self.since(since, *where, after_id=after_id, kinds=kinds, limit=limit)


__all__ = [
    "DEFAULT_EVENT_LIMIT",
    "TEMPLATE_DETAIL_MAX",
    "TEMPLATE_NAME_MAX",
    "TemplateLog",
    "define_template_events",
    "event_key",
    "fold_state",
]
