"""Webhooks the sandbox sends, in Meta's format and signed like Meta signs them.

Accepted messages schedule their statuses (``sent`` → ``delivered`` → ``read``, or ``failed``) and
click events on a heap, and signals (stops, template pauses, limit changes: see
:mod:`~airflow_provider_wamm.sandbox.scenario`) schedule their own webhook fields; a background task in
the server's event loop runs the scripted signals that are due and POSTs what is due in batches,
with ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body keyed with the app secret>`` (the
receiver's own :func:`~airflow_provider_wamm.webhooks.signature.sign`), and retries a failed delivery
with backoff like Meta does.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_wamm.graph.errors import error_title
from airflow_provider_wamm.sandbox.config import SandboxConfig
from airflow_provider_wamm.sandbox.signals import sandbox_user_id
from airflow_provider_wamm.sandbox.state import Runtime, SandboxContext, SandboxMessage, SandboxState
from airflow_provider_wamm.webhooks.signature import SIGNATURE_HEADER, sign, verify_signature

log = logging.getLogger(__name__)

_ERROR_DOCS = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
#: Messages of the asynchronous failures the sandbox produces (Meta's wording).
FAILURE_DETAILS: dict[int, str] = {
    131026: "Message Undeliverable.",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
    "messages on WhatsApp from your business.",
    132015: "Template is paused due to low quality so it cannot be sent in a template message.",
    135000: "Message failed to send because of an unknown error with your request parameters.",
}
#: The ``X-Hub-Signature-256`` value of a body (the receiver's signer, under the sandbox's old name).
sign_payload = sign


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def schedule_message(runtime: Runtime, state: SandboxState, msg: SandboxMessage, now: float) -> None:
    """Put the webhooks of an accepted message on the heap (statuses, duplicates, reordering, a click)."""
    cfg = runtime.config
    wall0 = msg.timestamp
    base = now + cfg.webhook_delay_s
    step = cfg.webhook_step_s
    outcome = msg.outcome
    stages: list[str]
    code = None
    if outcome.startswith("failed:"):
        stages = ["failed"]
        code = int(outcome[7:])
    else:
        stages = ["sent", "delivered", "read"][: ("sent", "delivered", "read").index(outcome) + 1]
    dues = [base + i * step for i in range(len(stages))]
    walls = [wall0 + (d - now) for d in dues]
    if len(stages) == 3 and runtime.unit("reorder", msg.wamid) < cfg.webhook_reorder_rate:
        dues[1], dues[2] = dues[2], dues[1]
    heap = state.heap
    callback = msg.payload.get("biz_opaque_callback_data") if cfg.echo_callback_data else None
    user_id = sandbox_user_id(msg.to)
    costed = cfg.webhook_cost or "bid_spec" in msg.payload
    for i, status in enumerate(stages):
        priced = status in ("sent", "delivered")
        category = msg.pricing_category if priced else None
        cost = cfg.price_per_message if costed and status in ("delivered", "read") else None
        item = (msg.wamid, status, walls[i], msg.to, category, code, callback, user_id, cost)
        heapq.heappush(heap, (dues[i], next(state.seq), "status", item))
        if (
            cfg.webhook_duplicate_rate
            and runtime.unit("dup", f"{msg.wamid}|{status}") < cfg.webhook_duplicate_rate
        ):
            heapq.heappush(heap, (dues[i] + step * 1.5, next(state.seq), "status", item))
    if msg.clicked:
        click = (msg.wamid, walls[-1] + step, f"click.{msg.tracking_token}", msg.tracking_token)
        heapq.heappush(heap, (max(dues) + step, next(state.seq), "click", click))


def schedule_signal(
    config: SandboxConfig, state: SandboxState, field: str, value: dict[str, Any], now: float
) -> None:
    """Put one signal webhook (``field`` with its ``value``) on the heap, due after ``webhook_delay_s``."""
    if not config.webhook_url:
        return
    item = (field, value, time.time())
    heapq.heappush(state.heap, (now + config.webhook_delay_s, next(state.seq), "signal", item))


def _status_object(item: tuple[Any, ...]) -> dict[str, Any]:
    """One ``statuses[]`` object: ``recipient_id`` (omitted for a send by BSUID, whose number Meta does
    not share), ``recipient_user_id``, ``pricing`` with ``type`` and, for a costed message, ``cost``."""
    wamid, status, wall, recipient, category, code, *rest = item
    callback, user_id, cost = (*rest, None, None, None)[:3]
    obj: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(wall))}
    if recipient.isdigit():
        obj["recipient_id"] = recipient
    if isinstance(user_id, str):
        obj["recipient_user_id"] = user_id
    if isinstance(callback, str):
        obj["biz_opaque_callback_data"] = callback
    if category is not None or cost is not None:
        obj["pricing"] = {"billable": True, "pricing_model": "PMP", "type": "regular"}
        if category is not None:
            obj["pricing"]["category"] = category
        if cost is not None:
            obj["pricing"]["cost"] = {"amount": cost, "currency": "USD"}
    if code is not None:
        message = error_title(code)
        obj["errors"] = [
            {
                "code": code,
                "title": message,
                "message": message,
                "error_data": {"details": FAILURE_DETAILS.get(code, message)},
                "href": _ERROR_DOCS,
            }
        ]
    return obj


def _click_object(item: tuple[Any, ...]) -> dict[str, Any]:
    _wamid, wall, click_id, token = item
    return {
        "action_type": "marketing_messages_link_click",
        "timestamp": str(int(wall)),
        "marketing_messages_link_click_data": {
            "click_component": "cta",
            "click_id": click_id,
            "tracking_token": token,
        },
    }


def build_payload(
    events: Sequence[tuple[Any, ...]],
    *,
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    statuses_per_change: int = 1,
) -> dict[str, Any]:
    """Meta's ``whatsapp_business_account`` webhook body for a batch of heap events."""
    metadata = {
        "display_phone_number": "".join(ch for ch in display_phone_number if ch.isdigit()),
        "phone_number_id": phone_number_id,
    }
    statuses = [_status_object(e[3]) for e in events if e[2] == "status"]
    actions = [_click_object(e[3]) for e in events if e[2] == "click"]
    entries: list[dict[str, Any]] = []
    for key, items in (("statuses", statuses), ("user_actions", actions)):
        for chunk in _chunks(items, statuses_per_change):
            value = {"messaging_product": "whatsapp", "metadata": metadata, key: list(chunk)}
            entries.append({"id": waba_id, "changes": [{"value": value, "field": "messages"}]})
    for field, value, wall in (e[3] for e in events if e[2] == "signal"):
        # Fields other than messages carry the entry's time (Meta's time of the change).
        entries.append({"id": waba_id, "time": int(wall), "changes": [{"value": value, "field": field}]})
    return {"object": "whatsapp_business_account", "entry": entries}


