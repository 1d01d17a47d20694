"""``POST /{version}/{phone_number_id}/marketing_messages``: check, limit, record and answer a send.

A send is checked against Meta's rules and the approved template, may get a forced or random fault,
is counted against the throughput cap (130429) and the pair rate limit (131056) when it arrives, is
recorded (and its status webhooks scheduled), and is answered like Meta answers it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Required, TypedDict, cast

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_wamm.sandbox.faults import ERROR_FAULTS, fault_error, random_fault, whole_list_fault
from airflow_provider_wamm.sandbox.graph_call import GraphCall, run_graph_call
from airflow_provider_wamm.sandbox.responses import drop_connection, graph_error, json_response
from airflow_provider_wamm.sandbox.state import SandboxContext, SandboxMessage
from airflow_provider_wamm.sandbox.validation import CompiledTemplate, check_payload, normalize_to
from airflow_provider_wamm.sandbox.webhooks import schedule_message

#: The wall clock of arrival times (``SandboxMessage.timestamp``); tests replace it to control time.
wall_clock = time.time

#: Template statuses a send can name without 132001 (the last two are refused with their own codes).
_SENDABLE_STATUSES = ("APPROVED", "PAUSED", "DISABLED")


class TemplateLanguage(TypedDict):
    """``template.language`` of a send."""

    code: str


class TemplateRef(TypedDict, total=False):
    """``template`` of a send: which template, and the parameters for it."""

    name: Required[str]
    language: Required[TemplateLanguage]
    components: list[dict[str, Any]]


class MessageBody(TypedDict, total=False):
    """The fields of a send's body the sandbox reads, once :func:`check_payload` passed it."""

    to: str
    recipient: str
    template: Required[TemplateRef]


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a send is for."""

    key: str
    """Digits of the phone number (``to``), or the business-scoped user id (``recipient``)."""
    given: str
    """``to`` or ``recipient`` exactly as sent."""
    by_phone: bool
    """Whether it was addressed by phone number (the answer then names it ``wa_id``)."""

    @classmethod
    def of(cls, body: MessageBody) -> Recipient:
        """The recipient of a checked body."""
        raw_to = body.get("to")
        if raw_to is not None:
            return cls(normalize_to(raw_to) or raw_to, raw_to, True)
        return cls(body["recipient"], body["recipient"], False)


async def send_marketing_message(request: Request, ctx: SandboxContext) -> Response:
    """The endpoint: read the body, then answer in the common Graph frame."""
    body = await request.body()
    return await run_graph_call(request, ctx, lambda call: _send(call, body), kind="send")


async def _send(call: GraphCall, body: bytes) -> Response:
    message, compiled = resolve_message(call, body)
    recipient = Recipient.of(message)
    call.state.send_requests[recipient.key] += 1
    failure = whole_list_fault(
        call.config, call.state.first_send_at, message["template"].get("components", [])
    )
    if failure is not None:
        raise failure
    action = choose_action(call, recipient.key)
    if action == "drop":
        return await call.drop()
    now = time.monotonic()
    enforce_limits(call, recipient.key, now)
    msg = record_message(call, message, compiled, recipient, now)
    return await answer_message(call, msg, recipient, action)


def resolve_message(call: GraphCall, body: bytes) -> tuple[MessageBody, CompiledTemplate]:
    """The checked body and its template; raises the Graph error a bad send gets."""
    call.require_node(call.config.phone_number_id, "post")
    payload: Any
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        raise graph_error(100, "The request body is not valid JSON.") from None
    problem = check_payload(payload)
    if problem:
        raise graph_error(problem.code, problem.details)
    message = cast(MessageBody, payload)
    template = message["template"]
    name = template["name"]
    language = template["language"]["code"]
    compiled = call.runtime.templates.get((name, language))
    if compiled is None or compiled.template.status not in _SENDABLE_STATUSES:
        raise graph_error(132001, f"template name ({name}) does not exist in {language}")
    tpl = compiled.template
    if tpl.status == "PAUSED":
        raise graph_error(132015, f"template {name} ({language}) is paused")
    if tpl.status == "DISABLED":
        raise graph_error(132016, f"template {name} ({language}) is disabled")
    if tpl.category != "MARKETING":
        raise graph_error(
            134100, f"template {name} is in category {tpl.category}; only MARKETING templates can be sent"
        )
    problem = compiled.check(template.get("components", []))
    if problem:
        raise graph_error(problem.code, problem.details)
    return message, compiled


def choose_action(call: GraphCall, key: str) -> str | None:
    """The recipient's forced action (for its first ``#n`` attempts) or a random fault; raises the
    refusing ones (a forced error, 5xx, transient, throttle) and returns the others."""
    forced = call.runtime.forced.get(key)
    state = call.state
    action: str | None = None
    if forced is not None and forced.action is not None:
        state.forced_attempts[key] += 1
        if forced.times is None or state.forced_attempts[key] <= forced.times:
            action = forced.action
    elif call.runtime.fault_total:
        action = random_fault(call.config, state.rng)
    if action == "error":
        assert forced is not None and forced.code is not None
        raise graph_error(forced.code, f"Forced error for this recipient ({forced.code})")
    if action in ERROR_FAULTS:
        raise fault_error(str(action), call.config, state.rng)
    return action


def enforce_limits(call: GraphCall, key: str, now: float) -> None:
    """Count the send in the throughput window and the recipient's pair bucket (130429, 131056)."""
    cfg = call.config
    state = call.state
    if cfg.mps_cap is not None:
        window = state.window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= cfg.mps_cap:
            raise graph_error(
                130429,
                "Message throughput limit of this phone number reached",
                status=cfg.rate_limit_http_status,
            )
    if cfg.pair_limit:
        bucket = state.pair.get(key)
        if bucket is None:
            bucket = state.pair[key] = [float(cfg.pair_burst), now]
        else:
            bucket[0] = min(float(cfg.pair_burst), bucket[0] + (now - bucket[1]) / cfg.pair_interval_s)
            bucket[1] = now
        if bucket[0] < 1.0:
            raise graph_error(
                131056,
                "Message failed to send because there were too many messages sent "
                "from this phone number to the same phone number in a short period of time.",
            )
        bucket[0] -= 1.0
    if cfg.mps_cap is not None:
        state.window.append(now)


