"""The webhook receiver's defences, checked from outside: constant-time comparisons, the signature
before anything else, and the body cap enforced on a real socket."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.webhooks import WebhookSettings, create_app, sign
from airflow_provider_wamm.webhooks import app as app_module
from airflow_provider_wamm.webhooks import signature as signature_module
from tests.reliability.harness import serve_app
from tests.webhooks.conftest import ASGIClient, body, encode, status

SECRET = "crypto-app-secret-0f9e"
VERIFY = "crypto-verify-token-77"


@pytest.fixture
def ledger(tmp_path: pathlib.Path) -> Iterator[Ledger]:
    led = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield led
    led.dispose()


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every ``hmac.compare_digest`` call (the real comparison still decides)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    return calls


def test_signatures_are_compared_in_constant_time(
    ledger: Ledger, comparisons: list[tuple[bytes, bytes]]
) -> None:
    client = ASGIClient(create_app(WebhookSettings(app_secret=SECRET, verify_token=VERIFY, ledger=ledger)))
    raw = encode(body([status("wamid.c1", "sent")]))
    good = client.post("/", content=raw, headers={"X-Hub-Signature-256": sign(raw, SECRET)})
    assert good.status_code == 200
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest().encode()
    assert (expected, expected) in comparisons
    comparisons.clear()
    forged = "sha256=" + "0" * 64
    bad = client.post("/", content=raw, headers={"X-Hub-Signature-256": forged})
    assert bad.status_code == 403
    assert comparisons == [(expected, b"0" * 64)]
    assert ledger.status_of("wamid.c1") is not None  # stored once, by the good request only


def test_verify_token_is_compared_in_constant_time(
    ledger: Ledger, comparisons: list[tuple[bytes, bytes]]
) -> None:
    client = ASGIClient(create_app(WebhookSettings(app_secret=SECRET, verify_token=VERIFY, ledger=ledger)))
    for token, code in ((VERIFY, 200), ("crypto-verify-token-78", 403)):
        comparisons.clear()
        answer = client.get(
            "/", params={"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "x"}
        )
        assert answer.status_code == code
        assert comparisons == [(token.encode(), VERIFY.encode())]


def test_no_plain_equality_on_secrets_in_the_receiver() -> None:
    """Belt and braces: the code paths comparing secrets use compare_digest, not ``==``."""
    # The whole receiver module: the handshake is answered by a function beside the route handlers.
    for function in (signature_module.verify_signature, app_module):
        source = inspect.getsource(function)
        assert "compare_digest" in source
        for name in ("expected", "token", "app_secret", "verify_token"):
            assert f"{name} ==" not in source and f"== {name}" not in source, (function.__name__, name)


def test_signature_is_checked_before_the_body_is_parsed(ledger: Ledger) -> None:
    client = ASGIClient(create_app(WebhookSettings(app_secret=SECRET, verify_token=VERIFY, ledger=ledger)))
    junk = b"{not json"
    assert client.post("/", content=junk).status_code == 403
    assert (
        client.post("/", content=junk, headers={"X-Hub-Signature-256": sign(junk, "other")}).status_code
        == 403
    )
    assert (
        client.post("/", content=junk, headers={"X-Hub-Signature-256": sign(junk, SECRET)}).status_code == 400
    )


def test_body_cap_on_a_real_socket(ledger: Ledger) -> None:
    """413 for a declared or a streamed (chunked) body over the cap; nothing is stored."""
    limit = 64 * 1024
    app = create_app(
        WebhookSettings(app_secret=SECRET, verify_token=VERIFY, ledger=ledger, max_body_bytes=limit)
    )
    big = encode(body([status(f"wamid.big{i}", "sent") for i in range(600)]))
    assert len(big) > limit

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    with serve_app(app) as url:
        headers = {"X-Hub-Signature-256": sign(big, SECRET), "Content-Type": "application/json"}
        declared = requests.post(url, data=big, headers=headers, timeout=10)
        streamed = requests.post(url, data=chunks(), headers=headers, timeout=10)
        small = encode(body([status("wamid.small", "sent")]))
        fine = requests.post(
            url, data=small, headers={"X-Hub-Signature-256": sign(small, SECRET)}, timeout=10
        )
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert fine.status_code == 200
    assert ledger.status_of("wamid.big0") is None and ledger.status_of("wamid.small") is not None
