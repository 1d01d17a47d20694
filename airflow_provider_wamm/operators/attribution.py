"""``ConversionAttributionOperator``: conversions per campaign group, with the lift over the holdout.

A thin Airflow adapter over :mod:`airflow_provider_wamm.campaign.attribution`: it reads the campaign's
accepted sends from the ledger connection, the holdout from the campaign's audience query (when the
campaign had an experiment), streams the conversions from any common.sql connection, and returns the
report as XCom (counts, rates and intervals; never a phone number).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_wamm.campaign.attribution import (
    Attribution,
    AttributionReport,
    audience_exposures,
    ledger_exposures,
    ledger_held_back,
)
from airflow_provider_wamm.campaign.attribution_analytics import (
    DEFAULT_CONVERSION_METRICS,
    SCOPE,
    group_templates,
    meta_conversions,
)
from airflow_provider_wamm.campaign.experiments import AssignmentKind, Experiment
from airflow_provider_wamm.campaign.ledger import ACCEPTED
from airflow_provider_wamm.graph.analytics import CONVERSION_METRIC_TYPES
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.hooks.ledger import DEFAULT_TABLE_PREFIX, get_ledger
from airflow_provider_wamm.hooks.recipients import SqlRecipientSource

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: The groups lifts may be measured against.
ControlGroup = Literal["holdout", "global_control"]


class ConversionAttributionOperator(BaseOperator):
    """Attribute conversions to a campaign's groups within a window after each send.

    Conversions are rows of ``conversions_sql`` on ``sql_conn_id`` (one row per conversion: the
    recipient's phone number, its time, optionally a value), streamed ``batch_size`` rows at a time.
    Sends are the campaign's ``accepted`` rows in the ledger. With an ``experiment``, each send is
    placed in its variant (recomputed from the experiment's key), and ``audience_sql`` (the campaign's
    recipient query, run again on ``sql_conn_id``) yields the holdout and global-control members, whose
    window starts at the campaign's first send. Returns the report as a dict: per group
    ``recipients``, ``converters``, ``conversions``, ``total_value``, ``conversion_rate`` with its
    ``rate_interval``, and ``lift`` / ``relative_lift`` against ``control_group`` with their intervals
    and ``p_value``; plus the conversion counts and, with two variants or more, a winner ``readout``.

    :param campaign_id: The campaign in the ledger (the send operator's ``campaign_id``), or a list of
        campaigns measured together (e.g. one send task per variant).
    :param conversions_sql: Query returning one row per conversion (or a ``.sql`` file, rendered).
    :param sql_conn_id: Any common.sql connection holding the conversions (and the audience).
    :param parameters: Bound parameters of ``conversions_sql``.
    :param recipient_field: The column holding the phone number (in both queries).
    :param converted_at_field: The column holding the conversion time (naive times are UTC).
    :param value_field: The column holding the conversion's value, if any.
    :param window: How long after a send a conversion counts.
    :param experiment: The campaign's experiment (an
        :class:`~airflow_provider_wamm.campaign.experiments.Experiment` or its dict); ``None``: every
        send is in one ``treatment`` group and there is no holdout.
    :param audience_sql: The campaign's recipient query, to find the holdout (needs ``experiment``).
    :param audience_parameters: Bound parameters of ``audience_sql``.
    :param default_region: ISO region for numbers written without a country code (as the sender had).
    :param ledger_conn_id: Connection of the ledger database (default: the SQLite file under
        ``AIRFLOW_HOME``).
    :param ledger_table_prefix: Prefix of the ledger's tables.
    :param control_group: The group lifts are measured against: ``holdout`` or ``global_control``.
    :param confidence: Confidence level of the intervals (the readout's alpha is ``1 - confidence``).
    :param batch_size: Rows per fetch, from the ledger and from the queries.
    :param include_analytics: Add Meta's conversion metrics (``template_analytics``, Marketing Messages
        API sends) beside the report: per template the groups were sent, its ``sent``, ``delivered`` and
        ``conversions`` (``website_purchases``...) from the day of the first send until now, as
        ``meta_analytics``. Meta counts per template and day (other sends included). A failure to fetch
        them is noted there, never fatal. Needs ``waba_id`` in the WhatsApp connection.
    :param whatsapp_conn_id: The WhatsApp connection asked for the analytics.
    :param analytics_metrics: The conversion metrics asked for (default: purchases, their value, add to
        cart and checkouts, website and app).
    """

    template_fields: Sequence[str] = (
        "campaign_id",
        "conversions_sql",
        "sql_conn_id",
        "parameters",
        "audience_sql",
        "audience_parameters",
        "ledger_conn_id",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {
        "conversions_sql": "sql",
        "audience_sql": "sql",
        "parameters": "json",
        "audience_parameters": "json",
    }
    ui_color = "#25D366"

    def __init__(
        self,
        *,
        campaign_id: str | Sequence[str],
        conversions_sql: str,
        sql_conn_id: str,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        recipient_field: str = "phone",
        converted_at_field: str = "converted_at",
        value_field: str | None = None,
        window: timedelta = timedelta(days=7),
        experiment: Experiment | Mapping[str, Any] | None = None,
        audience_sql: str | None = None,
        audience_parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        default_region: str | None = None,
        ledger_conn_id: str | None = None,
        ledger_table_prefix: str = DEFAULT_TABLE_PREFIX,
        control_group: ControlGroup = "holdout",
        confidence: float = 0.95,
        batch_size: int = 1000,
        include_analytics: bool = False,
        whatsapp_conn_id: str = "whatsapp_default",
        analytics_metrics: Sequence[str] = DEFAULT_CONVERSION_METRICS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.experiment = self._experiment(experiment)
        except ConfigurationError as exc:
            raise ValueError(f"experiment: {exc}") from None
        if audience_sql is not None and self.experiment is None:
            raise ValueError("audience_sql finds the holdout of an experiment: pass the experiment too")
        if control_group not in (AssignmentKind.HOLDOUT, AssignmentKind.GLOBAL_CONTROL):
            raise ValueError(f"control_group must be 'holdout' or 'global_control', got {control_group!r}")
        self.campaign_id = campaign_id
        self.conversions_sql = conversions_sql
        self.sql_conn_id = sql_conn_id
        self.parameters = parameters
        self.recipient_field = recipient_field.lower()
        self.converted_at_field = converted_at_field.lower()
        self.value_field = value_field.lower() if value_field else None
        self.window = window
        self.audience_sql = audience_sql
        self.audience_parameters = audience_parameters
        self.default_region = default_region
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table_prefix = ledger_table_prefix
        self.control_group = str(control_group)
        self.confidence = confidence
        self.batch_size = batch_size
        self.include_analytics = include_analytics
        self.whatsapp_conn_id = whatsapp_conn_id
        self.analytics_metrics = [str(m).upper() for m in analytics_metrics]
        unknown = sorted(set(self.analytics_metrics) - set(CONVERSION_METRIC_TYPES))
        if unknown:
            raise ValueError(f"analytics_metrics: not conversion metrics of Meta: {unknown}")

    @staticmethod
    def _experiment(experiment: Experiment | Mapping[str, Any] | None) -> Experiment | None:
        if experiment is None or isinstance(experiment, Experiment):
            return experiment
        return Experiment.from_dict(experiment)

    def execute(self, context: Context) -> dict[str, Any]:
        """Read the sends, the holdout and the conversions; log the report and return it as a dict."""
        try:
            attribution = Attribution(
                self.window, control_group=self.control_group, confidence=self.confidence
            )
            self._add_exposures(attribution)
            with self._query(self.conversions_sql, self.parameters) as rows:
                attribution.add_conversion_rows(
                    rows,
                    recipient_field=self.recipient_field,
                    time_field=self.converted_at_field,
                    value_field=self.value_field,
                    default_region=self.default_region,
                )
            report = attribution.report()
        except ConfigurationError as exc:
            raise AirflowFailException(f"Attribution of campaign {self.campaign_id!r}: {exc}") from exc
        self._log(report)
        result = {"campaign_id": self.campaign_id, **report.to_dict()}
        if self.include_analytics:
            result["meta_analytics"] = self._meta_analytics(attribution.first_exposure)
        return result

    def _meta_analytics(self, first_send: datetime | None) -> dict[str, Any]:
        """Meta's conversion metrics per template the groups were sent (errors become a note)."""
        from airflow_provider_wamm.graph.errors import WammError
        from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook

        if first_send is None:
            return {"error": "the campaign has no accepted send"}
        ledger = get_ledger(self.ledger_conn_id, table_prefix=self.ledger_table_prefix)
        try:
            templates = group_templates(ledger, self._campaign_ids())
        finally:
            ledger.dispose()
        start = first_send.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.now(UTC)
        hook = WhatsAppHook(whatsapp_conn_id=self.whatsapp_conn_id)
        try:
            if not hook.waba_id:
                return {"error": f"connection {self.whatsapp_conn_id!r} has no waba_id"}
            per_template = meta_conversions(
                hook.get_conn(), templates, start=start, end=end, metrics=self.analytics_metrics
            )
        except (WammError, OSError) as exc:
            self.log.warning("Template analytics not available: %s", exc)
            return {"error": f"{type(exc).__name__}: {exc}"[:500]}
        finally:
            hook.close()
        for t in per_template:
            self.log.info(
                "Meta, %s (%s) for %s: %s",
                t["template_name"],
                t["language"],
                ", ".join(t["groups"]),
                t.get("error") or f"{t['delivered']} delivered, conversions {t['conversions']}",
            )
        return {"start": start.isoformat(), "end": end.isoformat(), "scope": SCOPE, "templates": per_template}

    def _campaign_ids(self) -> list[str]:
        return [self.campaign_id] if isinstance(self.campaign_id, str) else list(self.campaign_id)

    def _add_exposures(self, attribution: Attribution) -> None:
        """The campaign's accepted sends, then the holdout of its audience (anchored at the first send)."""
        campaign_ids = self._campaign_ids()
        ledger = get_ledger(self.ledger_conn_id, table_prefix=self.ledger_table_prefix)
        try:
            for campaign_id in campaign_ids:
                sends = attribution.add_exposures(
                    ledger_exposures(
                        ledger,
                        campaign_id,
                        experiment=self.experiment,
                        states=(ACCEPTED,),
                        batch_size=self.batch_size,
                    )
                )
                self.log.info("Campaign %r: %d accepted sends in the ledger.", campaign_id, sends)
            start = attribution.first_exposure
            if self.audience_sql is None and start is not None:
                for campaign_id in campaign_ids:
                    held = attribution.add_exposures(
                        ledger_held_back(ledger, campaign_id, exposed_at=start, batch_size=self.batch_size)
                    )
                    self.log.info("Campaign %r: %d recipients held back in the ledger.", campaign_id, held)
        finally:
            ledger.dispose()
        if self.audience_sql is None or self.experiment is None or start is None:
            return
        with self._query(self.audience_sql, self.audience_parameters) as audience:
            held = attribution.add_exposures(
                audience_exposures(
                    audience,
                    self.experiment,
                    exposed_at=start,
                    recipient_field=self.recipient_field,
                    default_region=self.default_region,
                )
            )
        self.log.info("Audience: %d recipients held out (holdout and global control).", held)

    def _query(self, sql: str, parameters: Any) -> SqlRecipientSource:
        return SqlRecipientSource(
            self.sql_conn_id,
            sql,
            parameters,
            batch_size=self.batch_size,
            recipient_field=self.recipient_field,
            count=False,  # attribution needs no progress total: never run the query twice
        )

    def _log(self, report: AttributionReport) -> None:
        self.log.info(
            "Conversions: %d read, %d attributed, %d outside the window, %d of other recipients, "
            "%d unusable.",
            report.conversions_read,
            report.conversions_attributed,
            report.conversions_outside_window,
            report.conversions_unmatched,
            report.conversions_invalid,
        )
        for line in report.log_lines():
            self.log.info("%s", line)


__all__ = ["ControlGroup", "ConversionAttributionOperator"]
