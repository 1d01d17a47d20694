"""The admin endpoints under ``/_sandbox/``: another process inspects and configures the sandbox.

They have no authentication: the sandbox belongs on the loopback interface.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict, cast

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_wamm.sandbox.config import SandboxConfig
from airflow_provider_wamm.sandbox.responses import json_response
from airflow_provider_wamm.sandbox.state import SandboxContext
from airflow_provider_wamm.sandbox.validation import normalize_to


async def health(request: Request, ctx: SandboxContext) -> Response:
    """``GET /_sandbox/health``: liveness, with the ids that exist."""
    return json_response(
        200, {"ok": True, "phone_number_id": ctx.config.phone_number_id, "waba_id": ctx.config.waba_id}
    )


async def messages(request: Request, ctx: SandboxContext) -> Response:
    """``GET /_sandbox/messages``: the accepted messages (``?to=``, ``?offset=``, ``?limit=``)."""
    params = request.query_params
    msgs = list(ctx.state.messages)
    if params.get("to"):
        key = normalize_to(params["to"]) or params["to"]
        msgs = [m for m in msgs if m.to == key]
    try:
        offset = int(params.get("offset", "0"))
        limit = int(params.get("limit", "1000"))
    except ValueError:
        return json_response(400, {"error": "offset and limit must be integers"})
    page = msgs[offset : offset + limit]
    return json_response(200, {"total": len(msgs), "data": [m.to_dict() for m in page]})


async def counts(request: Request, ctx: SandboxContext) -> Response:
    """``GET /_sandbox/counts``: a summary of what happened (``?per_recipient=1``: sends per recipient)."""
    per = request.query_params.get("per_recipient", "").lower() in ("1", "true", "yes")
    return json_response(200, ctx.state.counts(per_recipient=per))


async def expected_outcome(request: Request, ctx: SandboxContext) -> Response:
    """``GET /_sandbox/expected_outcome?to=``: the final status a recipient will get."""
    to = request.query_params.get("to")
    if not to:
        return json_response(400, {"error": "the parameter to is required"})
    return json_response(200, {"to": to, "outcome": ctx.runtime.expected_outcome(to)})


async def _read_json(request: Request) -> dict[str, Any]:
    body = await request.body()
    data = json.loads(body) if body.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


class ResetBody(TypedDict, total=False):
    """The body of ``POST /_sandbox/reset``."""

    defaults: bool
    """Start from the default configuration (else from the one in force)."""
    config: dict[str, Any]
    """Configuration fields to change."""


async def reset(request: Request, ctx: SandboxContext) -> Response:
    """``POST /_sandbox/reset``: forget everything; ``{"config": {...}}`` changes settings too, and
    ``{"defaults": true}`` starts from the default configuration."""
    try:
        data = cast(ResetBody, await _read_json(request))
        config = None
        if data.get("defaults"):
            config = SandboxConfig.from_dict(data.get("config") or {})
        elif data.get("config"):
            config = SandboxConfig.from_dict(data["config"], base=ctx.config)
    except (ValueError, TypeError) as exc:
        return json_response(400, {"error": str(exc)})
    ctx.reset(config)
    return json_response(200, {"ok": True, "config": ctx.config.to_dict()})


async def config(request: Request, ctx: SandboxContext) -> Response:
    """``GET /_sandbox/config`` shows the settings; ``POST`` changes them (JSON of config fields)."""
    if request.method == "POST":
        try:
            data = await _read_json(request)
            ctx.install(SandboxConfig.from_dict(data, base=ctx.config))
        except (ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
    return json_response(200, ctx.config.to_dict())
