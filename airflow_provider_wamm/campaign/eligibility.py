"""Eligibility: which candidate recipients get a message, with their payload, and why the others do not.

For a batch of :class:`~.intake.Candidate` recipients the ledger is read (already handled in this
campaign, suppressed, messaged by another campaign within the frequency cap) and each remaining
recipient is personalised into a Graph payload; numbers in a market Meta does not deliver marketing
messages to are skipped without a request (:mod:`~.markets`). The answer is one typed decision per
candidate:
:class:`Send`, :class:`HeldElsewhere` (another attempt holds the recipient's claim: wait for it to
settle, never count it as done), :class:`Skip` (with a :class:`SkipReason`) or :class:`Invalid` (with
the reason). Nothing is written and no count is kept here: the caller records the decisions, claims the
recipients to send to when it hands them to a worker, and counts.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.callback import render_callback_data
from airflow_provider_wamm.campaign.experiment_plan import MessageSpec, group_label
from airflow_provider_wamm.campaign.intake import Candidate
from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome
from airflow_provider_wamm.campaign.markets import MARKET_NOT_SUPPORTED, check_markets, unsupported_market
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.graph.payload import PayloadError, build_marketing_message


class SkipReason(enum.StrEnum):
    """Why a valid recipient is not sent to."""

    DUPLICATE = "duplicate"
    """This run already handled the recipient (a repeat beyond the in-memory window)."""
    ALREADY_DONE = "already_done"
    """An earlier run, or another worker, already handled the recipient in this campaign (its row is
    final: a claim still held by another attempt is never counted here)."""
    SUPPRESSED = "suppressed"
    """The recipient stopped marketing messages or must wait after Meta's per-user limit."""
    FREQUENCY_CAPPED = "frequency_capped"
    """Another campaign's message reached the recipient within the frequency cap."""
    MARKET_NOT_SUPPORTED = MARKET_NOT_SUPPORTED
    """The number is in a market Meta delivers no marketing message to (see :mod:`~.markets`)."""
    HOLDOUT = "holdout"
    """The experiment holds the recipient out of this campaign (the baseline of its lift)."""
    GLOBAL_CONTROL = "global_control"
    """The recipient is in the experiment's global control group (kept out of every campaign)."""
    REST = "rest"
    """Outside the experiment's test slice: waits for the winner, sent by a later run."""


#: Counters of :class:`CampaignResult` raised by each kind of skip.
SKIP_COUNTERS: dict[SkipReason, tuple[str, ...]] = {
    SkipReason.DUPLICATE: ("duplicates",),
    SkipReason.ALREADY_DONE: ("skipped", "already_done"),
    SkipReason.SUPPRESSED: ("suppressed",),
    SkipReason.FREQUENCY_CAPPED: ("skipped", "frequency_capped"),
    SkipReason.MARKET_NOT_SUPPORTED: ("skipped", "market_not_supported"),
    SkipReason.HOLDOUT: ("skipped", "holdout"),
    SkipReason.GLOBAL_CONTROL: ("skipped", "global_control"),
    SkipReason.REST: ("skipped", "rest"),
}


@dataclass(frozen=True, slots=True)
class Send:
    """Send this payload to the recipient (once it is claimed)."""

    recipient: str
    payload: dict[str, Any]
    variant: str | None = None
    """The experiment's variant sent (``None`` without variants)."""


@dataclass(frozen=True, slots=True)
class Skip:
    """Do not send to the recipient.

    ``details`` (and ``error_code``) go into the ledger row of a skip this run records; a skip
    without details (a duplicate, or a recipient already done) leaves the ledger as it is.
    """

    recipient: str
    reason: SkipReason
    details: str | None = None
    error_code: int | None = None

    def outcome(self) -> SendOutcome | None:
        """The ``skipped`` ledger row to write, if any."""
        if self.details is None:
            return None
        return SendOutcome(self.recipient, L.SKIPPED, error_code=self.error_code, error_details=self.details)


