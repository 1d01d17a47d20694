"""Guards of a running campaign: a template paused by Meta, a budget used up; the run stops between two
hand-overs, records what was in flight, releases the rest, and a later run finishes without duplicates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_wamm.campaign.guards import (
    BaseGuard,
    CampaignDeferred,
    Guards,
    MessagingLimitReached,
    TemplatePaused,
    Trip,
)
from airflow_provider_wamm.campaign.ledger import Ledger, TemplateEvent, TemplateEventKind
from airflow_provider_wamm.campaign.ledger.signal_records import TemplateState
from airflow_provider_wamm.campaign.pauses import TemplateGuard, template_trip
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.sandbox import Sandbox
from tests.campaign.test_sender import client, rows, settings

__all__ = ["client"]  # the fixture, imported for the tests below

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def state(**kw: object) -> TemplateState:
    base: dict[str, object] = {
        "template_id": "1",
        "template_name": "spring_sale",
        "language": "en_US",
        "waba_id": "200",
    }
    base.update(kw)
    return TemplateState(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "kind", "final"),
    [
        ({"status": "PAUSED", "status_at": T0}, "template_paused", False),
        ({"status": "PENDING", "status_at": T0}, "template_paused", False),
        ({"status": "DISABLED", "status_at": T0}, "template_disabled", True),
        ({"status": "REJECTED", "status_at": T0}, "template_disabled", True),
        ({"status": "APPROVED", "category": "UTILITY", "category_at": T0}, "template_recategorised", True),
    ],
)
def test_template_trip_by_status_and_category(kw: dict[str, object], kind: str, final: bool) -> None:
    trip = template_trip(state(**kw))
    assert trip is not None and (trip.kind, trip.final) == (kind, final)
    assert "spring_sale" in trip.message


def test_template_trip_is_none_when_approved_marketing_or_unknown_or_older_than_a_fresher_read() -> None:
    assert template_trip(None) is None
    assert template_trip(state(status="APPROVED", category="MARKETING")) is None
    assert template_trip(state(status="FLAGGED")) is None  # a warning, not a pause
    # The preflight read the template as APPROVED after the stored pause: the pause is superseded.
    assert template_trip(state(status="PAUSED", status_at=T0), since=T0 + timedelta(seconds=1)) is None
    assert template_trip(state(status="PAUSED", status_at=T0), since=T0) is not None


class Budget(BaseGuard):
    """A guard with a budget of recipients (what the messaging limit guard gives)."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.claims = 0

    def allowance(self) -> int | None:
        return self.left

    def claimed(self, count: int) -> None:
        self.claims += count
        self.left -= count

    def exhausted(self) -> Trip | None:
        return Trip("messaging_limit", "budget used up", resume_at=T0)


class Flag(BaseGuard):
    """Trips once ``tripped`` is set."""

    def __init__(self) -> None:
        self.tripped = False
        self.looks = 0

    def check(self) -> Trip | None:
        self.looks += 1
        return Trip("template_paused", "paused", status="PAUSED") if self.tripped else None


def test_guards_look_at_most_every_interval_and_take_the_smallest_budget() -> None:
    flag = Flag()
    guards = Guards([flag, Budget(7), Budget(3)], interval_s=10.0)
    assert guards.check(now=100.0) is None and flag.looks == 1
    flag.tripped = True
    assert guards.check(now=105.0) is None and flag.looks == 1  # not due yet
    trip = guards.check(now=110.0)
    assert trip is not None and trip.kind == "template_paused"
    assert guards.allowance() == 3
    guards.claimed(5)
    assert guards.allowance() == 0  # never negative
    assert not Guards() and Guards().allowance() is None and Guards().check() is None


def when(sandbox: Sandbox, count: int, action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` once the sandbox accepted ``count`` messages."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while len(sandbox.messages) < count and time.monotonic() < deadline:
            time.sleep(0.001)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_tripped_guard_stops_claiming_releases_the_rest_and_a_later_run_finishes(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    sandbox.configure(latency_s=0.002)
    flag = Flag()
    watcher = when(sandbox, 200, lambda: setattr(flag, "tripped", True))
    with pytest.raises(TemplatePaused) as info:
        run_campaign(
            rows(1000),
            client=client,
            ledger=sqlite_ledger,
            settings=settings("guarded", max_messages_per_second=400.0, batch_size=50),
            guards=Guards([flag], interval_s=0.05),
        )
    watcher.join()
    result = info.value.result
    assert result is not None and result.deferred == "template_paused"
    sent = len(sandbox.messages)
    assert 200 <= sent < 1000 and result.accepted == sent  # every answer in flight was recorded
    assert result.released > 0 and result.unknown == 0
    counts = send_counts(sqlite_ledger, "guarded")
    assert counts == {"accepted": sent}  # nothing left claimed: the rest was released
    assert sqlite_ledger.list_runs("guarded")[0]["state"] == "halted"
    again = run_campaign(rows(1000), client=client, ledger=sqlite_ledger, settings=settings("guarded"))
    assert again.accepted == 1000 - sent and again.already_done == sent
    per = sandbox.sends_per_recipient()
    assert len(per) == 1000 and set(per.values()) == {1}


def test_a_budget_sends_exactly_that_many_then_stops(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    budget = Budget(50)
    with pytest.raises(MessagingLimitReached) as info:
        run_campaign(
            rows(300),
            client=client,
            ledger=sqlite_ledger,
            settings=settings("budget", batch_size=40),
            guards=Guards([budget]),
        )
    assert isinstance(info.value, CampaignDeferred) and info.value.trip.resume_at == T0
    assert len(sandbox.messages) == 50 and budget.claims == 50
    assert send_counts(sqlite_ledger, "budget") == {"accepted": 50}


def test_a_budget_that_suffices_finishes_normally(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    result = run_campaign(
        rows(30),
        client=client,
        ledger=sqlite_ledger,
        settings=settings("enough"),
        guards=Guards([Budget(30)]),
    )
    assert result.accepted == 30 and result.deferred is None


def test_a_pause_stored_mid_run_stops_the_campaign_within_the_guard_interval(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    sandbox.configure(latency_s=0.002)
    sqlite_ledger.ensure_schema()
    paused_at: list[float] = []

    def pause() -> None:
        event = TemplateEvent(
            TemplateEventKind.STATUS,
            "PAUSED",
            template_name="spring_sale",
            language="en_US",
            event_at=datetime.now(UTC),
        )
        sqlite_ledger.record_template_events([event])
        paused_at.append(len(sandbox.messages))

    watcher = when(sandbox, 100, pause)
    guard = TemplateGuard(sqlite_ledger, "spring_sale", "en_US")
    with pytest.raises(TemplatePaused) as info:
        run_campaign(
            rows(2000),
            client=client,
            ledger=sqlite_ledger,
            settings=settings("paused", max_messages_per_second=200.0, batch_size=20),
            guards=Guards([guard], interval_s=0.1),
        )
    watcher.join()
    assert info.value.trip.status == "PAUSED" and not info.value.trip.final
    # At 200 msg/s and a look every 0.1 s, at most a few dozen more left after the pause was stored.
    assert len(sandbox.messages) - paused_at[0] < 120
    assert len(sandbox.messages) < 2000
