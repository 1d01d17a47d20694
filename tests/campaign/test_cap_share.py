"""One cap per phone number: senders of a number share its cap through the ledger's ``senders`` table.

The senders are driven step by step with given times (no test depends on this machine's speed): a
newcomer waits for room, the others make it, a sender that ends or dies gives its share back, and
at every step the shares in force add up to at most the number's cap. A whole campaign run is then
shown to take only what another live sender of its number leaves it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_wamm.campaign.cap_share import CapShare, allocate_slots, share_for
from airflow_provider_wamm.campaign.ledger import Ledger, SenderRow, utcnow
from airflow_provider_wamm.campaign.pacing import Pacer, Stopped
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.errors import ConfigurationError

NUMBER = "100000000000001"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Wall:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def sender(ledger: Ledger, name: str, wall: Wall, cap: float = 80.0, wish: float | None = None) -> CapShare:
    return CapShare(
        ledger.sender_registry,
        sender_id=name,
        cap_key=NUMBER,
        campaign_id=f"campaign-{name}",
        number_cap=cap,
        max_rate=cap if wish is None else wish,
        interval_s=1.0,
        expire_s=5.0,
        wall=wall,
    )


def in_force(*senders: CapShare) -> float:
    return sum(s.share for s in senders)


def test_the_cap_is_split_evenly_unless_a_sender_wants_less() -> None:
    assert allocate_slots(80, {"a": 80, "b": 80}, "ab") == {"a": 40, "b": 40}
    assert allocate_slots(80, {"a": 10, "b": 80, "c": 80}, "abc") == {"a": 10, "b": 35, "c": 35}
    assert allocate_slots(1000, {"a": 1000, "b": 1000, "c": 1000, "d": 1000}, "abcd")["d"] == 250
    row = SenderRow("b", "c", 80.0, 80.0, 80.0, T0)
    assert share_for("a", 80.0, 80.0, [row]) == 0.0  # b advertises the whole cap: no room yet
    assert share_for("a", 80.0, 80.0, [SenderRow("b", "c", 80.0, 80.0, 40.0, T0)]) == 40.0


def test_a_newcomer_waits_for_room_and_the_cap_is_never_exceeded(sqlite_ledger: Ledger) -> None:
    wall = Wall()
    a = sender(sqlite_ledger, "a", wall)
    assert a.start(0.0) == 80.0  # alone: the whole cap
    b = sender(sqlite_ledger, "b", wall)
    assert b.start(0.2) == 0.0  # a still advertises 80: b holds
    assert in_force(a, b) <= 80
    assert a.tick(1.0) == 40.0  # a slows down at its next beat...
    assert in_force(a, b) <= 80
    # ...but its sends at 80 still count in the sliding second: it advertises 80 until that has passed.
    assert b.tick(1.2) is None and b.share == 0.0
    assert a.tick(2.0) is None  # a second at 40 behind it: a advertises 40
    assert b.tick(2.2) == 40.0  # and b takes the room
    assert in_force(a, b) == 80
    assert a.tick(3.0) is None and b.tick(3.2) is None  # steady
    a.leave()  # a ended, but its last second of sends still counts: b waits one window...
    assert b.tick(4.2) is None and b.share == 40.0
    wall.now = T0 + timedelta(seconds=1.01)
    assert b.tick(5.2) == 80.0  # ...then grows back
    live = sqlite_ledger.sender_registry.live(NUMBER, within=timedelta(seconds=5), now=wall.now)
    assert [r.sender_id for r in live] == ["b"]


def test_a_dead_senders_share_returns_once_its_heartbeat_expires(sqlite_ledger: Ledger) -> None:
    wall = Wall()
    survivor, dead = sender(sqlite_ledger, "survivor", wall), sender(sqlite_ledger, "dead", wall)
    survivor.start(0.0)
    dead.start(0.0)
    for t in (1.0, 2.0):
        survivor.tick(t)
        dead.tick(t)
    assert survivor.share == dead.share == 40.0
    for second in range(3, 12):  # "dead" stops beating; the survivor goes on
        wall.now = T0 + timedelta(seconds=second)
        survivor.tick(float(second))
        if second <= 5:  # its last beat (at T0) is younger than the 5 s expiry: still counted alive
            assert survivor.share == 40.0, second
    assert survivor.share == 80.0


@pytest.mark.parametrize("order", list(itertools.permutations(["a", "b", "c", "d"])))
def test_senders_starting_together_never_exceed_the_cap(
    sqlite_ledger: Ledger, order: tuple[str, ...]
) -> None:
    wall = Wall()
    senders = {name: sender(sqlite_ledger, name, wall, cap=1000.0) for name in "abcd"}
    for name in order:  # each registers and takes a first share, one after the other
        senders[name].start(0.0)
        assert in_force(*senders.values()) <= 1000.0
    for step in range(1, 5):
        for name in order:
            senders[name].tick(float(step))
            assert in_force(*senders.values()) <= 1000.0 + 1e-9
    assert [s.share for s in senders.values()] == [250.0] * 4


def test_a_sender_wanting_less_leaves_the_rest(sqlite_ledger: Ledger) -> None:
    wall = Wall()
    small, big = sender(sqlite_ledger, "small", wall, wish=10.0), sender(sqlite_ledger, "big", wall)
    small.start(0.0)
    big.start(0.0)
    for t in (1.0, 2.0, 3.0):
        small.tick(t)
        big.tick(t)
    assert (small.share, big.share) == (10.0, 70.0)


def test_a_pacer_at_zero_holds_every_send_until_a_share_comes() -> None:
    stop = threading.Event()
    pacer = Pacer(80.0, floor=1.0, headroom=0.02, throttle_share=0.2, recovery_s=10.0, stop=stop)
    pacer.set_cap(0)
    assert pacer.waiting_for_share
    passed = threading.Event()

    def send() -> None:
        pacer.wait_turn()
        passed.set()

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    assert not passed.wait(0.3)  # held
    pacer.set_cap(40.0)
    assert passed.wait(5.0) and not pacer.waiting_for_share and pacer.cap == 40.0
    pacer.set_cap(0)
    stop.set()
    with pytest.raises(Stopped):
        pacer.wait_turn()


@dataclass
class Sent:
    wamid: str
    message_status: str = "accepted"


class NumberClient:
    """A client of phone number :data:`NUMBER` that answers at once."""

    phone_number_id = NUMBER

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> Sent:
        with self.lock:
            self.count += 1
        return Sent(f"wamid.{payload['to']}")


def settings(campaign_id: str, **kw: Any) -> CampaignSettings:
    return CampaignSettings(
        campaign_id=campaign_id,
        template_name="spring_sale",
        language="en_US",
        max_messages_per_second=80.0,
        **kw,
    )


@pytest.mark.parametrize("share_cap", [True, False])
def test_a_run_takes_only_what_the_numbers_other_sender_leaves(
    sqlite_ledger: Ledger, share_cap: bool
) -> None:
    registry = sqlite_ledger.sender_registry
    sqlite_ledger.ensure_schema()
    registry.register("other", NUMBER, campaign_id="other", number_cap=80.0, max_rate=80.0, share=60.0)
    stop = threading.Event()

    def keep_other_alive() -> None:
        while not stop.wait(0.2):
            registry.beat("other", 60.0)

    beating = threading.Thread(target=keep_other_alive, daemon=True)
    beating.start()
    try:
        recipients = [f"+4915100{i:06d}" for i in range(30)]
        cfg = settings(f"shared-{share_cap}", share_cap=share_cap)
        result = run_campaign(recipients, client=NumberClient(), ledger=sqlite_ledger, settings=cfg)
    finally:
        stop.set()
        beating.join()
    assert result.accepted == 30
    # Shared: the number's budget (80 less the 2% headroom, 78) - the other's 60 (its fair share is 39,
    # but it advertises 60): 18 whole sends a second, reported in messages per second of the cap (as
    # 78 sends a second are the whole 80); alone: the whole cap.
    assert result.final_rate == (pytest.approx(18 * 80 / 78) if share_cap else 80.0)
    # The run's own row counts one more window after it ended (its last second of sends), then expires.
    expire = timedelta(seconds=cfg.cap_share_expire_s)
    assert len(registry.live(NUMBER, within=expire)) == (2 if share_cap else 1)
    later = registry.live(NUMBER, within=expire, now=utcnow() + timedelta(seconds=1.01))
    assert [row.sender_id for row in later] == ["other"]


def test_a_run_without_a_number_to_share_sends_alone(sqlite_ledger: Ledger) -> None:
    class Anonymous(NumberClient):
        phone_number_id = None  # type: ignore[assignment]

    result = run_campaign(
        ["+4915100000001"], client=Anonymous(), ledger=sqlite_ledger, settings=settings("anon")
    )
    assert result.accepted == 1 and result.final_rate == 80.0


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"number_cap": 0}, "number_cap"),
        ({"cap_share_interval_s": 1.0, "cap_share_expire_s": 1.5}, "cap_share_expire_s"),
    ],
)
def test_sharing_settings_are_validated(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        settings("bad", **changes).validate()


def test_two_runs_on_one_number_share_it(sqlite_ledger: Ledger) -> None:
    """Two campaigns at once on one number: the second one waits for room and both finish."""
    client = NumberClient()
    results: dict[str, Any] = {}

    def run(name: str, count: int) -> None:
        recipients = [f"+49151{name == 'b':01d}{i:07d}" for i in range(count)]
        results[name] = run_campaign(recipients, client=client, ledger=sqlite_ledger, settings=settings(name))

    first = threading.Thread(target=run, args=("a", 300))
    first.start()
    deadline = time.monotonic() + 10
    while (
        not sqlite_ledger.sender_registry.live(NUMBER, within=timedelta(seconds=5))
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    run("b", 20)
    first.join()
    assert results["a"].accepted == 300 and results["b"].accepted == 20
    assert results["b"].final_rate is not None and results["b"].final_rate <= 40.0  # never the whole cap
    assert client.count == 320


def test_the_registry_on_each_database(ledger: Ledger) -> None:
    registry = ledger.sender_registry
    ledger.ensure_schema()
    registry.register("a", NUMBER, campaign_id="c", number_cap=80.0, max_rate=80.0, share=80.0, now=T0)
    registry.register("b", NUMBER, campaign_id="c", number_cap=80.0, max_rate=20.0, share=20.0, now=T0)
    registry.register("x", "another-number", campaign_id="c", number_cap=80.0, max_rate=80.0, share=80.0)
    registry.beat("a", 40.0, now=T0 + timedelta(seconds=3))
    rows = registry.live(NUMBER, within=timedelta(seconds=5), now=T0 + timedelta(seconds=6))
    assert [(r.sender_id, r.share, r.max_rate) for r in rows] == [("a", 40.0, 80.0)]  # b expired
    assert registry.forget_dead(NUMBER, older_than=timedelta(seconds=5), now=T0 + timedelta(seconds=6)) == 1
    registry.leave("a")
    assert registry.live(NUMBER, within=timedelta(days=1), now=T0) == []
