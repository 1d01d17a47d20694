"""Settings of the sandbox: its identity, approved templates, limits, faults, outcomes, webhooks and
scripted signals (stops, resumes, template pauses, limit and quality changes).

Everything a test, the demo or a benchmark may want to vary is a field of :class:`SandboxConfig`; a
running sandbox takes a new configuration at once (``Sandbox.configure(**changes)``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from airflow_provider_wamm.sandbox.templates import (
    HEADER_FORMATS,
    MESSAGE_STATUSES,
    TEMPLATE_CATEGORIES,
    TEMPLATE_STATUSES,
    SandboxTemplate,
    default_templates,
    normalize_templates,
)

#: Statuses a recipient's message can end in. ``failed:<code>`` fails asynchronously with that code.
OUTCOME_STATUSES = ("sent", "delivered", "read")
#: A forced per-recipient action on the synchronous answer (see :attr:`SandboxConfig.forced_outcomes`).
ForcedAction = Literal["error", "lost", "hang", "drop", "slow"]
FORCED_ACTIONS: tuple[str, ...] = get_args(ForcedAction)
#: How a lost answer is lost: connection closed, silence, or either at random.
LostResponseMode = Literal["drop", "hang", "mixed"]
LOST_RESPONSE_MODES: tuple[str, ...] = get_args(LostResponseMode)


@dataclass(frozen=True)
class ForcedOutcome:
    """What a forced-outcome string means (see :attr:`SandboxConfig.forced_outcomes`)."""

    outcome: str | None = None
    """Asynchronous outcome (``read``, ``delivered``, ``sent``, ``failed:<code>``)."""
    action: str | None = None
    """Synchronous action: ``error``, ``lost``, ``hang``, ``drop`` or ``slow``."""
    code: int | None = None
    """Error code of an ``error`` action."""
    times: int | None = None
    """Apply the action to the first ``times`` attempts only (``None``: every attempt)."""
    message_status: str | None = None
    """``message_status`` to answer (``held_for_quality_assessment`` or ``paused``)."""


def parse_outcome(value: str) -> str:
    """Check an outcome string (``read``, ``delivered``, ``sent`` or ``failed:<code>``) and return it."""
    text = value.strip()
    if text in OUTCOME_STATUSES:
        return text
    if text.startswith("failed:") and text[7:].isdigit():
        return f"failed:{int(text[7:])}"
    raise ValueError(f"outcome {value!r} must be sent, delivered, read or failed:<code>")


def parse_forced(value: str) -> ForcedOutcome:
    """Parse a forced-outcome string such as ``"error:131000#2,read"`` or ``"held"``."""
    outcome = action = status = None
    code = times = None
    for raw in value.split(","):
        part = raw.strip()
        if not part:
            continue
        head, _, count = part.partition("#")
        if head in ("held", "held_for_quality_assessment"):
            status = "held_for_quality_assessment"
        elif head == "paused":
            status = "paused"
        elif head.split(":", 1)[0] in FORCED_ACTIONS:
            name, _, arg = head.partition(":")
            if action is not None:
                raise ValueError(f"forced outcome {value!r} has more than one action")
            action = name
            if name == "error":
                if not arg.isdigit():
                    raise ValueError(f"forced outcome {value!r}: error needs a numeric code (error:131000)")
                code = int(arg)
            elif arg:
                raise ValueError(f"forced outcome {value!r}: {name} takes no argument")
            if count:
                if not count.isdigit() or int(count) < 1:
                    raise ValueError(f"forced outcome {value!r}: #n must be a positive integer")
                times = int(count)
        else:
            outcome = parse_outcome(head)
    return ForcedOutcome(outcome=outcome, action=action, code=code, times=times, message_status=status)


#: What a signal does (see :class:`SignalStep`).
SignalAction = Literal[
    "stop",
    "resume",
    "pause_template",
    "approve_template",
    "disable_template",
    "template_quality",
    "template_category",
    "messaging_limit",
    "quality",
    "account_update",
]
SIGNAL_ACTIONS: tuple[str, ...] = get_args(SignalAction)
#: Messaging limits of a number, lowest first (Meta's tier names).
MESSAGING_TIERS = ("TIER_50", "TIER_250", "TIER_1K", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED")
#: Quality ratings of a phone number.
QUALITY_RATINGS = ("GREEN", "YELLOW", "RED", "NA")
#: Quality scores of a template.
TEMPLATE_QUALITY_SCORES = ("GREEN", "YELLOW", "RED", "UNKNOWN")
_TEMPLATE_ACTIONS = (
    "pause_template",
    "approve_template",
    "disable_template",
    "template_quality",
    "template_category",
)
#: The actions that need a ``value``, and its choices.
_VALUE_CHOICES: dict[str, tuple[str, ...]] = {
    "template_quality": TEMPLATE_QUALITY_SCORES,
    "template_category": TEMPLATE_CATEGORIES,
}
_EVENT_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


@dataclass(frozen=True)
class SignalStep:
    """One of Meta's signals the sandbox acts on and sends as a signed webhook: at once (``POST
    /_sandbox/signals``) or scripted (:attr:`SandboxConfig.signal_steps`, with ``after_sends`` or
    ``at_s``).

    Written as text: ``ACTION:TARGET[/LANGUAGE][=VALUE][@sends=N|@t=SECONDS]``, e.g.
    ``pause_template:spring_sale/en_US@sends=100``, ``stop:4915123456789@t=2``,
    ``template_quality:spring_sale=RED``, ``messaging_limit:TIER_250``.
    """

    action: SignalAction
    """``stop``/``resume`` (a recipient), ``pause_template``/``approve_template``/``disable_template``/
    ``template_quality``/``template_category`` (a template), ``messaging_limit`` (a tier), ``quality``
    (the number's rating), ``account_update`` (an event such as ``MM_LITE_TERMS_SIGNED``)."""
    target: str
    """The recipient (digits or business-scoped user id), the template name, the tier, the rating or
    the account event."""
    language: str | None = None
    """Template actions: only this language of the template (``None``: every language of the name)."""
    value: str | None = None
    """``template_quality``: the new score (``GREEN``, ``YELLOW``, ``RED``, ``UNKNOWN``);
    ``template_category``: the new category (``MARKETING``, ``UTILITY``, ``AUTHENTICATION``)."""
    after_sends: int | None = None
    """Scripted: act once this many messages were accepted since the last reset."""
    at_s: float | None = None
    """Scripted: act this many seconds after the last reset."""

    def __post_init__(self) -> None:
        if self.action not in SIGNAL_ACTIONS:
            raise ValueError(f"signal action {self.action!r} is not one of {SIGNAL_ACTIONS}")
        if not isinstance(self.target, str) or not self.target.strip():
            raise ValueError(f"signal {self.action}: a target is required")
        object.__setattr__(self, "target", self.target.strip().lstrip("+"))
        self._check_target()
        choices = _VALUE_CHOICES.get(self.action)
        if choices is not None and (self.value or "").upper() not in choices:
            raise ValueError(f"signal {self.action} needs a value among {choices}")
        if self.value is not None:
            object.__setattr__(self, "value", self.value.upper())
        if self.language is not None and self.action not in _TEMPLATE_ACTIONS:
            raise ValueError(f"signal {self.action} takes no language")
        if self.after_sends is not None and self.at_s is not None:
            raise ValueError("a signal step is due after_sends or at_s, not both")
        too_soon = self.after_sends is not None and self.after_sends < 1
        if too_soon or (self.at_s is not None and self.at_s < 0):
            raise ValueError("after_sends must be at least 1 and at_s not negative")

    def _check_target(self) -> None:
        """Tiers, ratings and account events are upper-case names from a known set or shape."""
        if self.action not in ("messaging_limit", "quality", "account_update"):
            return
        object.__setattr__(self, "target", self.target.upper())
        if self.action == "account_update":
            if not _EVENT_NAME.match(self.target):
                raise ValueError(f"signal account_update: {self.target!r} is not an event name")
            return
        allowed = MESSAGING_TIERS if self.action == "messaging_limit" else QUALITY_RATINGS
        if self.target not in allowed:
            raise ValueError(f"signal {self.action}: {self.target!r} is not one of {allowed}")

    @property
    def scripted(self) -> bool:
        """Whether it waits for a number of sends or a time (else it is due at once)."""
        return self.after_sends is not None or self.at_s is not None

    @classmethod
    def parse(cls, text: str) -> SignalStep:
        """Read the text form (see the class docstring)."""
        head, _, when = text.strip().partition("@")
        action, sep, rest = head.partition(":")
        if not sep:
            raise ValueError(f"signal {text!r} is not ACTION:TARGET[@sends=N|@t=SECONDS]")
        rest, _, value = rest.partition("=")
        target, _, language = rest.partition("/")
        timing: dict[str, Any] = {}
        if when:
            key, _, number = when.partition("=")
            try:
                if key == "sends":
                    timing["after_sends"] = int(number)
                elif key == "t":
                    timing["at_s"] = float(number)
                else:
                    raise ValueError(key)
            except ValueError:
                raise ValueError(f"signal {text!r}: the timing is @sends=N or @t=SECONDS") from None
        return cls(cast(SignalAction, action.strip()), target, language or None, value or None, **timing)

    @classmethod
    def of(cls, value: SignalStep | str | Mapping[str, Any]) -> SignalStep:
        """A step from its text form, a JSON object of its fields, or itself."""
        if isinstance(value, SignalStep):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, Mapping):
            return cls(**dict(value))
        raise ValueError(f"a signal step is text or an object, not {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view (the fields that are set)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


def _rate(name: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {value!r}")


def _template_outcomes(value: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per-template outcome weights, checked like ``outcomes`` (plus an optional ``click_rate``)."""
    result: dict[str, dict[str, float]] = {}
    for name, weights in dict(value).items():
        own = {k if k == "click_rate" else parse_outcome(k): float(v) for k, v in dict(weights).items()}
        _rate(f"template_outcomes[{name!r}].click_rate", own.get("click_rate", 0.0))
        outcomes = [v for k, v in own.items() if k != "click_rate"]
        if any(v < 0 for v in outcomes) or sum(outcomes) <= 0:
            raise ValueError(f"template_outcomes[{name!r}]: weights must be >= 0 with a positive sum")
        result[str(name)] = own
    return result


#: Fields that are shares of requests or recipients (0 to 1).
_RATE_FIELDS = (
    "fault_5xx_rate",
    "fault_transient_rate",
    "fault_throttle_rate",
    "fault_lost_response_rate",
    "fault_drop_rate",
    "fault_slow_rate",
    "cloud_api_fallback_rate",
    "click_rate",
    "webhook_duplicate_rate",
    "webhook_reorder_rate",
    "latency_spike_rate",
)
#: Fields that are times in seconds (or the log-normal spread), none of them negative.
_DELAY_FIELDS = (
    "latency_s",
    "latency_jitter_s",
    "latency_median_s",
    "latency_sigma",
    "latency_spike_s",
    "latency_step_s",
    "latency_step_at_s",
    "hang_s",
    "slow_response_s",
    "template_sync_s",
)

#: Fields never shown by :meth:`SandboxConfig.to_dict` unless asked.
SECRET_FIELDS = frozenset({"access_token", "app_secret"})


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the sandbox can be told. Defaults mimic a healthy, onboarded account at Meta's limits.

    Immutable: a running sandbox swaps in a new one (``Sandbox.configure(**changes)``).
    """

    # Identity and auth
    access_token: str = "sandbox-token"
    """Bearer token every Graph call must carry (otherwise 401, code 190)."""
    token_expired: bool = False
    """Switch on to make every call fail with 190 (a token that expired mid-campaign)."""
    token_expires_at: int = 0
    """``expires_at`` reported by ``debug_token`` (0: never, like a system-user token)."""
    token_scopes: tuple[str, ...] = (
        "business_management",
        "whatsapp_business_management",
        "whatsapp_business_messaging",
    )
    """Scopes reported by ``debug_token``."""
    app_id: str = "300000000000001"
    """App id (``debug_token``; the app token is ``"<app_id>|<app_secret>"``)."""
    app_secret: str = "sandbox-app-secret"
    """App secret: key of the webhook signatures and part of the app token."""
    phone_number_id: str = "100000000000001"
    """The one phone number id that can send."""
    waba_id: str = "200000000000001"
    """The WhatsApp Business Account id."""
    display_phone_number: str = "+1 555-010-0001"
    """The number as ``GET /<PHONE_NUMBER_ID>`` shows it."""
    verified_name: str = "WAMM Sandbox Shop"
    """Display name of the number."""
    waba_name: str = "WAMM Sandbox"
    """Name of the WABA."""
    quality_rating: str = "GREEN"
    """Quality rating of the number (GREEN, YELLOW, RED, NA)."""
    throughput_level: str = "STANDARD"
    """``throughput.level`` of the number."""
    messaging_limit: str = "TIER_UNLIMITED"
    """``whatsapp_business_manager_messaging_limit`` of the number."""
    echo_callback_data: bool = True
    """Status webhooks echo a send's ``biz_opaque_callback_data`` (as Cloud API's do; Meta does not
    document it for ``marketing_messages``: turn it off to test matching by recipient)."""
    health_status: str = "AVAILABLE"
    """``health_status.can_send_message`` of the number: ``AVAILABLE``, ``LIMITED`` or ``BLOCKED``."""
    onboarding_status: str = "ONBOARDED"
    """``marketing_messages_onboarding_status`` of the WABA; not ONBOARDED routes every send to Cloud API."""

    # Templates
    templates: dict[str, SandboxTemplate] = field(default_factory=default_templates)
    """Known templates by a label (usually the name); lookups are by (name, language)."""

    # Limits
    mps_cap: float | None = 80.0
    """Accepted messages allowed in any 1-second window (``None``: no cap). Above it: 130429."""
    rate_limit_http_status: int = 400
    """HTTP status of a 130429 answer (Meta's sources disagree between 400 and 429)."""
    pair_limit: bool = True
    """Enforce the per-recipient pair rate limit (131056)."""
    pair_interval_s: float = 6.0
    """One message per this many seconds per recipient in steady state (Meta: 6 s)."""
    pair_burst: int = 45
    """Messages a recipient can take in a burst before 131056 (Meta: up to 45 in 6 s)."""

    # Latency: an answer takes latency_s + U(0, latency_jitter_s) + a log-normal draw + a spike
    latency_s: float = 0.0
    """Flat time every Graph answer takes (an ``asyncio`` sleep, so requests overlap)."""
    latency_jitter_s: float = 0.0
    """Uniform random extra latency, 0..this."""
    latency_median_s: float = 0.0
    """Median of the log-normal part of an answer's time, ``median * exp(sigma * N(0, 1))`` (0: none)."""
    latency_sigma: float = 0.0
    """Spread of the log-normal part (the standard deviation of its logarithm; 0: always the median)."""
    latency_spike_rate: float = 0.0
    """Share of answers that take ``latency_spike_s`` longer (a tail of slow answers)."""
    latency_spike_s: float = 0.0
    """Extra time of a spiking answer."""
    latency_step_s: float = 0.0
    """During the step, the log-normal median is this instead of ``latency_median_s`` (0: no step)."""
    latency_step_at_s: float = 0.0
    """Seconds from the first send (since the last reset) until the step starts."""
    latency_step_for_s: float | None = None
    """How long the step lasts before answers recover (``None``: until the next reset)."""

    # Faults (rates are probabilities per send)
    seed: int = 0
    """Seed of the fault RNG, of the per-recipient outcome hash and of the answer times."""
    fault_5xx_rate: float = 0.0
    """500 with code 2, or a bare 502/503 without a Graph envelope."""
    fault_transient_rate: float = 0.0
    """Graph transient errors: code 1, 2 or 131000."""
    fault_throttle_rate: float = 0.0
    """Throttle errors: code 4 or 130429."""
    fault_lost_response_rate: float = 0.0
    """The message is recorded, then the answer is lost (see :attr:`lost_response_mode`)."""
    lost_response_mode: LostResponseMode = "mixed"
    """How an answer is lost: ``drop`` (connection closed), ``hang`` (silence for ``hang_s``), ``mixed``."""
    hang_s: float = 30.0
    """How long a hung answer waits before the connection is closed."""
    fault_drop_rate: float = 0.0
    """The connection is closed before the message is recorded (nothing was sent)."""
    fault_slow_rate: float = 0.0
    """The message is recorded and answered normally, but only after ``slow_response_s``."""
    slow_response_s: float = 30.0
    """Delay of a slow answer (pick it above the client's read timeout)."""
    faults_on_reads: bool = False
    """Apply the fault rates to GET endpoints too (not only to sends)."""

    # Whole-list failures
    template_sync_s: float = 0.0
    """For this many seconds from the first send after the last reset every send answers 131009, as
    Meta may while a template's sync with its ad is not complete (0: never)."""
    broken_media_links: tuple[str, ...] = ()
    """Header media links that cannot be fetched: a send naming one answers 131053."""

    # Outcomes
    outcomes: dict[str, float] = field(
        default_factory=lambda: {"read": 0.5, "delivered": 0.3, "failed:131026": 0.1, "failed:131049": 0.1}
    )
    """Weights of each final outcome (normalised); a recipient's outcome is a seeded hash of the number."""
    forced_outcomes: dict[str, str] = field(default_factory=dict)
    """Per recipient (digits) overrides, comma-separated directives: an outcome (``read``,
    ``failed:131050``), a status (``held``, ``paused``), and one action with optional ``#n`` (first n
    attempts only): ``error:<code>``, ``lost`` (recorded, connection closed), ``hang`` (recorded, no
    answer), ``drop`` (closed before recording), ``slow`` (recorded, late answer)."""
    template_outcomes: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per template name, outcome weights that replace ``outcomes`` for its messages, and optionally its
    own ``click_rate``: ``{"spring_sale_v2": {"read": 0.7, "delivered": 0.3, "click_rate": 0.4}}``
    makes one variant of an A/B test read (and clicked) more than another."""
    cloud_api_fallback_rate: float = 0.0
    """Share of recipients whose sends are routed to Cloud API (pricing category ``marketing``)."""
    click_rate: float = 0.2
    """Share of read messages that also produce a ``marketing_messages_link_click`` user action."""
    price_per_message: float = 0.0
    """Price of a delivered message in ``template_analytics`` cost metrics."""
    webhook_cost: bool = False
    """Give every message ``pricing.cost`` (``price_per_message`` USD) on ``delivered``/``read``; a send
    with a max price (``bid_spec``) always gets it, as at Meta."""

    # Webhooks
    webhook_url: str | None = None
    """Callback URL status webhooks are POSTed to (``None``: no webhooks)."""
    webhook_batch_size: int = 100
    """Most statuses (and user actions) in one POST (Meta: up to 1,000)."""
    webhook_statuses_per_change: int = 1
    """Statuses grouped in one ``changes[].value.statuses[]``; a batch holds several entries."""
    webhook_delay_s: float = 0.05
    """Delay from acceptance to the ``sent`` (or ``failed``) status."""
    webhook_step_s: float = 0.05
    """Delay between ``sent``, ``delivered`` and ``read``."""
    webhook_flush_s: float = 0.05
    """Batching window: a POST carries what fell due within this time after its first event."""
    webhook_duplicate_rate: float = 0.0
    """Share of statuses delivered twice."""
    webhook_reorder_rate: float = 0.0
    """Share of read messages whose ``read`` status is delivered before ``delivered``."""
    webhook_max_attempts: int = 5
    """Delivery attempts per batch (the receiver failing or unreachable) before it is dropped."""
    webhook_retry_s: float = 0.2
    """First retry delay of a failed delivery (doubled each attempt)."""
    webhook_timeout_s: float = 10.0
    """Timeout of one webhook POST."""
    webhook_concurrency: int = 4
    """Webhook POSTs in flight at once (above 1, batches may arrive out of order, as with Meta)."""

    # Meta's other signals
    stopped_users: tuple[str, ...] = ()
    """Recipients (digits or business-scoped user ids) who stopped marketing messages: their sends are
    accepted, then fail with 131050. ``stop`` and ``resume`` signals change it."""
    signal_steps: tuple[SignalStep, ...] = ()
    """Scripted signals (:class:`SignalStep`, or their text or JSON form): each acts and sends its
    webhook once, after a number of accepted sends or some seconds after the last reset."""

    def __post_init__(self) -> None:
        if not isinstance(self.templates, dict) or any(
            not isinstance(t, SandboxTemplate) for t in self.templates.values()
        ):
            object.__setattr__(self, "templates", normalize_templates(self.templates))
        object.__setattr__(self, "token_scopes", tuple(self.token_scopes))
        object.__setattr__(self, "broken_media_links", tuple(str(u) for u in self.broken_media_links))
        object.__setattr__(
            self, "stopped_users", tuple(str(u).strip().lstrip("+") for u in self.stopped_users)
        )
        object.__setattr__(self, "signal_steps", tuple(SignalStep.of(step) for step in self.signal_steps))
        for name in _RATE_FIELDS:
            _rate(name, getattr(self, name))
        if self.mps_cap is not None and self.mps_cap <= 0:
            raise ValueError("mps_cap must be positive or None")
        if self.pair_interval_s <= 0 or self.pair_burst < 1:
            raise ValueError("pair_interval_s must be positive and pair_burst at least 1")
        self._check_latency()
        if self.lost_response_mode not in LOST_RESPONSE_MODES:
            raise ValueError(f"lost_response_mode must be one of {LOST_RESPONSE_MODES}")
        self._check_webhooks()
        outcomes = {parse_outcome(k): float(v) for k, v in dict(self.outcomes).items()}
        if any(v < 0 for v in outcomes.values()) or sum(outcomes.values()) <= 0:
            raise ValueError("outcomes weights must be >= 0 with a positive sum")
        object.__setattr__(self, "outcomes", outcomes)
        object.__setattr__(self, "template_outcomes", _template_outcomes(self.template_outcomes))
        forced = {str(k).lstrip("+"): str(v) for k, v in dict(self.forced_outcomes).items()}
        object.__setattr__(self, "forced_outcomes", forced)
        for value in forced.values():
            parse_forced(value)

    def _check_latency(self) -> None:
        """Latencies and delays are not negative (the step's length may be ``None``: until a reset)."""
        for name in _DELAY_FIELDS:
            if getattr(self, name) < 0:
                raise ValueError(f"latencies and delays must not be negative: {name}={getattr(self, name)!r}")
        if self.latency_step_for_s is not None and self.latency_step_for_s < 0:
            raise ValueError("latencies and delays must not be negative: latency_step_for_s")

    def _check_webhooks(self) -> None:
        """Webhook batch size, counts and URL are in range."""
        if not 1 <= self.webhook_batch_size <= 1000:
            raise ValueError("webhook_batch_size must be between 1 and 1000")
        if (
            self.webhook_statuses_per_change < 1
            or self.webhook_max_attempts < 1
            or self.webhook_concurrency < 1
        ):
            raise ValueError(
                "webhook_statuses_per_change, webhook_max_attempts, webhook_concurrency must be >= 1"
            )
        if self.webhook_url is not None and not str(self.webhook_url).startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")

    def replace(self, **changes: Any) -> SandboxConfig:
        """A copy with ``changes`` applied (validated like a new config)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown sandbox settings: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self, *, include_secrets: bool = False) -> dict[str, Any]:
        """JSON-safe view; the token and app secret are masked unless ``include_secrets``."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "templates":
                value = [t.to_meta() | {"message_status": t.message_status} for t in value.values()]
            elif f.name in SECRET_FIELDS and not include_secrets:
                value = "***"
            elif f.name == "signal_steps":
                value = [step.to_dict() for step in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: SandboxConfig | None = None) -> SandboxConfig:
        """Build (or update ``base`` with) settings from JSON-like data, e.g. a config file or admin call.

        Masked secrets (``"***"``, as :meth:`to_dict` shows them) are ignored, so a shown configuration
        can be sent back as it is.
        """
        changes = {k: v for k, v in data.items() if not (k in SECRET_FIELDS and v == "***")}
        if "templates" in changes:
            changes["templates"] = normalize_templates(changes["templates"])
        return (base or cls()).replace(**changes)

    def __repr__(self) -> str:
        return (
            f"SandboxConfig(phone_number_id={self.phone_number_id!r}, waba_id={self.waba_id!r}, "
            f"mps_cap={self.mps_cap!r}, latency_s={self.latency_s!r}, templates={sorted(self.templates)!r}, "
            f"webhook_url={self.webhook_url!r})"
        )


__all__ = [
    "FORCED_ACTIONS",
    "HEADER_FORMATS",
    "LOST_RESPONSE_MODES",
    "MESSAGE_STATUSES",
    "MESSAGING_TIERS",
    "OUTCOME_STATUSES",
    "QUALITY_RATINGS",
    "SECRET_FIELDS",
    "SIGNAL_ACTIONS",
    "TEMPLATE_CATEGORIES",
    "TEMPLATE_QUALITY_SCORES",
    "TEMPLATE_STATUSES",
    "ForcedAction",
    "ForcedOutcome",
    "LostResponseMode",
    "SandboxConfig",
    "SandboxTemplate",
    "SignalAction",
    "SignalStep",
    "default_templates",
    "normalize_templates",
    "parse_forced",
    "parse_outcome",
]
