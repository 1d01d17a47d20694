"""Errors that fail a whole list one recipient at a time: the campaign's circuit breaker.

A Graph error that is "permanent for this recipient" can in fact be the campaign's problem: a wrong
parameter every row shares (code 100), a header media link every row sends (131052/131053), a template
whose ad sync is not complete yet (131009). Recording it recipient by recipient burns the whole list.
:class:`CampaignGuard` watches the answers of one run and says when to stop or wait instead:

* **circuit breaker**: ``consecutive`` final failures in a row with the same code and details, or more
  than ``share`` of the last ``window`` answers failing with one code and details, halt the run with
  :class:`CircuitBreakerTripped` (unsent claims released; the task fails without retries). Codes that
  are about the person, not the campaign (:data:`PER_RECIPIENT_CODES`), never trip it.
* **shared media link**: ``media_failures`` media errors naming the same header link halt the run:
  every row sending that link would fail the same way.
* **template sync**: 131009 on ``marketing_messages`` may mean the template's sync with its ad is not
  complete ("Using Templates before syncing is complete [...] may fail with error 131009"; the sync
  takes up to 10 minutes after a template is created, after onboarding, and on the first send of a
  template unused for 7 days: "Send Marketing Messages",
  ``developers.facebook.com/documentation/business-messaging/whatsapp/marketing-messages/send-marketing-messages``,
  May 21, 2026). While no message of the run was accepted, a 131009 holds every send for
  ``sync_wait_s`` and sends the recipient again afterwards, up to ``sync_waits`` times; nobody is
  recorded failed for it. Once a message was accepted the template is synced, and 131009 is the
  recipient's own parameter problem again.

Nothing here touches the ledger, the network or Airflow; :class:`~.answers.AnswerHandler` asks.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignResult
from airflow_provider_wamm.graph.codes import CODE_PER_USER_LIMIT, PER_USER_PERMANENT_CODES
from airflow_provider_wamm.graph.errors import ConfigurationError, GraphError

#: The code that may mean "template not synced with its ad yet" on ``marketing_messages``.
CODE_TEMPLATE_SYNC = 131009
#: Media download / upload errors: a header link that cannot be fetched.
MEDIA_CODES = frozenset({131052, 131053})
#: Codes about the person, not the campaign: however many recipients get them, they never trip the
#: breaker (a list of people who stopped marketing messages is still a list of people). 131026:
#: undeliverable (not on WhatsApp, old app, terms not accepted); 131049: Meta's per-user limit (and
#: every US number); 131050, 130472, 137000: per-user permanent codes.
PER_RECIPIENT_CODES = frozenset({131026, CODE_PER_USER_LIMIT}) | PER_USER_PERMANENT_CODES
#: Characters of ``details`` that tell two errors apart (Meta's details name the parameter).
DETAILS_KEY_CHARS = 200

ErrorKey = tuple[int | None, str]
"""An error as the breaker compares it: its code and the start of its details."""


@dataclass(frozen=True)
class BreakerSettings:
    """When a run stops or waits instead of recording the same error for everyone.

    :param consecutive: this many final failures in a row with one code and details halt the run.
    :param window: the share rule looks at this many last answers (accepted or final failure).
    :param share: more than this share of the last ``window`` answers failing with one code and details
        halts the run (only once ``window`` answers were seen).
    :param media_failures: this many media errors (131052/131053) naming the same header link halt the
        run (``0``: never).
    :param sync_wait_s: how long every send waits after a 131009 while nothing was accepted yet.
    :param sync_waits: how many such waits a run makes; after them 131009 is a recipient error.
    """

    consecutive: int = 20
    window: int = 100
    share: float = 0.8
    media_failures: int = 5
    sync_wait_s: float = 600.0
    sync_waits: int = 3

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the first invalid field."""
        for name in ("consecutive", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"circuit_breaker.{name} must be an integer >= 1, got {value!r}")
        for name in ("media_failures", "sync_waits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"circuit_breaker.{name} must be an integer >= 0, got {value!r}")
        if not isinstance(self.share, (int, float)) or not 0 < self.share <= 1:
            raise ConfigurationError(f"circuit_breaker.share must be in (0, 1], got {self.share!r}")
        wait = self.sync_wait_s
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < math.inf:
            raise ConfigurationError(f"circuit_breaker.sync_wait_s must be seconds >= 0, got {wait!r}")

    @classmethod
    def of(cls, value: BreakerSettings | Mapping[str, Any] | bool | None) -> BreakerSettings | None:
        """Settings from what a user passes: themselves, a dict of fields, ``True`` (the defaults), or
        ``False``/``None`` (no breaker, no sync wait, no media watch)."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, BreakerSettings):
            return value
        if isinstance(value, Mapping):
            names = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ConfigurationError(f"circuit_breaker: unknown fields {unknown}; known: {sorted(names)}")
            return cls(**dict(value))
        raise ConfigurationError(
            "circuit_breaker must be BreakerSettings, a dict of its fields or False, "
            f"got {type(value).__name__}"
        )


class CircuitBreakerTripped(CampaignHalted):
    """The same error hit so many recipients that it is the campaign's problem, not theirs.

    Like :class:`~.result.CampaignHalted`: nothing more was sent, answers in flight were recorded and
    unsent claims released, so a run after the fix resumes without sending anyone twice. Retrying
    without a fix would fail the same way, so the operator fails the task without retries.
    """

    _init_args = ("error", "result", "reason")

    def __init__(self, error: GraphError, result: CampaignResult, reason: str) -> None:
        super().__init__(error, result)
        #: Why the breaker tripped, in words.
        self.reason = reason
        self.args = (f"campaign {result.campaign_id!r} halted by its circuit breaker: {reason}",)


def error_key(error: GraphError) -> ErrorKey:
    """What the breaker compares: the code and the start of the details (or the message)."""
    return error.code, str(error.details or error.message or "")[:DETAILS_KEY_CHARS]


def media_links(payload: Mapping[str, Any]) -> Iterator[str]:
    """The media links of a payload's header parameters (carousel cards' too)."""
    template = payload.get("template")
    components = template.get("components") if isinstance(template, Mapping) else None
    yield from _links_in(components or [])


def _links_in(components: Any) -> Iterator[str]:
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, Mapping):
            continue
        if component.get("type") == "header":
            for parameter in component.get("parameters") or []:
                media = parameter.get(parameter.get("type")) if isinstance(parameter, Mapping) else None
                if isinstance(media, Mapping) and isinstance(media.get("link"), str):
                    yield media["link"]
        for card in component.get("cards") or []:
            if isinstance(card, Mapping):
                yield from _links_in(card.get("components"))


class CampaignGuard:
    """Watches one run's answers: trips the breaker, halts on a shared broken link, waits for a sync.

    :param settings: the thresholds; ``None`` turns every watch off.
    """

    def __init__(self, settings: BreakerSettings | None) -> None:
        self.s = settings
        self._streak: tuple[ErrorKey | None, int] = (None, 0)
        self._recent: deque[ErrorKey | None] = deque()
        self._counts: Counter[ErrorKey] = Counter()
        self._media: Counter[str] = Counter()
        self._any_accepted = False
        self.held_until = 0.0
        """End of the current sync wait (monotonic seconds; 0: none)."""
        self.sync_waits = 0
        """Sync waits started so far."""

    def accepted(self) -> None:
        """Meta took a message: the streak ends, and the template is synced."""
        self._any_accepted = True
        if self.s is not None:
            self._streak = (None, 0)
            self._remember(None)

    def sync_hold(self, error: GraphError, now: float) -> float | None:
        """For a 131009: the time (monotonic) until which sends wait before this recipient is sent again,
        or ``None`` when it is a recipient error (something was accepted, or the waits are used up)."""
        s = self.s
        if s is None or error.code != CODE_TEMPLATE_SYNC or self._any_accepted:
            return None
        if now < self.held_until:
            return self.held_until
        if self.sync_waits >= s.sync_waits:
            return None
        self.sync_waits += 1
        self.held_until = now + s.sync_wait_s
        return self.held_until

    def failed(self, payload: Mapping[str, Any], error: GraphError) -> str | None:
        """Count a final failure; the reason to halt the run, if this one makes it the campaign's
        problem."""
        s = self.s
        if s is None:
            return None
        if error.code in MEDIA_CODES and s.media_failures:
            reason = self._media_failure(payload, error, s.media_failures)
            if reason is not None:
                return reason
        if error.code in PER_RECIPIENT_CODES:
            self._streak = (None, 0)
            self._remember(None)
            return None
        key = error_key(error)
        last, n = self._streak
        n = n + 1 if last == key else 1
        self._streak = (key, n)
        self._remember(key)
        if n >= s.consecutive:
            return f"{n} recipients in a row failed with the same error {_describe(key)}"
        seen = len(self._recent)
        if seen >= s.window and self._counts[key] > s.share * seen:
            return (
                f"{self._counts[key]} of the last {seen} answers failed with the same error "
                f"{_describe(key)} (more than {s.share:.0%})"
            )
        return None

    def _media_failure(self, payload: Mapping[str, Any], error: GraphError, limit: int) -> str | None:
        """Count a media error against each header link of the payload; the reason once one link failed
        ``limit`` times."""
        for link in media_links(payload):
            self._media[link] += 1
            if self._media[link] >= limit:
                return (
                    f"the header media link {link} failed {self._media[link]} times with code "
                    f"{error.code} ({error.details or error.message}): every row sending it would fail"
                )
        return None

    def _remember(self, key: ErrorKey | None) -> None:
        """Keep ``key`` among the last ``window`` answers."""
        assert self.s is not None
        self._recent.append(key)
        if key is not None:
            self._counts[key] += 1
        if len(self._recent) > self.s.window:
            old = self._recent.popleft()
            if old is not None:
                self._counts[old] -= 1


def _describe(key: ErrorKey) -> str:
    code, details = key
    return f"{code} ({details})" if details else str(code)


__all__ = [
    "CODE_TEMPLATE_SYNC",
    "MEDIA_CODES",
    "PER_RECIPIENT_CODES",
    "BreakerSettings",
    "CampaignGuard",
    "CircuitBreakerTripped",
    "ErrorKey",
    "error_key",
    "media_links",
]
