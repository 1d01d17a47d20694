"""``MarketingMessageOperator``: send an approved marketing template to every recipient, once.

A thin Airflow adapter over the campaign engine (:mod:`airflow_provider_wamm.campaign`): it reads the
connections and the task context, opens the recipient source, runs
:func:`~airflow_provider_wamm.campaign.sender.run_campaign` and turns its outcome into XCom, task
states and messages that say what to fix.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
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
from airflow_provider_wamm.campaign.result import CampaignHalted
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.campaign.sources import iter_cursor_rows
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.errors import (
    AuthenticationError,
    ConfigurationError,
    GraphError,
    GraphTransportError,
    PermissionDeniedError,
    TemplateError,
    advice_for,
)
from airflow_provider_wamm.graph.templates import TemplateSpec, check_components
from airflow_provider_wamm.hooks.ledger import DEFAULT_TABLE_PREFIX, get_ledger
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Values of ``product_policy``.
PRODUCT_POLICIES = ("CLOUD_API_FALLBACK", "STRICT")
#: Values of ``on_empty``.
ON_EMPTY = ("succeed", "skip", "fail")
#: XCom key of the counts pushed when a campaign halts (the task then fails, so it returns nothing).
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
    }
)
#: The other settings, which ``campaign_options`` may tune.
CAMPAIGN_OPTIONS = frozenset(f.name for f in dataclasses.fields(CampaignSettings)) - _DIRECT_SETTINGS


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _as_bool(value: Any, name: str) -> bool:
    """A boolean argument that may have been rendered from a template to ``"True"``/``"false"``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "", "none"):
        return False
    raise AirflowFailException(f"{name!r} must be true or false, got {value!r}.")


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise AirflowFailException(f"{name!r} must be a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AirflowFailException(f"{name!r} must be a number, got {value!r}.") from None
    if not number > 0:
        raise AirflowFailException(f"{name!r} must be above 0, got {value!r}.")
    return number


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise AirflowFailException(f"{name!r} must be an integer, got {value!r}.")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AirflowFailException(f"{name!r} must be an integer, got {value!r}.") from None


class MarketingMessageOperator(BaseOperator):
    """Send a WhatsApp marketing template to each recipient through the Marketing Messages API.

    Every send goes through the ledger: a task retry, a cleared task or a re-run backfill resumes the
    campaign instead of messaging anyone twice. Recipients come from ``recipients`` (a list or an XComArg
    of phone strings or dicts) or from ``sql`` run on ``sql_conn_id`` (rows streamed, never loaded whole).
    Returns a small dict of counts as XCom (never per-recipient data): ``campaign_id``, ``total``,
    ``accepted``, ``held``, ``paused``, ``failed``, ``skipped``, ``unknown``, ``duplicates``, ``invalid``,
    ``suppressed``, ``errors_by_code``, ``elapsed_s``, ``messages_per_second`` and more.

    :param template_name: Name of an approved MARKETING template.
    :param language: Template language code, e.g. ``en_US``.
    :param whatsapp_conn_id: The ``whatsapp`` connection (token, phone number id, WABA id, rate cap).
    :param recipients: A list of phone numbers or of dicts (one key holds the phone, the others feed
        personalisation); an XComArg of such a list works too. The rows are not kept in Airflow's
        rendered template fields (the UI shows only their count).
    :param sql: Query returning one row per recipient (or the path of a ``.sql`` file next to the DAG,
        rendered with Jinja); mutually exclusive with ``recipients``.
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
    :param ledger_conn_id: Connection of the ledger database (postgres, mysql or sqlite; PostgreSQL in
        production); default a SQLite file under ``AIRFLOW_HOME`` (one machine only).
    :param ledger_table_prefix: Prefix of the ledger's tables.
    :param max_messages_per_second: Cap for this task; default the connection's cap divided by
        ``shard_count``.
    :param concurrency: Requests in flight at once. Default: enough to hold the rate at round trips of
        up to 200 ms (rate / 5, between 8 and 256).
    :param batch_size: Recipients claimed and recorded per ledger round trip (also the SQL fetch size).
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
    :param shard_index: This task's shard, for dynamic task mapping
        (``.partial(shard_count=4).expand(shard_index=[0, 1, 2, 3])``).
    :param shard_count: Number of shards; each keeps a stable hash slice of the recipients.
    :param preflight: Check the template (APPROVED, MARKETING, language, parameters) before the first
        send. Default: on when the connection has a WABA id, except in a dry run.
    :param on_empty: What to do when there are no recipients: ``"succeed"``, ``"skip"`` or ``"fail"``.
    :param campaign_options: Advanced settings of the campaign engine, by name (see
        :class:`~airflow_provider_wamm.campaign.sender.CampaignSettings`), e.g.
        ``{"max_attempts": 3, "progress_interval_s": 30}``.
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
        campaign_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if recipients is not None and sql is not None:
            raise ValueError("Pass either 'recipients' or 'sql', not both.")
        if sql is not None and not sql_conn_id:
            raise ValueError("'sql' needs 'sql_conn_id', the connection to run it on.")
        if on_empty not in ON_EMPTY:
            raise ValueError(f"'on_empty' must be one of {ON_EMPTY}, got {on_empty!r}.")
        if max_failure_ratio is not None and not 0 <= max_failure_ratio <= 1:
            raise ValueError(f"'max_failure_ratio' must be between 0 and 1, got {max_failure_ratio}.")
        unknown = sorted(set(campaign_options or {}) - CAMPAIGN_OPTIONS)
        if unknown:
            raise ValueError(
                f"Unknown campaign_options {unknown}; the operator's own arguments set the others. "
                f"Allowed: {sorted(CAMPAIGN_OPTIONS)}."
            )
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
        # Not ``self.dry_run``: that is BaseOperator's method rendering the template fields.
        self.is_dry_run = dry_run
        self.resend_unknown = resend_unknown
        self.frequency_cap = frequency_cap
        self.max_lateness = max_lateness
        self.max_failure_ratio = max_failure_ratio
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.preflight = preflight
        self.on_empty = on_empty
        self.campaign_options = dict(campaign_options or {})
        #: The rendered recipient rows, kept out of ``recipients`` (see ``_do_render_template_fields``).
        self._recipient_rows: Any = None
        # Templated values are checked after rendering, in execute(); the rest fail at parse time.
        problem = self._check_product_policy()
        if problem:
            raise ValueError(problem)

    # -- rendering -------------------------------------------------------------------------------

    def _do_render_template_fields(
        self, parent: Any, template_fields: Iterable[str], *args: Any, **kwargs: Any
    ) -> None:
        """Render as usual, then keep the recipient rows aside and leave a count in ``recipients``.

        Airflow stores every rendered template field in its database and shows it in the UI
        ("Rendered Template"); recipient rows (phone numbers, names) must not end up there.
        """
        super()._do_render_template_fields(parent, template_fields, *args, **kwargs)
        if parent is not self or "recipients" not in template_fields:
            return
        rows = self.recipients
        if rows is None or isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            return  # nothing to hide; execute() explains what is wrong with it
        self._recipient_rows = rows
        count = f"{len(rows)} recipients" if isinstance(rows, Sized) else "recipients"
        self.recipients = f"<{count}: not shown>"

    # -- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Run (or resume) the campaign and return its counts."""
        problem = self._check_product_policy()
        if problem:
            raise AirflowFailException(problem)
        dry_run = _as_bool(self.is_dry_run, "dry_run")
        self._skip_if_too_late(context)
        campaign_id = self.campaign_id or default_campaign_id(context)
        hook = WhatsAppHook(whatsapp_conn_id=self.whatsapp_conn_id)
        try:
            settings = self._campaign_settings(hook, campaign_id, dry_run)
        except ConfigurationError as exc:
            raise AirflowFailException(f"Campaign {campaign_id!r} is misconfigured: {exc}") from exc
        hook.pool_maxsize = settings.concurrency  # one kept-alive connection per sender thread
        client: GraphClient | None = None
        try:
            preflight = self.preflight if self.preflight is not None else bool(hook.waba_id) and not dry_run
            if preflight:
                self._preflight(hook, settings.personaliser, explicit=self.preflight is not None)
            if not dry_run:
                client = hook.get_conn()
                hook.check_token()
            summary = self._run(context, settings, client)
        except ConfigurationError as exc:
            raise AirflowFailException(f"Campaign {campaign_id!r} is misconfigured: {exc}") from exc
        finally:
            hook.close()
        self._set_outlet_extra(context, summary)
        self._check_outcome(summary)
        return summary

    def _run(
        self, context: Context, settings: CampaignSettings, client: GraphClient | None
    ) -> dict[str, Any]:
        ledger = get_ledger(self.ledger_conn_id, table_prefix=self.ledger_table_prefix)
        try:
            with self._recipient_source(settings) as source:
                result = run_campaign(source, client=client, ledger=ledger, settings=settings, log=self.log)
        except CampaignHalted as halted:
            context["ti"].xcom_push(key=HALTED_RESULT_KEY, value=halted.result.to_dict())
            message = halt_message(halted)
            self.log.error("%s", message)
            if isinstance(halted.error, (AuthenticationError, PermissionDeniedError, TemplateError)):
                raise AirflowFailException(message) from halted
            raise AirflowException(message) from halted
        finally:
            ledger.dispose()
        return result.to_dict()

    # -- pieces ----------------------------------------------------------------------------------

    def _check_product_policy(self) -> str | None:
        """Normalise ``product_policy``; the problem with it, if any (a template is checked once rendered)."""
        policy = self.product_policy
        if not policy or _is_templated(policy):
            self.product_policy = policy or None
            return None
        if str(policy).upper() not in PRODUCT_POLICIES:
            return f"'product_policy' must be one of {PRODUCT_POLICIES}, got {policy!r}."
        self.product_policy = str(policy).upper()
        return None

    def _campaign_settings(self, hook: WhatsAppHook, campaign_id: str, dry_run: bool) -> CampaignSettings:
        """The engine's settings from the rendered arguments and the connection."""
        shard_count = _as_int(self.shard_count, "shard_count")
        shard_index = _as_int(self.shard_index if self.shard_index is not None else 0, "shard_index")
        if shard_count < 1:
            raise ConfigurationError(f"'shard_count' must be at least 1, got {shard_count}.")
        if not 0 <= shard_index < shard_count:
            raise ConfigurationError(
                f"'shard_index' {shard_index} is outside 0..{shard_count - 1} (shard_count={shard_count})."
            )
        if self.max_messages_per_second is not None:
            rate = _as_float(self.max_messages_per_second, "max_messages_per_second")
        else:
            rate = hook.max_messages_per_second / shard_count
        options = dict(self.campaign_options)
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
            product_policy=self.product_policy,
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
            **options,
        )
        settings.validate()
        return settings

    def _skip_if_too_late(self, context: Context) -> None:
        if self.max_lateness is None:
            return
        logical_date = context.get("logical_date")
        if logical_date is None:  # a run without a logical date (manual trigger): it is never late
            return
        age = datetime.now(UTC) - logical_date
        if age > self.max_lateness:
            message = (
                f"Skipping the campaign: this run's logical date {logical_date.isoformat()} is {age} old, "
                f"more than max_lateness={self.max_lateness}. Nothing was sent. Clear the task with a "
                "larger max_lateness to send it anyway."
            )
            self.log.warning("%s", message)
            raise AirflowSkipException(message)

    def _preflight(self, hook: WhatsAppHook, personaliser: Personaliser | None, *, explicit: bool) -> None:
        """Fail before the first send when the template cannot be sent as configured."""
        name = f"{self.template_name!r} ({self.language})"
        client = hook.get_conn()
        try:
            template = client.get_template(self.template_name, self.language)
            languages: list[str] = []
            if template is None:
                languages = sorted(
                    {
                        str(t.get("language"))
                        for t in client.list_templates(name=self.template_name)
                        if t.get("name") == self.template_name
                    }
                )
        except AuthenticationError as exc:
            raise AirflowFailException(f"Preflight: reading template {name} failed: {exc}") from exc
        except PermissionDeniedError as exc:
            message = (
                f"Preflight: the access token may not read the templates of WABA {hook.waba_id} ({exc}); "
                "give it the whatsapp_business_management permission"
            )
            if explicit:
                raise AirflowFailException(message + ".") from exc
            self.log.warning("%s, or set preflight=False. Sending without the template check.", message)
            return
        except (GraphError, GraphTransportError) as exc:
            raise AirflowException(f"Preflight: reading template {name} failed: {exc}") from exc
        if template is None:
            if languages:
                where = f"it exists only in {', '.join(languages)}: set 'language' to one of them"
            else:
                where = (
                    "no template of that name exists; check the name (WhatsApp Manager > Message templates)"
                )
            raise AirflowFailException(
                f"Preflight: template {name} was not found in WABA {hook.waba_id}: {where}. Nothing was sent."
            )
        spec = TemplateSpec.from_api(template)
        problems = spec.marketing_problems()
        sample = personaliser.sample_components() if personaliser is not None else []
        mismatch = check_components(sample, spec)
        if mismatch:
            problems += mismatch
            problems.append(f"the template needs: {spec.describe()}")
        if problems:
            raise AirflowFailException(
                f"Preflight: template {name} cannot be sent as configured: " + "; ".join(problems) + ". "
                "Nothing was sent."
            )
        self.log.info("Preflight: template %s is APPROVED MARKETING and the parameters match.", name)

    def _recipient_source(self, settings: CampaignSettings) -> _RecipientSource:
        if self.sql is not None:
            return _SqlSource(
                self.sql_conn_id or "",
                self.sql,
                self.parameters,
                batch_size=settings.batch_size,
                recipient_field=settings.recipient_field,
            )
        return _ListSource(self._recipient_rows if self._recipient_rows is not None else self.recipients)

    def _set_outlet_extra(self, context: Context, summary: Mapping[str, Any]) -> None:
        outlet_events = context.get("outlet_events")
        # Not ``not outlet_events``: Airflow's accessor mapping is lazy, so it is empty (falsy) until used.
        if outlet_events is None or not self.outlets:
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
                raise AirflowFailException(message + " (on_empty='fail')")
            if self.on_empty == "skip":
                raise AirflowSkipException(message)
            self.log.info("%s", message)
        if self.max_failure_ratio is None:
            return
        attempted = sum(int(summary.get(k, 0)) for k in ("accepted", "held", "paused", "failed", "unknown"))
        failed = int(summary.get("failed", 0))
        if attempted and failed / attempted > self.max_failure_ratio:
            raise AirflowFailException(
                f"{failed} of {attempted} sends failed ({failed / attempted:.1%}), more than "
                f"max_failure_ratio={self.max_failure_ratio:.1%}; errors by code: "
                f"{summary.get('errors_by_code')}. Clearing the task resumes the campaign: transient "
                "failures are retried, permanent ones are not."
            )


