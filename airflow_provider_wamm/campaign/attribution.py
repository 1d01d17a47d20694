"""Conversion attribution: who converted within a window after a campaign reached them, per group.

A recipient is *exposed* when Meta accepted the campaign's message for them (the ledger's ``sends``,
state ``accepted``, at ``accepted_at``), or, for the holdout and the global control group, when the
campaign started (they are never sent anything, so the first send of the campaign anchors their
window). A conversion (recipient, time, value) counts for a recipient when it happens within
``window`` after their exposure. Per group (each variant, ``treatment`` without variants,
``holdout``, ``global_control``) the report gives the recipients, the converters, the conversion
rate with its Wilson interval, the total value, and the lift against the control group (the holdout
by default) with Newcombe's interval and the relative lift::

    attribution = Attribution(window=timedelta(days=7))
    attribution.add_exposures(ledger_exposures(ledger, "spring-sale", experiment=experiment))
    start = attribution.first_exposure
    attribution.add_exposures(audience_exposures(audience, experiment, exposed_at=start))
    attribution.add_conversion_rows(rows)       # any iterable of dicts, streamed
    report = attribution.report()

Memory: one small entry per exposed recipient (the sends of one campaign); the conversions are
streamed and never held. Numbers are normalised the way the sender normalises them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from airflow_provider_wamm.campaign.experiments import TREATMENT_GROUP, AssignmentKind, Experiment
from airflow_provider_wamm.campaign.ledger import ACCEPTED, Ledger, as_utc
from airflow_provider_wamm.campaign.sources import iter_rows
from airflow_provider_wamm.campaign.stats import (
    Interval,
    WinnerReadout,
    fields_dict,
    newcombe_interval,
    pick_winner,
    relative_lift_interval,
    two_proportion_z_test,
    wilson_interval,
)
from airflow_provider_wamm.graph.errors import ConfigurationError, InvalidRecipientError
from airflow_provider_wamm.graph.recipients import normalize_phone

#: The group of recipients the ledger says were sent although the experiment assigns them elsewhere
#: (the experiment's definition changed after the send).
OFF_PLAN_GROUP = "off_plan"
#: Groups that are not variants (left out of the winner readout).
NON_VARIANT_GROUPS = frozenset({*AssignmentKind, OFF_PLAN_GROUP})


@dataclass(frozen=True, slots=True)
class Exposure:
    """A recipient the campaign reached (or held back), when, and in which group."""

    recipient: str
    """Normalised digits."""
    group: str
    """Variant name, ``treatment``, ``holdout`` or ``global_control``."""
    exposed_at: datetime
    """Start of the recipient's attribution window (aware UTC)."""


@dataclass(frozen=True, slots=True)
class Conversion:
    """One conversion: who, when and how much."""

    recipient: str
    """Normalised digits."""
    converted_at: datetime
    """When (aware UTC)."""
    value: float = 0.0
    """Its value (order total...), 0 when the source has none."""


