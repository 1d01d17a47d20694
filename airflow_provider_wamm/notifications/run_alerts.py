"""``RunAlertNotifier``: alert when a campaign run crosses a threshold (invalid %, failure %, volume).

An Airflow notifier for a send task's ``on_success_callback`` / ``on_failure_callback``. It reads the
counts the task pushed to XCom (its return value, or ``campaign_result`` when it halted), compares them
with the thresholds, and when one is crossed logs a warning and calls the notifiers it wraps (Slack,
e-mail, anything with Airflow's notifier interface, or a plain callable) with the alert lines in the
context as ``wamm_alerts``. The volume change is against the previous run of the same task, as the
run log measured it (``run_log=True`` on the operator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.notifier import BaseNotifier

#: XCom key of the counts a halted or stopped campaign pushed.
HALTED_RESULT_KEY = "campaign_result"


def run_alerts(
    summary: Mapping[str, Any],
    *,
    max_invalid_ratio: float | None = None,
    max_failure_ratio: float | None = None,
    max_volume_change: float | None = None,
) -> list[str]:
    """The thresholds a run's counts cross, one line each (empty: nothing to say).

    :param summary: the operator's counts (its XCom).
    :param max_invalid_ratio: invalid rows / rows read above this alerts.
    :param max_failure_ratio: failed sends / attempted sends above this alerts.
    :param max_volume_change: ``|total / previous total - 1|`` above this alerts (``0.5``: half as many
        or one and a half times as many rows as the previous run); needs the run log.
    """
    campaign = summary.get("campaign_id", "?")
    total = int(summary.get("total") or 0)
    attempted = int(summary.get("sent") or 0) + int(summary.get("failed") or 0)
    alerts: list[str] = []
    if max_invalid_ratio is not None and total:
        ratio = int(summary.get("invalid") or 0) / total
        if ratio > max_invalid_ratio:
            alerts.append(
                f"campaign {campaign}: {ratio:.1%} of the rows invalid (threshold {max_invalid_ratio:.1%})"
            )
    if max_failure_ratio is not None and attempted:
        ratio = int(summary.get("failed") or 0) / attempted
        if ratio > max_failure_ratio:
            codes = ", ".join(f"{c}: {n}" for c, n in dict(summary.get("errors_by_code") or {}).items())
            alerts.append(
                f"campaign {campaign}: {ratio:.1%} of the sends failed (threshold {max_failure_ratio:.1%})"
                + (f"; by code {codes}" if codes else "")
            )
    change = (summary.get("run_log") or {}).get("volume_change")
    if max_volume_change is not None and change is not None and abs(change) > max_volume_change:
        previous = summary["run_log"].get("previous_total")
        alerts.append(
            f"campaign {campaign}: {total} rows, {change:+.0%} against the previous run ({previous}; "
            f"threshold {max_volume_change:.0%})"
        )
    return alerts


class RunAlertNotifier(BaseNotifier):
    """Alert when a send task's run crosses a threshold; use it as the task's callback.

    :param max_invalid_ratio: alert when more than this share of the rows were invalid.
    :param max_failure_ratio: alert when more than this share of the attempted sends failed.
    :param max_volume_change: alert when the rows read changed by more than this share against the
        previous run of the task (needs ``run_log`` on the operator).
    :param notifiers: what to call with the alert: Airflow notifiers (``SlackNotifier(...)``,
        ``SmtpNotifier(...)``) or callables taking the context; the lines are in
        ``context["wamm_alerts"]`` (and ``{{ wamm_alerts }}`` in their templates). Without any, the
        alert is only logged.
    """

    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        max_invalid_ratio: float | None = None,
        max_failure_ratio: float | None = None,
        max_volume_change: float | None = None,
        notifiers: Sequence[Callable[[Any], Any]] = (),
    ) -> None:
        super().__init__()
        for name, value in (
            ("max_invalid_ratio", max_invalid_ratio),
            ("max_failure_ratio", max_failure_ratio),
            ("max_volume_change", max_volume_change),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
        self.max_invalid_ratio = max_invalid_ratio
        self.max_failure_ratio = max_failure_ratio
        self.max_volume_change = max_volume_change
        self.notifiers = list(notifiers)

    def notify(self, context: Any) -> None:
        """Read the task's counts from XCom, and alert if a threshold is crossed."""
        summary = _summary(context)
        if summary is None:
            self.log.warning("RunAlertNotifier: the task pushed no campaign counts; nothing to check")
            return
        alerts = run_alerts(
            summary,
            max_invalid_ratio=self.max_invalid_ratio,
            max_failure_ratio=self.max_failure_ratio,
            max_volume_change=self.max_volume_change,
        )
        if not alerts:
            return
        for line in alerts:
            self.log.warning("%s", line)
        context["wamm_alerts"] = alerts
        for notifier in self.notifiers:
            notifier(context)


def _summary(context: Any) -> Mapping[str, Any] | None:
    """The counts the task instance of ``context`` pushed (its return value, else the halted counts)."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return None
    map_index = getattr(ti, "map_index", -1)
    extra: dict[str, Any] = (
        {"map_indexes": map_index} if isinstance(map_index, int) and map_index >= 0 else {}
    )
    for key in ("return_value", HALTED_RESULT_KEY):
        value = ti.xcom_pull(task_ids=ti.task_id, key=key, **extra)
        if isinstance(value, Mapping) and "campaign_id" in value:
            return value
    return None


__all__ = ["RunAlertNotifier", "run_alerts"]
