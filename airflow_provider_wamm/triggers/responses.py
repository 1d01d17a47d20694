"""``MarketingResponsesTrigger``: wait in the triggerer until a campaign's delivery statuses settle.

The trigger only reads the ledger (never sends anything), so a triggerer restart that runs it again is
harmless. Each poll runs the ledger query in a worker thread (``asyncio.to_thread``) so the triggerer's
event loop is never blocked; the ledger connection is read there too (the triggerer answers a sync
connection lookup from a thread). It fires one small event: the campaign is settled, its settle
timeout passed, or the ledger could not be read several times in a row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_wamm.campaign.ledger.schema import DEFAULT_TABLE_PREFIX
from airflow_provider_wamm.campaign.report import SettleState, settle_state
from airflow_provider_wamm.triggers.ledger_reads import LedgerReads

if TYPE_CHECKING:
    from airflow_provider_wamm.campaign.ledger import Ledger

#: Consecutive failed polls after which the trigger gives up with an ``error`` event.
MAX_CONSECUTIVE_ERRORS = 5

EVENT_SETTLED = "settled"
EVENT_TIMEOUT = "timeout"
EVENT_ERROR = "error"


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0][:300] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class MarketingResponsesTrigger(LedgerReads, BaseTrigger):
    """Poll the ledger until every message of the campaigns has a final status, or the settle timeout.

    :param campaign_ids: the campaigns to wait for (all of them must settle).
    :param ledger_conn_id: Airflow connection of the ledger (``None``: the SQLite file under
        ``AIRFLOW_HOME``).
    :param ledger_table_prefix: prefix of the ledger's tables.
    :param settle_timeout: seconds after the campaigns' last send after which waiting stops (``None``:
        wait until settled; the task's own timeout still applies).
    :param poll_interval: seconds between two ledger checks.
    """

    def __init__(
        self,
        *,
        campaign_ids: Sequence[str],
        ledger_conn_id: str | None = None,
        ledger_table_prefix: str = DEFAULT_TABLE_PREFIX,
        settle_timeout: float | None = None,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        if not campaign_ids:
            raise ValueError("campaign_ids must name at least one campaign")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.campaign_ids = [str(c) for c in campaign_ids]
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table_prefix = ledger_table_prefix
        self.settle_timeout = float(settle_timeout) if settle_timeout is not None else None
        self.poll_interval = float(poll_interval)
        self._ledger: Ledger | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments (JSON-safe, no secrets: connections are named, not copied)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "campaign_ids": list(self.campaign_ids),
                "ledger_conn_id": self.ledger_conn_id,
                "ledger_table_prefix": self.ledger_table_prefix,
                "settle_timeout": self.settle_timeout,
                "poll_interval": self.poll_interval,
            },
        )

    def _check(self) -> SettleState:
        """One poll (blocking: runs in a worker thread)."""
        timeout = timedelta(seconds=self.settle_timeout) if self.settle_timeout is not None else None
        return settle_state(self._open(), self.campaign_ids, settle_timeout=timeout)

    def _event(
        self, status: str, state: SettleState | None = None, message: str | None = None
    ) -> TriggerEvent:
        payload: dict[str, Any] = {"status": status, "campaign_ids": list(self.campaign_ids)}
        if state is not None:
            payload.update(state.to_dict())
        if message is not None:
            payload["message"] = message
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until settled or timed out; yield exactly one event."""
        errors = 0
        try:
            while True:
                try:
                    state = await asyncio.to_thread(self._check)
                except Exception as exc:
                    errors += 1
                    message = _describe(exc)
                    self.log.warning(
                        "Reading the ledger failed (%d of %d allowed): %s",
                        errors,
                        MAX_CONSECUTIVE_ERRORS,
                        message,
                    )
                    if errors >= MAX_CONSECUTIVE_ERRORS:
                        yield self._event(EVENT_ERROR, message=message)
                        return
                    await asyncio.sleep(self.poll_interval)
                    continue
                errors = 0
                if state.settled:
                    yield self._event(EVENT_SETTLED, state)
                    return
                if state.timed_out:
                    yield self._event(EVENT_TIMEOUT, state)
                    return
                self.log.info(
                    "Campaign(s) %s: %d messages without a final status yet.",
                    ", ".join(self.campaign_ids),
                    state.unsettled,
                )
                await asyncio.sleep(self._sleep_for(state))
        finally:
            self._close()  # closing pooled connections does not wait on the database

    def _sleep_for(self, state: SettleState) -> float:
        """The poll interval, shortened so the settle deadline is noticed on time."""
        if state.deadline is None:
            return self.poll_interval
        from airflow_provider_wamm.campaign.ledger import utcnow

        until_deadline = (state.deadline - utcnow()).total_seconds()
        return max(0.05, min(self.poll_interval, until_deadline + 0.05))


__all__ = [
    "EVENT_ERROR",
    "EVENT_SETTLED",
    "EVENT_TIMEOUT",
    "MAX_CONSECUTIVE_ERRORS",
    "MarketingResponsesTrigger",
]
