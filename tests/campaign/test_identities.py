"""Recipients by business-scoped user id, and a person known by a number Meta rewrote (Brazil, Mexico)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.identities import phone_aliases, recipient_key
from airflow_provider_wamm.campaign.ledger import Ledger, PreferenceChange, PreferenceValue
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.sandbox import Sandbox
from tests.reliability.harness import sandbox_client

BSUID = "US.13491208655302741918"
#: A Brazilian mobile number as the business has it, and as Meta's ``wa_id`` writes it.
BR_SENT, BR_WA_ID = "5511987654321", "551187654321"


def settings(campaign_id: str) -> CampaignSettings:
    return CampaignSettings(
        campaign_id,
        "welcome_named",
        "en_US",
        personaliser=Personaliser(body_parameters={"first_name": "{name}"}),
    )


def run(sandbox: Sandbox, ledger: Ledger, campaign_id: str, rows: list[dict[str, Any]]) -> Any:
    with sandbox_client(sandbox, timeout=5.0) as client:
        return run_campaign(rows, client=client, ledger=ledger, settings=settings(campaign_id))


def stop(ledger: Ledger, who: str, **extra: Any) -> None:
    """A ``user_preferences`` stop, as the webhook receiver records it."""
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    ledger.record_preferences([PreferenceChange(who, PreferenceValue.STOP, at, **extra)])


def test_aliases() -> None:
    assert phone_aliases(BR_SENT) == (BR_SENT, BR_WA_ID)
    assert phone_aliases(BR_WA_ID) == (BR_WA_ID, BR_SENT)
    assert phone_aliases("525512345678") == ("525512345678", "5215512345678")
    assert phone_aliases("5215512345678") == ("5215512345678", "525512345678")
    assert phone_aliases("4915123456789") == ("4915123456789",)
    assert phone_aliases(BSUID) == (BSUID,)
    assert recipient_key(f" {BSUID} ") == BSUID and recipient_key("+4915123456789") is None


def test_a_bsuid_recipient_is_sent_with_recipient(sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    result = run(
        sandbox, sqlite_ledger, "ids", [{"phone": BSUID, "name": "Ana"}, {"phone": "+4915100000001"}]
    )
    assert result.accepted == 1 and result.invalid == 1  # the second row lacks its name
    (message,) = sandbox.messages
    assert message.payload["recipient"] == BSUID and "to" not in message.payload
    rows = {row["recipient"]: row for row in sqlite_ledger.iter_sends("ids")}
    assert rows[BSUID]["state"] == L.ACCEPTED


def test_a_stop_naming_only_the_user_id_suppresses_that_recipient(
    sandbox: Sandbox, sqlite_ledger: Ledger
) -> None:
    stop(sqlite_ledger, BSUID, user_id=BSUID)
    result = run(sandbox, sqlite_ledger, "ids2", [{"phone": BSUID, "name": "Ana"}])
    assert result.suppressed == 1 and result.accepted == 0 and sandbox.messages == []


def test_a_rewritten_brazilian_number_is_the_same_person(sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    """Meta answers the Brazilian number with a ``wa_id`` without the ninth digit; a stop naming that
    ``wa_id`` still keeps the number the business has out of the next campaign."""
    first = run(sandbox, sqlite_ledger, "br1", [{"phone": "+55 11 98765 4321", "name": "Ana"}])
    assert first.accepted == 1
    stop(sqlite_ledger, BR_WA_ID)
    second = run(sandbox, sqlite_ledger, "br2", [{"phone": "+55 11 98765 4321", "name": "Ana"}])
    assert second.suppressed == 1 and second.accepted == 0
    assert len(sandbox.messages) == 1
