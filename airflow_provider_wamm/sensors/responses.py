"""``MarketingResponsesSensor``: wait until a campaign's messages have final statuses, then report.

The send operator only learns that Meta *accepted* each message; whether it was delivered, read,
clicked or failed arrives later as status webhooks, which the receiver (:mod:`airflow_provider_wamm.webhooks`)
writes to the ledger. This sensor watches the ledger until every accepted message has a final status
(delivered, read or failed), or until ``settle_timeout`` has passed since the campaign's last send,
and then returns the campaign report as its XCom, optionally writing it to a SQL table and an HTML
file. It works in ``poke`` and ``reschedule`` modes and, with ``deferrable=True``, waits in the
triggerer (:class:`~airflow_provider_wamm.triggers.responses.MarketingResponsesTrigger`) without
holding a worker slot.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_wamm.campaign.report import (
    CampaignReport,
    add_ttl,
    build_report,
    settle_state,
    summarise_template_analytics,
    write_report_table,
)
from airflow_provider_wamm.campaign.report_html import write_html
from airflow_provider_wamm.campaign.ttl import recorded_ttl_s
from airflow_provider_wamm.hooks.ledger import DEFAULT_TABLE_PREFIX, get_ledger, ledger_url
from airflow_provider_wamm.operators.marketing import default_campaign_id
from airflow_provider_wamm.operators.run_log import write_status_log
from airflow_provider_wamm.triggers.responses import EVENT_ERROR, EVENT_TIMEOUT, MarketingResponsesTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_wamm.campaign.ledger import Ledger

#: Product type of Marketing Messages sends in Meta's template analytics (Cloud API sends: omit it).
DEFAULT_ANALYTICS_PRODUCT_TYPE = "MARKETING_MESSAGES_LITE_API"
#: Metrics requested from template analytics.
ANALYTICS_METRICS = ("SENT", "DELIVERED", "READ", "CLICKED", "COST")


def parse_campaign_ids(value: Any) -> list[str]:
    """One campaign id, a list of them, or a list rendered to a string by Jinja -> a list of ids."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            for loader in (json.loads, ast.literal_eval):
                try:
                    loaded = loader(text)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(loaded, list):
                    return parse_campaign_ids(loaded)
        return [text] if text else []
    if isinstance(value, Sequence):
        return list(dict.fromkeys(str(v).strip() for v in value if v is not None and str(v).strip()))
    if value is None:
        return []
    return [str(value)]


#: How long the sensor waits after the last send when neither ``settle_timeout`` nor a recorded
#: time-to-live says otherwise.
DEFAULT_SETTLE_TIMEOUT = timedelta(hours=24)


