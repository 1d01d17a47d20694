"""The operator's reaction to Meta's signals while it sends: template pauses and messaging limits.

The send operator gives its campaign guards (:mod:`airflow_provider_wamm.campaign.guards`): the template's
state from the ledger's stored webhooks, and the messaging limit's budget. When one trips, the campaign
stops cleanly and this module decides, by ``on_template_paused`` and ``on_messaging_limit``, whether the
task defers (:class:`~airflow_provider_wamm.triggers.resume.CampaignResumeTrigger`, then
``execute_complete`` resumes the same campaign: nobody gets a second message) or fails with what
happened. A disabled or re-categorised template always fails: waiting cannot help.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_wamm.campaign.guards import CampaignDeferred, Guard, Guards, TemplatePaused, Trip
from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.campaign.pauses import TemplateGuard
from airflow_provider_wamm.campaign.result import CampaignHalted
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.graph.account_health import AccountHealth
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook
from airflow_provider_wamm.operators.account_preflight import check_account, limit_guard
from airflow_provider_wamm.operators.arguments import check_choice
from airflow_provider_wamm.triggers.resume import EVENT_FAILED, CampaignResumeTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: What to do when the campaign's template is paused mid-run (a disabled one always fails the task).
OnTemplatePaused = Literal["defer", "fail"]
#: What to do when the campaign would take the business past its messaging limit.
OnMessagingLimit = Literal["defer", "fail", "warn"]

#: Values of ``on_template_paused``.
ON_TEMPLATE_PAUSED: tuple[OnTemplatePaused, ...] = get_args(OnTemplatePaused)
#: Values of ``on_messaging_limit``.
ON_MESSAGING_LIMIT: tuple[OnMessagingLimit, ...] = get_args(OnMessagingLimit)

#: XCom key of the counts pushed when the campaign defers (or fails) on a signal.
DEFERRED_RESULT_KEY = "campaign_deferred"
#: A deferred paused campaign looks at the template again after this long without news (Meta lifts a
#: first pause after 3 hours).
PAUSE_RECHECK = timedelta(hours=3)
#: Template state reported this long before the preflight's read still counts (Meta's webhook times
#: are whole seconds).
PREFLIGHT_SLACK = timedelta(seconds=5)
#: Halting codes that are the template's state, with the trip each stands for.
_TEMPLATE_CODES: dict[int, tuple[str, bool]] = {
    132015: ("PAUSED", False),
    132016: ("DISABLED", True),
}


class SignalAware(Protocol):
    """What this module reads of the send operator."""

    template_name: str
    language: str
    ledger_conn_id: str | None
    ledger_table_prefix: str
    on_template_paused: OnTemplatePaused
    on_messaging_limit: OnMessagingLimit
    signal_poll_interval: float
    preflight_at: datetime | None
    account: AccountHealth | None
    account_waba_id: str | None

    @property
    def log(self) -> Any:
        """The task's logger."""
        ...

    def defer(self, *, trigger: Any, method_name: str, kwargs: Any = ..., timeout: Any = ...) -> Any:
        """BaseOperator.defer."""
        ...


def check_on_template_paused(value: str) -> OnTemplatePaused:
    """``value`` as an :data:`OnTemplatePaused` option; ``ValueError`` naming the options otherwise."""
    return check_choice("on_template_paused", value, ON_TEMPLATE_PAUSED)


def check_on_messaging_limit(value: str) -> OnMessagingLimit:
    """``value`` as an :data:`OnMessagingLimit` option; ``ValueError`` naming the options otherwise."""
    return check_choice("on_messaging_limit", value, ON_MESSAGING_LIMIT)


def check_poll_interval(value: float) -> float:
    """A positive number of seconds; ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"'signal_poll_interval' must be a positive number of seconds, got {value!r}.")
    return float(value)


class SignalOptions(BaseOperator):
    """What the marketing operator does on Meta's signals while it sends, and its resumption.

    :param on_template_paused: When Meta pauses the template (read by the preflight, stored by the
        webhook receiver mid-run, or answered 132015): ``"defer"`` (default) stops claiming, releases
        what was not sent and defers the task until the template is APPROVED again, then resumes the
        campaign; ``"fail"`` fails the task. A disabled or re-categorised template always fails it.
    :param on_messaging_limit: When the campaign would take the business past its messaging limit:
        ``"defer"`` (send up to the limit, defer until the 24-hour window rolls over, resume), ``"fail"``
        (fail before sending) or ``"warn"`` (log and send anyway).
    :param signal_poll_interval: Seconds between two looks at the ledger's signals while sending, and
        while deferred.
    """

    def __init__(
        self,
        *,
        on_template_paused: OnTemplatePaused = "defer",
        on_messaging_limit: OnMessagingLimit = "defer",
        signal_poll_interval: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_template_paused = check_on_template_paused(on_template_paused)
        self.on_messaging_limit = check_on_messaging_limit(on_messaging_limit)
        self.signal_poll_interval = check_poll_interval(signal_poll_interval)
        self.preflight_at: datetime | None = None  # when the preflight read the template (guards trust it)
        self.account: AccountHealth | None = None  # what the account check read
        self.account_waba_id: str | None = None

    def check_account(self, hook: WhatsAppHook, *, explicit: bool) -> None:
        """The account check before the first send (health, onboarding, messaging limit)."""
        self.account_waba_id = hook.waba_id
        self.account = check_account(hook, explicit=explicit, log=self.log)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume the campaign after a deferral (its template approved again, its limit window rolled)."""
        check_resume_event(event)
        return self.execute(context)


