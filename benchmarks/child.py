"""The measured code of the benchmarks, one kind per child process: ``child.py KIND '<json spec>'``.

Each kind prints one JSON line last: its figures, the CPU seconds (user + sys) spent in the measured
part and the process's peak RSS. Running each in its own process keeps interpreters, caches and
memory peaks apart, and keeps the sandbox (another process) off this interpreter's lock.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common


def _emit(data: dict[str, Any]) -> int:
    data.setdefault("peak_rss_mb", round(common.peak_rss_mb(), 1))
    print(json.dumps(data, default=str), flush=True)
    return 0


def _rows(start: int, count: int) -> Iterator[dict[str, Any]]:
    for i in range(start, start + count):
        yield common.recipient_row(i)


# --------------------------------------------------------------------------------------------
# run_campaign (B1, B2, B3, B5)
# --------------------------------------------------------------------------------------------


def campaign(spec: dict[str, Any]) -> int:
    """One ``run_campaign`` against the sandbox with a SQLite-file ledger."""
    if spec.get("turn_at_write") is False:  # the earlier order: the turn, then the client's work
        from airflow_provider_wamm.campaign import workers

        workers.paces_at_write = lambda client: False  # type: ignore[assignment]
    if spec.get("import_airflow"):  # what a task process does before it sends (CPU-heavy imports)
        import airflow_provider_wamm.operators.marketing  # noqa: F401
    from airflow_provider_wamm.campaign.ledger import Ledger
    from airflow_provider_wamm.campaign.personalise import Personaliser
    from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign

    logging.basicConfig(level=logging.WARNING)
    ledger = Ledger.from_url(f"sqlite:///{spec['ledger']}")
    ledger.ensure_schema()
    settings = CampaignSettings(
        campaign_id=spec.get("campaign_id", "bench"),
        template_name=common.TEMPLATE,
        language=common.LANGUAGE,
        personaliser=Personaliser(**common.PERSONALISATION),
        max_messages_per_second=float(spec["cap"]),
        concurrency=int(spec.get("concurrency", 32)),
        batch_size=int(spec.get("batch_size", 500)),
        dry_run=bool(spec.get("dry_run", False)),
        progress_interval_s=3600.0,
        total_hint=int(spec["count"]),
        **spec.get("options", {}),
    )
    client = _client(spec)
    stamps: list[float] = []
    gc_pauses: list[float] = []
    if spec.get("trace"):
        _trace_sends(client, stamps)
        _trace_gc(gc_pauses)
    profile: str | None = spec.get("profile")
    profiler: Any = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
    cpu0, t0 = common.cpu_now(), time.monotonic()
    result = run_campaign(
        _rows(int(spec.get("start", 0)), int(spec["count"])),
        client=client,
        ledger=ledger,
        settings=settings,
    )
    wall, cpu = time.monotonic() - t0, common.cpu_now() - cpu0
    if profiler is not None and profile:
        profiler.stop()
        with open(profile, "w") as fh:
            fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    client.close()
    ledger.dispose()
    out: dict[str, Any] = {"result": result.to_dict(), "wall_s": wall, "cpu_s": cpu}
    if spec.get("trace"):
        out["send_span_s"] = max(stamps, default=t0) - t0  # from the start to the last send's write
        out["trace"] = window_stats(stamps)
        out["trace"]["gc_max_ms"] = round(1000 * max(gc_pauses, default=0.0), 1)
        out["trace"]["gc_total_ms"] = round(1000 * sum(gc_pauses), 1)
        if spec.get("stamps"):
            out["stamps"] = [round(s, 4) for s in stamps]
            out["sent_to"] = [(round(t, 4), to) for t, to in sent_to]
    return _emit(out)


def _client(spec: dict[str, Any]) -> Any:
    """The ``GraphClient`` of a campaign spec. It sends over its default socket pool (``"transport":
    "fast"``), or through a ``requests.Session`` it is given (``"requests"``, the "before" figure)."""
    from airflow_provider_wamm.graph.client import GraphClient

    connections = int(spec.get("concurrency", 32))
    options: dict[str, Any] = {}
    name = spec.get("transport", "fast")
    if name == "requests":
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=connections, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        options["session"] = session
    elif name != "fast":
        raise ValueError(f"unknown transport {name!r}")
    return GraphClient(
        common.TOKEN,
        phone_number_id=common.PHONE_NUMBER_ID,
        base_url=spec["url"],
        pool_maxsize=connections,
        timeout=30,
        **options,
    )


#: When each traced send left and to whom (``"stamps": true`` returns them).
sent_to: list[tuple[float, str]] = []


def _trace_sends(client: Any, stamps: list[float]) -> None:
    """Record when each send leaves, and to whom (list.append is atomic): the moment its pacing turn
    is granted, right before the write, on either engine (the thread engine's transport, or the
    asyncio engine's connections)."""
    from airflow_provider_wamm.graph.async_transport import AsyncSocketPool

    def stamp(body: bytes) -> None:
        now = time.monotonic()
        stamps.append(now)
        sent_to.append((now, str(json.loads(body).get("to", ""))))

    transport = client.transport
    post = transport.post

    def traced_post(path: str, body: bytes, headers: Any, *, before_write: Any = None) -> Any:
        def stamped() -> None:
            if before_write is not None:
                before_write()
            stamp(body)

        return post(path, body, headers, before_write=stamped)

    transport.post = traced_post
    async_post = AsyncSocketPool.post

    async def traced_async_post(
        self: AsyncSocketPool, path: str, body: bytes, headers: Any, *, before_write: Any = None
    ) -> Any:
        async def stamped() -> None:
            if before_write is not None:
                await before_write()
            stamp(body)

        return await async_post(self, path, body, headers, before_write=stamped)

    AsyncSocketPool.post = traced_async_post  # type: ignore[method-assign]


def _trace_gc(pauses: list[float]) -> None:
    import gc

    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(callback)


def window_stats(stamps: list[float], window_s: float = 1.0) -> dict[str, Any]:
    """Most sends in any window, the largest gaps and the per-second counts of a list of send times."""
    stamps = sorted(stamps)
    best = start = 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window_s:
            start += 1
        best = max(best, end - start + 1)
    gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
    per_second: dict[int, int] = {}
    for stamp in stamps:
        key = int(stamp - stamps[0]) if stamps else 0
        per_second[key] = per_second.get(key, 0) + 1
    return {
        "max_window": best,
        "gap_p99_ms": round(1000 * gaps[int(0.99 * (len(gaps) - 1))], 2) if gaps else 0.0,
        "gap_max_ms": round(1000 * gaps[-1], 2) if gaps else 0.0,
        "per_second": [per_second.get(i, 0) for i in range(max(per_second, default=-1) + 1)],
    }


# --------------------------------------------------------------------------------------------
# Baselines (B2, B3)
# --------------------------------------------------------------------------------------------


def _threaded(count: int, threads: int, send: Callable[[int], bool]) -> tuple[int, int]:
    work: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    for i in range(count):
        work.put(i)
    for _ in range(threads):
        work.put(None)
    ok = [0] * threads
    bad = [0] * threads

    def run(n: int) -> None:
        while True:
            i = work.get()
            if i is None:
                return
            if send(i):
                ok[n] += 1
            else:
                bad[n] += 1

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(ok), sum(bad)


def bare_urllib3(spec: dict[str, Any]) -> int:
    """A minimal hand-written sender: a urllib3 pool, N threads, JSON in and out, no bookkeeping."""
    import urllib3

    url = f"{spec['url']}/v23.0/{common.PHONE_NUMBER_ID}/marketing_messages"
    threads = int(spec.get("threads", 32))
    pool = urllib3.PoolManager(maxsize=threads, retries=False, timeout=urllib3.Timeout(10, 30))
    headers = {"Authorization": f"Bearer {common.TOKEN}", "Content-Type": "application/json"}
    start = int(spec.get("start", 0))

    def send(i: int) -> bool:
        body = json.dumps(common.payload(start + i)).encode()
        response = pool.request("POST", url, body=body, headers=headers)
        data = json.loads(response.data)
        return response.status == 200 and bool(data.get("messages"))

    cpu0, t0 = common.cpu_now(), time.monotonic()
    ok, bad = _threaded(int(spec["count"]), threads, send)
    wall, cpu = time.monotonic() - t0, common.cpu_now() - cpu0
    return _emit({"sent": ok, "errors": bad, "wall_s": wall, "cpu_s": cpu})


def sequential_requests(spec: dict[str, Any]) -> int:
    """What a PythonOperator would do: ``requests.post`` in a loop, one message after the other."""
    import requests

    url = f"{spec['url']}/v23.0/{common.PHONE_NUMBER_ID}/marketing_messages"
    headers = {"Authorization": f"Bearer {common.TOKEN}"}
    start = int(spec.get("start", 0))
    ok = bad = 0
    cpu0, t0 = common.cpu_now(), time.monotonic()
    for i in range(int(spec["count"])):
        response = requests.post(url, json=common.payload(start + i), headers=headers, timeout=30)
        if response.status_code == 200:
            ok += 1
        else:
            bad += 1
    wall, cpu = time.monotonic() - t0, common.cpu_now() - cpu0
    return _emit({"sent": ok, "errors": bad, "wall_s": wall, "cpu_s": cpu})


def mapped_http(spec: dict[str, Any]) -> int:
    """``HttpOperator`` mapped once per recipient (``dags/bench_mapped_http.py``), run by ``dag.test()``.

    ``AIRFLOW_HOME`` (with a migrated metadata database), the dags folder, the ``bench_http``
    connection and ``WAMM_BENCH_HTTP_COUNT`` come from the environment.
    """
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dags", "bench_mapped_http.py")
    module_spec = importlib.util.spec_from_file_location("bench_mapped_http", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    dag = module.dag
    cpu0, t0 = common.cpu_now(), time.monotonic()
    run = dag.test()
    wall, cpu = time.monotonic() - t0, common.cpu_now() - cpu0
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    assert settings.Session is not None
    with settings.Session() as session:
        states = [
            str(ti.state)
            for ti in session.scalars(select(TaskInstance).where(TaskInstance.run_id == run.run_id))
        ]
    ok = sum(1 for state in states if state.endswith("success"))
    return _emit({"sent": ok, "tasks": len(states), "state": str(run.state), "wall_s": wall, "cpu_s": cpu})


# --------------------------------------------------------------------------------------------
# The whole operator path (B4, B5)
# --------------------------------------------------------------------------------------------


class _TaskInstance:
    """The part of a task instance ``MarketingMessageOperator.execute`` touches."""

    dag_id = "wamm_bench"
    task_id = "send"
    map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def operator(spec: dict[str, Any]) -> int:
    """``MarketingMessageOperator.execute`` over ``sql`` rows of a SQLite recipients table.

    Connections ``wamm_bench_whatsapp``, ``wamm_bench_crm`` and ``wamm_bench_ledger`` come from the
    environment. Reports the peak RSS of the whole process and the RSS before ``execute``.
    """
    import gc

    logging.basicConfig(level=logging.WARNING)
    from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

    op = MarketingMessageOperator(
        task_id="send",
        sql="SELECT phone, name, discount, slug FROM recipients ORDER BY id LIMIT ?",
        parameters=[int(spec["count"])],
        sql_conn_id="wamm_bench_crm",
        whatsapp_conn_id="wamm_bench_whatsapp",
        ledger_conn_id="wamm_bench_ledger",
        template_name=common.TEMPLATE,
        language=common.LANGUAGE,
        campaign_id=spec["campaign_id"],
        dry_run=bool(spec.get("dry_run", False)),
        max_messages_per_second=float(spec.get("cap", 5000)),
        concurrency=int(spec.get("concurrency", 32)),
        campaign_options={"progress_interval_s": 3600.0},
        **common.PERSONALISATION,
    )
    context = {"ti": _TaskInstance(), "run_id": "bench", "logical_date": datetime.now(UTC)}
    gc.collect()
    before = common.current_rss_mb()
    peak_before = common.peak_rss_mb()
    cpu0, t0 = common.cpu_now(), time.monotonic()
    summary = op.execute(context)  # type: ignore[arg-type]
    wall, cpu = time.monotonic() - t0, common.cpu_now() - cpu0
    return _emit(
        {
            "result": summary,
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_before_mb": round(before, 1),
            "peak_before_mb": round(peak_before, 1),
            "peak_rss_mb": round(common.peak_rss_mb(), 1),
        }
    )


def seed_recipients(spec: dict[str, Any]) -> int:
    """Create the SQLite recipients table with ``count`` rows (one transaction, executemany)."""
    import sqlite3

    path = spec["path"]
    if os.path.exists(path):
        os.remove(path)
    t0 = time.monotonic()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute(
        "CREATE TABLE recipients (id INTEGER PRIMARY KEY, phone TEXT, name TEXT, discount TEXT, slug TEXT)"
    )
    count = int(spec["count"])
    chunk = 100_000
    for first in range(0, count, chunk):
        db.executemany(
            "INSERT INTO recipients VALUES (?, ?, ?, ?, ?)",
            (
                (i, row["phone"], row["name"], row["discount"], row["slug"])
                for i in range(first, min(count, first + chunk))
                for row in (common.recipient_row(i),)
            ),
        )
    db.commit()
    db.close()
    return _emit({"rows": count, "wall_s": time.monotonic() - t0})


# --------------------------------------------------------------------------------------------
# Ledger seeding, webhook ingest and the report (B6, B7)
# --------------------------------------------------------------------------------------------

_T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _db_time(seconds: float) -> str:
    """``seconds`` (less than a day) after 2026-01-01 as SQLAlchemy stores a DateTime in SQLite."""
    whole, micro = divmod(round(seconds * 1_000_000), 1_000_000)
    minutes, sec = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    assert hours < 24
    return f"2026-01-01 {hours:02d}:{minutes:02d}:{sec:02d}.{micro:06d}"


def wamid(i: int) -> str:
    """The wamid of seeded message ``i`` (zero-padded, so the index grows at its end)."""
    return f"wamid.bench.{i:08d}"


def seed_ledger(spec: dict[str, Any]) -> int:
    """A finished campaign of ``count`` sends (95% accepted, 5% refused) and, with ``statuses``, their
    latest delivery statuses, written with executemany in large transactions.

    The tables are the ledger's own (``Ledger.ensure_schema``); rows go in through the DB-API directly,
    because a benchmark's set-up should not take longer than the benchmark.
    """
    import random
    import sqlite3

    from airflow_provider_wamm.campaign.ledger import Ledger

    path, count, campaign = spec["path"], int(spec["count"]), spec["campaign_id"]
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    ledger = Ledger.from_url(f"sqlite:///{path}")
    ledger.ensure_schema()
    sends_table, statuses_table = ledger.sends.name, ledger.statuses.name
    ledger.dispose()
    t0 = time.monotonic()
    rnd = random.Random(7)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    # Secondary indexes are dropped for the load and built again afterwards (much faster).
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (?, ?)",
        (sends_table, statuses_table),
    ).fetchall()
    for name, _ in indexes:
        db.execute(f'DROP INDEX "{name}"')
    chunk = 100_000
    with_statuses = bool(spec.get("statuses", True))
    n_statuses = 0
    for first in range(0, count, chunk):
        sends, statuses = [], []
        for i in range(first, min(count, first + chunk)):
            at = i * 0.001
            failed = i % 20 == 19
            message_id = None if failed else wamid(i)
            sends.append(
                (
                    campaign,
                    common.digits(i),
                    "failed" if failed else "accepted",
                    "seed",
                    0,
                    common.TEMPLATE,
                    common.LANGUAGE,
                    message_id,
                    None if failed else "accepted",
                    131026 if failed else None,
                    "Message undeliverable" if failed else None,
                    1,
                    _db_time(at),
                    None if failed else _db_time(at + 0.1),
                    _db_time(at + 0.1),
                )
            )
            if message_id is None or not with_statuses:
                continue
            roll = rnd.random()
            delay = rnd.expovariate(1 / 4.0)
            row: tuple[str, int, float | None, float | None, float | None, int | None, str | None]
            category = "marketing" if rnd.random() < 0.1 else "marketing_lite"
            if roll < 0.03:
                row = ("failed", 10, None, None, delay, 131026, "Message undeliverable")
            elif roll < 0.08:
                row = ("sent", 1, None, None, None, None, None)
            elif roll < 0.65:
                row = ("delivered", 2, delay, None, None, None, None)
            else:
                row = ("read", 3, delay, delay + rnd.expovariate(1 / 60.0), None, None, None)
            status, rank, delivered, read, failed_at, code, title = row
            last = max(x for x in (0.5, delivered, read, failed_at) if x is not None)
            clicked = status == "read" and rnd.random() < 0.2
            statuses.append(
                (
                    message_id,
                    common.digits(i),
                    status,
                    rank,
                    _db_time(at + last),
                    _db_time(at + 0.5),
                    _db_time(at + delivered) if delivered is not None else None,
                    _db_time(at + read) if read is not None else None,
                    _db_time(at + failed_at) if failed_at is not None else None,
                    category,
                    "PMP",
                    code,
                    title,
                    _db_time(at + last + 1) if clicked else None,
                    1 if clicked else 0,
                    _db_time(at + last),
                )
            )
        db.executemany(
            f"INSERT INTO {sends_table} (campaign_id, recipient, state, attempt_id, shard_index, "
            "template_name, language, wamid, message_status, error_code, error_title, attempts, "
            "claimed_at, accepted_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            sends,
        )
        if statuses:
            db.executemany(
                f"INSERT INTO {statuses_table} (wamid, recipient_id, status, status_rank, status_at, "
                "sent_at, delivered_at, read_at, failed_at, pricing_category, pricing_model, error_code, "
                "error_title, clicked_at, click_count, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                statuses,
            )
            n_statuses += len(statuses)
        db.commit()
    for _, sql in indexes:
        db.execute(sql)
    db.commit()
    db.close()
    return _emit({"sends": count, "statuses": n_statuses, "wall_s": time.monotonic() - t0})


def report(spec: dict[str, Any]) -> int:
    """Time ``build_report`` (and ``settle_state``) over a seeded ledger, in a fresh process."""
    from datetime import timedelta

    from airflow_provider_wamm.campaign.ledger import Ledger
    from airflow_provider_wamm.campaign.report import build_report, settle_state

    ledger = Ledger.from_url(f"sqlite:///{spec['path']}")
    ledger.ensure_schema()
    t0 = time.monotonic()
    built = build_report(ledger, spec["campaign_id"])
    report_s = time.monotonic() - t0
    t0 = time.monotonic()
    settle = settle_state(ledger, spec["campaign_id"], settle_timeout=timedelta(hours=1))
    settle_s = time.monotonic() - t0
    ledger.dispose()
    return _emit(
        {
            "wall_s": report_s,
            "settle_s": settle_s,
            "total": built.total,
            "accepted": built.accepted,
            "delivered": built.delivered,
            "read": built.read,
            "settled": settle.settled,
            "summary": built.summary(),
        }
    )


def webhook_load(spec: dict[str, Any]) -> int:
    """POST signed batches of statuses to the receiver, ``concurrency`` at a time; time each batch."""
    import hashlib
    import hmac
    import http.client

    from airflow_provider_wamm.sandbox.webhooks import build_payload

    host, port = spec["host"], int(spec["port"])
    secret = spec["app_secret"].encode()
    batch, batches = int(spec["batch"]), int(spec["batches"])
    count = int(spec["messages"])
    cycle = ("sent", "delivered", "read")
    bodies: list[bytes] = []
    for b in range(batches):
        events = []
        for j in range(batch):
            n = b * batch + j
            i = n % count
            status = cycle[(n // count) % 3]
            code = None
            if i % 97 == 0 and status == "read":
                status, code = "failed", 131026
            events.append(
                (
                    0.0,
                    n,
                    "status",
                    (wamid(i), status, _T0 + n, common.digits(i), "marketing_lite", code),
                )
            )
        payload = build_payload(
            events,
            waba_id=common.WABA_ID,
            phone_number_id=common.PHONE_NUMBER_ID,
            display_phone_number="+1 555 010 0001",
            statuses_per_change=batch,
        )
        bodies.append(json.dumps(payload).encode())
    work: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    for k in range(batches):
        work.put(k)
    threads = int(spec.get("concurrency", 1))
    for _ in range(threads):
        work.put(None)
    latencies: list[float] = []
    failures: list[str] = []
    stored = [0]
    lock = threading.Lock()

    def run() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        while True:
            k = work.get()
            if k is None:
                conn.close()
                return
            body = bodies[k]
            signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            t0 = time.perf_counter()
            conn.request(
                "POST",
                "/",
                body=body,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            )
            response = conn.getresponse()
            data = response.read()
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    failures.append(f"HTTP {response.status}: {data[:200]!r}")
                else:
                    stored[0] += int(json.loads(data).get("statuses", 0))

    t0 = time.perf_counter()
    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return _emit(
        {
            "wall_s": wall,
            "statuses": stored[0],
            "batches": batches,
            "failures": failures[:5],
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p90_ms": round(1000 * latencies[int(0.9 * (len(latencies) - 1))], 1),
            "max_ms": round(1000 * latencies[-1], 1),
        }
    )


KINDS: dict[str, Callable[[dict[str, Any]], int]] = {
    "campaign": campaign,
    "bare_urllib3": bare_urllib3,
    "sequential_requests": sequential_requests,
    "mapped_http": mapped_http,
    "operator": operator,
    "seed_recipients": seed_recipients,
    "seed_ledger": seed_ledger,
    "report": report,
    "webhook_load": webhook_load,
}


def main(argv: list[str]) -> int:
    """Run one kind with its JSON spec."""
    kind, spec = argv[0], json.loads(argv[1])
    return KINDS[kind](spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
