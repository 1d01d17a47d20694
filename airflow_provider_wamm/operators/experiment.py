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
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.stats import WinnerReadout
from airflow_provider_wamm.campaign.winner import (
    NO_WINNER_CHOICES,
    WINNER_METRICS,
    NoWinner,
    WinnerMetric,
    conversion_readout,
    decide,
    decision_dict,
    shards_of_test_slice,
    winner_readout,
)
from airflow_provider_wamm.campaign.winner_decisions import WinnerDecisions, shards_still_sending
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.hooks.ledger import DEFAULT_TABLE_PREFIX, get_ledger
from airflow_provider_wamm.hooks.recipients import SqlRecipientSource
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook
from airflow_provider_wamm.operators.preflight import check_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.sdk.types import Logger

#: XCom key of the test slice's counts (pushed before the task defers for the winner).
TEST_RESULT_KEY = "test_result"
#: XCom key of the winner decision: the variant sent to the rest, the test and its numbers.
WINNER_KEY = "winner"
#: The templated experiment arguments.
EXPERIMENT_TEMPLATE_FIELDS: tuple[str, ...] = ("winner_conversions_sql", "winner_conversions_parameters")
#: How long a shard waits again when another shard is still sending its part of the test slice.
WINNER_RECHECK = timedelta(minutes=1)
#: How many times a shard waits so before it decides on the test slice sent so far.
WINNER_RECHECKS = 60


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
    :param winner_metric: ``"read"``, ``"click"`` or ``"conversion"``: what counts as a success of a test
        message (``conversion``: a row of ``winner_conversions_sql`` within ``winner_window`` after it).
    :param winner_alpha: Significance level of the winner test.
    :param winner_conversions_sql: With ``winner_metric="conversion"``: a query returning one row per
        conversion, with the columns ``recipient`` (the phone number), ``converted_at`` and optionally
        ``value`` (alias them in the query).
    :param winner_conversions_conn_id: The common.sql connection of that query (default: ``sql_conn_id``).
    :param winner_conversions_parameters: Bound parameters of the query.
    :param winner_window: How long after a test message a conversion counts (default: ``winner_wait``).
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
        winner_conversions_sql: str | None = None,
        winner_conversions_conn_id: str | None = None,
        winner_conversions_parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        winner_window: timedelta | None = None,
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
        self.winner_conversions_sql = winner_conversions_sql
        self.winner_conversions_conn_id = winner_conversions_conn_id
        self.winner_conversions_parameters = winner_conversions_parameters
        self.winner_window = winner_window
        self.winner_decision: dict[str, Any] | None = None
        self.experiment_options().check()
        if test_share != 1 and len(variants or ()) < 2:
            raise ValueError("test_share needs two variants or more to test")
        if winner_metric == "conversion" and not winner_conversions_sql:
            raise ValueError("winner_metric='conversion' reads the conversions of winner_conversions_sql")

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

    def execute_winner(
        self, context: Context, event: Any = None, campaign_id: str = "", rechecks: int = 0
    ) -> Any:
        """Take the campaign's winner decision (the one a shard recorded first, else pick it now from
        every shard's test slice and record it), log and push it, and send the winner to the rest."""
        ledger = get_ledger(getattr(self, "ledger_conn_id", None), table_prefix=self.ledger_prefix)
        try:
            decisions = WinnerDecisions(ledger)
            decision = decisions.recorded(campaign_id)
            if decision is None:
                self._wait_for_shards(ledger, campaign_id, rechecks)
                decision, mine = decisions.shared(
                    campaign_id, lambda: self._decide(ledger, campaign_id), decided_by=self._shard_label()
                )
                self.log.info(
                    "campaign %s: %s", campaign_id, "decided here" if mine else "another shard decided"
                )
        except ConfigurationError as exc:
            raise AirflowFailException(f"Campaign {campaign_id!r}: no winner can be picked: {exc}") from exc
        finally:
            ledger.dispose()
        self.winner_decision = decision
        winner = decision.get("sent_to_rest")
        self.log.info("%s", decision.get("log_line"))
        self.log.info(
            "campaign %s: the rest is sent %s (decided by %s)",
            campaign_id,
            winner or "nothing (on_no_winner='none')",
            decision.get("decided_by"),
        )
        context["ti"].xcom_push(key=WINNER_KEY, value=self.winner_decision)
        if winner is None:
            return {"campaign_id": campaign_id, "winner": self.winner_decision}
        return self.execute(context)

    def _wait_for_shards(self, ledger: Ledger, campaign_id: str, rechecks: int) -> None:
        """Defer again (for :data:`WINNER_RECHECK`) while another shard is still sending its part of the
        test slice, at most :data:`WINNER_RECHECKS` times."""
        busy = shards_still_sending(ledger, campaign_id)
        if not busy:
            return
        if rechecks >= WINNER_RECHECKS:
            self.log.warning(
                "campaign %s: shards %s still sending; deciding on what is sent", campaign_id, busy
            )
            return
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

        self.log.info("campaign %s: shards %s still send their test slice; waiting", campaign_id, busy)
        self.defer(
            trigger=TimeDeltaTrigger(WINNER_RECHECK),
            method_name="execute_winner",
            kwargs={"campaign_id": campaign_id, "rechecks": rechecks + 1},
        )

    def _decide(self, ledger: Ledger, campaign_id: str) -> dict[str, Any]:
        """Pick the winner from the ledger (all shards' test slices): the decision as a dict."""
        readout = self._readout(ledger, campaign_id)
        experiment = self.experiment_for(campaign_id)
        assert experiment is not None  # a test slice is an experiment
        winner = decide(readout, experiment, self.on_no_winner)
        return decision_dict(readout, winner) | {
            "shards_read": shards_of_test_slice(ledger, campaign_id),
            "log_line": readout.log_line(),
        }

    def _readout(self, ledger: Ledger, campaign_id: str) -> WinnerReadout:
        if self.winner_metric != "conversion":
            return winner_readout(ledger, campaign_id, self.winner_metric, alpha=self.winner_alpha)
        conn_id = self.winner_conversions_conn_id or getattr(self, "sql_conn_id", None)
        if not conn_id:
            raise ConfigurationError("winner_metric='conversion' needs winner_conversions_conn_id")
        source = SqlRecipientSource(
            str(conn_id),
            str(self.winner_conversions_sql),
            self.winner_conversions_parameters,
            batch_size=1000,
            recipient_field="recipient",
            count=False,
        )
        with source as rows:
            return conversion_readout(
                ledger,
                campaign_id,
                rows,
                window=self.winner_window or self.winner_wait,
                alpha=self.winner_alpha,
                value_field=None,
                default_region=getattr(self, "default_region", None) or None,
            )

    def _shard_label(self) -> str:
        return f"{getattr(self, 'task_id', '?')}[shard {getattr(self, 'shard_index', None) or 0}]"

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
    "EXPERIMENT_TEMPLATE_FIELDS",
    "TEST_RESULT_KEY",
    "WINNER_KEY",
    "ExperimentArguments",
    "ExperimentOptions",
    "check_templates",
    "required_fields",
]
