"""The admin endpoints under ``/_sandbox/``: another process inspects and configures the sandbox, and
makes it send Meta's signals (stops, resumes, template pauses, limit and quality changes).

They have no authentication: the sandbox belongs on the loopback interface.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict, cast

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_wamm.sandbox.config import SandboxConfig, SignalStep
from airflow_provider_wamm.sandbox.responses import json_response
from airflow_provider_wamm.sandbox.scenario import apply_signal
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


class SignalBody(TypedDict, total=False):
    """The body of ``POST /_sandbox/signals`` (or the step's text form as a JSON string)."""

    action: str
    """``stop``, ``resume``, ``pause_template``, ``approve_template``, ``disable_template``,
    ``template_quality``, ``messaging_limit`` or ``quality``."""
    target: str
    """The recipient, template name, tier or rating."""
    language: str
    """Template actions: one language of the template."""
    value: str
    """``template_quality``: the new score."""
    after_sends: int
    """Schedule it after this many accepted sends instead of acting at once."""
    at_s: float
    """Schedule it this many seconds after the last reset instead of acting at once."""


async def signals(request: Request, ctx: SandboxContext) -> Response:
    """``POST /_sandbox/signals``: act on a signal now and send its webhook (or schedule it, with
    ``after_sends``/``at_s``); ``GET`` lists the signals acted on since the reset and the scripted ones."""
    if request.method == "POST":
        try:
            raw = await request.body()
            data = json.loads(raw) if raw.strip() else None
            if not isinstance(data, (str, dict)):
                raise ValueError("the body must be a JSON object of the signal's fields, or its text form")
            step = SignalStep.of(cast(SignalBody, data) if isinstance(data, dict) else data)
            if step.scripted:
                ctx.install(ctx.config.replace(signal_steps=(*ctx.config.signal_steps, step)))
                return json_response(200, {"scheduled": step.to_dict()})
            return json_response(200, apply_signal(ctx, step))
        except (ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
    state = ctx.state
    scripted = [{**s.to_dict(), "done": s in state.steps_done} for s in ctx.config.signal_steps]
    return json_response(
        200,
        {
            "signals": list(state.signal_log),
            "stopped_users": list(ctx.config.stopped_users),
            "scripted": scripted,
        },
    )
