"""The outcome of a campaign run: counts only (it goes to XCom), never per-recipient data."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_wamm.graph.errors import GraphError, WammError

if TYPE_CHECKING:
    from airflow_provider_wamm.campaign.settings import CampaignSettings

#: Distinct invalid-row reasons counted one by one; further new reasons are counted as ``"other"``.
MAX_INVALID_REASONS = 100
#: The fields of a run's counts that name what it sends and which shard, copied from its settings.
_FROM_SETTINGS = (
    "campaign_id",
    "template_name",
    "language",
    "shard_index",
    "shard_count",
    "dry_run",
    "template_ttl_s",
)


@dataclass
class CampaignResult:
    """Counts of one run (one attempt of one shard) of a campaign.

    Every input row this shard is responsible for ends up in exactly one of ``accepted``, ``held``,
    ``paused``, ``failed``, ``unknown``, ``skipped``, ``suppressed``, ``invalid``, ``duplicates``,
    ``would_send`` (dry run), ``released`` (a halted or stopped run gave it back unsent) or
    ``foreign_claimed`` (another attempt still held it at the end).
    """

    campaign_id: str
    """The campaign."""
    attempt_id: str = ""
    """This run's id (ledger rows it claimed carry it)."""
    template_name: str = ""
    """Template sent."""
    language: str = ""
    """Template language."""
    shard_index: int = 0
    """This shard."""
    shard_count: int = 1
    """Number of shards of the campaign."""
    dry_run: bool = False
    """Nothing was sent and nothing written to the ledger."""
    total: int = 0
    """Input rows this shard is responsible for (rows of other shards are not counted)."""
    accepted: int = 0
    """Messages Meta accepted."""
    held: int = 0
    """Messages Meta held for quality assessment (pacing)."""
    paused: int = 0
    """Messages Meta answered ``paused`` for."""
    failed: int = 0
    """Recipients Meta refused (see ``errors_by_code``)."""
    unknown: int = 0
    """Requests without an answer (may or may not have been sent; never re-sent automatically)."""
    skipped: int = 0
    """Not sent, because already done in this campaign (``already_done``), inside the frequency cap,
    held back by the campaign's experiment (``holdout``, ``global_control``, ``rest``), or in an
    unsupported market (``market_not_supported``)."""
    already_done: int = 0
    """Part of ``skipped``, where an earlier run (or another worker) already handled the recipient."""
    frequency_capped: int = 0
    """Part of ``skipped``, where the recipient got a message from another campaign within the cap."""
    market_not_supported: int = 0
    """Part of ``skipped``: numbers in a market Meta delivers no marketing message to (the campaign's
    ``unsupported_markets``), skipped without a request."""
    holdout: int = 0
    """Part of ``skipped``: held out of the campaign by its experiment."""
    global_control: int = 0
    """Part of ``skipped``: in the experiment's global control group."""
    rest: int = 0
    """Part of ``skipped``: outside the experiment's test slice, waiting for the winner."""
    groups: Counter[str] = field(default_factory=Counter)
    """Recipients this run put in each experiment group: sent a variant (by its name) or held back
    (``holdout``, ``global_control``, ``rest``); empty without an experiment."""
    suppressed: int = 0
    """Not sent, because the recipient stopped marketing messages or hit Meta's per-user limit recently."""
    invalid: int = 0
    """Rows without a usable phone number or that could not be personalised."""
    duplicates: int = 0
    """Rows repeating a recipient seen earlier in the input."""
    would_send: int = 0
    """Messages a dry run would have sent."""
    released: int = 0
    """Recipients a halted or stopped run gave back unsent (a later run sends them)."""
    foreign_claimed: int = 0
    """Recipients another attempt, still alive, held claimed until the end of this run: not counted as
    done, not sent by this run; a later run finds them settled."""
    stale_unknown: int = 0
    """Recipients left ``claimed`` by another attempt that is over (it crashed, or it was an older try
    of this task), recorded ``unknown`` by this run (and counted in ``already_done`` too)."""
    retries: int = 0
    """Requests repeated after a transient error."""
    throttled: int = 0
    """Throttling answers (the send rate was lowered each time)."""
    pair_limited: int = 0
    """Pair rate limit answers (only that recipient was delayed)."""
    sync_waits: int = 0
    """Waits for the template's sync after a 131009 before anything was accepted."""
    errors_by_code: Counter[str] = field(default_factory=Counter)
    """Final failures (and unknown outcomes, as ``"unknown"``) by Graph error code."""
    invalid_reasons: Counter[str] = field(default_factory=Counter)
    """Invalid rows by reason, such as ``"phone: is empty"`` or ``"header.text: missing field 'city'"``."""
    elapsed_s: float = 0.0
    """Wall time of the run."""
    final_rate: float | None = None
    """The send rate (messages per second) at the end, after any throttling."""
    peak_concurrency: int = 0
    """Most sending threads the run had at once (they follow the round trips)."""
    halted: bool = False
    """The run stopped on a HALT error."""
    halt_error: dict[str, Any] | None = None
    """The error that halted the run (``GraphError.to_dict()``)."""
    tripped: str | None = None
    """Why the circuit breaker halted the run, when it did (``halted`` is then true too)."""
    template_ttl_s: float | None = None
    """The template's time-to-live in seconds, when known (Meta drops a message undelivered by then)."""
    stopped: bool = False
    """The run was stopped from outside (its :class:`~.control.CampaignControl`)."""
    stop_reason: str | None = None
    """Why it was stopped, as the caller said."""
    deferred: str | None = None
    """A guard stopped the run (``template_paused``, ``messaging_limit``...): it resumes later."""
    budget_reached: bool = False
    """``max_cost`` stopped the run: the recipients it could not afford were released unsent."""
    cost: dict[str, Any] | None = None
    """What was sent (or would be, in a dry run) cost, by market (:meth:`~.spend.SpendGuard.to_dict`)."""

    @classmethod
    def for_run(cls, settings: CampaignSettings, attempt_id: str) -> CampaignResult:
        """The empty counts of a run of ``settings``, named by what it sends and which shard."""
        return cls(attempt_id=attempt_id, **{name: getattr(settings, name) for name in _FROM_SETTINGS})

    @property
    def sent(self) -> int:
        """Messages Meta took (accepted, held or paused)."""
        return self.accepted + self.held + self.paused

    @property
    def accounted(self) -> int:
        """Rows that ended up in one of the buckets above (``total`` once the run is over)."""
        return (
            self.sent
            + self.failed
            + self.unknown
            + self.skipped
            + self.suppressed
            + self.invalid
            + self.duplicates
            + self.would_send
            + self.released
            + self.foreign_claimed
        )

    @property
    def unsettled(self) -> int:
        """Recipients whose outcome this run leaves open: ``unknown`` (this run's and those taken over
        from an attempt that was over) and ``foreign_claimed``."""
        return self.unknown + self.stale_unknown + self.foreign_claimed

    @property
    def messages_per_second(self) -> float:
        """Average rate of messages Meta took over the run."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def add_invalid(self, reason: str) -> None:
        """Count one invalid row and its reason (new reasons beyond :data:`MAX_INVALID_REASONS` count as
        ``"other"``, so a list of garbage cannot grow the summary without bound)."""
        self.invalid += 1
        reasons = self.invalid_reasons
        if reason in reasons or len(reasons) < MAX_INVALID_REASONS:
            reasons[reason] += 1
        else:
            reasons["other"] += 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary for XCom and logs (counts and ids only): every field in its order, counters
        as sorted dicts, with ``sent`` after ``total`` and ``messages_per_second`` after ``elapsed_s``;
        ``cost`` only when known."""
        forms: dict[str, Any] = {
            "groups": dict(sorted(self.groups.items())),
            "errors_by_code": dict(sorted(self.errors_by_code.items())),
            "invalid_reasons": dict(self.invalid_reasons.most_common(20)),
            "elapsed_s": round(self.elapsed_s, 3),
        }
        derived: dict[str, dict[str, Any]] = {  # what stands after which field
            "total": {"sent": self.sent},
            "elapsed_s": {"messages_per_second": round(self.messages_per_second, 2)},
        }
        summary: dict[str, Any] = {}
        for name in (f.name for f in fields(self)):
            summary[name] = forms[name] if name in forms else getattr(self, name)
            summary.update(derived.get(name, {}))
        if self.cost is None:
            del summary["cost"]
        return summary


