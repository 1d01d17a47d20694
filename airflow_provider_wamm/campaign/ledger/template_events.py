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

from airflow_provider_wamm.campaign.ledger.audit import row_id_type
from airflow_provider_wamm.campaign.ledger.event_log import EventLog, event_key
from airflow_provider_wamm.campaign.ledger.records import as_utc, clip, naive_utc
from airflow_provider_wamm.campaign.ledger.schema import datetime_type, key_type
from airflow_provider_wamm.campaign.ledger.signal_records import (
    CATEGORY_CHANGE_PENDING,
    CATEGORY_CHANGED,
    TemplateEvent,
    TemplateEventKind,
    TemplateState,
)
from airflow_provider_wamm.campaign.ledger.transactions import Transactions

#: Longest stored template name (Meta's limit).
TEMPLATE_NAME_MAX = 512
#: Longest stored ``detail`` of a template event.
TEMPLATE_DETAIL_MAX = 1000
#: Most events one query returns unless told otherwise.
DEFAULT_EVENT_LIMIT = 1000


def define_template_events(metadata: sa.MetaData, p: str) -> sa.Table:
    """The ``template_events`` table of a ledger with table prefix ``p``."""
    dt = datetime_type
    return sa.Table(
        f"{p}template_events",
        metadata,
        sa.Column("id", row_id_type(), primary_key=True, autoincrement=True),
        sa.Column("event_key", sa.String(32), nullable=False, unique=True),
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
        sa.Column("effective_at", dt()),
        sa.Column("event_at", dt()),
        sa.Column("received_at", dt(), nullable=False),
        sa.Index(f"ix_{p}tplevents_template", "template_id"),
        sa.Index(f"ix_{p}tplevents_name", "template_name", "language"),
        sa.Index(f"ix_{p}tplevents_received", "received_at"),
    )


def _values(event: TemplateEvent) -> dict[str, Any]:
    """The stored values of an event, clipped to their columns (times excluded)."""
    return {
        "kind": str(event.kind),
        "event": clip(event.event, 64),
        "waba_id": clip(event.waba_id, 64),
        "template_id": clip(event.template_id, 64),
        "template_name": clip(event.template_name, TEMPLATE_NAME_MAX),
        "language": clip(event.language, 32),
        "reason": clip(event.reason, 64),
        "category": clip(event.category, 32),
        "previous": clip(event.previous, 32),
        "correct_category": clip(event.correct_category, 32),
        "quality_score": clip(event.quality_score, 16),
        "detail": clip(event.detail, TEMPLATE_DETAIL_MAX),
    }


def _row(event: TemplateEvent) -> dict[str, Any]:
    """The bound values of one ``template_events`` row (its key and arrival added by the log)."""
    return {
        **_values(event),
        "effective_at": naive_utc(event.effective_at),
        "event_at": naive_utc(event.event_at),
    }


def _event(row: Any) -> TemplateEvent:
    """A stored row read back."""
    return TemplateEvent(
        kind=TemplateEventKind(row.kind),
        event=row.event,
        waba_id=row.waba_id,
        template_id=row.template_id,
        template_name=row.template_name,
        language=row.language,
        event_at=as_utc(row.event_at),
        reason=row.reason,
        category=row.category,
        previous=row.previous,
        correct_category=row.correct_category,
        quality_score=row.quality_score,
        effective_at=as_utc(row.effective_at),
        detail=row.detail,
        id=int(row.id),
        received_at=as_utc(row.received_at),
    )


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
        super().__init__(table, tx, _row, _event)

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
