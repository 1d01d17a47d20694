"""A person's sign-off after a canary's first slice, with Airflow's human-in-the-loop approval.

With ``canary_approval=True`` the send task, once the first slice's gates have passed, asks whether
to go on. It writes an approval request the way Airflow's ``ApprovalOperator`` does (options
``Approve`` and ``Reject``, the canary's numbers in the body), and waits in Airflow's
``awaiting_input`` state: no worker slot, no trigger. The request appears under "Required actions" in
the UI (and ``/api/v2/.../hitlDetails`` in the REST API); the answer resumes the task. ``Approve``
sends the next slice; ``Reject``, or no answer within the timeout, stops the rollout: the rest is never
sent (nobody beyond the slice was claimed), and the task fails with the evidence.

Airflow keeps one approval request per task try (its subject and body are written once), so the
sign-off comes once, after the first slice, where the canary's numbers decide; later slices follow the
gates alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk.exceptions import TaskAwaitingInput

from airflow_provider_wamm.campaign.canary import Gates

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.sdk.execution_time.hitl import HITLUser

#: The two answers, as Airflow's ``ApprovalOperator`` names them.
APPROVE, REJECT = "Approve", "Reject"
#: The operator method the answer resumes.
RESUME_METHOD = "resume_approved"


@dataclass(frozen=True)
class Answer:
    """What came back from the approval request."""

    approved: bool
    chosen: str | None
    by: str | None
    at: str | None
    timed_out: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for XCom and the log."""
        return asdict(self)

    def describe(self) -> str:
        """One phrase for the log and the failure message."""
        if self.timed_out and not self.by:
            return "no answer before the approval timeout"
        return f"{self.chosen} by {self.by or 'someone'}" + (f" at {self.at}" if self.at else "")


def read_answer(event: Mapping[str, Any] | None) -> Answer:
    """The answer in the event Airflow resumes the task with (a response, the timeout default, or an
    error when the timeout passed with no default)."""
    event = event or {}
    if "error" in event:
        return Answer(approved=False, chosen=None, by=None, at=None, timed_out=True)
    chosen = list(event.get("chosen_options") or [])
    user = event.get("responded_by_user") or {}
    at = event.get("responded_at")
    return Answer(
        approved=chosen == [APPROVE],
        chosen=chosen[0] if chosen else None,
        by=str(user.get("name") or user.get("id")) if user else None,
        at=at.isoformat() if isinstance(at, datetime) else (str(at) if at else None),
        timed_out=bool(event.get("timedout")),
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def approval_body(
    report: Mapping[str, Any], gates: Gates, *, next_share: float, timeout: timedelta | None
) -> str:
    """The request's body (Markdown): the slice's numbers, the gates it passed, what each answer does."""
    lines = [
        f"The first slice ({_percent(report['share'])} of the recipients) is sent and its gates passed.",
        "",
        "| | |",
        "| --- | --- |",
        f"| messages sent | {report['sent']} |",
        f"| with a status webhook | {report.get('answered', 0)} of {report.get('taken', 0)} taken by Meta |",
        f"| failed | {report['failed']} ({_percent(report['failure_rate'])}) |",
    ]
    lines += [f"| failed with {code} | {count} |" for code, count in sorted(report["by_code"].items())]
    lines.append(f"| template quality | {report.get('template_quality') or 'not reported'} |")
    limits = ", ".join(f"{code} ≤ {_percent(limit)}" for code, limit in sorted(gates.max_code_rates.items()))
    lines += [
        "",
        f"Gates: failure rate ≤ {_percent(gates.max_failure_rate)}; {limits}; "
        f"quality not {', '.join(gates.bad_quality) or 'checked'}.",
        "",
        f"**{APPROVE}** sends the next slice (up to {_percent(next_share)}). "
        f"**{REJECT}** stops the rollout: nobody else is messaged.",
    ]
    if timeout is not None:
        lines.append(f"No answer within {timeout} stops it too.")
    return "\n".join(lines)


def ask_approval(
    context: Context,
    *,
    subject: str,
    body: str,
    approvers: Sequence[HITLUser] | None,
    timeout: timedelta | None,
    kwargs: dict[str, Any],
) -> NoReturn:
    """Write the approval request for this task instance and park the task until it is answered."""
    # Imported here: Airflow does not document this module as public, so a move of it breaks only
    # campaigns that ask for a sign-off, not the parsing of every DAG that imports the operator.
    from airflow.sdk.execution_time.hitl import upsert_hitl_detail

    upsert_hitl_detail(
        ti_id=context["ti"].id,
        options=[APPROVE, REJECT],
        subject=subject,
        body=body,
        defaults=[REJECT] if timeout is not None else None,
        multiple=False,
        params={},
        assigned_users=list(approvers) if approvers else None,
    )
    raise TaskAwaitingInput(method_name=RESUME_METHOD, kwargs=kwargs, timeout=timeout)


__all__ = ["APPROVE", "REJECT", "RESUME_METHOD", "Answer", "approval_body", "ask_approval", "read_answer"]