def default_concurrency(messages_per_second: float) -> int:
    """Sender threads enough to hold ``messages_per_second`` at round trips of up to 200 ms."""
    return max(8, min(256, math.ceil(messages_per_second / 5)))


def default_campaign_id(context: Mapping[str, Any]) -> str:
    """``dag_id.task_id.run_id``: one campaign per run, shared by the run's mapped shards."""
    ti = context["ti"]
    return f"{ti.dag_id}.{ti.task_id}.{context['run_id']}"


def halt_message(halted: CampaignHalted) -> str:
    """What happened and what to fix, for a campaign stopped by an account-level error."""
    error, result = halted.error, halted.result
    advice = advice_for(error)
    text = (
        f"Campaign {result.campaign_id!r} halted after {result.sent} messages on Graph error {error.code} "
        f"({error.title}): {error}."
    )
    if advice:
        text += f" {advice}"
    return text + (
        f" {result.released} claimed recipients were released unsent. After fixing this, clear the task "
        "(same campaign_id): the campaign resumes and nobody gets a second message."
    )


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
        recipients = self._recipients
        if recipients is None:
            return []
        if isinstance(recipients, (str, bytes)):
            raise AirflowFailException(
                "'recipients' rendered to a string, not a list. Pass the XComArg itself "
                "(e.g. recipients=get_recipients()) or set render_template_as_native_obj=True on the DAG."
            )
        if isinstance(recipients, Mapping) or not isinstance(recipients, Iterable):
            raise AirflowFailException(
                f"'recipients' must be a list of phone numbers or of dicts, got {type(recipients).__name__}."
            )
        return recipients


