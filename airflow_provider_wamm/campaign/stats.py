"""Significance of campaign results: tests and confidence intervals for rates, and a winner readout.

Standard library only (``math.erfc``, ``statistics.NormalDist``, ``math.lgamma``):

- :func:`wilson_interval`: the Wilson score interval for one rate (sound at small counts and at 0 %).
- :func:`newcombe_interval`: Newcombe's hybrid score interval for the difference of two rates
  (method 10 of Newcombe, Statistics in Medicine 17, 1998), built from the two Wilson intervals.
- :func:`relative_lift_interval`: the interval for ``rate_a / rate_b - 1`` from the log of the
  rate ratio (Katz et al., 1978).
- :func:`two_proportion_z_test`: the pooled two-sided z-test of two rates.
- :func:`chi_square_test`: the chi-square test of homogeneity of k rates (A/B/n), no continuity
  correction (for two arms its statistic is the square of the z-test's).
- :func:`pick_winner`: the decision an A/B/n test supports, as a :class:`WinnerReadout` that renders
  to a log line and to a JSON-safe dict for XCom.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_wamm.graph.errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: What :func:`pick_winner` concludes.
Decision = Literal["winner", "no_winner", "insufficient_data"]
#: The tests :func:`pick_winner` runs.
SignificanceTestName = Literal["two_proportion_z", "chi_square"]


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval."""

    low: float
    """Lower bound."""
    high: float
    """Upper bound."""
    confidence: float
    """Its confidence level (``0.95``)."""

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside (bounds included)."""
        return self.low <= value <= self.high

    def to_list(self) -> list[float]:
        """``[low, high]``."""
        return [self.low, self.high]


def _json_safe(value: Any) -> Any:
    """An interval as ``[low, high]``, a result by its ``to_dict``, a tuple as a list; else ``value``."""
    if isinstance(value, Interval):
        return value.to_list()
    if isinstance(value, tuple):
        return [_json_safe(item) for item in value]
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def fields_dict(result: DataclassInstance) -> dict[str, Any]:
    """Every field of a result record in declaration order, JSON-safe (intervals as ``[low, high]``,
    nested results by their ``to_dict``, tuples as lists): the ``to_dict`` of the records here."""
    return {f.name: _json_safe(getattr(result, f.name)) for f in fields(result)}


@dataclass(frozen=True, slots=True)
class SignificanceTest:
    """A significance test: its statistic, degrees of freedom (chi-square) and two-sided p-value."""

    name: SignificanceTestName
    """``two_proportion_z`` or ``chi_square``."""
    statistic: float
    """z, or the chi-square statistic."""
    p_value: float
    """Probability of a result at least this extreme if the rates were equal."""
    df: int | None = None
    """Degrees of freedom (chi-square only)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return fields_dict(self)


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ConfigurationError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check_counts(successes: int, trials: int) -> None:
    for value in (successes, trials):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(f"counts must be integers, got {value!r}")
    if not 0 <= successes <= trials:
        raise ConfigurationError(f"need 0 <= successes <= trials, got {successes} of {trials}")


def rate(successes: int, trials: int) -> float:
    """``successes / trials`` (0 for no trials)."""
    return successes / trials if trials else 0.0


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a rate (``[0, 1]`` for no trials)."""
    _check_counts(successes, trials)
    if trials == 0:
        return Interval(0.0, 1.0, confidence)
    z = _z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return Interval(max(0.0, centre - half), min(1.0, centre + half), confidence)


def newcombe_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> Interval:
    """Newcombe's hybrid score interval for ``rate_a - rate_b`` (no continuity correction)."""
    p_a, p_b = rate(successes_a, trials_a), rate(successes_b, trials_b)
    a = wilson_interval(successes_a, trials_a, confidence)
    b = wilson_interval(successes_b, trials_b, confidence)
    below = math.sqrt((p_a - a.low) ** 2 + (b.high - p_b) ** 2)
    above = math.sqrt((a.high - p_a) ** 2 + (p_b - b.low) ** 2)
    return Interval(p_a - p_b - below, p_a - p_b + above, confidence)


def relative_lift_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> Interval | None:
    """The interval of ``rate_a / rate_b - 1`` (log rate ratio); ``None`` when either count is 0."""
    _check_counts(successes_a, trials_a)
    _check_counts(successes_b, trials_b)
    if successes_a == 0 or successes_b == 0:
        return None
    log_ratio = math.log((successes_a / trials_a) / (successes_b / trials_b))
    se = math.sqrt(1 / successes_a - 1 / trials_a + 1 / successes_b - 1 / trials_b)
    z = _z(confidence)
    return Interval(math.exp(log_ratio - z * se) - 1, math.exp(log_ratio + z * se) - 1, confidence)


