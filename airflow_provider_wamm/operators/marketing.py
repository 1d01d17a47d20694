"""``MarketingMessageOperator``: send an approved marketing template to every recipient, once.

A thin Airflow adapter over the campaign engine (:mod:`airflow_provider_wamm.campaign`): it reads the
connections and the task context, opens the recipient source, runs
:func:`~airflow_provider_wamm.campaign.sender.run_campaign` and turns its outcome into XCom, task
states and messages that say what to fix. Its arguments are checked and converted in
:mod:`~airflow_provider_wamm.operators.arguments`, the template check before the first send is
:mod:`~airflow_provider_wamm.operators.preflight`, and the recipients are read by
:mod:`~airflow_provider_wamm.hooks.recipients`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
)

from airflow_provider_wamm.campaign.adapt import connections_needed
from airflow_provider_wamm.campaign.control import CampaignControl
from airflow_provider_wamm.campaign.guards import CampaignDeferred
from airflow_provider_wamm.campaign.ledger import utcnow
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignStopped
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.hooks.ledger import DEFAULT_TABLE_PREFIX, get_ledger
from airflow_provider_wamm.hooks.recipients import (
    ListRecipientSource,
    RecipientSource,
    SqlRecipientSource,
    sql_hook,
)
from airflow_provider_wamm.hooks.whatsapp import WhatsAppConnectionSettings, WhatsAppHook
from airflow_provider_wamm.operators.arguments import (
    ON_EMPTY,
    ON_UNKNOWN,
    PRODUCT_POLICIES,
    OnEmpty,
    OnUnknown,
    ProductPolicy,
    as_bool,
    as_int,
    as_number,
    as_product_policy,
    check_campaign_options,
    check_failure_ratio,
    check_on_empty,
    check_on_unknown,
    check_recipient_source,
    is_templated,
    parse_product_policy,
)
from airflow_provider_wamm.operators.experiment import check_templates, required_fields
from airflow_provider_wamm.operators.options import OPTION_TEMPLATE_FIELDS, CampaignOptions
from airflow_provider_wamm.operators.outcomes import (
    check_unsettled,
    fails_without_retry,
    halt_message,
    set_outlet_extra,
    stop_message,
)
from airflow_provider_wamm.operators.pace import needs_connection, task_pace
from airflow_provider_wamm.operators.private_rows import PrivateRowsField
from airflow_provider_wamm.operators.safeguards import check_outcome, check_ratio, skip_if_too_late
from airflow_provider_wamm.operators.signals import campaign_guards, defer_or_fail, template_pause_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: XCom key of the counts pushed when a campaign halts or is stopped (the task then fails, so it returns
#: nothing).
HALTED_RESULT_KEY = "campaign_result"

#: Settings of :class:`CampaignSettings` the operator sets from its own arguments or the context.
_DIRECT_SETTINGS = frozenset(
    {
        "campaign_id",
        "template_name",
        "language",
        "personaliser",
        "product_policy",
        "message_activity_sharing",
        "max_messages_per_second",
        "concurrency",
        "batch_size",
        "dry_run",
        "resend_unknown",
        "frequency_cap",
        "shard_index",
        "shard_count",
        "recipient_field",
        "default_region",
        "experiment",
    }
)
#: The other settings, which ``campaign_options`` may tune.
CAMPAIGN_OPTIONS = frozenset(f.name for f in dataclasses.fields(CampaignSettings)) - _DIRECT_SETTINGS


class MarketingMessageOperator(CampaignOptions):
    """Send a WhatsApp marketing template to each recipient through the Marketing Messages API.

    Every send goes through the ledger: a task retry, a cleared task or a re-run backfill resumes the
    campaign instead of messaging anyone twice. A task killed while it sends (cleared, marked failed,
    timed out) stops cleanly through :meth:`on_kill`: no new request, answers in flight recorded for
    a few seconds, the rest recorded ``unknown``, unsent recipients released; the task then fails
    with those counts, and clearing it resumes the campaign. Recipients come from ``recipients`` (a list
    or an XComArg of phone strings or dicts) or from ``sql`` run on ``sql_conn_id`` (rows streamed, never
    loaded whole).
    Returns a small dict of counts as XCom (never per-recipient data): ``campaign_id``, ``total``,
    ``accepted``, ``held``, ``paused``, ``failed``, ``skipped``, ``unknown``, ``duplicates``, ``invalid``,
    ``suppressed``, ``foreign_claimed``, ``errors_by_code``, ``elapsed_s``, ``messages_per_second`` and
    more.

    :param template_name: Name of an approved MARKETING template.
    :param language: Template language code, e.g. ``en_US``.
    :param whatsapp_conn_id: The ``whatsapp`` connection (token, phone number id, WABA id, rate cap).
    :param recipients: A list of phone numbers or of dicts (one key holds the phone, the others feed
        personalisation); an XComArg of such a list works too. The rows are not kept in Airflow's
        rendered template fields (the UI shows only their count).
    :param sql: Query returning one row per recipient (or the path of a ``.sql`` file next to the DAG,
        rendered with Jinja); mutually exclusive with ``recipients``.
    :param sql_conn_id: Any common.sql connection to run ``sql`` on (checked before the first request).
    :param count_rows: Count the rows of ``sql`` first (``SELECT COUNT(*)`` over it) for the progress
        total and ETA; ``False`` for queries too expensive to run twice.
    :param parameters: Bound query parameters for ``sql`` (never formatted into the query).
    :param recipient_field: The key or column holding the phone number.
    :param default_region: ISO region (e.g. ``"DE"``) for numbers written without a country code.
    :param body_parameters: Body parameters: a list (positional) or a dict (named); values are constants
        or format strings over recipient fields, e.g. ``"{first_name}"``; dict values with a ``type``
        give currency and date_time parameters.
    :param header: Header parameter: ``{"type": "text", "text": "{city}"}``, or an image/video/document
        (``link`` or ``id``) or location.
    :param buttons: Button parameters: ``{"type": "url"|"quick_reply"|"copy_code"|"flow", "index": 0, ...}``.
    :param components: A raw Meta ``components`` list, for full control; strings are formatted with the
        recipient's fields.
    :param campaign_id: Identity of the campaign in the ledger. Defaults to ``dag_id.task_id.run_id`` so
        each run is its own campaign and a retry of the same run resumes it. Mapped shards share it.
    :param ledger_conn_id: Connection of the ledger database (postgres, mysql or sqlite; PostgreSQL in
        production); default a SQLite file under ``AIRFLOW_HOME`` (one machine only).
    :param ledger_table_prefix: Prefix of the ledger's tables.
    :param max_messages_per_second: Cap for this task; default the connection's cap. Every task sending
        from the number shares the connection's cap through the ledger, so shards need no hand-set cap
        (with ``campaign_options={"share_cap": False}``: the connection's cap divided by ``shard_count``).
    :param concurrency: Sending threads at the start (rate / 5, between 8 and 256, by default); they then
        follow the measured round trips (``campaign_options={"adaptive_concurrency": False}`` keeps
        them fixed; ``max_concurrency`` bounds them).
    :param batch_size: Recipients read and checked per ledger round trip, at most claimed in one
        hand-over to the sending threads (also the SQL fetch size).
    :param product_policy: ``CLOUD_API_FALLBACK`` (Meta's default) or ``STRICT`` (never fall back to
        Cloud API).
    :param message_activity_sharing: Per-message override of the WABA's activity sharing setting.
    :param dry_run: Validate and render everything, send nothing and write nothing; the counts say
        what would be sent (``would_send``). No request reaches the Graph API unless ``preflight=True``
        is also given (then only the read-only template check). May be a template such as
        ``"{{ params.dry_run }}"`` (stored as ``is_dry_run``: ``dry_run`` is a method of BaseOperator).
    :param resend_unknown: Send again to recipients whose earlier outcome is ``unknown`` (the request may
        have reached Meta: this risks a second message).
    :param frequency_cap: Skip recipients who got any marketing message recorded in the ledger within this
        period (e.g. ``timedelta(hours=24)``), across all campaigns.
    :param max_lateness: Skip the task when the run's logical date is older than this (stops a backfill
        from turning into a burst of stale messages).
    :param max_failure_ratio: Fail the task after the run when more than this share of attempted sends
        failed (no automatic retry: a person should look at ``errors_by_code``).
    :param max_invalid_ratio: Fail the task after the run when more than this share of the rows were
        invalid, with the top reasons (no automatic retry); ``None`` turns the check off.
    :param shard_index: This task's shard, for dynamic task mapping
        (``.partial(shard_count=4).expand(shard_index=[0, 1, 2, 3])``).
    :param shard_count: Number of shards; each keeps a stable hash slice of the recipients.
    :param preflight: Check the template (APPROVED, MARKETING, language, parameters) before the first
        send. Default: on when the connection has a WABA id, except in a dry run.
    :param on_empty: What to do when there are no recipients: ``"succeed"``, ``"skip"`` or ``"fail"``.
    :param on_unknown: What to do when the run ends with recipients whose outcome is open: ``unknown``
        ones (a request without an answer, or a claim taken over from an attempt that died) or ones
        another attempt still holds claimed (``foreign_claimed``). ``"warn"`` (default) logs a warning
        with the counts; ``"fail"`` fails the task without retries, so that a person decides (see the
        docs' reliability page, "Resolving unknown").
    :param campaign_options: Advanced settings of the campaign engine, by name (see
        :class:`~airflow_provider_wamm.campaign.sender.CampaignSettings`), e.g.
        ``{"max_attempts": 3, "progress_interval_s": 30}``.

    More arguments come from its option groups, listed in
    :class:`~airflow_provider_wamm.operators.options.CampaignOptions`.
    """

    template_fields: Sequence[str] = (
        "template_name",
        "language",
        "whatsapp_conn_id",
        "recipients",
        "sql",
        "sql_conn_id",
        "parameters",
        "recipient_field",
        "default_region",
        "body_parameters",
        "header",
        "buttons",
        "components",
        "campaign_id",
        "ledger_conn_id",
        "product_policy",
        "max_messages_per_second",
        "is_dry_run",
        "shard_index",
        "shard_count",
        *OPTION_TEMPLATE_FIELDS,
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {
        "sql": "sql",
        "parameters": "json",
        "body_parameters": "json",
        "header": "json",
        "buttons": "json",
        "components": "json",
    }
    ui_color = "#25D366"
    #: The recipient rows, kept out of the rendered template fields (the UI shows only their count).
    recipients = PrivateRowsField()
    #: Stops the running campaign from :meth:`on_kill` (set by :meth:`execute`).
    _control: CampaignControl | None = None

    def __init__(
        self,
        *,
        template_name: str,
        language: str = "en_US",
        whatsapp_conn_id: str = WhatsAppHook.default_conn_name,
        recipients: Any = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        recipient_field: str = "phone",
        default_region: str | None = None,
        body_parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        buttons: Sequence[Mapping[str, Any]] | None = None,
        components: Sequence[Mapping[str, Any]] | None = None,
        campaign_id: str | None = None,
        ledger_conn_id: str | None = None,
        ledger_table_prefix: str = DEFAULT_TABLE_PREFIX,
        max_messages_per_second: float | None = None,
        concurrency: int | None = None,
        batch_size: int = 500,
        product_policy: ProductPolicy | str | None = None,
        message_activity_sharing: bool | None = None,
        dry_run: bool = False,
        resend_unknown: bool = False,
        frequency_cap: timedelta | None = None,
        max_lateness: timedelta | None = None,
        max_failure_ratio: float | None = None,
        max_invalid_ratio: float | None = 0.5,
        count_rows: bool = True,
        shard_index: int | None = None,
        shard_count: int = 1,
        preflight: bool | None = None,
        on_empty: OnEmpty = "succeed",
        on_unknown: OnUnknown = "warn",
        campaign_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_recipient_source(recipients, sql, sql_conn_id)
        self.whatsapp_conn_id = whatsapp_conn_id
        self.recipients = recipients
        self._set_query(sql, sql_conn_id, parameters)
        self.recipient_field = recipient_field
        self.default_region = default_region
        self._set_template(template_name, language, product_policy, message_activity_sharing)
        self._set_personalisation(body_parameters, header, buttons, components)
        self._set_campaign(campaign_id, ledger_conn_id, ledger_table_prefix, resend_unknown, frequency_cap)
        self._set_pace(max_messages_per_second, concurrency, batch_size, shard_index, shard_count)
        self._set_safeguards(dry_run, preflight, max_lateness, max_failure_ratio, on_empty)
        self.max_invalid_ratio = check_ratio(max_invalid_ratio, "max_invalid_ratio")
        self.count_rows = count_rows
        self.on_unknown: OnUnknown = check_on_unknown(on_unknown)
        self.campaign_options = check_campaign_options(campaign_options, CAMPAIGN_OPTIONS)

    # -- the arguments, by theme (checked here unless they hold a template) --------------------------------

    def _set_query(
        self, sql: str | None, sql_conn_id: str | None, parameters: Mapping[str, Any] | Sequence[Any] | None
    ) -> None:
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.parameters = parameters

    def _set_template(
        self, template_name: str, language: str, product_policy: str | None, sharing: bool | None
    ) -> None:
        self.template_name = template_name
        self.language = language
        # A template is checked once rendered, in execute(); a plain value fails the DAG's parsing.
        policy = product_policy if is_templated(product_policy) else parse_product_policy(product_policy)
        self.product_policy: str | None = policy
        self.message_activity_sharing = sharing

    def _set_personalisation(
        self,
        body_parameters: Sequence[Any] | Mapping[str, Any] | None,
        header: Mapping[str, Any] | None,
        buttons: Sequence[Mapping[str, Any]] | None,
        components: Sequence[Mapping[str, Any]] | None,
    ) -> None:
        self.body_parameters = body_parameters
        self.header = header
        self.buttons = buttons
        self.components = components

    def _set_campaign(
        self,
        campaign_id: str | None,
        ledger_conn_id: str | None,
        ledger_table_prefix: str,
        resend_unknown: bool,
        frequency_cap: timedelta | None,
    ) -> None:
        self.campaign_id = campaign_id
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table_prefix = ledger_table_prefix
        self.resend_unknown = resend_unknown
        self.frequency_cap = frequency_cap

    def _set_pace(
        self,
        max_messages_per_second: float | str | None,
        concurrency: int | None,
        batch_size: int,
        shard_index: int | str | None,
        shard_count: int | str,
    ) -> None:
        self.max_messages_per_second = max_messages_per_second
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.shard_index = shard_index
        self.shard_count = shard_count

    def _set_safeguards(
        self,
        dry_run: bool | str,
        preflight: bool | None,
        max_lateness: timedelta | None,
        max_failure_ratio: float | None,
        on_empty: str,
    ) -> None:
        # Not ``self.dry_run``: that is BaseOperator's method rendering the template fields.
        self.is_dry_run = dry_run
        self.preflight = preflight
        self.max_lateness = max_lateness
        self.max_failure_ratio = check_failure_ratio(max_failure_ratio)
        self.on_empty: OnEmpty = check_on_empty(on_empty)

    # -- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Run (or resume) the campaign and return its counts."""
        self._control = CampaignControl()  # on_kill stops the campaign through it
        product_policy = as_product_policy(self.product_policy)
        dry_run = as_bool(self.is_dry_run, "dry_run")
        skip_if_too_late(context.get("logical_date"), self.max_lateness, self.log)
        campaign_id = self.campaign_id or default_campaign_id(context)
        connection: WhatsAppConnectionSettings | None = None
        try:
            if needs_connection(self.max_messages_per_second, self.campaign_options):  # the number's cap
                connection = WhatsAppHook.read_connection_settings(self.whatsapp_conn_id)
            settings = self._campaign_settings(connection, campaign_id, dry_run, product_policy)
        except ConfigurationError as exc:
            raise AirflowFailException(f"Campaign {campaign_id!r} is misconfigured: {exc}") from exc
        hook = WhatsAppHook(
            whatsapp_conn_id=self.whatsapp_conn_id,
            pool_maxsize=connections_needed(settings),  # one kept-alive connection per sender thread
            connection_settings=connection,
        )
        try:
            summary = self._send(context, hook, settings)
        except ConfigurationError as exc:
            raise AirflowFailException(f"Campaign {campaign_id!r} is misconfigured: {exc}") from exc
        except CampaignDeferred as deferred:  # a guard stopped it: wait (defer) or fail
            defer_or_fail(self, context, deferred)
            raise
        finally:
            hook.close()
        set_outlet_extra(context, self.outlets, summary)
        self.remember_lineage(hook, settings, summary)
        check_outcome(
            summary, self.on_empty, self.max_failure_ratio, self.log, max_invalid_ratio=self.max_invalid_ratio
        )
        check_unsettled(summary, self.on_unknown, self.log)
        return self.winner_step(context, summary)

    def on_kill(self) -> None:
        """Stop the running campaign (Airflow calls this when the task is killed).

        Airflow's task runner calls it from its SIGTERM handler, in the main thread, while that thread
        is suspended inside the campaign loop, and sends SIGKILL 5 s later. So it only sets the
        campaign's stop flag: no ledger, no network, no lock. The campaign then stops sending, records
        the answers in flight within ``stop_grace_s`` (3 s), records the rest ``unknown``, releases
        the unsent recipients, and the task fails with those counts.
        """
        control = self._control
        if control is not None:
            control.stop("the task was killed")

    def _send(self, context: Context, hook: WhatsAppHook, settings: CampaignSettings) -> dict[str, Any]:
        """Check the template (unless told not to), then run the campaign; its counts."""
        dry_run = settings.dry_run
        preflight = self.preflight if self.preflight is not None else bool(hook.waba_id) and not dry_run
        if self.sql is not None:  # a connection without a SQL hook fails before any request
            sql_hook(self.sql_conn_id or "")
        if preflight:
            self.preflight_at = utcnow()
            check_templates(hook, settings, explicit=self.preflight is not None, log=self.log)
            self.check_account(hook, explicit=self.preflight is not None)
        client: GraphClient | None = None
        if not dry_run:
            client = hook.get_conn()
            hook.check_token()
        return self._run(context, settings, client)

    def _run(
        self, context: Context, settings: CampaignSettings, client: GraphClient | None
    ) -> dict[str, Any]:
        ledger = get_ledger(self.ledger_conn_id, table_prefix=self.ledger_table_prefix)
        spend = self.spend_guard(
            dry_run=settings.dry_run,
            shard_count=settings.shard_count,
            log=self.log,
            ledger=ledger,
            settings=settings,
        )
        ti = context["ti"]
        try_number = getattr(ti, "try_number", None)
        try:
            recipient_source = self._recipient_source(settings)
            with recipient_source as source:
                settings = recipient_source.settings_with_total(settings)
                result = run_campaign(
                    self.narrow_recipients(source, settings, ledger),
                    client=client,
                    ledger=ledger,
                    settings=settings,
                    log=self.log,
                    control=self._control,
                    owner=attempt_owner(context),
                    try_number=try_number if isinstance(try_number, int) else None,
                    guards=campaign_guards(self, ledger, settings, source),
                    spend=spend,
                )
            logged = self.write_run_log(context, ledger, result, "finished")
        except CampaignStopped as stopped:
            message = stop_message(stopped)
            self.log.error("%s", message)
            try:
                ti.xcom_push(key=HALTED_RESULT_KEY, value=stopped.result.to_dict())
            except Exception as exc:  # the task is being killed: its XCom may be refused by then
                self.log.warning("could not push the counts of the stopped campaign to XCom: %s", exc)
            raise AirflowException(message) from stopped
        except CampaignHalted as halted:
            paused = template_pause_of(halted)
            logged = self.write_run_log(context, ledger, halted.result, "halted")
            if paused is not None:
                raise paused from halted
            context["ti"].xcom_push(key=HALTED_RESULT_KEY, value=halted.result.to_dict() | logged)
            message = halt_message(halted)
            self.log.error("%s", message)
            if fails_without_retry(halted):
                raise AirflowFailException(message) from halted
            raise AirflowException(message) from halted
        finally:
            ledger.dispose()
        summary = result.to_dict() | logged
        self.extend_summary(summary)
        return summary

    # -- pieces ----------------------------------------------------------------------------------

    def _campaign_settings(
        self,
        connection: WhatsAppConnectionSettings | None,
        campaign_id: str,
        dry_run: bool,
        product_policy: ProductPolicy | None,
    ) -> CampaignSettings:
        """The engine's settings from the rendered arguments and the connection, checked by the engine."""
        shard_count = as_int(self.shard_count, "shard_count")
        shard_index = as_int(self.shard_index if self.shard_index is not None else 0, "shard_index")
        given = self.max_messages_per_second
        rate, shared = task_pace(
            connection,
            None if given is None else as_number(given, "max_messages_per_second"),
            shard_count,
            self.campaign_options,
        )
        options = {**shared, **self.campaign_options}
        options.setdefault("min_messages_per_second", min(1.0, rate))
        personaliser = Personaliser(
            body_parameters=self.body_parameters,
            header=self.header,
            buttons=self.buttons,
            components=self.components,
        )
        settings = CampaignSettings(
            campaign_id=campaign_id,
            template_name=self.template_name,
            language=self.language,
            personaliser=personaliser,
            product_policy=product_policy,
            message_activity_sharing=self.message_activity_sharing,
            max_messages_per_second=rate,
            concurrency=self.concurrency or default_concurrency(rate),
            batch_size=self.batch_size,
            dry_run=dry_run,
            resend_unknown=self.resend_unknown,
            frequency_cap=self.frequency_cap,
            shard_index=shard_index,
            shard_count=shard_count,
            recipient_field=self.recipient_field,
            default_region=self.default_region or None,
            experiment=self.experiment_for(campaign_id),
            **options,
        )
        settings.validate()
        return settings

    def _recipient_source(self, settings: CampaignSettings) -> RecipientSource:
        if self.sql is not None:
            return SqlRecipientSource(
                self.sql_conn_id or "",
                self.sql,
                self.parameters,
                batch_size=settings.batch_size,
                recipient_field=settings.recipient_field,
                required_fields=required_fields(settings),
                count=self.count_rows,
            )
        return ListRecipientSource(type(self).recipients.rows(self))


def default_concurrency(messages_per_second: float) -> int:
    """Sender threads enough to hold ``messages_per_second`` at round trips of up to 200 ms.

    A rate that is not a positive number gets the minimum (the settings check then refuses the rate).
    """
    if not (math.isfinite(messages_per_second) and messages_per_second > 0):
        return 8
    return max(8, min(256, math.ceil(messages_per_second / 5)))


def default_campaign_id(context: Mapping[str, Any], task_id: str | None = None) -> str:
    """``dag_id.task_id.run_id``: one campaign per run, shared by the run's mapped shards.

    ``task_id`` names another task of the run (the sensor watches its send task's campaign).
    """
    ti = context["ti"]
    return f"{ti.dag_id}.{task_id or ti.task_id}.{context['run_id']}"


def attempt_owner(context: Mapping[str, Any]) -> str:
    """``dag_id.task_id.run_id.map_index``: the task instance a campaign attempt belongs to (its tries
    share it, so a newer try takes an older try's claims over as soon as that try is gone)."""
    ti = context["ti"]
    return f"{ti.dag_id}.{ti.task_id}.{context['run_id']}.{getattr(ti, 'map_index', -1)}"


__all__ = [
    "CAMPAIGN_OPTIONS",
    "HALTED_RESULT_KEY",
    "ON_EMPTY",
    "ON_UNKNOWN",
    "PRODUCT_POLICIES",
    "MarketingMessageOperator",
    "attempt_owner",
    "check_unsettled",
    "default_campaign_id",
    "halt_message",
    "stop_message",
]
