"""The sandbox's ASGI application: every route, each handler bound to the sandbox's context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_wamm.sandbox import admin
from airflow_provider_wamm.sandbox.analytics import get_template_analytics
from airflow_provider_wamm.sandbox.graph_call import GraphCall, run_graph_call
from airflow_provider_wamm.sandbox.reads import debug_token, get_node, get_templates
from airflow_provider_wamm.sandbox.responses import SEND_SCOPE_KEY, unsupported_request
from airflow_provider_wamm.sandbox.scenario import run_due_steps
from airflow_provider_wamm.sandbox.send import send_marketing_message
from airflow_provider_wamm.sandbox.state import SandboxContext

#: An endpoint of the sandbox: a request and the sandbox's context in, an answer out.
Handler = Callable[[Request, SandboxContext], Awaitable[Response]]
#: An ASGI application.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


async def unsupported(request: Request, ctx: SandboxContext) -> Response:
    """Any other path: Graph's 100/33 answer (after authentication, like Meta)."""

    def fail(call: GraphCall) -> Response:
        raise unsupported_request(
            f"Unsupported {request.method.lower()} request: {request.url.path} is not served by the sandbox."
        )

    return await run_graph_call(request, ctx, fail)


def _routes() -> list[tuple[str, Handler, list[str]]]:
    return [
        ("/_sandbox/health", admin.health, ["GET"]),
        ("/_sandbox/messages", admin.messages, ["GET"]),
        ("/_sandbox/counts", admin.counts, ["GET"]),
        ("/_sandbox/reset", admin.reset, ["POST"]),
        ("/_sandbox/config", admin.config, ["GET", "POST"]),
        ("/_sandbox/expected_outcome", admin.expected_outcome, ["GET"]),
        ("/_sandbox/signals", admin.signals, ["GET", "POST"]),
        ("/{version}/debug_token", debug_token, ["GET"]),
        ("/{version}/{node}/marketing_messages", send_marketing_message, ["POST"]),
        ("/{version}/{node}/message_templates", get_templates, ["GET"]),
        ("/{version}/{node}/template_analytics", get_template_analytics, ["GET"]),
        ("/{version}/{node}", get_node, ["GET"]),
        ("/{path:path}", unsupported, ["GET", "POST", "DELETE"]),
    ]


def _bind(handler: Handler, ctx: SandboxContext) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(request, ctx)

    return endpoint


def build_app(ctx: SandboxContext) -> ASGIApp:
    """The ASGI application serving ``ctx``.

    It keeps the server's ``send`` in the scope, so that a handler can close the connection
    (:func:`~airflow_provider_wamm.sandbox.responses.drop_connection`).
    """
    app = Starlette(routes=[Route(path, _bind(h, ctx), methods=methods) for path, h, methods in _routes()])
    ctx.step_runner = run_due_steps  # scripted signals run after sends and on the emitter's ticks

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[SEND_SCOPE_KEY] = send
        await app(scope, receive, send)

    return asgi
