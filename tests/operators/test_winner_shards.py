"""Winner to the rest with mapped shards (one decision for all of them) and on SQL conversions."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_wamm.campaign.ledger import Ledger, StatusUpdate, utcnow
from airflow_provider_wamm.campaign.winner_decisions import WinnerDecisions
from airflow_provider_wamm.sandbox import Sandbox
from tests.operators.conftest import CRM_CONN_ID, make_context, rows, seed_crm
from tests.operators.test_experiment_operator import VARIANTS, add_v2, operator


def send_test_slice(op: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the operator until it defers for the winner: its context and the deferral's kwargs."""
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.method_name == "execute_winner"
    return context, deferred.value.kwargs


def record(ledger: Ledger, sandbox: Sandbox, status: Callable[[Any], str | None]) -> None:
    """What the webhook receiver would store: ``status(message)`` of each message (``None``: nothing)."""
    updates = [
        StatusUpdate(wamid=m.wamid, status=s, timestamp=utcnow(), recipient_id=m.to)
        for m in sandbox.messages
        for s in [status(m)]
        if s is not None
    ]
    ledger.record_statuses(updates)


def test_every_shard_sends_the_rest_the_decision_the_first_shard_recorded(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    add_v2(sandbox)
    sandbox.configure(
        pair_limit=False,
        outcomes={"read": 0.2, "delivered": 0.8},
        template_outcomes={"spring_sale_v2": {"read": 0.6, "delivered": 0.4}},
    )
    args = {"campaign_id": "ab-shards", "holdout": 0.1, "variants": VARIANTS, "test_share": 0.3}
    shards = [operator(recipients=rows(1500), shard_index=i, shard_count=3, **args) for i in range(3)]
    deferred = [send_test_slice(op) for op in shards]
    tested = sum(ctx["ti"].xcoms["test_result"]["accepted"] for ctx, _ in deferred)
    rest = sum(ctx["ti"].xcoms["test_result"]["rest"] for ctx, _ in deferred)
    assert tested == len(sandbox.messages) > 0
    # The statuses so far favour B (the sandbox reads spring_sale_v2 more)...
    record(ledger, sandbox, lambda m: m.outcome if m.template == "spring_sale_v2" else "delivered")
    first_ctx, first_kwargs = deferred[1]
    shards[1].execute_winner(first_ctx, None, **first_kwargs)
    decision = first_ctx["ti"].xcoms["winner"]
    assert decision["sent_to_rest"] == "B" and decision["shards_read"] == [0, 1, 2]
    assert decision["arms"] and sum(a["trials"] for a in decision["arms"]) == tested
    # ...then every A message is read: a shard deciding on its own now would pick A.
    record(ledger, sandbox, lambda m: "read" if m.template == "spring_sale" else None)
    for i in (0, 2):
        ctx, kwargs = deferred[i]
        result = shards[i].execute_winner(ctx, None, **kwargs)
        assert ctx["ti"].xcoms["winner"] == decision  # the recorded decision, shard 1's
        assert result["winner"]["decided_by"] == "send[shard 1]"
    assert WinnerDecisions(ledger).recorded("ab-shards") == decision
    sends = sandbox.sends_per_recipient()
    assert set(sends.values()) == {1} and len(sends) == tested + rest  # each recipient at most once
    rest_templates = {m.template for m in sandbox.messages[tested:]}
    assert rest_templates == {"spring_sale_v2"}
    assert {r["variant"] for r in ledger.iter_sends("ab-shards") if r["variant"].startswith("rest")} == {
        "rest:B"
    }


def test_a_shard_waits_while_another_still_sends_its_test_slice(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    add_v2(sandbox)
    sandbox.configure(pair_limit=False, outcomes={"read": 1.0})
    op = operator(
        recipients=rows(200),
        campaign_id="ab-wait",
        variants=VARIANTS,
        test_share=0.5,
        shard_index=0,
        shard_count=2,
    )
    context, kwargs = send_test_slice(op)
    ledger.start_run("ab-wait", "shard-1-attempt", shard_index=1, shard_count=2)  # still sending
    with pytest.raises(TaskDeferred) as again:
        op.execute_winner(context, None, **kwargs)
    assert again.value.method_name == "execute_winner" and again.value.kwargs["rechecks"] == 1
    assert WinnerDecisions(ledger).recorded("ab-wait") is None and "winner" not in context["ti"].xcoms
    ledger.finish_run("shard-1-attempt", state="finished", summary={})
    record(ledger, sandbox, lambda m: m.outcome)
    op.execute_winner(context, None, **again.value.kwargs)
    assert context["ti"].xcoms["winner"]["shards_read"] == [0]


def test_the_conversion_metric_reads_sql_conversions_within_the_window(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    add_v2(sandbox)
    sandbox.configure(pair_limit=False)
    op = operator(
        recipients=rows(800),
        campaign_id="ab-conv",
        variants=VARIANTS,
        test_share=0.5,
        winner_metric="conversion",
        winner_conversions_sql="SELECT phone AS recipient, converted_at FROM orders",
        winner_conversions_conn_id=CRM_CONN_ID,
        winner_window=timedelta(days=7),
    )
    context, kwargs = send_test_slice(op)
    test = {r["recipient"]: r["variant"] for r in ledger.iter_sends("ab-conv") if r["state"] == "accepted"}
    a = sorted(r for r, v in test.items() if v == "A")
    b = sorted(r for r, v in test.items() if v == "B")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    late = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    # Half of B buy within the week; every A buys, but a month later (outside the window), and a tenth
    # of A within it.
    orders = [{"phone": f"+{r}", "converted_at": soon} for r in b[: len(b) // 2]]
    orders += [{"phone": f"+{r}", "converted_at": late} for r in a]
    orders += [{"phone": f"+{r}", "converted_at": soon} for r in a[: len(a) // 10]]
    seed_crm(crm, orders, table="orders")
    result = op.execute_winner(context, None, **kwargs)
    decision = context["ti"].xcoms["winner"]
    assert decision["metric"] == "conversion" and decision["sent_to_rest"] == "B", decision["log_line"]
    arms = {arm["name"]: (arm["successes"], arm["trials"]) for arm in decision["arms"]}
    assert arms == {"A": (len(a) // 10, len(a)), "B": (len(b) // 2, len(b))}
    assert result["accepted"] == context["ti"].xcoms["test_result"]["rest"]
    assert {m.template for m in sandbox.messages[len(test) :]} == {"spring_sale_v2"}


def test_the_conversion_metric_needs_its_query() -> None:
    with pytest.raises(ValueError, match="winner_conversions_sql"):
        operator(recipients=rows(1), variants=VARIANTS, test_share=0.2, winner_metric="conversion")