class CampaignHalted(WammError):
    """The campaign stopped on an error that makes every further send fail (token, account, template).

    Nothing more was sent; results of requests in flight were recorded and claimed-but-unsent
    recipients released, so a run after fixing the cause continues where this one stopped without
    sending anyone a second message.
    """

    _init_args: ClassVar[tuple[str, ...]] = ("error", "result")

    def __init__(self, error: GraphError, result: CampaignResult) -> None:
        super().__init__(f"campaign {result.campaign_id!r} halted after {result.sent} messages: {error}")
        #: The Graph error that halted the campaign.
        self.error = error
        #: Counts of the run up to the halt.
        self.result = result


class CampaignStopped(WammError):
    """The campaign was stopped from outside (its :class:`~.control.CampaignControl`, e.g. a killed task).

    Nothing more was sent; answers that came back within the grace were recorded, requests still in
    flight after it recorded ``unknown``, claimed-but-unsent recipients released, so a later run
    continues without sending anyone a second message. The message names the counts.
    """

    _init_args = ("result",)

    def __init__(self, result: CampaignResult) -> None:
        reason = f" ({result.stop_reason})" if result.stop_reason else ""
        super().__init__(
            f"campaign {result.campaign_id!r} stopped{reason} after {result.sent} messages: "
            f"{result.unknown} unknown (no answer in time), {result.released} released unsent, "
            f"{result.foreign_claimed} still claimed by another attempt"
        )
        #: Counts of the run up to the stop.
        self.result = result


__all__ = ["MAX_INVALID_REASONS", "CampaignHalted", "CampaignResult", "CampaignStopped"]
