"""The experiment arguments of ``MarketingMessageOperator``: holdout, variants, global control group.

A mix-in of the operator (so its arguments work with ``partial()``/``expand()`` like the operator's
own), kept apart so that the operator only passes them on: they are checked here when the DAG is
parsed (a wrong share or an unknown variant setting fails the parse, naming the argument), turned into
an :class:`~airflow_provider_wamm.campaign.experiments.Experiment` when the task runs, and every
variant's template is checked before the first send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_wamm.campaign.experiments import Experiment, GlobalControl, Variant
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.winner import (
    NO_WINNER_CHOICES,
    WINNER_METRICS,
    NoWinner,
    WinnerMetric,
    decide,
    decision_dict,
    winner_readout,
)
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.hooks.ledger import DEFAULT_TABLE_PREFIX, get_ledger
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook
from airflow_provider_wamm.operators.preflight import check_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.sdk.types import Logger

#: XCom key of the test slice's counts (pushed before the task defers for the winner).
TEST_RESULT_KEY = "test_result"
#: XCom key of the winner decision: the variant sent to the rest, the test and its numbers.
WINNER_KEY = "winner"


@dataclass(frozen=True)
class ExperimentOptions:
    """The operator's experiment arguments, as given (see ``MarketingMessageOperator``).

    :param holdout: share of the campaign's recipients held out (recorded ``skipped``, reason
        ``holdout``), in ``[0, 1)``.
    :param variants: the arms of an A/B/n test: dicts with a ``name``, a ``weight`` and the settings the
        variant changes (``template_name``, ``language``, ``body_parameters``, ``header``, ``buttons``,
        ``components``, ``product_policy``).
    :param global_control: ``{"name": ..., "share": ...}``: a stable share of all recipients kept out of
        every campaign that names the same group.
    :param experiment_key: salts every draw; default the campaign id. Keep it fixed for everything that
        must agree on the groups (the send, a later attribution).
    :param test_share: share of the sent recipients in the test slice (the rest waits for the winner).
    :param winner: the variant the rest is sent (set once the test picked it).
    """

    holdout: float = 0.0
    variants: Sequence[Mapping[str, Any]] | None = None
    global_control: Mapping[str, Any] | None = None
    experiment_key: str | None = None
    test_share: float = 1.0
    winner: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether any experiment argument was given."""
        return bool(self.holdout or self.variants or self.global_control or self.test_share != 1)

    def check(self) -> ExperimentOptions:
        """Refuse invalid arguments now (at DAG parse time), naming the argument; returns ``self``."""
        if self.enabled:
            try:
                self.experiment("parse-check")
            except ConfigurationError as exc:
                raise ValueError(f"experiment arguments: {exc}") from None
        return self

    def experiment(self, campaign_id: str) -> Experiment | None:
        """The experiment of a campaign (``None`` when no experiment argument was given).

        :raises ConfigurationError: an argument is invalid.
        """
        if not self.enabled:
            return None
        gc = self.global_control
        return Experiment(
            key=self.experiment_key or campaign_id,
            holdout=self.holdout,
            variants=[Variant.from_dict(v) for v in self.variants or ()],
            global_control=None if gc is None else GlobalControl(**dict(gc)),
            test_share=self.test_share,
            winner=self.winner,
        )


