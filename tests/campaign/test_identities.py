"""Recipients by business-scoped user id, and a person known by a number Meta rewrote (Brazil, Mexico)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.identities import phone_aliases, recipient_key
from airflow_provider_wamm.campaign.ledger import Ledger, PreferenceChange, PreferenceValue
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.errors import InvalidRecipientError
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
    with pytest.raises(InvalidRecipientError, match="business-scoped user id of 66 characters"):
        recipient_key("US." + "1" * 63)


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


# --- the ledger's identities: keys Meta's answers and webhooks tie to one person ------------------

NUMBER, OTHER = "4915100000007", "4915100000008"
USER_ID, NEW_USER_ID = "DE.1502576394655843", "DE.99887766554433"
T1 = datetime(2026, 11, 30, 13, tzinfo=UTC)


def webhook(value: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    """A ``whatsapp_business_account`` body with one change."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": field, "value": value}]}],
    }


def store(ledger: Ledger, body: dict[str, Any]) -> None:
    """What the webhook receiver does with a body."""
    from airflow_provider_wamm.webhooks.parsing import parse_webhook

    parsed = parse_webhook(body)
    ledger.atomic(
        lambda: (ledger.record_statuses(parsed.statuses), ledger.record_signals(parsed.signals))  # type: ignore[func-returns-value]
    )


def status_body(wamid: str, recipient_id: str | None, user_id: str | None, **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"id": wamid, "status": "delivered", "timestamp": "1764507600", **extra}
    if recipient_id:
        status["recipient_id"] = recipient_id
    if user_id:
        status["recipient_user_id"] = user_id
    return webhook({"messaging_product": "whatsapp", "statuses": [status]})


def named_rows(*numbers: str) -> list[dict[str, Any]]:
    return [{"phone": f"+{n}", "name": "Ana"} for n in numbers]


def test_linked_keys_are_one_person(ledger: Ledger) -> None:
    L_ = L.IdentityLink
    assert ledger.link_identities([L_("a1", "b1"), L_("c1", "d1"), L_("x", "x")]) == 2
    assert set(ledger.person_keys(["a1"])["a1"]) == {"a1", "b1"}
    ledger.link_identities([L_("d1", "b1"), L_("a1", "b1")])  # merges the two groups
    keys = ledger.person_keys(["a1", "c1", "zz"])
    assert set(keys["a1"]) == set(keys["c1"]) == {"a1", "b1", "c1", "d1"}
    assert keys["a1"][0] == "a1" and keys["zz"] == ("zz",)


def test_a_stop_naming_only_the_user_id_suppresses_the_person_it_names(
    sandbox: Sandbox, sqlite_ledger: Ledger
) -> None:
    """A status webhook tied the number to its user id; a stop naming only the user id then keeps that
    number (and no other) out of the next campaign."""
    assert run(sandbox, sqlite_ledger, "u1", named_rows(NUMBER, OTHER)).accepted == 2
    sent = {row["recipient"]: row["wamid"] for row in sqlite_ledger.iter_sends("u1")}
    store(sqlite_ledger, status_body(sent[NUMBER], NUMBER, USER_ID))
    assert sqlite_ledger.status_of(sent[NUMBER])["recipient_user_id"] == USER_ID  # type: ignore[index]
    stop(sqlite_ledger, USER_ID, user_id=USER_ID)
    second = run(sandbox, sqlite_ledger, "u2", named_rows(NUMBER, OTHER))
    assert second.suppressed == 1 and second.accepted == 1
    assert [m.to for m in sandbox.messages[2:]] == [OTHER]


def test_a_status_naming_only_the_user_id_links_it_through_the_wamid(
    sandbox: Sandbox, sqlite_ledger: Ledger
) -> None:
    """Without ``recipient_id`` (a number Meta may not share) the send row names the number."""
    run(sandbox, sqlite_ledger, "w1", named_rows(NUMBER))
    (row,) = sqlite_ledger.iter_sends("w1")
    store(sqlite_ledger, status_body(row["wamid"], None, USER_ID))
    assert set(sqlite_ledger.person_keys([USER_ID])[USER_ID]) == {USER_ID, NUMBER}


