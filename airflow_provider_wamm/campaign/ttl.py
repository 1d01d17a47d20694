"""A template's time-to-live: how long Meta tries to deliver a message before it drops it silently.

``message_send_ttl_seconds`` is a property of the template: 43,200 to 2,592,000 seconds for marketing
templates (default 30 days, honoured only by the Marketing Messages API). A message not delivered
within it is dropped without a webhook: "If you do not receive a status messages webhook with
``status`` set to ``delivered`` before the TTL is exceeded, assume the message was dropped" ("Service
messages" and "Configure message time-to-live", May 21, 2026, under
``developers.facebook.com/documentation/business-messaging/whatsapp/``: ``messages/send-messages``
and ``templates/time-to-live``).

The operator's preflight reads it with the template and records it in the run's summary
(``template_ttl_s``); the report reads it back from there to say which messages outlived it
undelivered (``expired``), and the sensor waits that long by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger

#: Meta's default time-to-live of a marketing template (30 days), when the template sets none.
DEFAULT_MARKETING_TTL_S = 2_592_000
#: Key of the time-to-live in a run's summary (the operator's XCom counts).
SUMMARY_KEY = "template_ttl_s"


def ttl_of(template: Mapping[str, Any]) -> float | None:
    """The ``message_send_ttl_seconds`` of a template as Meta lists it (``None``: Meta's default)."""
    value = template.get("message_send_ttl_seconds")
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return float(value)
    return None


def recorded_ttl_s(ledger: Ledger, campaign_ids: Iterable[str]) -> float | None:
    """The shortest time-to-live the campaigns' runs recorded (``None`` when no run recorded one)."""
    found: list[float] = []
    for campaign_id in campaign_ids:
        for run in ledger.list_runs(campaign_id):
            summary = run.get("summary") or {}
            value = summary.get(SUMMARY_KEY) if isinstance(summary, Mapping) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                found.append(float(value))
    return min(found) if found else None


__all__ = ["DEFAULT_MARKETING_TTL_S", "SUMMARY_KEY", "recorded_ttl_s", "ttl_of"]
