"""``SendWindowTrigger``: wait in the triggerer, holding no worker slot, until a send window opens.

A campaign with a send window sends everyone whose window is open, then defers its task with this
trigger until the next recipient's window opens; the task then resumes the campaign (the ledger skips
everyone already messaged). The trigger only waits: it reads nothing and sends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_wamm.campaign.ledger import as_utc, utcnow

#: The clock the trigger waits on (tests replace it to control time).
now = utcnow
#: Longest single sleep: the clock is looked at again at least this often (seconds).
MAX_SLEEP_S = 60.0


class SendWindowTrigger(BaseTrigger):
    """Fire once ``moment`` has come: a held recipient's send window opens.

    :param campaign_id: the campaign (for the event and the logs).
    :param moment: when to fire (ISO time or an aware datetime).
    :param poll_interval: longest sleep between two looks at the clock (seconds).
    :param echo: values given back in the event under ``echo`` (JSON-safe): the state the task resumes
        with, for runners that hand the resumed method the event alone (``dag.test()`` does).
    """

    def __init__(
        self,
        *,
        campaign_id: str,
        moment: str | datetime,
        poll_interval: float = MAX_SLEEP_S,
        echo: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        parsed = as_utc(moment if isinstance(moment, datetime) else datetime.fromisoformat(moment))
        if parsed is None:
            raise ValueError(f"moment must be a time, got {moment!r}")
        if not poll_interval > 0:
            raise ValueError("poll_interval must be positive")
        self.campaign_id = campaign_id
        self.moment = parsed
        self.poll_interval = float(poll_interval)
        self.echo = dict(echo) if echo else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and keyword arguments (the moment as ISO text)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "campaign_id": self.campaign_id,
                "moment": self.moment.isoformat(),
                "poll_interval": self.poll_interval,
                **({"echo": self.echo} if self.echo else {}),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep until the moment, then fire ``{"status": "open", ...}``."""
        while True:
            remaining = (self.moment - now()).total_seconds()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, self.poll_interval))
        payload = {"status": "open", "campaign_id": self.campaign_id, "moment": self.moment.isoformat()}
        yield TriggerEvent({**payload, **({"echo": self.echo} if self.echo else {})})


__all__ = ["MAX_SLEEP_S", "SendWindowTrigger"]