class ExperimentArguments(BaseOperator):
    """Experiment arguments of the marketing operator (see the experiments recipe).

    :param holdout: Share of the recipients held out of the campaign (recorded ``skipped``, reason
        ``holdout``), chosen by a stable hash; the baseline of the lift.
    :param variants: A/B/n arms: ``[{"name": "A", "weight": 1}, {"name": "B", "weight": 1,
        "template_name": "spring_v2"}]``; each recipient gets one, by the same stable hash. A variant may
        change ``template_name``, ``language``, ``body_parameters``, ``header``, ``buttons``,
        ``components`` or ``product_policy``.
    :param global_control: ``{"name": "brand-2026", "share": 0.05}``: recipients kept out of every
        campaign naming this group.
    :param experiment_key: Salts the holdout and variant draws (default: the campaign id).
    :param test_share: Winner to the rest: send the variants to this share of the recipients first
        (e.g. ``0.2``), defer for ``winner_wait``, pick the winner on ``winner_metric`` with a
        significance test, then send the winner to the rest. ``1`` (default): no test slice.
    :param winner_wait: How long the test slice is given before the winner is picked (the task defers).
    :param winner_metric: ``"read"`` or ``"click"``: what counts as a success of a test message.
    :param winner_alpha: Significance level of the winner test.
    :param on_no_winner: When no variant wins significantly: ``"first"`` sends the first variant to the
        rest, ``"leader"`` the one with the best rate anyway, ``"none"`` nothing.
    """

    def __init__(
        self,
        *,
        holdout: float = 0.0,
        variants: Sequence[Mapping[str, Any]] | None = None,
        global_control: Mapping[str, Any] | None = None,
        experiment_key: str | None = None,
        test_share: float = 1.0,
        winner_wait: timedelta = timedelta(hours=4),
        winner_metric: WinnerMetric = "read",
        winner_alpha: float = 0.05,
        on_no_winner: NoWinner = "first",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.holdout = holdout
        self.variants = variants
        self.global_control = global_control
        self.experiment_key = experiment_key
        self.test_share = test_share
        self.winner_wait = winner_wait
        self.winner_metric: WinnerMetric = _choice("winner_metric", winner_metric, WINNER_METRICS)
        self.winner_alpha = winner_alpha
        self.on_no_winner: NoWinner = _choice("on_no_winner", on_no_winner, NO_WINNER_CHOICES)
        self.winner_decision: dict[str, Any] | None = None
        self.experiment_options().check()
        if test_share != 1 and len(variants or ()) < 2:
            raise ValueError("test_share needs two variants or more to test")

    def experiment_options(self) -> ExperimentOptions:
        """The arguments as one value (with the winner, once picked)."""
        winner = None if self.winner_decision is None else self.winner_decision.get("sent_to_rest")
        return ExperimentOptions(
            self.holdout, self.variants, self.global_control, self.experiment_key, self.test_share, winner
        )

    def experiment_for(self, campaign_id: str) -> Experiment | None:
        """The campaign's experiment (``None`` without experiment arguments).

        :raises ConfigurationError: an argument is invalid.
        """
        return self.experiment_options().experiment(campaign_id)

    def winner_step(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        """After a send: with a test slice and no winner yet, defer for ``winner_wait`` (then
        :meth:`execute_winner`); else the counts, with the winner decision once there is one."""
        if self.test_share == 1 or summary.get("dry_run"):
            return summary
        if self.winner_decision is None:
            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.log.info(
                "campaign %s: test slice sent (%s rest waiting); picking the winner on %s in %s",
                summary.get("campaign_id"),
                summary.get("rest"),
                self.winner_metric,
                self.winner_wait,
            )
            context["ti"].xcom_push(key=TEST_RESULT_KEY, value=summary)
            self.defer(
                trigger=TimeDeltaTrigger(self.winner_wait),
                method_name="execute_winner",
                kwargs={"campaign_id": summary["campaign_id"]},
            )
        return summary | {"winner": self.winner_decision}

    def execute_winner(self, context: Context, event: Any = None, campaign_id: str = "") -> Any:
        """Pick the winner of the test from the ledger, log and push the decision, send it to the rest."""
        ledger = get_ledger(getattr(self, "ledger_conn_id", None), table_prefix=self.ledger_prefix)
        try:
            readout = winner_readout(ledger, campaign_id, self.winner_metric, alpha=self.winner_alpha)
            experiment = self.experiment_for(campaign_id)
        except ConfigurationError as exc:
            raise AirflowFailException(f"Campaign {campaign_id!r}: no winner can be picked: {exc}") from exc
        finally:
            ledger.dispose()
        assert experiment is not None  # a test slice is an experiment
        winner = decide(readout, experiment, self.on_no_winner)
        self.winner_decision = decision_dict(readout, winner)
        self.log.info("%s", readout.log_line())
        self.log.info(
            "campaign %s: the rest is sent %s", campaign_id, winner or "nothing (on_no_winner='none')"
        )
        context["ti"].xcom_push(key=WINNER_KEY, value=self.winner_decision)
        if winner is None:
            return {"campaign_id": campaign_id, "winner": self.winner_decision}
        return self.execute(context)

    @property
    def ledger_prefix(self) -> str:
        """The ledger's table prefix (the operator's ``ledger_table_prefix``)."""
        return str(getattr(self, "ledger_table_prefix", DEFAULT_TABLE_PREFIX))


def _choice(name: str, value: Any, choices: Sequence[str]) -> Any:
    if value not in choices:
        raise ValueError(f"'{name}' must be one of {list(choices)}, got {value!r}")
    return value


def required_fields(settings: CampaignSettings) -> dict[str, tuple[str, ...]] | None:
    """The recipient fields the query must return: those of every variant's personalisation."""
    plan = settings.experiment_plan()
    if plan is not None:
        return plan.field_uses
    return dict(settings.personaliser.field_uses) if settings.personaliser else None


def check_templates(hook: WhatsAppHook, settings: CampaignSettings, *, explicit: bool, log: Logger) -> None:
    """The preflight check of the campaign's template and of every other template a variant sends; the
    campaign's template's time-to-live goes into ``settings.template_ttl_s`` unless it is set."""
    plan = settings.experiment_plan()
    if plan is None:
        ttl = check_template(
            hook, settings.template_name, settings.language, settings.personaliser, explicit=explicit, log=log
        )
        if settings.template_ttl_s is None:
            settings.template_ttl_s = ttl
        return
    specs = [plan.base, *(plan.message_of(v.name) for v in plan.experiment.variants)]
    seen: set[tuple[str, str, int]] = set()
    ttls: list[float] = []
    for spec in specs:
        key = (spec.template_name, spec.language, id(spec.personaliser))
        if key not in seen:
            seen.add(key)
            ttl = check_template(
                hook, spec.template_name, spec.language, spec.personaliser, explicit=explicit, log=log
            )
            ttls += [ttl] if ttl is not None else []
    if settings.template_ttl_s is None and ttls:
        settings.template_ttl_s = min(ttls)


__all__ = [
    "TEST_RESULT_KEY",
    "WINNER_KEY",
    "ExperimentArguments",
    "ExperimentOptions",
    "check_templates",
    "required_fields",
]
