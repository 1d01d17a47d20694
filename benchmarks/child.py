"""The measured code of the benchmarks, one kind per child process: ``child.py KIND '<json spec>'``.

Each kind prints one JSON line last: its figures, the CPU seconds (user + sys) spent in the measured
part and the process's peak RSS. Running each in its own process keeps interpreters, caches and
memory peaks apart, and keeps the sandbox (another process) off this interpreter's lock.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
    from airflow_provider_wamm.campaign.ledger import Ledger
    from airflow_provider_wamm.campaign.personalise import Personaliser
    from airflow_provider_wamm.campaign.sender import CampaignSettings, run_campaign
    from airflow_provider_wamm.graph.client import GraphClient

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
    client = GraphClient(
        common.TOKEN,
        phone_number_id=common.PHONE_NUMBER_ID,
        base_url=spec["url"],
        pool_maxsize=int(spec.get("concurrency", 32)),
        timeout=30,
    )
    stamps: list[float] = []
    gc_pauses: list[float] = []
    if spec.get("trace"):
        _trace_sends(client, stamps)
        _trace_gc(gc_pauses)
    if spec.get("transport") == "requests":
        # The "before" figure: the same client, sending through requests.Session as it used to.
        client = _RequestsOnly(client)  # type: ignore[assignment]
    profile = spec.get("profile")
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
    if profiler is not None:
        profiler.stop()
        with open(profile, "w") as fh:
            fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    client.close()
    ledger.dispose()
    out: dict[str, Any] = {"result": result.to_dict(), "wall_s": wall, "cpu_s": cpu}
    if spec.get("trace"):
        out["trace"] = window_stats(stamps)
        out["trace"]["gc_max_ms"] = round(1000 * max(gc_pauses, default=0.0), 1)
        out["trace"]["gc_total_ms"] = round(1000 * sum(gc_pauses), 1)
    return _emit(out)


class _RequestsOnly:
    """Hides ``send_marketing_message_fast``, so the sender uses ``send_marketing_message``."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def send_marketing_message(self, payload: Any, *, retry: bool = True) -> Any:
        return self._client.send_marketing_message(payload, retry=retry)

    def close(self) -> None:
        self._client.close()


def _trace_sends(client: Any, stamps: list[float]) -> None:
    """Record when each send leaves (list.append is atomic)."""
    fast = client.send_marketing_message_fast
    slow = client.send_marketing_message

    def traced_fast(payload: Any) -> Any:
        stamps.append(time.monotonic())
        return fast(payload)

    def traced_slow(payload: Any, *, retry: bool = True) -> Any:
        stamps.append(time.monotonic())
        return slow(payload, retry=retry)

    client.send_marketing_message_fast = traced_fast
    client.send_marketing_message = traced_slow


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
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
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


KINDS: dict[str, Callable[[dict[str, Any]], int]] = {
    "campaign": campaign,
    "bare_urllib3": bare_urllib3,
    "sequential_requests": sequential_requests,
}


def main(argv: list[str]) -> int:
    """Run one kind with its JSON spec."""
    kind, spec = argv[0], json.loads(argv[1])
    return KINDS[kind](spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
