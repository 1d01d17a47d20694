"""WhatsAppHook against the local sandbox: the connection test over real HTTP, end to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook


def _hook(sandbox: Any, whatsapp_connection: Callable[..., str], *, app: bool = True) -> WhatsAppHook:
    cfg = sandbox.config
    extra: dict[str, Any] = {}
    if app:
        extra = {"app_id": cfg.app_id, "app_secret": cfg.app_secret}
    conn_id = whatsapp_connection(
        "wa_sandbox",
        host=sandbox.url,
        access_token=cfg.access_token,
        phone_number_id=cfg.phone_number_id,
        waba_id=cfg.waba_id,
        **extra,
    )
    return WhatsAppHook(whatsapp_conn_id=conn_id, max_retries=0)


def test_connection_against_the_sandbox(sandbox: Any, whatsapp_connection: Callable[..., str]) -> None:
    ok, message = _hook(sandbox, whatsapp_connection).test_connection()
    assert ok, message
    cfg = sandbox.config
    assert message.startswith(f"Connected to {cfg.display_phone_number} ({cfg.verified_name}, quality GREEN")
    assert f"WABA {cfg.waba_id} marketing messages: ONBOARDED" in message
    assert message.endswith("token: never expires")
    assert cfg.access_token not in message


def test_not_onboarded_waba_in_the_sandbox(sandbox: Any, whatsapp_connection: Callable[..., str]) -> None:
    sandbox.configure(onboarding_status="ELIGIBLE")
    ok, message = _hook(sandbox, whatsapp_connection, app=False).test_connection()
    assert not ok
    assert "is not onboarded to the Marketing Messages API (status ELIGIBLE)" in message


def test_expired_token_in_the_sandbox(sandbox: Any, whatsapp_connection: Callable[..., str]) -> None:
    sandbox.configure(token_expired=True, token_expires_at=int(time.time()) - 3600)
    ok, message = _hook(sandbox, whatsapp_connection).test_connection()
    assert not ok
    assert message.startswith("The access token was rejected (Graph error 190")
    assert "expired" in message and "System users" in message


def test_token_without_the_messaging_scope_in_the_sandbox(
    sandbox: Any, whatsapp_connection: Callable[..., str]
) -> None:
    sandbox.configure(token_scopes=("whatsapp_business_management",))
    ok, message = _hook(sandbox, whatsapp_connection).test_connection()
    assert not ok
    assert message.startswith("The access token lacks the whatsapp_business_messaging permission")
