"""A canary's gates need evidence: messages sent, and status webhooks for those Meta took."""

from __future__ import annotations

from airflow_provider_wamm.campaign.canary import Gates, check_gates
from airflow_provider_wamm.campaign.ledger import ACCEPTED, Ledger, SendOutcome, StatusUpdate, utcnow

PEOPLE = [f"49151000000{i:02d}" for i in range(10)]


def send(ledger: Ledger, campaign_id: str) -> None:
    ledger.claim(campaign_id, PEOPLE, attempt_id="att-1")
    ledger.record_results(
        campaign_id, [SendOutcome(p, ACCEPTED, wamid=f"w{p}", attempts=1) for p in PEOPLE], attempt_id="att-1"
    )


def judge(ledger: Ledger, campaign_id: str, **gates: int) -> list[str]:
    return check_gates(ledger, campaign_id, Gates(**gates), step=0, share=0.1, quality=None).failures


def test_a_canary_with_no_messages_fails_its_gates_unless_told_to_go_on(ledger: Ledger) -> None:
    [failure] = judge(ledger, "empty")
    assert failure.startswith("min_sent: no messages in the canary") and "min_sent to 0" in failure
    assert judge(ledger, "empty", min_sent=0) == []


def test_too_few_messages_fail_min_sent(ledger: Ledger) -> None:
    send(ledger, "few")
    ledger.record_statuses([StatusUpdate(wamid=f"w{PEOPLE[0]}", status="delivered", timestamp=utcnow())])
    [failure] = judge(ledger, "few", min_sent=20)
    assert failure.startswith("min_sent: only 10 messages in the canary (min_sent 20)")


def test_a_canary_without_status_webhooks_fails_until_one_arrives(ledger: Ledger) -> None:
    send(ledger, "quiet")
    [failure] = judge(ledger, "quiet")
    assert failure.startswith(
        "min_answered: 0 of the 10 messages Meta took in the canary have a status webhook"
    )
    assert "webhook receiver" in failure
    assert judge(ledger, "quiet", min_answered=0) == []

    ledger.record_statuses(
        [StatusUpdate(wamid=f"w{p}", status="delivered", timestamp=utcnow()) for p in PEOPLE[:3]]
    )
    report = check_gates(ledger, "quiet", Gates(), step=0, share=0.1, quality=None)
    assert report.passed and (report.sent, report.taken, report.answered) == (10, 10, 3)
    assert report.to_dict()["answered"] == 3
    assert judge(ledger, "quiet", min_answered=4)[0].startswith("min_answered: 3 of the 10")


def test_min_answered_is_a_known_gate() -> None:
    assert Gates.from_options({"min_answered": 0, "min_sent": 0}) == Gates(min_answered=0, min_sent=0)
