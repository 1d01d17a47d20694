"""What every fault test checks, and the tools to observe a campaign from both ends.

The sandbox's record (``Sandbox.messages``) is the truth about what "Meta" accepted; the ledger is what
the provider believes; :class:`Wire` sees, request by request, what the client got back. After a
campaign :func:`verify` compares the three:

* no recipient has two messages in the sandbox (``duplicates`` must be 0);
* every valid recipient has a final ledger state, and one message in the sandbox exactly when the
  ledger says Meta took it (``lost`` must be 0: no recipient silently dropped or wrongly recorded);
* the recipients the ledger reports ``unknown`` are exactly those whose answer never reached the
  client (the wire saw no answer, or a gateway error without a Graph body), and every message the
  sandbox recorded but whose answer it lost is among them;
* the counts of the runs equal the ledger's, and the ledger's equal the sandbox's.

Each check becomes a row of the fault table printed at the end of the test session.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import pathlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from unittest import mock

import uvicorn

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.campaign.sender import CampaignSettings
from airflow_provider_wamm.graph.client import GraphClient, SendRequest
from airflow_provider_wamm.graph.errors import GraphError, GraphTransportError, UnknownOutcomeError
from airflow_provider_wamm.graph.recipients import mask_phone
from airflow_provider_wamm.sandbox import Sandbox

SENT_STATES = frozenset(L.DELIVERED_TO_META)
#: The sandbox template the fault campaigns send: one named body parameter.
TEMPLATE = "welcome_named"
LANGUAGE = "en_US"


# --- recipients ------------------------------------------------------------------------------------


def phone(i: int) -> str:
    """A valid German mobile number, written as a person would."""
    return f"+49 151 {i:08d}"


def digits(i: int) -> str:
    """The same number as the ledger and the sandbox key it (E.164 digits)."""
    return f"49151{i:08d}"


@dataclasses.dataclass
class Audience:
    """The input rows of a campaign and the recipients that must end up with one message each."""

    rows: list[dict[str, Any]]
    """What the campaign reads (valid rows, duplicates and broken rows mixed)."""
    valid: set[str]
    """Digits of the recipients that can be sent to."""
    unsendable: set[str]
    """Digits of rows with a good number that cannot be personalised (recorded ``invalid``)."""


def audience(n: int, *, start: int = 0, extras: bool = True) -> Audience:
    """``n`` sendable recipients; with ``extras``, also repeats, bad numbers and an unrenderable row."""
    rows: list[dict[str, Any]] = [{"phone": phone(i), "name": f"N{i}"} for i in range(start, start + n)]
    valid = {digits(i) for i in range(start, start + n)}
    unsendable: set[str] = set()
    if extras:
        for k in range(0, n, 97):  # the same person twice, written differently
            rows.insert(k + 1, {"phone": f"0049151{start + k:08d}", "name": "again"})
        rows += [{"phone": "12", "name": "x"}, {"phone": "not a number", "name": "x"}, {"phone": None}]
        broken = start + n + 1  # a good number without the field the template needs
        rows.append({"phone": phone(broken)})
        unsendable.add(digits(broken))
    return Audience(rows, valid, unsendable)


#: How long after its last heartbeat a killed attempt's claims count as abandoned in these tests.
ABANDONED_AFTER_S = 1.5


def wait_until_abandoned() -> None:
    """Sleep until a killed attempt's claims count as abandoned (its heartbeat is old enough)."""
    time.sleep(ABANDONED_AFTER_S + 0.3)


def fast_settings(campaign_id: str, **changes: Any) -> CampaignSettings:
    """Settings of the fault campaigns: quick retries so that faults cost milliseconds, not seconds."""
    values: dict[str, Any] = {
        "campaign_id": campaign_id,
        "template_name": TEMPLATE,
        "language": LANGUAGE,
        "personaliser": Personaliser(body_parameters={"first_name": "{name}"}),
        "max_messages_per_second": 2000.0,
        "min_messages_per_second": 200.0,
        "concurrency": 16,
        "batch_size": 100,
        "max_attempts": 10,
        "retry_backoff_s": 0.02,
        "retry_backoff_max_s": 0.2,
        "throttle_recovery_s": 0.2,
        "progress_interval_s": 1.0,
        # A killed attempt's claims count as abandoned ABANDONED_AFTER_S after its last heartbeat.
        "heartbeat_interval_s": 0.1,
        "claims_abandoned_after_s": ABANDONED_AFTER_S,
    }
    values.update(changes)
    return CampaignSettings(**values)


# --- the wire --------------------------------------------------------------------------------------


