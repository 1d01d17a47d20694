"""The settings of one campaign run (what to send, to whom, how fast) and their validation.

:meth:`CampaignSettings.validate` runs a few small checks, each naming the setting it refuses, so a
user learns which argument to fix before anything is read or sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeGuard, get_args

from airflow_provider_wamm.campaign.breaker import BreakerSettings
from airflow_provider_wamm.campaign.callback import DEFAULT_CALLBACK_DATA, render_callback_data
from airflow_provider_wamm.campaign.experiment_plan import ExperimentPlan, MessageSpec
from airflow_provider_wamm.campaign.experiments import Experiment
from airflow_provider_wamm.campaign.markets import DEFAULT_UNSUPPORTED_MARKETS, check_markets
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.sharding import validate_shard
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.payload import PayloadError, build_marketing_message
from airflow_provider_wamm.graph.recipients import normalize_phone

#: How a run keeps its requests in flight: ``"asyncio"`` as tasks of one event loop
#: (:mod:`~.loop_pool`), ``"threads"`` a thread each (:mod:`~.workers`), ``"auto"`` the event loop
#: whenever the client allows it (a ``GraphClient`` over its own connections: no session, proxy or
#: transport of the caller).
SendEngine = Literal["auto", "asyncio", "threads"]

#: Longest campaign id the ledger's key column holds.
MAX_CAMPAIGN_ID_LENGTH = 255


@dataclass
class CampaignSettings:
    """What to send, to whom, and how fast.

    :param campaign_id: identifies the campaign in the ledger: a recipient gets at most one message
        per campaign id, however often the run is repeated.
    :param template_name: approved marketing template to send.
    :param language: its language code (``en_US``).
    :param personaliser: renders each recipient's template parameters; ``None`` for templates
        without parameters.
    :param product_policy: ``CLOUD_API_FALLBACK`` (Meta's default) or ``STRICT``.
    :param message_activity_sharing: per-message override of the account's activity sharing.
    :param max_messages_per_second: send-rate cap of this run (the phone number's cap divided by the
        number of shards sending at the same time).
    :param concurrency: sending threads at the start; with ``adaptive_concurrency`` the number then
        follows the measured round trips (:mod:`~.concurrency`).
    :param adaptive_concurrency: keep about ``rate * round trip * concurrency_headroom`` requests in
        flight (Little's law over the measured answer times), between ``min_concurrency`` and
        ``max_concurrency``; ``False`` keeps ``concurrency`` threads for the whole run.
    :param min_concurrency: fewest sending threads of an adaptive run.
    :param max_concurrency: most sending threads (and kept-alive connections) of an adaptive run:
        memory and threads stay bounded whatever the round trip (1,024 hold 1,000 msg/s at answers of
        about 0.8 s).
    :param send_engine: ``"auto"`` (default), ``"asyncio"`` or ``"threads"``: keep the requests in
        flight as tasks of one event loop, which costs about a third less CPU per message at 1,000
        messages per second and is not bounded by threads, or a thread each (:data:`SendEngine`).
    :param concurrency_headroom: factor over Little's law, for the tail beyond the 90th percentile of
        the round trips and the time a thread spends outside its request.
    :param share_cap: share the phone number's cap with every other run sending from it at the same
        time (other shards, campaigns, DAGs), through the ledger's ``senders`` table
        (:mod:`~.cap_share`): each takes its share, and grows back when the others end or die.
    :param number_cap: the phone number's cap the runs share, messages per second (default
        ``max_messages_per_second``; this run never sends faster than the latter).
    :param cap_key: the phone number whose cap is shared (default the client's ``phone_number_id``).
    :param cap_share_interval_s: the longest between a sharing run's heartbeats in the ``senders``
        table (it also beats whenever its share changes, and looks at the other senders and adjusts
        its share every 0.2 s, or this often if shorter).
    :param cap_share_expire_s: a sender whose heartbeat is older than this is dead: the others stop
        leaving room for it. Keep it a few intervals long (the machines' clocks must agree within it).
    :param batch_size: recipients read and checked against the ledger per round trip (the first reads
        of a run ask for 32, 64, ... up to it, so the sending starts at once); at most this many are
        claimed in one hand-over to the workers, and outcomes are written at least this often.
    :param dry_run: validate and personalise everything, send nothing, write nothing.
    :param resend_unknown: also send to recipients whose earlier request got no answer (``unknown``);
        they may then receive the message twice.
    :param frequency_cap: skip recipients Meta took a message for from *another* campaign within
        this period (``None``: no cap).
    :param shard_index: this worker's shard (``0 .. shard_count - 1``).
    :param shard_count: number of shards the campaign is split into (by a stable hash of the number).
    :param recipient_field: field (dict key or column) holding the phone number.
    :param default_region: region for numbers written without a country code (``"DE"``).
    :param max_attempts: requests per recipient on transient errors before giving up (``failed``,
        retried by a later run).
    :param progress_interval_s: seconds between progress log lines.
    :param retry_backoff_s: first retry delay after a transient error (doubles each time, jittered).
    :param retry_backoff_max_s: longest retry delay.
    :param throttle_recovery_s: after the rate was lowered for throttling, this many quiet seconds
        raise it again by a quarter, up to ``max_messages_per_second``.
    :param heartbeat_interval_s: how often a running attempt records in the ledger that it is alive.
    :param claims_abandoned_after_s: claims of another attempt of the same campaign that has not
        recorded a heartbeat for this long are abandoned (the process died): they become ``unknown``.
        Claims of a live attempt (two runs of one campaign at once) are left to it: the run waits up
        to this long, once its own input is done, for them to settle. Keep it well above
        ``heartbeat_interval_s``. An older try of the same task instance is over sooner, once its
        heartbeat is older than twice ``heartbeat_interval_s``.
    :param stop_grace_s: when the run is stopped from outside (a killed task), how long it waits for
        the answers of requests already in flight before recording the rest ``unknown``. Airflow kills
        a task 5 s after asking it to stop, so keep it below that, with room to record.
    :param throttle_share: the rate is halved only when throttling answers make up at least this share
        of the answers of the last second (and at least three of them): an isolated throttle is retried
        on its own, a real overload slows the whole sender down.
    :param min_messages_per_second: the rate never drops below this.
    :param max_pair_limit_exponent: a recipient hitting the pair rate limit for the n-th time waits
        ``4 ** min(n - 1, this)`` seconds.
    :param per_user_limit_wait: how long a recipient is left alone after Meta's per-user marketing
        limit (131049).
    :param max_limited_tries: with ``retry_limited``: sends to a recipient after Meta's per-user limit
        (131049), counting the first, after which it is left alone.
    :param limited_retry_for: with ``retry_limited``: how long after the first 131049 retries go on.
    :param min_recovery_rate: with ``retry_limited``: retries stop for the campaign once fewer than this
        share of the recipients retried got through (judged from ``min_recovery_sample`` retried on).
    :param min_recovery_sample: retried recipients needed before ``min_recovery_rate`` is judged.
    :param total_hint: expected number of input rows (for the ETA) when the input has no length.
    :param dedupe_window: recent recipients remembered in memory to catch duplicates cheaply; the
        ledger catches the rest (in a dry run only this window is checked).
    :param rate_headroom: share of the rate left unused: sends are paced at
        ``max_messages_per_second * (1 - rate_headroom)`` and no one-second window of sends ever holds
        more than that (rounded down), even while catching up after a pause, so that the jitter between
        a send and its arrival at Meta (networks, pauses of either side) does not push any one-second
        window at Meta's end over the cap.
    :param circuit_breaker: when the same error on many recipients halts the run, a shared broken
        header link halts it, and a 131009 waits for the template's sync
        (:class:`~.breaker.BreakerSettings`, a dict of its fields, or ``False`` for none of that).
    :param per_user_permanent: how long a recipient who failed with a per-user permanent code (130472
        Meta's experiment, 137000 identity changed) is left out of later campaigns (``None``: not
        suppressed). 131050 (stopped marketing) is suppressed until the user resumes.
    :param template_ttl_s: the template's time-to-live (``message_send_ttl_seconds``), recorded in the
        run's summary for the report and the sensor (see :mod:`~.ttl`); the operator's preflight fills
        it in when the template sets one.
    :param unsupported_markets: regions (ISO 3166) whose numbers are skipped at intake with the reason
        ``market_not_supported``, without a request (see :mod:`~.markets`); ``None`` or empty to send
        to every region.
    :param experiment: holdout, global control group and variants
        (:class:`~airflow_provider_wamm.campaign.experiments.Experiment`): held-back recipients are
        recorded ``skipped`` with their group as the reason, the others get their variant's message;
        the ledger's ``variant`` column records each recipient's group.
    :param callback_data: ``biz_opaque_callback_data`` of each send: ``"{key}"`` (default) is the
        send's callback key (:mod:`~.callback`), which lets the webhook receiver resolve an ``unknown``
        send; a text of your own may hold ``{key}``; ``None`` sends none.
    """

    campaign_id: str
    template_name: str
    language: str
    personaliser: Personaliser | None = None
    product_policy: str | None = None
    message_activity_sharing: bool | None = None
    max_messages_per_second: float = 80.0
    concurrency: int = 32
    adaptive_concurrency: bool = True
    min_concurrency: int = 4
    max_concurrency: int = 1024
    concurrency_headroom: float = 1.25
    send_engine: SendEngine = "auto"
    share_cap: bool = True
    number_cap: float | None = None
    cap_key: str | None = None
    cap_share_interval_s: float = 1.0
    cap_share_expire_s: float = 5.0
    batch_size: int = 500
    dry_run: bool = False
    resend_unknown: bool = False
    frequency_cap: timedelta | None = None
    shard_index: int = 0
    shard_count: int = 1
    recipient_field: str = "phone"
    default_region: str | None = None
    max_attempts: int = 5
    progress_interval_s: float = 5.0
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 60.0
    throttle_recovery_s: float = 10.0
    min_messages_per_second: float = 1.0
    throttle_share: float = 0.2
    heartbeat_interval_s: float = 5.0
    claims_abandoned_after_s: float = 60.0
    stop_grace_s: float = 3.0
    max_pair_limit_exponent: int = 5
    per_user_limit_wait: timedelta = field(default_factory=lambda: timedelta(hours=24))
    max_limited_tries: int = 3
    limited_retry_for: timedelta = field(default_factory=lambda: timedelta(days=7))
    min_recovery_rate: float = 0.1
    min_recovery_sample: int = 20
    total_hint: int | None = None
    dedupe_window: int = 100_000
    rate_headroom: float = 0.02
    circuit_breaker: BreakerSettings | Mapping[str, Any] | bool | None = field(
        default_factory=BreakerSettings
    )
    per_user_permanent: timedelta | None = field(default_factory=lambda: timedelta(days=90))
    unsupported_markets: Sequence[str] | None = DEFAULT_UNSUPPORTED_MARKETS
    template_ttl_s: float | None = None

    @property
    def breaker(self) -> BreakerSettings | None:
        """:attr:`circuit_breaker` as settings (``None``: off)."""
        return BreakerSettings.of(self.circuit_breaker)

    experiment: Experiment | None = None
    callback_data: str | None = DEFAULT_CALLBACK_DATA

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the first invalid setting."""
        _check_campaign_id(self.campaign_id)
        _check_max_rate(self.max_messages_per_second)
        _check_counts(self)
        validate_shard(self.shard_index, self.shard_count)
        _check_pacing(self)
        _check_sharing(self)
        _check_guards(self)
        _check_message(self)
        self.experiment_plan()

    def experiment_plan(self) -> ExperimentPlan | None:
        """The experiment with each variant's message (``None`` without an experiment).

        :raises ConfigurationError: a variant's message is invalid.
        """
        if self.experiment is None:
            return None
        if not isinstance(self.experiment, Experiment):
            kind = type(self.experiment).__name__
            raise ConfigurationError(f"experiment must be an Experiment, got {kind}")
        base = MessageSpec(self.template_name, self.language, self.personaliser, self.product_policy)
        return ExperimentPlan(self.experiment, base)


def _is_number(value: object) -> TypeGuard[int | float]:
    """A real int or float (``True`` is not a rate)."""
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _check_campaign_id(campaign_id: object) -> None:
    """A non-empty string that fits the ledger's key, without surrounding white space."""
    if (
        not isinstance(campaign_id, str)
        or not campaign_id.strip()
        or len(campaign_id) > MAX_CAMPAIGN_ID_LENGTH
    ):
        raise ConfigurationError(
            f"campaign_id must be a non-empty string of at most {MAX_CAMPAIGN_ID_LENGTH} characters"
        )
    if campaign_id != campaign_id.strip():
        raise ConfigurationError(
            f"campaign_id {campaign_id!r} starts or ends with white space; some databases "
            "ignore trailing spaces in keys, so it could be confused with another campaign"
        )


def _check_max_rate(rate: object) -> None:
    """The cap: a positive, finite number of messages per second."""
    if not _is_number(rate) or not math.isfinite(rate) or rate <= 0:
        raise ConfigurationError(f"max_messages_per_second must be a positive number, got {rate!r}")


def _check_counts(settings: CampaignSettings) -> None:
    """Settings that count things must be integers of at least one."""
    for name in (
        "concurrency",
        "min_concurrency",
        "max_concurrency",
        "batch_size",
        "max_attempts",
        "max_limited_tries",
        "min_recovery_sample",
    ):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    if settings.min_concurrency > settings.max_concurrency:
        raise ConfigurationError(
            f"min_concurrency ({settings.min_concurrency}) is above max_concurrency "
            f"({settings.max_concurrency})"
        )
    headroom = settings.concurrency_headroom
    if not _is_number(headroom) or not 1 <= headroom <= 10:
        raise ConfigurationError(f"concurrency_headroom must be a number in [1, 10], got {headroom!r}")


def _check_pacing(settings: CampaignSettings) -> None:
    """Periods and floors: the frequency cap, the lowest rate, progress lines, heartbeats, the stop
    grace, headroom."""
    if settings.frequency_cap is not None and settings.frequency_cap <= timedelta(0):
        raise ConfigurationError("frequency_cap must be a positive timedelta or None")
    if (
        settings.min_messages_per_second <= 0
        or settings.min_messages_per_second > settings.max_messages_per_second
    ):
        raise ConfigurationError(
            "min_messages_per_second must be positive and at most max_messages_per_second"
        )
    if settings.progress_interval_s <= 0:
        raise ConfigurationError("progress_interval_s must be positive")
    if not 0 < settings.heartbeat_interval_s < settings.claims_abandoned_after_s:
        raise ConfigurationError(
            "heartbeat_interval_s must be positive and below claims_abandoned_after_s, got "
            f"{settings.heartbeat_interval_s!r} and {settings.claims_abandoned_after_s!r}"
        )
    grace = settings.stop_grace_s
    if not _is_number(grace) or not 0 <= grace < math.inf:
        raise ConfigurationError(f"stop_grace_s must be a number of seconds >= 0, got {grace!r}")
    headroom = settings.rate_headroom
    if not _is_number(headroom) or not 0 <= headroom < 0.5:
        raise ConfigurationError(f"rate_headroom must be a number in [0, 0.5), got {headroom!r}")
    if settings.send_engine not in get_args(SendEngine):
        raise ConfigurationError(
            f"send_engine must be one of {', '.join(get_args(SendEngine))}, got {settings.send_engine!r}"
        )


def _check_sharing(settings: CampaignSettings) -> None:
    """The shared cap: the number's cap at least the run's own, heartbeats well inside the expiry."""
    number_cap = settings.number_cap
    if number_cap is not None and (
        not _is_number(number_cap) or not math.isfinite(number_cap) or number_cap <= 0
    ):
        raise ConfigurationError(f"number_cap must be a positive number or None, got {number_cap!r}")
    interval, expire = settings.cap_share_interval_s, settings.cap_share_expire_s
    if not (_is_number(interval) and _is_number(expire) and interval > 0 and 2 * interval <= expire):
        raise ConfigurationError(
            "cap_share_interval_s must be positive and cap_share_expire_s at least twice as long, got "
            f"{interval!r} and {expire!r}"
        )


def _check_guards(settings: CampaignSettings) -> None:
    """The circuit breaker, the suppression of per-user permanent codes, the markets skipped."""
    breaker = settings.breaker
    if breaker is not None:
        breaker.validate()
    wait = settings.per_user_permanent
    if wait is not None and (not isinstance(wait, timedelta) or wait <= timedelta(0)):
        raise ConfigurationError(f"per_user_permanent must be a positive timedelta or None, got {wait!r}")
    check_markets(settings.unsupported_markets)


def _check_message(settings: CampaignSettings) -> None:
    """The region and the parts of the payload every message shares, checked once."""
    if settings.default_region is not None:
        normalize_phone("+4915123456789", default_region=settings.default_region)  # raises if unknown
    try:
        build_marketing_message(
            to="10000000000",
            template_name=settings.template_name,
            language=settings.language,
            product_policy=settings.product_policy,
            message_activity_sharing=settings.message_activity_sharing,
            biz_opaque_callback_data=render_callback_data(
                settings.callback_data, "c" * MAX_CAMPAIGN_ID_LENGTH, "10000000000"
            ),
        )
    except PayloadError as exc:
        raise ConfigurationError(f"invalid campaign settings: {exc}") from None


__all__ = [
    "MAX_CAMPAIGN_ID_LENGTH",
    "CampaignSettings",
    "SendEngine",
]