@dataclass(frozen=True, slots=True)
class Invalid:
    """The recipient's row cannot be made into a message (personalisation or payload rules)."""

    recipient: str
    row_number: int
    reason: str

    def outcome(self) -> SendOutcome:
        """The ``invalid`` ledger row to write."""
        return SendOutcome(self.recipient, L.INVALID, error_details=f"row {self.row_number}: {self.reason}")


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    """Another attempt of the campaign holds the recipient's claim: its request may be in flight.

    Not done yet, and not this run's to send: the run keeps the payload aside until the claim settles
    (a final outcome, a release, or the other attempt is over). That holds whatever this run would do
    with the recipient: a claim whose recipient is suppressed meanwhile (its own request's failed
    status may be the cause) must still become ``unknown`` when its attempt is over.
    """

    recipient: str
    payload: dict[str, Any]
    unsent: Skip | Invalid | None = None
    """What this run does instead of sending if the claim is released (``payload`` is then empty)."""


Decision = Send | HeldElsewhere | Skip | Invalid
"""What to do with one candidate recipient."""


def count_decision(result: CampaignResult, decision: Skip | Invalid) -> None:
    """Count a recipient that is not sent to in the run's ``result``."""
    if isinstance(decision, Invalid):
        result.add_invalid(decision.reason)
        return
    for counter in SKIP_COUNTERS[decision.reason]:
        setattr(result, counter, getattr(result, counter) + 1)
    if decision.reason in (SkipReason.HOLDOUT, SkipReason.GLOBAL_CONTROL, SkipReason.REST):
        result.groups[str(decision.reason)] += 1


