"""Admin endpoints under /_sandbox/ that another process uses to inspect and configure the sandbox."""

from __future__ import annotations

import requests

from airflow_provider_wamm.sandbox import Sandbox
from tests.sandbox.conftest import Graph, number


def test_messages_and_counts(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(pair_burst=1, pair_interval_s=60)
    for i in range(3):
        graph.send(to=number(i))
    graph.send(to=number(0))  # pair limit
    graph.send(token="bad")

    listing = requests.get(f"{sandbox.url}/_sandbox/messages", params={"limit": 2}, timeout=5).json()
    assert listing["total"] == 3 and len(listing["data"]) == 2
    assert listing["data"][0]["to"] == number(0)
    assert listing["data"][0]["payload"]["template"]["name"] == "spring_sale"
    one = requests.get(f"{sandbox.url}/_sandbox/messages", params={"to": "+" + number(1)}, timeout=5).json()
    assert [m["to"] for m in one["data"]] == [number(1)]

    counts = requests.get(f"{sandbox.url}/_sandbox/counts", params={"per_recipient": 1}, timeout=5).json()
    assert counts["accepted"] == 3
    assert counts["recipients"] == 3
    assert counts["requests"] == 5
    assert counts["errors"] == {"190": 1, "131056": 1}
    assert counts["duplicates"] == {}
    assert counts["per_recipient"] == {number(i): 1 for i in range(3)}
    assert counts["max_window_count"] == 3
    assert sum(counts["by_outcome"].values()) == 3


def test_config_endpoint_changes_the_running_sandbox(sandbox: Sandbox, graph: Graph) -> None:
    shown = requests.get(f"{sandbox.url}/_sandbox/config", timeout=5).json()
    assert shown["access_token"] == "***" and shown["app_secret"] == "***"
    assert shown["mps_cap"] == 80.0
    assert {t["name"] for t in shown["templates"]} >= {"spring_sale", "paced_promo"}

    response = requests.post(
        f"{sandbox.url}/_sandbox/config", json={"token_expired": True, "mps_cap": 5}, timeout=5
    )
    assert response.status_code == 200
    assert response.json()["mps_cap"] == 5
    assert graph.send().json()["error"]["code"] == 190

    bad = requests.post(f"{sandbox.url}/_sandbox/config", json={"fault_5xx_rate": 2}, timeout=5)
    assert bad.status_code == 400 and "fault_5xx_rate" in bad.json()["error"]
    unknown = requests.post(f"{sandbox.url}/_sandbox/config", json={"colour": "red"}, timeout=5)
    assert unknown.status_code == 400


def test_config_endpoint_takes_templates_in_metas_format(sandbox: Sandbox, graph: Graph) -> None:
    template = {
        "name": "flash_deal",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Hi {{1}}, {{2}} {{3}}"}],
    }
    response = requests.post(f"{sandbox.url}/_sandbox/config", json={"templates": [template]}, timeout=5)
    assert response.status_code == 200
    body = [{"type": "body", "parameters": [{"type": "text", "text": v} for v in "abc"]}]
    assert graph.send(template="flash_deal", components=body).status_code == 200
    assert graph.send(template="spring_sale").json()["error"]["code"] == 132001


def test_reset_endpoint(sandbox: Sandbox, graph: Graph) -> None:
    sandbox.configure(mps_cap=7)
    graph.send()
    response = requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    assert response.status_code == 200
    assert sandbox.messages == []
    assert sandbox.config.mps_cap == 7  # a plain reset keeps the configuration

    requests.post(
        f"{sandbox.url}/_sandbox/reset", json={"defaults": True, "config": {"latency_s": 0.01}}, timeout=5
    )
    assert (sandbox.config.mps_cap, sandbox.config.latency_s) == (80.0, 0.01)


def test_expected_outcome_and_health(sandbox: Sandbox) -> None:
    sandbox.configure(forced_outcomes={number(1): "failed:131049"})
    body = requests.get(
        f"{sandbox.url}/_sandbox/expected_outcome", params={"to": number(1)}, timeout=5
    ).json()
    assert body["outcome"] == "failed:131049"
    assert requests.get(f"{sandbox.url}/_sandbox/health", timeout=5).json()["ok"] is True
