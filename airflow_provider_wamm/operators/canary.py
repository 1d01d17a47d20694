"""The operator's canary rollout: ``rollout``, ``canary_settle`` and ``canary_gates``.

A mix-in of :class:`~airflow_provider_wamm.operators.marketing.MarketingMessageOperator`. With
``rollout=[0.05, 1.0]`` a run sends only the first slice, then defers (triggerer, no worker slot) for
``canary_settle`` while the slice's webhooks come in; it then checks the gates
(:mod:`airflow_provider_wamm.campaign.canary`) on the campaign's numbers in the ledger. Pass: the next
slice is sent (the ledger skips everyone already messaged). Fail: the task fails without retries, the
rest is never sent, and the evidence is in the log and in XCom (key ``canary``). A canary that sent
nothing, or whose messages have no status webhook yet, fails its gates (``min_sent``,
``min_answered``) rather than pass them on no evidence; a run whose audience is empty ends without a
canary (nothing to send, ``on_empty`` decides). With
``canary_approval=True`` a person signs off after the first slice's gates pass
(:mod:`airflow_provider_wamm.operators.canary_approval`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.campaign.canary import GateReport, Gates, check_gates, check_rollout, rollout_unit
from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.narrow import narrow_rows
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.hooks.ledger import get_ledger
from airflow_provider_wamm.operators.canary_approval import approval_body, ask_approval, read_answer
from airflow_provider_wamm.operators.extensions import CampaignSteps
from airflow_provider_wamm.triggers.window import SendWindowTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.sdk.execution_time.hitl import HITLUser

#: XCom key of the canary's evidence (each step's gate report).
CANARY_KEY = "canary"


class _Slice(NamedTuple):
    """Where a rollout stands while the task waits: the slice just sent, the campaign, the gate reports."""

    step: int
    campaign_id: str
    reports: list[dict[str, Any]]

    @classmethod
    def saved(cls, event: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> _Slice:
        """The state the task deferred with: its resume ``kwargs``, or the trigger event's ``echo`` when it
        resumed with the event alone."""
        if not kwargs.get("campaign_id") and event and event.get("echo"):
            kwargs = event["echo"]
        return cls(
            int(kwargs.get("step", 0)), str(kwargs.get("campaign_id", "")), [*(kwargs.get("reports") or [])]
        )


class RolloutOptions(CampaignSteps):
    """Canary rollout arguments of the marketing operator.

    :param rollout: Growing shares of the recipients to send step by step, ending with ``1.0``
        (``[0.05, 1.0]``: 5 %, then everyone); each recipient's place is a stable hash of the number and
        the campaign. ``None``: everyone at once.
    :param canary_settle: How long to wait (deferred) after a slice before checking the gates, for its
        status webhooks to arrive.
    :param canary_gates: The gates (:class:`~airflow_provider_wamm.campaign.canary.Gates`):
        ``max_failure_rate`` (0.1), ``max_code_rates`` (``{131048: 0.05, 131049: 0.2, 132015: 0}``),
        ``min_sent`` (1: a canary with no messages fails), ``min_answered`` (1: a canary none of whose
        messages has a status webhook fails), ``bad_quality`` (``["RED"]``, the template's quality from
        Meta's events).
    :param canary_approval: After the first slice's gates pass, ask a person (Airflow's human-in-the-loop
        approval, under "Required actions") whether to send the rest, showing the slice's numbers.
        ``Approve`` goes on; ``Reject`` or no answer stops the rollout and fails the task.
    :param canary_approval_timeout: How long to wait for the answer; ``None``: as long as it takes.
    :param canary_approvers: Who may answer (``[{"id": "ana", "name": "Ana"}]``, Airflow's
        ``assigned_users``); anyone allowed on the DAG by default.
    """

    def __init__(
        self,
        *,
        rollout: Sequence[float] | None = None,
        canary_settle: timedelta = timedelta(minutes=15),
        canary_gates: Mapping[str, Any] | None = None,
        canary_approval: bool = False,
        canary_approval_timeout: timedelta | None = timedelta(hours=24),
        canary_approvers: Sequence[HITLUser] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.rollout = check_rollout(rollout) if rollout is not None else None
            self.canary_gates = Gates.from_options(canary_gates)
        except (ConfigurationError, TypeError, ValueError) as exc:
            raise ValueError(f"canary: {exc}") from None
        if canary_approval and (self.rollout is None or len(self.rollout) < 2):
            raise ValueError("canary: canary_approval needs a rollout of two steps or more, like [0.05, 1.0]")
        self.canary_settle = canary_settle
        self.canary_approval = canary_approval
        self.canary_approval_timeout = canary_approval_timeout
        self.canary_approvers: list[HITLUser] = list(canary_approvers or [])
        self._rollout_step = 0
        self._canary_reports: list[dict[str, Any]] = []
        self._rollout_seen: int | None = None

    def narrow_recipients(
        self, rows: Iterable[Any], settings: CampaignSettings, ledger: Ledger
    ) -> Iterable[Any]:
        """Only the recipients of the slices up to this step."""
        rows = super().narrow_recipients(rows, settings, ledger)
        if self.rollout is None:
            return rows
        share, salt = self.rollout[self._rollout_step], settings.campaign_id
        self._rollout_seen = 0

        def in_slice(digits: str, _fields: Any) -> bool:
            self._rollout_seen = (self._rollout_seen or 0) + 1
            return rollout_unit(digits, salt) < share

        return narrow_rows(
            rows,
            in_slice,
            recipient_field=settings.recipient_field,
            default_region=settings.default_region,
        )

    def extend_summary(self, summary: dict[str, Any]) -> None:
        """``rollout`` in the counts; after a slice that is not the last, defer for the settle time."""
        super().extend_summary(summary)
        if self.rollout is None:
            return
        step = self._rollout_step
        summary["rollout"] = {"step": step, "share": self.rollout[step], "gates": self._canary_reports}
        if self._rollout_seen == 0 and step + 1 < len(self.rollout):
            # Nobody in or out of the slice: no canary to judge, and no slice later may go out unjudged.
            self.log.info(
                "campaign %s: no recipients reached the rollout; nothing to send", summary.get("campaign_id")
            )
            return
        if step + 1 < len(self.rollout) and not summary.get("dry_run"):
            self.log.info(
                "campaign %s: slice %d (%.0f%%) sent; checking the gates in %s",
                summary.get("campaign_id"),
                step,
                100 * self.rollout[step],
                self.canary_settle,
            )
            state = _Slice(step, str(summary.get("campaign_id")), self._canary_reports)._asdict()
            self.defer(
                trigger=SendWindowTrigger(
                    campaign_id=str(summary.get("campaign_id")),
                    moment=utcnow() + self.canary_settle,
                    echo=state,
                ),
                method_name="resume_rollout",
                kwargs=state,
            )

    def resume_rollout(self, context: Context, event: Mapping[str, Any] | None = None, **saved: Any) -> Any:
        """Check the gates on the slices sent so far; send the next slice, or fail with the evidence."""
        step, campaign_id, reports = _Slice.saved(event, saved)
        report = self._gate_report(campaign_id, step)
        self._publish(context, [*reports, report.to_dict()])
        if not report.passed:
            self._stop(campaign_id, step, "; ".join(report.failures), report.to_dict())
        self.log.info("campaign %s: gates passed after slice %d: %s", campaign_id, step, report.to_dict())
        if self.canary_approval and step == 0:
            self._ask_approval(context, step, campaign_id)
        return self._next_slice(context, step)

    def _ask_approval(self, context: Context, step: int, campaign_id: str) -> None:
        """Park the task until a person answers the approval request with the canary's numbers."""
        assert self.rollout is not None
        evidence = self._canary_reports[-1]
        next_share = self.rollout[step + 1]
        self.log.info("campaign %s: waiting for a person to approve the next slice", campaign_id)
        ask_approval(
            context,
            subject=f"Canary of campaign {campaign_id}: send the next slice ({100 * next_share:.0f}%)?",
            body=approval_body(
                evidence, self.canary_gates, next_share=next_share, timeout=self.canary_approval_timeout
            ),
            approvers=self.canary_approvers,
            timeout=self.canary_approval_timeout,
            kwargs=_Slice(step, campaign_id, self._canary_reports)._asdict(),
        )

    def resume_approved(self, context: Context, event: Mapping[str, Any] | None = None, **saved: Any) -> Any:
        """Send the next slice once approved; on a rejection or no answer, fail with the evidence."""
        step, campaign_id, reports = _Slice.saved(None, saved)
        answer = read_answer(event)
        if reports:
            reports[-1] = {**reports[-1], "approval": answer.to_dict()}
        self._publish(context, reports)
        if not answer.approved:
            self._stop(campaign_id, step, answer.describe(), reports[-1] if reports else {})
        self.log.info("campaign %s: next slice approved (%s)", campaign_id, answer.describe())
        return self._next_slice(context, step)

    def _publish(self, context: Context, reports: list[dict[str, Any]]) -> None:
        """Keep the gate reports so far, and show them in XCom (key ``canary``)."""
        self._canary_reports = reports
        context["ti"].xcom_push(key=CANARY_KEY, value=reports)

    def _next_slice(self, context: Context, step: int) -> Any:
        """Send the slice after ``step`` (the ledger skips everyone already messaged)."""
        self._rollout_step = step + 1
        return self.execute(context)

    def _stop(self, campaign_id: str, step: int, why: str, evidence: Mapping[str, Any]) -> NoReturn:
        """Fail the task (no retry): the rollout stopped after ``step``, and the rest was never sent."""
        assert self.rollout is not None
        message = (
            f"Canary of campaign {campaign_id!r} stopped after slice {step} "
            f"({100 * self.rollout[step]:.0f}%): {why}. The rest was not sent. Evidence: {evidence}"
        )
        self.log.error("%s", message)
        raise AirflowFailException(message)

    def _gate_report(self, campaign_id: str, step: int) -> GateReport:
        assert self.rollout is not None
        ledger = get_ledger(self.ledger_conn_id, table_prefix=self.ledger_table_prefix)  # type: ignore[attr-defined]
        try:
            state = ledger.template_state(
                name=self.template_name,  # type: ignore[attr-defined]
                language=self.language,  # type: ignore[attr-defined]
            )
            quality = state.quality_score if state is not None else None
            return check_gates(
                ledger, campaign_id, self.canary_gates, step=step, share=self.rollout[step], quality=quality
            )
        finally:
            ledger.dispose()


__all__ = ["CANARY_KEY", "RolloutOptions"]
