"""Send windows in the recipient's local time: who may be messaged now, and when the others may.

A :class:`SendWindow` is a daily span of local time (``09:00``-``20:00``) on some days of the week. A
recipient's time zone comes from a column of their row (an IANA name such as ``Europe/Berlin``) or,
failing that, from their number (libphonenumber's time-zone data); a number spanning several zones
(Australia, Russia, the US) gets the business's choice among them, ordered from the east (where the
window opens first) to the west: ``first``, ``middle`` or ``last``.

:class:`WindowPlan` decides about one recipient at a time: :data:`OPEN` (send now), a
:class:`Hold` until their window opens (or their row's ``send_at``), or a :class:`Skip` with the reason
when the window will not open before the deadline (``not_after``, or the template's TTL counted from
now). It keeps the counts and the earliest moment a held recipient's window opens, so that the task
can wait exactly that long.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

from airflow_provider_wamm.graph.errors import ConfigurationError

#: Which of several zones of a number to use: where the window opens first, in the middle, or last.
ZoneChoice = Literal["first", "middle", "last"]
#: Days of the week by name (``Monday`` is 0, as :meth:`datetime.weekday` counts).
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far ahead a window is looked for (a window on some days of the week opens within a week).
_HORIZON_DAYS = 8


def _clock_time(value: str | time, name: str) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a time such as '09:00', got {value!r}") from None


def parse_days(days: Iterable[str | int] | None) -> frozenset[int]:
    """Days of the week as numbers (0 is Monday) from names (``"mon"``, ``"Saturday"``) or numbers."""
    if days is None:
        return frozenset(range(7))
    out = set()
    for day in days:
        if isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
            out.add(day)
        elif isinstance(day, str) and day.strip().lower()[:3] in DAY_NAMES:
            out.add(DAY_NAMES.index(day.strip().lower()[:3]))
        else:
            raise ConfigurationError(f"send_days: {day!r} is not a day of the week (mon..sun or 0..6)")
    if not out:
        raise ConfigurationError("send_days must name at least one day")
    return frozenset(out)


@dataclass(frozen=True)
class SendWindow:
    """A daily span of local time, on some days of the week.

    :param start: local time the window opens (included).
    :param end: local time it closes (excluded); after ``start`` (no window across midnight).
    :param days: days of the week it is open (0 is Monday; every day by default).
    """

    start: time
    end: time
    days: frozenset[int] = frozenset(range(7))

    @classmethod
    def parse(
        cls, window: tuple[str | time, str | time], days: Iterable[str | int] | None = None
    ) -> SendWindow:
        """``("09:00", "20:00")`` and optional day names as a window."""
        try:
            start, end = window
        except (TypeError, ValueError):
            raise ConfigurationError(f"send_window must be a (start, end) pair, got {window!r}") from None
        result = cls(
            _clock_time(start, "send_window start"), _clock_time(end, "send_window end"), parse_days(days)
        )
        if not result.start < result.end:
            raise ConfigurationError(f"send_window: {start} must be before {end} (no window across midnight)")
        return result

    def is_open(self, at: datetime, zone: ZoneInfo) -> bool:
        """Whether the window is open at ``at`` (aware) in ``zone``."""
        local = at.astimezone(zone)
        return local.weekday() in self.days and self.start <= local.time().replace(tzinfo=None) < self.end

    def next_open(self, at: datetime, zone: ZoneInfo) -> datetime:
        """When the window is next open from ``at`` on (``at`` itself when it is open), in UTC."""
        if self.is_open(at, zone):
            return at.astimezone(UTC)
        local = at.astimezone(zone)
        for offset in range(_HORIZON_DAYS):
            day: date = local.date() + timedelta(days=offset)
            opens = datetime.combine(day, self.start, tzinfo=zone)
            if day.weekday() in self.days and opens > local:
                return opens.astimezone(UTC)
        raise ConfigurationError("send_window never opens")  # unreachable with at least one day


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zones_of_number(digits: str) -> tuple[str, ...]:
    """libphonenumber's time zones of an E.164 number (digits); empty when it knows none."""
    try:
        names = phone_zones.time_zones_for_number(phonenumbers.parse("+" + digits))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(n for n in names if _zone(n) is not None)


