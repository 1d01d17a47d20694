"""The sandbox HTTP server: a Starlette app on uvicorn, run in a background thread.

All state changes happen synchronously inside request handlers on the server's single event loop,
so no locks are needed; other threads only read (copies) or swap whole objects (a new config, a
fresh state on reset), which are atomic.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import collections
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_wamm.graph.errors import error_title
from airflow_provider_wamm.sandbox.config import ForcedOutcome, SandboxConfig, parse_forced
from airflow_provider_wamm.sandbox.validation import CompiledTemplate, Problem, check_payload, normalize_to
from airflow_provider_wamm.sandbox.webhooks import WebhookEmitter, schedule_message

log = logging.getLogger(__name__)

_JSON_HEADERS = {"content-type": "application/json; charset=UTF-8"}
_TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
_HTTP_STATUS = {
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
_PHONE_DEFAULT_FIELDS = (
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "platform_type",
    "throughput",
    "id",
)
_WABA_DEFAULT_FIELDS = ("id", "name", "timezone_id", "message_template_namespace")
_TEMPLATE_FIELDS = ("name", "parameter_format", "components", "language", "status", "category", "id")
_MM_PRODUCT_TYPES = frozenset({"MARKETING_MESSAGES_LITE_API", "MARKETING_MESSAGES_API_FOR_WHATSAPP"})
_ANALYTICS_METRICS = ("SENT", "DELIVERED", "READ", "CLICKED", "COST")


@dataclass(slots=True)
class SandboxMessage:
    """One message the sandbox accepted (a send it answered 200, or would have: see lost answers)."""

    wamid: str
    """The ``wamid.…`` it answered."""
    to: str
    """Recipient digits as WhatsApp answers them in ``wa_id`` (or the BSUID when sent by ``recipient``)."""
    input: str
    """``to`` (or ``recipient``) exactly as sent."""
    template: str
    """Template name."""
    language: str
    """Template language code."""
    template_id: str
    """Id of the template."""
    payload: dict[str, Any]
    """The request body."""
    message_status: str
    """``accepted``, ``held_for_quality_assessment`` or ``paused``."""
    outcome: str
    """Final outcome: ``sent``, ``delivered``, ``read`` or ``failed:<code>``."""
    pricing_category: str
    """``marketing_lite`` (MM API) or ``marketing`` (routed to Cloud API)."""
    clicked: bool
    """Whether the recipient clicks (a ``marketing_messages_link_click`` user action)."""
    tracking_token: str
    """``tracking_token`` of its click event."""
    monotonic: float
    """``time.monotonic()`` when accepted (rate windows are measured on it)."""
    timestamp: float
    """Wall-clock ``time.time()`` when accepted."""
    answer: str = "ok"
    """What the client got: ``ok``, ``lost`` (connection closed or never answered) or ``slow``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view (admin endpoint)."""
        return {name: getattr(self, name) for name in self.__slots__}


class _State:
    """Everything recorded since the last reset."""

    def __init__(self, seed: int) -> None:
        self.messages: list[SandboxMessage] = []
        self.window: collections.deque[float] = collections.deque()
        self.pair: dict[str, list[float]] = {}
        self.forced_attempts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[int] = collections.Counter()
        self.requests = 0
        self.rng = random.Random(seed)
        self.salt = secrets.token_hex(3)
        self.wamid_seq = itertools.count(1)
        self.heap: list[tuple[Any, ...]] = []
        self.seq = itertools.count()
        self.pending_batches = 0
        self.webhook_posts = 0
        self.webhook_statuses = 0
        self.webhook_actions = 0
        self.webhook_failures = 0
        self.webhook_dropped = 0


@dataclass
class _Runtime:
    """A configuration with what is derived from it (swapped as a whole)."""

    config: SandboxConfig
    templates: dict[tuple[str, str], CompiledTemplate] = field(default_factory=dict)
    outcome_table: list[tuple[float, str]] = field(default_factory=list)
    forced: dict[str, ForcedOutcome] = field(default_factory=dict)
    fault_total: float = 0.0

    @classmethod
    def build(cls, config: SandboxConfig) -> _Runtime:
        templates = {(t.name, t.language): CompiledTemplate.build(t) for t in config.templates.values()}
        total = sum(config.outcomes.values())
        table: list[tuple[float, str]] = []
        acc = 0.0
        for outcome, weight in config.outcomes.items():
            acc += weight / total
            table.append((acc, outcome))
        forced = {k: parse_forced(v) for k, v in config.forced_outcomes.items()}
        faults = (
            config.fault_drop_rate
            + config.fault_5xx_rate
            + config.fault_transient_rate
            + config.fault_throttle_rate
            + config.fault_lost_response_rate
            + config.fault_slow_rate
        )
        return cls(config, templates, table, forced, faults)


def _unit(seed: int, salt: str, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}|{salt}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"))
    return Response(body, status_code=status, headers={**_JSON_HEADERS, **(headers or {})})


def _trace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(15)).decode().rstrip("=")


def _split_fields(value: str | None) -> list[str]:
    """Top-level names of a Graph ``fields`` list (``a,b{c,d},e.limit(2)`` -> a, b, e)."""
    if not value:
        return []
    names: list[str] = []
    depth = 0
    current = ""
    for ch in value:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        if ch == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += ch
    names.append(current)
    result = []
    for name in names:
        base = name.strip().split("{", 1)[0].split(".", 1)[0].strip()
        if base:
            result.append(base)
    return result


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not text.startswith("offset:") or not text[7:].isdigit():
        return None
    return int(text[7:])


def _parse_day(value: str | None, name: str) -> int:
    """Unix seconds (or YYYY-MM-DD) snapped to 00:00 UTC."""
    if value is None or value == "":
        raise ValueError(f"The parameter {name} is required.")
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"Invalid parameter {name}: must be a unix timestamp or YYYY-MM-DD") from None
        seconds = calendar.timegm(day.timetuple())
    return seconds - seconds % 86400


def _parse_list(value: str | None) -> list[str]:
    """A Graph list parameter: JSON array (``["1","2"]``) or comma-separated."""
    if not value:
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = text.strip("[]").split(",")
        return [str(i).strip().strip('"') for i in items if str(i).strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


class _Dropped(Response):
    """Marks a request whose connection was closed: nothing more is sent for it."""


class _GraphFailure(Exception):
    """Raised inside handlers to answer a Graph error."""

    def __init__(self, response: Response, code: int | None) -> None:
        super().__init__(code)
        self.response = response
        self.code = code


class Sandbox:
    """A local stand-in for the Graph API's marketing-message endpoints, served over real HTTP.

    Use it as a context manager (``with Sandbox() as sb: ... sb.url``) or call :meth:`start` and
    :meth:`stop`. ``config`` (or keyword changes of :class:`SandboxConfig`) sets it up; ``host`` and
    ``port`` (0: any free port) say where it listens.
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, **changes: Any
    ) -> None:
        base = config or SandboxConfig()
        self._runtime = _Runtime.build(base.replace(**changes) if changes else base)
        self._state = _State(self._runtime.config.seed)
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None
        self._app = self._build_app()

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 15.0) -> Sandbox:
        """Start serving in a background thread; returns once the socket accepts connections."""
        if self._thread is not None:
            return self
        import uvicorn

        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            http="auto",
            interface="asgi3",
            proxy_headers=False,
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level=None,
            server_header=False,
            date_header=False,
            timeout_keep_alive=75,
            timeout_graceful_shutdown=1,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="wamm-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._startup_error is not None or not self._thread.is_alive():
                raise RuntimeError(f"sandbox failed to start: {self._startup_error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start in time")
            time.sleep(0.005)
        return self

    def _run(self, sock: socket.socket) -> None:
        loop: asyncio.AbstractEventLoop
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:
            self._startup_error = exc
            log.exception("sandbox server stopped with an error")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    async def _serve(self, sock: socket.socket) -> None:
        emitter = WebhookEmitter(self)
        task = asyncio.get_running_loop().create_task(emitter.run())
        try:
            await self._server.serve(sockets=[sock])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (in-flight hung answers are cut after about a second)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox(url={self.url!r}, running={self._thread is not None})"

    # ------------------------------------------------------------------ public API
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the Graph paths follow: ``/v23.0/...``)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return self._port

    @property
    def config(self) -> SandboxConfig:
        """The configuration in force (replace it with :meth:`configure`, do not mutate it)."""
        return self._runtime.config

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change settings at once (validated); e.g. ``configure(token_expired=True, mps_cap=20)``."""
        if "templates" in changes:
            from airflow_provider_wamm.sandbox.config import normalize_templates

            changes["templates"] = normalize_templates(changes["templates"])
        return self._install(self._runtime.config.replace(**changes))

    def _install(self, config: SandboxConfig) -> SandboxConfig:
        """Swap in a configuration (one atomic assignment); a new seed reseeds the fault RNG."""
        reseed = config.seed != self._runtime.config.seed
        self._runtime = _Runtime.build(config)
        if reseed:
            self._state.rng.seed(config.seed)
        return config

    def reset(self, config: SandboxConfig | None = None) -> None:
        """Forget every message, counter, pending webhook and limit; optionally install ``config`` too."""
        if config is not None:
            self._install(config)
        self._state = _State(self._runtime.config.seed)

    @property
    def messages(self) -> list[SandboxMessage]:
        """A copy of the list of accepted messages, in order of acceptance."""
        return list(self._state.messages)

    def sends_per_recipient(self) -> collections.Counter[str]:
        """How many messages each recipient was sent (a value above 1 is a duplicate)."""
        return collections.Counter(m.to for m in list(self._state.messages))

    def errors(self) -> collections.Counter[int]:
        """How many times each Graph error code was answered since the last reset."""
        return collections.Counter(self._state.errors)

    def max_window_count(self, window_s: float = 1.0) -> int:
        """Most messages accepted within any ``window_s`` seconds (the same measure as the cap)."""
        stamps = [m.monotonic for m in list(self._state.messages)]
        best = 0
        start = 0
        for end, stamp in enumerate(stamps):
            while stamps[start] <= stamp - window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def expected_outcome(self, to: str) -> str:
        """The outcome a message to ``to`` will get (forced outcome first, then the seeded hash)."""
        key = normalize_to(to) or to
        forced = self._runtime.forced.get(key)
        if forced is not None and forced.outcome is not None:
            return forced.outcome
        return self._hash_outcome(key)

    def wait_webhooks_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every scheduled webhook was delivered (or dropped); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = self._state
            if state.pending_batches == 0 and (not state.heap or not self._runtime.config.webhook_url):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def webhook_stats(self) -> dict[str, int]:
        """Counters of webhook delivery since the last reset."""
        state = self._state
        return {
            "pending": len(state.heap),
            "in_flight_batches": state.pending_batches,
            "posts": state.webhook_posts,
            "statuses": state.webhook_statuses,
            "user_actions": state.webhook_actions,
            "failures": state.webhook_failures,
            "dropped": state.webhook_dropped,
        }

    def counts(self, *, per_recipient: bool = False) -> dict[str, Any]:
        """A summary: accepted, duplicates, errors by code, window maximum, outcomes, webhooks."""
        state = self._state
        msgs = list(state.messages)
        per = collections.Counter(m.to for m in msgs)
        data: dict[str, Any] = {
            "requests": state.requests,
            "accepted": len(msgs),
            "recipients": len(per),
            "duplicates": {to: n for to, n in per.items() if n > 1},
            "max_window_count": self.max_window_count(),
            "errors": {str(k): v for k, v in sorted(state.errors.items())},
            "by_outcome": dict(collections.Counter(m.outcome for m in msgs)),
            "by_message_status": dict(collections.Counter(m.message_status for m in msgs)),
            "by_answer": dict(collections.Counter(m.answer for m in msgs)),
            "webhooks": self.webhook_stats(),
        }
        if per_recipient:
            data["per_recipient"] = dict(per)
        return data

    # ------------------------------------------------------------------ helpers
    def _unit(self, salt: str, key: str) -> float:
        return _unit(self._runtime.config.seed, salt, key)

    def _hash_outcome(self, key: str) -> str:
        u = self._unit("outcome", key)
        table = self._runtime.outcome_table
        for bound, outcome in table:
            if u < bound:
                return outcome
        return table[-1][1]

    def _error(
        self,
        code: int,
        details: str | None = None,
        *,
        message: str | None = None,
        subcode: int | None = None,
        error_type: str = "OAuthException",
        status: int | None = None,
    ) -> _GraphFailure:
        error: dict[str, Any] = {
            "message": message or f"(#{code}) {error_title(code)}",
            "type": error_type,
            "code": code,
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        if code in _TRANSIENT_CODES or code in (4, 130429):
            error["is_transient"] = True
        if details:
            error["error_data"] = {"messaging_product": "whatsapp", "details": details}
        error["fbtrace_id"] = _trace_id()
        if status is None:
            status = _HTTP_STATUS.get(code, 400)
            if code == 130429:
                status = self._runtime.config.rate_limit_http_status
        return _GraphFailure(_json(status, {"error": error}), code)

    def _problem(self, problem: Problem) -> _GraphFailure:
        return self._error(problem.code, problem.details)

    def _authenticate(self, request: Request, cfg: SandboxConfig) -> None:
        header = request.headers.get("authorization", "")
        token = (
            header[7:].strip()
            if header[:7].lower() == "bearer "
            else request.query_params.get("access_token")
        )
        if not token:
            raise self._error(
                190,
                message="An active access token must be used to query information about the current user.",
            )
        if not secrets.compare_digest(token.encode(), cfg.access_token.encode()):
            raise self._error(190, message="Invalid OAuth access token - Cannot parse access token")
        if cfg.token_expired:
            raise self._token_expired()

    def _token_expired(self) -> _GraphFailure:
        now = dt.datetime.now(dt.UTC)
        stamp = "%A, %d-%b-%y %H:%M:%S"
        message = (
            f"Error validating access token: Session has expired on {now - dt.timedelta(minutes=5):{stamp}} "
            f"UTC. The current time is {now:{stamp}} UTC."
        )
        return self._error(190, message=message, subcode=463)

    def _unknown_node(self, node: str, method: str = "get") -> _GraphFailure:
        return self._error(
            100,
            message=(
                f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation."
            ),
            subcode=33,
            error_type="GraphMethodException",
        )

    async def _delay(self, cfg: SandboxConfig, state: _State) -> None:
        latency = cfg.latency_s
        if cfg.latency_jitter_s:
            latency += state.rng.random() * cfg.latency_jitter_s
        if latency > 0:
            await asyncio.sleep(latency)

    async def _drop(self, request: Request) -> Response:
        """Close the client's connection without an answer."""
        send = request.scope.get("wamm.send")
        # uvicorn's ``send`` is a method of its per-request cycle, which holds the connection.
        cycle: Any = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:  # not uvicorn: the closest we can do is never answering
            await asyncio.sleep(self._runtime.config.hang_s)
            return _Dropped(status_code=504)
        transport.abort()
        with contextlib.suppress(AttributeError):
            cycle.disconnected = True  # uvicorn then neither answers nor logs an incomplete response
        await asyncio.sleep(0)
        return _Dropped(status_code=500)

    def _random_fault(self, cfg: SandboxConfig, state: _State) -> str | None:
        """One draw decides which fault (if any) this request gets."""
        r = state.rng.random()
        for name, rate in (
            ("drop", cfg.fault_drop_rate),
            ("5xx", cfg.fault_5xx_rate),
            ("transient", cfg.fault_transient_rate),
            ("throttle", cfg.fault_throttle_rate),
            ("lost", cfg.fault_lost_response_rate),
            ("slow", cfg.fault_slow_rate),
        ):
            if r < rate:
                return name
            r -= rate
        return None

    def _fault_error(self, kind: str, state: _State) -> _GraphFailure:
        choice = state.rng.randrange(3) if kind != "throttle" else state.rng.randrange(2)
        if kind == "5xx":
            if choice == 0:
                return self._error(2, "Service temporarily unavailable", status=500)
            if choice == 1:
                page = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
                return _GraphFailure(Response(page, status_code=502, media_type="text/html"), None)
            return _GraphFailure(Response(b"", status_code=503), None)
        if kind == "transient":
            code = (1, 2, 131000)[choice]
            return self._error(code, "Temporary error, please retry", status=503 if code == 2 else 500)
        code = (4, 130429)[choice]
        details = "Application request limit reached" if code == 4 else "Message throughput limit reached"
        return self._error(code, details)

    # ------------------------------------------------------------------ app
    def _build_app(self) -> Starlette:
        routes = [
            Route("/_sandbox/health", self._admin_health, methods=["GET"]),
            Route("/_sandbox/messages", self._admin_messages, methods=["GET"]),
            Route("/_sandbox/counts", self._admin_counts, methods=["GET"]),
            Route("/_sandbox/reset", self._admin_reset, methods=["POST"]),
            Route("/_sandbox/config", self._admin_config, methods=["GET", "POST"]),
            Route("/_sandbox/expected_outcome", self._admin_expected, methods=["GET"]),
            Route("/{version}/debug_token", self._debug_token, methods=["GET"]),
            Route("/{version}/{node}/marketing_messages", self._send, methods=["POST"]),
            Route("/{version}/{node}/message_templates", self._templates, methods=["GET"]),
            Route("/{version}/{node}/template_analytics", self._analytics, methods=["GET"]),
            Route("/{version}/{node}", self._node, methods=["GET"]),
            Route("/{path:path}", self._unsupported, methods=["GET", "POST", "DELETE"]),
        ]
        return Starlette(routes=routes)

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["wamm.send"] = send
        await self._app(scope, receive, send)

    async def _graph(
        self,
        request: Request,
        handler: Callable[[Request, SandboxConfig, _State], Any],
        *,
        is_send: bool = False,
    ) -> Response:
        """Common frame of the Graph endpoints: auth, faults on reads, latency, error answers."""
        runtime = self._runtime
        cfg = runtime.config
        state = self._state
        state.requests += 1
        try:
            self._authenticate(request, cfg)
            if not is_send and cfg.faults_on_reads and runtime.fault_total:
                fault = self._random_fault(cfg, state)
                if fault in ("drop", "lost"):
                    await self._delay(cfg, state)
                    return await self._drop(request)
                if fault in ("5xx", "transient", "throttle"):
                    raise self._fault_error(fault, state)
                if fault == "slow":
                    await asyncio.sleep(cfg.slow_response_s)
            result = handler(request, cfg, state)
            if asyncio.iscoroutine(result):
                result = await result
            response: Response = result
        except _GraphFailure as failure:
            if failure.code is not None:
                state.errors[failure.code] += 1
            response = failure.response
        if isinstance(response, _Dropped):
            return response
        await self._delay(cfg, state)
        return response

    # ------------------------------------------------------------------ POST marketing_messages
    async def _send(self, request: Request) -> Response:
        body = await request.body()
        return await self._graph(request, lambda r, c, s: self._send_inner(r, c, s, body), is_send=True)

    async def _send_inner(self, request: Request, cfg: SandboxConfig, state: _State, body: bytes) -> Response:
        runtime = self._runtime
        node = request.path_params["node"]
        if node != cfg.phone_number_id:
            raise self._unknown_node(node, "post")
        payload: Any
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            raise self._error(100, "The request body is not valid JSON.") from None
        problem = check_payload(payload)
        if problem:
            raise self._problem(problem)
        template = payload["template"]
        name = template["name"]
        language = template["language"]["code"]
        compiled = runtime.templates.get((name, language))
        if compiled is None or compiled.template.status not in ("APPROVED", "PAUSED", "DISABLED"):
            raise self._error(132001, f"template name ({name}) does not exist in {language}")
        tpl = compiled.template
        if tpl.status == "PAUSED":
            raise self._error(132015, f"template {name} ({language}) is paused")
        if tpl.status == "DISABLED":
            raise self._error(132016, f"template {name} ({language}) is disabled")
        if tpl.category != "MARKETING":
            raise self._error(
                134100, f"template {name} is in category {tpl.category}; only MARKETING templates can be sent"
            )
        problem = compiled.check(template.get("components", []))
        if problem:
            raise self._problem(problem)

        raw_to = payload.get("to")
        if raw_to is not None:
            key = normalize_to(raw_to) or raw_to
            given = raw_to
        else:
            key = given = payload["recipient"]
        forced = runtime.forced.get(key)
        action = None
        if forced is not None and forced.action is not None:
            state.forced_attempts[key] += 1
            if forced.times is None or state.forced_attempts[key] <= forced.times:
                action = forced.action
        elif runtime.fault_total:
            action = self._random_fault(cfg, state)
        if action == "error":
            assert forced is not None and forced.code is not None
            raise self._error(forced.code, f"Forced error for this recipient ({forced.code})")
        if action == "drop":
            await self._delay(cfg, state)
            return await self._drop(request)
        if action in ("5xx", "transient", "throttle"):
            raise self._fault_error(action, state)

        now = time.monotonic()
        if cfg.mps_cap is not None:
            window = state.window
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= cfg.mps_cap:
                raise self._error(130429, "Message throughput limit of this phone number reached")
        if cfg.pair_limit:
            bucket = state.pair.get(key)
            if bucket is None:
                bucket = state.pair[key] = [float(cfg.pair_burst), now]
            else:
                bucket[0] = min(float(cfg.pair_burst), bucket[0] + (now - bucket[1]) / cfg.pair_interval_s)
                bucket[1] = now
            if bucket[0] < 1.0:
                raise self._error(
                    131056,
                    "Message failed to send because there were too many messages sent "
                    "from this phone number to the same phone number in a short period of time.",
                )
            bucket[0] -= 1.0
        if cfg.mps_cap is not None:
            state.window.append(now)

        message_status = tpl.message_status
        if forced is not None and forced.message_status is not None:
            message_status = forced.message_status
        if forced is not None and forced.outcome is not None:
            outcome = forced.outcome
        else:
            outcome = self._hash_outcome(key)
        fallback = cfg.onboarding_status != "ONBOARDED" or (
            cfg.cloud_api_fallback_rate > 0 and self._unit("fallback", key) < cfg.cloud_api_fallback_rate
        )
        seq = next(state.wamid_seq)
        wamid = "wamid." + base64.urlsafe_b64encode(
            f"{cfg.phone_number_id}:{key}:{state.salt}:{seq:08d}".encode()
        ).decode().rstrip("=")
        msg = SandboxMessage(
            wamid=wamid,
            to=key,
            input=given,
            template=name,
            language=language,
            template_id=tpl.id or "",
            payload=payload,
            message_status=message_status,
            outcome=outcome,
            pricing_category="marketing" if fallback else "marketing_lite",
            clicked=outcome == "read" and self._unit("click", key) < cfg.click_rate,
            tracking_token=hashlib.blake2b(wamid.encode(), digest_size=12).hexdigest(),
            monotonic=now,
            timestamp=time.time(),
        )
        state.messages.append(msg)
        if cfg.webhook_url:
            schedule_message(self, state, msg, now)

        if action == "lost":
            msg.answer = "lost"
            mode = cfg.lost_response_mode
            if mode == "mixed":
                mode = "drop" if state.rng.random() < 0.5 else "hang"
            action = mode
        if action in ("drop", "hang"):
            msg.answer = "lost"
            if action == "hang":
                await asyncio.sleep(cfg.hang_s)
            else:
                await self._delay(cfg, state)
            return await self._drop(request)
        if action == "slow":
            msg.answer = "slow"
            await asyncio.sleep(cfg.slow_response_s)
        contact: dict[str, str] = {"input": given}
        if raw_to is not None:
            contact["wa_id"] = key
        else:
            contact["user_id"] = key
        return _json(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [contact],
                "messages": [{"id": wamid, "message_status": message_status}],
            },
        )

    async def _unsupported(self, request: Request) -> Response:
        def fail(request: Request, cfg: SandboxConfig, state: _State) -> Response:
            raise self._error(
                100,
                message=f"Unsupported {request.method.lower()} request: {request.url.path} is not served by "
                "the sandbox.",
                subcode=33,
                error_type="GraphMethodException",
            )

        return await self._graph(request, fail)

    # ------------------------------------------------------------------ GET nodes
    async def _node(self, request: Request) -> Response:
        return await self._graph(request, self._node_inner)

    def _node_inner(self, request: Request, cfg: SandboxConfig, state: _State) -> Response:
        node = request.path_params["node"]
        if node == cfg.phone_number_id:
            values: dict[str, Any] = {
                "id": cfg.phone_number_id,
                "verified_name": cfg.verified_name,
                "code_verification_status": "VERIFIED",
                "display_phone_number": cfg.display_phone_number,
                "quality_rating": cfg.quality_rating,
                "platform_type": "CLOUD_API",
                "throughput": {"level": cfg.throughput_level},
                "name_status": "APPROVED",
                "status": "CONNECTED",
                "account_mode": "LIVE",
                "is_official_business_account": False,
                "messaging_limit_tier": cfg.messaging_limit,
                "whatsapp_business_manager_messaging_limit": cfg.messaging_limit,
                "health_status": {
                    "can_send_message": "AVAILABLE",
                    "entities": [
                        {
                            "entity_type": "PHONE_NUMBER",
                            "id": cfg.phone_number_id,
                            "can_send_message": "AVAILABLE",
                        }
                    ],
                },
            }
            return self._select(values, request, _PHONE_DEFAULT_FIELDS, "WhatsAppBusinessPhoneNumber")
        if node == cfg.waba_id:
            values = {
                "id": cfg.waba_id,
                "name": cfg.waba_name,
                "timezone_id": "1",
                "message_template_namespace": "sandbox_namespace",
                "currency": "USD",
                "account_review_status": "APPROVED",
                "business_verification_status": "verified",
                "ownership_type": "SELF",
                "country": "US",
                "marketing_messages_onboarding_status": cfg.onboarding_status,
                "marketing_messages_lite_api_status": cfg.onboarding_status
                if cfg.onboarding_status in ("ONBOARDED", "ELIGIBLE")
                else "INELIGIBLE",
                "disable_marketing_messages_on_cloud_api": False,
                "is_enabled_for_insights": True,
                "health_status": {
                    "can_send_message": "AVAILABLE",
                    "entities": [{"entity_type": "WABA", "id": cfg.waba_id, "can_send_message": "AVAILABLE"}],
                },
            }
            return self._select(values, request, _WABA_DEFAULT_FIELDS, "WhatsAppBusinessAccount")
        raise self._unknown_node(node)

    def _select(
        self, values: dict[str, Any], request: Request, defaults: tuple[str, ...], node_type: str
    ) -> Response:
        requested = _split_fields(request.query_params.get("fields"))
        for name in requested:
            if name not in values:
                raise self._error(
                    100,
                    message=f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})",
                )
        names = requested or list(defaults)
        data = {n: values[n] for n in names}
        data["id"] = values["id"]
        return _json(200, data)

    # ------------------------------------------------------------------ GET message_templates
    async def _templates(self, request: Request) -> Response:
        return await self._graph(request, self._templates_inner)

    def _templates_inner(self, request: Request, cfg: SandboxConfig, state: _State) -> Response:
        node = request.path_params["node"]
        if node != cfg.waba_id:
            raise self._unknown_node(node)
        params = request.query_params
        name = (params.get("name") or "").lower()
        language = params.get("language")
        statuses = {s.upper() for s in _parse_list(params.get("status"))}
        categories = {c.upper() for c in _parse_list(params.get("category"))}
        rows = []
        for tpl in sorted(self._runtime.config.templates.values(), key=lambda t: (t.name, t.language)):
            if name and name not in tpl.name:
                continue
            if language and tpl.language != language:
                continue
            if statuses and tpl.status not in statuses:
                continue
            if categories and tpl.category not in categories:
                continue
            rows.append(tpl.to_meta())
        try:
            limit = int(params.get("limit", "25"))
        except ValueError:
            raise self._error(100, "Invalid parameter limit: must be an integer") from None
        if not 1 <= limit <= 1000:
            raise self._error(100, "Invalid parameter limit: must be between 1 and 1000")
        offset = 0
        if params.get("after"):
            decoded = _decode_cursor(params["after"])
            if decoded is None:
                raise self._error(100, "Invalid parameter after: the cursor is not valid")
            offset = decoded
        requested = _split_fields(params.get("fields"))
        for field_name in requested:
            if field_name not in _TEMPLATE_FIELDS:
                raise self._error(
                    100,
                    message=f"(#100) Tried accessing nonexisting field ({field_name}) on node type "
                    "(WhatsAppMessageTemplate)",
                )
        page = rows[offset : offset + limit]
        if requested:
            page = [{k: row[k] for k in (*requested, "id") if k in row} for row in page]
        data: dict[str, Any] = {"data": page}
        if page:
            end = offset + len(page)
            paging: dict[str, Any] = {
                "cursors": {"before": _encode_cursor(offset), "after": _encode_cursor(end)}
            }
            if end < len(rows):
                paging["next"] = str(request.url.include_query_params(after=_encode_cursor(end), limit=limit))
            if offset > 0:
                paging["previous"] = str(
                    request.url.remove_query_params("after").include_query_params(
                        before=_encode_cursor(max(0, offset - limit)), limit=limit
                    )
                )
            data["paging"] = paging
        return _json(200, data)

    # ------------------------------------------------------------------ GET template_analytics
    async def _analytics(self, request: Request) -> Response:
        return await self._graph(request, self._analytics_inner)

    def _analytics_inner(self, request: Request, cfg: SandboxConfig, state: _State) -> Response:
        node = request.path_params["node"]
        if node != cfg.waba_id:
            raise self._unknown_node(node)
        params = request.query_params
        try:
            start = _parse_day(params.get("start"), "start")
            end = _parse_day(params.get("end"), "end")
        except ValueError as exc:
            raise self._error(100, str(exc)) from None
        if end <= start:
            end = start + 86400
        if (end - start) // 86400 > 90:
            raise self._error(100, "Invalid parameter: the period cannot be longer than 90 days")
        if (params.get("granularity") or "DAILY").upper() != "DAILY":
            raise self._error(100, "Invalid parameter granularity: only DAILY is supported")
        template_ids = _parse_list(params.get("template_ids"))
        if not template_ids:
            raise self._error(100, "The parameter template_ids is required.")
        if len(template_ids) > 10:
            raise self._error(100, "Invalid parameter template_ids: at most 10 template ids")
        metrics = [m.upper() for m in _parse_list(params.get("metric_types"))] or list(_ANALYTICS_METRICS)
        product_type = (params.get("product_type") or "CLOUD_API").upper()
        category = "marketing_lite" if product_type in _MM_PRODUCT_TYPES else "marketing"
        wanted = set(template_ids)
        buttons: dict[str, str] = {}
        for tpl in cfg.templates.values():
            if tpl.id in wanted:
                url_buttons = [b for b in tpl.buttons if str(b.get("type", "")).upper() == "URL"]
                buttons[tpl.id or ""] = str(url_buttons[0].get("text", "Link")) if url_buttons else "Link"
        counts: dict[tuple[str, int], list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
        for msg in list(state.messages):
            if msg.template_id not in wanted or msg.pricing_category != category:
                continue
            day = int(msg.timestamp) - int(msg.timestamp) % 86400
            if not start <= day < end:
                continue
            row = counts[(msg.template_id, day)]
            outcome = msg.outcome
            if outcome.startswith("failed:"):
                continue
            row[0] += 1
            if outcome in ("delivered", "read"):
                row[1] += 1
            if outcome == "read":
                row[2] += 1
            if msg.clicked:
                row[3] += 1
        points = []
        for template_id in template_ids:
            for day in range(start, end, 86400):
                sent, delivered, read, clicked = counts.get((template_id, day), (0, 0, 0, 0))
                point: dict[str, Any] = {"template_id": template_id, "start": day, "end": day + 86400}
                if "SENT" in metrics:
                    point["sent"] = sent
                if "DELIVERED" in metrics:
                    point["delivered"] = delivered
                if "READ" in metrics:
                    point["read"] = read
                if "CLICKED" in metrics and clicked:
                    point["clicked"] = [
                        {
                            "type": "url_button",
                            "button_content": buttons.get(template_id, "Link"),
                            "count": clicked,
                        }
                    ]
                if "COST" in metrics:
                    spent = round(delivered * cfg.price_per_message, 4)
                    cost = [{"type": "amount_spent", "value": spent}]
                    if delivered:
                        cost.append({"type": "cost_per_delivered", "value": round(spent / delivered, 4)})
                    if clicked:
                        cost.append({"type": "cost_per_url_button_click", "value": round(spent / clicked, 4)})
                    point["cost"] = cost
                points.append(point)
        data = {
            "data": [{"granularity": "DAILY", "product_type": product_type.lower(), "data_points": points}],
            "paging": {"cursors": {"before": _encode_cursor(0), "after": _encode_cursor(len(points))}},
        }
        return _json(200, data)

    # ------------------------------------------------------------------ GET debug_token
    async def _debug_token(self, request: Request) -> Response:
        runtime = self._runtime
        cfg = runtime.config
        state = self._state
        state.requests += 1
        try:
            response = self._debug_token_inner(request, cfg)
        except _GraphFailure as failure:
            if failure.code is not None:
                state.errors[failure.code] += 1
            response = failure.response
        await self._delay(cfg, state)
        return response

    def _debug_token_inner(self, request: Request, cfg: SandboxConfig) -> Response:
        # An explicit ``access_token`` (usually the app token) wins over the Authorization header.
        header = request.headers.get("authorization", "")
        token = request.query_params.get("access_token") or (
            header[7:].strip() if header[:7].lower() == "bearer " else None
        )
        app_token = f"{cfg.app_id}|{cfg.app_secret}"
        if not token:
            raise self._error(190, message="An access token is required to request this resource.")
        valid_caller = secrets.compare_digest(token.encode(), app_token.encode()) or (
            secrets.compare_digest(token.encode(), cfg.access_token.encode()) and not cfg.token_expired
        )
        if not valid_caller:
            raise self._error(190, message="Invalid OAuth access token signature.")
        input_token = request.query_params.get("input_token")
        if not input_token:
            raise self._error(100, "The parameter input_token is required.")
        now = int(time.time())
        if not secrets.compare_digest(input_token.encode(), cfg.access_token.encode()):
            return _json(
                200,
                {
                    "data": {
                        "error": {"code": 190, "message": "Invalid OAuth access token."},
                        "is_valid": False,
                        "scopes": [],
                    }
                },
            )
        data: dict[str, Any] = {
            "app_id": cfg.app_id,
            "type": "SYSTEM_USER",
            "application": cfg.waba_name,
            "data_access_expires_at": 0,
            "expires_at": cfg.token_expires_at,
            "is_valid": not cfg.token_expired,
            "issued_at": now - 86400,
            "scopes": list(cfg.token_scopes),
            "granular_scopes": [
                {"scope": scope, "target_ids": [cfg.waba_id]}
                for scope in cfg.token_scopes
                if scope.startswith("whatsapp_")
            ],
            "user_id": "400000000000001",
        }
        if cfg.token_expired:
            data["expires_at"] = cfg.token_expires_at or now - 300
            data["error"] = {
                "code": 190,
                "message": "Error validating access token: Session has expired.",
                "subcode": 463,
            }
        return _json(200, {"data": data})

    # ------------------------------------------------------------------ admin
    async def _admin_health(self, request: Request) -> Response:
        return _json(
            200, {"ok": True, "phone_number_id": self.config.phone_number_id, "waba_id": self.config.waba_id}
        )

    async def _admin_messages(self, request: Request) -> Response:
        params = request.query_params
        msgs = list(self._state.messages)
        if params.get("to"):
            key = normalize_to(params["to"]) or params["to"]
            msgs = [m for m in msgs if m.to == key]
        try:
            offset = int(params.get("offset", "0"))
            limit = int(params.get("limit", "1000"))
        except ValueError:
            return _json(400, {"error": "offset and limit must be integers"})
        page = msgs[offset : offset + limit]
        return _json(200, {"total": len(msgs), "data": [m.to_dict() for m in page]})

    async def _admin_counts(self, request: Request) -> Response:
        per = request.query_params.get("per_recipient", "").lower() in ("1", "true", "yes")
        return _json(200, self.counts(per_recipient=per))

    async def _admin_expected(self, request: Request) -> Response:
        to = request.query_params.get("to")
        if not to:
            return _json(400, {"error": "the parameter to is required"})
        return _json(200, {"to": to, "outcome": self.expected_outcome(to)})

    async def _read_json(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        data = json.loads(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    async def _admin_reset(self, request: Request) -> Response:
        try:
            data = await self._read_json(request)
            config = None
            if data.get("defaults"):
                config = SandboxConfig.from_dict(data.get("config") or {})
            elif data.get("config"):
                config = SandboxConfig.from_dict(data["config"], base=self.config)
        except (ValueError, TypeError) as exc:
            return _json(400, {"error": str(exc)})
        self.reset(config)
        return _json(200, {"ok": True, "config": self.config.to_dict()})

    async def _admin_config(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                data = await self._read_json(request)
                self._install(SandboxConfig.from_dict(data, base=self.config))
            except (ValueError, TypeError) as exc:
                return _json(400, {"error": str(exc)})
        return _json(200, self.config.to_dict())
