"""Sends reach the wire as the pacer spaced them, and the shards of a number pace at their shares.

The pacing turn is taken inside the client's transport, once the connection is ready and right
before the one write: opening a connection, encoding the body and waiting for the interpreter lock
come before the turn, so they never bunch up sends that were already counted. The senders of one
number, driven step by step (no test here depends on this machine's speed), pace at shares whose
windows add up to at most the number's cap, from an empty senders table on, and a pacer let go
after waiting for its share paces at that share, never at the cap the run started with.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import pytest

from airflow_provider_wamm.campaign.cap_share import CapShare, SharedPace
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.pacing import Pacer, Stopped
from airflow_provider_wamm.campaign.workers import (
    Accepted,
    Job,
    Unsent,
    WorkerPool,
    paces_at_write,
)
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.connections import SocketPoolTransport
from airflow_provider_wamm.graph.transport import RawResponse

NUMBER = "100000000000001"
ANSWER = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.X","message_status":"accepted"}]}'


class RecordingTransport:
    """A transport that records the order of its steps: connection ready, turn, write."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        before_write: Callable[[], None] | None = None,
    ) -> RawResponse:
        self.events.append("connection ready")
        if before_write is not None:
            before_write()
        self.events.append("written")
        return RawResponse(200, ANSWER, {"Content-Type": "application/json"})

    def close(self) -> None:
        return None


class RecordingTurn:
    def __init__(self, events: list[str], stop_at: int | None = None) -> None:
        self.events = events
        self.stop_at = stop_at
        self.turns = 0

    def wait_turn(self) -> None:
        self.turns += 1
        if self.turns == self.stop_at:
            raise Stopped
        self.events.append("turn")


def client(events: list[str]) -> GraphClient:
    return GraphClient(
        "token", phone_number_id=NUMBER, base_url="https://graph.test", transport=RecordingTransport(events)
    )


def run_jobs(pool: WorkerPool, n: int) -> list[object]:
    for i in range(n):
        pool.submit(Job(f"4915100000{i:03d}", {"to": f"4915100000{i:03d}", "type": "template"}))
    answers: list[object] = []
    while len(answers) < n:
        answers += pool.collect(timeout=5.0)
    pool.close()
    return answers


def test_the_turn_is_taken_with_the_connection_ready_right_before_the_write() -> None:
    events: list[str] = []
    graph = client(events)
    assert paces_at_write(graph)
    pool = WorkerPool(graph, RecordingTurn(events), threading.Event())
    pool.resize(1)
    answers = run_jobs(pool, 3)
    assert all(isinstance(a, Accepted) for a in answers)
    assert events == ["connection ready", "turn", "written"] * 3
    assert all(a.job.round_trip_s is not None for a in answers)  # type: ignore[attr-defined]


def test_a_stop_during_the_turn_sends_nothing() -> None:
    events: list[str] = []
    pool = WorkerPool(client(events), RecordingTurn(events, stop_at=1), threading.Event())
    pool.resize(1)
    (answer,) = run_jobs(pool, 1)
    assert isinstance(answer, Unsent) and answer.job.attempts == 0
    assert "written" not in events


def test_a_connection_held_through_a_stopped_turn_goes_back_unwritten() -> None:
    transport = SocketPoolTransport("http://127.0.0.1:9", maxsize=4, connect_timeout=1, read_timeout=1)
    ours, server = socket.socketpair()
    transport._idle.append(ours)

    def stopped() -> None:
        raise Stopped

    with pytest.raises(Stopped):
        transport.post("/v23.0/x/marketing_messages", b"{}", {}, before_write=stopped)
    assert list(transport._idle) == [ours]  # given back, open
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(1)  # nothing was written
    ours.close()
    server.close()


T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Shard:
    """One shard's shared pace: its share of the number's cap driving its own pacer."""

    def __init__(self, ledger: Ledger, name: str, wall: Callable[[], datetime]) -> None:
        self.pacer = Pacer(
            80.0, floor=1.0, headroom=0.02, throttle_share=0.2, recovery_s=10.0, stop=threading.Event()
        )
        share = CapShare(
            ledger.sender_registry,
            sender_id=name,
            cap_key=NUMBER,
            campaign_id="sharded",
            number_cap=80.0,
            max_rate=80.0,
            headroom=0.02,
            wall=wall,
        )
        self.shared = SharedPace(share, self.pacer, log=_Quiet())

    @property
    def window(self) -> int:
        """Most sends this shard lets into one second now (none while it waits for a share)."""
        return 0 if self.pacer.waiting_for_share else self.pacer.window_limit


class _Quiet:
    def info(self, *args: object) -> None:
        return None

    def warning(self, *args: object, **kwargs: object) -> None:
        return None


def test_four_shards_from_an_empty_senders_table_pace_within_the_numbers_cap(
    sqlite_ledger: Ledger,
) -> None:
    sqlite_ledger.ensure_schema()
    now = [T0]
    shards = [Shard(sqlite_ledger, f"shard-{i}", lambda: now[0]) for i in range(4)]
    most = math.floor(80 * 0.98)
    for i, shard in enumerate(shards):  # they start a quarter of a second apart
        shard.shared.start(0.25 * i)
        assert sum(s.window for s in shards[: i + 1]) <= most
    for step in range(1, 12):
        for i, shard in enumerate(shards):
            shard.shared.tick(step + 0.25 * i)
            # Without the shared cap each would pace at 78 a second: 312 together.
            assert sum(s.window for s in shards) <= most, [s.window for s in shards]
    # The number's 78 split in whole sends (not 19 each: 76), the first ones taking what is left over.
    assert [s.window for s in shards] == [20, 20, 19, 19]
    # Each one's cap, in messages per second of the number's 80 (78 sends a second are the whole cap).
    assert [s.pacer.cap for s in shards] == pytest.approx(
        [20 * 80 / 78, 20 * 80 / 78, 19 * 80 / 78, 19 * 80 / 78]
    )


def test_a_pacer_let_go_after_waiting_for_its_share_paces_at_that_share() -> None:
    pacer = Pacer(80.0, floor=1.0, headroom=0.02, throttle_share=0.2, recovery_s=10.0, stop=threading.Event())
    seen: list[tuple[bool, float]] = []
    put_in_force = pacer._put_in_force

    def recording(rate: float) -> None:
        seen.append((pacer.waiting_for_share, rate))
        put_in_force(rate)

    pacer._put_in_force = recording  # type: ignore[method-assign]
    pacer.set_cap(0)
    pacer.set_cap(20.0)
    # The share's pace was in force while every send was still held: none left at the run's 80.
    assert seen == [(True, 20.0)]
    assert not pacer.waiting_for_share and pacer.window_limit == 19