def pick_zone(names: Iterable[str], choice: ZoneChoice, at: datetime) -> ZoneInfo | None:
    """One of several zones: ordered by their UTC offset at ``at``, east first (where a window opens
    first); ``first``, ``middle`` or ``last`` of them."""
    zones = sorted({z for z in (_zone(n) for n in names) if z is not None}, key=str)
    if not zones:
        return None
    zones.sort(key=lambda z: -(at.astimezone(z).utcoffset() or timedelta(0)))
    index = {"first": 0, "middle": (len(zones) - 1) // 2, "last": len(zones) - 1}[choice]
    return zones[index]


OPEN = "open"
"""The decision to send now."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Not now: the recipient's window (or ``send_at``) is at ``until``."""

    until: datetime


@dataclass(frozen=True, slots=True)
class Skip:
    """Never in this campaign: the window does not open before the deadline."""

    reason: str


@dataclass
class WindowPlan:
    """Decides, recipient by recipient, who is sent now, held or skipped, and keeps the counts.

    :param window: the send window.
    :param now: the time of this run (aware).
    :param zone_field: the row field holding an IANA time zone, if any.
    :param zone_choice: which of several zones of a number to use.
    :param default_zone: the zone of recipients without one (a bad field, an unknown number).
    :param send_at_field: the row field holding the earliest time to message the recipient, if any.
    :param deadline: nobody is messaged after this (``not_after``, or now plus the template's TTL).
    """

    window: SendWindow
    now: datetime
    zone_field: str | None = None
    zone_choice: ZoneChoice = "middle"
    default_zone: str = "UTC"
    send_at_field: str | None = None
    deadline: datetime | None = None
    sent_now: int = 0
    held: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    next_open: datetime | None = None
    by_zone: Counter[str] = field(default_factory=Counter)

    def zone_of(self, digits: str, fields: Mapping[str, Any]) -> ZoneInfo:
        """The recipient's zone: the row's field, else the number's, else the default."""
        if self.zone_field:
            named = _zone(str(fields.get(self.zone_field) or "").strip())
            if named is not None:
                return named
        picked = pick_zone(zones_of_number(digits), self.zone_choice, self.now)
        return picked or _zone(self.default_zone) or ZoneInfo("UTC")

    def decide(self, digits: str, fields: Mapping[str, Any]) -> str | Hold | Skip:
        """Send now (:data:`OPEN`), hold, or skip one recipient; counted."""
        zone = self.zone_of(digits, fields)
        earliest = max(self.now, self._send_at(fields) or self.now)
        opens = self.window.next_open(earliest, zone)
        if self.deadline is not None and opens >= self.deadline:
            reason = f"send window: {self.window.start:%H:%M} in {zone} opens after the deadline"
            self.skipped[reason] += 1
            return Skip(f"{reason} ({opens.isoformat()} >= {self.deadline.isoformat()})")
        if opens <= self.now:
            self.sent_now += 1
            self.by_zone[str(zone)] += 1
            return OPEN
        self.held += 1
        self.next_open = opens if self.next_open is None else min(self.next_open, opens)
        return Hold(opens)

    def _send_at(self, fields: Mapping[str, Any]) -> datetime | None:
        if not self.send_at_field:
            return None
        value = fields.get(self.send_at_field)
        if value in (None, ""):
            return None
        try:
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def to_dict(self) -> dict[str, Any]:
        """Counts for XCom."""
        return {
            "sent_now": self.sent_now,
            "held": self.held,
            "skipped": sum(self.skipped.values()),
            "skip_reasons": dict(self.skipped.most_common(10)),
            "next_open": self.next_open.isoformat() if self.next_open else None,
            "open_by_zone": dict(self.by_zone.most_common(20)),
        }


__all__ = [
    "DAY_NAMES",
    "OPEN",
    "Hold",
    "SendWindow",
    "Skip",
    "WindowPlan",
    "ZoneChoice",
    "parse_days",
    "pick_zone",
    "zones_of_number",
]
