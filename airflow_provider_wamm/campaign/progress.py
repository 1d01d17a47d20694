"""The log lines of a campaign run: what it starts to do, how far it is (with an ETA), how it ended.

Lines carry counts, and the most frequent reasons rows were invalid; phone numbers never appear in
them (reasons quoting a row's value have its phone numbers masked where they are made).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sized
from typing import Any

from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.settings import CampaignSettings

#: Invalid-row reasons the summary lists.
TOP_INVALID_REASONS = 5


def expected_rows(recipients: Iterable[Any], settings: CampaignSettings) -> int | None:
    """Rows this shard should see: ``total_hint`` or the input's length, split over the shards."""
    expected = settings.total_hint
    if expected is None and isinstance(recipients, Sized):
        expected = len(recipients)
    return math.ceil(expected / settings.shard_count) if expected is not None else None


class ProgressLog:
    """Writes a run's start line, a progress line every ``progress_interval_s`` and the summary.

    :param log: a ``logging.Logger`` or a compatible one (the Airflow task logger).
    :param settings: the run's settings.
    :param expected: rows this shard should see (for the ETA), if known.
    :param started: when the run started (monotonic seconds).
    """

    def __init__(self, log: Any, settings: CampaignSettings, expected: int | None, started: float) -> None:
        self._log = log
        self._s = settings
        self._expected = expected
        self._started = started
        self._last = started

    def start(self) -> None:
        """What the run is about to do."""
        s = self._s
        self._log.info(
            "campaign %s: sending template %s/%s%s, shard %d/%d, up to %g msg/s with %d workers%s",
            s.campaign_id,
            s.template_name,
            s.language,
            " (dry run)" if s.dry_run else "",
            s.shard_index,
            s.shard_count,
            s.max_messages_per_second,
            s.concurrency,
            f", about {self._expected} recipients" if self._expected is not None else "",
        )

    def tick(
        self, now: float, result: CampaignResult, *, processed: int, in_flight: int, rate: float
    ) -> None:
        """A progress line, if ``progress_interval_s`` went by since the last one.

        :param processed: rows of this shard fully handled so far.
        :param in_flight: requests sent and not yet answered.
        :param rate: the cap in force.
        """
        if now - self._last < self._s.progress_interval_s:
            return
        self._last = now
        r = result
        elapsed = now - self._started
        sent_rate = r.sent / elapsed if elapsed > 0 else 0.0
        done_rate = processed / elapsed if elapsed > 0 else 0.0
        eta = ""
        if self._expected and done_rate > 0:
            remaining = max(0, self._expected - processed)
            eta = f", ETA {remaining / done_rate:.0f} s"
        of = f"/{self._expected}" if self._expected else ""
        self._log.info(
            "campaign %s: %d%s rows done, %d sent (%.1f msg/s, cap %g), %d failed, %d unknown, "
            "%d skipped, %d suppressed, %d invalid, %d duplicates, %d in flight%s",
            self._s.campaign_id,
            processed,
            of,
            r.sent,
            sent_rate,
            rate,
            r.failed,
            r.unknown,
            r.skipped,
            r.suppressed,
            r.invalid,
            r.duplicates,
            in_flight,
            eta,
        )

    def summary(self, result: CampaignResult) -> None:
        """How the run ended, and why rows were invalid if any were."""
        r = result
        self._log.info(
            "campaign %s%s: %d rows, %d sent (%d accepted, %d held, %d paused), %d failed, %d unknown, "
            "%d taken over as unknown, %d still claimed by another attempt, "
            "%d skipped, %d suppressed, %d invalid, %d duplicates%s in %.1f s (%.1f msg/s)",
            r.campaign_id,
            " (dry run)" if r.dry_run else "",
            r.total,
            r.sent,
            r.accepted,
            r.held,
            r.paused,
            r.failed,
            r.unknown,
            r.stale_unknown,
            r.foreign_claimed,
            r.skipped,
            r.suppressed,
            r.invalid,
            r.duplicates,
            f", {r.would_send} would be sent" if r.dry_run else "",
            r.elapsed_s,
            r.messages_per_second,
        )
        if r.invalid:
            self._log.warning(
                "campaign %s: %d of %d rows invalid; most frequent reasons: %s",
                r.campaign_id,
                r.invalid,
                r.total,
                "; ".join(
                    f"{count} x {reason}"
                    for reason, count in r.invalid_reasons.most_common(TOP_INVALID_REASONS)
                ),
            )


__all__ = ["TOP_INVALID_REASONS", "ProgressLog", "expected_rows"]
