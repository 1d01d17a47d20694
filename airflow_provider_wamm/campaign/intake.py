"""Intake: from the input rows of a campaign to batches of candidate recipients of this shard.

Rows are read lazily, their phone numbers normalised (a business-scoped user id is kept as it is),
rows without a usable number set aside as invalid, repeats of a recent recipient counted as
duplicates, and recipients of other shards dropped.
What is left are :class:`Candidate` recipients, handed on in :class:`IntakeBatch` batches. Nothing here
touches the ledger or the counts of the run: each batch says what it found and the caller records it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.identities import recipient_key
from airflow_provider_wamm.campaign.ledger import SendOutcome
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.sharding import in_shard
from airflow_provider_wamm.campaign.sources import SourceRow, iter_rows
from airflow_provider_wamm.graph.payload import PayloadError
from airflow_provider_wamm.graph.recipients import normalize_phone


class RecentSet:
    """A set remembering only the last ``size`` items (FIFO eviction): cheap dedupe in bounded memory."""

    def __init__(self, size: int) -> None:
        self._size = max(0, size)
        self._items: set[str] = set()
        self._order: deque[str] = deque()

    def __contains__(self, item: str) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: str) -> None:
        """Remember ``item``, forgetting the oldest one when full."""
        if self._size == 0 or item in self._items:
            return
        self._items.add(item)
        self._order.append(item)
        if len(self._order) > self._size:
            self._items.discard(self._order.popleft())


@dataclass(frozen=True, slots=True)
class Candidate:
    """A recipient of this shard, seen for the first time in this batch and the recent window."""

    recipient: str
    """Normalised E.164 digits (the ledger key)."""
    row: SourceRow
    """The input row (its fields personalise the message)."""


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """An input row without a usable phone number."""

    number: int
    """1-based position of the row in the input."""
    reason: str
    """What is wrong (``"phone: is empty"``)."""

    def outcome(self) -> SendOutcome:
        """The ledger row recording it: keyed ``!<row number>``, as it has no recipient."""
        return SendOutcome(
            recipient=f"!{self.number}",
            state=L.INVALID,
            error_details=f"row {self.number}: {self.reason}",
        )


@dataclass(slots=True)
class IntakeBatch:
    """What one read of the input found for this shard."""

    candidates: list[Candidate] = field(default_factory=list)
    """Recipients to check and send to, in input order."""
    invalid: list[InvalidRow] = field(default_factory=list)
    """Rows this shard records as invalid."""
    duplicates: int = 0
    """Rows repeating a recipient of this batch or of the recent window."""

    @property
    def total(self) -> int:
        """Rows of this shard the batch accounts for."""
        return len(self.candidates) + len(self.invalid) + self.duplicates


class Intake:
    """Reads the input of one shard in batches.

    :param recipients: phone strings or mappings (see :func:`~.sources.iter_rows`), read lazily.
    :param settings: the recipient field, the default region, the shard and the dedupe window.
    """

    def __init__(self, recipients: Iterable[Any], settings: CampaignSettings) -> None:
        uses = settings.personaliser.field_uses if settings.personaliser is not None else None
        self._rows: Iterator[SourceRow] = iter_rows(
            recipients, recipient_field=settings.recipient_field, required_fields=uses
        )
        self._field = settings.recipient_field
        self._region = settings.default_region
        self._shard_index = settings.shard_index
        self._shard_count = settings.shard_count
        self._recent = RecentSet(settings.dedupe_window)
        self._exhausted = False

    @property
    def exhausted(self) -> bool:
        """Every input row has been read."""
        return self._exhausted

    def read_batch(self, size: int) -> IntakeBatch:
        """Read until ``size`` candidates (or ``size`` invalid rows) are found, or the input ends."""
        batch = IntakeBatch()
        in_batch: set[str] = set()
        while len(batch.candidates) < size and len(batch.invalid) < size:
            row = next(self._rows, None)
            if row is None:
                self._exhausted = True
                break
            if row.error is not None:
                self._set_aside(batch, row, row.error)
                continue
            try:
                digits = recipient_key(row.phone, self._field) or normalize_phone(
                    row.phone, default_region=self._region, field=self._field
                )
            except PayloadError as exc:
                self._set_aside(batch, row, str(exc))
                continue
            if not in_shard(digits, self._shard_index, self._shard_count):
                continue
            if digits in in_batch or digits in self._recent:
                batch.duplicates += 1
                continue
            in_batch.add(digits)
            self._recent.add(digits)
            batch.candidates.append(Candidate(digits, row))
        return batch

    def _set_aside(self, batch: IntakeBatch, row: SourceRow, reason: str) -> None:
        """Record an invalid row, if it is this shard's: rows without a number are split by position."""
        if row.number % self._shard_count == self._shard_index:
            batch.invalid.append(InvalidRow(row.number, reason))


__all__ = ["Candidate", "Intake", "IntakeBatch", "InvalidRow", "RecentSet"]
