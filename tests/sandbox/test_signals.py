"""Meta's signals in the sandbox: on command and scripted, signed like Meta's, and the sandbox acting on
them (a paused template answers 132015, a stopped recipient's sends fail with 131050)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import requests

from airflow_provider_wamm.sandbox import Sandbox, SandboxConfig
from airflow_provider_wamm.sandbox.cli import build_parser, config_from_args
from airflow_provider_wamm.sandbox.config import SignalStep
from tests.plugins.sandbox_fixtures import FAST_WEBHOOKS, WebhookReceiver
from tests.sandbox.conftest import Graph, number


def post_signal(sandbox: Sandbox, step: Any) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/signals", json=step, timeout=5)


def changes(
    receiver: WebhookReceiver, field: str | None = None
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every (field, value, entry) received, in order; only ``field`` when given."""
    out = []
    for hook in list(receiver.received):
        for entry in hook.json()["entry"]:
            for change in entry["changes"]:
                if field is None or change["field"] == field:
                    out.append((change["field"], change["value"], entry))
    return out


@pytest.fixture
def wired(sandbox: Sandbox, webhook_receiver: WebhookReceiver) -> WebhookReceiver:
    sandbox.configure(webhook_url=webhook_receiver.url, app_secret="s3cret", click_rate=0.0, **FAST_WEBHOOKS)
    return webhook_receiver


