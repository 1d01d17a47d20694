"""One cap per phone number across processes: every sender of a number takes its share through the
ledger.

Meta counts a number's messages per second whoever sends them: two campaigns on one number at once,
the shards of one campaign, another DAG. Each run that shares the cap registers in the ledger's
``senders`` table (:class:`~airflow_provider_wamm.campaign.ledger.senders.SenderRegistry`) and, about
once a second, beats a heartbeat that says the most it may send per second until its next beat (its
*advertised share*), then reads the other live senders and takes:

``min(its fair share, the number's cap - what the others advertise)``

The fair shares split the cap evenly between the live senders, except that a sender wanting less than
its share (its own ``max_messages_per_second``) leaves the rest to the others (:func:`allocate`). The
second term keeps the sum under the cap while a change goes round: a newcomer registers advertising
the most it may take, so the others make room at their next beat, and it waits for that room (holds
at zero) instead of taking its share at once. A sender lowers its pace at once but goes on advertising
the higher share until a whole window (one second) has passed at the lower pace, so no window of
the number's sends holds both its old pace and the others' raise; it advertises a raise before it
takes it. A sender that ends stays counted one more window (its last second of sends); one that dies
stops beating and is no longer counted after ``cap_share_expire_s``: the others grow back to the
whole cap within seconds.

Two senders that start at the same moment cannot both miss each other: each registers (a committed
write) before it reads, so the later reader sees the earlier one's row advertising its whole wish.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger, SenderRegistry, SenderRow, utcnow
from airflow_provider_wamm.campaign.pacing import Pacer
from airflow_provider_wamm.campaign.settings import CampaignSettings

#: The sliding window Meta's cap is counted over, seconds.
WINDOW_S = 1.0
#: Rows of senders dead for this many expiries are deleted when a sender starts.
FORGET_AFTER_EXPIRIES = 20


def allocate(number_cap: float, wishes: Mapping[str, float]) -> dict[str, float]:
    """Split ``number_cap`` between senders by their wishes (each one's own most per second): evenly,
    except that a sender wishing for less than an even share gets its wish and leaves the rest to the
    others (max-min fairness)."""
    shares: dict[str, float] = {}
    left = max(0.0, number_cap)
    pending = sorted(wishes.items(), key=lambda item: (item[1], item[0]))
    while pending:
        even = left / len(pending)
        sender, wish = pending[0]
        if wish <= even:
            shares[sender] = max(0.0, wish)
            left -= shares[sender]
            pending.pop(0)
            continue
        for name, _ in pending:
            shares[name] = even
        break
    return shares


def share_for(me: str, my_wish: float, number_cap: float, others: Sequence[SenderRow]) -> float:
    """What sender ``me`` may send per second next to the live ``others``: its fair share, within the
    room the others leave by what they advertise."""
    cap = min([number_cap, *(o.number_cap for o in others)])
    wishes = {o.sender_id: o.max_rate for o in others}
    wishes[me] = my_wish
    fair = allocate(cap, wishes)[me]
    room = cap - sum(o.share for o in others)
    return max(0.0, min(fair, room))


class CapShare:
    """One sender's share of a phone number's cap, kept in the ledger.

    :param registry: the ledger's senders.
    :param sender_id: this sender (the attempt id).
    :param cap_key: the phone number whose cap is shared.
    :param campaign_id: what this sender sends (for people reading the table).
    :param number_cap: the number's cap, messages per second.
    :param max_rate: the most this sender itself wants to send per second.
    :param interval_s: seconds between heartbeats (and looks at the others).
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
        interval_s: float = 1.0,
        expire_s: float = 5.0,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = registry
        self.sender_id = sender_id
        self.cap_key = cap_key
        self.campaign_id = campaign_id
        self.number_cap = number_cap
        self.max_rate = min(max_rate, number_cap)
        self.interval_s = interval_s
        self.expire = timedelta(seconds=expire_s)
        self.wall = wall
        self.share = 0.0
        self.others = 0
        self._next = 0.0
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
        """Every ``interval_s``: look at the others, advertise the new share, return it if it changed."""
        if now < self._next:
            return None
        self._next = now + self.interval_s
        at = self.wall()
        others = [
            r
            for r in self.registry.live(self.cap_key, within=self.expire, now=at)
            if r.sender_id != self.sender_id
        ]
        self.others = len(others)
        share = share_for(self.sender_id, self.max_rate, self.number_cap, others)
        self.registry.beat(self.sender_id, self._advertised(now, share), now=at)  # before it is taken
        if math.isclose(share, self.share, rel_tol=1e-9, abs_tol=1e-9):
            return None
        self.share = share
        return share

    def _advertised(self, now: float, share: float) -> float:
        """What to advertise when taking ``share`` at ``now``: the most of any share in force within the
        last window, since sends made at a higher pace still count in the number's sliding second."""
        if not self._recent or not math.isclose(self._recent[-1][1], share, rel_tol=1e-9, abs_tol=1e-9):
            self._recent.append((now, share))
        # A share replaced by a later one before now - WINDOW_S no longer has sends in the window.
        while len(self._recent) > 1 and self._recent[1][0] <= now - WINDOW_S:
            self._recent.pop(0)
        return max(s for _, s in self._recent)

    def leave(self) -> None:
        """Leave the number's cap: the sends of this sender's last second still count, so its row stays
        one more window, advertising the most it sent at, then expires and the others take its share."""
        advertised = max([self.share, *(share for _, share in self._recent)])
        self.registry.beat(
            self.sender_id, advertised, now=self.wall() - self.expire + timedelta(seconds=WINDOW_S)
        )


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
            self.cap_share.leave()
        except Exception:
            self.log.warning(
                "campaign %s: could not remove its row from the senders table; the others take its "
                "share back once it expires",
                self.cap_share.campaign_id,
                exc_info=True,
            )

    def _apply(self, share: float) -> None:
        s = self.cap_share
        self.log.info(
            "campaign %s: %s of the number's %g msg/s with %d other sender(s) of the number",
            s.campaign_id,
            f"{share:g} msg/s" if share > 0 else "waiting for a share",
            s.number_cap,
            s.others,
        )
        self.pacer.set_cap(share)


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
    dry run, or no phone number to share: no ``cap_key`` and a client without ``phone_number_id``)."""
    key = settings.cap_key or getattr(client, "phone_number_id", None)
    if not settings.share_cap or settings.dry_run or not key:
        return NotShared()
    rate = float(settings.max_messages_per_second)
    share = CapShare(
        ledger.sender_registry,
        sender_id=sender_id,
        cap_key=str(key),
        campaign_id=settings.campaign_id,
        number_cap=float(settings.number_cap or rate),
        max_rate=rate,
        interval_s=settings.cap_share_interval_s,
        expire_s=settings.cap_share_expire_s,
    )
    return SharedPace(share, pacer, log)


__all__ = [
    "FORGET_AFTER_EXPIRIES",
    "CapShare",
    "NotShared",
    "SharedPace",
    "allocate",
    "share_for",
    "shared_pace",
]
