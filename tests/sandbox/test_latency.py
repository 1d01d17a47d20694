"""Answer times like Meta's: log-normal spread, tail spikes, a temporary step, all concurrent and seeded."""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import time
from dataclasses import dataclass

import pytest
import requests

from airflow_provider_wamm.sandbox import Sandbox, SandboxConfig
from airflow_provider_wamm.sandbox.cli import build_parser, config_from_args
from airflow_provider_wamm.sandbox.latency import answer_latency, in_latency_step, latency_rng
from airflow_provider_wamm.sandbox.state import SandboxState
from tests.sandbox.conftest import PHONE, TOKEN, message, number

SEND_PATH = f"/v23.0/{PHONE}/marketing_messages"


@dataclass(frozen=True)
class Answer:
    """What the client got for one request, and how long it took."""

    status: int
    elapsed: float
    body: bytes

    def wamid(self) -> str:
        return str(json.loads(self.body)["messages"][0]["id"])


async def _post(port: int, path: str, body: bytes) -> Answer:
    """One request on its own connection, timed until the whole answer arrived."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    elapsed = time.monotonic() - start
    return Answer(int(answer.split(b" ", 2)[1]), elapsed, answer.partition(b"\r\n\r\n")[2])


def _body(i: int) -> bytes:
    return json.dumps(message(to=number(i))).encode()


async def _sends(port: int, count: int, concurrency: int) -> list[Answer]:
    """``count`` sends to distinct recipients, at most ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Answer:
        async with gate:
            return await _post(port, SEND_PATH, _body(i))

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def _log_spread(values: list[float]) -> float:
    """The sigma of a log-normal sample, from its 16th and 84th percentiles (robust to outliers)."""
    q = statistics.quantiles(values, n=100)
    return (math.log(q[83]) - math.log(q[15])) / 2


# ---------------------------------------------------------------------- the model itself
def test_lognormal_draws_have_the_configured_median_and_spread() -> None:
    cfg = SandboxConfig(latency_median_s=0.3, latency_sigma=0.6)
    rng = random.Random(7)
    draws = [answer_latency(cfg, rng, None) for _ in range(5000)]
    assert statistics.median(draws) == pytest.approx(0.3, rel=0.05)
    assert statistics.stdev(math.log(d) for d in draws) == pytest.approx(0.6, rel=0.05)


def test_spikes_add_their_time_to_the_configured_share() -> None:
    cfg = SandboxConfig(latency_s=0.05, latency_spike_rate=0.1, latency_spike_s=2.0)
    rng = random.Random(3)
    draws = [answer_latency(cfg, rng, None) for _ in range(5000)]
    assert set(draws) == {0.05, 2.05}
    assert sum(d > 1 for d in draws) / len(draws) == pytest.approx(0.1, abs=0.015)


def test_flat_latency_and_jitter_still_add_up() -> None:
    cfg = SandboxConfig(latency_s=0.2, latency_jitter_s=0.1, latency_median_s=0.05)
    rng = random.Random(1)
    draws = [answer_latency(cfg, rng, None) for _ in range(1000)]
    assert all(0.25 <= d <= 0.35 for d in draws)
    assert max(draws) - min(draws) > 0.09