def test_pause_answers_132015_until_approved_and_sends_signed_status_updates(
    sandbox: Sandbox, graph: Graph, wired: WebhookReceiver
) -> None:
    response = post_signal(sandbox, {"action": "pause_template", "target": "spring_sale"})
    assert response.status_code == 200
    assert response.json()["webhooks"] == ["message_template_status_update"]
    refused = graph.send(to=number(1))
    assert refused.status_code == 400 and graph.error(refused)["code"] == 132015
    template = requests.get(
        f"{graph.base}/{sandbox.config.waba_id}/message_templates",
        headers=graph.headers("sandbox-token"),
        timeout=5,
    )
    assert {t["name"]: t["status"] for t in template.json()["data"]}["spring_sale"] == "PAUSED"
    assert post_signal(sandbox, "approve_template:spring_sale/en_US").status_code == 200
    assert graph.send(to=number(1)).status_code == 200
    assert sandbox.wait_webhooks_idle(10)
    updates = changes(wired, "message_template_status_update")
    assert [value["event"] for _, value, _ in updates] == ["PAUSED", "APPROVED"]
    paused, approved = updates[0][1], updates[1][1]
    assert paused["other_info"]["title"] == "FIRST_PAUSE" and approved["other_info"]["title"] == "UNPAUSE"
    assert paused["message_template_name"] == "spring_sale" and paused["message_template_language"] == "en_US"
    assert (
        isinstance(paused["message_template_id"], int) and paused["message_template_category"] == "MARKETING"
    )
    for hook in wired.received:
        expected = "sha256=" + hmac.new(b"s3cret", hook.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(hook.headers["X-Hub-Signature-256"], expected)
    _, _, entry = updates[0]
    assert entry["id"] == sandbox.config.waba_id and abs(entry["time"] - time.time()) < 60


def test_disable_answers_132016(sandbox: Sandbox, graph: Graph, wired: WebhookReceiver) -> None:
    assert post_signal(sandbox, {"action": "disable_template", "target": "spring_sale"}).status_code == 200
    assert graph.error(graph.send(to=number(1)))["code"] == 132016
    assert sandbox.wait_webhooks_idle(10)
    value = changes(wired, "message_template_status_update")[0][1]
    assert value["event"] == "DISABLED" and "disable_date" in value["disable_info"]


def test_stop_then_resume(sandbox: Sandbox, graph: Graph, wired: WebhookReceiver) -> None:
    user = number(7)
    assert post_signal(sandbox, {"action": "stop", "target": "+" + user}).status_code == 200
    assert sandbox.expected_outcome(user) == "failed:131050"
    assert graph.send(to=user).status_code == 200  # accepted, then failed by webhook like Meta
    assert post_signal(sandbox, {"action": "resume", "target": user}).status_code == 200
    assert sandbox.config.stopped_users == ()
    assert sandbox.wait_webhooks_idle(10)
    preferences = [value["user_preferences"][0] for _, value, _ in changes(wired, "user_preferences")]
    assert [(p["wa_id"], p["value"], p["category"]) for p in preferences] == [
        (user, "stop", "marketing_messages"),
        (user, "resume", "marketing_messages"),
    ]
    assert isinstance(preferences[0]["timestamp"], int)
    failed = [s for s in wired.statuses() if s["status"] == "failed"]
    assert [s["errors"][0]["code"] for s in failed] == [131050]
    by_user_id = post_signal(sandbox, {"action": "stop", "target": "US.13491208655302741918"})
    assert by_user_id.status_code == 200
    assert sandbox.wait_webhooks_idle(10)
    last = changes(wired, "user_preferences")[-1][1]["user_preferences"][0]
    assert "wa_id" not in last and last["user_id"] == "US.13491208655302741918"


def test_limit_and_quality_changes(sandbox: Sandbox, graph: Graph, wired: WebhookReceiver) -> None:
    assert post_signal(sandbox, {"action": "messaging_limit", "target": "tier_250"}).json()["webhooks"] == [
        "business_capability_update",
        "phone_number_quality_update",
    ]
    node = graph.get(sandbox.config.phone_number_id, {"fields": "whatsapp_business_manager_messaging_limit"})
    assert node.json()["whatsapp_business_manager_messaging_limit"] == "TIER_250"
    assert post_signal(sandbox, {"action": "quality", "target": "YELLOW"}).json()["webhooks"] == []
    assert post_signal(sandbox, {"action": "quality", "target": "RED"}).json()["webhooks"] == [
        "phone_number_quality_update"
    ]
    assert post_signal(sandbox, {"action": "quality", "target": "GREEN"}).status_code == 200
    assert post_signal(sandbox, "template_quality:spring_sale=RED").status_code == 200
    assert sandbox.wait_webhooks_idle(10)
    received = changes(wired)
    assert [f for f, _, _ in received] == [
        "business_capability_update",
        "phone_number_quality_update",
        "phone_number_quality_update",
        "phone_number_quality_update",
        "message_template_quality_update",
    ]
    assert received[0][1] == {"max_daily_conversations_per_business": 250, "max_phone_numbers_per_waba": 25}
    downgrade = received[1][1]
    assert (
        downgrade["event"],
        downgrade["max_daily_conversations_per_business"],
        downgrade["old_limit"],
    ) == (
        "DOWNGRADE",
        "TIER_250",
        "TIER_UNLIMITED",
    )
    assert [v["event"] for _, v, _ in received[2:4]] == ["FLAGGED", "UNFLAGGED"]
    assert received[2][1]["display_phone_number"] == "15550100001"
    assert (received[4][1]["previous_quality_score"], received[4][1]["new_quality_score"]) == ("GREEN", "RED")
    assert sandbox.webhook_stats()["signals"] == 5


def test_scripted_steps_after_sends_and_at_times(
    sandbox: Sandbox, graph: Graph, wired: WebhookReceiver
) -> None:
    sandbox.reset(
        sandbox.config.replace(
            signal_steps=(
                "pause_template:spring_sale@sends=3",
                {"action": "stop", "target": number(50), "at_s": 0.2},
                SignalStep("resume", number(50), at_s=0.6),
            )
        )
    )
    codes = [graph.send(to=number(i)).status_code for i in range(4)]
    assert codes == [200, 200, 200, 400]
    deadline = time.monotonic() + 5
    while len(changes(wired, "user_preferences")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    values = [v["user_preferences"][0]["value"] for _, v, _ in changes(wired, "user_preferences")]
    assert values == ["stop", "resume"]
    listed = requests.get(f"{sandbox.url}/_sandbox/signals", timeout=5).json()
    assert [s["action"] for s in listed["signals"]] == ["pause_template", "stop", "resume"]
    assert all(step["done"] for step in listed["scripted"])
    # A reset runs the script again from the start.
    sandbox.reset()
    assert requests.get(f"{sandbox.url}/_sandbox/signals", timeout=5).json()["signals"] == []


def test_a_step_posted_with_timing_is_scheduled(sandbox: Sandbox, graph: Graph) -> None:
    response = post_signal(sandbox, {"action": "pause_template", "target": "spring_sale", "after_sends": 1})
    assert response.json() == {
        "scheduled": {"action": "pause_template", "target": "spring_sale", "after_sends": 1}
    }
    assert graph.send(to=number(1)).status_code == 200
    assert graph.error(graph.send(to=number(2)))["code"] == 132015


@pytest.mark.parametrize(
    "body",
    [
        {"action": "explode", "target": "x"},
        {"action": "stop"},
        {"action": "pause_template", "target": "no_such_template"},
        {"action": "messaging_limit", "target": "TIER_7"},
        {"action": "template_quality", "target": "spring_sale"},
        {"action": "stop", "target": "1", "after_sends": 1, "at_s": 1},
        {"action": "stop", "target": "1", "language": "en"},
        "stop",
        "stop:1@soon",
        ["stop"],
        7,
    ],
)
def test_bad_signals_are_400(sandbox: Sandbox, body: Any) -> None:
    response = post_signal(sandbox, body)
    assert response.status_code == 400 and response.json()["error"]


def test_signal_steps_round_trip_through_the_config_and_the_cli() -> None:
    config = SandboxConfig(
        stopped_users=["+4915100000001"],
        signal_steps=[
            "template_quality:spring_sale/en_US=red@t=1.5",
            {"action": "stop", "target": "1", "after_sends": 2},
        ],
    )
    assert config.stopped_users == ("4915100000001",)
    assert config.signal_steps[0] == SignalStep("template_quality", "spring_sale", "en_US", "RED", at_s=1.5)
    shown = json.loads(json.dumps(config.to_dict()))
    assert SandboxConfig.from_dict(shown, base=config) == config
    args = build_parser().parse_args(
        [
            "--stopped",
            "+4915100000002",
            "--signal",
            "pause_template:spring_sale@sends=10",
            "--signal",
            "quality:red@t=3",
        ]
    )
    from_cli = config_from_args(args, environ={})
    assert from_cli.stopped_users == ("4915100000002",)
    assert from_cli.signal_steps == (
        SignalStep("pause_template", "spring_sale", after_sends=10),
        SignalStep("quality", "RED", at_s=3.0),
    )


def test_without_a_webhook_url_signals_still_act(sandbox: Sandbox, graph: Graph) -> None:
    response = post_signal(sandbox, {"action": "pause_template", "target": "spring_sale"})
    assert response.json()["webhooks"] == []  # nothing to send it to
    assert graph.error(graph.send(to=number(1)))["code"] == 132015
    assert sandbox.webhook_stats()["pending"] == 0


def test_a_scripted_step_that_cannot_act_is_logged_and_sends_go_on(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.reset(sandbox.config.replace(signal_steps=("pause_template:no_such_template@sends=1",)))
    assert [graph.send(to=number(i)).status_code for i in range(2)] == [200, 200]
    logged = requests.get(f"{sandbox.url}/_sandbox/signals", timeout=5).json()["signals"]
    assert logged[0]["error"] == "the sandbox has no template no_such_template"


def test_category_change_and_account_update(sandbox: Sandbox, graph: Graph, wired: WebhookReceiver) -> None:
    sandbox.configure(onboarding_status="ELIGIBLE")
    assert post_signal(sandbox, "template_category:spring_sale=utility").status_code == 200
    assert graph.error(graph.send(to=number(1)))["code"] == 134100  # no longer a marketing template
    assert (
        post_signal(sandbox, {"action": "account_update", "target": "mm_lite_terms_signed"}).status_code
        == 200
    )
    assert sandbox.config.onboarding_status == "ONBOARDED"
    assert post_signal(sandbox, "account_update:ACCOUNT_RESTRICTION").status_code == 200
    assert sandbox.wait_webhooks_idle(10)
    category = changes(wired, "template_category_update")[0][1]
    assert (category["previous_category"], category["new_category"]) == ("MARKETING", "UTILITY")
    updates = [value for _, value, _ in changes(wired, "account_update")]
    assert [u["event"] for u in updates] == ["MM_LITE_TERMS_SIGNED", "ACCOUNT_RESTRICTION"]
    assert updates[0]["waba_info"]["waba_id"] == sandbox.config.waba_id
    assert updates[1]["restriction_info"][0]["restriction_type"] == "RESTRICTED_BIZ_INITIATED_MESSAGING"
