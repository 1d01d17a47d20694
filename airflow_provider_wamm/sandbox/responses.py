"""The sandbox's answers: JSON bodies, Graph error envelopes like Meta's, and closed connections.

A handler that must refuse a request raises :class:`GraphFailure` (built by :func:`graph_error`);
the request frame turns it into the answer and counts the code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_wamm.graph.errors import error_title

_JSON_HEADERS = {"content-type": "application/json; charset=UTF-8"}
#: Codes Meta marks ``is_transient`` (besides the throttling codes 4 and 130429).
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
#: HTTP status of each Graph code (400 for the others; 130429's is configurable).
HTTP_STATUS = {
    0: 401,
    190: 401,
    10: 403,
    4: 429,
    17: 429,
    80007: 429,
    1: 500,
    2: 500,
    131000: 500,
    131016: 503,
}
#: Key of the ASGI scope entry holding the server's ``send`` callable (to close a connection).
SEND_SCOPE_KEY = "wamm.send"


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A compact JSON answer with Graph's content type."""
    body = json.dumps(data, separators=(",", ":"))
    return Response(body, status_code=status, headers={**_JSON_HEADERS, **(headers or {})})


def trace_id() -> str:
    """A random ``fbtrace_id``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(15)).decode().rstrip("=")


class GraphFailure(Exception):
    """Raised inside handlers to answer a Graph error (``code`` is ``None`` for a bare 502/503)."""

    def __init__(self, response: Response, code: int | None) -> None:
        super().__init__(code)
        self.response = response
        self.code = code


class Dropped(Response):
    """Marks a request whose connection was closed: nothing more is sent for it."""


def graph_error(
    code: int,
    details: str | None = None,
    *,
    message: str | None = None,
    subcode: int | None = None,
    error_type: str = "OAuthException",
    status: int | None = None,
) -> GraphFailure:
    """A Graph error envelope (``{"error": {...}}``) with Meta's title, transient flag and HTTP status."""
    error: dict[str, Any] = {
        "message": message or f"(#{code}) {error_title(code)}",
        "type": error_type,
        "code": code,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if code in TRANSIENT_CODES or code in (4, 130429):
        error["is_transient"] = True
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = trace_id()
    return GraphFailure(json_response(status or HTTP_STATUS.get(code, 400), {"error": error}), code)


def token_expired() -> GraphFailure:
    """190/463: the access token's session expired (five minutes ago)."""
    now = dt.datetime.now(dt.UTC)
    stamp = "%A, %d-%b-%y %H:%M:%S"
    message = (
        f"Error validating access token: Session has expired on {now - dt.timedelta(minutes=5):{stamp}} "
        f"UTC. The current time is {now:{stamp}} UTC."
    )
    return graph_error(190, message=message, subcode=463)


def unsupported_request(message: str) -> GraphFailure:
    """100/33 ``GraphMethodException``: a node or path the sandbox does not serve."""
    return graph_error(100, message=message, subcode=33, error_type="GraphMethodException")


def unknown_node(node: str, method: str = "get") -> GraphFailure:
    """100/33: an object id that does not exist (or does not support the operation)."""
    return unsupported_request(
        f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation."
    )


async def drop_connection(request: Request, hang_s: float) -> Response:
    """Close the client's connection without an answer (``hang_s`` of silence when that is impossible)."""
    send = request.scope.get(SEND_SCOPE_KEY)
    # uvicorn's ``send`` is a method of its per-request cycle, which holds the connection.
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not uvicorn: the closest we can do is never answering
        await asyncio.sleep(hang_s)
        return Dropped(status_code=504)
    transport.abort()
    with contextlib.suppress(AttributeError):
        cycle.disconnected = True  # uvicorn then neither answers nor logs an incomplete response
    await asyncio.sleep(0)
    return Dropped(status_code=500)
