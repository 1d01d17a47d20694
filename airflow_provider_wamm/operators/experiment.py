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
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_wamm.campaign.experiments import Experiment, GlobalControl, Variant
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook
from airflow_provider_wamm.operators.preflight import check_template

if TYPE_CHECKING:
    from airflow.sdk.types import Logger


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
    """

    holdout: float = 0.0
    variants: Sequence[Mapping[str, Any]] | None = None
    global_control: Mapping[str, Any] | None = None
    experiment_key: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether any experiment argument was given."""
        return bool(self.holdout or self.variants or self.global_control)

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
    """

    def __init__(
        self,
        *,
        holdout: float = 0.0,
        variants: Sequence[Mapping[str, Any]] | None = None,
        global_control: Mapping[str, Any] | None = None,
        experiment_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.holdout = holdout
        self.variants = variants
        self.global_control = global_control
        self.experiment_key = experiment_key
        self.experiment_options().check()

    def experiment_options(self) -> ExperimentOptions:
        """The arguments as one value."""
        return ExperimentOptions(self.holdout, self.variants, self.global_control, self.experiment_key)

    def experiment_for(self, campaign_id: str) -> Experiment | None:
        """The campaign's experiment (``None`` without experiment arguments).

        :raises ConfigurationError: an argument is invalid.
        """
        return self.experiment_options().experiment(campaign_id)


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


__all__ = ["ExperimentArguments", "ExperimentOptions", "check_templates", "required_fields"]
