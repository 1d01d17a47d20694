"""The bulk sender against the real sandbox over HTTP: exactly-once delivery, faults, halts, resumes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger, Suppression
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.report import error_counts, send_counts
from airflow_provider_wamm.campaign.result import CampaignHalted, CampaignResult
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.client import GraphClient, SendResult
from airflow_provider_wamm.graph.errors import AuthenticationError, ConfigurationError
from airflow_provider_wamm.sandbox import Sandbox

SPRING = Personaliser(
    body_parameters=["{name}", "{discount}"],
    buttons=[
        {"type": "url", "index": 0, "text": "{slug}"},
        {"type": "quick_reply", "index": 1, "payload": "stop"},
    ],
)


def number(i: int) -> str:
    return f"+49151{i:08d}"


def digits(i: int) -> str:
    return f"49151{i:08d}"


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"phone": number(i), "name": f"Ana{i}", "discount": "20%", "slug": f"s{i}"}
        for i in range(start, start + n)
    ]


def settings(campaign_id: str, **kw: Any) -> CampaignSettings:
    base: dict[str, Any] = {
        "template_name": "spring_sale",
        "language": "en_US",
        "personaliser": SPRING,
        "max_messages_per_second": 1000.0,
        "concurrency": 16,
        "batch_size": 200,
        "retry_backoff_s": 0.02,
        "retry_backoff_max_s": 0.2,
        "throttle_recovery_s": 0.2,
        "progress_interval_s": 0.5,
    }
    base.update(kw)
    return CampaignSettings(campaign_id=campaign_id, **base)


def assert_accounted(result: CampaignResult) -> None:
    """Every row of the shard is in exactly one bucket."""
    buckets = (
        result.accepted
        + result.held
        + result.paused
        + result.failed
        + result.unknown
        + result.skipped
        + result.suppressed
        + result.invalid
        + result.duplicates
        + result.would_send
        + result.released
        + result.foreign_claimed
    )
    assert buckets == result.total == result.accounted, result.to_dict()


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[GraphClient]:
    sandbox.configure(mps_cap=None)
    c = GraphClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        base_url=sandbox.url,
        max_retries=0,
        timeout=5.0,
    )
    yield c
    c.close()


def test_every_recipient_gets_exactly_one_message_despite_faults(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    sandbox.configure(fault_transient_rate=0.05, fault_throttle_rate=0.05, seed=7)
    result = run_campaign(
        rows(2000),
        client=client,
        ledger=sqlite_ledger,
        settings=settings("faults"),
    )
    sends = sandbox.sends_per_recipient()
    assert len(sends) == 2000 and set(sends.values()) == {1}
    assert result.accepted == 2000 and result.total == 2000 and result.failed == 0
    assert result.retries > 0 and result.throttled > 0  # the faults happened and were handled
    # Isolated throttles (5 % of answers) are retried without slowing the whole campaign down.
    assert result.final_rate == settings("faults").max_messages_per_second
    assert_accounted(result)
    assert send_counts(sqlite_ledger, "faults") == {"accepted": 2000}
    wamids = {r["wamid"] for r in sqlite_ledger.iter_sends("faults")}
    assert wamids == {m.wamid for m in sandbox.messages}
    assert sqlite_ledger.list_runs("faults")[0]["state"] == "finished"


def test_throttling_lowers_the_rate(sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger) -> None:
    sandbox.configure(mps_cap=50.0, pair_limit=False)
    result = run_campaign(
        rows(100),
        client=client,
        ledger=sqlite_ledger,
        settings=settings(
            "throttle", max_messages_per_second=300.0, min_messages_per_second=5.0, throttle_recovery_s=5.0
        ),
    )
    assert result.accepted == 100 and set(sandbox.sends_per_recipient().values()) == {1}
    assert result.throttled > 0 and sandbox.errors()[130429] == result.throttled
    assert result.final_rate is not None and result.final_rate < 300.0


def test_halt_stops_at_once_and_a_second_run_finishes_without_duplicates(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    sandbox.configure(latency_s=0.002)
    sent_before_halt = 400

    class ExpiringClient:
        """Flips the sandbox's token-expiry switch after some sends, as if the token expired mid-run."""

        def __init__(self) -> None:
            self.calls = 0
            self.lock = threading.Lock()

        def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> SendResult:
            with self.lock:
                self.calls += 1
                if self.calls == sent_before_halt:
                    sandbox.configure(token_expired=True)
            return client.send_marketing_message(payload, retry=retry)

    cfg = settings("halt", batch_size=100, concurrency=8)
    with pytest.raises(CampaignHalted) as info:
        run_campaign(rows(1000), client=ExpiringClient(), ledger=sqlite_ledger, settings=cfg)
    halted = info.value
    assert isinstance(halted.error, AuthenticationError) and halted.error.code == 190
    first = halted.result
    assert first.halted and first.halt_error is not None and first.halt_error["code"] == 190
    in_flight = max(cfg.concurrency, first.peak_concurrency)  # the senders follow the round trips
    assert sent_before_halt - in_flight <= first.accepted < sent_before_halt
    # No new sends after the halt: only requests already in flight could still hit the expired token.
    assert sandbox.errors()[190] <= in_flight
    assert first.released > 0
    counts = send_counts(sqlite_ledger, "halt")
    assert "claimed" not in counts and counts == {"accepted": first.accepted}
    assert_accounted(first)
    assert sqlite_ledger.list_runs("halt")[0]["state"] == "halted"

    sandbox.configure(token_expired=False)
    second = run_campaign(rows(1000), client=client, ledger=sqlite_ledger, settings=cfg)
    sends = sandbox.sends_per_recipient()
    assert len(sends) == 1000 and set(sends.values()) == {1}
    assert second.already_done == first.accepted and second.accepted == 1000 - first.accepted
    assert send_counts(sqlite_ledger, "halt") == {"accepted": 1000}


