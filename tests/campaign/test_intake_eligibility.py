"""Intake and eligibility on their own: batches of candidates, and one typed decision per candidate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.eligibility import Eligibility, Invalid, Send, Skip, SkipReason
from airflow_provider_wamm.campaign.intake import Candidate, Intake, RecentSet
from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome, Suppression
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.sharding import in_shard
from airflow_provider_wamm.campaign.sources import SourceRow


def settings(**kw: Any) -> CampaignSettings:
    base: dict[str, Any] = {
        "campaign_id": "c1",
        "template_name": "spring_sale",
        "language": "en_US",
        "personaliser": Personaliser(body_parameters=["{name}"]),
    }
    base.update(kw)
    return CampaignSettings(**base)


def digits(i: int) -> str:
    return f"49151{i:08d}"


def candidate(i: int, **fields: Any) -> Candidate:
    return Candidate(digits(i), SourceRow(i + 1, f"+{digits(i)}", {"name": f"N{i}", **fields}))


def test_intake_batches_candidates_and_sets_aside_invalid_and_repeated_rows() -> None:
    rows: list[Any] = [
        {"phone": "+4915100000001", "name": "a"},
        {"phone": "0049 151 00000001", "name": "again"},  # the same number, written differently
        {"phone": "", "name": "b"},
        {"name": "no phone"},
        {"phone": "+4915100000002", "name": "c"},
        {"phone": "+4915100000003", "name": "d"},
    ]
    intake = Intake(rows, settings())
    first = intake.read_batch(3)
    assert [c.recipient for c in first.candidates] == [digits(1), digits(2), digits(3)]
    assert first.duplicates == 1 and [r.number for r in first.invalid] == [3, 4]
    assert first.invalid[0].reason == "phone: is empty" and first.total == 6
    assert first.invalid[1].outcome() == SendOutcome(
        "!4", L.INVALID, error_details="row 4: missing field 'phone'"
    )
    assert not intake.exhausted
    last = intake.read_batch(3)
    assert last.total == 0 and intake.exhausted
    # A batch also ends after as many invalid rows as its size (they are written in batches too).
    short = Intake(rows, settings()).read_batch(2)
    assert [c.recipient for c in short.candidates] == [digits(1)] and len(short.invalid) == 2


def test_intake_keeps_only_its_shard() -> None:
    rows = [{"phone": f"+{digits(i)}", "name": "x"} for i in range(40)] + [{"phone": "bad"}] * 4
    batches = [Intake(rows, settings(shard_index=k, shard_count=2)).read_batch(100) for k in range(2)]
    for k, batch in enumerate(batches):
        assert all(in_shard(c.recipient, k, 2) for c in batch.candidates)
    assert sum(len(b.candidates) for b in batches) == 40
    assert [len(b.invalid) for b in batches] == [2, 2]  # invalid rows are split by position


def test_the_recent_set_forgets_the_oldest() -> None:
    recent = RecentSet(2)
    for item in ("a", "b", "c"):
        recent.add(item)
    assert "a" not in recent and "b" in recent and "c" in recent and len(recent) == 2
    nothing = RecentSet(0)
    nothing.add("a")
    assert "a" not in nothing


def test_one_typed_decision_per_candidate(memory_ledger: Ledger) -> None:
    memory_ledger.ensure_schema()
    s = settings(frequency_cap=timedelta(hours=1))
    now = L.utcnow()
    memory_ledger.add_suppressions([Suppression(digits(1), "manual")])
    memory_ledger.claim("c1", [digits(2)], attempt_id="earlier")
    memory_ledger.record_results("c1", [SendOutcome(digits(2), L.ACCEPTED, wamid="w2")], attempt_id="earlier")
    memory_ledger.claim("c1", [digits(3)], attempt_id="this-run")
    memory_ledger.claim("other", [digits(4)], attempt_id="x")
    memory_ledger.record_results("other", [SendOutcome(digits(4), L.ACCEPTED, wamid="w4")], attempt_id="x")
    candidates = [candidate(i) for i in range(1, 6)] + [
        Candidate(digits(6), SourceRow(7, f"+{digits(6)}", {"phone": "x"}))  # no name to personalise
    ]
    decisions = Eligibility(memory_ledger, s, "this-run").decide(candidates, now=now)
    assert [d.recipient for d in decisions] == [c.recipient for c in candidates]
    suppressed, done, mine, capped, fresh, broken = decisions
    assert isinstance(suppressed, Skip) and suppressed.reason is SkipReason.SUPPRESSED
    outcome = suppressed.outcome()
    assert (
        outcome is not None and outcome.state == L.SKIPPED and outcome.error_details == "suppressed: manual"
    )
    assert done == Skip(digits(2), SkipReason.ALREADY_DONE) and done.outcome() is None
    assert mine == Skip(digits(3), SkipReason.DUPLICATE)
    assert isinstance(capped, Skip) and capped.reason is SkipReason.FREQUENCY_CAPPED
    assert capped.details is not None and "frequency cap" in capped.details
    assert isinstance(fresh, Send) and fresh.payload["to"] == digits(5)
    assert isinstance(broken, Invalid) and "missing field 'name'" in broken.reason
    assert broken.outcome().error_details == f"row 7: {broken.reason}"


def test_in_a_dry_run_rows_of_this_attempt_are_not_duplicates(memory_ledger: Ledger) -> None:
    memory_ledger.ensure_schema()
    memory_ledger.claim("c1", [digits(3)], attempt_id="this-run")
    decisions = Eligibility(memory_ledger, settings(dry_run=True), "this-run").decide(
        [candidate(3)], now=L.utcnow()
    )
    assert decisions == [Skip(digits(3), SkipReason.ALREADY_DONE)]  # a live claim is not reclaimable