def two_proportion_z_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> SignificanceTest:
    """The pooled two-proportion z-test, two-sided (z > 0 when ``a`` has the higher rate)."""
    _check_counts(successes_a, trials_a)
    _check_counts(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        return SignificanceTest("two_proportion_z", 0.0, 1.0)
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance == 0:
        return SignificanceTest("two_proportion_z", 0.0, 1.0)
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return SignificanceTest("two_proportion_z", z, math.erfc(abs(z) / math.sqrt(2)))


def chi_square_survival(statistic: float, df: int) -> float:
    """``P(X >= statistic)`` for a chi-square variable with ``df`` (integer) degrees of freedom.

    Exact closed forms: ``Q(x; 1) = erfc(sqrt(x / 2))``, ``Q(x; 2) = exp(-x / 2)``, and
    ``Q(x; k + 2) = Q(x; k) + (x / 2) ** (k / 2) * exp(-x / 2) / Gamma(k / 2 + 1)``.
    """
    if df < 1:
        raise ConfigurationError(f"degrees of freedom must be at least 1, got {df}")
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    k = 2 - df % 2
    q = math.exp(-half) if k == 2 else math.erfc(math.sqrt(half))
    while k < df:
        q += math.exp((k / 2) * math.log(half) - half - math.lgamma(k / 2 + 1))
        k += 2
    return min(1.0, q)


def chi_square_test(counts: Sequence[tuple[int, int]]) -> SignificanceTest:
    """The chi-square test that k rates are equal, from ``(successes, trials)`` per arm (df = k - 1)."""
    if len(counts) < 2:
        raise ConfigurationError("a chi-square test needs at least two arms")
    for successes, trials in counts:
        _check_counts(successes, trials)
    total_trials = sum(n for _, n in counts)
    total_successes = sum(x for x, _ in counts)
    df = len(counts) - 1
    if total_trials == 0 or total_successes in (0, total_trials):
        return SignificanceTest("chi_square", 0.0, 1.0, df)
    pooled = total_successes / total_trials
    statistic = 0.0
    for successes, trials in counts:
        if trials == 0:
            continue
        expected_yes, expected_no = trials * pooled, trials * (1 - pooled)
        statistic += (successes - expected_yes) ** 2 / expected_yes
        statistic += (trials - successes - expected_no) ** 2 / expected_no
    return SignificanceTest("chi_square", statistic, chi_square_survival(statistic, df), df)


# -- the winner ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArmResult:
    """One variant's count, rate and Wilson interval."""

    name: str
    """The variant."""
    successes: int
    """Recipients who did the metric (converted, clicked...)."""
    trials: int
    """Recipients measured."""
    rate: float
    """``successes / trials``."""
    interval: Interval
    """Wilson interval of the rate."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return fields_dict(self)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The leading variant against one other: difference, relative lift, test."""

    leader: str
    """The variant with the highest rate."""
    other: str
    """The variant it is compared with."""
    difference: float
    """``rate(leader) - rate(other)``."""
    difference_interval: Interval
    """Newcombe interval of the difference (at the corrected confidence level)."""
    relative_lift: float | None
    """``rate(leader) / rate(other) - 1`` (``None`` when the other's rate is 0)."""
    relative_lift_interval: Interval | None
    """Its interval (``None`` when either count is 0)."""
    test: SignificanceTest
    """The two-proportion z-test."""
    significant: bool
    """Whether ``test.p_value`` is below the corrected alpha."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        lift_interval = self.relative_lift_interval
        return {
            "leader": self.leader,
            "other": self.other,
            "difference": self.difference,
            "difference_interval": self.difference_interval.to_list(),
            "relative_lift": self.relative_lift,
            "relative_lift_interval": None if lift_interval is None else lift_interval.to_list(),
            "z": self.test.statistic,
            "p_value": self.test.p_value,
            "significant": self.significant,
        }


@dataclass(frozen=True)
class WinnerReadout:
    """What an A/B/n test supports: the decision, the test behind it and its numbers.

    :param decision: ``winner`` (the leader beats every other arm), ``no_winner`` or
        ``insufficient_data`` (an arm has fewer than ``min_trials`` recipients).
    :param winner: the winning variant, or ``None``.
    :param metric: what was counted (``conversions``, ``clicks``...).
    :param alpha: the significance level asked for.
    :param test: the omnibus test: the z-test for two arms, the chi-square test for more.
    :param arms: every arm, highest rate first.
    :param comparisons: the leader against each other arm (Bonferroni: each at ``alpha / (k - 1)``).
    :param notes: caveats (small expected counts, ties).
    """

    decision: Decision
    winner: str | None
    metric: str
    alpha: float
    test: SignificanceTest
    arms: tuple[ArmResult, ...]
    comparisons: tuple[Comparison, ...]
    notes: tuple[str, ...] = ()

    def log_line(self) -> str:
        """One line for the task log."""
        arms = ", ".join(f"{a.name} {a.rate:.2%} ({a.successes}/{a.trials})" for a in self.arms)
        df = f", df {self.test.df}" if self.test.df is not None else ""
        head = f"{self.metric}: {self.decision}" + (f" {self.winner}" if self.winner else "")
        line = f"{head} ({self.test.name} {self.test.statistic:.3f}{df}, p={self.test.p_value:.4g}; {arms})"
        for c in self.comparisons:
            ci = c.difference_interval
            line += (
                f"; {c.leader} vs {c.other}: {c.difference * 100:+.2f} pts "
                f"[{ci.low * 100:+.2f}, {ci.high * 100:+.2f}], p={c.test.p_value:.4g}"
            )
        return line + "".join(f"; note: {n}" for n in self.notes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for XCom."""
        return fields_dict(self)


def _arm_counts(
    variants_counts: Mapping[str, Any], metric: str, denominator: str
) -> list[tuple[str, int, int]]:
    """``(name, successes, trials)`` from ``(successes, trials)`` pairs or dicts of counts."""
    arms = []
    for name, counts in variants_counts.items():
        if isinstance(counts, Mapping):
            if metric not in counts or denominator not in counts:
                raise ConfigurationError(
                    f"variant {name!r}: counts need {metric!r} and {denominator!r}, got {sorted(counts)}"
                )
            successes, trials = counts[metric], counts[denominator]
        else:
            successes, trials = counts
        _check_counts(successes, trials)
        arms.append((str(name), successes, trials))
    if len(arms) < 2:
        raise ConfigurationError("picking a winner needs at least two variants")
    return arms


def _compare(leader: ArmResult, other: ArmResult, alpha: float) -> Comparison:
    args = (leader.successes, leader.trials, other.successes, other.trials)
    test = two_proportion_z_test(*args)
    return Comparison(
        leader=leader.name,
        other=other.name,
        difference=leader.rate - other.rate,
        difference_interval=newcombe_interval(*args, confidence=1 - alpha),
        relative_lift=leader.rate / other.rate - 1 if other.rate else None,
        relative_lift_interval=relative_lift_interval(*args, confidence=1 - alpha),
        test=test,
        significant=test.p_value < alpha,
    )


def pick_winner(
    variants_counts: Mapping[str, Any],
    metric: str = "conversions",
    alpha: float = 0.05,
    *,
    denominator: str = "recipients",
    min_trials: int = 1,
) -> WinnerReadout:
    """Decide whether one variant beats the others on ``metric``.

    The leader (highest rate) wins when the omnibus test (z for two arms, chi-square for more) is
    significant at ``alpha`` and the leader beats every other arm in a z-test at ``alpha / (k - 1)``
    (Bonferroni); the comparisons' intervals use that corrected level too.

    :param variants_counts: per variant, ``(successes, trials)`` or a dict holding ``metric`` and
        ``denominator`` counts (e.g. a group of the attribution report).
    :param metric: what a success is (a key of the dicts, and the readout's label).
    :param alpha: the significance level, in ``(0, 1)``.
    :param denominator: the key of the trials in dict counts.
    :param min_trials: arms with fewer recipients make the readout ``insufficient_data``.
    """
    _z(1 - alpha)  # validates alpha
    counts = _arm_counts(variants_counts, metric, denominator)
    arms = sorted(
        (ArmResult(n, x, t, rate(x, t), wilson_interval(x, t, 1 - alpha)) for n, x, t in counts),
        key=lambda a: (-a.rate, a.name),
    )
    omnibus = (
        two_proportion_z_test(arms[0].successes, arms[0].trials, arms[1].successes, arms[1].trials)
        if len(arms) == 2
        else chi_square_test([(a.successes, a.trials) for a in arms])
    )
    corrected = alpha / (len(arms) - 1)
    comparisons = tuple(_compare(arms[0], other, corrected) for other in arms[1:])
    notes = _notes(arms)
    decision: Decision = "no_winner"
    if any(a.trials < min_trials for a in arms):
        decision = "insufficient_data"
    elif omnibus.p_value < alpha and all(c.significant and c.difference > 0 for c in comparisons):
        decision = "winner"
    return WinnerReadout(
        decision=decision,
        winner=arms[0].name if decision == "winner" else None,
        metric=metric,
        alpha=alpha,
        test=omnibus,
        arms=tuple(arms),
        comparisons=comparisons,
        notes=notes,
    )


def _notes(arms: Sequence[ArmResult]) -> tuple[str, ...]:
    notes = []
    if arms[0].rate == arms[1].rate:
        notes.append(f"{arms[0].name} and {arms[1].name} are tied")
    total = sum(a.trials for a in arms)
    pooled = rate(sum(a.successes for a in arms), total)
    if total and any(0 < a.trials * min(pooled, 1 - pooled) < 5 for a in arms):
        notes.append("an expected count is below 5: the normal and chi-square approximations are rough")
    return tuple(notes)


__all__ = [
    "ArmResult",
    "Comparison",
    "Decision",
    "Interval",
    "SignificanceTest",
    "SignificanceTestName",
    "WinnerReadout",
    "chi_square_survival",
    "chi_square_test",
    "fields_dict",
    "newcombe_interval",
    "pick_winner",
    "rate",
    "relative_lift_interval",
    "two_proportion_z_test",
    "wilson_interval",
]
