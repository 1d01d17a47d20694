"""Canary rollout: send a campaign in growing slices, and check quality gates before each next one.

``rollout=[0.05, 1.0]`` sends the first 5 % of the recipients (a stable hash of the number, the same in
every shard, retry and re-run), waits for their webhooks to settle, then reads the campaign's numbers in
the ledger and checks the :class:`Gates`: the failure rate, the share of chosen error codes (131048
spam rate limit, 131049 per-user limit, 132015 template paused), and the template's quality as Meta's
events report it. All pass: the next slice (up to 100 %) is sent. One fails: the rollout stops, and
:class:`GateReport` holds the evidence.

A canary without evidence fails too: rates over no messages, or over messages none of whose status
webhooks arrived, would pass any limit. ``min_sent`` (no messages in the canary) and ``min_answered``
(no status webhook for the messages Meta took: the receiver is not storing into this ledger) say how
much the gates need; ``0`` lets a rollout go on without that evidence.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import delivery_counts, error_counts, send_counts
from airflow_provider_wamm.campaign.report_queries import PENDING
from airflow_provider_wamm.graph.errors import ConfigurationError

#: Error codes counted by default: spam rate limit, per-user marketing limit, template paused.
WATCHED_CODES: tuple[int, ...] = (131048, 131049, 132015)
#: Template quality scores that stop a rollout.
BAD_QUALITY: tuple[str, ...] = ("RED",)
_SENT_STATES = ("accepted", "held", "paused")
_GATE_NAMES = frozenset({"max_failure_rate", "max_code_rates", "min_sent", "min_answered", "bad_quality"})


def check_rollout(steps: Sequence[float]) -> tuple[float, ...]:
    """Growing shares in (0, 1], the last one 1.0; :class:`ConfigurationError` otherwise."""
    values = tuple(float(s) for s in steps)
    if not values or values[-1] != 1.0:
        raise ConfigurationError(f"rollout must end with 1.0 (everyone), got {list(steps)!r}")
    if any(not 0 < v <= 1 for v in values) or any(a >= b for a, b in itertools.pairwise(values)):
        raise ConfigurationError(f"rollout must be growing shares in (0, 1], got {list(steps)!r}")
    return values


def rollout_unit(recipient: str, salt: str) -> float:
    """The recipient's place in the rollout, in [0, 1): stable for a number and a campaign."""
    digest = hashlib.blake2b(f"{salt}|{recipient}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class Gates:
    """What a slice must show before the next one is sent.

    :param max_failure_rate: most failures (refused sends and ``failed`` webhooks) per message sent.
    :param max_code_rates: most failures of a code per message sent (``{131048: 0.02}``); the watched
        codes default to ``0.05`` each, 132015 to 0.
    :param min_sent: fewest messages the canary must have sent (Meta's answers, taken or refused);
        fewer fails the rollout, as the rates would judge nothing. ``0``: a canary with no messages goes
        on (the rates are then not judged).
    :param min_answered: fewest of the messages Meta took that must have a status webhook in the
        ledger (sent, delivered, read or failed) when the gates are checked; fewer fails the rollout, as
        failures reported by webhook (131048, 131049) could not be seen. ``0``: judge the refused sends
        alone (no webhook receiver).
    :param bad_quality: template quality scores that stop the rollout.
    """

    max_failure_rate: float = 0.1
    max_code_rates: Mapping[int, float] = field(
        default_factory=lambda: {131048: 0.05, 131049: 0.2, 132015: 0.0}
    )
    min_sent: int = 1
    min_answered: int = 1
    bad_quality: tuple[str, ...] = BAD_QUALITY

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> Gates:
        """Gates from a dict of the fields above (codes as ints or strings)."""
        opts = dict(options or {})
        unknown = sorted(set(opts) - _GATE_NAMES)
        if unknown:
            raise ConfigurationError(f"canary_gates: unknown gates {unknown}")
        if "max_code_rates" in opts:
            opts["max_code_rates"] = {int(k): float(v) for k, v in dict(opts["max_code_rates"]).items()}
        if "bad_quality" in opts:
            opts["bad_quality"] = tuple(str(q).upper() for q in opts["bad_quality"])
        return cls(**opts)


@dataclass
class GateReport:
    """The numbers of the campaign so far and the gates they failed (none: pass)."""

    step: int
    share: float
    sent: int = 0
    failed: int = 0
    taken: int = 0
    """Messages Meta took (accepted, held or paused)."""
    answered: int = 0
    """Of those, the messages with a status webhook in the ledger."""
    by_code: dict[str, int] = field(default_factory=dict)
    quality: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No gate failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """The evidence, JSON-safe, for XCom and the log."""
        rate = self.failed / self.sent if self.sent else None
        return {
            "step": self.step,
            "share": self.share,
            "sent": self.sent,
            "failed": self.failed,
            "failure_rate": round(rate, 4) if rate is not None else None,
            "taken": self.taken,
            "answered": self.answered,
            "by_code": self.by_code,
            "template_quality": self.quality,
            "passed": self.passed,
            "failures": self.failures,
        }


def check_gates(
    ledger: Ledger, campaign_id: str, gates: Gates, *, step: int, share: float, quality: str | None
) -> GateReport:
    """Read the campaign's sends, failures (by code, sends and webhooks) and status webhooks, and judge
    the gates; a canary with too little evidence (``min_sent``, ``min_answered``) fails them."""
    states = send_counts(ledger, campaign_id)
    errors = error_counts(ledger, campaign_id)
    deliveries = delivery_counts(ledger, campaign_id)
    report = GateReport(step=step, share=share, quality=quality)
    report.sent = sum(states.get(s, 0) for s in _SENT_STATES) + states.get("failed", 0)
    report.taken = sum(deliveries.values())
    report.answered = report.taken - deliveries.get(PENDING, 0)
    for item in errors:
        key = str(item["code"])
        report.by_code[key] = report.by_code.get(key, 0) + int(item["count"])
    report.failed = sum(report.by_code.values())
    report.failures += _evidence_failures(report, gates)
    if report.sent >= gates.min_sent and report.sent:
        report.failures += _rate_failures(report, gates)
    if quality is not None and quality.upper() in gates.bad_quality:
        report.failures.append(f"template quality {quality}")
    return report


def _evidence_failures(report: GateReport, gates: Gates) -> list[str]:
    """The evidence gates: enough messages in the canary, and enough of them reported on by webhook."""
    if report.sent < gates.min_sent:
        what = (
            "no messages in the canary" if not report.sent else f"only {report.sent} messages in the canary"
        )
        return [
            f"min_sent: {what} (min_sent {gates.min_sent}), so the gates had nothing to judge; "
            "send a larger first slice, or set min_sent to 0 to go on without a canary"
        ]
    if report.taken and report.answered < gates.min_answered:
        return [
            f"min_answered: {report.answered} of the {report.taken} messages Meta took in the canary "
            f"have a status webhook (min_answered {gates.min_answered}), so failures reported by webhook "
            "could not be seen; check that the webhook receiver stores into this campaign's ledger, "
            "wait longer (canary_settle), or set min_answered to 0 to judge the refused sends alone"
        ]
    return []


def _rate_failures(report: GateReport, gates: Gates) -> list[str]:
    """The rate gates, over the messages sent (at least one)."""
    failures = []
    rate = report.failed / report.sent
    if rate > gates.max_failure_rate:
        failures.append(f"failure rate {rate:.1%} > {gates.max_failure_rate:.1%}")
    for code, limit in sorted(gates.max_code_rates.items()):
        share_of_code = report.by_code.get(str(code), 0) / report.sent
        if share_of_code > limit:
            failures.append(f"{code}: {share_of_code:.1%} of sends > {limit:.1%}")
    return failures


__all__ = [
    "BAD_QUALITY",
    "WATCHED_CODES",
    "GateReport",
    "Gates",
    "check_gates",
    "check_rollout",
    "rollout_unit",
]