def test_same_campaign_twice_sends_nothing_the_second_time(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    first = run_campaign(rows(300), client=client, ledger=sqlite_ledger, settings=settings("twice"))
    assert first.accepted == 300
    second = run_campaign(rows(300), client=client, ledger=sqlite_ledger, settings=settings("twice"))
    assert second.accepted == 0 and second.already_done == 300 and second.skipped == 300
    assert len(sandbox.messages) == 300
    assert_accounted(second)


def test_new_campaign_skips_suppressed_and_frequency_capped(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    stopped, limited, undeliverable = digits(1), digits(2), digits(3)
    sandbox.configure(
        forced_outcomes={stopped: "error:131050", limited: "error:131049", undeliverable: "error:131026"}
    )
    first = run_campaign(rows(50), client=client, ledger=sqlite_ledger, settings=settings("spring-1"))
    assert first.accepted == 47 and first.failed == 3
    assert first.errors_by_code == {"131050": 1, "131049": 1, "131026": 1}
    active = sqlite_ledger.active_suppressions([stopped, limited, undeliverable])
    assert set(active) == {stopped, limited}
    assert active[stopped].until is None and active[limited].until is not None
    assert error_counts(sqlite_ledger, "spring-1")[0]["count"] == 1

    # A new campaign sends again, except to the suppressed (131026 is not a suppression).
    second = run_campaign(rows(50), client=client, ledger=sqlite_ledger, settings=settings("spring-2"))
    assert second.suppressed == 2 and second.accepted == 47 and second.failed == 1, second.to_dict()
    sends = sandbox.sends_per_recipient()
    assert sends[stopped] == 0 and sends[limited] == 0 and sends[digits(0)] == 2  # refusals are not sends
    rows_2 = {r["recipient"]: r for r in sqlite_ledger.iter_sends("spring-2")}
    assert rows_2[stopped]["state"] == "skipped" and "stopped_marketing" in rows_2[stopped]["error_details"]

    # With a frequency cap, nobody messaged in the last hour gets another one; new recipients do.
    third = run_campaign(
        rows(60),
        client=client,
        ledger=sqlite_ledger,
        settings=settings("spring-3", frequency_cap=timedelta(hours=1)),
    )
    assert third.frequency_capped == 47 and third.suppressed == 2 and third.accepted == 10
    assert third.failed == 1  # the 131026 recipient was never accepted, so the cap does not apply to it
    assert_accounted(third)


def test_unknown_outcomes_are_not_resent_unless_asked(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    lost = [digits(i) for i in (3, 7, 11)]
    sandbox.configure(lost_response_mode="drop", forced_outcomes={d: "lost#1" for d in lost})
    first = run_campaign(rows(20), client=client, ledger=sqlite_ledger, settings=settings("lost"))
    assert first.unknown == 3 and first.accepted == 17 and first.errors_by_code == {"unknown": 3}
    assert all(sandbox.sends_per_recipient()[d] == 1 for d in lost)  # Meta did take them
    assert send_counts(sqlite_ledger, "lost") == {"accepted": 17, "unknown": 3}

    again = run_campaign(rows(20), client=client, ledger=sqlite_ledger, settings=settings("lost"))
    assert again.accepted == 0 and again.already_done == 20
    assert len(sandbox.messages) == 20

    forced = run_campaign(
        rows(20), client=client, ledger=sqlite_ledger, settings=settings("lost", resend_unknown=True)
    )
    assert forced.accepted == 3 and forced.already_done == 17
    assert all(sandbox.sends_per_recipient()[d] == 2 for d in lost)  # the price of resend_unknown
    assert send_counts(sqlite_ledger, "lost") == {"accepted": 20}


def test_crashed_attempt_claims_become_unknown_and_are_not_sent(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    crashed = [digits(i) for i in range(5)]
    sqlite_ledger.claim("crash", crashed, attempt_id="crashed-attempt")
    result = run_campaign(rows(10), client=client, ledger=sqlite_ledger, settings=settings("crash"))
    assert result.stale_unknown == 5 and result.already_done == 5 and result.accepted == 5
    assert set(sandbox.sends_per_recipient()) == {digits(i) for i in range(5, 10)}
    assert send_counts(sqlite_ledger, "crash") == {"unknown": 5, "accepted": 5}


def test_invalid_duplicate_empty_and_none_rows_are_counted_with_reasons(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    data: list[Any] = [
        {"phone": number(1), "name": "A", "discount": "5%", "slug": "a"},
        {"phone": "0049 151 00000001", "name": "A", "discount": "5%", "slug": "a"},  # duplicate, other format
        {"phone": "", "name": "B"},
        {"phone": None, "name": "C"},
        {"phone": "not a phone", "name": "D"},
        {"name": "no phone key"},
        {"phone": number(2), "discount": "5%", "slug": "b"},  # personalisation: no name
        {
            "phone": number(3),
            "name": "E",
            "discount": "5%",
            "slug": "has space",
        },  # Meta: no spaces in URL suffix
        None,
        {"phone": number(4), "name": "F", "discount": "5%", "slug": "f"},
    ]
    # Far duplicates: beyond the in-memory window, caught by the ledger.
    data += rows(30, start=100) + rows(30, start=100)
    cfg = settings("rows", batch_size=10, dedupe_window=0)
    result = run_campaign(data, client=client, ledger=sqlite_ledger, settings=cfg)
    assert result.total == len(data)
    assert result.accepted == 2 + 30
    assert result.duplicates == 1 + 30
    assert result.invalid == 7
    assert_accounted(result)
    assert set(sandbox.sends_per_recipient().values()) == {1}
    reasons = result.invalid_reasons
    assert reasons["phone: is empty"] == 1 and reasons["phone: is missing"] == 2  # "" and None, None row
    assert reasons["missing field 'phone'"] == 1
    assert any("missing field 'name'" in r for r in reasons)
    assert any("buttons[0]" in r and "white space" in r for r in reasons)
    by_key = {r["recipient"]: r for r in sqlite_ledger.iter_sends("rows", states=["invalid"])}
    assert by_key["!3"]["error_details"] == "row 3: phone: is empty"
    assert by_key["!6"]["error_details"] == "row 6: missing field 'phone'"
    assert "missing field 'name'" in by_key[digits(2)]["error_details"]
    assert len(by_key) == 7
    assert send_counts(sqlite_ledger, "rows") == {"accepted": 32, "invalid": 7}


def test_missing_recipient_field_fails_fast(client: GraphClient, sqlite_ledger: Ledger) -> None:
    with pytest.raises(ConfigurationError, match=r"'phone' not found.*\['mobile', 'name'\]"):
        run_campaign(
            [{"mobile": number(1), "name": "x"}], client=client, ledger=sqlite_ledger, settings=settings("x")
        )


def test_dry_run_sends_and_writes_nothing(sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    data = [*rows(40), {"phone": "123"}, rows(1)[0]]
    result = run_campaign(data, client=None, ledger=sqlite_ledger, settings=settings("dry", dry_run=True))
    assert result.dry_run and result.would_send == 40 and result.invalid == 1 and result.duplicates == 1
    assert result.accepted == 0
    assert_accounted(result)
    assert sandbox.messages == [] and send_counts(sqlite_ledger, "dry") == {}
    assert sqlite_ledger.list_runs("dry") == []
    # A dry run reads the ledger: suppressed recipients are reported as such.
    sqlite_ledger.add_suppressions([Suppression(digits(0), "manual")])
    again = run_campaign(rows(40), client=None, ledger=sqlite_ledger, settings=settings("dry", dry_run=True))
    assert again.suppressed == 1 and again.would_send == 39


def test_shards_split_the_campaign_without_overlap(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    results: list[CampaignResult] = []
    errors: list[BaseException] = []

    def shard(i: int) -> None:
        try:
            cfg = settings(
                "sharded", shard_index=i, shard_count=3, max_messages_per_second=300.0, concurrency=4
            )
            results.append(run_campaign(rows(600), client=client, ledger=sqlite_ledger, settings=cfg))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=shard, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    sends = sandbox.sends_per_recipient()
    assert len(sends) == 600 and set(sends.values()) == {1}
    assert sum(r.total for r in results) == 600 and sum(r.accepted for r in results) == 600
    assert all(r.accepted > 100 for r in results)  # roughly balanced
    shards = {row["shard_index"] for row in sqlite_ledger.iter_sends("sharded")}
    assert shards == {0, 1, 2}


def test_retries_then_gives_up_and_a_later_run_retries(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    flaky, pair = digits(5), digits(6)
    sandbox.configure(forced_outcomes={flaky: "error:131000#4", pair: "error:131056#1"})
    cfg = settings("retry", max_attempts=3)
    first = run_campaign(rows(10), client=client, ledger=sqlite_ledger, settings=cfg)
    assert first.failed == 1 and first.errors_by_code == {"131000": 1} and first.retries == 2
    assert first.pair_limited == 1 and first.accepted == 9  # the pair-limited one was delayed, then sent
    row = next(r for r in sqlite_ledger.iter_sends("retry") if r["recipient"] == flaky)
    assert row["state"] == "failed" and row["attempts"] == 3 and row["not_before"] is not None
    second = run_campaign(rows(10), client=client, ledger=sqlite_ledger, settings=cfg)
    assert second.accepted == 1 and second.already_done == 9
    assert sandbox.sends_per_recipient()[flaky] == 1
    assert send_counts(sqlite_ledger, "retry") == {"accepted": 10}


def test_held_and_paused_answers(sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger) -> None:
    sandbox.configure(forced_outcomes={digits(0): "paused"})
    result = run_campaign(
        rows(5),
        client=client,
        ledger=sqlite_ledger,
        settings=settings(
            "paced", template_name="paced_promo", personaliser=Personaliser(body_parameters=["{name}"])
        ),
    )
    assert result.held == 4 and result.paused == 1 and result.sent == 5
    assert send_counts(sqlite_ledger, "paced") == {"held": 4, "paused": 1}


def test_template_errors_halt_the_campaign(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    # A low rate: the other workers have reserved send slots seconds ahead; the halt must not wait for them.
    cfg = settings(
        "missing-template",
        template_name="no_such_template",
        personaliser=None,
        max_messages_per_second=2.0,
        concurrency=8,
    )
    started = time.monotonic()
    with pytest.raises(CampaignHalted) as info:
        run_campaign(rows(200), client=client, ledger=sqlite_ledger, settings=cfg)
    assert time.monotonic() - started < 2.0
    assert info.value.error.code == 132001 and sandbox.errors()[132001] == 1
    assert len(sandbox.messages) == 0
    assert send_counts(sqlite_ledger, "missing-template") == {}  # everything released for a fixed re-run


def test_streaming_keeps_only_a_bounded_window_in_memory(client: GraphClient, sqlite_ledger: Ledger) -> None:
    sent = 0
    lead = 0
    lock = threading.Lock()

    class CountingClient:
        def send_marketing_message(self, payload: Mapping[str, Any], *, retry: bool = True) -> SendResult:
            nonlocal sent
            with lock:
                sent += 1
            return client.send_marketing_message(payload, retry=retry)

    def source() -> Iterator[dict[str, Any]]:
        nonlocal lead
        for i, row in enumerate(rows(1500)):
            lead = max(lead, i - sent)
            yield row

    cfg = settings("stream", batch_size=100, concurrency=8)
    result = run_campaign(source(), client=CountingClient(), ledger=sqlite_ledger, settings=cfg)
    assert result.accepted == 1500
    # Jobs queued unclaimed (< half a batch), a batch being read, the requests in flight.
    bound = 3 * cfg.batch_size + max(2 * cfg.concurrency, int(cfg.max_messages_per_second / 4))
    assert lead <= bound


def test_progress_logs_mask_phone_numbers(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.configure(forced_outcomes={digits(1): "error:131026"})
    log = logging.getLogger("test.campaign")
    with caplog.at_level(logging.DEBUG):
        run_campaign(rows(5), client=client, ledger=sqlite_ledger, settings=settings("logs"), log=log)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "campaign logs" in text and "5 rows" in text
    assert "49***********01" in text or "49*********01" in text
    for i in range(5):
        assert digits(i) not in text


def test_settings_are_validated(sqlite_ledger: Ledger) -> None:
    with pytest.raises(ConfigurationError, match=r"template\.name"):
        run_campaign(
            [],
            client=None,
            ledger=sqlite_ledger,
            settings=settings("x", template_name="Bad Name", dry_run=True),
        )
    with pytest.raises(ConfigurationError, match="shard_index"):
        run_campaign(
            [], client=None, ledger=sqlite_ledger, settings=settings("x", shard_index=3, shard_count=3)
        )
    with pytest.raises(ConfigurationError, match="client"):
        run_campaign([], client=None, ledger=sqlite_ledger, settings=settings("x"))
    with pytest.raises(ConfigurationError, match="max_messages_per_second"):
        run_campaign(
            [],
            client=None,
            ledger=sqlite_ledger,
            settings=settings("x", max_messages_per_second=0, dry_run=True),
        )
    with pytest.raises(ConfigurationError, match="default_region"):
        run_campaign(
            [], client=None, ledger=sqlite_ledger, settings=settings("x", default_region="XX", dry_run=True)
        )
    empty = run_campaign([], client=None, ledger=sqlite_ledger, settings=settings("x", dry_run=True))
    assert empty.total == 0 and empty.to_dict()["messages_per_second"] == 0.0


def test_result_to_dict_has_the_contract_keys() -> None:
    result = CampaignResult(campaign_id="c", accepted=3, held=1, elapsed_s=2.0)
    result.errors_by_code["131026"] += 2
    data = result.to_dict()
    for key in (
        "campaign_id",
        "total",
        "accepted",
        "held",
        "paused",
        "failed",
        "skipped",
        "unknown",
        "duplicates",
        "invalid",
        "suppressed",
        "errors_by_code",
        "elapsed_s",
        "messages_per_second",
        "dry_run",
        "would_send",
    ):
        assert key in data
    assert (
        data["messages_per_second"] == 2.0 and data["sent"] == 4 and data["errors_by_code"] == {"131026": 2}
    )
    import json

    json.dumps(data)  # XCom-safe
    assert L.ACCEPTED == "accepted"


@pytest.mark.parametrize("campaign_id", ["spring ", " spring", "spring\t"])
def test_campaign_ids_with_surrounding_white_space_are_refused(campaign_id: str) -> None:
    with pytest.raises(ConfigurationError, match="white space"):
        settings(campaign_id).validate()


def test_public_names_stay_importable_where_they_were() -> None:
    from airflow_provider_wamm import campaign
    from airflow_provider_wamm.campaign import result, sender, settings, workers

    assert sender.CampaignSettings is settings.CampaignSettings is campaign.CampaignSettings
    assert sender.CampaignResult is result.CampaignResult is campaign.CampaignResult
    assert sender.CampaignHalted is result.CampaignHalted is campaign.CampaignHalted
    assert sender.MessageSender is workers.MessageSender
    assert sender.run_campaign is campaign.run_campaign


def test_a_repeat_read_while_the_first_job_waits_for_its_retry_is_a_duplicate(
    sandbox: Sandbox, client: GraphClient, sqlite_ledger: Ledger
) -> None:
    """Claims are taken when a job is handed over, and a job waiting for a retry gives its claim back:
    the run itself makes sure a recipient has at most one job, so a repeat beyond the in-memory window
    read meanwhile is a duplicate (neither a second message nor counted twice)."""
    sandbox.configure(forced_outcomes={digits(0): "error:131056#1"})  # pair limit: retried after 1 s
    data = rows(1) + rows(30, start=1) + rows(1)
    cfg = settings("repeats", batch_size=5, dedupe_window=0, max_messages_per_second=50.0, concurrency=2)
    result = run_campaign(data, client=client, ledger=sqlite_ledger, settings=cfg)
    sends = sandbox.sends_per_recipient()
    assert len(sends) == 31 and set(sends.values()) == {1}
    assert result.pair_limited == 1 and result.accepted == 31 and result.duplicates == 1
    assert result.already_done == 0
    assert_accounted(result)