def test_the_step_starts_after_the_first_send_and_recovers() -> None:
    cfg = SandboxConfig(latency_median_s=0.1, latency_step_s=1.5, latency_step_at_s=20, latency_step_for_s=15)
    assert [in_latency_step(cfg, t) for t in (None, 0.0, 19.9, 20.0, 34.9, 35.0, 100.0)] == [
        False,
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    rng = random.Random(0)
    assert answer_latency(cfg, rng, 25.0) == 1.5
    assert answer_latency(cfg, rng, 40.0) == 0.1
    forever = cfg.replace(latency_step_for_s=None)
    assert in_latency_step(forever, 10_000.0)
    assert not in_latency_step(cfg.replace(latency_step_s=0.0), 25.0)


def test_draws_are_reproducible_from_the_seed() -> None:
    cfg = SandboxConfig(latency_median_s=0.3, latency_sigma=0.6, latency_spike_rate=0.2, latency_spike_s=1.0)

    def draws(rng: random.Random) -> list[float]:
        return [answer_latency(cfg, rng, 1.0) for _ in range(50)]

    assert draws(latency_rng(5)) == draws(latency_rng(5)) == draws(SandboxState(5).latency_rng)
    assert draws(latency_rng(5)) != draws(latency_rng(6))
    state = SandboxState(5)
    first = draws(state.latency_rng)
    state.reseed(5)
    assert draws(state.latency_rng) == first


@pytest.mark.parametrize(
    "changes",
    [
        {"latency_sigma": -0.1},
        {"latency_spike_rate": 1.5},
        {"latency_step_s": -1},
        {"latency_step_for_s": -1},
    ],
)
def test_bad_latency_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SandboxConfig(**changes)


def test_cli_sets_the_latency_options() -> None:
    options = {
        "--latency-median": "0.3",
        "--latency-sigma": "0.6",
        "--latency-spike-rate": "0.01",
        "--latency-spike": "2",
        "--latency-step": "1.5",
        "--latency-step-at": "20",
        "--latency-step-for": "15",
    }
    args = build_parser().parse_args([part for option in options.items() for part in option])
    config = config_from_args(args, environ={})
    assert (config.latency_median_s, config.latency_sigma) == (0.3, 0.6)
    assert (config.latency_spike_rate, config.latency_spike_s) == (0.01, 2.0)
    assert (config.latency_step_s, config.latency_step_at_s, config.latency_step_for_s) == (1.5, 20.0, 15.0)
    assert config_from_args(build_parser().parse_args([]), environ={}).latency_step_for_s is None


# ---------------------------------------------------------------------- measured over HTTP
def test_answers_over_http_have_the_configured_median_and_spread(sandbox: Sandbox) -> None:
    sandbox.configure(mps_cap=None, latency_median_s=0.2, latency_sigma=0.5, seed=11)
    results = asyncio.run(_sends(sandbox.port, 300, concurrency=30))
    assert {a.status for a in results} == {200}
    times = [a.elapsed for a in results]
    # What the client measures adds a few milliseconds of its own and of the server's work.
    assert statistics.median(times) == pytest.approx(0.2, rel=0.2)
    assert _log_spread(times) == pytest.approx(0.5, abs=0.12)


def test_reads_take_the_latency_too(sandbox: Sandbox) -> None:
    sandbox.configure(latency_median_s=0.15)
    start = time.monotonic()
    response = requests.get(
        f"{sandbox.url}/v23.0/{PHONE}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert response.status_code == 200
    assert time.monotonic() - start >= 0.15


def test_the_step_happens_and_recovers_over_http(sandbox: Sandbox) -> None:
    # Set at run time through the admin endpoint, as another process would.
    changes = {
        "mps_cap": None,
        "latency_median_s": 0.02,
        "latency_step_s": 0.5,
        "latency_step_at_s": 0.6,
        "latency_step_for_s": 0.8,
    }
    assert requests.post(f"{sandbox.url}/_sandbox/config", json=changes, timeout=5).status_code == 200

    async def probe() -> list[Answer]:
        tasks = []
        for i in range(44):  # one send every 50 ms for 2.2 s
            tasks.append(asyncio.create_task(_post(sandbox.port, SEND_PATH, _body(i))))
            await asyncio.sleep(0.05)
        return list(await asyncio.gather(*tasks))

    results = asyncio.run(probe())
    assert {a.status for a in results} == {200}
    # Each answer by when its send arrived, on the sandbox's clock (the one the step runs on).
    first_send = sandbox.context.state.first_send_at
    assert first_send is not None
    arrived = {m.wamid: m.monotonic - first_send for m in sandbox.messages}
    during = [a.elapsed for a in results if 0.65 <= arrived[a.wamid()] <= 1.35]
    outside = [a.elapsed for a in results if not 0.55 <= arrived[a.wamid()] <= 1.45]
    assert len(during) >= 8 and len(outside) >= 16
    assert min(during) >= 0.5  # the jump
    assert statistics.median(outside) < 0.15  # before, and recovered after


def test_a_thousand_slow_requests_are_answered_concurrently(sandbox: Sandbox) -> None:
    def burst() -> list[Answer]:
        sandbox.reset(sandbox.config)
        return asyncio.run(_sends(sandbox.port, 1000, concurrency=1000))

    sandbox.configure(mps_cap=None, latency_median_s=3.0)  # time enough to open 1,000 connections
    results = burst()
    assert [a.status for a in results] == [200] * 1000
    assert min(a.elapsed for a in results) >= 3.0
    # All of them wait out their answer time together: one answer at a time would hold 1 in flight, a
    # limit of 100 would hold 100 (the sandbox counts how many it holds at once, whatever the load).
    assert sandbox.counts()["max_in_flight"] >= 900
    assert len(sandbox.messages) == 1000


def test_the_cap_counts_at_arrival_not_at_the_answer(sandbox: Sandbox) -> None:
    sandbox.configure(mps_cap=50, latency_median_s=0.5)
    results = asyncio.run(_sends(sandbox.port, 80, concurrency=80))
    statuses = [a.status for a in results]
    assert statuses.count(200) == 50 and statuses.count(400) == 30
    assert sandbox.errors()[130429] == 30
    stamps = [m.monotonic for m in sandbox.messages]
    assert max(stamps) - min(stamps) < 0.5  # recorded when they arrived, before their slow answers
    assert all(a.elapsed >= 0.5 for a in results)  # refusals take the latency too