class Wire:
    """Records, per recipient, what each send came back with, as the client returned it.

    Used as a context manager, it wraps the two steps of ``GraphClient`` every send goes through, on
    either engine: ``send_failures`` (the request failed on the wire) and ``read_marketing_answer``
    (an answer came back); class-wide, so clients built inside a hook are covered too. An event is
    ``"ok"`` (an answer with a message id), ``"error:<code>"`` (a Graph error; ``http_<status>``
    when the body had no code), ``"unanswered"`` (the request may
    have reached Meta but no usable answer came back) or ``"not_sent"``. Attempts of one recipient are
    sequential, so the last event is the one the sender acted on. What really happened is the
    sandbox's record; :func:`verify` holds both against the ledger.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._patches: list[Any] = []

    @staticmethod
    def classify(exc: BaseException) -> str:
        """The event of a failed send."""
        if isinstance(exc, GraphError):
            return f"error:{exc.code if exc.code is not None else f'http_{exc.http_status}'}"
        if isinstance(exc, UnknownOutcomeError):
            return "unanswered"
        if isinstance(exc, GraphTransportError):
            return "unanswered" if exc.request_sent else "not_sent"
        return f"other:{type(exc).__name__}"

    def _reader(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """``read_marketing_answer``: an answer came back (a message id, or a Graph error)."""
        wire = self

        def read(client: GraphClient, request: SendRequest, response: Any) -> Any:
            try:
                result = original(client, request, response)
            except BaseException as exc:
                wire._add(request.to, wire.classify(exc))
                raise
            wire._add(request.to, "ok")
            return result

        return read

    def _failures(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """``send_failures``: the request failed on the wire (no answer, or never sent)."""
        wire = self

        @contextlib.contextmanager
        def failures(client: GraphClient, request: SendRequest) -> Iterator[None]:
            try:
                with original(client, request):
                    yield
            except BaseException as exc:
                wire._add(request.to, wire.classify(exc))
                raise

        return failures

    def __enter__(self) -> Wire:
        """Wrap the two steps every send of either engine (threads or event loop) goes through."""
        for name, wrap in (("read_marketing_answer", self._reader), ("send_failures", self._failures)):
            patch = mock.patch.object(GraphClient, name, wrap(getattr(GraphClient, name)))
            patch.start()
            self._patches.append(patch)
        return self

    def __exit__(self, *exc: object) -> None:
        while self._patches:
            self._patches.pop().stop()

    def _add(self, to: str, event: str) -> None:
        with self._lock:
            self.events.append((to, event))

    def last(self) -> dict[str, str]:
        """The last event of each recipient."""
        with self._lock:
            return {to: event for to, event in self.events}

    def unanswered(self) -> set[str]:
        """Recipients whose last send got no usable answer (the ledger must call them ``unknown``)."""
        return {to for to, event in self.last().items() if event == "unanswered"}

    def count(self) -> collections.Counter[str]:
        """How many times each kind of event happened."""
        with self._lock:
            return collections.Counter(event for _, event in self.events)


def sandbox_client(sandbox: Sandbox, *, timeout: float) -> GraphClient:
    """A real client of the sandbox, as the hook builds it (bulk senders do their own retries)."""
    return GraphClient(
        sandbox.config.access_token,
        phone_number_id=sandbox.config.phone_number_id,
        waba_id=sandbox.config.waba_id,
        base_url=sandbox.url,
        timeout=timeout,
        connect_timeout=2.0,
        max_retries=0,
    )


@dataclasses.dataclass
class Toggler:
    """Flips sandbox settings on and off in a background thread (bursts of a fault)."""

    sandbox: Sandbox
    on: Mapping[str, Any]
    off: Mapping[str, Any]
    on_s: float = 0.15
    off_s: float = 0.35
    bursts: int = 0
    _stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Toggler:
        def loop() -> None:
            while not self._stop.is_set():
                self.sandbox.configure(**self.on)
                self.bursts += 1
                if self._stop.wait(self.on_s):
                    break
                self.sandbox.configure(**self.off)
                self._stop.wait(self.off_s)
            self.sandbox.configure(**self.off)

        self._thread = threading.Thread(target=loop, name="fault-toggler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


REPO = pathlib.Path(__file__).resolve().parents[2]


def child_spec(sandbox: Sandbox, ledger_url: str, campaign_id: str, **extra: Any) -> dict[str, Any]:
    """Arguments of ``tests.reliability.campaign_child`` for a campaign against ``sandbox``."""
    cfg = sandbox.config
    return {
        "base_url": sandbox.url,
        "access_token": cfg.access_token,
        "phone_number_id": cfg.phone_number_id,
        "ledger_url": ledger_url,
        "campaign_id": campaign_id,
        **extra,
    }


def spawn(spec: Mapping[str, Any]) -> subprocess.Popen[str]:
    """Start ``tests.reliability.campaign_child`` with ``spec`` in a new process."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.campaign_child", json.dumps(spec)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def when_recorded(
    sandbox: Sandbox, count: int, action: Callable[[], object], *, limit_s: float = 60.0
) -> threading.Thread:
    """Run ``action`` in another thread as soon as the sandbox recorded ``count`` messages."""

    def watch() -> None:
        deadline = time.monotonic() + limit_s
        while len(sandbox.messages) < count and time.monotonic() < deadline:
            time.sleep(0.001)
        action()

    thread = threading.Thread(target=watch, name="fault-watcher", daemon=True)
    thread.start()
    return thread


