"""The marketing operator's option groups, gathered: one mix-in per group, each in its own module.

:class:`CampaignOptions` is the base of
:class:`~airflow_provider_wamm.operators.marketing.MarketingMessageOperator`: its arguments are the
mix-ins' arguments (they work with ``partial()`` and ``expand()`` like the operator's own), and
:data:`OPTION_TEMPLATE_FIELDS` are their templated ones.
"""

from __future__ import annotations

from airflow_provider_wamm.operators.budget import BUDGET_TEMPLATE_FIELDS, CostOptions
from airflow_provider_wamm.operators.canary import RolloutOptions
from airflow_provider_wamm.operators.experiment import EXPERIMENT_TEMPLATE_FIELDS, ExperimentArguments
from airflow_provider_wamm.operators.limited import LimitedRetryOptions
from airflow_provider_wamm.operators.lineage import LINEAGE_TEMPLATE_FIELDS, LineageArguments
from airflow_provider_wamm.operators.run_log import RunLogArguments
from airflow_provider_wamm.operators.scheduling import WINDOW_TEMPLATE_FIELDS, SendWindowOptions
from airflow_provider_wamm.operators.signals import SignalOptions

#: The templated arguments of the option groups.
OPTION_TEMPLATE_FIELDS: tuple[str, ...] = (
    *BUDGET_TEMPLATE_FIELDS,
    "retry_limited",
    *LINEAGE_TEMPLATE_FIELDS,
    *WINDOW_TEMPLATE_FIELDS,
    *EXPERIMENT_TEMPLATE_FIELDS,
)


class CampaignOptions(
    RolloutOptions,
    SendWindowOptions,
    LimitedRetryOptions,
    LineageArguments,
    RunLogArguments,
    ExperimentArguments,
    CostOptions,
    SignalOptions,
):
    """The option groups of the marketing operator.

    ``rollout``, ``canary_settle``, ``canary_gates`` and ``canary_approval`` (with its timeout and
    approvers)
    (:class:`~airflow_provider_wamm.operators.canary.RolloutOptions`);
    ``send_window``, ``send_days``, ``timezone_field``, ``zone_choice``, ``default_timezone``,
    ``send_at_field``, ``not_after`` and ``message_ttl``
    (:class:`~airflow_provider_wamm.operators.scheduling.SendWindowOptions`); ``retry_limited``
    (:class:`~airflow_provider_wamm.operators.limited.LimitedRetryOptions`); ``report_url`` and
    OpenLineage facets (:mod:`~airflow_provider_wamm.operators.lineage`); ``run_log``
    (:mod:`~airflow_provider_wamm.operators.run_log`); ``holdout``, ``variants``, ``global_control``
    and ``experiment_key`` (:class:`~airflow_provider_wamm.operators.experiment.ExperimentArguments`);
    ``max_cost`` and ``rates_file`` (:class:`~airflow_provider_wamm.operators.budget.CostOptions`);
    ``on_template_paused``, ``on_messaging_limit`` and ``signal_poll_interval``
    (:class:`~airflow_provider_wamm.operators.signals.SignalOptions`), which also resumes a deferred task.
    """


__all__ = ["OPTION_TEMPLATE_FIELDS", "CampaignOptions"]
