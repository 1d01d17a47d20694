"""Experiments: stable draws, shares within binomial tolerance, independent decisions, validation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter

import pytest

from airflow_provider_wamm.campaign.experiments import (
    Assignment,
    AssignmentKind,
    Experiment,
    GlobalControl,
    Variant,
    unit_draw,
)
from airflow_provider_wamm.campaign.sharding import shard_of
from airflow_provider_wamm.campaign.stats import chi_square_test
from airflow_provider_wamm.graph.errors import ConfigurationError

N = 10_000
RECIPIENTS = [f"49151{i:08d}" for i in range(N)]


def within_binomial(count: int, n: int, share: float, sigmas: float = 4.0) -> bool:
    """Whether ``count`` of ``n`` is within ``sigmas`` binomial standard deviations of ``share``."""
    return abs(count - n * share) <= sigmas * math.sqrt(n * share * (1 - share))


def ab_test(**extra: object) -> Experiment:
    spec: dict[str, object] = {
        "key": "spring-sale-2026",
        "holdout": 0.10,
        "variants": [
            {"name": "A", "weight": 1},
            {"name": "B", "weight": 2, "template_name": "spring_sale_v2"},
            {"name": "C", "weight": 1, "language": "de"},
        ],
    }
    spec.update(extra)
    return Experiment.from_dict(spec)


# -- stability ----------------------------------------------------------------------------------


def test_draws_are_pinned_so_a_rerun_assigns_everyone_as_before() -> None:
    # Changing the hash scheme would silently reshuffle running experiments: these values are fixed.
    assert unit_draw("spring-sale-2026/holdout", "4915123456789") == 0.4479674626445646
    assert unit_draw("global-control/brand-2026", "4915123456789") == 0.5844328135758545
    groups = [ab_test().assign(r).group for r in RECIPIENTS[:12]]
    assert groups == ["B", "B", "holdout", "B", "B", "C", "A", "B", "B", "A", "C", "C"]
    assert all(0 <= unit_draw("k", r) < 1 for r in RECIPIENTS[:1000])


def test_draws_are_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "from airflow_provider_wamm.campaign.experiments import Experiment;"
        "e = Experiment(key='k', holdout=0.2, variants=[{'name': 'A'}, {'name': 'B'}]);"
        "print([e.assign(f'49151{i:08d}').group for i in range(200)])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    here = Experiment(key="k", holdout=0.2, variants=[Variant("A"), Variant("B")])
    assert out.stdout.strip() == str([here.assign(r).group for r in RECIPIENTS[:200]])


def test_the_draw_depends_on_the_key_and_the_recipient() -> None:
    assert unit_draw("a", "4915123456789") != unit_draw("b", "4915123456789")
    assert unit_draw("a", "4915123456789") != unit_draw("a", "4915123456788")
    # the key's length is part of the hashed text: ("ab", "c...") and ("a", "bc...") differ
    assert unit_draw("ab", "1234") != unit_draw("a", "b1234")


# -- shares ---------------------------------------------------------------------------------------


def test_holdout_global_control_and_variant_shares_are_within_binomial_tolerance() -> None:
    experiment = ab_test(global_control={"name": "brand-2026", "share": 0.05})
    groups = Counter(experiment.assign(r).group for r in RECIPIENTS)
    assert within_binomial(groups["global_control"], N, 0.05)
    outside_gc = N - groups["global_control"]
    assert within_binomial(groups["holdout"], outside_gc, 0.10)
    sent = outside_gc - groups["holdout"]
    assert within_binomial(groups["A"], sent, 0.25)
    assert within_binomial(groups["B"], sent, 0.50)
    assert within_binomial(groups["C"], sent, 0.25)
    assert sum(groups.values()) == N


def test_the_test_slice_and_the_rest() -> None:
    experiment = ab_test(holdout=0.0, test_share=0.2)
    assignments = [experiment.assign(r) for r in RECIPIENTS]
    rest = [a for a in assignments if a.kind is AssignmentKind.REST]
    assert within_binomial(len(rest), N, 0.8)
    assert all(not a.in_test and a.variant is None and not a.sends for a in rest)
    tested = [a for a in assignments if a.kind is AssignmentKind.TREATMENT]
    assert all(a.in_test and a.variant in {"A", "B", "C"} for a in tested)


def test_the_winner_goes_to_the_rest_and_the_test_slice_keeps_its_variant() -> None:
    experiment = ab_test(test_share=0.2)
    winner = experiment.with_winner("C")
    for r in RECIPIENTS[:2000]:
        before, after = experiment.assign(r), winner.assign(r)
        if before.kind is AssignmentKind.REST:
            assert after == Assignment(AssignmentKind.TREATMENT, "C", in_test=False)
        else:
            assert after == before


def test_the_global_control_group_is_the_same_for_every_campaign_that_opts_in() -> None:
    gc = {"name": "brand-2026", "share": 0.05}
    one = Experiment.from_dict({"key": "spring", "global_control": gc})
    other = Experiment.from_dict({"key": "summer", "holdout": 0.3, "global_control": gc})
    members = {r for r in RECIPIENTS if one.assign(r).kind is AssignmentKind.GLOBAL_CONTROL}
    assert members == {r for r in RECIPIENTS if other.assign(r).kind is AssignmentKind.GLOBAL_CONTROL}
    assert members == {r for r in RECIPIENTS if GlobalControl("brand-2026", 0.05).contains(r)}
    assert within_binomial(len(members), N, 0.05)


# -- independence -----------------------------------------------------------------------------------


def test_holdout_and_variant_draws_are_independent() -> None:
    experiment = ab_test(holdout=0.3)
    table: Counter[tuple[bool, str | None]] = Counter()
    for r in RECIPIENTS:
        held = experiment.assign(r).kind is AssignmentKind.HOLDOUT
        table[(held, experiment.variant_for(r))] += 1
    # Variant shares among the held-out and among the others: a chi-square test of homogeneity.
    for variant in ("A", "B", "C"):
        counts = [(table[(held, variant)], sum(table[(held, v)] for v in "ABC")) for held in (True, False)]
        assert chi_square_test(counts).p_value > 0.001, variant
    held_total = sum(table[(True, v)] for v in "ABC")
    assert within_binomial(table[(True, "B")], held_total, 0.5)


def test_variants_are_independent_of_the_shard() -> None:
    experiment = ab_test(holdout=0.0)
    for variant in ("A", "B", "C"):
        counts = []
        for shard in range(4):
            in_shard = [r for r in RECIPIENTS if shard_of(r, 4) == shard]
            counts.append((sum(experiment.variant_for(r) == variant for r in in_shard), len(in_shard)))
        assert chi_square_test(counts).p_value > 0.001, variant


# -- definitions and validation -----------------------------------------------------------------------


def test_weights_are_normalised_and_variants_apply_their_changes() -> None:
    experiment = ab_test()
    assert experiment.shares == {"A": 0.25, "B": 0.5, "C": 0.25}
    base = {"template_name": "spring_sale", "language": "en_US"}
    assert experiment.variant("B").apply(base) == {"template_name": "spring_sale_v2", "language": "en_US"}
    assert experiment.variant("C").apply(base) == {"template_name": "spring_sale", "language": "de"}


def test_an_experiment_round_trips_through_json() -> None:
    experiment = ab_test(global_control={"name": "g", "share": 0.02}, test_share=0.5, winner="B")
    again = Experiment.from_dict(json.loads(json.dumps(experiment.to_dict())))
    assert again == experiment
    assert [again.assign(r) for r in RECIPIENTS[:500]] == [experiment.assign(r) for r in RECIPIENTS[:500]]


def test_without_variants_the_sent_recipients_are_the_treatment_group() -> None:
    experiment = Experiment(key="k", holdout=0.5)
    groups = Counter(experiment.assign(r).group for r in RECIPIENTS[:1000])
    assert set(groups) == {"treatment", "holdout"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"variants": [{"name": "A", "weight": 0}]}, "weight must be a positive number"),
        ({"variants": [{"name": "A", "weight": -1}]}, "weight must be a positive number"),
        ({"variants": [{"name": "A", "weight": float("inf")}]}, "weight must be a positive number"),
        ({"variants": [{"name": "A"}, {"name": "A"}]}, r"unique; repeated: \['A'\]"),
        ({"variants": [{"name": ""}]}, "non-empty name"),
        ({"variants": [{"name": "holdout"}]}, "reserved"),
        ({"variants": [{"weight": 1}]}, "with a 'name'"),
        ({"variants": [{"name": "A", "colour": "red"}]}, r"cannot change \['colour'\]"),
        ({"variants": [{"name": "A", "product_policy": "LOOSE"}]}, "product_policy must be one of"),
        ({"holdout": 1.0}, r"holdout must be in \[0, 1\)"),
        ({"holdout": -0.1}, r"holdout must be in \[0, 1\)"),
        ({"holdout": "10%"}, "holdout must be a number"),
        ({"test_share": 0}, r"test_share must be in \(0, 1\]"),
        ({"global_control": {"name": "g", "share": 1}}, "global_control share must be in"),
        ({"variants": [{"name": "A"}], "winner": "Z"}, "winner 'Z' is not one of the variants"),
        ({"holdouts": 0.1}, r"unknown experiment settings \['holdouts'\]"),
        ({"key": " "}, "non-empty key"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Experiment.from_dict({"key": "k", **spec})


def test_an_experiment_needs_a_key() -> None:
    with pytest.raises(ConfigurationError, match="needs a 'key'"):
        Experiment.from_dict({"holdout": 0.1})
    with pytest.raises(ConfigurationError, match="no variant 'Z'"):
        ab_test().with_winner("Z")
