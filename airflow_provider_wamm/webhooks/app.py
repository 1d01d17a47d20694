"""The webhook receiver: a FastAPI app that verifies Meta's webhooks and stores them in the ledger.

``GET /`` answers Meta's verification handshake; ``POST /`` takes the webhooks. A POST is checked in
this order, and nothing is stored unless every check passes:

1. size: ``Content-Length`` above the limit, or more bytes than the limit while reading -> 413
   (the body is never buffered beyond the limit);
2. signature: ``X-Hub-Signature-256`` over the raw bytes with the app secret -> 403 when absent or wrong;
3. JSON -> 400 when malformed; Meta's shape (an object with an ``entry`` list) -> 400 when not;
4. statuses, clicks and Meta's other signals (opt-outs, template and account events) are parsed item
   by item (bad items are skipped and counted, never a 5xx) and written to the ledger in one
   transaction per body (all of it or nothing), in a worker thread so the event loop stays free.

The ledger deduplicates and applies statuses monotonically, and stops and resumes in the order of
Meta's timestamps, so Meta's redeliveries and out-of-order batches are harmless. A failing database
answers 500, so Meta delivers the batch again later; a body with nothing usable in it answers 200 (it
would not get better by being sent again) and is logged.

Settings may be fixed (:class:`WebhookSettings`) or a callable returning them, called per request
(the Airflow plugin reads its connection that way, so a changed secret applies without a restart).
Secrets, bodies and phone numbers are never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.webhooks.parsing import ParsedWebhook, WebhookFormatError, parse_webhook
from airflow_provider_wamm.webhooks.signature import SIGNATURE_HEADER, verify_signature

log = logging.getLogger(__name__)

#: Largest body accepted by default (Meta batches up to 1,000 statuses, well under 1 MiB).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: Longest ``hub.challenge`` echoed back.
MAX_CHALLENGE_LENGTH = 1024


@dataclass(frozen=True, repr=False)
class WebhookSettings:
    """What the receiver needs: the secrets and where to store what arrives.

    The ``repr`` says which secrets are set, never their values.
    """

    app_secret: str | None
    """Meta app secret: the HMAC key of ``X-Hub-Signature-256``. Without it every POST is refused (503)."""
    verify_token: str | None
    """The verify token typed in the app's webhook settings. Without it every handshake is refused."""
    ledger: Ledger | None = None
    """The ledger to write to."""
    ledger_factory: Callable[[], Ledger] | None = field(default=None, compare=False)
    """Called once, on the first write, when ``ledger`` is not given (a lazily opened ledger)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest accepted body; larger ones get 413 without being read past the limit."""

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")

    def __repr__(self) -> str:
        return (
            f"WebhookSettings(app_secret={'***' if self.app_secret else None}, "
            f"verify_token={'***' if self.verify_token else None}, ledger={self.ledger!r}, "
            f"max_body_bytes={self.max_body_bytes})"
        )


#: Fixed settings, or a (sync) callable returning them, called for every request.
SettingsSource = WebhookSettings | Callable[[], WebhookSettings]


class _BodyTooLarge(Exception):
    pass


class _LedgerSlot:
    """The ledger of a settings object, opened at most once (``ledger_factory``) and then reused."""

    def __init__(self) -> None:
        self._key: int | None = None
        self._ledger: Ledger | None = None

    def get(self, settings: WebhookSettings) -> Ledger:
        if settings.ledger is not None:
            return settings.ledger
        if settings.ledger_factory is None:
            raise RuntimeError("the webhook receiver has no ledger configured")
        key = id(settings.ledger_factory)
        if self._ledger is None or self._key != key:
            self._ledger = settings.ledger_factory()
            self._key = key
        return self._ledger


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (``_BodyTooLarge``) as soon as more than ``limit`` bytes arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _BodyTooLarge
        except ValueError:
            pass  # a bogus header: the streamed count below still holds
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _first_line(exc: BaseException) -> str:
    """The exception's class and first message line (database errors list bound values further down)."""
    text = str(exc).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _has_records(parsed: ParsedWebhook) -> bool:
    return bool(parsed.statuses or parsed.clicks or parsed.signals)


def _store(ledger: Ledger, parsed: ParsedWebhook) -> None:
    """Write everything one body holds in one transaction: all of it or nothing."""

    def work() -> None:
        if parsed.statuses:
            ledger.record_statuses(parsed.statuses)
        if parsed.clicks:
            ledger.record_clicks(parsed.clicks)
        if parsed.signals:
            ledger.record_signals(parsed.signals)

    ledger.atomic(work)