def campaign_guards(
    op: SignalAware, ledger: Ledger, settings: CampaignSettings, recipients: Iterable[Any]
) -> Guards:
    """The guards of the operator's campaign: the stored state of each template it sends (an
    experiment's variants may send others), and the messaging limit's budget."""
    since = op.preflight_at - PREFLIGHT_SLACK if op.preflight_at is not None else None
    plan = settings.experiment_plan()
    specs = [plan.base, *(plan.message_of(v.name) for v in plan.experiment.variants)] if plan else []
    templates = dict.fromkeys(
        [(settings.template_name, settings.language)] + [(m.template_name, m.language) for m in specs]
    )
    guards: list[Guard] = [TemplateGuard(ledger, name, language, since=since) for name, language in templates]
    limit = limit_guard(
        op.on_messaging_limit,
        ledger,
        settings,
        op.account,
        recipients=recipients,
        waba_id=op.account_waba_id,
        log=op.log,
    )
    if limit is not None:
        guards.append(limit)
    return Guards(guards, interval_s=op.signal_poll_interval)


def template_pause_of(halted: CampaignHalted) -> TemplatePaused | None:
    """A halt on 132015 (paused) or 132016 (disabled) as a template pause (``None`` for other codes)."""
    found = _TEMPLATE_CODES.get(halted.error.code or 0)
    if found is None:
        return None
    status, final = found
    message = f"Meta answered {halted.error.code}: the template is {status} ({halted.error})"
    if final:
        return TemplatePaused(Trip("template_disabled", message, final=True, status=status), halted.result)
    return TemplatePaused(Trip("template_paused", message, status=status), halted.result)


def _fail_message(deferred: CampaignDeferred, option: str | None) -> str:
    """Why the task fails, with its counts and what to do."""
    r = deferred.result
    counts = f" after {r.sent} messages ({r.released} released unsent)" if r is not None else ""
    text = f"Campaign stopped{counts}: {deferred.trip.message}."
    if option is not None:
        text += f" Set {option}='defer' to wait instead."
    if r is None:
        return text + " Nothing was sent."
    return text + " Clearing the task resumes the campaign; nobody gets a second message."


def defer_or_fail(op: SignalAware, context: Context, deferred: CampaignDeferred) -> None:
    """Push the counts (XCom ``campaign_deferred``), then defer the task until the campaign may resume,
    or fail it (``AirflowFailException``) by the operator's options."""
    trip = deferred.trip
    payload = {"trip": trip.to_dict(), "result": deferred.result.to_dict() if deferred.result else None}
    try:
        context["ti"].xcom_push(key=DEFERRED_RESULT_KEY, value=payload)
    except Exception as exc:  # the counts are informative; their loss must not hide the stop
        op.log.warning("could not push the counts of the stopped campaign to XCom: %s", exc)
    is_limit = trip.kind == "messaging_limit"
    option = "on_messaging_limit" if is_limit else "on_template_paused"
    choice = op.on_messaging_limit if is_limit else op.on_template_paused
    if trip.final:
        raise AirflowFailException(_fail_message(deferred, None)) from deferred
    if choice == "fail":
        raise AirflowFailException(_fail_message(deferred, option)) from deferred
    op.log.warning("%s; the task defers until the campaign may resume.", deferred)
    campaign_id = deferred.result.campaign_id if deferred.result is not None else ""
    now = utcnow()
    trigger = CampaignResumeTrigger(
        campaign_id=campaign_id,
        stopped_at=now,
        template_name=None if is_limit else op.template_name,
        language=None if is_limit else op.language,
        resume_at=trip.resume_at,
        recheck_at=None if is_limit else now + PAUSE_RECHECK,
        ledger_conn_id=op.ledger_conn_id,
        ledger_table_prefix=op.ledger_table_prefix,
        poll_interval=op.signal_poll_interval,
    )
    op.defer(trigger=trigger, method_name="execute_complete")


def check_resume_event(event: Mapping[str, Any] | None) -> None:
    """Fail the task when the trigger says waiting cannot help (the template was disabled meanwhile)."""
    if event is not None and event.get("status") == EVENT_FAILED:
        raise AirflowFailException(
            f"Campaign {event.get('campaign_id')!r} cannot resume: {event.get('message')}. Nothing more "
            "was sent."
        )


__all__ = [
    "DEFERRED_RESULT_KEY",
    "ON_MESSAGING_LIMIT",
    "ON_TEMPLATE_PAUSED",
    "PAUSE_RECHECK",
    "OnMessagingLimit",
    "OnTemplatePaused",
    "SignalOptions",
    "campaign_guards",
    "check_on_messaging_limit",
    "check_on_template_paused",
    "check_poll_interval",
    "check_resume_event",
    "defer_or_fail",
    "template_pause_of",
]
