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
    return _emit({"result": result.to_dict(), "wall_s": wall, "cpu_s": cpu})


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