class _PrefetchingCursor:
    """A cursor whose ``description`` is only known after the first fetch (e.g. named cursors)."""

    def __init__(self, cursor: Any, batch_size: int) -> None:
        self._cursor = cursor
        self._first: list[Any] | None = list(cursor.fetchmany(batch_size))
        self.description = cursor.description

    def fetchmany(self, size: int) -> Sequence[Any]:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._cursor.fetchmany(size)


def _streaming_cursor(db: Any) -> Any:
    """A cursor that fetches rows from the server as they are read, where the driver needs asking."""
    driver = type(db).__module__.split(".", 1)[0]
    if driver in ("psycopg", "psycopg2"):
        return db.cursor(name=f"wamm_recipients_{uuid.uuid4().hex[:12]}")
    if driver == "pymysql":
        import pymysql.cursors

        return db.cursor(pymysql.cursors.SSCursor)
    if driver == "MySQLdb":
        import MySQLdb.cursors

        return db.cursor(MySQLdb.cursors.SSCursor)
    return db.cursor()  # sqlite3 and most others already stream with fetchmany


class _SqlSource(_RecipientSource):
    """Stream rows of ``sql`` from a common.sql connection, ``batch_size`` rows at a time."""

    def __init__(
        self, conn_id: str, sql: str, parameters: Any, *, batch_size: int, recipient_field: str
    ) -> None:
        self._conn_id = conn_id
        self._sql = sql
        self._parameters = parameters
        self._batch_size = batch_size
        self._recipient_field = recipient_field
        self._closers: list[Any] = []

    def __enter__(self) -> Iterator[dict[str, Any]]:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = BaseHook.get_connection(self._conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise AirflowFailException(
                f"sql_conn_id {self._conn_id!r} is a {type(hook).__name__}, not a SQL database connection "
                "(common.sql DbApiHook)."
            )
        try:
            db = hook.get_conn()
            self._closers.append(db.close)
            cursor = _streaming_cursor(db)
            self._closers.append(cursor.close)
            if self._parameters is None:
                cursor.execute(self._sql)
            else:
                cursor.execute(self._sql, self._parameters)
            if cursor.description is None:
                cursor = _PrefetchingCursor(cursor, self._batch_size)
            if cursor.description is None:
                raise AirflowFailException(
                    "'sql' returned no result set: it must be a SELECT returning one row per recipient."
                )
            return iter_cursor_rows(cursor, batch_size=self._batch_size, required_field=self._recipient_field)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        while self._closers:
            close = self._closers.pop()
            try:
                close()
            except Exception:  # closing a cursor of a failed query must not hide the real error
                continue


__all__ = ["CAMPAIGN_OPTIONS", "HALTED_RESULT_KEY", "MarketingMessageOperator", "default_campaign_id"]