def record_message(
    call: GraphCall, message: MessageBody, compiled: CompiledTemplate, recipient: Recipient, now: float
) -> SandboxMessage:
    """Record an accepted message (its outcome, pricing and click decided now) and schedule its webhooks."""
    cfg = call.config
    runtime = call.runtime
    key = recipient.key
    tpl = compiled.template
    forced = runtime.forced.get(key)
    message_status = tpl.message_status
    if forced is not None and forced.message_status is not None:
        message_status = forced.message_status
    outcome = (
        forced.outcome
        if forced is not None and forced.outcome is not None
        else runtime.hash_outcome(key, tpl.name)
    )
    fallback = cfg.onboarding_status != "ONBOARDED" or (
        cfg.cloud_api_fallback_rate > 0 and runtime.unit("fallback", key) < cfg.cloud_api_fallback_rate
    )
    seq = next(call.state.wamid_seq)
    wamid = "wamid." + base64.urlsafe_b64encode(
        f"{cfg.phone_number_id}:{key}:{call.state.salt}:{seq:08d}".encode()
    ).decode().rstrip("=")
    msg = SandboxMessage(
        wamid=wamid,
        to=key,
        input=recipient.given,
        template=tpl.name,
        language=tpl.language,
        template_id=tpl.id or "",
        payload=dict(message),
        message_status=message_status,
        outcome=outcome,
        pricing_category="marketing" if fallback else "marketing_lite",
        clicked=outcome == "read" and runtime.unit("click", key) < runtime.click_rate(tpl.name),
        tracking_token=hashlib.blake2b(wamid.encode(), digest_size=12).hexdigest(),
        monotonic=now,
        timestamp=wall_clock(),
    )
    call.state.accept(msg)
    if cfg.webhook_url:
        schedule_message(runtime, call.state, msg, now)
    return msg


def whatsapp_id(digits: str) -> str:
    """The ``wa_id`` Meta answers for a number: as sent, except that it drops the ninth digit of a
    Brazilian mobile number (``55 11 9xxxxxxxx`` -> ``55 11 xxxxxxxx``) and adds the ``1`` of a Mexican
    mobile number (``52 xxxxxxxxxx`` -> ``521 xxxxxxxxxx``).

    Meta: "For Brazil and Mexico, the extra added prefix of the phone number may be modified by the
    Cloud API. This is a standard behavior of the system and is not considered a bug" ("Service
    messages", https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages,
    May 21, 2026). Which digit changes is what integrators report, not a rule Meta publishes; the
    sandbox rewrites every such number, so that callers never take ``wa_id`` for the number they sent.
    """
    if len(digits) == 13 and digits.startswith("55") and digits[4] == "9":
        return digits[:4] + digits[5:]
    if len(digits) == 12 and digits.startswith("52"):
        return "521" + digits[2:]
    return digits


def answer_contact(recipient: Recipient) -> dict[str, str]:
    """The answer's ``contacts[]`` entry: ``input`` as sent, and ``wa_id`` for a phone number or
    ``user_id`` for a business-scoped user id (``to`` wins when both were sent, as at Meta)."""
    if recipient.by_phone:
        return {"input": recipient.given, "wa_id": whatsapp_id(recipient.key)}
    return {"input": recipient.given, "user_id": recipient.key}


async def answer_message(
    call: GraphCall, msg: SandboxMessage, recipient: Recipient, action: str | None
) -> Response:
    """Meta's 200 answer, or its lost (dropped, hung) or slow variant for a faulty send."""
    cfg = call.config
    if action == "lost":
        mode = cfg.lost_response_mode
        if mode == "mixed":
            mode = "drop" if call.state.rng.random() < 0.5 else "hang"
        action = mode
    if action in ("drop", "hang"):
        msg.answer = "lost"
        if action == "hang":
            await asyncio.sleep(cfg.hang_s)
            return await drop_connection(call.request, cfg.hang_s)
        return await call.drop()
    if action == "slow":
        msg.answer = "slow"
        await asyncio.sleep(cfg.slow_response_s)
    contact = answer_contact(recipient)
    return json_response(
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": msg.wamid, "message_status": msg.message_status}],
        },
    )
