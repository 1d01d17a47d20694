"""The number's budget in whole sends, shared without loss: the split adds up to the budget and never
above it, shards of one campaign take their shares at once, and a sender that ends gives its share
back as soon as its last second of sends is over. Driven step by step with given times."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from airflow_provider_wamm.campaign.cap_share import CapShare, allocate_slots, budget_of, share_for
from airflow_provider_wamm.campaign.ledger import Ledger, SenderRow
from tests.campaign.test_cap_share import NUMBER, T0, Wall


def shard(ledger: Ledger, name: str, wall: Wall) -> CapShare:
    return CapShare(
        ledger.sender_registry,
        sender_id=name,
        cap_key=NUMBER,
        campaign_id="c",
        number_cap=80.0,
        max_rate=80.0,
        headroom=0.02,
        interval_s=1.0,
        look_s=0.2,
        expire_s=5.0,
        wall=wall,
    )


def settle(a: CapShare, b: CapShare, wall: Wall) -> None:
    """Start both and let them find their shares (by 2.6 s)."""
    a.start(0.0)
    b.start(0.0)
    for t in (0.2, 0.4, 1.2, 1.4, 2.2, 2.4, 2.6):
        wall.now = T0 + timedelta(seconds=t)
        a.tick(t)
        b.tick(t)


def test_the_budget_is_rounded_down_once_for_all_senders() -> None:
    assert budget_of(80, 0.02) == 78 and budget_of(1000, 0.02) == 980 and budget_of(80, 0.0) == 80
    assert allocate_slots(78, dict.fromkeys("abcd", 78), "abcd") == {"a": 20, "b": 20, "c": 19, "d": 19}
    assert allocate_slots(78, {"a": 10, "b": 78, "c": 78}, "cba") == {"a": 10, "b": 34, "c": 34}
    assert allocate_slots(78, {"a": 10, "b": 78, "c": 78}, "abc") == {"a": 10, "b": 34, "c": 34}
    assert allocate_slots(77, {"a": 10, "b": 78, "c": 78}, "cba") == {"a": 10, "b": 33, "c": 34}


def test_the_whole_number_split_never_adds_up_above_the_budget() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        budget = rng.randint(0, 1000)
        names = [f"s{i}" for i in range(rng.randint(1, 12))]
        wishes = {n: rng.randint(0, 1000) for n in names}
        shares = allocate_slots(budget, wishes, rng.sample(names, len(names)))
        assert sum(shares.values()) == min(budget, sum(wishes.values()))
        assert all(0 <= shares[n] <= wishes[n] for n in names)
        assert max(shares.values()) - min(
            shares[n] for n in names if wishes[n] >= max(shares.values())
        ) <= 1 or (len(names) == 1)


def test_each_sender_reading_the_same_table_takes_its_own_part_of_one_split() -> None:
    rows = [SenderRow(n, "c", 80.0, 78.0, 0.0, T0) for n in "abcd"]
    parts = [
        share_for(r.sender_id, 78.0, 80.0, [o for o in rows if o is not r], headroom=0.02, order="abcd")
        for r in rows
    ]
    assert parts == [20.0, 20.0, 19.0, 19.0]


def test_four_shards_never_exceed_the_budget_and_end_up_using_all_of_it(sqlite_ledger: Ledger) -> None:
    sqlite_ledger.ensure_schema()
    wall = Wall()
    shards = [shard(sqlite_ledger, f"s{i}", wall) for i in range(4)]
    for i, s in enumerate(shards):  # 0.3 s apart
        wall.now = T0 + timedelta(seconds=0.3 * i)
        s.start(0.3 * i)
        assert sum(x.share for x in shards) <= 78
    for t in itertools.islice(itertools.count(1.0, 0.2), 40):
        wall.now = T0 + timedelta(seconds=t)
        for s in shards:
            s.tick(t)
            assert sum(x.share for x in shards) <= 78
    assert sorted(x.share for x in shards) == [19.0, 19.0, 20.0, 20.0]  # 78, not 4 x 19


def test_a_sender_that_ended_gives_its_share_back_at_the_others_next_look(sqlite_ledger: Ledger) -> None:
    sqlite_ledger.ensure_schema()
    wall = Wall()
    a, b = shard(sqlite_ledger, "a", wall), shard(sqlite_ledger, "b", wall)
    settle(a, b, wall)
    assert (a.share, b.share) == (39.0, 39.0)
    wall.now = T0 + timedelta(seconds=3)
    a.leave(last_send=wall.now - timedelta(seconds=1.5))  # its last request left 1.5 s ago
    wall.now += timedelta(seconds=0.2)
    assert b.tick(3.2) == 78.0  # at once: no second of a's sends is left in the window


def test_a_sender_that_just_sent_stays_counted_one_window_after_its_last_send(
    sqlite_ledger: Ledger,
) -> None:
    sqlite_ledger.ensure_schema()
    wall = Wall()
    a, b = shard(sqlite_ledger, "a", wall), shard(sqlite_ledger, "b", wall)
    settle(a, b, wall)
    wall.now = T0 + timedelta(seconds=3)
    a.leave(last_send=wall.now - timedelta(seconds=0.3))
    wall.now += timedelta(seconds=0.6)
    assert b.tick(3.6) is None and b.share == 39.0  # 0.9 s after a's last send: still counted
    wall.now += timedelta(seconds=0.2)
    assert b.tick(3.81) == 78.0  # 1.1 s after it: the share is b's


def test_a_cap_below_one_whole_send_a_second_is_not_split(sqlite_ledger: Ledger) -> None:
    import threading

    from airflow_provider_wamm.campaign.cap_share import NotShared, SharedPace, shared_pace
    from airflow_provider_wamm.campaign.pacing import Pacer
    from airflow_provider_wamm.campaign.settings import CampaignSettings

    class Client:
        phone_number_id = NUMBER

    def pace(rate: float) -> object:
        cfg = CampaignSettings(
            campaign_id="c", template_name="t", language="en_US", max_messages_per_second=rate
        )
        pacer = Pacer.for_campaign(cfg, threading.Event())
        return shared_pace(cfg, sqlite_ledger, Client(), sender_id="s", pacer=pacer, log=None)

    assert isinstance(pace(0.5), NotShared)  # paced alone at 0.49 a second, never held at 0
    assert isinstance(pace(2.0), SharedPace)
