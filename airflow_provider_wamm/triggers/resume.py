"""``CampaignResumeTrigger``: wait in the triggerer until a deferred campaign may go on.

A campaign stopped by a guard (its template paused, its messaging limit used up) defers its task with
this trigger. It only reads the ledger (never sends anything) and fires one small event:

* ``resume``: the template is APPROVED again (a status event received after the campaign stopped, and
  nothing stored says it is still paused), and the messaging-limit window has rolled over (``resume_at``);
* ``failed``: while waiting, the template was disabled or re-categorised (waiting cannot help);
* ``recheck``: ``recheck_at`` passed without news (Meta lifts a pause by itself after 3 or 6 hours; the
  task then reads the template from the Graph API and defers again if it is still paused).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_wamm.campaign.ledger import TemplateEventKind, as_utc, utcnow
from airflow_provider_wamm.campaign.ledger.schema import DEFAULT_TABLE_PREFIX
from airflow_provider_wamm.campaign.pauses import FINAL_STATUSES, WAIT_STATUSES, template_trip
from airflow_provider_wamm.triggers.ledger_reads import LedgerReads

if TYPE_CHECKING:
    from airflow_provider_wamm.campaign.ledger import Ledger

EVENT_RESUME = "resume"
EVENT_FAILED = "failed"
EVENT_RECHECK = "recheck"


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(value))


class CampaignResumeTrigger(LedgerReads, BaseTrigger):
    """Wait until a campaign stopped by a guard may resume.

    :param campaign_id: the campaign (for the event and the logs).
    :param stopped_at: when it stopped (ISO time); template events received since then count.
    :param template_name: wait for this template to be APPROVED again (``None``: no template wait).
    :param language: the template's language.
    :param resume_at: do not fire before this time (ISO; the messaging-limit window rolling over).
    :param recheck_at: fire ``recheck`` at this time when nothing else happened (ISO; ``None``: never).
    :param ledger_conn_id: the ledger the webhook receiver writes to.
    :param ledger_table_prefix: prefix of the ledger's tables.
    :param poll_interval: seconds between two ledger reads.
    """

    def __init__(
        self,
        *,
        campaign_id: str,
        stopped_at: str | datetime,
        template_name: str | None = None,
        language: str | None = None,
        resume_at: str | datetime | None = None,
        recheck_at: str | datetime | None = None,
        ledger_conn_id: str | None = None,
        ledger_table_prefix: str = DEFAULT_TABLE_PREFIX,
        poll_interval: float = 15.0,
    ) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.campaign_id = campaign_id
        self.stopped_at = _parse(stopped_at) or utcnow()
        self.template_name = template_name
        self.language = language
        self.resume_at = _parse(resume_at)
        self.recheck_at = _parse(recheck_at)
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table_prefix = ledger_table_prefix
        self.poll_interval = float(poll_interval)
        self._ledger: Ledger | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments (JSON-safe; connections are named, not copied)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "campaign_id": self.campaign_id,
                "stopped_at": iso(self.stopped_at),
                "template_name": self.template_name,
                "language": self.language,
                "resume_at": iso(self.resume_at),
                "recheck_at": iso(self.recheck_at),
                "ledger_conn_id": self.ledger_conn_id,
                "ledger_table_prefix": self.ledger_table_prefix,
                "poll_interval": self.poll_interval,
            },
        )

    def template_verdict(self) -> tuple[str | None, str]:
        """One ledger read (blocking: runs in a worker thread): ``resume``, ``failed`` or ``None`` (wait),
        with what was seen."""
        if self.template_name is None:
            return EVENT_RESUME, "no template to wait for"
        ledger = self._open()
        state = ledger.template_state(name=self.template_name, language=self.language)
        trip = template_trip(state)
        if trip is not None:
            return (EVENT_FAILED if trip.final else None), trip.message
        news = ledger.template_events_since(
            self.stopped_at, kinds=[TemplateEventKind.STATUS], name=self.template_name, language=self.language
        )
        approved = [e for e in news if e.event.upper() not in WAIT_STATUSES | FINAL_STATUSES]
        if approved:
            return EVENT_RESUME, f"template {self.template_name!r} is {approved[-1].event} again"
        return None, "no approval received yet"

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "campaign_id": self.campaign_id, "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the campaign may resume (or cannot); yield exactly one event."""
        try:
            while True:
                now = utcnow()
                if self.recheck_at is not None and now >= self.recheck_at:
                    yield self._event(EVENT_RECHECK, "no news by the time Meta lifts a pause: look again")
                    return
                try:
                    verdict, message = await asyncio.to_thread(self.template_verdict)
                except Exception as exc:  # the ledger may be down for a while: keep waiting
                    self.log.warning("Reading the ledger failed: %s", type(exc).__name__)
                    verdict, message = None, "ledger unreadable"
                if verdict == EVENT_FAILED:
                    yield self._event(EVENT_FAILED, message)
                    return
                if verdict == EVENT_RESUME and (self.resume_at is None or now >= self.resume_at):
                    yield self._event(EVENT_RESUME, message)
                    return
                self.log.info("Campaign %s waits: %s", self.campaign_id, message)
                await asyncio.sleep(self._nap(now))
        finally:
            self._close()

    def _nap(self, now: datetime) -> float:
        """Seconds until the next look: the poll interval, or less when a time is due sooner."""
        nap = self.poll_interval
        for at in (self.resume_at, self.recheck_at):
            if at is not None and at > now:
                nap = min(nap, max(0.01, (at - now).total_seconds()))
        return nap


__all__ = ["EVENT_FAILED", "EVENT_RECHECK", "EVENT_RESUME", "CampaignResumeTrigger"]
