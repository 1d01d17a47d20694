"""Shared helpers of the graph tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_wamm.graph import GraphClient
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION

TOKEN = "EAAGtestSECRETtoken0123456789abcdef"
PHONE_NUMBER_ID = "1000000001"
WABA_ID = "2000000002"
GRAPH = f"https://graph.facebook.com/{DEFAULT_API_VERSION}"
SEND_URL = f"{GRAPH}/{PHONE_NUMBER_ID}/marketing_messages"


def graph_error(code: int, message: str = "boom", **extra: Any) -> dict[str, Any]:
    """A Graph error envelope as Meta sends it."""
    error: dict[str, Any] = {
        "message": f"(#{code}) {message}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": f"details of {code}"},
        "fbtrace_id": "AbCdEfTrace",
    }
    error.update(extra)
    return {"error": error}


def send_ok(wamid: str = "wamid.HBgL", status: str = "accepted") -> dict[str, Any]:
    """A successful marketing_messages answer."""
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "4915123456789", "wa_id": "4915123456789"}],
        "messages": [{"id": wamid, "message_status": status}],
    }


@pytest.fixture
def sleeps() -> list[float]:
    """Delays passed to the client's injected sleep."""
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., GraphClient]]:
    """Build a client that records its sleeps instead of sleeping and jitters at the maximum.

    Unless told otherwise it is given a session, so that sends go through ``requests`` too, where
    ``requests-mock`` answers them.
    """
    clients: list[GraphClient] = []
    sessions: list[requests.Session] = []

    def make(**kwargs: Any) -> GraphClient:
        options: dict[str, Any] = {
            "phone_number_id": PHONE_NUMBER_ID,
            "waba_id": WABA_ID,
            "sleep": sleeps.append,
            "random": lambda: 1.0,
        }
        options.update(kwargs)
        if "session" not in options and "transport" not in options:
            options["session"] = requests.Session()
            sessions.append(options["session"])
        client = GraphClient(options.pop("access_token", TOKEN), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    for session in sessions:
        session.close()
