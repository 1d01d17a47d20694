"""The webhook receiver through a real ASGI client over a real SQLite ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import ACCEPTED, Ledger, SendOutcome
from airflow_provider_wamm.campaign.report import delivery_counts, error_counts
from airflow_provider_wamm.webhooks import WebhookSettings, create_app, sign
from tests.webhooks.conftest import APP_SECRET, VERIFY_TOKEN, ASGIClient, body, click, encode, signed, status


def seed_sends(ledger: Ledger, campaign_id: str, wamids: list[str]) -> None:
    """Claim one recipient per wamid and record it accepted with that wamid."""
    recipients = [f"49151{i:08d}" for i in range(len(wamids))]
    ledger.claim(campaign_id, recipients, attempt_id="a1")
    ledger.record_results(
        campaign_id,
        [
            SendOutcome(r, ACCEPTED, wamid=w, message_status="accepted")
            for r, w in zip(recipients, wamids, strict=True)
        ],
        attempt_id="a1",
    )


def count_rows(ledger: Ledger, table: sa.Table) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- handshake -------------------------------------------------------------------------------------


def test_handshake_echoes_the_challenge(client: ASGIClient) -> None:
    response = client.get(
        "/", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    )
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN + "x", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
    ],
)
def test_handshake_refused(client: ASGIClient, params: dict[str, str]) -> None:
    response = client.get("/", params=params)
    assert response.status_code == 403
    assert response.text != "1"


def test_handshake_refused_without_configured_token(ledger: Ledger) -> None:
    app = create_app(WebhookSettings(app_secret=APP_SECRET, verify_token=None, ledger=ledger))
    c = ASGIClient(app)
    response = c.get("/", params={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"})
    assert response.status_code == 403


# --- signatures --------------------------------------------------------------------------------------


def test_signed_statuses_are_stored(client: ASGIClient, ledger: Ledger) -> None:
    seed_sends(ledger, "c1", ["wamid.A"])
    raw = encode(
        body([status("wamid.A", "sent", 1_760_000_000), status("wamid.A", "delivered", 1_760_000_005)])
    )
    response = client.post("/", content=raw, headers=signed(raw))
    assert response.status_code == 200
    assert response.json() == {"statuses": 2, "clicks": 0, "skipped": 0, "ignored": 0}
    row = ledger.status_of("wamid.A")
    assert row is not None
    assert row["status"] == "delivered"
    assert row["pricing_category"] == "marketing_lite"
    assert row["delivered_at"] == datetime.fromtimestamp(1_760_000_005, tz=UTC)
    assert delivery_counts(ledger, "c1") == {"delivered": 1}


def test_signature_is_checked_over_the_raw_bytes(client: ASGIClient, ledger: Ledger) -> None:
    # Spaces, key order and \u escapes that json.dumps would not reproduce.
    raw = (
        b'{ "entry" : [ {"changes": [ {"field":"messages", "value": {"statuses": [ '
        b'{"status":"read", "id":"wamid.\\u0042", "timestamp":"1760000000", '
        b'"recipient_id":"\\u0034\\u00391234", "note":"caf\\u00e9 \xe2\x82\xac"} ]}} ]} ],  '
        b'"object": "whatsapp_business_account" }\n'
    )
    assert json.dumps(json.loads(raw)).encode() != raw
    response = client.post("/", content=raw, headers=signed(raw))
    assert response.status_code == 200, response.text
    row = ledger.status_of("wamid.B")
    assert row is not None and row["status"] == "read" and row["recipient_id"] == "491234"


@pytest.mark.parametrize(
    "make_header",
    [
        lambda raw: {},
        lambda raw: {"X-Hub-Signature-256": ""},
        lambda raw: {"X-Hub-Signature-256": sign(raw, "another-secret")},
        lambda raw: {"X-Hub-Signature-256": sign(raw + b" ", APP_SECRET)},
        lambda raw: {"X-Hub-Signature-256": sign(raw, APP_SECRET).replace("sha256=", "sha1=")},
        lambda raw: {"X-Hub-Signature-256": sign(raw, APP_SECRET)[:-2]},
        lambda raw: {"X-Hub-Signature": sign(raw, APP_SECRET)},
    ],
)
def test_bad_or_missing_signature_is_refused_and_nothing_stored(
    client: ASGIClient, ledger: Ledger, make_header: Any
) -> None:
    raw = encode(body([status("wamid.X", "delivered")], [click("k1")]))
    response = client.post("/", content=raw, headers=make_header(raw))
    assert response.status_code == 403
    assert ledger.status_of("wamid.X") is None
    assert count_rows(ledger, ledger.statuses) == 0
    assert count_rows(ledger, ledger.clicks) == 0


def test_signature_of_reserialised_json_does_not_verify(client: ASGIClient, ledger: Ledger) -> None:
    payload = body([status("wamid.Y", "read")])
    raw = json.dumps(payload, indent=2).encode()
    response = client.post("/", content=raw, headers=signed(json.dumps(payload).encode()))
    assert response.status_code == 403
    assert ledger.status_of("wamid.Y") is None


def test_uppercase_hex_signature_verifies(client: ASGIClient, ledger: Ledger) -> None:
    raw = encode(body([status("wamid.U", "sent")]))
    header = "sha256=" + sign(raw, APP_SECRET)[7:].upper()
    assert client.post("/", content=raw, headers={"X-Hub-Signature-256": header}).status_code == 200


# --- malformed bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe\x00", b'{"entry": [', b"[" * 100_000])
def test_malformed_json_is_400(client: ASGIClient, raw: bytes) -> None:
    assert client.post("/", content=raw, headers=signed(raw)).status_code == 400


@pytest.mark.parametrize("payload", [[], [1, 2], "text", 42, None, {}, {"entry": {}}, {"object": "page"}])
def test_body_not_in_metas_shape_is_400(client: ASGIClient, payload: Any) -> None:
    raw = encode(payload)
    assert client.post("/", content=raw, headers=signed(raw)).status_code == 400


def test_bad_items_are_skipped_and_counted(client: ASGIClient, ledger: Ledger) -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            "not an entry",
            {"changes": "not a list"},
            {
                "changes": [
                    7,
                    {"field": "messages", "value": "not an object"},
                    {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
                    {"field": "messages", "value": {"messages": [{"from": "491", "type": "text"}]}},
                    {
                        "field": "messages",
                        "value": {
                            "statuses": [
                                status("wamid.ok", "read"),
                                {"id": ["wamid.list"], "status": "read", "timestamp": "1"},
                                {"id": "wamid.nots", "status": 3, "timestamp": "1"},
                                {"id": "wamid.nots", "status": "read", "timestamp": "yesterday"},
                                {"id": "wamid.neg", "status": "read", "timestamp": -5},
                                {"id": "wamid.huge", "status": "read", "timestamp": 1e300},
                                {"id": "wamid.bool", "status": "read", "timestamp": True},
                                {"id": "", "status": "read", "timestamp": "1"},
                                {"id": "w" * 500, "status": "read", "timestamp": "1"},
                                {"id": "wamid.deleted", "status": "deleted", "timestamp": "1"},
                                {
                                    "id": "wamid.err",
                                    "status": "failed",
                                    "timestamp": "1760000000",
                                    "errors": [{"code": "x", "title": ["t"], "error_data": "nope"}],
                                    "pricing": "free",
                                    "recipient_id": {"a": 1},
                                },
                                None,
                            ],
                            "user_actions": [
                                click("c-ok"),
                                {"action_type": "landing_page_view", "timestamp": "1"},
                                {"action_type": "marketing_messages_link_click"},
                                {"action_type": None},
                            ],
                        },
                    },
                ]
            },
        ],
    }
    raw = encode(payload)
    response = client.post("/", content=raw, headers=signed(raw))
    assert response.status_code == 200
    counts = response.json()
    assert counts["statuses"] == 2  # wamid.ok and wamid.err
    assert counts["clicks"] == 1
    # "not an entry", changes-not-a-list, 7, value-not-an-object, a template status naming no
    # template, 8 bad statuses, None, 2 bad actions
    assert counts["skipped"] == 16
    # inbound message, "deleted" status, landing page view
    assert counts["ignored"] == 3
    assert "template_events" not in counts
    assert ledger.template_events_since() == []
    assert ledger.status_of("wamid.ok")["status"] == "read"  # type: ignore[index]
    err = ledger.status_of("wamid.err")
    assert err is not None and err["status"] == "failed" and err["error_code"] is None
    assert err["recipient_id"] is None and err["pricing_category"] is None
    assert ledger.status_of("wamid.deleted") is None


def test_failed_status_keeps_code_title_and_details(client: ASGIClient, ledger: Ledger) -> None:
    seed_sends(ledger, "c1", ["wamid.F"])
    raw = encode(body([status("wamid.F", "failed", error=131049)]))
    assert client.post("/", content=raw, headers=signed(raw)).status_code == 200
    row = ledger.status_of("wamid.F")
    assert row is not None
    assert (row["status"], row["error_code"], row["error_title"]) == (
        "failed",
        131049,
        "Meta chose not to deliver",
    )
    assert "healthy engagement" in row["error_details"]
    errors = error_counts(ledger, "c1")
    assert [(e["code"], e["stage"], e["count"]) for e in errors] == [(131049, "delivery", 1)]


# --- sizes ---------------------------------------------------------------------------------------------


def test_oversized_body_is_413_and_not_stored(client: ASGIClient, ledger: Ledger) -> None:
    statuses = [status(f"wamid.{i:06d}", "sent") for i in range(3000)]  # > 256 KiB limit of the fixture
    raw = encode(body(statuses))
    assert len(raw) > 256 * 1024
    response = client.post("/", content=raw, headers=signed(raw))
    assert response.status_code == 413
    assert count_rows(ledger, ledger.statuses) == 0


def test_size_limit_is_enforced_while_streaming(ledger: Ledger) -> None:
    """Without Content-Length, reading stops at the first chunk past the limit."""
    app = create_app(
        WebhookSettings(
            app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, ledger=ledger, max_body_bytes=10_000
        )
    )
    chunk = b"x" * 4096
    total_chunks = 100
    received: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        more = len(received) < total_chunks
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-hub-signature-256", b"sha256=" + b"0" * 64), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert len(received) <= 4  # 3 chunks exceed 10,000 bytes; the other 97 were never read


def test_declared_content_length_over_limit_is_refused_at_once(client: ASGIClient) -> None:
    raw = b"{}"
    headers = {**signed(raw), "Content-Length": str(10**9)}
    # The declared length is checked before reading; httpx would refuse to send a lying header, so
    # call the ASGI app directly through the client's transport-free path.
    app = client.app

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert next(m for m in sent if m["type"] == "http.response.start")["status"] == 413


# --- ledger semantics through the receiver ---------------------------------------------------------------


def test_duplicates_and_reordering_leave_the_right_final_state(client: ASGIClient, ledger: Ledger) -> None:
    seed_sends(ledger, "c1", ["wamid.1", "wamid.2", "wamid.3"])
    deliveries = [
        # wamid.1: read arrives first, then delivered, then sent, each twice
        [status("wamid.1", "read", 1_760_000_030)],
        [status("wamid.1", "delivered", 1_760_000_020), status("wamid.1", "read", 1_760_000_030)],
        [status("wamid.1", "sent", 1_760_000_010), status("wamid.1", "delivered", 1_760_000_020)],
        [status("wamid.1", "sent", 1_760_000_010)],
        # wamid.2: failed, then a late sent and delivered must not undo it
        [status("wamid.2", "failed", 1_760_000_015, error=131026)],
        [status("wamid.2", "sent", 1_760_000_010), status("wamid.2", "delivered", 1_760_000_020)],
        # wamid.3: only sent, delivered twice
        [status("wamid.3", "sent", 1_760_000_010)],
        [status("wamid.3", "delivered", 1_760_000_040)],
        [status("wamid.3", "delivered", 1_760_000_040)],
    ]
    for statuses in deliveries:
        raw = encode(body(statuses))
        assert client.post("/", content=raw, headers=signed(raw)).status_code == 200
    one = ledger.status_of("wamid.1")
    two = ledger.status_of("wamid.2")
    three = ledger.status_of("wamid.3")
    assert one is not None and two is not None and three is not None
    assert one["status"] == "read"
    assert one["sent_at"] == datetime.fromtimestamp(1_760_000_010, tz=UTC)
    assert one["delivered_at"] == datetime.fromtimestamp(1_760_000_020, tz=UTC)
    assert two["status"] == "failed" and two["error_code"] == 131026
    assert three["status"] == "delivered"
    assert delivery_counts(ledger, "c1") == {"read": 1, "failed": 1, "delivered": 1}


def test_status_before_its_send_row_joins_later(client: ASGIClient, ledger: Ledger) -> None:
    raw = encode(body([status("wamid.early", "delivered")]))
    assert client.post("/", content=raw, headers=signed(raw)).status_code == 200
    assert delivery_counts(ledger, "c-late") == {}
    seed_sends(ledger, "c-late", ["wamid.early"])
    assert delivery_counts(ledger, "c-late") == {"delivered": 1}


def test_a_batch_of_1000_statuses_is_one_ledger_write(
    client: ASGIClient, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    wamids = [f"wamid.batch.{i:04d}" for i in range(1000)]
    seed_sends(ledger, "big", wamids)
    calls: list[int] = []
    original = ledger.record_statuses

    def spy(updates: Any, **kwargs: Any) -> int:
        calls.append(len(updates))
        return original(updates, **kwargs)

    monkeypatch.setattr(ledger, "record_statuses", spy)
    raw = encode(body([status(w, "delivered", 1_760_000_000 + i % 50) for i, w in enumerate(wamids)]))
    started = time.perf_counter()
    response = client.post("/", content=raw, headers=signed(raw))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["statuses"] == 1000
    assert calls == [1000]
    assert delivery_counts(ledger, "big") == {"delivered": 1000}
    assert elapsed < 5.0


def test_clicks_are_stored_once(client: ASGIClient, ledger: Ledger) -> None:
    raw = encode(body(actions=[click("k-1"), click("k-1"), click("k-2"), click(None), click(None)]))
    for _ in range(2):  # a redelivery
        response = client.post("/", content=raw, headers=signed(raw))
        assert response.status_code == 200
    assert response.json()["clicks"] == 5
    with ledger.engine.connect() as conn:
        ids = sorted(conn.execute(sa.select(ledger.clicks.c.click_id)).scalars())
    assert len(ids) == 3  # k-1, k-2 and one derived id for the two identical id-less clicks
    assert {"k-1", "k-2"} <= set(ids)
    assert any(i.startswith("h:") for i in ids)


# --- configuration and hygiene ----------------------------------------------------------------------------


def test_missing_app_secret_is_503(ledger: Ledger) -> None:
    app = create_app(WebhookSettings(app_secret=None, verify_token=VERIFY_TOKEN, ledger=ledger))
    raw = encode(body([status("wamid.Z", "sent")]))
    c = ASGIClient(app)
    assert c.post("/", content=raw, headers=signed(raw)).status_code == 503
    assert ledger.status_of("wamid.Z") is None


def test_broken_settings_source_is_503(ledger: Ledger) -> None:
    def broken() -> WebhookSettings:
        raise RuntimeError("The conn_id `whatsapp_default` isn't defined")

    c = ASGIClient(create_app(broken))
    assert c.get("/", params={"hub.mode": "subscribe"}).status_code == 503
    assert c.post("/", content=b"{}").status_code == 503


def test_settings_callable_is_read_per_request_and_ledger_factory_opened_once(ledger: Ledger) -> None:
    opened: list[int] = []
    reads: list[int] = []

    def factory() -> Ledger:
        opened.append(1)
        return ledger

    def source() -> WebhookSettings:
        reads.append(1)
        token = "first-token" if len(reads) == 1 else "second-token"
        return WebhookSettings(app_secret=APP_SECRET, verify_token=token, ledger_factory=factory)

    c = ASGIClient(create_app(source))
    params = {"hub.mode": "subscribe", "hub.verify_token": "first-token", "hub.challenge": "a"}
    assert c.get("/", params=params).status_code == 200
    assert c.get("/", params=params).status_code == 403  # the second read returned another token
    for wamid in ("wamid.f1", "wamid.f2"):
        raw = encode(body([status(wamid, "sent")]))
        assert c.post("/", content=raw, headers=signed(raw)).status_code == 200
    assert len(reads) == 4
    assert opened == [1]
    assert ledger.status_of("wamid.f2") is not None


def test_ledger_failure_is_500_so_meta_retries(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> int:
        raise sa.exc.OperationalError(
            "UPDATE x", {"recipient": "4915123456789"}, Exception("database is locked")
        )

    monkeypatch.setattr(ledger, "record_statuses", boom)
    app = create_app(WebhookSettings(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, ledger=ledger))
    raw = encode(body([status("wamid.E", "sent")]))
    c = ASGIClient(app)
    assert c.post("/", content=raw, headers=signed(raw)).status_code == 500


def test_secrets_never_reach_logs_or_repr(
    client: ASGIClient, settings: WebhookSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = encode(body([status("wamid.L", "sent", recipient="4915199999999")]))
    client.post("/", content=raw, headers={"X-Hub-Signature-256": sign(raw, "nope")})
    client.post("/", content=raw, headers=signed(raw))
    client.get("/", params={"hub.mode": "subscribe", "hub.verify_token": "bad", "hub.challenge": "1"})
    client.get("/", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"})
    ours = [r for r in caplog.records if r.name.startswith("airflow_provider_wamm")]
    assert ours, "the receiver logs what it does"
    text = "\n".join(r.getMessage() for r in ours) + repr(settings)
    assert APP_SECRET not in text
    assert VERIFY_TOKEN not in text
    assert "4915199999999" not in text
    assert "***" in repr(settings)


def test_health(client: ASGIClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
