"""One cap per phone number across processes: every sender of a number takes its share through the
ledger.

Meta counts a number's messages per second whoever sends them: two campaigns on one number at once,
the shards of one campaign, another DAG. Each run that shares the cap registers in the ledger's
``senders`` table (:class:`~airflow_provider_wamm.campaign.ledger.senders.SenderRegistry`), looks at
the other live senders five times a second, and beats a heartbeat (at least once a second, and
whenever it changes) that says the most it may send in any second until its next beat (its
*advertised share*). It takes:

``min(its fair share of the budget, the budget - what the others advertise)``

The *budget* is the number's cap less ``rate_headroom``, rounded down once (78 at a cap of 80), and
shares are whole sends a second: four senders pace at 20, 20, 19 and 19, what one sender alone would,
not at 19 each. The fair shares split the budget evenly between the live senders, except that a sender
wanting less than its share (its own ``max_messages_per_second``) leaves the rest to the others
(:func:`allocate_slots`); what an even split leaves over goes to the senders that started first. The
second term keeps the sum within the budget while a change goes round: a newcomer registers advertising
the most it may take, so the others make room at their next look, and it waits for that room (holds at
zero) instead of taking its share at once. A sender lowers its pace at once but goes on advertising the
higher share until a whole window (one second) has passed at the lower pace, so no window of the
number's sends holds both its old pace and the others' raise; it advertises a raise before it takes it.
A sender that ends stays counted until one window after its last send (its last second of sends), then
its row expires and the others take its share at their next look; one that dies stops beating and is no
longer counted after ``cap_share_expire_s``: the others grow back to the whole budget within seconds.

Two senders that start at the same moment cannot both miss each other: each registers (a committed
write) before it reads, so the later reader sees the earlier one's row advertising its whole wish.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger, SenderRegistry, SenderRow, utcnow
from airflow_provider_wamm.campaign.pacing import Pacer, whole_sends
from airflow_provider_wamm.campaign.settings import CampaignSettings

#: The sliding window Meta's cap is counted over, seconds.
WINDOW_S = 1.0
#: Rows of senders dead for this many expiries are deleted when a sender starts.
FORGET_AFTER_EXPIRIES = 20
#: Seconds between a sender's looks at the others (a read): a sender that ends is noticed this soon.
LOOK_S = 0.2


def allocate_slots(budget: int, wishes: Mapping[str, int], order: Sequence[str]) -> dict[str, int]:
    """Split a whole number of sends a second between senders, max-min fair: evenly, except that a
    sender wishing for less than an even share gets its wish and leaves the rest to the others. What
    an even split leaves over goes one each to the senders first in ``order`` (the same for every
    sender that reads the same table), so the shares add up to ``budget`` exactly, never more."""
    shares: dict[str, int] = {}
    left = max(0, int(budget))
    pending = sorted(wishes.items(), key=lambda item: (item[1], order.index(item[0])))
    while pending:
        even, over = divmod(left, len(pending))
        sender, wish = pending[0]
        if wish <= even:
            shares[sender] = max(0, wish)
            left -= shares[sender]
            pending.pop(0)
            continue
        extra = {name for name in sorted((n for n, _ in pending), key=order.index)[:over]}
        for name, _ in pending:
            shares[name] = even + (name in extra)
        break
    return shares


def budget_of(number_cap: float, headroom: float) -> int:
    """Sends a second the senders of a number may make together: its cap less the headroom, rounded
    down once for all of them (not once per sender)."""
    return max(0, whole_sends(number_cap * (1.0 - headroom)))


def share_for(
    me: str,
    my_wish: float,
    number_cap: float,
    others: Sequence[SenderRow],
    *,
    headroom: float = 0.0,
    order: Sequence[str] = (),
) -> float:
    """What sender ``me`` may send per second next to the live ``others``: its fair share of the
    number's budget (:func:`budget_of`), a whole number, within the room the others leave by what they
    advertise. ``order`` ranks the senders for what an even split leaves over (default: the others
    as given, then ``me``)."""
    budget = budget_of(min([number_cap, *(o.number_cap for o in others)]), headroom)
    wish = min(budget, whole_sends(my_wish))
    wishes = {o.sender_id: min(budget, whole_sends(o.max_rate)) for o in others}
    wishes[me] = wish
    ranked = [name for name in order if name in wishes]
    ranked += [name for name in [*(o.sender_id for o in others), me] if name not in ranked]
    fair = allocate_slots(budget, wishes, ranked)[me]
    room = budget - math.ceil(sum(o.share for o in others) - 1e-9)
    return float(max(0, min(fair, room)))


class CapShare:
    """One sender's share of a phone number's cap, kept in the ledger.

    Shares are whole numbers of sends a second out of the number's budget (:func:`budget_of`): the
    cap less ``headroom``, rounded down once, so four senders of a cap of 80 pace at 20, 20, 19 and
    19 (78, what one sender alone would), not at 19 each.

    :param registry: the ledger's senders.
    :param sender_id: this sender (the attempt id).
    :param cap_key: the phone number whose cap is shared.
    :param campaign_id: what this sender sends (for people reading the table).
    :param number_cap: the number's cap, messages per second.
    :param max_rate: the most this sender itself wants to send per second.
    :param headroom: share of the number's cap left unused by all its senders together.
    :param interval_s: seconds between heartbeats.
    :param look_s: seconds between looks at the others (a read; the beat is written when what this
        sender advertises changes, or every ``interval_s``).
    :param expire_s: a sender whose heartbeat is older than this is dead.
    :param wall: the time written to the ledger (injectable for tests); :meth:`start` and :meth:`tick`
        take the monotonic time of their schedule.
    """

    def __init__(
        self,
        registry: SenderRegistry,
        *,
        sender_id: str,
        cap_key: str,
        campaign_id: str,
        number_cap: float,
        max_rate: float,
        headroom: float = 0.0,
        interval_s: float = 1.0,
        look_s: float = LOOK_S,
        expire_s: float = 5.0,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = registry
        self.sender_id = sender_id
        self.cap_key = cap_key
        self.campaign_id = campaign_id
        self.number_cap = number_cap
        self.headroom = headroom
        self.wish = min(max_rate, number_cap)
        # In whole sends a second, the headroom left, as an unshared run paces: floor(12.5 x 0.98) = 12.
        self.max_rate = float(budget_of(self.wish, headroom))
        self.interval_s = interval_s
        self.look_s = min(look_s, interval_s)
        self.expire = timedelta(seconds=expire_s)
        self.wall = wall
        self.share = 0.0
        self.others = 0
        self._next = 0.0
        self._next_beat = 0.0
        self._beaten: float | None = None
        # The shares in force during the last window, newest last: (monotonic time taken, share).
        self._recent: list[tuple[float, float]] = []

    def start(self, now: float) -> float:
        """Register (advertising the whole wish), then take a first share; returns it (0: wait)."""
        at = self.wall()
        self.registry.forget_dead(self.cap_key, older_than=self.expire * FORGET_AFTER_EXPIRIES, now=at)
        self.registry.register(
            self.sender_id,
            self.cap_key,
            campaign_id=self.campaign_id,
            number_cap=self.number_cap,
            max_rate=self.max_rate,
            share=self.max_rate,
            now=at,
        )
        self._next = now
        changed = self.tick(now)
        return self.share if changed is None else changed

    def tick(self, now: float) -> float | None:
        """Every ``look_s``: look at the others, advertise the new share (written before it is taken,
        and at least every ``interval_s``), return it if it changed."""
        if now < self._next:
            return None
        self._next = now + self.look_s
        at = self.wall()
        rows = self.registry.live(self.cap_key, within=self.expire, now=at)
        others = [r for r in rows if r.sender_id != self.sender_id]
        self.others = len(others)
        share = share_for(
            self.sender_id,
            self.max_rate,
            self.number_cap,
            others,
            headroom=self.headroom,
            order=[r.sender_id for r in rows],
        )
        advertised = self._advertised(now, share)
        if advertised != self._beaten or now >= self._next_beat:
            self.registry.beat(self.sender_id, advertised, now=at)  # before it is taken
            self._beaten, self._next_beat = advertised, now + self.interval_s
        if math.isclose(share, self.share, rel_tol=1e-9, abs_tol=1e-9):
            return None
        self.share = share
        return share

    def per_cap(self, share: float) -> float:
        """Messages per second of the number's cap that ``share`` (whole sends a second, the headroom
        left) stands for: the whole wish when it is granted, else its part of the cap (78 of a budget
        of 78 at a cap of 80: 80)."""
        if share >= self.max_rate:
            return self.wish
        budget = budget_of(self.number_cap, self.headroom)
        return share * self.number_cap / budget if budget else share

    def _advertised(self, now: float, share: float) -> float:
        """What to advertise when taking ``share`` at ``now``: the most of any share in force within the
        last window, since sends made at a higher pace still count in the number's sliding second."""
        if not self._recent or not math.isclose(self._recent[-1][1], share, rel_tol=1e-9, abs_tol=1e-9):
            self._recent.append((now, share))
        # A share replaced by a later one before now - WINDOW_S no longer has sends in the window.
        while len(self._recent) > 1 and self._recent[1][0] <= now - WINDOW_S:
            self._recent.pop(0)
        return max(s for _, s in self._recent)

    def leave(self, last_send: datetime | None = None) -> None:
        """Leave the number's cap. The sends of this sender's last second still count: its row stays,
        advertising the most it sent at, until one window after ``last_send`` (its last request left;
        default now), then expires and the others take its share at their next look. A sender whose
        last send is a window old already deletes its row at once."""
        at = self.wall()
        until = (last_send or at) + timedelta(seconds=WINDOW_S)
        if until <= at:
            self.registry.leave(self.sender_id)
            return
        advertised = max([self.share, *(share for _, share in self._recent)])
        self.registry.beat(self.sender_id, advertised, now=until - self.expire)


