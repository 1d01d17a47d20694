"""The operator's safeguards around a campaign: a stale run is skipped, a bad outcome fails the task.

``max_lateness`` keeps a backfill from turning into a burst of stale messages; ``on_empty`` decides what
a campaign without recipients means; ``max_failure_ratio`` fails the task (without retries: a person
should look at the errors) when too many sends failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_wamm.operators.arguments import OnEmpty

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

#: Counts of the sends that were attempted (a request went out or was meant to).
ATTEMPTED_COUNTS: tuple[str, ...] = ("accepted", "held", "paused", "failed", "unknown")


def skip_if_too_late(logical_date: datetime | None, max_lateness: timedelta | None, log: Logger) -> None:
    """Skip the task (nothing sent) when the run's logical date is more than ``max_lateness`` old.

    A run without a logical date (a manual trigger) is never late.
    """
    if max_lateness is None or logical_date is None:
        return
    age = datetime.now(UTC) - logical_date
    if age > max_lateness:
        message = (
            f"Skipping the campaign: this run's logical date {logical_date.isoformat()} is {age} old, "
            f"more than max_lateness={max_lateness}. Nothing was sent. Clear the task with a "
            "larger max_lateness to send it anyway."
        )
        log.warning("%s", message)
        raise AirflowSkipException(message)


def check_outcome(
    summary: Mapping[str, Any], on_empty: OnEmpty, max_failure_ratio: float | None, log: Logger
) -> None:
    """Skip or fail the task as ``on_empty`` says when there were no recipients; fail it when more than
    ``max_failure_ratio`` of the attempted sends failed."""
    total = int(summary.get("total", 0))
    if total == 0:
        message = "No recipients: nothing to send."
        if on_empty == "fail":
            raise AirflowFailException(message + " (on_empty='fail')")
        if on_empty == "skip":
            raise AirflowSkipException(message)
        log.info("%s", message)
    if max_failure_ratio is None:
        return
    attempted = sum(int(summary.get(k, 0)) for k in ATTEMPTED_COUNTS)
    failed = int(summary.get("failed", 0))
    if attempted and failed / attempted > max_failure_ratio:
        raise AirflowFailException(
            f"{failed} of {attempted} sends failed ({failed / attempted:.1%}), more than "
            f"max_failure_ratio={max_failure_ratio:.1%}; errors by code: "
            f"{summary.get('errors_by_code')}. Clearing the task resumes the campaign: transient "
            "failures are retried, permanent ones are not."
        )


__all__ = ["ATTEMPTED_COUNTS", "check_outcome", "skip_if_too_late"]