# --- the checks ------------------------------------------------------------------------------------


@dataclasses.dataclass
class FaultRow:
    """One line of the fault table."""

    fault: str
    recipients: int
    duplicates: int
    lost: int
    unknown: int
    seconds: float
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: str = ""
    known_bug: bool = False
    """The scenario demonstrates a known bug (its test is an expected failure)."""

    @property
    def ok(self) -> bool:
        """No duplicate, nobody lost, no inconsistency."""
        return not self.problems and not self.duplicates and not self.lost


#: Rows of the session, printed by ``tests/reliability/conftest.py`` at the end.
FAULT_TABLE: list[FaultRow] = []


def _sample(items: Iterable[str], k: int = 5) -> str:
    return ", ".join(mask_phone(x) for x in sorted(items)[:k])


def ledger_rows(ledger: Ledger, campaign_id: str) -> dict[str, dict[str, Any]]:
    """The campaign's ``sends`` rows by recipient."""
    return {row["recipient"]: row for row in ledger.iter_sends(campaign_id)}


def verify(
    fault: str,
    *,
    sandbox: Sandbox,
    ledger: Ledger,
    campaign_id: str,
    crowd: Audience,
    results: Sequence[CampaignResult],
    started: float,
    wire: Wire | None = None,
    allow_failed: Iterable[str] = (),
    expect_unknown: set[str] | None = None,
    unknown_sources: str = "wire",
    extra_sends: int = 0,
    check_run_totals: bool = True,
    notes: str = "",
    known_bug: bool = False,
) -> FaultRow:
    """Compare sandbox, ledger, wire and run results after a campaign; returns (and records) a row.

    :param allow_failed: recipients a permanent error may leave ``failed`` (forced recipient errors).
    :param expect_unknown: the exact ``unknown`` set when the test knows it (e.g. stale claims).
    :param unknown_sources: ``"wire"`` (unknown == what the wire saw unanswered) or ``"subset"`` (only
        the sandbox's lost answers must be unknown: a killed process leaves no wire record).
    :param extra_sends: sandbox messages the test caused on purpose beyond one per recipient.
    :param check_run_totals: compare the summed run counts with the ledger (off when a run was killed).
    :param notes: free text for the table.
    :param known_bug: the scenario shows a known bug (shown as ``xfail`` instead of ``NO``).
    """
    elapsed = time.monotonic() - started
    problems: list[str] = []
    messages = [m for m in sandbox.messages]
    per = collections.Counter(m.to for m in messages)
    wamids: dict[str, set[str]] = collections.defaultdict(set)
    for m in messages:
        wamids[m.to].add(m.wamid)
    rows = ledger_rows(ledger, campaign_id)
    allowed_failed = set(allow_failed)

    strangers = set(per) - crowd.valid
    if strangers:
        problems.append(
            f"{len(strangers)} messages to recipients that must not get one: {_sample(strangers)}"
        )
    duplicates = sum(n - 1 for n in per.values() if n > 1)

    lost: set[str] = set()
    unknown: set[str] = set()
    for r in sorted(crowd.valid):
        row = rows.get(r)
        state = row["state"] if row else None
        if state is None or state == L.CLAIMED:
            lost.add(r)
            problems.append(f"{mask_phone(r)}: no final ledger state ({state})")
        elif state in SENT_STATES:
            if per[r] == 0:
                lost.add(r)
                problems.append(f"{mask_phone(r)}: ledger says {state} but the sandbox has no message")
            elif row is not None and row["wamid"] not in wamids[r]:
                problems.append(f"{mask_phone(r)}: ledger wamid is not the sandbox's")
        elif state == L.UNKNOWN:
            unknown.add(r)
        elif state == L.FAILED:
            if per[r]:
                lost.add(r)
                problems.append(f"{mask_phone(r)}: ledger says failed but the sandbox accepted a message")
            elif r not in allowed_failed:
                lost.add(r)
                problems.append(
                    f"{mask_phone(r)}: failed with {row['error_code'] if row else None} "
                    "although every fault here is retryable"
                )
        else:
            lost.add(r)
            problems.append(f"{mask_phone(r)}: unexpected state {state}")
    for r in crowd.unsendable:
        row = rows.get(r)
        if row is None or row["state"] != L.INVALID:
            problems.append(f"{mask_phone(r)}: an unrenderable row must be recorded invalid")

    lost_answers = {m.to for m in messages if m.answer != "ok"}
    if not lost_answers <= unknown:
        missing = lost_answers - unknown
        problems.append(f"{len(missing)} messages whose answer was lost are not unknown: {_sample(missing)}")
    if unknown_sources == "wire":
        if wire is None:
            raise ValueError("unknown_sources='wire' needs the wire")
        unanswered = wire.unanswered() & crowd.valid
        if unknown != unanswered:
            problems.append(
                f"unknown ({len(unknown)}) is not the set of unanswered sends ({len(unanswered)}): "
                f"extra {_sample(unknown - unanswered)}; missing {_sample(unanswered - unknown)}"
            )
    if expect_unknown is not None and unknown != expect_unknown:
        problems.append(
            f"unknown ({len(unknown)}) differs from the expected set ({len(expect_unknown)}): "
            f"extra {_sample(unknown - expect_unknown)}; missing {_sample(expect_unknown - unknown)}"
        )

    counts = collections.Counter(row["state"] for r, row in rows.items() if r in crowd.valid)
    ledger_sent = sum(counts[s] for s in SENT_STATES)
    recorded_unknown = sum(per[r] for r in unknown)
    sandbox_total = sum(per[r] for r in crowd.valid)
    if sandbox_total != ledger_sent + recorded_unknown + extra_sends:
        problems.append(
            f"sandbox has {sandbox_total} messages, ledger {ledger_sent} sent + {recorded_unknown} recorded "
            f"unknown + {extra_sends} expected extra"
        )
    if check_run_totals:
        run_sent = sum(r.sent for r in results)
        run_unknown = sum(r.unknown + r.stale_unknown for r in results)
        if run_sent != ledger_sent:
            problems.append(f"runs report {run_sent} sent, the ledger {ledger_sent}")
        if run_unknown != len(unknown):
            problems.append(f"runs report {run_unknown} unknown, the ledger {len(unknown)}")
    for run in results:
        accounted = (
            run.accepted
            + run.held
            + run.paused
            + run.failed
            + run.unknown
            + run.skipped
            + run.suppressed
            + run.invalid
            + run.duplicates
            + run.released
            + run.foreign_claimed
        )
        if accounted != run.total:
            problems.append(f"run {run.attempt_id[:8]}: {accounted} rows accounted for, {run.total} read")

    line = FaultRow(
        fault=fault,
        recipients=len(crowd.valid),
        duplicates=duplicates,
        lost=len(lost),
        unknown=len(unknown),
        seconds=elapsed,
        problems=problems,
        notes=notes,
        known_bug=known_bug,
    )
    FAULT_TABLE.append(line)
    return line


def assert_clean(row: FaultRow) -> None:
    """Fail with the list of problems found by :func:`verify`."""
    assert row.duplicates == 0, f"{row.fault}: {row.duplicates} duplicate messages"
    assert row.lost == 0, f"{row.fault}: {row.lost} lost recipients: " + "; ".join(row.problems[:10])
    assert not row.problems, f"{row.fault}: " + "; ".join(row.problems[:10])


def format_table(rows: Sequence[FaultRow]) -> Iterator[str]:
    """The fault table as text lines."""
    header = ("fault", "recipients", "duplicates", "lost", "unknown", "time s", "ok", "notes")
    body = [
        (
            r.fault,
            str(r.recipients),
            str(r.duplicates),
            str(r.lost),
            str(r.unknown),
            f"{r.seconds:.2f}",
            "yes" if r.ok else ("xfail" if r.known_bug else "NO"),
            r.notes,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    left = (0, len(header) - 1)
    for cells in (header, tuple("-" * w for w in widths), *body):
        line = "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        yield line.rstrip()


@contextlib.contextmanager
def serve_app(app: Any, *, access_log: bool = False) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1; yields its base URL (ending in ``/``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            app, lifespan="off", access_log=access_log, log_config=None, timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
