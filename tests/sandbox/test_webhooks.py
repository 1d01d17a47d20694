"""Status webhooks: Meta's format, valid signatures, batching, duplicates, reordering, clicks, retries."""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
from typing import Any

import pytest

from airflow_provider_wamm.sandbox import (
    Sandbox,
    SandboxConfig,
    build_payload,
    sign_payload,
    verify_signature,
)
from tests.plugins.sandbox_fixtures import FAST_WEBHOOKS, WebhookReceiver
from tests.sandbox.conftest import Graph, number

STAGES = {"sent": ["sent"], "delivered": ["sent", "delivered"], "read": ["sent", "delivered", "read"]}


def _expected_statuses(outcome: str) -> list[str]:
    return ["failed"] if outcome.startswith("failed:") else STAGES[outcome]


def _send_all(sandbox: Sandbox, graph: Graph, count: int) -> list[str]:
    wamids = []
    for i in range(count):
        response = graph.send(to=number(i))
        assert response.status_code == 200
        wamids.append(response.json()["messages"][0]["id"])
    assert sandbox.wait_webhooks_idle(10)
    return wamids


def test_webhooks_are_signed_and_in_metas_format(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver, spec_validator: Any
) -> None:
    sandbox.configure(webhook_url=webhook_receiver.url, app_secret="s3cret", click_rate=0.0, **FAST_WEBHOOKS)
    _send_all(sandbox, graph, 20)

    assert webhook_receiver.received
    for hook in webhook_receiver.received:
        assert hook.path == "/webhooks/whatsapp"
        signature = hook.headers["X-Hub-Signature-256"]
        expected = "sha256=" + hmac.new(b"s3cret", hook.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        assert hook.headers["Content-Type"] == "application/json"
        payload = hook.json()
        assert spec_validator(payload, "WebhookPayload") == []
        assert payload["object"] == "whatsapp_business_account"
        for entry in payload["entry"]:
            assert entry["id"] == "200000000000001"
            for change in entry["changes"]:
                assert change["field"] == "messages"
                value = change["value"]
                assert value["messaging_product"] == "whatsapp"
                assert value["metadata"] == {
                    "display_phone_number": "15550100001",
                    "phone_number_id": "100000000000001",
                }


def test_statuses_follow_each_recipients_outcome(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.configure(webhook_url=webhook_receiver.url, **FAST_WEBHOOKS)
    _send_all(sandbox, graph, 40)

    by_wamid: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for status in webhook_receiver.statuses():
        by_wamid[status["id"]].append(status)
    messages = sandbox.messages
    assert set(by_wamid) == {m.wamid for m in messages}
    outcomes = collections.Counter(m.outcome for m in messages)
    assert len(outcomes) >= 3  # the default ratios give a mix
    for msg in messages:
        statuses = by_wamid[msg.wamid]
        assert msg.outcome == sandbox.expected_outcome(msg.to)
        assert [s["status"] for s in statuses] == _expected_statuses(msg.outcome)
        for status in statuses:
            assert status["recipient_id"] == msg.to
            assert status["timestamp"].isdigit() and abs(int(status["timestamp"]) - msg.timestamp) < 5
            if status["status"] in ("sent", "delivered"):
                assert status["pricing"] == {
                    "billable": True,
                    "pricing_model": "PMP",
                    "type": "regular",
                    "category": "marketing_lite",
                }
            if status["status"] == "failed":
                [error] = status["errors"]
                assert error["code"] == int(msg.outcome.split(":")[1])
                assert error["title"] == error["message"]
                assert error["error_data"]["details"]
                assert error["href"].startswith("https://")


def test_outcome_ratios_are_honoured_and_deterministic() -> None:
    config = SandboxConfig(
        outcomes={"read": 0.5, "delivered": 0.3, "failed:131026": 0.1, "failed:131049": 0.1}
    )
    sandbox = Sandbox(config)
    outcomes = collections.Counter(sandbox.expected_outcome(number(i)) for i in range(4000))
    assert abs(outcomes["read"] / 4000 - 0.5) < 0.04
    assert abs(outcomes["delivered"] / 4000 - 0.3) < 0.04
    assert abs(outcomes["failed:131026"] / 4000 - 0.1) < 0.03
    assert abs(outcomes["failed:131049"] / 4000 - 0.1) < 0.03
    assert sandbox.expected_outcome(number(5)) == Sandbox(config).expected_outcome("+" + number(5))
    other_seed = Sandbox(SandboxConfig(seed=99))
    assert [other_seed.expected_outcome(number(i)) for i in range(50)] != [
        sandbox.expected_outcome(number(i)) for i in range(50)
    ]


def test_forced_outcome(sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver) -> None:
    sandbox.configure(
        webhook_url=webhook_receiver.url, forced_outcomes={number(0): "failed:131050"}, **FAST_WEBHOOKS
    )
    _send_all(sandbox, graph, 1)

    [status] = webhook_receiver.statuses()
    assert status["status"] == "failed"
    assert status["errors"][0]["code"] == 131050
    assert sandbox.expected_outcome(number(0)) == "failed:131050"


def test_batches_respect_the_batch_size(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.configure(
        webhook_url=webhook_receiver.url,
        webhook_batch_size=7,
        webhook_statuses_per_change=3,
        webhook_delay_s=0.3,
        webhook_step_s=0.0,
        webhook_flush_s=0.2,
        mps_cap=None,
    )
    _send_all(sandbox, graph, 30)

    sizes = [
        sum(
            len(ch["value"].get("statuses", [])) + len(ch["value"].get("user_actions", []))
            for e in h.json()["entry"]
            for ch in e["changes"]
        )
        for h in webhook_receiver.received
    ]
    assert max(sizes) == 7  # statuses that fell due together were batched, up to the limit
    per_change = [
        len(ch["value"]["statuses"])
        for h in webhook_receiver.received
        for e in h.json()["entry"]
        for ch in e["changes"]
        if "statuses" in ch["value"]
    ]
    assert max(per_change) == 3
    assert sum(sizes) == sandbox.webhook_stats()["statuses"] + sandbox.webhook_stats()["user_actions"]


def test_duplicates(sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver) -> None:
    sandbox.configure(webhook_url=webhook_receiver.url, webhook_duplicate_rate=1.0, **FAST_WEBHOOKS)
    _send_all(sandbox, graph, 10)

    counts = collections.Counter((s["id"], s["status"]) for s in webhook_receiver.statuses())
    assert counts and set(counts.values()) == {2}


def test_some_duplicates(sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver) -> None:
    sandbox.configure(
        webhook_url=webhook_receiver.url, webhook_duplicate_rate=0.3, mps_cap=None, **FAST_WEBHOOKS
    )
    _send_all(sandbox, graph, 60)

    counts = collections.Counter((s["id"], s["status"]) for s in webhook_receiver.statuses())
    assert set(counts.values()) == {1, 2}


def test_reordering_delivers_read_before_delivered(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.configure(
        webhook_url=webhook_receiver.url,
        webhook_reorder_rate=1.0,
        forced_outcomes={number(i): "read" for i in range(5)},
        **FAST_WEBHOOKS,
    )
    _send_all(sandbox, graph, 5)

    order: dict[str, list[str]] = collections.defaultdict(list)
    stamps: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for status in webhook_receiver.statuses():
        order[status["id"]].append(status["status"])
        stamps[status["id"]][status["status"]] = int(status["timestamp"])
    assert len(order) == 5
    for wamid, statuses in order.items():
        assert statuses == ["sent", "read", "delivered"]
        assert stamps[wamid]["read"] >= stamps[wamid]["delivered"]  # event times stay in order


def test_click_events_for_read_messages(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.configure(webhook_url=webhook_receiver.url, click_rate=1.0, **FAST_WEBHOOKS)
    _send_all(sandbox, graph, 20)

    actions = webhook_receiver.user_actions()
    read = [m for m in sandbox.messages if m.outcome == "read"]
    assert read and all(m.clicked for m in read)
    assert not any(m.clicked for m in sandbox.messages if m.outcome != "read")
    assert len(actions) == len(read)
    assert {a["marketing_messages_link_click_data"]["tracking_token"] for a in actions} == {
        m.tracking_token for m in read
    }
    for action in actions:
        assert action["action_type"] == "marketing_messages_link_click"
        assert action["timestamp"].isdigit()
        assert action["marketing_messages_link_click_data"]["click_component"] in ("cta", "body")
        assert action["marketing_messages_link_click_data"]["click_id"]


def test_cloud_api_fallback_category(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.configure(
        webhook_url=webhook_receiver.url,
        cloud_api_fallback_rate=1.0,
        forced_outcomes={number(0): "delivered"},
        **FAST_WEBHOOKS,
    )
    _send_all(sandbox, graph, 1)

    categories = {s["pricing"]["category"] for s in webhook_receiver.statuses()}
    assert categories == {"marketing"}


def test_failed_deliveries_are_retried(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.fail_first = 2
    sandbox.configure(
        webhook_url=webhook_receiver.url,
        webhook_retry_s=0.02,
        webhook_batch_size=1000,
        webhook_delay_s=0.2,
        webhook_step_s=0.0,
        forced_outcomes={number(0): "sent"},
    )
    _send_all(sandbox, graph, 1)

    assert [s["status"] for s in webhook_receiver.statuses()] == ["sent"]
    assert sandbox.webhook_stats()["failures"] == 2
    assert sandbox.webhook_stats()["dropped"] == 0


def test_unreachable_receiver_drops_after_retries(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(
        webhook_url="http://127.0.0.1:9/hooks",
        webhook_retry_s=0.01,
        webhook_max_attempts=2,
        forced_outcomes={number(0): "sent"},
        **FAST_WEBHOOKS,
    )
    _send_all(sandbox, graph, 1)

    stats = sandbox.webhook_stats()
    assert stats["failures"] == 2
    assert stats["dropped"] == 1


def test_no_webhooks_without_a_url(sandbox: Sandbox, graph: Graph) -> None:
    graph.send()
    assert sandbox.wait_webhooks_idle(0.1)
    assert sandbox.webhook_stats()["pending"] == 0


def test_wait_webhooks_idle_times_out_while_statuses_are_pending(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.configure(webhook_url=webhook_receiver.url, webhook_delay_s=1.0)
    graph.send()
    assert sandbox.wait_webhooks_idle(0.1) is False
    assert sandbox.wait_webhooks_idle(5) is True


def test_sign_and_verify_helpers() -> None:
    body = json.dumps({"object": "whatsapp_business_account"}).encode()
    signature = sign_payload(body, "secret")
    assert signature == "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert verify_signature(body, signature, "secret")
    assert not verify_signature(body, signature, "other")
    assert not verify_signature(body + b" ", signature, "secret")
    assert not verify_signature(body, None, "secret")


@pytest.mark.parametrize("per_change", [1, 4])
def test_build_payload_groups_statuses(per_change: int) -> None:
    events = [
        (0.0, i, "status", (f"wamid.{i}", "sent", 1.7e9, "491", "marketing_lite", None)) for i in range(8)
    ]
    payload = build_payload(
        events,
        waba_id="W",
        phone_number_id="P",
        display_phone_number="+1 555",
        statuses_per_change=per_change,
    )
    assert len(payload["entry"]) == 8 // per_change
    assert [s["id"] for e in payload["entry"] for s in e["changes"][0]["value"]["statuses"]] == [
        f"wamid.{i}" for i in range(8)
    ]


def test_statuses_name_the_user_id_and_the_cost_of_a_max_price_send(
    sandbox: Sandbox, graph: Graph, webhook_receiver: WebhookReceiver
) -> None:
    """``recipient_user_id`` on every status; ``recipient_id`` only for a number (a send by BSUID does not
    share one); ``pricing.cost`` on ``delivered``/``read`` of a send with a max price (``bid_spec``)."""
    sandbox.configure(
        webhook_url=webhook_receiver.url,
        price_per_message=0.04,
        forced_outcomes={"4915123456789": "read", "US.13491208655302741918": "read"},
        **FAST_WEBHOOKS,
    )
    bid = {"bid_spec": {"per_message_bid_multiplier": 1.2}}
    assert graph.send(to="+4915123456789", **bid).status_code == 200
    assert graph.send(to=None, recipient="US.13491208655302741918").status_code == 200
    assert sandbox.wait_webhooks_idle(10)
    by_status = collections.defaultdict(list)
    for status in webhook_receiver.statuses():
        by_status[status.get("recipient_id"), status["status"]].append(status)
    phone = by_status["4915123456789", "read"][0]
    assert phone["recipient_user_id"].startswith("ZZ.") and len(phone["recipient_user_id"]) == 23
    assert phone["pricing"]["cost"] == {"amount": 0.04, "currency": "USD"}
    assert "cost" not in by_status["4915123456789", "sent"][0]["pricing"]
    bsuid = by_status[None, "read"][0]
    assert bsuid["recipient_user_id"] == "US.13491208655302741918" and "pricing" not in bsuid
