"""Send windows in the recipient's local time, run with a controlled clock against the sandbox.

The task sends everyone whose 09:00-20:00 window is open, defers (``TaskDeferred``: Airflow sets the
task instance to ``deferred`` and frees the worker slot) until the next window opens, and resumes; the
sandbox's arrival times, read in each recipient's zone, prove everyone was messaged in their window,
once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airflow.exceptions import TaskDeferred

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.windows import SendWindow, pick_zone, zones_of_number
from airflow_provider_wamm.operators.marketing import MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.triggers.window import SendWindowTrigger
from tests.clock import ControlledClock
from tests.operators.conftest import make_context
from tests.operators.test_marketing_operator import operator

#: Tuesday 1 December 2026, 06:00 UTC.
START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
#: Five zones, three numbers each: (pattern, zone libphonenumber gives the numbers).
ZONES: dict[str, str] = {
    "+81 90 1234 {:04d}": "Asia/Tokyo",  # 15:00 local at the start: open
    "+91 98765 4{:04d}": "Asia/Calcutta",  # 11:30: open
    "+49 151 2345 {:04d}": "Europe/Berlin",  # 07:00: opens at 08:00 UTC
    "+44 7911 12{:04d}": "Europe/London",  # 06:00: opens at 09:00 UTC
    "+55 11 91234 {:04d}": "America/Sao_Paulo",  # 03:00: opens at 12:00 UTC
}


def audience() -> list[dict[str, Any]]:
    return [
        {"phone": pattern.format(i), "name": "Ana", "discount": "20%", "slug": "s"}
        for pattern in ZONES
        for i in range(3)
    ]


def run_until_done(
    op: MarketingMessageOperator, clock: ControlledClock
) -> tuple[dict[str, Any], list[datetime]]:
    """Execute the task, and after each deferral let its trigger fire at the clock's moment and resume."""
    context = make_context()
    deferrals: list[datetime] = []
    call: Callable[..., Any] = op.execute
    kwargs: dict[str, Any] = {}
    while True:
        try:
            return call(context, **kwargs), deferrals
        except TaskDeferred as deferred:
            trigger = deferred.trigger
            assert isinstance(trigger, SendWindowTrigger)
            assert deferred.method_name == "resume_send_window"
            deferrals.append(trigger.moment)
            clock.advance_to(trigger.moment)
            event = asyncio.run(_first_event(trigger))
            call, kwargs = (
                getattr(op, deferred.method_name),
                {"event": event.payload, **(deferred.kwargs or {})},
            )


async def _first_event(trigger: SendWindowTrigger) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger fired nothing")


def test_five_time_zones_each_messaged_once_in_their_local_window(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ControlledClock(START).install(monkeypatch)
    op = operator(recipients=audience(), send_window=("09:00", "20:00"))

    result, deferrals = run_until_done(op, clock)

    # Deferred between windows: until Berlin, London, then Sao Paulo opened.
    assert deferrals == [
        datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
    ]
    assert result["send_window"]["rounds"] == 4 and result["send_window"]["held"] == 0
    messages = sandbox.messages
    assert len(messages) == 15 and max(sandbox.sends_per_recipient().values()) == 1
    for message in messages:  # the arrival time, read in the recipient's zone, is inside 09:00-20:00
        zone = ZoneInfo(zones_of_number(message.to)[0])
        local = datetime.fromtimestamp(message.timestamp, tz=zone)
        assert 9 <= local.hour < 20, (message.to, local)
    by_round = sorted({datetime.fromtimestamp(m.timestamp, tz=UTC) for m in messages})
    assert by_round == [START, *deferrals]


def test_the_zone_comes_from_a_column_first_then_the_number(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ControlledClock(START).install(monkeypatch)
    people = audience()[:3]  # Tokyo numbers (open now), but the column says New York (01:00 there)
    for person in people:
        person["tz"] = "America/New_York"
    with pytest.raises(TaskDeferred) as deferred:
        operator(recipients=people, send_window=("09:00", "20:00"), timezone_field="tz").execute(
            make_context()
        )
    assert deferred.value.trigger.moment == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert sandbox.messages == []


def test_a_window_that_opens_after_not_after_is_skipped_with_the_reason(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ControlledClock(START).install(monkeypatch)
    op = operator(
        recipients=audience(), send_window=("09:00", "20:00"), not_after="2026-12-01T10:00:00+00:00"
    )
    with pytest.raises(TaskDeferred):
        op.execute(make_context())
    rows = {r["recipient"]: r for r in ledger.iter_sends("wamm_ops.send.manual__2026-05-01T10:00:00+00:00")}
    brazil = [r for n, r in rows.items() if n.startswith("55")]
    assert len(brazil) == 3 and all(r["state"] == "skipped" for r in brazil)
    assert "opens after the deadline" in brazil[0]["error_details"]


def test_dry_run_counts_who_is_open_held_and_never_defers(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ControlledClock(START).install(monkeypatch)
    result = operator(recipients=audience(), send_window=("09:00", "20:00"), dry_run=True).execute(
        make_context()
    )
    assert result["would_send"] == 6
    assert (
        result["send_window"]["held"] == 9
        and result["send_window"]["next_open"] == "2026-12-01T08:00:00+00:00"
    )


def test_send_days_and_send_at() -> None:
    window = SendWindow.parse(("09:00", "20:00"), ["mon", "tue", "wed", "thu", "fri"])
    saturday = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert window.next_open(saturday, ZoneInfo("UTC")) == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert pick_zone(
        ["Australia/Perth", "Australia/Sydney", "Australia/Adelaide"], "first", START
    ) == ZoneInfo("Australia/Sydney")
    assert pick_zone(["Australia/Perth", "Australia/Sydney"], "last", START) == ZoneInfo("Australia/Perth")


def test_invalid_windows_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="must be before"):
        operator(recipients=[], send_window=("20:00", "09:00"))
    with pytest.raises(ValueError, match="not a day of the week"):
        operator(recipients=[], send_window=("09:00", "20:00"), send_days=["someday"])
    with pytest.raises(ValueError, match="zone_choice"):
        operator(recipients=[], send_window=("09:00", "20:00"), zone_choice="west")


def test_send_at_holds_a_recipient_until_then(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ControlledClock(START).install(monkeypatch)
    people = audience()[:2]  # Tokyo: open now
    people[1]["send_at"] = (START + timedelta(hours=2)).isoformat()
    op = operator(recipients=people, send_window=("09:00", "20:00"), send_at_field="send_at")
    result, deferrals = run_until_done(op, clock)
    assert deferrals == [START + timedelta(hours=2)] and len(sandbox.messages) == 2
    assert result["accepted"] == 1 and result["already_done"] == 0
