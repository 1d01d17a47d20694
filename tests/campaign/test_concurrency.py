"""Adaptive concurrency: requests in flight follow the measured round trips (Little's law with
headroom), within bounds, growing at once and shrinking step by step; the run resizes its pool.

Every test drives the mechanism with given round trips and times (no test here depends on how fast
this machine is): the last one runs a whole campaign over a client that holds each request, and
checks that the pool grew past its starting size, which only the adaptive sizing does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_wamm.campaign.adapt import (
    STARTUP_ANSWERS,
    STARTUP_INTERVAL_S,
    AdaptiveConcurrency,
    connections_needed,
)
from airflow_provider_wamm.campaign.concurrency import ConcurrencyTarget, RoundTrips
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.campaign.workers import Accepted, Job, NotSent
from airflow_provider_wamm.graph.errors import ConfigurationError, GraphTransportError


@dataclass
class Sent:
    wamid: str
    message_status: str = "accepted"


def settings(**kw: Any) -> CampaignSettings:
    base: dict[str, Any] = {"campaign_id": "adaptive", "template_name": "spring_sale", "language": "en_US"}
    return CampaignSettings(**{**base, **kw})


class FakePool:
    """Records the sizes it is given."""

    def __init__(self) -> None:
        self.size = 0
        self.sizes: list[int] = []

    def resize(self, n: int) -> None:
        self.size = n
        self.sizes.append(n)


def answer(seconds: float) -> Accepted:
    return Accepted(Job("4915100000001", {}, round_trip_s=seconds), Sent("wamid.1"))


def test_round_trips_report_a_weighted_mean_and_a_high_percentile() -> None:
    trips = RoundTrips(alpha=0.5, percentile=0.9, size=100)
    assert trips.estimate() is None
    for ms in range(1, 101):
        trips.add(ms / 1000)
    assert trips.high == pytest.approx(0.091)
    assert trips.mean is not None and 0.09 < trips.mean < 0.1
    trips.add(float("nan"))
    trips.add(-1.0)
    assert len(trips) == 100  # unusable values are ignored


@pytest.mark.parametrize(
    ("rate", "round_trip", "expected"), [(80, 0.3, 31), (1000, 0.15, 189), (80, 0.6, 61)]
)
def test_the_target_is_littles_law_with_headroom(rate: float, round_trip: float, expected: int) -> None:
    target = ConcurrencyTarget(start=8, maximum=4096, headroom=1.25)
    for _ in range(20):
        target.observe(round_trip)
    assert target.wanted(rate) == math.ceil(rate * round_trip * 1.25) + 1 == expected


def test_it_grows_at_once_and_shrinks_only_after_answers_stayed_fast() -> None:
    target = ConcurrencyTarget(start=8, minimum=4, maximum=1000, shrink_after_s=5.0, shrink_step=0.5)
    for _ in range(600):
        target.observe(1.0)
    assert target.update(100.0, now=0.0) == 126  # 100 msg/s x 1 s x 1.25, + 1
    for _ in range(600):
        target.observe(0.1)
    assert target.update(100.0, now=1.0) == 126  # fast answers for a moment: no shrink yet
    assert target.update(100.0, now=5.0) == 126
    shrunk = target.update(100.0, now=6.0)
    assert 14 < shrunk < 126  # one step of half the distance
    assert target.update(100.0, now=11.0) < shrunk
    for t in range(12, 80, 5):
        target.update(100.0, now=float(t))
    assert target.size == 14  # down to 100 x 0.1 x 1.25 + 1
    for _ in range(600):
        target.observe(2.0)
    assert target.update(100.0, now=81.0) == 251  # slow again: grown at once


def test_it_stays_within_its_bounds() -> None:
    target = ConcurrencyTarget(start=50, minimum=10, maximum=64)
    for _ in range(50):
        target.observe(5.0)
    assert target.update(1000.0, now=0.0) == 64
    target = ConcurrencyTarget(start=2, minimum=10, maximum=64)
    assert target.size == 10
    with pytest.raises(ValueError, match="minimum"):
        ConcurrencyTarget(start=2, minimum=10, maximum=5)


def test_the_run_resizes_its_pool_to_the_round_trips() -> None:
    pool = FakePool()
    adapt = AdaptiveConcurrency(settings(concurrency=8, max_messages_per_second=200), pool)  # type: ignore[arg-type]
    adapt.start()
    assert pool.sizes == [8]
    for _ in range(50):
        adapt.observe(answer(0.5))
    adapt.observe(NotSent(Job("4915100000002", {}, round_trip_s=60.0), GraphTransportError("refused")))
    assert adapt.tick(0.0, rate=200.0) == 126  # 200 x 0.5 x 1.25 + 1; the refused request is not counted
    assert pool.sizes == [8, 126]
    assert adapt.tick(0.1, rate=200.0) is None  # looked at most every quarter second
    assert adapt.max_in_flight(200.0) == 252
    assert adapt.largest == 126


def test_before_the_first_answers_the_pool_grows_with_the_age_of_what_is_in_flight() -> None:
    pool = FakePool()
    adapt = AdaptiveConcurrency(settings(concurrency=200, max_messages_per_second=1000), pool)  # type: ignore[arg-type]
    adapt.start()
    waiting = [Job(f"49151000{i:05d}", {}, left_at=time.perf_counter() - 0.5) for i in range(3)]
    # No answer yet, but a request in flight for half a second: the round trip is at least that.
    size = adapt.tick(0.0, rate=1000.0, in_flight=[*waiting, Job("4915100099999", {})])
    assert size is not None and size >= math.ceil(1000 * 0.5 * 1.25) + 1
    # Until then it looks again every STARTUP_INTERVAL_S, not every ADAPT_INTERVAL_S.
    older = [Job("4915100000002", {}, left_at=time.perf_counter() - 0.9)]
    grown = adapt.tick(STARTUP_INTERVAL_S, rate=1000.0, in_flight=older)
    assert grown is not None and grown > size
    for _ in range(STARTUP_ANSWERS):  # once enough answers came back, they alone size the pool
        adapt.observe(answer(0.1))
    old = [Job("4915100000001", {}, left_at=time.perf_counter() - 30.0)]
    assert adapt.tick(1.0, rate=1000.0, in_flight=old) is None  # a straggler does not grow it


def test_before_the_first_answers_the_pool_is_sized_to_last_until_the_next_look() -> None:
    """A request 0.15 s old needs 150 in flight at 1,000/s now, but the size holds until the next
    look, when it is 0.2 s old: the pool is grown for that, not left to run full meanwhile."""
    pool = FakePool()
    adapt = AdaptiveConcurrency(settings(concurrency=100, max_messages_per_second=1000), pool)  # type: ignore[arg-type]
    adapt.start()
    waiting = [Job("4915100000001", {}, left_at=time.perf_counter() - 0.15)]
    size = adapt.tick(0.0, rate=1000.0, in_flight=waiting)
    assert size is not None and size >= math.ceil(1000 * (0.15 + STARTUP_INTERVAL_S) * 1.25) + 1


def test_a_fixed_pool_keeps_its_size() -> None:
    pool = FakePool()
    fixed = settings(concurrency=8, adaptive_concurrency=False)
    adapt = AdaptiveConcurrency(fixed, pool)  # type: ignore[arg-type]
    adapt.start()
    for _ in range(50):
        adapt.observe(answer(2.0))
    assert adapt.tick(1.0, rate=80.0) is None
    assert pool.sizes == [8]
    assert connections_needed(fixed) == 8
    assert connections_needed(settings(concurrency=8)) == 1024


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"min_concurrency": 0}, "min_concurrency"),
        ({"max_concurrency": 2, "min_concurrency": 4}, "above max_concurrency"),
        ({"concurrency_headroom": 0.5}, "concurrency_headroom"),
    ],
)
def test_bounds_are_validated(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        settings(**changes).validate()


class HoldingClient:
    """Answers every request after ``hold_s`` and counts the requests in flight at once."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.busy = 0
        self.most_busy = 0
        self.lock = threading.Lock()
        self.count = 0

    def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> Sent:
        with self.lock:
            self.busy += 1
            self.count += 1
            self.most_busy = max(self.most_busy, self.busy)
        time.sleep(self.hold_s)
        with self.lock:
            self.busy -= 1
        return Sent(f"wamid.{payload['to']}")


@pytest.mark.parametrize("adaptive", [True, False])
def test_a_campaign_grows_its_senders_to_hold_the_rate_at_slow_answers(
    sqlite_ledger: Ledger, adaptive: bool
) -> None:
    client = HoldingClient(hold_s=0.4)
    count = 200 if adaptive else 40  # a fixed pool of 4 sends 10 a second
    recipients = [f"+4915100{i:06d}" for i in range(count)]
    cfg = settings(
        campaign_id=f"adaptive-{adaptive}",
        max_messages_per_second=100.0,
        concurrency=4,
        adaptive_concurrency=adaptive,
    )
    result = run_campaign(recipients, client=client, ledger=sqlite_ledger, settings=cfg)
    assert result.accepted == client.count == count
    if adaptive:  # 100 msg/s at 0.4 s needs about 40 requests in flight: started with 4
        assert result.peak_concurrency >= 40
        assert client.most_busy > 4
    else:
        assert result.peak_concurrency == 4
        assert client.most_busy <= 4
