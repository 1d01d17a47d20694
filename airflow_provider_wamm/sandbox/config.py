"""Settings of the sandbox: its identity, approved templates, limits, faults, outcomes and webhooks.

Everything a test, the demo or a benchmark may want to vary is a field of :class:`SandboxConfig`; a
running sandbox takes a new configuration at once (``Sandbox.configure(**changes)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Statuses a recipient's message can end in. ``failed:<code>`` fails asynchronously with that code.
OUTCOME_STATUSES = ("sent", "delivered", "read")
#: ``message_status`` values of a send response.
MESSAGE_STATUSES = ("accepted", "held_for_quality_assessment", "paused")
#: Forced per-recipient actions on the synchronous answer (see :attr:`SandboxConfig.forced_outcomes`).
FORCED_ACTIONS = ("error", "lost", "hang", "drop", "slow")
TEMPLATE_CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
TEMPLATE_STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "PENDING_DELETION")
HEADER_FORMATS = ("TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION")
LOST_RESPONSE_MODES = ("drop", "hang", "mixed")

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")


def _placeholders(text: str | None) -> list[str]:
    """Distinct placeholder names in order of first appearance (``"1"``, ``"first_name"``)."""
    seen: list[str] = []
    for match in _PLACEHOLDER.finditer(text or ""):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


@dataclass(frozen=True)
class SandboxTemplate:
    """An approved (or not) message template the sandbox knows, described the way Meta stores it.

    The send-time checks are derived from the text: ``{{1}}``, ``{{2}}`` placeholders make a
    positional template, ``{{first_name}}`` a named one. Buttons are Meta's template buttons
    (``{"type": "URL", "text": "Shop", "url": "https://shop.example/{{1}}"}``,
    ``{"type": "COPY_CODE", "example": "SAVE20"}``, ``{"type": "QUICK_REPLY", "text": "Stop"}``).
    """

    name: str
    """Template name (``^[a-z0-9_]+$``)."""
    language: str = "en_US"
    """Language code the template was approved in."""
    body_text: str = "Hello!"
    """BODY text with ``{{1}}`` or ``{{name}}`` placeholders."""
    category: str = "MARKETING"
    """MARKETING, UTILITY or AUTHENTICATION (anything but MARKETING is refused with 134100)."""
    status: str = "APPROVED"
    """Meta's review status; PAUSED answers 132015, DISABLED 132016, others 132001."""
    header_format: str | None = None
    """HEADER format: TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION or ``None`` (no header)."""
    header_text: str | None = None
    """Text of a TEXT header (may hold one placeholder)."""
    footer_text: str | None = None
    """Optional FOOTER text."""
    buttons: tuple[Mapping[str, Any], ...] = ()
    """Buttons in Meta's template format."""
    message_status: str = "accepted"
    """``message_status`` of its sends: ``accepted``, ``held_for_quality_assessment`` or ``paused``."""
    id: str | None = None
    """Template id; derived from name and language when not given."""
    examples: Mapping[str, Any] | None = None
    """Example values by placeholder name, shown in the template's ``example`` blocks."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TEMPLATE_NAME.match(self.name):
            raise ValueError(f"template name {self.name!r} must match ^[a-z0-9_]+$")
        if self.category.upper() not in TEMPLATE_CATEGORIES:
            raise ValueError(f"template category {self.category!r} is not one of {TEMPLATE_CATEGORIES}")
        if self.status.upper() not in TEMPLATE_STATUSES:
            raise ValueError(f"template status {self.status!r} is not one of {TEMPLATE_STATUSES}")
        if self.header_format is not None and self.header_format.upper() not in HEADER_FORMATS:
            raise ValueError(f"header_format {self.header_format!r} is not one of {HEADER_FORMATS}")
        if self.message_status not in MESSAGE_STATUSES:
            raise ValueError(f"message_status {self.message_status!r} is not one of {MESSAGE_STATUSES}")
        object.__setattr__(self, "category", self.category.upper())
        object.__setattr__(self, "status", self.status.upper())
        if self.header_format is not None:
            object.__setattr__(self, "header_format", self.header_format.upper())
        object.__setattr__(self, "buttons", tuple(dict(b) for b in self.buttons))
        if self.id is None:
            digest = hashlib.sha256(f"{self.name}|{self.language}".encode()).digest()
            object.__setattr__(self, "id", str(10**15 + int.from_bytes(digest[:6], "big") % (9 * 10**15)))
        positional, named = self._body_kinds()
        if positional and named:
            raise ValueError(f"template {self.name!r} mixes positional and named placeholders")

    def _body_kinds(self) -> tuple[list[str], list[str]]:
        names = _placeholders(self.body_text)
        positional = [n for n in names if n.isdigit()]
        named = [n for n in names if not n.isdigit()]
        return positional, named

    @property
    def parameter_format(self) -> str:
        """``NAMED`` when the body uses named placeholders, else ``POSITIONAL``."""
        return "NAMED" if self._body_kinds()[1] else "POSITIONAL"

    @property
    def body_param_count(self) -> int:
        """Number of body parameters a send must carry."""
        positional, named = self._body_kinds()
        return len(named) if named else len(positional)

    @property
    def body_param_names(self) -> tuple[str, ...]:
        """Names of the body parameters of a NAMED template (empty for positional ones)."""
        return tuple(self._body_kinds()[1])

    def _example(self, key: str) -> str:
        if self.examples and key in self.examples:
            return str(self.examples[key])
        return f"example_{key}"

    def to_meta(self) -> dict[str, Any]:
        """This template as ``GET /<WABA_ID>/message_templates`` returns it."""
        components: list[dict[str, Any]] = []
        if self.header_format == "TEXT":
            header: dict[str, Any] = {"type": "HEADER", "format": "TEXT", "text": self.header_text or ""}
            names = _placeholders(self.header_text)
            if names:
                if self.parameter_format == "NAMED" and not names[0].isdigit():
                    header["example"] = {
                        "header_text_named_params": [
                            {"param_name": names[0], "example": self._example(names[0])}
                        ]
                    }
                else:
                    header["example"] = {"header_text": [self._example(names[0])]}
            components.append(header)
        elif self.header_format == "LOCATION":
            components.append({"type": "HEADER", "format": "LOCATION"})
        elif self.header_format is not None:
            handle = f"https://scontent.whatsapp.net/sandbox/{self.name}.{self.header_format.lower()}"
            components.append(
                {"type": "HEADER", "format": self.header_format, "example": {"header_handle": [handle]}}
            )
        body: dict[str, Any] = {"type": "BODY", "text": self.body_text}
        positional, named = self._body_kinds()
        if named:
            body["example"] = {
                "body_text_named_params": [{"param_name": n, "example": self._example(n)} for n in named]
            }
        elif positional:
            body["example"] = {"body_text": [[self._example(n) for n in positional]]}
        components.append(body)
        if self.footer_text:
            components.append({"type": "FOOTER", "text": self.footer_text})
        if self.buttons:
            components.append({"type": "BUTTONS", "buttons": [dict(b) for b in self.buttons]})
        return {
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }

    @classmethod
    def from_meta(cls, data: Mapping[str, Any], *, message_status: str = "accepted") -> SandboxTemplate:
        """Build a template from Meta's ``message_templates`` format (e.g. a dump of a real account)."""
        header_format = header_text = footer_text = None
        body_text = ""
        buttons: tuple[Mapping[str, Any], ...] = ()
        examples: dict[str, Any] = {}
        for comp in data.get("components") or ():
            kind = str(comp.get("type", "")).upper()
            example = comp.get("example") or {}
            if kind == "HEADER":
                header_format = str(comp.get("format", "TEXT")).upper()
                header_text = comp.get("text")
                names = _placeholders(header_text)
                if names and example.get("header_text"):
                    examples[names[0]] = example["header_text"][0]
                for item in example.get("header_text_named_params") or ():
                    examples[str(item.get("param_name"))] = item.get("example")
            elif kind == "BODY":
                body_text = str(comp.get("text", ""))
                positional = example.get("body_text") or [[]]
                for name, value in zip(_placeholders(body_text), positional[0], strict=False):
                    examples[name] = value
                for item in example.get("body_text_named_params") or ():
                    examples[str(item.get("param_name"))] = item.get("example")
            elif kind == "FOOTER":
                footer_text = comp.get("text")
            elif kind == "BUTTONS":
                buttons = tuple(comp.get("buttons") or ())
        return cls(
            name=str(data["name"]),
            language=str(data.get("language", "en_US")),
            body_text=body_text,
            category=str(data.get("category", "MARKETING")),
            status=str(data.get("status", "APPROVED")),
            header_format=header_format,
            header_text=header_text,
            footer_text=footer_text,
            buttons=buttons,
            message_status=str(data.get("message_status", message_status)),
            id=str(data["id"]) if data.get("id") is not None else None,
            examples=examples or None,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SandboxTemplate:
        """Build a template from either this class's fields or Meta's format (with ``components``)."""
        if "components" in data:
            return cls.from_meta(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown template fields: {sorted(unknown)}")
        values = dict(data)
        if "buttons" in values:
            values["buttons"] = tuple(values["buttons"] or ())
        return cls(**values)


def default_templates() -> dict[str, SandboxTemplate]:
    """A few realistic templates: marketing ones of each parameter kind, a utility one, a paced one."""
    templates = [
        SandboxTemplate(
            name="spring_sale",
            language="en_US",
            body_text="Hi {{1}}, our spring sale is on: {{2}} off everything until Sunday.",
            footer_text="Reply STOP to opt out",
            buttons=(
                {"type": "URL", "text": "Shop now", "url": "https://shop.example.com/spring/{{1}}"},
                {"type": "QUICK_REPLY", "text": "Stop promotions"},
            ),
            examples={"1": "Ana", "2": "20%"},
        ),
        SandboxTemplate(
            name="welcome_named",
            language="en_US",
            body_text="Welcome to our club, {{first_name}}! Your member perks are waiting.",
            examples={"first_name": "Ana"},
        ),
        SandboxTemplate(
            name="coupon_offer",
            language="en_US",
            body_text="{{1}}, here is your coupon for {{2}} off your next order.",
            buttons=({"type": "COPY_CODE", "example": "SAVE20"},),
            examples={"1": "Ana", "2": "15%"},
        ),
        SandboxTemplate(
            name="image_promo",
            language="en_US",
            header_format="IMAGE",
            body_text="New arrivals are here, {{1}}. Take a look!",
            examples={"1": "Ana"},
        ),
        SandboxTemplate(
            name="utility_notice",
            language="en_US",
            category="UTILITY",
            body_text="Your order {{1}} has shipped.",
            examples={"1": "A-1001"},
        ),
        SandboxTemplate(
            name="paced_promo",
            language="en_US",
            body_text="{{1}}, a new collection just dropped.",
            message_status="held_for_quality_assessment",
            examples={"1": "Ana"},
        ),
    ]
    return {t.name: t for t in templates}


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


def _rate(name: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {value!r}")


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

    # Latency
    latency_s: float = 0.0
    """Time every Graph answer takes (an ``asyncio`` sleep, so requests overlap)."""
    latency_jitter_s: float = 0.0
    """Uniform random extra latency, 0..this."""

    # Faults (rates are probabilities per send)
    seed: int = 0
    """Seed of the fault RNG and of the per-recipient outcome hash."""
    fault_5xx_rate: float = 0.0
    """500 with code 2, or a bare 502/503 without a Graph envelope."""
    fault_transient_rate: float = 0.0
    """Graph transient errors: code 1, 2 or 131000."""
    fault_throttle_rate: float = 0.0
    """Throttle errors: code 4 or 130429."""
    fault_lost_response_rate: float = 0.0
    """The message is recorded, then the answer is lost (see :attr:`lost_response_mode`)."""
    lost_response_mode: str = "mixed"
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
    cloud_api_fallback_rate: float = 0.0
    """Share of recipients whose sends are routed to Cloud API (pricing category ``marketing``)."""
    click_rate: float = 0.2
    """Share of read messages that also produce a ``marketing_messages_link_click`` user action."""
    price_per_message: float = 0.0
    """Price of a delivered message in ``template_analytics`` cost metrics."""

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

    def __post_init__(self) -> None:
        if not isinstance(self.templates, dict) or any(
            not isinstance(t, SandboxTemplate) for t in self.templates.values()
        ):
            object.__setattr__(self, "templates", normalize_templates(self.templates))
        object.__setattr__(self, "token_scopes", tuple(self.token_scopes))
        for name in (
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
        ):
            _rate(name, getattr(self, name))
        if self.mps_cap is not None and self.mps_cap <= 0:
            raise ValueError("mps_cap must be positive or None")
        if self.pair_interval_s <= 0 or self.pair_burst < 1:
            raise ValueError("pair_interval_s must be positive and pair_burst at least 1")
        if self.latency_s < 0 or self.latency_jitter_s < 0 or self.hang_s < 0 or self.slow_response_s < 0:
            raise ValueError("latencies and delays must not be negative")
        if self.lost_response_mode not in LOST_RESPONSE_MODES:
            raise ValueError(f"lost_response_mode must be one of {LOST_RESPONSE_MODES}")
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
        outcomes = {parse_outcome(k): float(v) for k, v in dict(self.outcomes).items()}
        if any(v < 0 for v in outcomes.values()) or sum(outcomes.values()) <= 0:
            raise ValueError("outcomes weights must be >= 0 with a positive sum")
        object.__setattr__(self, "outcomes", outcomes)
        forced = {str(k).lstrip("+"): str(v) for k, v in dict(self.forced_outcomes).items()}
        object.__setattr__(self, "forced_outcomes", forced)
        for value in forced.values():
            parse_forced(value)

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


def normalize_templates(value: Any) -> dict[str, SandboxTemplate]:
    """Accept a mapping or a sequence of :class:`SandboxTemplate` or dicts (ours or Meta's format)."""
    items: list[tuple[str | None, Any]]
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = [(None, v) for v in value]
    else:
        raise ValueError("templates must be a mapping or a list of templates")
    result: dict[str, SandboxTemplate] = {}
    for key, item in items:
        template = item if isinstance(item, SandboxTemplate) else SandboxTemplate.from_dict(item)
        label = key or template.name
        if label in result:
            label = f"{template.name}:{template.language}"
        result[label] = template
    return result
