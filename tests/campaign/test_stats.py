"""Significance: intervals and tests against published and hand-computed values, and the winner readout."""

from __future__ import annotations

import json
import math

import pytest

from airflow_provider_wamm.campaign.stats import (
    chi_square_survival,
    chi_square_test,
    newcombe_interval,
    pick_winner,
    relative_lift_interval,
    two_proportion_z_test,
    wilson_interval,
)
from airflow_provider_wamm.graph.errors import ConfigurationError

Z95 = 1.959963984540054  # the 97.5 % point of the standard normal distribution


# -- one rate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, Wilson.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_published_values(
    successes: int, trials: int, low: float, high: float
) -> None:
    interval = wilson_interval(successes, trials)
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)
    assert interval.confidence == 0.95


def test_wilson_interval_by_hand() -> None:
    # 30 of 200: centre (p + z^2/2n) / (1 + z^2/n), half-width z/(1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2).
    p, n, z2 = 0.15, 200, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    interval = wilson_interval(30, 200)
    assert (interval.low, interval.high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (interval.low, interval.high) == pytest.approx((0.10714, 0.20606), abs=5e-5)


def test_wilson_interval_without_trials_is_everything() -> None:
    assert wilson_interval(0, 0).to_list() == [0.0, 1.0]


# -- two rates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "low", "high"),
    [
        # Newcombe (1998), "Interval estimation for the difference between independent proportions",
        # method 10 (score interval, no continuity correction), examples (a), (b) and (d).
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((5, 56, 0, 29), -0.0381, 0.1926),
    ],
)
def test_newcombe_interval_matches_published_values(
    counts: tuple[int, int, int, int], low: float, high: float
) -> None:
    interval = newcombe_interval(*counts)
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)


def test_two_proportion_z_test_by_hand() -> None:
    # 56/70 = 0.8 against 48/80 = 0.6; pooled 104/150.
    pooled = 104 / 150
    se = math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    z = (0.8 - 0.6) / se
    test = two_proportion_z_test(56, 70, 48, 80)
    assert test.statistic == pytest.approx(z, rel=1e-12)
    assert test.statistic == pytest.approx(2.6502, abs=5e-5)
    assert test.p_value == pytest.approx(0.008045, abs=5e-7)
    assert two_proportion_z_test(48, 80, 56, 70).statistic == pytest.approx(-z)


def test_z_test_of_identical_or_degenerate_rates() -> None:
    assert two_proportion_z_test(0, 100, 0, 100).p_value == 1.0
    assert two_proportion_z_test(5, 100, 5, 100).p_value == pytest.approx(1.0)
    assert two_proportion_z_test(5, 100, 0, 0).p_value == 1.0


def test_relative_lift_interval_by_hand() -> None:
    # log(0.8 / 0.6) +- z * sqrt(1/56 - 1/70 + 1/48 - 1/80), then exp(...) - 1.
    se = math.sqrt(1 / 56 - 1 / 70 + 1 / 48 - 1 / 80)
    log_ratio = math.log(0.8 / 0.6)
    interval = relative_lift_interval(56, 70, 48, 80)
    assert interval is not None
    assert interval.low == pytest.approx(math.exp(log_ratio - Z95 * se) - 1, rel=1e-12)
    assert interval.high == pytest.approx(math.exp(log_ratio + Z95 * se) - 1, rel=1e-12)
    assert (interval.low, interval.high) == pytest.approx((0.07663, 0.65125), abs=5e-5)
    assert relative_lift_interval(0, 70, 48, 80) is None


# -- chi-square --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statistic", "df"),
    [
        (3.841458820694124, 1),
        (5.991464547107979, 2),
        (7.814727903251178, 3),
        (9.487729036781154, 4),
        (18.307038053275146, 10),
        (124.3421134, 100),
    ],
)
def test_chi_square_survival_at_the_5_percent_points(statistic: float, df: int) -> None:
    assert chi_square_survival(statistic, df) == pytest.approx(0.05, abs=1e-7)


def test_chi_square_survival_edges() -> None:
    assert chi_square_survival(0.0, 3) == 1.0
    assert chi_square_survival(2.0, 2) == pytest.approx(math.exp(-1))
    with pytest.raises(ConfigurationError):
        chi_square_survival(1.0, 0)