class SharedPace:
    """The run's side of the shared cap: a :class:`CapShare` driving the run's :class:`Pacer`."""

    def __init__(self, share: CapShare, pacer: Pacer, log: logging.Logger | Any) -> None:
        self.cap_share = share
        self.pacer = pacer
        self.log = log
        self.left = False

    def start(self, now: float) -> None:
        """Register and pace at the first share (holding while it is zero)."""
        self._apply(self.cap_share.start(now))

    def tick(self, now: float) -> None:
        """Follow the share as senders come and go."""
        changed = self.cap_share.tick(now)
        if changed is not None:
            self._apply(changed)

    def leave(self) -> None:
        """Give the share back (once); a failure is logged (the row then expires on its own)."""
        if self.left:
            return
        self.left = True
        try:
            self.cap_share.leave(self._last_send())
        except Exception:
            self.log.warning(
                "campaign %s: could not remove its row from the senders table; the others take its "
                "share back once it expires",
                self.cap_share.campaign_id,
                exc_info=True,
            )

    def _last_send(self) -> datetime | None:
        """When the run's last request left, on the ledger's clock (``None``: none left)."""
        last = self.pacer.last_send
        if last is None:
            return None
        return self.cap_share.wall() - timedelta(seconds=max(0.0, time.monotonic() - last))

    def _apply(self, share: float) -> None:
        s = self.cap_share
        self.log.info(
            "campaign %s: %s of the number's %g msg/s with %d other sender(s) of the number",
            s.campaign_id,
            f"{share:g} msg/s" if share > 0 else "waiting for a share",
            s.number_cap,
            s.others,
        )
        self.pacer.set_budget(share, of_cap=s.per_cap(share) / share if share > 0 else 1.0)


