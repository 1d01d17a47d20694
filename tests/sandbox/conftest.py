"""Helpers for the sandbox tests: a thin ``requests`` wrapper and valid payloads per default template."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_wamm.sandbox import Sandbox

PHONE = "100000000000001"
WABA = "200000000000001"
TOKEN = "sandbox-token"

_BODY2 = [{"type": "text", "text": "Ana"}, {"type": "text", "text": "20%"}]
COMPONENTS: dict[str, list[dict[str, Any]]] = {
    "spring_sale": [
        {"type": "body", "parameters": _BODY2},
        {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "ana-20"}]},
    ],
    "welcome_named": [
        {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]}
    ],
    "coupon_offer": [
        {"type": "body", "parameters": _BODY2},
        {
            "type": "button",
            "sub_type": "copy_code",
            "index": 0,
            "parameters": [{"type": "coupon_code", "coupon_code": "SAVE20"}],
        },
    ],
    "image_promo": [
        {
            "type": "header",
            "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/a.jpg"}}],
        },
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
    ],
    "utility_notice": [{"type": "body", "parameters": [{"type": "text", "text": "A-1"}]}],
    "paced_promo": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}],
}


def message(
    to: str | None = "+4915123456789",
    template: str = "spring_sale",
    language: str = "en_US",
    components: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid marketing message body for one of the default templates."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "type": "template",
        "template": {
            "name": template,
            "language": {"code": language},
            "components": copy.deepcopy(COMPONENTS.get(template, []) if components is None else components),
        },
    }
    if to is not None:
        payload["to"] = to
    payload.update(extra)
    return payload


def number(i: int) -> str:
    """A distinct, valid recipient number."""
    return f"49151{i:08d}"


class Graph:
    """Minimal HTTP client for the sandbox's Graph endpoints."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.base = f"{sandbox.url}/v23.0"

    def headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def send(
        self,
        payload: Any = None,
        *,
        token: str | None = TOKEN,
        phone: str = PHONE,
        timeout: float = 5.0,
        session: requests.Session | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        body = message(**kwargs) if payload is None else payload
        return (session or self.session).post(
            f"{self.base}/{phone}/marketing_messages", json=body, headers=self.headers(token), timeout=timeout
        )

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        token: str | None = TOKEN,
        timeout: float = 5.0,
    ) -> requests.Response:
        return self.session.get(
            f"{self.base}/{path}", params=params, headers=self.headers(token), timeout=timeout
        )

    def error(self, response: requests.Response) -> dict[str, Any]:
        return response.json()["error"]


@pytest.fixture
def graph(sandbox: Sandbox) -> Iterator[Graph]:
    """A client bound to the fresh ``sandbox``."""
    client = Graph(sandbox)
    yield client
    client.session.close()
