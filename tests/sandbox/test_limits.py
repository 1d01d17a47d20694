"""The throughput cap (130429), the pair rate limit (131056) and latency."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from airflow_provider_wamm.sandbox import Sandbox, SandboxConfig
from airflow_provider_wamm.sandbox.server import watch_deafness
from airflow_provider_wamm.sandbox.state import SandboxContext, max_window_count
from tests.sandbox.conftest import Graph, number


def _burst(graph: Graph, count: int, workers: int = 16) -> list[requests.Response]:
    local = threading.local()

    def one(i: int) -> requests.Response:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return graph.send(to=number(i), session=local.session)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


def test_burst_over_the_cap_gets_130429_and_no_window_exceeds_it(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(mps_cap=20)

    responses = _burst(graph, 60)

    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code != 200]
    assert 1 <= len(ok) <= 20 * 2  # the burst may straddle a window boundary
    assert limited, "a burst three times the cap must be throttled"
    for response in limited:
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == 130429
        assert error["message"] == "(#130429) Rate limit hit"
    assert sandbox.max_window_count() <= 20
    assert len(sandbox.messages) == len(ok)
    assert sandbox.errors()[130429] == len(limited)


def test_throttle_http_status_is_configurable(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(mps_cap=1, rate_limit_http_status=429)
    graph.send(to=number(1))
    response = graph.send(to=number(2))
    assert response.status_code == 429
    assert response.json()["error"]["code"] == 130429


def test_paced_sender_stays_under_the_cap(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(mps_cap=50)
    start = time.monotonic()
    codes = []
    for i in range(40):  # 40 sends spread over ~1 s: 40 per second < 50
        codes.append(graph.send(to=number(i)).status_code)
        time.sleep(max(0.0, start + (i + 1) / 40 - time.monotonic()))
    assert codes == [200] * 40
    assert sandbox.max_window_count() <= 50


def test_cap_window_recovers_after_a_second(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(mps_cap=3)
    assert [graph.send(to=number(i)).status_code for i in range(4)] == [200, 200, 200, 400]
    time.sleep(1.05)
    assert graph.send(to=number(9)).status_code == 200


def test_max_window_count_is_a_sliding_window(sandbox: Sandbox) -> None:
    sandbox.configure(mps_cap=None)
    graph = Graph(sandbox)
    for i in range(5):
        graph.send(to=number(i))
    assert sandbox.max_window_count() == 5
    assert sandbox.max_window_count(window_s=1e-9) == 1


def test_windows_overlapping_a_deaf_spell_are_left_out() -> None:
    """Arrivals stamped when the loop got back from a pause bunch up: windows over it say nothing."""
    steady = [i / 8 for i in range(24)]  # 8 a second
    bunched = [*steady[:8], *[1.5] * 4, *steady[12:]]  # those of 1.0 to 1.375 stamped at 1.5
    assert max_window_count(steady) == 8 and max_window_count(bunched) == 12
    assert max_window_count(bunched, deaf=[(0.9, 1.5)]) == 8  # the windows left show the pace
    assert max_window_count(steady, deaf=[(0.9, 1.5)]) == 8


def test_a_pause_of_the_event_loop_is_recorded_as_a_deaf_spell() -> None:
    ctx = SandboxContext(SandboxConfig())

    async def pause() -> None:
        watcher = asyncio.get_running_loop().create_task(watch_deafness(ctx))
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # the loop runs nothing meanwhile
        await asyncio.sleep(0.05)
        watcher.cancel()

    asyncio.run(pause())
    (start, end), *_ = ctx.state.deaf_spells
    assert end - start >= 0.2


def test_pair_limit_per_recipient(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(pair_burst=2, pair_interval_s=60)
    same = "4915123456789"

    codes = [graph.send(to=same).status_code for _ in range(3)]

    assert codes == [200, 200, 400]
    error = graph.send(to=same).json()["error"]
    assert error["code"] == 131056
    assert "same phone number" in error["error_data"]["details"]
    assert graph.send(to=number(7)).status_code == 200  # other recipients are not affected
    assert sandbox.sends_per_recipient()[same] == 2


def test_pair_limit_refills_over_time(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(pair_burst=1, pair_interval_s=0.2)
    assert graph.send().status_code == 200
    assert graph.send().status_code == 400
    time.sleep(0.25)
    assert graph.send().status_code == 200


def test_pair_limit_can_be_switched_off(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(pair_burst=1, pair_limit=False)
    assert [graph.send().status_code for _ in range(3)] == [200] * 3


def test_default_pair_allowance_is_metas_burst(sandbox: Sandbox) -> None:
    config = SandboxConfig()
    assert (config.pair_interval_s, config.pair_burst, config.mps_cap) == (6.0, 45, 80.0)


def test_latency_delays_answers_without_serialising_them(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(latency_s=0.3, mps_cap=None)

    start = time.monotonic()
    assert graph.send().status_code == 200
    single = time.monotonic() - start

    start = time.monotonic()
    responses = _burst(graph, 10, workers=10)
    parallel = time.monotonic() - start

    assert single >= 0.3
    assert all(r.status_code == 200 for r in responses)
    assert parallel < 1.5  # ten answers of 0.3 s overlap instead of taking 3 s


@pytest.mark.parametrize("latency", [0.0, 0.15])
def test_errors_take_the_latency_too(sandbox: Sandbox, graph: Graph, latency: float) -> None:
    sandbox.configure(latency_s=latency)
    start = time.monotonic()
    assert graph.send(token="bad").status_code == 401
    assert time.monotonic() - start >= latency
