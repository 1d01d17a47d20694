"""The circuit breaker, the shared media link watch, the template-sync wait, per-user permanent
suppression and the markets skipped at intake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.breaker import (
    BreakerSettings,
    CampaignGuard,
    CircuitBreakerTripped,
    media_links,
)
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.ledger.records import suppression_for_error
from airflow_provider_wamm.campaign.markets import check_markets, market_of, unsupported_market
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
from airflow_provider_wamm.graph.errors import ConfigurationError, GraphError, parse_error_envelope
from airflow_provider_wamm.sandbox import Sandbox
from tests.reliability.harness import sandbox_client

PAYLOAD: dict[str, Any] = {"template": {"components": []}}


def err(code: int, details: str = "The parameter x is invalid") -> GraphError:
    """A Graph error as the client raises it."""
    body = {"error": {"code": code, "message": f"({code})", "error_data": {"details": details}}}
    return parse_error_envelope(body, http_status=400)


def test_consecutive_identical_errors_trip() -> None:
    guard = CampaignGuard(BreakerSettings(consecutive=5))
    reasons = [guard.failed(PAYLOAD, err(100)) for _ in range(5)]
    assert reasons[:4] == [None] * 4
    assert reasons[4] is not None and "5 recipients in a row" in reasons[4]


def test_an_acceptance_or_other_details_end_the_streak() -> None:
    guard = CampaignGuard(BreakerSettings(consecutive=3, window=1000))
    assert guard.failed(PAYLOAD, err(100)) is None
    assert guard.failed(PAYLOAD, err(100)) is None
    guard.accepted()
    assert guard.failed(PAYLOAD, err(100)) is None
    assert guard.failed(PAYLOAD, err(100, "The parameter y is invalid")) is None
    assert guard.failed(PAYLOAD, err(100)) is None
    assert guard.failed(PAYLOAD, err(100)) is None
    assert guard.failed(PAYLOAD, err(100)) is not None


def test_share_of_the_window_trips() -> None:
    """More than 80 % of the last 100 answers with one error, interleaved with acceptances."""
    guard = CampaignGuard(BreakerSettings(consecutive=1000, window=100, share=0.8))
    tripped = None
    answers = 0
    while tripped is None and answers < 500:
        answers += 1
        if answers % 10 == 0:
            guard.accepted()
        else:
            tripped = guard.failed(PAYLOAD, err(100))
    assert tripped is not None and "of the last 100 answers" in tripped
    assert 100 <= answers < 110


def test_share_below_the_threshold_never_trips() -> None:
    guard = CampaignGuard(BreakerSettings(consecutive=1000, window=100, share=0.8))
    for i in range(1000):
        if i % 4 == 0:
            guard.accepted()
        else:
            assert guard.failed(PAYLOAD, err(100)) is None  # 75 %


@pytest.mark.parametrize("code", [131026, 131049, 131050, 130472, 137000])
def test_per_recipient_codes_never_trip(code: int) -> None:
    guard = CampaignGuard(BreakerSettings(consecutive=3, window=5))
    assert all(guard.failed(PAYLOAD, err(code)) is None for _ in range(50))


def test_no_breaker() -> None:
    guard = CampaignGuard(None)
    assert all(guard.failed(PAYLOAD, err(100)) is None for _ in range(500))
    assert guard.sync_hold(err(131009), now=0.0) is None


def image_payload(link: str) -> dict[str, Any]:
    header = {"type": "header", "parameters": [{"type": "image", "image": {"link": link}}]}
    return {"template": {"components": [header]}}


def test_shared_media_link_halts_after_a_handful() -> None:
    guard = CampaignGuard(BreakerSettings(media_failures=5, consecutive=1000))
    # media errors on different links are the recipients' (a link per row)
    assert all(guard.failed(image_payload(f"https://x/{i}.jpg"), err(131053)) is None for i in range(20))
    shared = image_payload("https://x/banner.jpg")
    reasons = [guard.failed(shared, err(131053)) for _ in range(5)]
    assert reasons[:4] == [None] * 4 and reasons[4] is not None and "https://x/banner.jpg" in reasons[4]


def test_media_links_of_headers_and_cards() -> None:
    card = {"card_index": 0, "components": image_payload("https://x/card.jpg")["template"]["components"]}
    payload = image_payload("https://x/top.mp4")
    payload["template"]["components"].append({"type": "carousel", "cards": [card]})
    payload["template"]["components"].append({"type": "body", "parameters": [{"type": "text", "text": "x"}]})
    assert list(media_links(payload)) == ["https://x/top.mp4", "https://x/card.jpg"]
    assert list(media_links({})) == []


def test_sync_waits_until_something_is_accepted() -> None:
    guard = CampaignGuard(BreakerSettings(sync_wait_s=10.0, sync_waits=2))
    assert guard.sync_hold(err(100), now=0.0) is None  # only 131009
    assert guard.sync_hold(err(131009), now=0.0) == 10.0
    assert guard.sync_hold(err(131009), now=5.0) == 10.0  # the same wait: not a second one
    assert guard.sync_waits == 1
    assert guard.sync_hold(err(131009), now=11.0) == 21.0
    assert guard.sync_hold(err(131009), now=22.0) is None  # waits used up: the recipient's error
    assert guard.sync_waits == 2
    synced = CampaignGuard(BreakerSettings())
    synced.accepted()
    assert synced.sync_hold(err(131009), now=0.0) is None  # the template works: a parameter problem


def test_breaker_settings_from_what_users_pass() -> None:
    assert BreakerSettings.of(False) is None and BreakerSettings.of(None) is None
    assert BreakerSettings.of(True) == BreakerSettings()
    assert BreakerSettings.of({"consecutive": 7}) == BreakerSettings(consecutive=7)
    with pytest.raises(ConfigurationError, match="unknown fields"):
        BreakerSettings.of({"consecutve": 7})
    with pytest.raises(ConfigurationError):
        BreakerSettings.of("on")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="share"):
        BreakerSettings(share=1.5).validate()
    with pytest.raises(ConfigurationError, match="consecutive"):
        BreakerSettings(consecutive=0).validate()
    with pytest.raises(ConfigurationError, match=r"circuit_breaker\.window"):
        CampaignSettings("c", "t", "en_US", circuit_breaker={"window": 0}).validate()


def test_tripped_is_a_halt_that_pickles() -> None:
    import pickle

    tripped = CircuitBreakerTripped(err(100), CampaignResult("c"), "20 in a row")
    again = pickle.loads(pickle.dumps(tripped))
    assert isinstance(again, CircuitBreakerTripped) and again.reason == "20 in a row"
    assert "circuit breaker" in str(again) and again.error.code == 100


def test_markets() -> None:
    assert market_of("12125550123") == "US" and market_of("14165550100") == "CA"
    assert market_of("17875550100") == "PR"
    assert unsupported_market("12125550123", frozenset({"US"})) == "US"
    assert unsupported_market("14165550100", frozenset({"US"})) is None
    assert unsupported_market("US.13491208655302741918", frozenset({"US"})) is None  # a user id
    assert check_markets(["us", "BR"]) == {"US", "BR"} and check_markets(None) == frozenset()
    with pytest.raises(ConfigurationError, match="region codes"):
        check_markets(["USA"])
    with pytest.raises(ConfigurationError, match="list"):
        check_markets("US")


@pytest.mark.parametrize("code", [130472, 137000])
def test_per_user_permanent_codes_suppress(code: int, sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    """130472 and 137000 keep the recipient out of later campaigns for ``per_user_permanent``."""
    sandbox.configure(forced_outcomes={"4915100000001": f"error:{code}"})
    cfg = CampaignSettings(
        "perm",
        "welcome_named",
        "en_US",
        personaliser=Personaliser(body_parameters={"first_name": "{name}"}),
        per_user_permanent=timedelta(days=30),
    )
    rows = [{"phone": f"+4915100000{i:03d}", "name": "A"} for i in range(3)]
    with sandbox_client(sandbox, timeout=5.0) as client:
        result = run_campaign(rows, client=client, ledger=sqlite_ledger, settings=cfg)
    assert result.failed == 1 and result.accepted == 2
    now = datetime.now(UTC)
    held = sqlite_ledger.active_suppressions(["4915100000001"], now=now)["4915100000001"]
    assert held.reason == L.SUPPRESS_PER_USER_PERMANENT
    assert held.until is not None and timedelta(days=29) < held.until - now <= timedelta(days=30)
    later = CampaignSettings("perm2", "welcome_named", "en_US", personaliser=cfg.personaliser)
    with sandbox_client(sandbox, timeout=5.0) as client:
        second = run_campaign(rows, client=client, ledger=sqlite_ledger, settings=later)
    assert second.suppressed == 1 and second.accepted == 2


def test_per_user_permanent_off(sandbox: Sandbox, sqlite_ledger: Ledger) -> None:
    sandbox.configure(forced_outcomes={"4915100000001": "error:130472"})
    cfg = CampaignSettings(
        "perm-off",
        "welcome_named",
        "en_US",
        personaliser=Personaliser(body_parameters={"first_name": "{name}"}),
        per_user_permanent=None,
    )
    with sandbox_client(sandbox, timeout=5.0) as client:
        run_campaign(
            [{"phone": "+4915100000001", "name": "A"}], client=client, ledger=sqlite_ledger, settings=cfg
        )
    assert sqlite_ledger.active_suppressions(["4915100000001"], now=datetime.now(UTC)) == {}


def test_status_webhook_130472_suppresses() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    entry = suppression_for_error("4915100000001", 130472, at)
    assert entry is not None and entry.reason == L.SUPPRESS_PER_USER_PERMANENT
    assert entry.until == at + L.PER_USER_PERMANENT_WAIT
    assert suppression_for_error("4915100000001", 131026, at) is None