class MarketingResponsesSensor(BaseSensorOperator):
    """Wait for the delivery statuses of a campaign to settle, then report what happened.

    Done when every message Meta accepted has a final status (delivered, read or failed) and nothing
    is in flight, or when ``settle_timeout`` has passed since the campaign's last send. Returns the
    report (a dict: counts by send state and by delivery status, errors by code with Meta's titles,
    Marketing Messages vs Cloud API routing, delivery/read/click rates, time to deliver) as XCom.

    :param campaign_id: The campaign to watch, or a list of campaigns reported together (mapped
        shards of one send share one id). Templated. Default: the campaign of ``send_task_id`` in this
        DAG run.
    :param send_task_id: Task id of the ``MarketingMessageOperator`` whose default campaign id
        (``dag_id.task_id.run_id``) to watch when ``campaign_id`` is not given.
    :param ledger_conn_id: Connection of the ledger database (default: the SQLite file under
        ``AIRFLOW_HOME``, as for the operator).
    :param ledger_table_prefix: Prefix of the ledger's tables.
    :param settle_timeout: How long after the campaign's last send to wait for final statuses. Users
        whose phones are off may take days; after this the sensor reports what it has. Default: the
        template's time-to-live the operator recorded (Meta drops a message undelivered by then,
        without a webhook), else 24 hours.
    :param fail_on_timeout: Fail (after writing the report) instead of succeeding when the settle timeout
        passes before every status is final.
    :param min_delivery_ratio: Fail (after writing the report) when delivered / accepted is below this
        (0 to 1) once settled or timed out.
    :param include_analytics: Add Meta's template analytics (clicks, cost) for the campaign's template
        and days; needs ``waba_id`` in the ``whatsapp`` connection. A failure to fetch them is logged and
        noted in the report, never fatal.
    :param analytics_product_type: ``product_type`` of the analytics query (Marketing Messages sends by
        default; ``None`` for Cloud API sends).
    :param whatsapp_conn_id: The ``whatsapp`` connection used for analytics.
    :param report_table: Table (``name`` or ``schema.name``) receiving one row per campaign and one per
        error code and stage; a re-run replaces its campaign's rows. Created if missing.
    :param report_conn_id: Connection of the database holding ``report_table`` (default:
        ``ledger_conn_id``).
    :param html_report_path: Write the report as a self-contained HTML page here. Templated.
    :param run_log: When reporting, log the status changes of the campaign's messages (delivered, read,
        failed with Meta's error) into the run log's ``<prefix>run_status_changes``: ``True`` in the
        ledger's database, or the id of another connection. ``False`` (default): no log.
    :param run_log_table_prefix: Prefix of the run log's tables (default: ``wamm_``).
    :param deferrable: Wait in the triggerer instead of a worker slot (default
        ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = (
        "campaign_id",
        "ledger_conn_id",
        "whatsapp_conn_id",
        "report_table",
        "report_conn_id",
        "html_report_path",
    )
    ui_color = "#DCF8C6"

    def __init__(
        self,
        *,
        campaign_id: str | Sequence[str] | None = None,
        send_task_id: str | None = None,
        ledger_conn_id: str | None = None,
        ledger_table_prefix: str = DEFAULT_TABLE_PREFIX,
        settle_timeout: timedelta | None = None,
        fail_on_timeout: bool = False,
        min_delivery_ratio: float | None = None,
        include_analytics: bool = False,
        analytics_product_type: str | None = DEFAULT_ANALYTICS_PRODUCT_TYPE,
        whatsapp_conn_id: str = "whatsapp_default",
        report_table: str | None = None,
        report_conn_id: str | None = None,
        html_report_path: str | None = None,
        run_log: bool | str = False,
        run_log_table_prefix: str = DEFAULT_TABLE_PREFIX,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if campaign_id is None and not send_task_id:
            raise ValueError("Pass 'campaign_id' (or 'send_task_id', the task whose campaign to watch).")
        if min_delivery_ratio is not None and not 0 <= min_delivery_ratio <= 1:
            raise ValueError(f"'min_delivery_ratio' must be between 0 and 1, got {min_delivery_ratio}.")
        if settle_timeout is not None and (
            not isinstance(settle_timeout, timedelta) or settle_timeout.total_seconds() < 0
        ):
            raise ValueError("'settle_timeout' must be a non-negative timedelta.")
        if report_table is not None and "{{" not in report_table:
            from airflow_provider_wamm.campaign.report import parse_table_name

            parse_table_name(report_table)  # fail at parse time, not after waiting a day
        self.campaign_id = campaign_id
        self.send_task_id = send_task_id
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table_prefix = ledger_table_prefix
        self.settle_timeout = settle_timeout
        self._waited = settle_timeout or DEFAULT_SETTLE_TIMEOUT  # the timeout in force (see poke)
        self.fail_on_timeout = fail_on_timeout
        self.min_delivery_ratio = min_delivery_ratio
        self.include_analytics = include_analytics
        self.analytics_product_type = analytics_product_type
        self.whatsapp_conn_id = whatsapp_conn_id
        self.report_table = report_table
        self.report_conn_id = report_conn_id
        self.html_report_path = html_report_path
        self.run_log = run_log
        self.run_log_table_prefix = run_log_table_prefix
        self.deferrable = deferrable

    # -- identity ------------------------------------------------------------------------------------

    def campaign_ids(self, context: Context) -> list[str]:
        """The campaigns this sensor watches (rendered ``campaign_id``, or ``send_task_id``'s default)."""
        ids = parse_campaign_ids(self.campaign_id)
        if not ids and self.send_task_id:
            ids = [default_campaign_id(context, self.send_task_id)]
        if not ids:
            raise AirflowFailException("'campaign_id' rendered to nothing: no campaign to watch.")
        return ids

    def _ledger(self) -> Ledger:
        return get_ledger(self.ledger_conn_id, table_prefix=self.ledger_table_prefix)

    # -- waiting -------------------------------------------------------------------------------------

    def poke(self, context: Context) -> PokeReturnValue:
        """Done (with the report as XCom) once settled or past the settle timeout."""
        ids = self.campaign_ids(context)
        ledger = self._ledger()
        try:
            self._waited = self._settle_timeout(ledger, ids)
            state = settle_state(ledger, ids, settle_timeout=self._waited)
            if not state.done:
                self.log.info(
                    "Campaign %s: %d messages without a final status; waiting until %s at the latest.",
                    ", ".join(ids),
                    state.unsettled,
                    state.deadline.isoformat() if state.deadline else "they settle",
                )
                return PokeReturnValue(is_done=False)
            report = self._finish(ledger, ids, timed_out=state.timed_out)
        finally:
            ledger.dispose()
        return PokeReturnValue(is_done=True, xcom_value=report)

    def _settle_timeout(self, ledger: Ledger, ids: list[str]) -> timedelta:
        """``settle_timeout``, or the template's time-to-live the campaign's runs recorded, or 24 hours."""
        if self.settle_timeout is not None:
            return self.settle_timeout
        ttl = recorded_ttl_s(ledger, ids)
        return timedelta(seconds=ttl) if ttl is not None else DEFAULT_SETTLE_TIMEOUT

    def execute(self, context: Context) -> Any:
        """Poke/reschedule as any sensor; when deferrable, check once and then wait in the triggerer."""
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if result.is_done:
            return result.xcom_value
        self.defer(
            trigger=MarketingResponsesTrigger(
                campaign_ids=self.campaign_ids(context),
                ledger_conn_id=self.ledger_conn_id,
                ledger_table_prefix=self.ledger_table_prefix,
                settle_timeout=self._waited.total_seconds(),
                poll_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Build the final report on the worker after the trigger fired."""
        event = event or {}
        status = event.get("status")
        if status == EVENT_ERROR:
            raise AirflowException(f"Waiting for the campaign's statuses failed: {event.get('message')}")
        ids = parse_campaign_ids(event.get("campaign_ids")) or self.campaign_ids(context)
        ledger = self._ledger()
        try:
            return self._finish(ledger, ids, timed_out=status == EVENT_TIMEOUT)
        finally:
            ledger.dispose()

    # -- reporting -----------------------------------------------------------------------------------

    def _finish(self, ledger: Ledger, ids: list[str], *, timed_out: bool) -> dict[str, Any]:
        """Build, publish and check the report; returns it as a dict."""
        resolved = ledger.resolve_unknown(ids)  # statuses that came before their send was recorded unknown
        if resolved:
            self.log.info("%d unknown sends were resolved by Meta's status webhooks.", resolved)
        report = add_ttl(build_report(ledger, ids, timed_out=timed_out), ledger)
        if self.include_analytics:
            report.analytics = self._analytics(report)
        self.log.info("%s", report.summary())
        per_campaign = (
            [report]
            if len(ids) == 1
            else [
                add_ttl(build_report(ledger, cid, timed_out=timed_out, analytics=report.analytics), ledger)
                for cid in ids
            ]
        )
        if self.report_table:
            self._write_table(ledger, per_campaign)
        if self.html_report_path:
            path = write_html(self.html_report_path, report)
            self.log.info("HTML report written to %s.", path)
        logged = write_status_log(ledger, ids, self.run_log, self.run_log_table_prefix, self.log)
        self._check(report)
        return report.to_dict() | logged

    def _check(self, report: CampaignReport) -> None:
        if report.timed_out and self.fail_on_timeout:
            raise AirflowFailException(
                f"Campaign {report.campaign_id}: {report.unsettled} messages still had no final status "
                f"{self._waited} after the last send (fail_on_timeout=True). {report.summary()}"
            )
        ratio = report.delivery_ratio
        if self.min_delivery_ratio is not None and ratio is not None and ratio < self.min_delivery_ratio:
            top = ", ".join(
                f"{e['code']} {e['title']} x{e['count']} ({e['stage']})" for e in report.errors[:3]
            )
            raise AirflowFailException(
                f"Campaign {report.campaign_id}: delivery ratio {ratio:.1%} ({report.delivered} of "
                f"{report.accepted} accepted) is below min_delivery_ratio={self.min_delivery_ratio:.1%}."
                + (f" Most frequent errors: {top}." if top else "")
            )

    def _write_table(self, ledger: Ledger, reports: list[CampaignReport]) -> None:
        import sqlalchemy as sa

        table = str(self.report_table)
        if self.report_conn_id is None or self.report_conn_id == self.ledger_conn_id:
            # Same database as the ledger: reuse its engine (on SQLite it waits for webhook writers).
            rows = write_report_table(ledger.engine, table, reports)
        else:
            engine = sa.create_engine(ledger_url(self.report_conn_id))
            try:
                rows = write_report_table(engine, table, reports)
            finally:
                engine.dispose()
        self.log.info("Report table %s: %d rows written for %d campaign(s).", table, rows, len(reports))

    def _analytics(self, report: CampaignReport) -> dict[str, Any]:
        """Meta's template analytics for the campaign's template and days (errors become a note)."""
        from airflow_provider_wamm.graph.errors import WammError
        from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook

        if not report.template_name or not report.language or not report.first_send_at:
            return {"error": "the ledger has no template or send time for this campaign"}
        hook = WhatsAppHook(whatsapp_conn_id=self.whatsapp_conn_id)
        try:
            if not hook.waba_id:
                return {"error": f"connection {self.whatsapp_conn_id!r} has no waba_id"}
            client = hook.get_conn()
            template = client.get_template(report.template_name, report.language)
            template_id = template.get("id") if template else None
            if not template_id:
                return {"error": f"template {report.template_name!r} ({report.language}) not found"}
            first = datetime.fromisoformat(report.first_send_at).astimezone(UTC)
            start = first.replace(hour=0, minute=0, second=0, microsecond=0)
            end = datetime.now(UTC)
            data = client.template_analytics(
                template_ids=[str(template_id)],
                start=start,
                end=end,
                metric_types=list(ANALYTICS_METRICS),
                product_type=self.analytics_product_type,
            )
        except (WammError, OSError) as exc:
            self.log.warning("Template analytics not available: %s", exc)
            return {"error": f"{type(exc).__name__}: {exc}"[:500]}
        finally:
            hook.close()
        summary = summarise_template_analytics(data)
        summary.update(
            {
                "template_id": str(template_id),
                "start": start.isoformat(),
                "end": end.isoformat(),
                "product_type": self.analytics_product_type,
                "scope": "template and days (other sends of this template on these days are included)",
            }
        )
        return summary


__all__ = [
    "DEFAULT_ANALYTICS_PRODUCT_TYPE",
    "DEFAULT_SETTLE_TIMEOUT",
    "MarketingResponsesSensor",
    "parse_campaign_ids",
]
