"""One attempt of a campaign shard in the ledger: its run row, heartbeat, claims, outcomes and takeovers.

:class:`Attempt` is everything the bulk sender writes about itself. At start it takes over the claims
of attempts that are over (they become ``unknown``: their request may have left) and records its own
run row, naming the task instance it belongs to when the caller knows it (an opaque ``owner`` and a
``try_number``), so that a newer try of the same task takes over an older try's claims as soon as that
try stopped beating. While it runs it beats a heartbeat, claims recipients just before they are handed
to a worker (writing the outcomes answered since first), gives back the claims of jobs waiting for a
retry, and writes outcomes in batches; at the end it releases what it claimed and never sent, and
records how it ended.

Claims of another attempt that is still alive are never counted as done: :class:`ForeignClaims` keeps
those recipients aside and looks again now and then until each row is final, released (this run then
sends it) or its attempt is over (the row becomes ``unknown``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

from airflow_provider_wamm.campaign.eligibility import Invalid, Skip
from airflow_provider_wamm.campaign.ledger import (
    ExistingSend,
    Ledger,
    RunState,
    SendOutcome,
    SendState,
    Suppression,
    utcnow,
)
from airflow_provider_wamm.campaign.ledger.runs import Liveness
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.workers import Job
from airflow_provider_wamm.graph.recipients import mask_phone

#: Longest pause between two looks at the claims of other attempts.
LOOK_EVERY_MAX_S = 1.0
#: Shortest pause between two looks (with a very short heartbeat interval).
LOOK_EVERY_MIN_S = 0.05


class _RowFields(TypedDict):
    """The fields of a ledger row that name the attempt writing it and the message."""

    attempt_id: str
    shard_index: int
    template_name: str
    language: str
    variant: str | None


class Attempt:
    """The ledger's view of one attempt: run row, heartbeat, claims, outcomes.

    Only the sender's coordinating thread calls it.

    :param ledger: where everything is written.
    :param settings: the campaign (its id, shard, template, batch size, heartbeat and takeover times).
    :param attempt_id: this attempt's id (its rows carry it).
    :param owner: the task instance the attempt belongs to, if known (an opaque name).
    :param try_number: which try of ``owner`` this is.
    """

    def __init__(
        self,
        ledger: Ledger,
        settings: CampaignSettings,
        attempt_id: str,
        *,
        owner: str | None = None,
        try_number: int | None = None,
    ) -> None:
        self.ledger = ledger
        self.s = settings
        self.attempt_id = attempt_id
        self.owner = owner
        self.try_number = try_number
        self.outcomes: list[SendOutcome] = []
        self.suppressions: list[Suppression] = []
        self._give_back: list[str] = []
        self.last_flush = self.last_beat = time.monotonic()
        self._plan = settings.experiment_plan()

    def _row_fields(self) -> _RowFields:
        """What the rows this attempt writes say of it: the attempt, the shard, the template."""
        s = self.s
        return _RowFields(
            attempt_id=self.attempt_id,
            shard_index=s.shard_index,
            template_name=s.template_name,
            language=s.language,
            variant=None,
        )

    def _by_labels(self, recipients: Sequence[str]) -> dict[tuple[str, str, str | None], list[str]]:
        """``recipients`` grouped by what their rows record of the message: one group without an
        experiment, else one per (template, language, group)."""
        s = self.s
        if self._plan is None:
            return {(s.template_name, s.language, None): list(recipients)}
        groups: dict[tuple[str, str, str | None], list[str]] = {}
        for recipient in recipients:
            labels = self._plan.labels(recipient)
            groups.setdefault((labels.template_name, labels.language, labels.variant), []).append(recipient)
        return groups

    def _fields(self, labels: tuple[str, str, str | None]) -> _RowFields:
        fields = self._row_fields()
        fields["template_name"], fields["language"], fields["variant"] = labels
        return fields

    @property
    def liveness(self) -> Liveness:
        """Which other attempts are alive: a recent heartbeat, and an older try of this task instance
        only while its heartbeat is younger than two heartbeat intervals."""
        s = self.s
        return Liveness(
            live_within=timedelta(seconds=s.claims_abandoned_after_s),
            owner=self.owner,
            try_number=self.try_number,
            older_try_live_within=timedelta(seconds=2 * s.heartbeat_interval_s),
        )

    # -- start, heartbeat, end ------------------------------------------------------------------

    def start(self) -> list[str]:
        """Take over the claims of attempts that are over (they become ``unknown``) and record this
        attempt; returns the recipients whose claims were taken over."""
        s = self.s
        stale = self.ledger.take_over_claims(
            s.campaign_id,
            attempt_id=self.attempt_id,
            shard_index=s.shard_index if s.shard_count > 1 else None,
            liveness=self.liveness,
        )
        self.ledger.start_run(
            s.campaign_id,
            self.attempt_id,
            shard_index=s.shard_index,
            shard_count=s.shard_count,
            dry_run=False,
            owner=self.owner,
            try_number=self.try_number,
        )
        self.last_beat = time.monotonic()
        return stale

    def beat(self, now: float) -> None:
        """Record that this attempt is alive, once per ``heartbeat_interval_s`` (its claims are not
        abandoned)."""
        if self.s.dry_run or now - self.last_beat < self.s.heartbeat_interval_s:
            return
        self.last_beat = now
        self.ledger.heartbeat(self.attempt_id)

    def finish(self, state: RunState, summary: Mapping[str, Any]) -> None:
        """Record how the attempt ended, with its counts."""
        self.ledger.finish_run(self.attempt_id, state=state, summary=summary)

    # -- claims ---------------------------------------------------------------------------------

    def claim(self, recipients: Sequence[str]) -> set[str]:
        """Claim ``recipients`` (one transaction) just before their jobs go to the workers; returns those
        this attempt got.

        The outcomes answered since the last hand-over are written first (and claims waiting to be
        given back given back), so that the rows this attempt holds claimed without an outcome never
        exceed the jobs its workers hold: all a crash can leave ``claimed``.
        """
        self.flush(force=True, now=time.monotonic())
        s = self.s
        claimed: set[str] = set()
        for labels, group in self._by_labels(recipients).items():
            claimed |= self.ledger.claim(
                s.campaign_id, group, resend_unknown=s.resend_unknown, now=utcnow(), **self._fields(labels)
            )
        return claimed

    def give_back(self, recipient: str) -> None:
        """Give a claim back soon: its request was answered with an error and waits for a retry, so a
        crash meanwhile must not leave it claimed (it is claimed again when its retry is due)."""
        self._give_back.append(recipient)

    def give_back_now(self) -> None:
        """Give back the claims of jobs waiting for a retry (one transaction)."""
        if self._give_back:
            recipients, self._give_back = self._give_back, []
            self.ledger.release_claims(self.s.campaign_id, attempt_id=self.attempt_id, recipients=recipients)

    def release_all(self) -> int:
        """Release every claim of this attempt still ``claimed`` (never sent); returns how many, not
        counting the claims of jobs waiting for a retry (given back already)."""
        self.give_back_now()
        return self.ledger.release_claims(self.s.campaign_id, attempt_id=self.attempt_id)

    def take_over(self, recipients: Sequence[str]) -> list[str]:
        """Record ``unknown`` the claims on ``recipients`` of attempts that are over; returns those
        recipients."""
        return self.ledger.take_over_claims(
            self.s.campaign_id, attempt_id=self.attempt_id, liveness=self.liveness, recipients=recipients
        )

    def rows(self, recipients: Sequence[str]) -> dict[str, ExistingSend]:
        """The ledger rows of ``recipients`` (absent ones are missing)."""
        return self.ledger.existing_sends(self.s.campaign_id, recipients)

    # -- outcomes -------------------------------------------------------------------------------

    def record(self, outcome: SendOutcome) -> None:
        """Queue the outcome of a claimed recipient (written by :meth:`flush`)."""
        self.outcomes.append(outcome)

    def suppress(self, suppression: Suppression) -> None:
        """Queue a suppression for later campaigns (written by :meth:`flush`)."""
        self.suppressions.append(suppression)

    def record_unsent(self, outcomes: Sequence[SendOutcome], *, now: datetime | None = None) -> None:
        """Record recipients that are not sent (``skipped``/``invalid``) at once."""
        if self._plan is None:
            self.ledger.record_unsent(self.s.campaign_id, outcomes, now=now, **self._row_fields())
            return
        by_recipient = {o.recipient: o for o in outcomes}
        for labels, group in self._by_labels(list(by_recipient)).items():
            batch = [by_recipient[r] for r in group]
            self.ledger.record_unsent(self.s.campaign_id, batch, now=now, **self._fields(labels))

    def flush(self, *, force: bool, now: float) -> None:
        """Write queued outcomes, suppressions and claims to give back: a batch full, a second gone by,
        or ``force``."""
        if not self.outcomes and not self.suppressions and not self._give_back:
            return
        if not force and len(self.outcomes) < self.s.batch_size and now - self.last_flush < 1.0:
            return
        if self.outcomes:
            self.ledger.record_results(self.s.campaign_id, self.outcomes, attempt_id=self.attempt_id)
            self.outcomes = []
        if self.suppressions:
            self.ledger.add_suppressions(self.suppressions)
            self.suppressions = []
        self.give_back_now()
        self.last_flush = now


@dataclass(slots=True)
class Settled:
    """What one look at the recipients held by other attempts found."""

    send: list[Job] = field(default_factory=list)
    """Released, or final but open to a new request: this run claims and sends them."""
    unsent: list[Skip | Invalid] = field(default_factory=list)
    """Released, or open to a new request, but this run does not send them: what it does instead."""
    done: int = 0
    """Final: counted as already done."""
    taken_over: list[str] = field(default_factory=list)
    """Their attempt was over: recorded ``unknown`` by this look (counted among ``done`` too, unless
    ``resend_unknown`` sends them again)."""


class ForeignClaims:
    """Recipients another attempt holds claimed, kept aside with their payload until the claim settles.

    Bounded by what the other attempts hold: an attempt claims only the jobs it hands to its workers.

    :param attempt: this attempt (reads the rows, takes over claims of attempts that are over).
    """

    def __init__(self, attempt: Attempt) -> None:
        s = attempt.s
        self._attempt = attempt
        self._jobs: dict[str, Job] = {}
        self._unsent: dict[str, Skip | Invalid] = {}
        self._every_s = min(LOOK_EVERY_MAX_S, max(LOOK_EVERY_MIN_S, s.heartbeat_interval_s))
        # An attempt that stopped beating before the wait began is over within claims_abandoned_after_s;
        # two looks more make sure the run sees it.
        self._longest_wait_s = s.claims_abandoned_after_s + 2 * self._every_s
        self._next_look = 0.0
        self._wait_until = math.inf

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, recipient: object) -> bool:
        return recipient in self._jobs

    def add(self, job: Job, unsent: Skip | Invalid | None = None) -> None:
        """Keep ``job`` aside until its recipient's claim settles; with ``unsent``, what to do instead
        of sending it if the claim is released (its attempt being over makes it ``unknown`` all the
        same)."""
        self._jobs[job.recipient] = job
        if unsent is not None:
            self._unsent[job.recipient] = unsent

    def due(self, now: float) -> bool:
        """Whether it is time to look at the held claims again."""
        return bool(self._jobs) and now >= self._next_look

    def settle(self, now: float) -> Settled:
        """Look at the held claims once: take over those of attempts that are over, hand back the
        recipients that were released or may be sent, count the final ones."""
        self._next_look = now + self._every_s
        recipients = sorted(self._jobs)
        settled = Settled(taken_over=self._attempt.take_over(recipients))
        rows = self._attempt.rows(recipients)
        at = utcnow()
        resend_unknown = self._attempt.s.resend_unknown
        for recipient in recipients:
            row = rows.get(recipient)
            if row is not None and row.state == SendState.CLAIMED:
                continue  # still held by an attempt that is alive
            job, unsent = self._jobs.pop(recipient), self._unsent.pop(recipient, None)
            if row is not None and not row.reclaimable(at, resend_unknown=resend_unknown):
                settled.done += 1
            elif unsent is not None:
                settled.unsent.append(unsent)
            else:
                settled.send.append(job)
        return settled

    def waited_out(self, now: float) -> bool:
        """Whether the run, its own work done, has waited long enough for the held claims: any attempt
        that stopped beating is over by then. The first call starts the clock."""
        if self._wait_until == math.inf:
            self._wait_until = now + self._longest_wait_s
        return now >= self._wait_until

    def drop(self) -> int:
        """Stop waiting; returns how many recipients were still held by another attempt."""
        count = len(self._jobs)
        self._jobs.clear()
        self._unsent.clear()
        return count


def log_taken_over(log: Any, campaign_id: str, recipients: Sequence[str], how: str) -> None:
    """Name (masked) the recipients whose claims a run recorded ``unknown``: they may or may not have
    the message, and a person deciding on ``resend_unknown`` needs to know who they are."""
    if not recipients:
        return
    log.warning(
        "campaign %s: %d recipients %s; recorded as unknown (not sent again unless resend_unknown=True): %s",
        campaign_id,
        len(recipients),
        how,
        ", ".join(mask_phone(r) for r in recipients),
    )


__all__ = ["LOOK_EVERY_MAX_S", "LOOK_EVERY_MIN_S", "Attempt", "ForeignClaims", "Settled", "log_taken_over"]