def test_chi_square_test_of_three_arms_by_hand() -> None:
    # 40, 65 and 45 of 1000 each: pooled 5 %, expected 50 successes and 950 failures per arm.
    expected = (10**2 + 15**2 + 5**2) / 50 + (10**2 + 15**2 + 5**2) / 950
    test = chi_square_test([(40, 1000), (65, 1000), (45, 1000)])
    assert test.statistic == pytest.approx(expected, rel=1e-12)
    assert test.statistic == pytest.approx(7.368421, abs=1e-6)
    assert test.df == 2
    assert test.p_value == pytest.approx(math.exp(-expected / 2), rel=1e-12)  # df 2: exp(-x/2)


def test_chi_square_of_two_arms_is_the_square_of_z() -> None:
    z = two_proportion_z_test(56, 70, 48, 80)
    chi = chi_square_test([(56, 70), (48, 80)])
    assert chi.statistic == pytest.approx(z.statistic**2, rel=1e-12)
    assert chi.p_value == pytest.approx(z.p_value, rel=1e-9)


@pytest.mark.parametrize("counts", [[(5, 4), (1, 10)], [(-1, 10), (1, 10)], [(1.5, 10), (1, 10)]])
def test_counts_must_be_whole_and_consistent(counts: list[tuple[int, int]]) -> None:
    with pytest.raises(ConfigurationError):
        chi_square_test(counts)


# -- the winner ------------------------------------------------------------------------------------


def test_a_clear_winner_of_two() -> None:
    readout = pick_winner({"A": (100, 1000), "B": (50, 1000)}, "clicks", alpha=0.05)
    assert readout.decision == "winner" and readout.winner == "A"
    assert readout.test.name == "two_proportion_z"
    assert [a.name for a in readout.arms] == ["A", "B"]
    (comparison,) = readout.comparisons
    assert comparison.difference == pytest.approx(0.05)
    assert comparison.relative_lift == pytest.approx(1.0)
    assert comparison.difference_interval.low > 0
    assert comparison.significant


def test_three_arms_without_a_clear_winner() -> None:
    # The chi-square test is significant (p = 0.025), but B beats C only at p = 0.0498, above the
    # Bonferroni level 0.05 / 2.
    readout = pick_winner({"A": (40, 1000), "B": (65, 1000), "C": (45, 1000)}, "clicks")
    assert readout.test.name == "chi_square"
    assert readout.test.p_value == pytest.approx(0.025117, abs=1e-6)
    assert readout.decision == "no_winner" and readout.winner is None
    by_other = {c.other: c for c in readout.comparisons}
    assert by_other["A"].significant and not by_other["C"].significant
    assert by_other["C"].difference_interval.confidence == pytest.approx(0.975)


def test_three_arms_with_a_winner() -> None:
    readout = pick_winner({"A": (40, 1000), "B": (80, 1000), "C": (45, 1000)}, "clicks")
    assert readout.decision == "winner" and readout.winner == "B"


def test_readout_from_dict_counts_and_its_renderings() -> None:
    groups = {
        "A": {"recipients": 500, "converters": 20},
        "B": {"recipients": 500, "converters": 45},
    }
    readout = pick_winner(groups, "converters", 0.05)
    assert readout.winner == "B"
    data = json.loads(json.dumps(readout.to_dict()))
    assert data["decision"] == "winner"
    assert data["arms"][0] == {
        "name": "B",
        "successes": 45,
        "trials": 500,
        "rate": 0.09,
        "interval": pytest.approx(list(wilson_interval(45, 500).to_list())),
    }
    assert data["comparisons"][0]["p_value"] < 0.05
    line = readout.log_line()
    assert line.startswith("converters: winner B (two_proportion_z ")
    assert "B 9.00% (45/500)" in line and "B vs A: +5.00 pts" in line


def test_ties_small_and_missing_samples() -> None:
    tie = pick_winner({"A": (10, 100), "B": (10, 100)})
    assert tie.decision == "no_winner" and "A and B are tied" in tie.notes
    small = pick_winner({"A": (3, 10), "B": (0, 10)}, min_trials=5)
    assert small.decision == "no_winner"
    assert any("expected count is below 5" in n for n in small.notes)
    assert pick_winner({"A": (3, 10), "B": (0, 10)}, min_trials=100).decision == "insufficient_data"


def test_pick_winner_refuses_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="at least two variants"):
        pick_winner({"A": (1, 10)})
    with pytest.raises(ConfigurationError, match="need 'clicks' and 'recipients'"):
        pick_winner({"A": {"sent": 1}, "B": {"sent": 2}}, "clicks")
    with pytest.raises(ConfigurationError, match="confidence must be in"):
        pick_winner({"A": (1, 10), "B": (2, 10)}, alpha=1.5)
