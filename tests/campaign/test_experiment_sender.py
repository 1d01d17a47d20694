"""The bulk sender with an experiment: holdout and global control skipped, each recipient sent its
variant, the group recorded in the ledger, stable across shards and re-runs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_wamm.campaign.experiment_plan import ExperimentPlan, MessageSpec, variant_personaliser
from airflow_provider_wamm.campaign.experiments import Assignment, AssignmentKind, Experiment
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.sandbox import Sandbox, SandboxTemplate, default_templates

SPRING = Personaliser(body_parameters=["{name}", "20%"], buttons=[{"type": "url", "index": 0, "text": "s"}])
EXPERIMENT = Experiment.from_dict(
    {
        "key": "spring-ab",
        "holdout": 0.1,
        "variants": [
            {"name": "A", "weight": 1},
            {"name": "B", "weight": 1, "template_name": "spring_sale_v2"},
        ],
    }
)


def variant_templates() -> dict[str, SandboxTemplate]:
    """The default templates plus ``spring_sale_v2``, a copy of ``spring_sale`` (variant B)."""
    templates = default_templates()
    spring = templates["spring_sale"]
    templates["spring_sale_v2"] = SandboxTemplate.from_dict(
        {**spring.to_meta(), "name": "spring_sale_v2", "id": "spring-v2"}
    )
    return templates


def rows(n: int) -> Iterator[dict[str, Any]]:
    return ({"phone": f"+49151{i:08d}", "name": f"Ana{i}"} for i in range(n))


def settings(campaign_id: str, **kw: Any) -> CampaignSettings:
    base: dict[str, Any] = {
        "template_name": "spring_sale",
        "language": "en_US",
        "personaliser": SPRING,
        "max_messages_per_second": 2000.0,
        "concurrency": 32,
        "batch_size": 500,
        "progress_interval_s": 5.0,
        "experiment": EXPERIMENT,
    }
    base.update(kw)
    return CampaignSettings(campaign_id=campaign_id, **base)


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[GraphClient]:
    sandbox.configure(mps_cap=None, pair_limit=False, templates=variant_templates())
    c = GraphClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        base_url=sandbox.url,
        max_retries=0,
        timeout=5.0,
    )
    yield c
    c.close()


def within_binomial(count: int, n: int, p: float, z: float = 4.0) -> bool:
    """``count`` of ``n`` is within ``z`` standard deviations of ``n * p``."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p))


def test_two_shards_send_each_recipient_its_variant_and_skip_the_holdout(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    n = 4000
    results = [
        run_campaign(
            rows(n),
            client=client,
            ledger=sqlite_ledger,
            settings=settings("ab", shard_index=i, shard_count=2),
        )
        for i in range(2)
    ]
    sends = sandbox.sends_per_recipient()
    assert set(sends.values()) == {1}  # nobody twice
    holdout = sum(r.holdout for r in results)
    assert within_binomial(holdout, n, 0.1)
    assert sum(r.accepted for r in results) + holdout == n == len(sends) + holdout
    groups = sum((Counter(r.groups) for r in results), Counter())
    assert groups["holdout"] == holdout and groups["A"] + groups["B"] == len(sends)
    assert within_binomial(groups["A"], len(sends), 0.5)
    # The ledger records each recipient's group, as the experiment recomputes it.
    ledger_rows = list(sqlite_ledger.iter_sends("ab"))
    assert len(ledger_rows) == n
    for row in ledger_rows:
        assignment = EXPERIMENT.assign(row["recipient"])
        assert row["variant"] == assignment.group
        if assignment.sends:
            assert row["state"] == "accepted"
            expected = "spring_sale_v2" if assignment.variant == "B" else "spring_sale"
            assert row["template_name"] == expected
        else:
            assert row["state"] == "skipped" and row["error_details"].startswith("holdout")
    # The sandbox got each variant's template.
    template_of = {m.to: m.template for m in sandbox.messages}
    for recipient, template in template_of.items():
        variant = EXPERIMENT.assign(recipient).variant
        assert template == ("spring_sale_v2" if variant == "B" else "spring_sale")
    # A re-run (one shard, then the whole list) sends nothing and moves nobody.
    again = run_campaign(rows(n), client=client, ledger=sqlite_ledger, settings=settings("ab"))
    assert again.accepted == 0 and again.already_done == n - again.holdout and again.holdout == holdout
    assert len(sandbox.messages) == len(sends)
    assert {r["recipient"]: r["variant"] for r in sqlite_ledger.iter_sends("ab")} == {
        r["recipient"]: r["variant"] for r in ledger_rows
    }


def test_dry_run_counts_groups_without_writing(sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    dry = settings("dry", dry_run=True)
    result = run_campaign(rows(500), client=None, ledger=sqlite_ledger, settings=dry)
    assert result.would_send + result.holdout == 500 and result.holdout > 0
    assert result.to_dict()["groups"]["A"] + result.to_dict()["groups"]["B"] == result.would_send
    assert list(sqlite_ledger.iter_sends("dry")) == []


def test_variant_changes_personalisation_and_policy() -> None:
    base = MessageSpec("spring_sale", "en_US", SPRING, None)
    plan = ExperimentPlan(
        Experiment.from_dict(
            {
                "key": "k",
                "variants": [
                    {"name": "A"},
                    {"name": "B", "body_parameters": ["{name}", "30%"], "product_policy": "STRICT"},
                ],
            }
        ),
        base,
    )
    b = plan.message(Assignment(AssignmentKind.TREATMENT, "B"))
    assert b.product_policy == "STRICT" and b.personaliser is not None
    assert b.personaliser.render({"name": "Ana"})[0]["parameters"][1]["text"] == "30%"
    assert plan.message(plan.assign("4915100000001")).template_name == "spring_sale"
    assert variant_personaliser(SPRING, {"components": [{"type": "body"}]}) is not None
    assert variant_personaliser(SPRING, {"template_name": "x"}) is SPRING


def test_invalid_variant_is_refused_before_sending() -> None:
    bad = Experiment.from_dict({"key": "k", "variants": [{"name": "A", "language": ""}]})
    with pytest.raises(ConfigurationError, match="variant 'A'"):
        settings("bad", experiment=bad).validate()
