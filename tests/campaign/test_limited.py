"""The ledger's per-user limit columns on every backend, and the retry plan read from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome, StatusUpdate
from airflow_provider_wamm.campaign.limited import plan_limited_retries
from airflow_provider_wamm.campaign.settings import CampaignSettings

CAMPAIGN = "c1"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def limited(recipient: str, at: datetime) -> SendOutcome:
    return SendOutcome(recipient, L.FAILED, error_code=131049, not_before=at + DAY, retry_after=at + DAY)


def row(ledger: Ledger, recipient: str) -> dict:
    return next(r for r in ledger.iter_sends(CAMPAIGN) if r["recipient"] == recipient)


def settings(**kwargs: object) -> CampaignSettings:
    return CampaignSettings(campaign_id=CAMPAIGN, template_name="t", language="en_US", **kwargs)  # type: ignore[arg-type]


def test_131049_answers_count_tries_keep_the_first_time_and_schedule_a_retry(ledger: Ledger) -> None:
    ledger.ensure_schema()
    ledger.claim(CAMPAIGN, ["4915100000001"], attempt_id="a1", now=NOW)
    ledger.record_results(CAMPAIGN, [limited("4915100000001", NOW)], attempt_id="a1", now=NOW)
    first = row(ledger, "4915100000001")
    assert first["limited_tries"] == 1 and first["limited_since"] == NOW and first["retry_after"] == NOW + DAY

    later = NOW + DAY + timedelta(minutes=5)
    assert ledger.claim(CAMPAIGN, ["4915100000001"], attempt_id="a2", now=later) == {"4915100000001"}
    ledger.record_results(CAMPAIGN, [limited("4915100000001", later)], attempt_id="a2", now=later)
    second = row(ledger, "4915100000001")
    assert second["limited_tries"] == 2 and second["limited_since"] == NOW
    assert second["retry_after"] == later + DAY

    last = later + DAY + timedelta(minutes=5)
    ledger.claim(CAMPAIGN, ["4915100000001"], attempt_id="a3", now=last)
    ledger.record_results(
        CAMPAIGN, [SendOutcome("4915100000001", L.ACCEPTED, wamid="wamid.x")], attempt_id="a3", now=last
    )
    recovered = row(ledger, "4915100000001")
    assert recovered["limited_tries"] == 2 and recovered["retry_after"] is None


def test_a_131049_status_webhook_schedules_one_retry_per_message(ledger: Ledger) -> None:
    ledger.ensure_schema()
    people = ["4915100000002", "4915100000012", "12125550100"]  # two German numbers and a US one
    ledger.claim(CAMPAIGN, people, attempt_id="a1", now=NOW)
    outcomes = [SendOutcome(p, L.ACCEPTED, wamid=f"wamid.{p}") for p in people]
    ledger.record_results(CAMPAIGN, outcomes, attempt_id="a1", now=NOW)
    statuses = [StatusUpdate(f"wamid.{p}", "failed", NOW, recipient_id=p, error_code=131049) for p in people]
    ledger.record_statuses(statuses)
    ledger.record_statuses(statuses)
    german, other, us = (row(ledger, p) for p in people)
    assert other["limited_tries"] == 1  # several in one batch of statuses
    assert (
        german["state"] == "accepted" and german["limited_tries"] == 1 and german["retry_after"] == NOW + DAY
    )
    assert us["limited_tries"] is None and us["retry_after"] is None
    assert ledger.existing_sends(CAMPAIGN, [people[0]])[people[0]].reclaimable(NOW + DAY)
    assert not ledger.existing_sends(CAMPAIGN, [people[0]])[people[0]].reclaimable(NOW + DAY / 2)


def test_the_plan_sends_the_due_and_counts_the_others(ledger: Ledger) -> None:
    ledger.ensure_schema()
    due, waiting, old = "4915100000003", "4915100000004", "4915100000005"
    ledger.claim(CAMPAIGN, [due, waiting, old], attempt_id="a1", now=NOW - 8 * DAY)
    ledger.record_results(CAMPAIGN, [limited(old, NOW - 8 * DAY)], attempt_id="a1", now=NOW - 8 * DAY)
    ledger.record_results(CAMPAIGN, [limited(due, NOW - 2 * DAY)], attempt_id="a1", now=NOW - 2 * DAY)
    ledger.record_results(CAMPAIGN, [limited(waiting, NOW - DAY / 2)], attempt_id="a1", now=NOW - DAY / 2)
    plan = plan_limited_retries(ledger, settings(), now=NOW)
    assert plan.due == {due} and plan.waiting == 1 and plan.exhausted == 1  # the old one is past 7 days
