"""Fixtures for the webhook receiver: a real SQLite ledger, the app over it and Meta-shaped bodies."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.webhooks import WebhookSettings, create_app, sign

APP_SECRET = "test-app-secret-0123456789abcdef"
VERIFY_TOKEN = "test-verify-token-42"
WABA_ID = "200000000000001"
PHONE_NUMBER_ID = "100000000000001"


def status(
    wamid: str,
    name: str,
    ts: int | str = 1_760_000_000,
    *,
    recipient: str = "4915123456789",
    category: str | None = "marketing_lite",
    error: int | None = None,
) -> dict[str, Any]:
    """One ``statuses[]`` item as Meta sends it."""
    obj: dict[str, Any] = {"id": wamid, "status": name, "timestamp": str(ts), "recipient_id": recipient}
    if category is not None and name in ("sent", "delivered", "read"):
        obj["pricing"] = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": category}
    if error is not None:
        obj["errors"] = [
            {
                "code": error,
                "title": "Meta chose not to deliver",
                "message": "Meta chose not to deliver",
                "error_data": {"details": "This message was not delivered to maintain healthy engagement."},
            }
        ]
    return obj


def click(click_id: str | None = "click-1", ts: int = 1_760_000_100) -> dict[str, Any]:
    """One ``user_actions[]`` link click."""
    data: dict[str, Any] = {"click_component": "cta", "tracking_token": "tok"}
    if click_id is not None:
        data["click_id"] = click_id
    return {
        "action_type": "marketing_messages_link_click",
        "timestamp": str(ts),
        "marketing_messages_link_click_data": data,
    }


def body(
    statuses: list[dict[str, Any]] | None = None, actions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A whole ``whatsapp_business_account`` webhook body."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
    }
    if statuses is not None:
        value["statuses"] = statuses
    if actions is not None:
        value["user_actions"] = actions
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def signed(raw: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    """Headers of a signed POST of ``raw``."""
    return {"X-Hub-Signature-256": sign(raw, secret), "Content-Type": "application/json"}


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture
def ledger(tmp_path: pathlib.Path) -> Iterator[Ledger]:
    """A fresh SQLite ledger file."""
    led = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    led.ensure_schema()
    yield led
    led.engine.dispose()


@pytest.fixture
def settings(ledger: Ledger) -> WebhookSettings:
    return WebhookSettings(
        app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, ledger=ledger, max_body_bytes=256 * 1024
    )


class ASGIClient:
    """A synchronous face over ``httpx.AsyncClient`` + ``httpx.ASGITransport`` (real ASGI, in process)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, url, **kwargs)

        return asyncio.run(go())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def client(settings: WebhookSettings) -> ASGIClient:
    """A client of the receiver app."""
    return ASGIClient(create_app(settings))