class Eligibility:
    """Decides, batch by batch, who of the candidates is sent what.

    :param ledger: read for earlier sends, suppressions and other campaigns' recent messages.
    :param settings: the campaign (template, personaliser, frequency cap, ``resend_unknown``).
    :param attempt_id: this run: its own earlier claims are duplicates, not work done by others.
    """

    def __init__(self, ledger: Ledger, settings: CampaignSettings, attempt_id: str) -> None:
        self._ledger = ledger
        self._s = settings
        self._attempt_id = attempt_id
        self._markets = check_markets(settings.unsupported_markets)
        self._plan = settings.experiment_plan()
        self._base = MessageSpec(
            settings.template_name, settings.language, settings.personaliser, settings.product_policy
        )

    def decide(self, candidates: Sequence[Candidate], *, now: datetime) -> list[Decision]:
        """One decision per candidate, in the candidates' order.

        :param now: the time the ledger's rules are read at (``not_before``, suppressions, the cap).
        """
        decisions, held = self._earlier_sends(candidates, now)
        decisions.update(self._unsupported_markets([c for c in candidates if c.recipient not in decisions]))
        todo = [c for c in candidates if c.recipient not in decisions]
        decisions.update(self._suppressed_or_capped([c.recipient for c in todo], now))
        for candidate in todo:
            if candidate.recipient not in decisions:
                decisions[candidate.recipient] = self._assign(candidate)
        for recipient in held:  # the claim settles first, whatever this run would do
            decision = decisions[recipient]
            if isinstance(decision, Send):
                decisions[recipient] = HeldElsewhere(recipient, decision.payload)
            elif isinstance(decision, Skip | Invalid):
                decisions[recipient] = HeldElsewhere(recipient, {}, decision)
        return [decisions[c.recipient] for c in candidates]

    def _assign(self, candidate: Candidate) -> Send | Skip | Invalid:
        """Held back by the experiment (recorded with its group as the reason), else personalised with
        the message of the recipient's variant."""
        if self._plan is None:
            return self.personalise(candidate)
        assignment = self._plan.assign(candidate.recipient)
        if not assignment.sends:
            reason = SkipReason(str(assignment.kind))
            details = f"{reason}: experiment {self._plan.experiment.key!r}"
            return Skip(candidate.recipient, reason, details)
        decision = self.personalise(candidate, self._plan.message(assignment))
        if isinstance(decision, Send) and assignment.variant is not None:
            return Send(decision.recipient, decision.payload, group_label(assignment))
        return decision

    def personalise(self, candidate: Candidate, message: MessageSpec | None = None) -> Send | Invalid:
        """The candidate's payload (the campaign's message, or ``message``), or why it cannot be built."""
        m = message or self._base
        try:
            components = m.personaliser.render(candidate.row.fields) if m.personaliser is not None else None
            payload = build_marketing_message(
                to=candidate.recipient,
                template_name=m.template_name,
                language=m.language,
                components=components,
                product_policy=m.product_policy,
                message_activity_sharing=self._s.message_activity_sharing,
                biz_opaque_callback_data=render_callback_data(
                    self._s.callback_data, self._s.campaign_id, candidate.recipient
                ),
            )
        except PayloadError as exc:
            return Invalid(candidate.recipient, candidate.row.number, str(exc))
        return Send(candidate.recipient, payload)

    def _earlier_sends(
        self, candidates: Sequence[Candidate], now: datetime
    ) -> tuple[dict[str, Decision], set[str]]:
        """Skips for recipients this campaign already has a final row for, and the recipients another
        attempt holds claimed (a dry run counts those as done: it waits for nobody)."""
        existing = self._ledger.existing_sends(self._s.campaign_id, [c.recipient for c in candidates])
        sending = not self._s.dry_run
        skips: dict[str, Decision] = {}
        held: set[str] = set()
        for recipient, prior in existing.items():
            if prior.attempt_id == self._attempt_id and sending:
                skips[recipient] = Skip(recipient, SkipReason.DUPLICATE)
            elif prior.state == L.CLAIMED and sending:
                held.add(recipient)
            elif not prior.reclaimable(now, resend_unknown=self._s.resend_unknown):
                skips[recipient] = Skip(recipient, SkipReason.ALREADY_DONE)
        return skips, held

    def _unsupported_markets(self, candidates: Sequence[Candidate]) -> dict[str, Decision]:
        """Skips for numbers in a market Meta delivers no marketing message to: no request is made."""
        skips: dict[str, Decision] = {}
        for candidate in candidates:
            region = unsupported_market(candidate.recipient, self._markets)
            if region is not None:
                details = f"{MARKET_NOT_SUPPORTED}: {region} (Meta delivers no marketing message there)"
                reason = SkipReason.MARKET_NOT_SUPPORTED
                skips[candidate.recipient] = Skip(candidate.recipient, reason, details)
        return skips

    def _suppressions(self, recipients: list[str], now: datetime) -> dict[str, Any]:
        """The suppression in force for each recipient, found under its key, a form Meta's ``wa_id`` may
        give the same number, or another key Meta used for the same person (the ledger's identities)."""
        return dict(self._ledger.active_suppressions(recipients, now=now))

    def _suppressed_or_capped(self, recipients: list[str], now: datetime) -> dict[str, Decision]:
        """Skips for suppressed recipients and, with a frequency cap, recently messaged ones."""
        s, ledger = self._s, self._ledger
        skips: dict[str, Decision] = {}
        suppressed = self._suppressions(recipients, now)
        for recipient, sup in suppressed.items():
            until = f" until {sup.until.isoformat()}" if sup.until else ""
            details = f"suppressed: {sup.reason}{until}"
            skips[recipient] = Skip(recipient, SkipReason.SUPPRESSED, details, sup.error_code)
        if s.frequency_cap is None:
            return skips
        capped = ledger.recently_messaged(
            [r for r in recipients if r not in suppressed],
            since=now - s.frequency_cap,
            exclude_campaign_id=s.campaign_id,
        )
        details = f"frequency cap: messaged by another campaign within {s.frequency_cap}"
        for recipient in capped:
            skips[recipient] = Skip(recipient, SkipReason.FREQUENCY_CAPPED, details)
        return skips


__all__ = [
    "SKIP_COUNTERS",
    "Decision",
    "Eligibility",
    "HeldElsewhere",
    "Invalid",
    "Send",
    "Skip",
    "SkipReason",
    "count_decision",
]
