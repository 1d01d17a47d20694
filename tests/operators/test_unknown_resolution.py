"""Unknown sends resolve themselves: answers the sandbox loses after taking the message, then Meta's
status webhooks through the receiver; the report shows those recipients accepted and nothing unknown."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_wamm.campaign.callback import callback_key
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.ledger.resolution import RESOLVED_BY_KEY, RESOLVED_BY_RECIPIENT
from airflow_provider_wamm.campaign.report import build_report, send_counts
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import (
    FAST_RETRIES,
    LEDGER_CONN_ID,
    SPRING_SALE,
    WHATSAPP_CONN_ID,
    digits,
    make_context,
    rows,
)
from tests.plugins.sandbox_fixtures import SANDBOX_SECRET

CAMPAIGN = "lost-answers"
LOST = [digits(i) for i in (3, 17, 42, 99, 150)]


def run_with_lost_answers(sandbox: Sandbox, url: str, **config: Any) -> dict[str, Any]:
    sandbox.configure(
        webhook_url=url,
        app_secret=SANDBOX_SECRET,
        lost_response_mode="drop",
        forced_outcomes={d: "lost#1" for d in LOST},
        webhook_step_s=0.01,
        webhook_flush_s=0.01,
        webhook_concurrency=1,
        **config,
    )
    op = MarketingMessageOperator(
        task_id="send",
        whatsapp_conn_id=WHATSAPP_CONN_ID,
        ledger_conn_id=LEDGER_CONN_ID,
        campaign_id=CAMPAIGN,
        recipients=rows(200),
        campaign_options=dict(FAST_RETRIES),
        **SPRING_SALE,
    )
    summary = op.execute(make_context())
    assert summary["unknown"] == len(LOST) and summary["accepted"] == 200 - len(LOST)
    assert sandbox.wait_webhooks_idle(30)
    return summary


@pytest.mark.usefixtures("wa_sandbox")
def test_statuses_after_the_lost_answers_resolve_them_by_callback_key_at_once(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger], ledger: Ledger
) -> None:
    url, _ = live_receiver
    # Webhooks come after the run recorded its unknown sends: the receiver resolves them as they arrive.
    run_with_lost_answers(sandbox, url, webhook_delay_s=2.0)
    assert send_counts(ledger, CAMPAIGN) == {"accepted": 200}
    sent = {m.to: m for m in sandbox.messages}
    for recipient in LOST:
        row = next(r for r in ledger.iter_sends(CAMPAIGN) if r["recipient"] == recipient)
        assert row["wamid"] == sent[recipient].wamid and row["error_details"] == RESOLVED_BY_KEY
        assert sent[recipient].payload["biz_opaque_callback_data"] == callback_key(CAMPAIGN, recipient)
    report = build_report(ledger, CAMPAIGN)
    assert report.sends["accepted"] == 200 and report.sends["unknown"] == 0
    assert report.unknown_unresolved == 0
    assert report.accepted == 200 and report.delivery.get("pending", 0) == 0


@pytest.mark.usefixtures("wa_sandbox")
def test_without_the_echo_they_resolve_by_recipient_when_the_report_is_made(
    sandbox: Sandbox, live_receiver: tuple[str, Ledger], ledger: Ledger
) -> None:
    url, _ = live_receiver
    # Meta does not echo biz_opaque_callback_data here; statuses may arrive before the run wrote unknown.
    run_with_lost_answers(sandbox, url, webhook_delay_s=0.01, echo_callback_data=False)
    ledger.resolve_unknown([CAMPAIGN])  # the sensor's pass (some may be resolved already)
    assert send_counts(ledger, CAMPAIGN) == {"accepted": 200}
    notes = {r["error_details"] for r in ledger.iter_sends(CAMPAIGN) if r["recipient"] in LOST}
    assert notes == {RESOLVED_BY_RECIPIENT}
    report = build_report(ledger, CAMPAIGN)
    assert report.unknown_unresolved == 0 and report.to_dict()["unknown_unresolved"] == 0


@pytest.mark.usefixtures("wa_sandbox")
def test_a_send_meta_never_took_stays_unknown_and_is_counted(sandbox: Sandbox, ledger: Ledger) -> None:
    # A request that never reached Meta (a hang cut by the timeout) has no webhook to resolve it.
    sandbox.configure(forced_outcomes={digits(5): "hang"})
    op = MarketingMessageOperator(
        task_id="send",
        whatsapp_conn_id=WHATSAPP_CONN_ID,
        ledger_conn_id=LEDGER_CONN_ID,
        campaign_id="hung",
        recipients=rows(10),
        campaign_options={**FAST_RETRIES, "max_attempts": 1},
        **SPRING_SALE,
    )
    summary = op.execute(make_context())
    if summary["unknown"] == 0:
        pytest.skip("the sandbox answered the hung request as an error, not as a lost answer")
    assert ledger.resolve_unknown(["hung"]) == 0
    assert build_report(ledger, "hung").unknown_unresolved == summary["unknown"]