def _signed_body(batch: list[tuple[Any, ...]], cfg: SandboxConfig) -> tuple[bytes, dict[str, str]]:
    """The JSON body of a delivery and its headers (signature included)."""
    payload = build_payload(
        batch,
        waba_id=cfg.waba_id,
        phone_number_id=cfg.phone_number_id,
        display_phone_number=cfg.display_phone_number,
        statuses_per_change=cfg.webhook_statuses_per_change,
    )
    body = json.dumps(payload, separators=(",", ":")).encode()
    return body, {
        "User-Agent": "facebookexternalua",
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, cfg.app_secret),
    }


def _post(client: Any, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST one delivery (blocking: run on a thread); its HTTP status."""
    response = client.request("POST", url, body=body, headers=headers, timeout=timeout, redirect=False)
    return int(response.status)


class WebhookEmitter:
    """Background task delivering due webhook events of the sandbox's current state."""

    def __init__(self, ctx: SandboxContext) -> None:
        self._ctx = ctx
        self._client: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_size = 0

    async def run(self) -> None:
        """Loop forever: collect due events into batches and deliver them."""
        import urllib3

        # Deliveries are built and posted on threads of their own (a blocking pool; its waits release
        # the interpreter lock): on the event loop, each would hold up the sends arriving meanwhile,
        # which then get stamped together, as bursts that no sender sent.
        self._client = urllib3.PoolManager(maxsize=16, retries=False)
        try:
            while True:
                await self._tick()
        finally:
            for task in list(self._tasks):
                task.cancel()
            self._client.clear()

    async def _tick(self) -> None:
        self._ctx.run_due_steps()
        cfg = self._ctx.config
        state = self._ctx.state
        heap = state.heap
        now = time.monotonic()
        # A batch holds what fell due within ``webhook_flush_s`` after its first event fell due.
        if not heap or not cfg.webhook_url or heap[0][0] + cfg.webhook_flush_s > now:
            wait = cfg.webhook_flush_s
            if heap and cfg.webhook_url:
                wait = min(wait, heap[0][0] + cfg.webhook_flush_s - now)
            await asyncio.sleep(max(wait, 0.002))
            return
        if self._semaphore is None or self._semaphore_size != cfg.webhook_concurrency:
            self._semaphore = asyncio.Semaphore(cfg.webhook_concurrency)
            self._semaphore_size = cfg.webhook_concurrency
        semaphore = self._semaphore
        await semaphore.acquire()
        # Count the batch before taking events off the heap, so an idle check never sees neither.
        state.pending_batches += 1
        batch: list[tuple[Any, ...]] = []
        now = time.monotonic()
        while heap and heap[0][0] <= now and len(batch) < cfg.webhook_batch_size:
            batch.append(heapq.heappop(heap))
        task = asyncio.get_running_loop().create_task(self._deliver(state, batch, semaphore))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, state: SandboxState, batch: list[tuple[Any, ...]], semaphore: asyncio.Semaphore
    ) -> None:
        try:
            if not batch:
                return
            cfg = self._ctx.config
            url = cfg.webhook_url
            if not url:
                return
            body, headers = await asyncio.to_thread(_signed_body, batch, cfg)
            kinds = [e[2] for e in batch]
            for attempt in range(cfg.webhook_max_attempts):
                try:
                    status = await asyncio.to_thread(
                        _post, self._client, url, body, headers, cfg.webhook_timeout_s
                    )
                    if 200 <= status < 300:
                        state.webhook_posts += 1
                        state.webhook_statuses += kinds.count("status")
                        state.webhook_actions += kinds.count("click")
                        state.webhook_signals += kinds.count("signal")
                        return
                    reason = f"HTTP {status}"
                except Exception as exc:  # any transport problem is a failed delivery
                    reason = type(exc).__name__
                state.webhook_failures += 1
                log.debug(
                    "webhook delivery to %s failed (%s), attempt %d", _redact_url(url), reason, attempt + 1
                )
                if attempt + 1 < cfg.webhook_max_attempts:
                    await asyncio.sleep(cfg.webhook_retry_s * 2**attempt)
            state.webhook_dropped += len(batch)
            log.warning(
                "webhook batch of %d events to %s dropped after retries", len(batch), _redact_url(url)
            )
        finally:
            state.pending_batches -= 1
            semaphore.release()


__all__ = [
    "FAILURE_DETAILS",
    "SIGNATURE_HEADER",
    "WebhookEmitter",
    "build_payload",
    "schedule_message",
    "schedule_signal",
    "sign_payload",
    "verify_signature",
]
