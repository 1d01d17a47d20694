"""Fault injection: server errors, transient and throttle errors, lost answers, drops, slow answers."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_wamm.graph.errors import Action, parse_error_envelope
from airflow_provider_wamm.sandbox import Sandbox
from tests.sandbox.conftest import Graph, number


def test_5xx_faults(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_5xx_rate=1.0, pair_limit=False)
    statuses = set()
    for i in range(30):
        response = graph.send(to=number(i))
        statuses.add(response.status_code)
        if response.status_code == 500:
            assert response.json()["error"]["code"] == 2
            assert response.json()["error"]["is_transient"] is True
        else:
            assert "error" not in response.text
        assert parse_error_envelope(response.content, http_status=response.status_code).action == Action.RETRY
    assert statuses == {500, 502, 503}
    assert sandbox.messages == []


def test_transient_graph_errors(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_transient_rate=1.0)
    codes = {graph.send(to=number(i)).json()["error"]["code"] for i in range(30)}
    assert codes == {1, 2, 131000}
    assert sandbox.messages == []


def test_throttle_errors(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_throttle_rate=1.0)
    seen = {}
    for i in range(20):
        response = graph.send(to=number(i))
        seen[response.json()["error"]["code"]] = response.status_code
    assert seen == {4: 429, 130429: 400}
    assert sandbox.messages == []


def test_lost_answer_by_dropped_connection_records_the_message(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_lost_response_rate=1.0, lost_response_mode="drop")

    with pytest.raises(requests.ConnectionError):
        graph.send(to=number(1))

    [recorded] = sandbox.messages
    assert recorded.to == number(1)
    assert recorded.answer == "lost"
    sandbox.configure(fault_lost_response_rate=0.0)
    assert graph.send(to=number(2)).status_code == 200  # the client recovers with a new connection


def test_lost_answer_by_hanging_gives_a_read_timeout(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_lost_response_rate=1.0, lost_response_mode="hang", hang_s=1.0)

    with pytest.raises(requests.ReadTimeout):
        graph.send(to=number(1), timeout=0.3)

    assert [m.answer for m in sandbox.messages] == ["lost"]


def test_dropped_connection_before_recording(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_drop_rate=1.0)

    with pytest.raises(requests.ConnectionError):
        graph.send(to=number(1))

    assert sandbox.messages == []


def test_slow_answer_is_recorded_and_arrives_late(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_slow_rate=1.0, slow_response_s=0.6)

    with pytest.raises(requests.ReadTimeout):
        graph.send(to=number(1), timeout=0.2)
    start = time.monotonic()
    response = graph.send(to=number(2), timeout=3)

    assert response.status_code == 200
    assert time.monotonic() - start >= 0.6
    assert [m.answer for m in sandbox.messages] == ["slow", "slow"]


def test_faults_are_reproducible_with_a_seed(sandbox: Sandbox, graph: Graph) -> None:
    def run() -> list[int]:
        sandbox.reset()
        sandbox.configure(
            seed=7, mps_cap=None, fault_5xx_rate=0.3, fault_transient_rate=0.2, fault_throttle_rate=0.1
        )
        return [graph.send(to=number(i)).status_code for i in range(40)]

    first = run()
    assert first == run()
    assert 200 in first and len(set(first)) > 2


def test_fault_rates_are_roughly_honoured(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_transient_rate=0.25, seed=3, mps_cap=None)
    codes = [graph.send(to=number(i)).status_code for i in range(200)]
    assert 25 <= sum(c != 200 for c in codes) <= 75


def test_reads_are_spared_unless_asked(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(fault_5xx_rate=1.0)
    assert graph.get("100000000000001").status_code == 200
    sandbox.configure(faults_on_reads=True)
    assert graph.get("100000000000001").status_code >= 500


def test_forced_transient_error_for_the_first_attempts_only(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(forced_outcomes={number(1): "error:131000#2,read"})

    codes = [graph.send(to=number(1)).status_code for _ in range(3)]

    assert codes == [500, 500, 200]
    assert sandbox.messages[0].outcome == "read"


@pytest.mark.parametrize(
    ("directive", "exception", "recorded"),
    [("drop", requests.ConnectionError, False), ("lost", requests.RequestException, True)],
)
def test_forced_connection_faults(
    sandbox: Sandbox, graph: Graph, directive: str, exception: type[Exception], recorded: bool
) -> None:
    sandbox.configure(forced_outcomes={number(1): directive}, hang_s=0.5)

    with pytest.raises(exception):
        graph.send(to=number(1), timeout=0.3)
    assert graph.send(to=number(2)).status_code == 200

    assert [m.to for m in sandbox.messages] == ([number(1), number(2)] if recorded else [number(2)])
