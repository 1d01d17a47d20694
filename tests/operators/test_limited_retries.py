"""Retries after Meta's per-user marketing limit (131049): ``retry_limited`` runs of the same campaign.

Time passing is simulated by moving the ledger's times back (the rows' ``retry_after``,
``limited_since``, ``not_before`` and the suppressions' ends), as if a day had gone by.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import Ledger, StatusUpdate
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import digits, make_context, rows
from tests.operators.test_marketing_operator import operator

CAMPAIGN = "spring_sale_2026"
LIMITED = [digits(i) for i in range(5)]
US = ["12125550100", "12125550101"]


def audience() -> list[dict[str, Any]]:
    """20 German numbers and 2 US ones."""
    us = [{"phone": "+" + n, "name": "Al", "discount": "5%", "slug": "u"} for n in US]
    return rows(20) + us


def send(**kwargs: Any) -> dict[str, Any]:
    # US numbers are skipped at intake by default; here they are sent, to see Meta's 131049 answers.
    options = {"unsupported_markets": [], **kwargs.pop("campaign_options", {})}
    args: dict[str, Any] = {"recipients": audience(), "campaign_id": CAMPAIGN, "campaign_options": options}
    return operator(**{**args, **kwargs}).execute(make_context())


def a_day_passes(ledger: Ledger, hours: float = 25) -> None:
    """Move every time the retries look at ``hours`` into the past."""
    shift = timedelta(hours=hours)
    with ledger.engine.begin() as conn:
        sends = ledger.sends
        for column in ("retry_after", "limited_since", "not_before"):
            col = sends.c[column]
            for recipient, value in conn.execute(sa.select(sends.c.recipient, col).where(col.is_not(None))):
                conn.execute(
                    sends.update().where(sends.c.recipient == recipient).values({column: value - shift})
                )
        sup = ledger.suppressions
        for recipient, until in conn.execute(
            sa.select(sup.c.recipient, sup.c.until).where(sup.c.until.is_not(None))
        ):
            conn.execute(sup.update().where(sup.c.recipient == recipient).values(until=until - shift))


def row(ledger: Ledger, recipient: str) -> dict[str, Any]:
    return next(r for r in ledger.iter_sends(CAMPAIGN) if r["recipient"] == recipient)


def test_limited_recipients_are_retried_once_a_day_at_most_n_times_never_us(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(forced_outcomes={n: "error:131049" for n in LIMITED + US})
    before = datetime.now(UTC)
    first = send()
    assert first["accepted"] == 15 and first["failed"] == 7
    for n in LIMITED:
        r = row(ledger, n)
        assert r["limited_tries"] == 1 and r["retry_after"] >= before + timedelta(hours=24)
    for n in US:  # Meta delivers no marketing to US numbers: 131049 is final there
        r = row(ledger, n)
        assert r["error_code"] == 131049 and r["retry_after"] is None and r["not_before"] is None

    # The same day: nobody is due.
    early = send(retry_limited=True)
    assert early["total"] == 0 and early["limited_retry"]["due"] == 0
    assert early["limited_retry"]["waiting"] == 5 and early["limited_retry"]["never_retried"] == 2

    # The next day: the five are due; three get through, two hit the limit again.
    a_day_passes(ledger)
    sandbox.configure(forced_outcomes={n: "error:131049" for n in LIMITED[3:] + US})
    second = send(retry_limited=True)
    assert second["total"] == 5 and second["accepted"] == 3 and second["failed"] == 2
    assert second["limited_retry"]["due"] == 5
    assert max(sandbox.sends_per_recipient().values()) == 1  # every recipient got one message at most
    assert again_today_sends_nothing()

    a_day_passes(ledger)
    third = send(retry_limited=True)
    assert third["total"] == 2 and third["failed"] == 2
    assert [row(ledger, n)["limited_tries"] for n in LIMITED[3:]] == [3, 3]

    # Three tries (the first send and two retries) is the default maximum.
    a_day_passes(ledger)
    fourth = send(retry_limited=True)
    assert fourth["total"] == 0 and fourth["limited_retry"]["exhausted"] == 2
    assert fourth["limited_retry"]["retried"] == 5 and fourth["limited_retry"]["recovered"] == 3
    assert sandbox.errors()[131049] == 2 + 5 + 2 + 2  # US once each; the two others three times


def again_today_sends_nothing() -> bool:
    result = send(retry_limited=True)
    return result["total"] == 0 and result["sent"] == 0


def test_retries_stop_when_the_recovery_rate_is_too_low(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(forced_outcomes={n: "error:131049" for n in LIMITED})
    options = {"min_recovery_rate": 0.5, "min_recovery_sample": 5, "max_limited_tries": 5}
    send(campaign_options=options)
    a_day_passes(ledger)
    retried = send(retry_limited=True, campaign_options=options)
    assert retried["failed"] == 5  # still limited: 0 of 5 recovered
    a_day_passes(ledger)
    stopped = send(retry_limited=True, campaign_options=options)
    assert stopped["total"] == 0
    plan = stopped["limited_retry"]
    assert plan["recovery_rate"] == 0.0 and "min_recovery_rate" in plan["stopped"]
    assert sandbox.errors()[131049] == 10


def test_a_131049_status_webhook_schedules_a_retry_once(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    send()
    at = datetime.now(UTC)
    targets = [row(ledger, n) for n in (LIMITED[0], US[0])]
    update = [
        StatusUpdate(r["wamid"], "failed", at, recipient_id=r["recipient"], error_code=131049)
        for r in targets
    ]
    ledger.record_statuses(update)
    ledger.record_statuses(update)  # Meta redelivers: counted once
    limited, us = (row(ledger, r["recipient"]) for r in targets)
    assert limited["state"] == "accepted" and limited["limited_tries"] == 1
    assert abs(limited["retry_after"] - (at + timedelta(hours=24))) < timedelta(seconds=1)
    assert us["limited_tries"] is None and us["retry_after"] is None

    a_day_passes(ledger)
    retried = send(retry_limited=True)
    assert retried["total"] == 1 and retried["accepted"] == 1
    assert sandbox.sends_per_recipient()[LIMITED[0]] == 2  # the failed message and its retry
