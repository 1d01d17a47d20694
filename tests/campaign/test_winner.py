"""Winner to the rest, against the sandbox: 10,000 recipients, two variants, a 10 % holdout and a 20 %
test slice; the sandbox reads variant B more, the test finds it, and the rest gets B. Every assignment
is stable across shards and re-runs, every share within binomial tolerance, and nobody is messaged
twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_wamm.campaign.experiments import Experiment
from airflow_provider_wamm.campaign.ledger import Ledger, StatusUpdate, utcnow
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.campaign.winner import decide, decision_dict, winner_readout
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.sandbox import Sandbox
from tests.campaign.test_experiment_sender import settings, variant_templates, within_binomial

N = 10_000
TEST = Experiment.from_dict(
    {
        "key": "spring-winner",
        "holdout": 0.1,
        "test_share": 0.2,
        "variants": [
            {"name": "A", "weight": 1},
            {"name": "B", "weight": 1, "template_name": "spring_sale_v2"},
        ],
    }
)


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[GraphClient]:
    """A client with a long read timeout: a slow answer on a busy machine must not become ``unknown``."""
    sandbox.configure(mps_cap=None, pair_limit=False)
    c = GraphClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        base_url=sandbox.url,
        max_retries=0,
        timeout=60.0,
    )
    yield c
    c.close()


def rows() -> Iterator[dict[str, Any]]:
    return ({"phone": f"+49152{i:08d}", "name": f"Ana{i}"} for i in range(N))


def record_reads(sandbox: Sandbox, ledger: Ledger) -> None:
    """What the webhook receiver would record: the final status of every message the sandbox took."""
    now = utcnow()
    ledger.record_statuses(
        [
            StatusUpdate(wamid=m.wamid, status=m.outcome, timestamp=now, recipient_id=m.to)
            for m in sandbox.messages
        ]
    )


def test_the_test_slice_finds_the_variant_the_sandbox_favours_and_the_rest_gets_it(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    sandbox.configure(
        templates=variant_templates(),
        outcomes={"read": 0.3, "delivered": 0.7},
        template_outcomes={"spring_sale_v2": {"read": 0.45, "delivered": 0.55}},
    )
    # The test: two shards, each sending its slice of the test to its variant.
    test = [
        run_campaign(
            rows(),
            client=client,
            ledger=sqlite_ledger,
            settings=settings("w", experiment=TEST, shard_index=i, shard_count=2),
        )
        for i in range(2)
    ]
    holdout, rest = sum(r.holdout for r in test), sum(r.rest for r in test)
    tested = sum(r.accepted for r in test)
    assert holdout + rest + tested == N
    assert within_binomial(holdout, N, 0.1) and within_binomial(tested, N - holdout, 0.2)
    groups = sum((Counter(r.groups) for r in test), Counter())
    assert within_binomial(groups["A"], tested, 0.5) and groups["A"] + groups["B"] == tested
    record_reads(sandbox, sqlite_ledger)

    readout = winner_readout(sqlite_ledger, "w", "read")
    winner = decide(readout, TEST)
    assert readout.decision == "winner" and winner == "B", readout.log_line()
    assert decision_dict(readout, winner)["sent_to_rest"] == "B"

    # The rest: the same campaign, now with the winner; two shards again, then a re-run of the whole.
    final = TEST.with_winner(winner)
    second = [
        run_campaign(
            rows(),
            client=client,
            ledger=sqlite_ledger,
            settings=settings("w", experiment=final, shard_index=i, shard_count=2),
        )
        for i in range(2)
    ]
    assert sum(r.accepted for r in second) == rest
    assert sum(r.already_done for r in second) == tested and sum(r.holdout for r in second) == holdout
    again = run_campaign(
        rows(), client=client, ledger=sqlite_ledger, settings=settings("w", experiment=final)
    )
    assert again.accepted == 0 and again.holdout == holdout

    sends = sandbox.sends_per_recipient()
    assert set(sends.values()) == {1} and len(sends) == N - holdout  # each recipient at most once
    by_recipient = {r["recipient"]: r for r in sqlite_ledger.iter_sends("w")}
    templates = {m.to: m.template for m in sandbox.messages}
    for recipient, row in by_recipient.items():
        assignment = final.assign(recipient)  # stable: recomputed from the definition alone
        if not assignment.sends:
            assert row["state"] == "skipped" and recipient not in templates
        elif not assignment.in_test:
            assert row["variant"] == "rest:B" and templates[recipient] == "spring_sale_v2"
        else:
            assert row["variant"] == assignment.variant