def _utc(value: Any) -> datetime | None:
    """A timestamp from a database row (datetime, date, ISO text; naive means UTC) as aware UTC."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        return as_utc(value)
    except ValueError:
        return None


def ledger_exposures(
    ledger: Ledger,
    campaign_id: str,
    *,
    experiment: Experiment | None = None,
    states: Sequence[str] = (ACCEPTED,),
    batch_size: int = 1000,
) -> Iterator[Exposure]:
    """The campaign's sends as exposures, streamed from the ledger in batches.

    :param experiment: recomputes each recipient's variant when the ledger row has none (sends made
        before the sender recorded groups, or split by hand); without one every such send is in the
        ``treatment`` group. A row's recorded group (its ``variant`` column) wins.
    :param states: the send states that count as reached (``accepted`` by default).
    """
    for row in ledger.iter_sends(campaign_id, states=states, batch_size=batch_size):
        at = _utc(row.get("accepted_at")) or _utc(row.get("updated_at"))
        if at is None:
            continue
        recipient = str(row["recipient"])
        group = TREATMENT_GROUP
        if row.get("variant"):  # the sender recorded the recipient's group
            group = str(row["variant"])
        elif experiment is not None:
            assignment = experiment.assign(recipient)
            group = assignment.group if assignment.sends else OFF_PLAN_GROUP
        yield Exposure(recipient, group, at)


def ledger_held_back(
    ledger: Ledger, campaign_id: str, *, exposed_at: datetime, batch_size: int = 1000
) -> Iterator[Exposure]:
    """The holdout and global-control members the sender recorded (``skipped``, with their group in the
    ``variant`` column), exposed at ``exposed_at``: no audience query needed."""
    held = {str(AssignmentKind.HOLDOUT), str(AssignmentKind.GLOBAL_CONTROL)}
    for row in ledger.iter_sends(campaign_id, states=("skipped",), batch_size=batch_size):
        if row.get("variant") in held:
            yield Exposure(str(row["recipient"]), str(row["variant"]), exposed_at)


def audience_exposures(
    recipients: Iterable[Any],
    experiment: Experiment,
    *,
    exposed_at: datetime,
    recipient_field: str = "phone",
    default_region: str | None = None,
) -> Iterator[Exposure]:
    """The holdout and global-control members of an audience, exposed at ``exposed_at``.

    :param recipients: the campaign's audience (phone strings or dicts), e.g. its query run again.
    :param experiment: the experiment the campaign ran with (same ``key``).
    :param exposed_at: start of their window, usually the campaign's first send.
    """
    held = (AssignmentKind.HOLDOUT, AssignmentKind.GLOBAL_CONTROL)
    for row in iter_rows(recipients, recipient_field=recipient_field):
        try:
            digits = normalize_phone(row.phone, default_region=default_region, field=recipient_field)
        except InvalidRecipientError:
            continue
        assignment = experiment.assign(digits)
        if assignment.kind in held:
            yield Exposure(digits, assignment.group, exposed_at)


@dataclass(slots=True)
class _Exposed:
    group: int
    start: datetime
    converted: bool = False


@dataclass(slots=True)
class _Tally:
    recipients: int = 0
    converters: int = 0
    conversions: int = 0
    value: float = 0.0


@dataclass(frozen=True)
class GroupAttribution:
    """One group's conversions and its lift against the control group.

    :param group: the group.
    :param recipients: recipients exposed.
    :param converters: recipients with at least one conversion in their window.
    :param conversions: conversions in the window.
    :param total_value: their total value.
    :param conversion_rate: ``converters / recipients``.
    :param rate_interval: Wilson interval of the rate.
    :param lift: ``conversion_rate - control rate`` (``None`` for the control or without one).
    :param lift_interval: Newcombe interval of the lift.
    :param relative_lift: ``conversion_rate / control rate - 1`` (``None`` when the control's is 0).
    :param relative_lift_interval: its interval (log rate ratio).
    :param p_value: two-proportion z-test against the control.
    """

    group: str
    recipients: int
    converters: int
    conversions: int
    total_value: float
    conversion_rate: float
    rate_interval: Interval
    lift: float | None = None
    lift_interval: Interval | None = None
    relative_lift: float | None = None
    relative_lift_interval: Interval | None = None
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (counts and rates only)."""
        return fields_dict(self)


@dataclass(frozen=True)
class AttributionReport:
    """Conversions per group within the attribution window, with lifts against the control group.

    :param window: the attribution window after each exposure.
    :param control_group: the group lifts are measured against.
    :param confidence: the confidence level of every interval.
    :param groups: one entry per group, the control group first.
    :param conversions_read: conversion rows read.
    :param conversions_attributed: conversions inside an exposed recipient's window.
    :param conversions_outside_window: conversions of exposed recipients before or after their window.
    :param conversions_unmatched: conversions of recipients the campaign did not expose.
    :param conversions_invalid: rows without a usable phone number or time.
    :param readout: the A/B/n readout of the variant groups on converters (two variants or more).
    """

    window: timedelta
    control_group: str
    confidence: float
    groups: tuple[GroupAttribution, ...]
    conversions_read: int = 0
    conversions_attributed: int = 0
    conversions_outside_window: int = 0
    conversions_unmatched: int = 0
    conversions_invalid: int = 0
    readout: WinnerReadout | None = field(default=None)

    def group(self, name: str) -> GroupAttribution:
        """The entry of group ``name``."""
        for g in self.groups:
            if g.group == name:
                return g
        raise KeyError(name)

    def log_lines(self) -> list[str]:
        """One line per group, then the readout, for the task log."""
        lines = []
        for g in self.groups:
            line = (
                f"{g.group}: {g.converters}/{g.recipients} converted ({g.conversion_rate:.2%}), "
                f"value {g.total_value:.2f}"
            )
            if g.lift is not None and g.lift_interval is not None:
                ci = g.lift_interval
                line += (
                    f", lift {g.lift * 100:+.2f} pts [{ci.low * 100:+.2f}, {ci.high * 100:+.2f}] "
                    f"vs {self.control_group}, p={g.p_value:.4g}"
                )
            lines.append(line)
        if self.readout is not None:
            lines.append(self.readout.log_line())
        return lines

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for XCom: counts, rates and intervals, never a recipient."""
        return {
            "window_s": self.window.total_seconds(),
            "control_group": self.control_group,
            "confidence": self.confidence,
            "groups": [g.to_dict() for g in self.groups],
            "conversions_read": self.conversions_read,
            "conversions_attributed": self.conversions_attributed,
            "conversions_outside_window": self.conversions_outside_window,
            "conversions_unmatched": self.conversions_unmatched,
            "conversions_invalid": self.conversions_invalid,
            "readout": None if self.readout is None else self.readout.to_dict(),
        }


class Attribution:
    """Collects exposures, then streams conversions into per-group tallies.

    :param window: how long after an exposure a conversion counts (positive).
    :param control_group: the group lifts are measured against (``holdout``; ``global_control``
        to measure against the global control group).
    :param confidence: confidence level of the intervals.
    """

    def __init__(
        self, window: timedelta, *, control_group: str = AssignmentKind.HOLDOUT, confidence: float = 0.95
    ) -> None:
        if not isinstance(window, timedelta) or window <= timedelta(0):
            raise ConfigurationError(f"the attribution window must be a positive timedelta, got {window!r}")
        if not 0 < confidence < 1:
            raise ConfigurationError(f"confidence must be in (0, 1), got {confidence!r}")
        self.window = window
        self.control_group = str(control_group)
        self.confidence = confidence
        self.first_exposure: datetime | None = None
        """The earliest exposure added so far (anchors the holdout's window)."""
        self._exposed: dict[str, _Exposed] = {}
        self._groups: dict[str, int] = {}
        self._tallies: list[_Tally] = []
        self._counts = {"read": 0, "attributed": 0, "outside_window": 0, "unmatched": 0, "invalid": 0}

    def add_exposures(self, exposures: Iterable[Exposure]) -> int:
        """Add exposures; a recipient already exposed keeps its first group. Returns how many were new."""
        added = 0
        for e in exposures:
            if e.recipient in self._exposed:
                continue
            index = self._groups.get(e.group)
            if index is None:
                index = self._groups[e.group] = len(self._tallies)
                self._tallies.append(_Tally())
            self._exposed[e.recipient] = _Exposed(index, e.exposed_at)
            self._tallies[index].recipients += 1
            if self.first_exposure is None or e.exposed_at < self.first_exposure:
                self.first_exposure = e.exposed_at
            added += 1
        return added

    def add_conversions(self, conversions: Iterable[Conversion]) -> None:
        """Count conversions (streamed) against the exposures added so far."""
        for c in conversions:
            self._counts["read"] += 1
            exposed = self._exposed.get(c.recipient)
            if exposed is None:
                self._counts["unmatched"] += 1
            elif not exposed.start <= c.converted_at <= exposed.start + self.window:
                self._counts["outside_window"] += 1
            else:
                self._counts["attributed"] += 1
                tally = self._tallies[exposed.group]
                tally.conversions += 1
                tally.value += c.value
                if not exposed.converted:
                    exposed.converted = True
                    tally.converters += 1

    def add_conversion_rows(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        recipient_field: str = "phone",
        time_field: str = "converted_at",
        value_field: str | None = None,
        default_region: str | None = None,
    ) -> None:
        """Count conversion rows (dicts, e.g. streamed from a query); unusable rows are counted apart.

        :param recipient_field: the key of the phone number.
        :param time_field: the key of the conversion time (datetime, date or ISO text; naive = UTC).
        :param value_field: the key of the value, if the rows have one.
        :param default_region: region for numbers written without a country code.
        """
        first = True
        for row in rows:
            if first:
                _check_fields(row, [recipient_field, time_field] + ([value_field] if value_field else []))
                first = False
            conversion = _conversion(row, recipient_field, time_field, value_field, default_region)
            if conversion is None:
                self._counts["read"] += 1
                self._counts["invalid"] += 1
            else:
                self.add_conversions([conversion])

    def report(self) -> AttributionReport:
        """The report of everything counted so far."""
        names = sorted(self._groups, key=lambda n: (n != self.control_group, n))
        control_index = self._groups.get(self.control_group)
        control = None if control_index is None else self._tallies[control_index]
        groups = tuple(self._group_result(n, self._tallies[self._groups[n]], control) for n in names)
        variants = {g.group: g.to_dict() for g in groups if g.group not in NON_VARIANT_GROUPS}
        readout = (
            pick_winner(variants, "converters", 1 - self.confidence, denominator="recipients")
            if len(variants) >= 2
            else None
        )
        c = self._counts
        return AttributionReport(
            window=self.window,
            control_group=self.control_group,
            confidence=self.confidence,
            groups=groups,
            conversions_read=c["read"],
            conversions_attributed=c["attributed"],
            conversions_outside_window=c["outside_window"],
            conversions_unmatched=c["unmatched"],
            conversions_invalid=c["invalid"],
            readout=readout,
        )

    def _group_result(self, name: str, tally: _Tally, control: _Tally | None) -> GroupAttribution:
        x, n = tally.converters, tally.recipients
        result = GroupAttribution(
            group=name,
            recipients=n,
            converters=x,
            conversions=tally.conversions,
            total_value=tally.value,
            conversion_rate=x / n if n else 0.0,
            rate_interval=wilson_interval(x, n, self.confidence),
        )
        if control is None or name == self.control_group or control.recipients == 0 or n == 0:
            return result
        cx, cn = control.converters, control.recipients
        control_rate = cx / cn
        return replace(
            result,
            lift=result.conversion_rate - control_rate,
            lift_interval=newcombe_interval(x, n, cx, cn, self.confidence),
            relative_lift=result.conversion_rate / control_rate - 1 if control_rate else None,
            relative_lift_interval=relative_lift_interval(x, n, cx, cn, self.confidence),
            p_value=two_proportion_z_test(x, n, cx, cn).p_value,
        )


def _check_fields(row: Mapping[str, Any], fields: list[str]) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise ConfigurationError(
            f"conversion rows lack the fields {missing}; the first row has {sorted(map(str, row))}"
        )


def _conversion(
    row: Mapping[str, Any],
    recipient_field: str,
    time_field: str,
    value_field: str | None,
    default_region: str | None,
) -> Conversion | None:
    """A conversion from a row, or ``None`` when its number or time is unusable."""
    try:
        digits = normalize_phone(
            row.get(recipient_field), default_region=default_region, field=recipient_field
        )
    except InvalidRecipientError:
        return None
    at = _utc(row.get(time_field))
    if at is None:
        return None
    raw = row.get(value_field) if value_field else None
    try:
        value = float(raw) if isinstance(raw, (int, float, Decimal, str)) and raw != "" else 0.0
    except ValueError:
        value = 0.0
    return Conversion(digits, at, value)


def attribute(
    exposures: Iterable[Exposure],
    conversions: Iterable[Conversion],
    window: timedelta,
    *,
    control_group: str = AssignmentKind.HOLDOUT,
    confidence: float = 0.95,
) -> AttributionReport:
    """Attribute ``conversions`` to ``exposures`` in one call (see :class:`Attribution`)."""
    attribution = Attribution(window, control_group=control_group, confidence=confidence)
    attribution.add_exposures(exposures)
    attribution.add_conversions(conversions)
    return attribution.report()


__all__ = [
    "NON_VARIANT_GROUPS",
    "OFF_PLAN_GROUP",
    "Attribution",
    "AttributionReport",
    "Conversion",
    "Exposure",
    "GroupAttribution",
    "attribute",
    "audience_exposures",
    "ledger_exposures",
]
