"""The operator's safeguards around a campaign: a stale run is skipped, a bad outcome fails the task.

``max_lateness`` keeps a backfill from turning into a burst of stale messages; ``on_empty`` decides what
a campaign without recipients means; ``max_invalid_ratio`` fails the task when too many input rows were
unusable (a wrong column or a broken export, not a few bad numbers); ``max_failure_ratio`` fails it when
too many sends failed. Both fail without retries: a person should look at the reasons.
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
#: Invalid-row reasons quoted when ``max_invalid_ratio`` fails a task.
TOP_REASONS = 5

_UNITS: tuple[tuple[str, int], ...] = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def describe_duration(duration: timedelta) -> str:
    """``duration`` in words, to its largest unit and the next one: ``"2 days 3 hours"``, ``"45 seconds"``.

    Rounded down to the second; negative durations read as ``"0 seconds"``.
    """
    seconds = max(0, int(duration.total_seconds()))
    counts = []
    for name, size in _UNITS:
        count, seconds = divmod(seconds, size)
        counts.append((count, name))
    first = next((i for i, (count, _name) in enumerate(counts) if count), None)
    if first is None:
        return "0 seconds"
    words = [
        f"{count} {name}{'' if count == 1 else 's'}" for count, name in counts[first : first + 2] if count
    ]
    return " ".join(words)


def check_ratio(value: float | None, name: str) -> float | None:
    """``value`` when it is a share between 0 and 1 (or ``None``); else ``ValueError`` naming ``name``."""
    if value is not None and (isinstance(value, bool) or not 0 <= value <= 1):
        raise ValueError(f"{name!r} must be between 0 and 1 (or None), got {value!r}.")
    return value


def skip_if_too_late(logical_date: datetime | None, max_lateness: timedelta | None, log: Logger) -> None:
    """Skip the task (nothing sent) when the run's logical date is more than ``max_lateness`` old.

    A run without a logical date (a manual trigger) is never late.
    """
    if max_lateness is None or logical_date is None:
        return
    age = datetime.now(UTC) - logical_date
    if age > max_lateness:
        message = (
            f"Skipping the campaign: this run's logical date {logical_date.isoformat()} is "
            f"{describe_duration(age)} old, more than max_lateness ({describe_duration(max_lateness)}). "
            "Nothing was sent. To send it anyway, trigger a new run of the DAG (a run triggered now is not "
            "late), or raise max_lateness in the DAG and clear this task."
        )
        log.warning("%s", message)
        raise AirflowSkipException(message)


def top_reasons(reasons: Mapping[str, Any] | None, limit: int = TOP_REASONS) -> str:
    """The most frequent invalid-row reasons with their counts, most frequent first."""
    ranked = sorted((reasons or {}).items(), key=lambda item: -int(item[1]))[:limit]
    return "; ".join(f"{reason} ({count})" for reason, count in ranked) or "none recorded"


def check_invalid_ratio(summary: Mapping[str, Any], max_invalid_ratio: float | None) -> None:
    """Fail the task when more than ``max_invalid_ratio`` of this shard's rows were invalid."""
    total = int(summary.get("total", 0))
    invalid = int(summary.get("invalid", 0))
    if max_invalid_ratio is None or not total or invalid / total <= max_invalid_ratio:
        return
    raise AirflowFailException(
        f"{invalid} of {total} rows were invalid ({invalid / total:.1%}), more than "
        f"max_invalid_ratio={max_invalid_ratio:.1%}; top reasons: "
        f"{top_reasons(summary.get('invalid_reasons'))}. The valid rows were handled as usual. Fix the "
        "recipients or the personalisation and clear the task: invalid rows are evaluated again and "
        "nobody gets a second message (max_invalid_ratio=None turns this check off)."
    )


def check_outcome(
    summary: Mapping[str, Any],
    on_empty: OnEmpty,
    max_failure_ratio: float | None,
    log: Logger,
    *,
    max_invalid_ratio: float | None = None,
) -> None:
    """Skip or fail the task as ``on_empty`` says when there were no recipients; fail it when more than
    ``max_invalid_ratio`` of the rows were invalid, or more than ``max_failure_ratio`` of the attempted
    sends failed."""
    total = int(summary.get("total", 0))
    if total == 0:
        message = "No recipients: nothing to send."
        if on_empty == "fail":
            raise AirflowFailException(message + " (on_empty='fail')")
        if on_empty == "skip":
            raise AirflowSkipException(message)
        log.info("%s", message)
    check_invalid_ratio(summary, max_invalid_ratio)
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


__all__ = [
    "ATTEMPTED_COUNTS",
    "TOP_REASONS",
    "check_invalid_ratio",
    "check_outcome",
    "check_ratio",
    "describe_duration",
    "skip_if_too_late",
    "top_reasons",
]
