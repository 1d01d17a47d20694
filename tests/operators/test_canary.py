"""Canary rollout against the sandbox, its webhooks stored by the receiver in the campaign's ledger.

The first slice is sent, the task defers while its webhooks settle, the gates are read from the ledger:
a slice with 30 % of 131048 failures stops the rollout (the rest is never sent, the evidence is in the
error and in XCom); a healthy one goes on to everyone, nobody messaged twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_wamm.campaign.canary import Gates, check_rollout
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.operators.canary import CANARY_KEY
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.triggers.window import SendWindowTrigger
from tests.operators.conftest import make_context, rows
from tests.operators.test_marketing_operator import operator
from tests.plugins.sandbox_fixtures import FAST_WEBHOOKS, SANDBOX_SECRET


def wire(sandbox: Sandbox, url: str, outcomes: dict[str, float]) -> None:
    sandbox.configure(
        webhook_url=url, app_secret=SANDBOX_SECRET, outcomes=outcomes, click_rate=0.0, **FAST_WEBHOOKS
    )


async def _fire(trigger: SendWindowTrigger) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger fired nothing")


def first_slice(sandbox: Sandbox, people: int, **kwargs: Any) -> tuple[Any, dict[str, Any], TaskDeferred]:
    op = operator(recipients=rows(people), rollout=[0.2, 1.0], canary_settle=timedelta(seconds=0.3), **kwargs)
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert sandbox.wait_webhooks_idle(10)
    return op, context, deferred.value


def resume(op: Any, context: dict[str, Any], deferred: TaskDeferred) -> Any:
    assert isinstance(deferred.trigger, SendWindowTrigger) and deferred.method_name == "resume_rollout"
    event = asyncio.run(_fire(deferred.trigger))
    return op.resume_rollout(context, event=event.payload, **(deferred.kwargs or {}))


def test_a_canary_that_trips_a_gate_never_sends_the_rest(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, live_receiver: tuple[str, Ledger]
) -> None:
    wire(sandbox, live_receiver[0], {"failed:131048": 0.3, "delivered": 0.7})
    op, context, deferred = first_slice(sandbox, 200)
    canary = len(sandbox.messages)
    assert 20 <= canary <= 60  # about 20 % of 200

    with pytest.raises(AirflowFailException, match="131048") as failed:
        resume(op, context, deferred)

    assert "The rest was not sent" in str(failed.value)
    assert len(sandbox.messages) == canary  # nobody beyond the first slice
    evidence = context["ti"].xcoms[CANARY_KEY][-1]
    assert evidence["passed"] is False and evidence["by_code"]["131048"] > 0
    assert any("131048" in f for f in evidence["failures"])


def test_a_healthy_canary_goes_on_to_everyone_once(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, live_receiver: tuple[str, Ledger]
) -> None:
    wire(sandbox, live_receiver[0], {"delivered": 1.0})
    op, context, deferred = first_slice(sandbox, 100)
    canary = len(sandbox.messages)
    assert 0 < canary < 100

    result = resume(op, context, deferred)

    assert len(sandbox.messages) == 100 and max(sandbox.sends_per_recipient().values()) == 1
    assert result["accepted"] == 100 - canary and result["already_done"] == canary
    assert result["rollout"]["step"] == 1 and result["rollout"]["gates"][0]["passed"] is True
    assert context["ti"].xcoms[CANARY_KEY][0]["sent"] == canary


def test_a_canary_slice_with_nobody_in_it_stops_the_rollout(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, live_receiver: tuple[str, Ledger]
) -> None:
    wire(sandbox, live_receiver[0], {"delivered": 1.0})
    op = operator(recipients=rows(5), rollout=[1e-9, 1.0], canary_settle=timedelta(seconds=0.1))
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert sandbox.messages == []  # no number falls in a slice this thin

    with pytest.raises(AirflowFailException, match="min_sent: no messages in the canary") as failed:
        resume(op, context, deferred.value)

    assert "The rest was not sent" in str(failed.value) and sandbox.messages == []
    evidence = context["ti"].xcoms[CANARY_KEY][-1]
    assert evidence["passed"] is False and evidence["sent"] == 0


def test_a_canary_whose_webhooks_never_arrive_stops_the_rollout(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(outcomes={"delivered": 1.0}, click_rate=0.0)  # no receiver stores its webhooks
    op, context, deferred = first_slice(sandbox, 100)
    canary = len(sandbox.messages)
    assert canary > 0

    with pytest.raises(AirflowFailException, match="min_answered: 0 of the") as failed:
        resume(op, context, deferred)

    assert "webhook receiver" in str(failed.value) and len(sandbox.messages) == canary


def test_without_webhooks_min_answered_0_judges_the_sends_alone(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(outcomes={"delivered": 1.0}, click_rate=0.0)
    op, context, deferred = first_slice(sandbox, 40, canary_gates={"min_answered": 0})
    result = resume(op, context, deferred)
    assert len(sandbox.messages) == 40 and result["rollout"]["gates"][0]["answered"] == 0


def test_an_empty_audience_ends_without_a_canary(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(recipients=[], rollout=[0.2, 1.0], canary_settle=timedelta(seconds=0.1))
    result = op.execute(make_context())  # no deferral: nothing to judge, nothing to send later
    assert result["total"] == 0 and result["rollout"]["step"] == 0 and sandbox.messages == []


def test_rollout_and_gates_are_checked_when_the_dag_is_parsed() -> None:
    assert check_rollout([0.05, 0.5, 1.0]) == (0.05, 0.5, 1.0)
    for bad in ([0.5], [0.5, 0.2, 1.0], [0, 1.0]):
        with pytest.raises(ConfigurationError):
            check_rollout(bad)
    with pytest.raises(ValueError, match=r"canary: rollout must end with 1\.0"):
        operator(recipients=[], rollout=[0.1, 0.5])
    assert Gates.from_options({"max_code_rates": {"131048": 0.01}}).max_code_rates == {131048: 0.01}
    with pytest.raises(ValueError, match="unknown gates"):
        operator(recipients=[], rollout=[1.0], canary_gates={"max_spam": 1})
