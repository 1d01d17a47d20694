"""The campaign engine: recipient sources, personalisation, sharding, the send ledger and the bulk sender.

Nothing here imports Airflow, so the engine can be used and tested on its own. The operator, sensor
and webhook receiver are thin adapters over these modules.
"""

from __future__ import annotations

from airflow_provider_wamm.campaign.control import CampaignControl
from airflow_provider_wamm.campaign.ledger import ClickEvent, Ledger, SendState, StatusUpdate, Suppression
from airflow_provider_wamm.campaign.personalise import PersonalisationError, Personaliser
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignResult, CampaignStopped
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.campaign.sharding import shard_of
from airflow_provider_wamm.campaign.sources import SourceRow, iter_cursor_rows, iter_rows

__all__ = [
    "CampaignControl",
    "CampaignHalted",
    "CampaignResult",
    "CampaignSettings",
    "CampaignStopped",
    "ClickEvent",
    "Ledger",
    "PersonalisationError",
    "Personaliser",
    "SendState",
    "SourceRow",
    "StatusUpdate",
    "Suppression",
    "iter_cursor_rows",
    "iter_rows",
    "run_campaign",
    "shard_of",
]
