"""The frame every Graph endpoint of the sandbox runs in: count, authenticate, inject faults on reads,
run the handler, turn a refusal into Meta's error answer, and take the answer's latency.

The throughput cap and the other limits are applied by the handlers when a request arrives; the
latency (:mod:`airflow_provider_wamm.sandbox.latency`) is slept afterwards with ``asyncio.sleep``,
so slow answers overlap and never hold up other requests.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_wamm.sandbox.config import SandboxConfig
from airflow_provider_wamm.sandbox.faults import ERROR_FAULTS, fault_error, random_fault
from airflow_provider_wamm.sandbox.latency import answer_latency
from airflow_provider_wamm.sandbox.responses import (
    Dropped,
    GraphFailure,
    drop_connection,
    graph_error,
    token_expired,
    unknown_node,
)
from airflow_provider_wamm.sandbox.state import Runtime, SandboxContext, SandboxState

#: ``send``: a marketing message; ``read``: a GET (faults apply when ``faults_on_reads``);
#: ``token``: ``debug_token``, which checks its tokens itself.
CallKind = Literal["send", "read", "token"]


@dataclass(frozen=True, slots=True)
class GraphCall:
    """One Graph request, with the configuration and the state in force when it arrived."""

    request: Request
    runtime: Runtime
    state: SandboxState
    arrived: float
    """``time.monotonic()`` at arrival."""

    @property
    def config(self) -> SandboxConfig:
        """The configuration in force at arrival."""
        return self.runtime.config

    def require_node(self, node_id: str, method: str = "get") -> None:
        """Raise Graph's unknown-object error unless the path names ``node_id``."""
        node = self.request.path_params["node"]
        if node != node_id:
            raise unknown_node(node, method)

    async def wait_latency(self) -> None:
        """Sleep the answer's time, drawn for the moment the request arrived."""
        first = self.state.first_send_at
        since_first_send = None if first is None else self.arrived - first
        latency = answer_latency(self.config, self.state.latency_rng, since_first_send)
        if latency > 0:
            await asyncio.sleep(latency)

    async def drop(self) -> Response:
        """Take the latency, then close the connection without an answer."""
        await self.wait_latency()
        return await drop_connection(self.request, self.config.hang_s)


#: What an endpoint does with a call: an answer, or a :class:`GraphFailure` raised.
GraphHandler = Callable[[GraphCall], Response | Awaitable[Response]]


async def run_graph_call(
    request: Request, ctx: SandboxContext, handler: GraphHandler, kind: CallKind = "read"
) -> Response:
    """Answer ``request`` with ``handler`` inside the common frame (see the module's docstring)."""
    call = GraphCall(request, ctx.runtime, ctx.state, time.monotonic())
    state = call.state
    state.requests += 1
    if kind == "send" and state.first_send_at is None:
        state.first_send_at = call.arrived
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        response = await _answer(call, handler, kind)
        if not isinstance(response, Dropped):
            await call.wait_latency()
        return response
    finally:
        state.in_flight -= 1


async def _answer(call: GraphCall, handler: GraphHandler, kind: CallKind) -> Response:
    """The handler's answer, or the Graph error it (or the authentication, or a fault) raised."""
    try:
        if kind != "token":
            authenticate(call.request, call.config)
        if kind == "read" and call.config.faults_on_reads and call.runtime.fault_total:
            dropped = await _read_fault(call)
            if dropped is not None:
                return dropped
        result = handler(call)
        return await result if isinstance(result, Awaitable) else result
    except GraphFailure as failure:
        if failure.code is not None:
            call.state.errors[failure.code] += 1
        return failure.response


async def _read_fault(call: GraphCall) -> Response | None:
    """Apply a random fault to a read: drop it, fail it (raises) or delay it."""
    cfg = call.config
    fault = random_fault(cfg, call.state.rng)
    if fault in ("drop", "lost"):
        return await call.drop()
    if fault in ERROR_FAULTS:
        raise fault_error(fault, cfg, call.state.rng)
    if fault == "slow":
        await asyncio.sleep(cfg.slow_response_s)
    return None


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, ``None`` without one."""
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


def authenticate(request: Request, cfg: SandboxConfig) -> None:
    """Raise 190 unless the request carries the configured, unexpired access token."""
    token = bearer_token(request)
    if token is None:
        token = request.query_params.get("access_token")
    if not token:
        raise graph_error(
            190,
            message="An active access token must be used to query information about the current user.",
        )
    if not secrets.compare_digest(token.encode(), cfg.access_token.encode()):
        raise graph_error(190, message="Invalid OAuth access token - Cannot parse access token")
    if cfg.token_expired:
        raise token_expired()
