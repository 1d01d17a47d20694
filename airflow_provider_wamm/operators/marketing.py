"""``MarketingMessageOperator``: send an approved marketing template to every recipient, once."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    BaseHook,
    BaseOperator,
)

from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.sender import CampaignHalted, CampaignSettings, run_campaign
from airflow_provider_wamm.campaign.sources import iter_cursor_rows
from airflow_provider_wamm.graph.errors import AuthenticationError, PermissionDeniedError
from airflow_provider_wamm.graph.templates import check_components
from airflow_provider_wamm.hooks.ledger import DEFAULT_TABLE_PREFIX, get_ledger
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

PRODUCT_POLICIES = ("CLOUD_API_FALLBACK", "STRICT")


class MarketingMessageOperator(BaseOperator):
    """Send a WhatsApp marketing template to each recipient through the Marketing Messages API.

    Every send goes through the ledger: a task retry, a cleared task or a re-run backfill resumes the
    campaign instead of messaging anyone twice. Recipients come from ``recipients`` (a list or an XComArg
    of phone strings or dicts) or from ``sql`` run on ``sql_conn_id`` (rows streamed, never loaded whole).
    Returns a small dict of counts as XCom (never per-recipient data).

    :param template_name: Name of an approved MARKETING template.
    :param language: Template language code, e.g. ``en_US``.
    :param whatsapp_conn_id: The ``whatsapp`` connection (token, phone number id, WABA id, rate cap).
    :param recipients: A list of phone numbers or of dicts (one key holds the phone, the others feed
        personalisation); an XComArg of such a list works too.
    :param sql: Query returning one row per recipient (or a ``.sql`` file); mutually exclusive with
        ``recipients``.
    :param sql_conn_id: Any common.sql connection to run ``sql`` on.
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
    :param ledger_conn_id: Connection of the ledger database (PostgreSQL in production); default a
        SQLite file under ``AIRFLOW_HOME``.
    :param ledger_table_prefix: Prefix of the ledger's tables.
    :param max_messages_per_second: Cap for this task; default the connection's cap divided by
        ``shard_count``.
    :param concurrency: Requests in flight at once.
    :param batch_size: Recipients claimed and recorded per ledger round trip.
    :param product_policy: ``CLOUD_API_FALLBACK`` (Meta's default) or ``STRICT`` (never fall back to
        Cloud API).
    :param message_activity_sharing: Per-message override of the WABA's activity sharing setting.
    :param dry_run: Validate and render everything, send nothing, and report what would be sent.
    :param resend_unknown: Send again to recipients whose earlier outcome is ``unknown`` (the request may
        have reached Meta: this risks a second message).
    :param frequency_cap: Skip recipients who got any marketing message recorded in the ledger within this
        period (e.g. ``timedelta(hours=24)``), across all campaigns.
    :param max_lateness: Skip the task when the run's logical date is older than this (stops a backfill
        from turning into a burst of stale messages).
    :param max_failure_ratio: Fail the task after the run when more than this share of attempted sends
        failed.
    :param shard_index: This task's shard, for dynamic task mapping
        (``.partial(shard_count=4).expand(shard_index=[0, 1, 2, 3])``).
    :param shard_count: Number of shards; each keeps a stable hash slice of the recipients.
    :param preflight: Check the template (APPROVED, MARKETING, language, parameters) before the first
        send. Default: on when the connection has a WABA id.
    :param on_empty: What to do when there are no recipients: ``"succeed"``, ``"skip"`` or ``"fail"``.
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
        "body_parameters",
        "header",
        "buttons",
        "components",
        "campaign_id",
        "ledger_conn_id",
        "product_policy",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "components": "json", "parameters": "json"}
    ui_color = "#25D366"

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
        concurrency: int = 32,
        batch_size: int = 500,
        product_policy: str | None = None,
        message_activity_sharing: bool | None = None,
        dry_run: bool = False,
        resend_unknown: bool = False,
        frequency_cap: timedelta | None = None,
        max_lateness: timedelta | None = None,
        max_failure_ratio: float | None = None,
        shard_index: int | None = None,
        shard_count: int = 1,
        preflight: bool | None = None,
        on_empty: str = "succeed",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if recipients is not None and sql is not None:
            raise ValueError("Pass either 'recipients' or 'sql', not both.")
        if sql is not None and not sql_conn_id:
            raise ValueError("'sql' needs 'sql_conn_id', the connection to run it on.")
        if product_policy is not None and product_policy not in PRODUCT_POLICIES:
            raise ValueError(f"'product_policy' must be one of {PRODUCT_POLICIES}, got {product_policy!r}.")
        if on_empty not in ("succeed", "skip", "fail"):
            raise ValueError(f"'on_empty' must be 'succeed', 'skip' or 'fail', got {on_empty!r}.")
        if shard_count < 1:
            raise ValueError(f"'shard_count' must be at least 1, got {shard_count}.")
        if max_failure_ratio is not None and not 0 <= max_failure_ratio <= 1:
            raise ValueError(f"'max_failure_ratio' must be between 0 and 1, got {max_failure_ratio}.")
        self.template_name = template_name
        self.language = language
        self.whatsapp_conn_id = whatsapp_conn_id
        self.recipients = recipients
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.parameters = parameters
        self.recipient_field = recipient_field
        self.default_region = default_region
        self.body_parameters = body_parameters
        self.header = header
        self.buttons = buttons
        self.components = components
        self.campaign_id = campaign_id
        self.ledger_conn_id = ledger_conn_id
        self.ledger_table_prefix = ledger_table_prefix
        self.max_messages_per_second = max_messages_per_second
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.product_policy = product_policy
        self.message_activity_sharing = message_activity_sharing
        self.dry_run = dry_run
        self.resend_unknown = resend_unknown
        self.frequency_cap = frequency_cap
        self.max_lateness = max_lateness
        self.max_failure_ratio = max_failure_ratio
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.preflight = preflight
        self.on_empty = on_empty

    # -- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Run (or resume) the campaign and return its counts."""
        self._skip_if_too_late(context)
        campaign_id = self.campaign_id or default_campaign_id(context)
        hook = WhatsAppHook(whatsapp_conn_id=self.whatsapp_conn_id)
        settings = hook.settings
        personaliser = Personaliser(
            body_parameters=self.body_parameters,
            header=self.header,
            buttons=self.buttons,
            components=self.components,
        )
        client = None if self.dry_run else hook.get_conn()
        if not self.dry_run:
            hook.check_token()
        if self.preflight if self.preflight is not None else bool(settings.waba_id):
            self._preflight(hook, personaliser)

        shard_count = self.shard_count
        shard_index = self.shard_index or 0
        if not 0 <= shard_index < shard_count:
            raise AirflowFailException(f"'shard_index' {shard_index} is outside 0..{shard_count - 1}.")
        rate = self.max_messages_per_second or settings.max_messages_per_second / shard_count
        campaign = CampaignSettings(
            campaign_id=campaign_id,
            template_name=self.template_name,
            language=self.language,
            personaliser=personaliser,
            product_policy=self.product_policy,
            message_activity_sharing=self.message_activity_sharing,
            max_messages_per_second=rate,
            concurrency=self.concurrency,
            batch_size=self.batch_size,
            dry_run=self.dry_run,
            resend_unknown=self.resend_unknown,
            frequency_cap=self.frequency_cap,
            shard_index=shard_index,
            shard_count=shard_count,
            recipient_field=self.recipient_field,
            default_region=self.default_region,
        )
        self.log.info(
            "Campaign %s: template %s/%s, shard %d of %d, up to %.1f messages/s%s.",
            campaign_id,
            self.template_name,
            self.language,
            shard_index + 1,
            shard_count,
            rate,
            " (dry run: nothing is sent)" if self.dry_run else "",
        )
        ledger = get_ledger(self.ledger_conn_id, table_prefix=self.ledger_table_prefix)
        try:
            with self._recipient_source() as source:
                result = run_campaign(source, client=client, ledger=ledger, settings=campaign, log=self.log)
        except CampaignHalted as halted:
            context["ti"].xcom_push(key="campaign_result", value=halted.result.to_dict())
            if isinstance(halted.error, (AuthenticationError, PermissionDeniedError)):
                raise AirflowFailException(str(halted)) from halted
            raise AirflowException(str(halted)) from halted
        finally:
            if client is not None:
                client.close()
            ledger.dispose()
        summary = result.to_dict()
        self._set_outlet_extra(context, summary)
        self._check_outcome(summary)
        return summary

    # -- pieces ----------------------------------------------------------------------------------

    def _skip_if_too_late(self, context: Context) -> None:
        if self.max_lateness is None:
            return
        logical_date = context.get("logical_date")
        if logical_date is None:
            return
        age = datetime.now(UTC) - logical_date
        if age > self.max_lateness:
            raise AirflowSkipException(
                f"Skipping campaign: this run's logical date {logical_date.isoformat()} is {age} old, "
                f"more than max_lateness={self.max_lateness}. Clear the task with a larger max_lateness "
                "to send it anyway."
            )

    def _preflight(self, hook: WhatsAppHook, personaliser: Personaliser) -> None:
        """Fail before the first send when the template cannot be sent as configured."""
        client = hook.get_conn()
        template = client.get_template(self.template_name, self.language)
        name = f"{self.template_name!r} ({self.language})"
        if template is None:
            raise AirflowFailException(
                f"Preflight: template {name} does not exist in WABA {hook.settings.waba_id}. "
                "Check the name and the language code in WhatsApp Manager > Message templates."
            )
        status = str(template.get("status", "")).upper()
        if status != "APPROVED":
            raise AirflowFailException(f"Preflight: template {name} is {status}, not APPROVED.")
        category = str(template.get("category", "")).upper()
        if category != "MARKETING":
            raise AirflowFailException(
                f"Preflight: template {name} is in category {category}; the Marketing Messages API "
                "sends only MARKETING templates (Meta error 134100)."
            )
        problems = check_components(personaliser.sample_components(), template)
        if problems:
            raise AirflowFailException(
                f"Preflight: the parameters for template {name} do not match it: " + "; ".join(problems)
            )
        self.log.info("Preflight: template %s is APPROVED MARKETING and the parameters match.", name)

    def _recipient_source(self) -> _RecipientSource:
        if self.sql is not None:
            return _SqlSource(self.sql_conn_id or "", self.sql, self.parameters, self.batch_size)
        return _ListSource(self.recipients)

    def _set_outlet_extra(self, context: Context, summary: Mapping[str, Any]) -> None:
        outlet_events = context.get("outlet_events")
        if not outlet_events or not self.outlets:
            return
        extra = {k: summary[k] for k in ("campaign_id", "total", "accepted", "failed") if k in summary}
        for outlet in self.outlets:
            try:
                outlet_events[outlet].extra = extra
            except (KeyError, TypeError):  # pragma: no cover - non-asset outlets
                continue

    def _check_outcome(self, summary: Mapping[str, Any]) -> None:
        total = int(summary.get("total", 0))
        if total == 0:
            message = "No recipients: nothing to send."
            if self.on_empty == "fail":
                raise AirflowFailException(message)
            if self.on_empty == "skip":
                raise AirflowSkipException(message)
            self.log.info(message)
        if self.max_failure_ratio is None:
            return
        attempted = sum(int(summary.get(k, 0)) for k in ("accepted", "held", "paused", "failed", "unknown"))
        failed = int(summary.get("failed", 0))
        if attempted and failed / attempted > self.max_failure_ratio:
            raise AirflowException(
                f"{failed} of {attempted} sends failed ({failed / attempted:.1%}), more than "
                f"max_failure_ratio={self.max_failure_ratio:.1%}; errors by code: {summary.get('errors_by_code')}"
            )


