"""Errors that would fail a whole list one recipient at a time, against the sandbox.

The template's sync (131009 on the first sends) makes the campaign wait and finish with nobody failed;
a header media link every row shares failing with 131053 halts it after a handful of sends; code 100
on every send halts it within the breaker's window with the unsent released; numbers in a market Meta
does not deliver marketing messages to are skipped without a request.
"""

from __future__ import annotations

import time

import pytest

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.breaker import BreakerSettings, CircuitBreakerTripped
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.sandbox import Sandbox
from tests.reliability.harness import audience, digits, fast_settings, phone, sandbox_client

TIMEOUT = 5.0
#: A shared header image every row sends.
BROKEN_LINK = "https://cdn.example.com/spring-banner.jpg"


def test_template_sync_waits_then_finishes(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """131009 on the first sends (the template's sync): every send waits, then the campaign finishes
    with everyone accepted and nobody recorded failed."""
    crowd = audience(200, extras=False)
    sandbox.reset()
    sandbox.configure(template_sync_s=0.6, mps_cap=None)
    breaker = BreakerSettings(sync_wait_s=0.8, sync_waits=3)
    started = time.monotonic()
    with sandbox_client(sandbox, timeout=TIMEOUT) as client:
        result = run_campaign(
            crowd.rows,
            client=client,
            ledger=file_ledger,
            settings=fast_settings("sync", circuit_breaker=breaker),
        )
    elapsed = time.monotonic() - started
    assert sandbox.errors()[131009] >= 1  # the first sends did get 131009
    assert result.sync_waits >= 1 and elapsed >= 0.8
    assert result.failed == 0 and result.accepted == len(crowd.valid)
    counts = send_counts(file_ledger, "sync")
    assert counts == {L.ACCEPTED: len(crowd.valid)}
    assert set(sandbox.sends_per_recipient().values()) == {1}


def test_template_sync_waits_are_bounded(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """A 131009 that outlasts every wait is the recipients' error again, and the breaker halts the run."""
    crowd = audience(300, extras=False)
    sandbox.reset()
    sandbox.configure(template_sync_s=600.0, mps_cap=None)
    breaker = BreakerSettings(sync_wait_s=0.2, sync_waits=2, consecutive=20)
    with sandbox_client(sandbox, timeout=TIMEOUT) as client, pytest.raises(CircuitBreakerTripped) as info:
        run_campaign(
            crowd.rows,
            client=client,
            ledger=file_ledger,
            settings=fast_settings(
                "sync2",
                circuit_breaker=breaker,
                max_messages_per_second=80.0,
                min_messages_per_second=1.0,
                adaptive_concurrency=False,  # at most 32 requests in flight
            ),
        )
    result = info.value.result
    assert result.sync_waits == 2 and result.accepted == 0
    assert 20 <= result.failed <= 20 + 32, result.to_dict()  # the streak, plus at most 32 in flight
    assert result.released > 0 and L.CLAIMED not in send_counts(file_ledger, "sync2")


def test_shared_broken_media_link_halts_after_a_handful(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """Every row sends the same header image, which cannot be fetched (131053): the run halts after
    ``media_failures`` of them instead of failing 1,000 recipients."""
    rows = [{"phone": phone(i), "name": f"N{i}"} for i in range(1000)]
    sandbox.reset()
    sandbox.configure(broken_media_links=(BROKEN_LINK,), mps_cap=None)
    settings = fast_settings(
        "media",
        template_name="image_promo",
        personaliser=Personaliser(
            body_parameters=["{name}"], header={"type": "image", "image": {"link": BROKEN_LINK}}
        ),
        concurrency=4,
        max_messages_per_second=40.0,  # at most 10 requests in flight
        min_messages_per_second=1.0,
        adaptive_concurrency=False,
        circuit_breaker={"media_failures": 5},
    )
    with sandbox_client(sandbox, timeout=TIMEOUT) as client, pytest.raises(CircuitBreakerTripped) as info:
        run_campaign(rows, client=client, ledger=file_ledger, settings=settings)
    result = info.value.result
    assert info.value.error.code == 131053 and BROKEN_LINK in info.value.reason
    assert 5 <= result.failed <= 5 + 10  # the handful, plus what was in flight
    assert sandbox.errors()[131053] == result.failed
    assert result.released > 0 and result.tripped == info.value.reason
    assert L.CLAIMED not in send_counts(file_ledger, "media")


def test_code_100_on_every_send_trips_the_breaker(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """Code 100 with the same details on every send: the run halts within the breaker's window, the
    unsent are released (and sent by a run after the fix), nobody gets two messages."""
    crowd = audience(1000, extras=False)
    sandbox.reset()
    sandbox.configure(mps_cap=None, forced_outcomes={d: "error:100" for d in crowd.valid})
    settings = fast_settings(
        "hundred",
        concurrency=8,
        max_messages_per_second=80.0,
        min_messages_per_second=1.0,
        adaptive_concurrency=False,  # at most 20 requests in flight
    )
    with sandbox_client(sandbox, timeout=TIMEOUT) as client, pytest.raises(CircuitBreakerTripped) as info:
        run_campaign(crowd.rows, client=client, ledger=file_ledger, settings=settings)
    result = info.value.result
    assert info.value.error.code == 100 and "20 recipients in a row" in info.value.reason
    assert 20 <= result.failed <= 20 + 20  # the breaker's streak, plus at most 20 in flight
    assert result.released > 0 and result.unknown == 0 and result.sent == 0
    assert result.total < 300  # most of the list was never read, let alone sent
    counts = send_counts(file_ledger, "hundred")
    assert L.CLAIMED not in counts and counts[L.FAILED] == result.failed

    sandbox.configure(forced_outcomes={})
    with sandbox_client(sandbox, timeout=TIMEOUT) as client:
        resumed = run_campaign(crowd.rows, client=client, ledger=file_ledger, settings=settings)
    assert resumed.accepted == len(crowd.valid) - result.failed
    assert set(sandbox.sends_per_recipient().values()) == {1}


def test_recipient_codes_never_trip_the_breaker(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """A list where everyone stopped marketing messages (131050) is a list of people: no halt."""
    crowd = audience(120, extras=False)
    sandbox.reset()
    sandbox.configure(mps_cap=None, forced_outcomes={d: "error:131050" for d in crowd.valid})
    with sandbox_client(sandbox, timeout=TIMEOUT) as client:
        result = run_campaign(crowd.rows, client=client, ledger=file_ledger, settings=fast_settings("stops"))
    assert result.failed == len(crowd.valid) and not result.halted


def test_breaker_off(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """``circuit_breaker=False``: the old behaviour, every recipient recorded failed."""
    crowd = audience(60, extras=False)
    sandbox.reset()
    sandbox.configure(mps_cap=None, forced_outcomes={d: "error:100" for d in crowd.valid})
    with sandbox_client(sandbox, timeout=TIMEOUT) as client:
        result = run_campaign(
            crowd.rows,
            client=client,
            ledger=file_ledger,
            settings=fast_settings("off", circuit_breaker=False),
        )
    assert result.failed == len(crowd.valid) and not result.halted


def us_phone(i: int) -> str:
    """A valid New York number."""
    return f"+1 212 555 {i:04d}"


def test_us_numbers_skipped_at_intake(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """500 recipients, 50 of them US numbers: the 50 are skipped with the reason, without a request."""
    rows = [{"phone": phone(i), "name": f"N{i}"} for i in range(450)]
    rows += [{"phone": us_phone(i), "name": f"U{i}"} for i in range(50)]
    rows.insert(3, {"phone": "+1 416 555 0100", "name": "Toronto"})  # +1 but Canada: sent
    sandbox.reset()
    sandbox.configure(mps_cap=None)
    with sandbox_client(sandbox, timeout=TIMEOUT) as client:
        result = run_campaign(rows, client=client, ledger=file_ledger, settings=fast_settings("us"))
    assert result.market_not_supported == 50 and result.skipped == 50
    assert result.accepted == 451 and result.failed == 0
    requested = sandbox.send_requests()
    us = {f"1212555{i:04d}" for i in range(50)}
    assert not us & set(requested)
    assert len(requested) == 451 and "14165550100" in requested and digits(0) in requested
    rows_by_recipient = {row["recipient"]: row for row in file_ledger.iter_sends("us")}
    for recipient in us:
        row = rows_by_recipient[recipient]
        assert row["state"] == L.SKIPPED and row["error_details"].startswith("market_not_supported: US")


def test_us_numbers_sent_when_no_market_is_excluded(sandbox: Sandbox, file_ledger: Ledger) -> None:
    """``unsupported_markets=None`` sends to every region (a request per US number)."""
    rows = [{"phone": us_phone(i), "name": f"U{i}"} for i in range(5)]
    sandbox.reset()
    sandbox.configure(mps_cap=None)
    with sandbox_client(sandbox, timeout=TIMEOUT) as client:
        result = run_campaign(
            rows, client=client, ledger=file_ledger, settings=fast_settings("us2", unsupported_markets=None)
        )
    assert result.market_not_supported == 0 and len(sandbox.send_requests()) == 5
