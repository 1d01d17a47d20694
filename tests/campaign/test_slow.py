"""Long-running campaign checks (``-m slow``): many recipients, mixed faults, shards, flat memory."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.sandbox import Sandbox

pytestmark = pytest.mark.slow


def stream(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"phone": f"+49151{i:08d}", "name": f"N{i}", "discount": "10%", "slug": f"s{i}"}


def make_settings(campaign_id: str, **kw: Any) -> CampaignSettings:
    return CampaignSettings(
        campaign_id=campaign_id,
        template_name="spring_sale",
        language="en_US",
        personaliser=Personaliser(
            body_parameters=["{name}", "{discount}"],
            buttons=[
                {"type": "url", "index": 0, "text": "{slug}"},
                {"type": "quick_reply", "index": 1, "payload": "x"},
            ],
        ),
        retry_backoff_s=0.05,
        retry_backoff_max_s=0.5,
        throttle_recovery_s=0.5,
        **kw,
    )


def test_sharded_campaign_with_mixed_faults_never_sends_twice(
    sandbox: Sandbox, sqlite_ledger: Ledger
) -> None:
    sandbox.configure(
        mps_cap=None,
        fault_transient_rate=0.03,
        fault_throttle_rate=0.02,
        fault_5xx_rate=0.01,
        fault_lost_response_rate=0.005,
        fault_drop_rate=0.005,
        lost_response_mode="drop",
        seed=11,
    )
    client = GraphClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        base_url=sandbox.url,
        max_retries=0,
        timeout=5.0,
    )
    results: list[CampaignResult] = []
    errors: list[BaseException] = []
    n = 12000

    def shard(i: int) -> None:
        try:
            cfg = make_settings(
                "big",
                shard_index=i,
                shard_count=3,
                max_messages_per_second=400.0,
                min_messages_per_second=100.0,
                concurrency=8,
            )
            results.append(run_campaign(stream(n), client=client, ledger=sqlite_ledger, settings=cfg))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert not errors
    assert sum(r.total for r in results) == n
    sends = sandbox.sends_per_recipient()
    assert max(sends.values()) == 1  # nobody got two messages
    states = {row["recipient"]: row["state"] for row in sqlite_ledger.iter_sends("big")}
    assert len(states) == n
    accepted = {k for k, v in states.items() if v == "accepted"}
    unknown = {k for k, v in states.items() if v == "unknown"}
    assert accepted | unknown == set(states)
    assert accepted <= set(sends)  # every accepted one really reached the sandbox
    assert len(unknown) == sum(r.unknown for r in results) > 0
    # A re-run of the campaign sends nothing: accepted and unknown are both final.
    again = run_campaign(
        stream(n), client=None, ledger=sqlite_ledger, settings=make_settings("big", dry_run=True)
    )
    assert again.would_send == 0 and again.already_done == n


def test_memory_stays_flat_in_the_number_of_recipients(sqlite_ledger: Ledger) -> None:
    def peak(n: int) -> int:
        tracemalloc.start()
        try:
            result = run_campaign(
                stream(n),
                client=None,
                ledger=sqlite_ledger,
                settings=make_settings(f"mem-{n}", dry_run=True, dedupe_window=1000),
            )
            assert result.would_send == n
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(5000), peak(50000)
    assert large < small * 1.5 + 2_000_000, (small, large)