def test_the_answers_wa_id_is_kept_and_linked(sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    """Meta's answer rewrites the Brazilian number; the send row keeps its ``wa_id`` and the ledger links
    both forms, so a stop naming the rewritten number (or a user id learned for it) suppresses the row."""
    run(sandbox, sqlite_ledger, "br3", [{"phone": "+55 11 98765 4321", "name": "Ana"}])
    (row,) = sqlite_ledger.iter_sends("br3")
    assert row["recipient"] == BR_SENT and row["wa_id"] == BR_WA_ID
    with sqlite_ledger.read() as conn:
        t = sqlite_ledger.identities.c
        stored = {key: source for key, source in conn.execute(sa.select(t.key, t.source))}
    assert stored == {BR_SENT: "send_answer", BR_WA_ID: "send_answer"}
    store(sqlite_ledger, status_body(row["wamid"], BR_WA_ID, USER_ID))
    stop(sqlite_ledger, USER_ID, user_id=USER_ID)
    again = run(sandbox, sqlite_ledger, "br4", [{"phone": "+55 11 98765 4321", "name": "Ana"}])
    assert again.suppressed == 1 and len(sandbox.messages) == 1


def test_a_bsuid_answer_links_nothing_new(sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    run(sandbox, sqlite_ledger, "b1", [{"phone": BSUID, "name": "Ana"}])
    (row,) = sqlite_ledger.iter_sends("b1")
    assert row["user_id"] == BSUID and row["wa_id"] is None
    assert sqlite_ledger.person_keys([BSUID])[BSUID] == (BSUID,)


def test_user_changed_number_carries_the_stop_to_the_new_number(
    sandbox: Sandbox, sqlite_ledger: Ledger
) -> None:
    stop(sqlite_ledger, NUMBER)
    system = {
        "from": NUMBER,
        "id": "wamid.sys1",
        "timestamp": "1764507600",
        "type": "system",
        "system": {
            "body": f"User Ana changed from {NUMBER} to {OTHER}",
            "wa_id": OTHER,
            "type": "user_changed_number",
            "user_id": NEW_USER_ID,
            "previous_user_id": USER_ID,
        },
    }
    store(sqlite_ledger, webhook({"messaging_product": "whatsapp", "messages": [system]}))
    assert set(sqlite_ledger.person_keys([OTHER])[OTHER]) == {NUMBER, OTHER, USER_ID, NEW_USER_ID}
    result = run(sandbox, sqlite_ledger, "n1", named_rows(OTHER))
    assert result.suppressed == 1 and sandbox.messages == []


def test_user_changed_user_id_carries_the_stop_to_the_new_user_id(
    sandbox: Sandbox, sqlite_ledger: Ledger
) -> None:
    stop(sqlite_ledger, BSUID, user_id=BSUID)
    new = "US.77777777777777777777"
    system = {
        "id": "wamid.sys2",
        "timestamp": "1764507600",
        "type": "system",
        "system": {
            "body": "User Ana changed",
            "type": "user_changed_user_id",
            "user_id": new,
            "previous_user_id": BSUID,
        },
    }
    store(sqlite_ledger, webhook({"messaging_product": "whatsapp", "messages": [system]}))
    result = run(sandbox, sqlite_ledger, "n2", [{"phone": new, "name": "Ana"}])
    assert result.suppressed == 1 and sandbox.messages == []


def test_the_frequency_cap_counts_a_person_under_any_key(sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    """Messaged by user id in one campaign, the person is capped by number in the next."""
    from datetime import timedelta

    run(sandbox, sqlite_ledger, "f1", [{"phone": BSUID, "name": "Ana"}])
    sqlite_ledger.link_identities([L.IdentityLink(NUMBER, BSUID)])
    with sandbox_client(sandbox, timeout=5.0) as client:
        capped = run_campaign(
            named_rows(NUMBER, OTHER),
            client=client,
            ledger=sqlite_ledger,
            settings=CampaignSettings(
                "f2",
                "welcome_named",
                "en_US",
                personaliser=Personaliser(body_parameters={"first_name": "{name}"}),
                frequency_cap=timedelta(days=1),
            ),
        )
    assert capped.frequency_capped == 1 and capped.accepted == 1