class NotShared:
    """The shared pace of a run that does not share its number's cap: it does nothing."""

    def start(self, now: float) -> None:
        """Nothing to register."""

    def tick(self, now: float) -> None:
        """Nothing to follow."""

    def leave(self) -> None:
        """Nothing to give back."""


def shared_pace(
    settings: CampaignSettings,
    ledger: Ledger,
    client: object,
    *,
    sender_id: str,
    pacer: Pacer,
    log: logging.Logger | Any,
) -> SharedPace | NotShared:
    """The shared pace of a run, or :class:`NotShared` when it does not share (``share_cap=False``, a
    dry run, no phone number to share: no ``cap_key`` and a client without ``phone_number_id``, or a
    cap below one whole send a second once the headroom is left, which whole shares cannot split)."""
    key = settings.cap_key or getattr(client, "phone_number_id", None)
    rate = float(settings.max_messages_per_second)
    whole = budget_of(min(rate, settings.number_cap or rate), settings.rate_headroom) >= 1
    if not settings.share_cap or settings.dry_run or not key or not whole:
        return NotShared()
    share = CapShare(
        ledger.sender_registry,
        sender_id=sender_id,
        cap_key=str(key),
        campaign_id=settings.campaign_id,
        number_cap=float(settings.number_cap or rate),
        max_rate=rate,
        headroom=settings.rate_headroom,
        interval_s=settings.cap_share_interval_s,
        expire_s=settings.cap_share_expire_s,
    )
    return SharedPace(share, pacer, log)


__all__ = [
    "FORGET_AFTER_EXPIRIES",
    "LOOK_S",
    "CapShare",
    "NotShared",
    "SharedPace",
    "allocate_slots",
    "budget_of",
    "share_for",
    "shared_pace",
]
