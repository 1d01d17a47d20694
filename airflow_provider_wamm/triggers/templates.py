"""``TemplateEventTrigger``: turn stored template events into Airflow asset events.

The webhook receiver stores every template status, quality and category webhook in the ledger. This
trigger polls the ledger for new ones and fires one :class:`~airflow.triggers.base.TriggerEvent` per
matching event. Used in an :class:`~airflow.sdk.AssetWatcher`, each event becomes an asset event, so a
DAG can be scheduled on "template approved" or "template paused":

.. code-block:: python

    approved = Asset(
        "whatsapp://templates/spring_sale/en_US/approved",
        watchers=[
            AssetWatcher(
                name="spring_sale_approved",
                trigger=TemplateEventTrigger(
                    events=["APPROVED"], template_name="spring_sale", language="en_US"
                ),
            )
        ],
    )

The trigger only reads (it never sends anything), each poll runs in a worker thread so the triggerer's
event loop is never blocked, and it runs until the watcher is removed. Only events received after the
watcher first started fire (or within ``lookback`` seconds before it). Where it has read up to is kept
in the asset's state store when Airflow provides one, so a triggerer restart neither fires an event
twice nor misses one; without a store it starts again from its start time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import TriggerEvent

from airflow_provider_wamm.campaign.ledger import (
    DEFAULT_TABLE_PREFIX,
    TemplateEvent,
    TemplateEventKind,
    as_utc,
    utcnow,
)
from airflow_provider_wamm.triggers.ledger_reads import LedgerReads

if TYPE_CHECKING:
    from airflow_provider_wamm.campaign.ledger import Ledger

#: Each read goes back this far before the previous one (a transaction that committed late, or a
#: receiver whose clock is a little behind, is not missed); events that already fired are skipped.
OVERLAP = timedelta(minutes=5)
#: Most events one poll reads.
POLL_LIMIT = 5000


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def event_payload(event: TemplateEvent) -> dict[str, Any]:
    """The JSON-safe payload of one template event (it becomes the asset event's ``extra``)."""
    return {
        "id": event.id,
        "kind": str(event.kind),
        "event": event.event,
        "waba_id": event.waba_id,
        "template_id": event.template_id,
        "template_name": event.template_name,
        "language": event.language,
        "reason": event.reason,
        "category": event.category,
        "correct_category": event.correct_category,
        "quality_score": event.quality_score,
        "detail": (event.detail or "")[:300] or None,
        "event_at": _iso(event.event_at),
        "received_at": _iso(event.received_at),
    }


@dataclass
class Cursor:
    """Where the trigger has read up to.

    Every event received before ``watermark`` minus :data:`OVERLAP` has been read; those in the
    overlap that already fired are in ``seen``. Events received before ``start`` never fire.
    """

    start: datetime
    """When the watcher first started (minus its ``lookback``)."""
    watermark: datetime
    """The trigger's clock at the start of the last complete read."""
    seen: dict[int, datetime] = field(default_factory=dict)
    """Ids of events that fired, with when they were received (pruned past the overlap)."""

    @classmethod
    def starting(cls, at: datetime) -> Cursor:
        """A cursor for a watcher that starts reading at ``at``."""
        return cls(at, at)

    def read_from(self) -> datetime:
        """The ``received_at`` from which the next read starts."""
        return max(self.start, self.watermark - OVERLAP)

    def fresh(self, events: Sequence[TemplateEvent]) -> list[TemplateEvent]:
        """The events of a read that have not fired yet, in order."""
        return [e for e in events if e.id is not None and e.id not in self.seen]

    def mark(self, event: TemplateEvent) -> None:
        """Remember that ``event`` fired."""
        if event.id is not None:
            self.seen[event.id] = event.received_at or self.watermark

    def settle(self, read_at: datetime) -> None:
        """Everything received before ``read_at`` (minus the overlap) has been read."""
        self.watermark = max(self.watermark, read_at)
        floor = self.read_from()
        self.seen = {i: t for i, t in self.seen.items() if t >= floor}

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (for the asset state store)."""
        return {
            "start": self.start.isoformat(),
            "watermark": self.watermark.isoformat(),
            "seen": [[i, t.isoformat()] for i, t in sorted(self.seen.items())],
        }

    @classmethod
    def from_json(cls, data: Any) -> Cursor | None:
        """The cursor stored by :meth:`to_json`, or ``None`` when ``data`` is not one."""
        if not isinstance(data, dict):
            return None
        try:
            start = as_utc(datetime.fromisoformat(str(data["start"])))
            watermark = as_utc(datetime.fromisoformat(str(data["watermark"])))
            seen = {int(i): as_utc(datetime.fromisoformat(str(t))) for i, t in data.get("seen", [])}
        except (KeyError, TypeError, ValueError):
            return None
        if start is None or watermark is None:
            return None
        return cls(start, watermark, {i: t for i, t in seen.items() if t is not None})


class TemplateEventTrigger(LedgerReads, BaseEventTrigger):
    """Fire one event per stored template event that matches, for as long as it runs (asset watchers).

    :param events: event names to fire on: status events (``APPROVED``, ``PAUSED``, ``DISABLED``,
        ``REJECTED``...), quality scores (``RED``...) or ``CATEGORY_CHANGED``; ``None``: every event of
        ``kinds``.
    :param kinds: which template webhooks to watch: ``status``, ``quality``, ``category``.
    :param template_name: only this template (with ``language``, only that translation).
    :param language: the template's language code.
    :param template_id: only the template with this id (instead of a name).
    :param waba_id: only events of this WhatsApp Business Account.
    :param ledger_conn_id: Airflow connection of the ledger the webhook receiver writes to (``None``:
        the SQLite file under ``AIRFLOW_HOME``).
    :param ledger_table_prefix: prefix of the ledger's tables.
    :param poll_interval: seconds between two ledger reads.
    :param lookback: also fire for events received up to this many seconds before the watcher first
        started (0: only newer ones).
    """

    def __init__(
        self,
        *,
        events: Sequence[str] | None = ("APPROVED",),
        kinds: Sequence[str] = ("status",),
        template_name: str | None = None,
        language: str | None = None,
        template_id: str | None = None,
        waba_id: str | None = None,
        ledger_conn_id: str | None = None,
        ledger_table_prefix: str = DEFAULT_TABLE_PREFIX,
        poll_interval: float = 30.0,
        lookback: float = 0.0,
    ) -> None:
        super().__init__()
        if poll_interval <= 0 or lookback < 0:
            raise ValueError("poll_interval must be positive and lookback not negative")
        known = {str(k) for k in TemplateEventKind}
        self.kinds = sorted({str(k).lower() for k in kinds})
        if not self.kinds or not set(self.kinds) <= known:
            raise ValueError(f"kinds must be among {sorted(known)}, not {list(kinds)!r}")
        if events is not None and not events:
            raise ValueError("events must name at least one event (or be None for all)")
        self.events = sorted({str(e).upper() for e in events}) if events is not None else None
        if language is not None and template_name is None:
            raise ValueError("language narrows template_name: give template_name too")
        self.template_name = template_name
        self.language = language
        self.template_id = str(template_id) if template_id is not None else None
        self.waba_id = str(waba_id) if waba_id is not None else None
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table_prefix = ledger_table_prefix
        self.poll_interval = float(poll_interval)
        self.lookback = float(lookback)
        self._ledger: Ledger | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments (JSON-safe, no secrets: connections are named, not copied)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "events": list(self.events) if self.events is not None else None,
                "kinds": list(self.kinds),
                "template_name": self.template_name,
                "language": self.language,
                "template_id": self.template_id,
                "waba_id": self.waba_id,
                "ledger_conn_id": self.ledger_conn_id,
                "ledger_table_prefix": self.ledger_table_prefix,
                "poll_interval": self.poll_interval,
                "lookback": self.lookback,
            },
        )

    @property
    def state_key(self) -> str:
        """The asset-state key of this trigger's cursor: one per ledger and filter (a changed poll
        interval or lookback keeps the cursor)."""
        kwargs = self.serialize()[1]
        kwargs.pop("poll_interval")
        kwargs.pop("lookback")
        raw = json.dumps(kwargs, sort_keys=True).encode()
        return "wamm_template_events_" + hashlib.blake2b(raw, digest_size=8).hexdigest()

    def poll(self, cursor: Cursor) -> tuple[list[TemplateEvent], bool]:
        """One ledger read (blocking: runs in a worker thread): the matching events that have not
        fired yet, and whether the read was complete (under :data:`POLL_LIMIT`)."""
        found = self._open().template_events_since(
            cursor.read_from(),
            kinds=self.kinds,
            events=self.events,
            template_id=self.template_id,
            name=self.template_name,
            language=self.language,
            waba_id=self.waba_id,
            limit=POLL_LIMIT,
        )
        return cursor.fresh(found), len(found) < POLL_LIMIT

    async def _load_cursor(self) -> Cursor:
        """The stored cursor, else one starting now (minus ``lookback``)."""
        store = getattr(self, "asset_state_store", None)  # set by the triggerer (Airflow 3.3+)
        if store is not None:
            try:
                cursor = Cursor.from_json(await store.aget(self.state_key))
            except Exception as exc:  # no single watched asset, or the store is unreachable
                self.log.warning("Cannot read the asset state store, starting now: %s", type(exc).__name__)
                cursor = None
            if cursor is not None:
                return cursor
        return Cursor.starting(utcnow() - timedelta(seconds=self.lookback))

    async def _save_cursor(self, cursor: Cursor) -> None:
        store = getattr(self, "asset_state_store", None)  # set by the triggerer (Airflow 3.3+)
        if store is None:
            return
        try:
            await store.aset(self.state_key, cursor.to_json())
        except Exception as exc:
            self.log.warning("Cannot write the asset state store: %s", type(exc).__name__)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll for ever; yield one event per new matching template event, oldest first.

        The cursor is saved after each event fired, so a restart fires at most that one again.
        """
        cursor = await self._load_cursor()
        try:
            while True:
                read_at = utcnow()
                try:
                    fresh, complete = await asyncio.to_thread(self.poll, cursor)
                except Exception as exc:  # the ledger may be down for a while: keep watching
                    self.log.warning("Reading template events failed: %s", type(exc).__name__)
                    fresh, complete = [], False
                for event in fresh:
                    self.log.info("Template %s (%s): %s", event.template_name, event.language, event.event)
                    yield TriggerEvent(event_payload(event))
                    cursor.mark(event)
                    await self._save_cursor(cursor)
                if complete:
                    cursor.settle(read_at)
                await asyncio.sleep(self.poll_interval)
        finally:
            self._close()


__all__ = ["OVERLAP", "POLL_LIMIT", "Cursor", "TemplateEventTrigger", "event_payload"]