class _Receiver:
    """The receiver's route handlers over one settings source and the ledger it opens."""

    def __init__(self, settings: SettingsSource) -> None:
        self.settings = settings
        self.slot = _LedgerSlot()

    async def current_settings(self) -> WebhookSettings | Response:
        """The settings of this request, or a 503 when they cannot be read."""
        try:
            if isinstance(self.settings, WebhookSettings):
                return self.settings
            return await run_in_threadpool(self.settings)
        except Exception as exc:
            # The connection may be missing or broken: say so without details that could hold secrets.
            log.error("WhatsApp webhook receiver is not configured: %s", _first_line(exc))
            return PlainTextResponse("webhook receiver not configured", status_code=503)

    async def verify(self, request: Request) -> Response:
        """Meta's verification handshake: echo ``hub.challenge`` when ``hub.verify_token`` matches."""
        resolved = await self.current_settings()
        if isinstance(resolved, Response):
            return resolved
        return _handshake(resolved, request)

    async def receive(self, request: Request) -> Response:
        """Verify, parse and store one webhook body."""
        started = time.perf_counter()
        resolved = await self.current_settings()
        if isinstance(resolved, Response):
            return resolved
        checked = await _signed_body(resolved, request)
        if isinstance(checked, Response):
            return checked
        parsed = _parse_body(checked)
        if isinstance(parsed, Response):
            return parsed
        if _has_records(parsed):
            try:
                ledger = await run_in_threadpool(self.slot.get, resolved)
                await run_in_threadpool(_store, ledger, parsed)
            except Exception as exc:
                log.error(
                    "Webhook batch (%d statuses, %d clicks, %d signals) not stored: %s; "
                    "Meta will deliver it again.",
                    len(parsed.statuses),
                    len(parsed.clicks),
                    sum(parsed.signals.counts().values()),
                    _first_line(exc),
                )
                return JSONResponse({"error": "could not store the batch"}, status_code=500)
        return _stored(parsed, started)


def _handshake(settings: WebhookSettings, request: Request) -> Response:
    """The answer to a verification request: the challenge, or 403/400."""
    params = request.query_params
    token = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    expected = settings.verify_token
    if not expected:
        log.warning("Webhook verification refused: no verify token is configured.")
        return PlainTextResponse("forbidden", status_code=403)
    if (
        params.get("hub.mode") != "subscribe"
        or token is None
        or not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8"))
    ):
        log.warning("Webhook verification refused: wrong mode or verify token.")
        return PlainTextResponse("forbidden", status_code=403)
    if challenge is None or len(challenge) > MAX_CHALLENGE_LENGTH:
        return PlainTextResponse("missing or oversized hub.challenge", status_code=400)
    log.info("Webhook verification handshake answered.")
    return PlainTextResponse(challenge, status_code=200)


async def _signed_body(settings: WebhookSettings, request: Request) -> bytes | Response:
    """The raw body once its size and signature are checked; else the refusal (413, 503, 403)."""
    try:
        body = await _read_body(request, settings.max_body_bytes)
    except _BodyTooLarge:
        log.warning("Webhook refused: body larger than %d bytes.", settings.max_body_bytes)
        return JSONResponse({"error": "body too large"}, status_code=413)
    if not settings.app_secret:
        log.error("Webhook refused: no app secret is configured, signatures cannot be verified.")
        return JSONResponse({"error": "webhook receiver not configured"}, status_code=503)
    if not verify_signature(body, request.headers.get(SIGNATURE_HEADER), settings.app_secret):
        log.warning("Webhook refused: missing or invalid %s.", SIGNATURE_HEADER)
        return JSONResponse({"error": "invalid signature"}, status_code=403)
    return body


def _parse_body(body: bytes) -> ParsedWebhook | Response:
    """The parsed statuses and clicks of a signed body; 400 for malformed JSON or another shape."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return JSONResponse({"error": "malformed JSON"}, status_code=400)
    try:
        return parse_webhook(payload)
    except WebhookFormatError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


def _stored(parsed: ParsedWebhook, started: float) -> Response:
    """Log what one body held and answer 200 with the counts (signal counts only when it had signals)."""
    counts = parsed.counts()
    signals = parsed.signals.counts()
    if parsed.signals:
        counts.update(signals)
    if counts["skipped"] and not _has_records(parsed):
        log.warning(
            "Webhook body ignored: none of its %d items could be understood (%d ignored as not for us).",
            counts["skipped"],
            counts["ignored"],
        )
    log.info(
        "Webhook stored: %d statuses, %d clicks, %d preferences, %d template events, "
        "%d account signals, %d skipped, %d ignored in %.1f ms.",
        counts["statuses"],
        counts["clicks"],
        signals["preferences"],
        signals["template_events"],
        signals["account_signals"],
        counts["skipped"],
        counts["ignored"],
        (time.perf_counter() - started) * 1000,
    )
    return JSONResponse(counts, status_code=200)


async def _health() -> dict[str, str]:
    """Liveness probe (no settings are read)."""
    return {"status": "ok"}


def create_app(settings: SettingsSource, *, title: str = "WhatsApp webhooks") -> FastAPI:
    """Build the receiver app.

    :param settings: a :class:`WebhookSettings`, or a callable returning one (called per request, in a
        worker thread, so it may read a connection; cache inside it if that is slow).
    :param title: title of the app's OpenAPI document.

    Routes: ``GET /`` (handshake), ``POST /`` (webhooks), ``GET /health`` (liveness, no secrets).
    """
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    receiver = _Receiver(settings)
    app.add_api_route("/", receiver.verify, methods=["GET"], response_class=PlainTextResponse)
    app.add_api_route("/", receiver.receive, methods=["POST"])
    app.add_api_route("/health", _health, methods=["GET"], name="health")
    return app


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_CHALLENGE_LENGTH",
    "SettingsSource",
    "WebhookSettings",
    "create_app",
]