def default_campaign_id(context: Mapping[str, Any]) -> str:
    """``dag_id.task_id.run_id``: one campaign per run, shared by the run's mapped shards."""
    ti = context["ti"]
    return f"{ti.dag_id}.{ti.task_id}.{context['run_id']}"


class _RecipientSource:
    """A context manager yielding an iterable of recipients and closing what it opened."""

    def __enter__(self) -> Iterable[Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        return None


class _ListSource(_RecipientSource):
    def __init__(self, recipients: Any) -> None:
        self._recipients = recipients

    def __enter__(self) -> Iterable[Any]:
        if self._recipients is None:
            return []
        if isinstance(self._recipients, (str, bytes)):
            raise AirflowFailException(
                "'recipients' rendered to a string, not a list. Pass the XComArg itself "
                "(e.g. recipients=get_recipients()) or set render_template_as_native_obj=True on the DAG."
            )
        return self._recipients  # type: ignore[no-any-return]


class _SqlSource(_RecipientSource):
    """Stream rows of ``sql`` from a common.sql connection with a server-side cursor where possible."""

    def __init__(self, conn_id: str, sql: str, parameters: Any, batch_size: int) -> None:
        self._conn_id = conn_id
        self._sql = sql
        self._parameters = parameters
        self._batch_size = batch_size
        self._stack: list[Any] = []

    def __enter__(self) -> Iterator[dict[str, Any]]:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = BaseHook.get_connection(self._conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise AirflowFailException(
                f"sql_conn_id {self._conn_id!r} is a {type(hook).__name__}, not a common.sql (DbApiHook) connection."
            )
        conn = closing(hook.get_conn())
        db = conn.__enter__()
        self._stack.append(conn)
        cursor = db.cursor()
        self._stack.append(closing(cursor))
        if self._parameters is None:
            cursor.execute(self._sql)
        else:
            cursor.execute(self._sql, self._parameters)
        return iter_cursor_rows(cursor, batch_size=self._batch_size)

    def __exit__(self, *exc: object) -> None:
        while self._stack:
            self._stack.pop().__exit__(None, None, None)


__all__ = ["MarketingMessageOperator", "default_campaign_id"]
