"""What a running sandbox knows: the configuration in force and everything recorded since a reset.

:class:`SandboxContext` is what the request handlers and the webhook emitter share. State changes
happen inside request handlers and the emitter, all on the server's one event loop, so no locks are
needed; other threads only read (copies) or swap a whole object (a new :class:`Runtime` on
reconfiguration, a new :class:`SandboxState` on reset), and one assignment is atomic.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_wamm.sandbox.config import ForcedOutcome, SandboxConfig, SignalStep, parse_forced
from airflow_provider_wamm.sandbox.latency import latency_rng
from airflow_provider_wamm.sandbox.validation import CompiledTemplate, normalize_to

#: What the client got for an accepted message.
AnswerKind = Literal["ok", "lost", "slow"]
#: The outcome of every send to a recipient who stopped marketing messages.
STOPPED_OUTCOME = "failed:131050"


@dataclass(slots=True)
class SandboxMessage:
    """One message the sandbox accepted (a send it answered 200, or would have: see lost answers)."""

    wamid: str
    """The ``wamid.…`` it answered."""
    to: str
    """Recipient digits as WhatsApp answers them in ``wa_id`` (or the BSUID when sent by ``recipient``)."""
    input: str
    """``to`` (or ``recipient``) exactly as sent."""
    template: str
    """Template name."""
    language: str
    """Template language code."""
    template_id: str
    """Id of the template."""
    payload: dict[str, Any]
    """The request body."""
    message_status: str
    """``accepted``, ``held_for_quality_assessment`` or ``paused``."""
    outcome: str
    """Final outcome: ``sent``, ``delivered``, ``read`` or ``failed:<code>``."""
    pricing_category: str
    """``marketing_lite`` (MM API) or ``marketing`` (routed to Cloud API)."""
    clicked: bool
    """Whether the recipient clicks (a ``marketing_messages_link_click`` user action)."""
    tracking_token: str
    """``tracking_token`` of its click event."""
    monotonic: float
    """``time.monotonic()`` when accepted (rate windows are measured on it)."""
    timestamp: float
    """Wall-clock ``time.time()`` when accepted."""
    answer: AnswerKind = "ok"
    """What the client got: ``ok``, ``lost`` (connection closed or never answered) or ``slow``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view (admin endpoint)."""
        return {name: getattr(self, name) for name in self.__slots__}


def hash_unit(seed: int, salt: str, key: str) -> float:
    """A number in [0, 1) fixed by ``seed``, ``salt`` and ``key`` (a recipient's outcome, a click...)."""
    digest = hashlib.blake2b(f"{seed}|{salt}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


#: A pause of the sandbox's event loop longer than this is recorded as a deaf spell.
DEAF_AFTER_S = 0.025
#: The spell lasts until the loop keeps its time within this again (it caught up with the backlog).
CAUGHT_UP_S = 0.005


def max_window_count(
    stamps: list[float], window_s: float = 1.0, *, deaf: Sequence[tuple[float, float]] = ()
) -> int:
    """Most of the sorted ``stamps`` within any ``window_s`` seconds (half-open, like the cap).

    :param deaf: spells ``(start, end)`` in which the sandbox could not hear (see
        :attr:`SandboxState.deaf_spells`); windows that overlap one are left out: the requests that came
        during a spell all carry its end, so such a window cannot say how many came within it.
    """
    best = 0
    start = 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window_s:
            start += 1
        if not any(s <= stamp and e > stamp - window_s for s, e in deaf):
            best = max(best, end - start + 1)
    return best


class SandboxState:
    """Everything recorded since the last reset: messages, limits' memory, counters, pending webhooks."""

    def __init__(self, seed: int) -> None:
        self.messages: list[SandboxMessage] = []
        self.window: collections.deque[float] = collections.deque()
        self.pair: dict[str, list[float]] = {}
        self.forced_attempts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[int] = collections.Counter()
        self.requests = 0
        self.send_requests: collections.Counter[str] = collections.Counter()
        """Send requests per recipient (digits or user id) that got past the body's checks."""
        self.in_flight = 0
        """Graph requests being handled or waiting out their latency right now."""
        self.max_in_flight = 0
        """The most Graph requests in flight at once."""
        self.deaf_spells: list[tuple[float, float]] = []
        """``time.monotonic()`` spells in which the event loop ran nothing for longer than
        :data:`DEAF_AFTER_S` (a busy machine, a garbage collection), until it caught up: requests that
        came meanwhile are read, and stamped, all at once when it gets back, so their arrival times
        bunch up."""
        self.first_send_at: float | None = None
        """``time.monotonic()`` of the first send's arrival (the latency step's clock starts there)."""
        self.rng = random.Random(seed)
        """Random source of faults."""
        self.latency_rng = latency_rng(seed)
        """Random source of answer times."""
        self.salt = secrets.token_hex(3)
        self.wamid_seq = itertools.count(1)
        self.heap: list[tuple[Any, ...]] = []
        self.seq = itertools.count()
        self.pending_batches = 0
        self.webhook_posts = 0
        self.webhook_statuses = 0
        self.webhook_actions = 0
        self.webhook_failures = 0
        self.webhook_dropped = 0
        self.webhook_signals = 0
        self.started_at = time.monotonic()
        """``time.monotonic()`` of the reset (scripted signals' ``at_s`` count from it)."""
        self.steps_done: set[SignalStep] = set()
        """Scripted signal steps already acted on."""
        self.signal_log: list[dict[str, Any]] = []
        """The signals acted on since the reset, oldest first (``GET /_sandbox/signals``)."""
        self.template_quality: dict[str, str] = {}
        """Quality score of each template (``name|language``) a ``template_quality`` signal changed."""
        self.on_accepted: Callable[[], None] | None = None
        """Called after each accepted message (runs the scripted steps that are due)."""

    def accept(self, msg: SandboxMessage) -> None:
        """Record an accepted message, then run the scripted steps it makes due."""
        self.messages.append(msg)
        if self.on_accepted is not None:
            self.on_accepted()

    def reseed(self, seed: int) -> None:
        """Restart the random sources from ``seed`` (a configuration with a new seed)."""
        self.rng.seed(seed)
        self.latency_rng = latency_rng(seed)

    def webhook_stats(self) -> dict[str, int]:
        """Counters of webhook delivery."""
        return {
            "pending": len(self.heap),
            "in_flight_batches": self.pending_batches,
            "posts": self.webhook_posts,
            "statuses": self.webhook_statuses,
            "user_actions": self.webhook_actions,
            "signals": self.webhook_signals,
            "failures": self.webhook_failures,
            "dropped": self.webhook_dropped,
        }

    def counts(self, *, per_recipient: bool = False) -> dict[str, Any]:
        """A summary: accepted, duplicates, errors by code, window maximum, outcomes, webhooks."""
        msgs = list(self.messages)
        per = collections.Counter(m.to for m in msgs)
        data: dict[str, Any] = {
            "requests": self.requests,
            "max_in_flight": self.max_in_flight,
            "accepted": len(msgs),
            "recipients": len(per),
            "duplicates": {to: n for to, n in per.items() if n > 1},
            "max_window_count": max_window_count([m.monotonic for m in msgs]),
            "deaf_spells": [list(spell) for spell in self.deaf_spells],
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
            "by_outcome": dict(collections.Counter(m.outcome for m in msgs)),
            "by_message_status": dict(collections.Counter(m.message_status for m in msgs)),
            "by_answer": dict(collections.Counter(m.answer for m in msgs)),
            "webhooks": self.webhook_stats(),
        }
        if per_recipient:
            data["per_recipient"] = dict(per)
            data["send_requests"] = dict(self.send_requests)
        return data


def _outcome_table(weights: Mapping[str, float]) -> list[tuple[float, str]]:
    """Cumulative bounds in ``[0, 1]`` of outcome weights (normalised), for a draw to fall on."""
    total = sum(weights.values())
    table: list[tuple[float, str]] = []
    acc = 0.0
    for outcome, weight in weights.items():
        acc += weight / total
        table.append((acc, outcome))
    return table


@dataclass
class Runtime:
    """A configuration with what is derived from it (swapped as a whole)."""

    config: SandboxConfig
    templates: dict[tuple[str, str], CompiledTemplate] = field(default_factory=dict)
    outcome_table: list[tuple[float, str]] = field(default_factory=list)
    forced: dict[str, ForcedOutcome] = field(default_factory=dict)
    fault_total: float = 0.0
    template_tables: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """Per template name with its own outcomes (``template_outcomes``), its outcome table."""

    @classmethod
    def build(cls, config: SandboxConfig) -> Runtime:
        """Compile the templates, the outcome tables, the forced outcomes and the total fault rate."""
        templates = {(t.name, t.language): CompiledTemplate.build(t) for t in config.templates.values()}
        table = _outcome_table(config.outcomes)
        forced = {k: parse_forced(v) for k, v in config.forced_outcomes.items()}
        for user in config.stopped_users:
            forced[user] = dataclasses.replace(forced.get(user, ForcedOutcome()), outcome=STOPPED_OUTCOME)
        faults = (
            config.fault_drop_rate
            + config.fault_5xx_rate
            + config.fault_transient_rate
            + config.fault_throttle_rate
            + config.fault_lost_response_rate
            + config.fault_slow_rate
        )
        per_template = {
            name: _outcome_table({k: v for k, v in weights.items() if k != "click_rate"})
            for name, weights in config.template_outcomes.items()
        }
        return cls(config, templates, table, forced, faults, per_template)

    def click_rate(self, template: str) -> float:
        """Share of read messages of ``template`` that get a click (its own, else ``click_rate``)."""
        own = self.config.template_outcomes.get(template, {})
        return float(own.get("click_rate", self.config.click_rate))

    def unit(self, salt: str, key: str) -> float:
        """:func:`hash_unit` under this configuration's seed."""
        return hash_unit(self.config.seed, salt, key)

    def hash_outcome(self, key: str, template: str | None = None) -> str:
        """The configured outcome a recipient's seeded hash falls on (the template's own outcomes, if
        ``template_outcomes`` names it)."""
        u = self.unit("outcome", key)
        table = self.template_tables.get(template or "") or self.outcome_table
        for bound, outcome in table:
            if u < bound:
                return outcome
        return table[-1][1]

    def expected_outcome(self, to: str) -> str:
        """The outcome a message to ``to`` will get (forced outcome first, then the seeded hash)."""
        key = normalize_to(to) or to
        forced = self.forced.get(key)
        if forced is not None and forced.outcome is not None:
            return forced.outcome
        return self.hash_outcome(key)


class SandboxContext:
    """The configuration in force and the state since the last reset, shared by the request
    handlers and the webhook emitter (each attribute is replaced as a whole, never edited in place)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.runtime = Runtime.build(config)
        self.state = self._new_state()
        self.step_runner: Callable[[SandboxContext], object] | None = None
        """Runs the scripted signal steps that are due (set by the app that serves this context)."""

    def _new_state(self) -> SandboxState:
        state = SandboxState(self.runtime.config.seed)
        state.on_accepted = self.run_due_steps
        return state

    def run_due_steps(self) -> None:
        """Act on the scripted signal steps that are due (after a send, and on the emitter's ticks)."""
        if self.step_runner is not None and self.runtime.config.signal_steps:
            self.step_runner(self)

    @property
    def config(self) -> SandboxConfig:
        """The configuration in force."""
        return self.runtime.config

    def install(self, config: SandboxConfig) -> SandboxConfig:
        """Put ``config`` in force (one atomic assignment); a new seed reseeds the random sources."""
        reseed = config.seed != self.runtime.config.seed
        self.runtime = Runtime.build(config)
        if reseed:
            self.state.reseed(config.seed)
        return config

    def reset(self, config: SandboxConfig | None = None) -> None:
        """Forget every message, counter, pending webhook and limit; optionally install ``config`` too."""
        if config is not None:
            self.install(config)
        self.state = self._new_state()
