"""The sending engines side by side, the pacing and the transport only (no ledger, no validation):
``python benchmarks/engines.py '<json spec>'`` prints one JSON line.

* ``threads``: the provider's own pieces: a :class:`~airflow_provider_wamm.campaign.workers.WorkerPool`
  of threads sized by Little's law, paced by a :class:`~airflow_provider_wamm.campaign.pacing.Pacer`,
  posting through ``GraphClient`` (its socket pool, or ``"transport": "urllib3"``: a
  ``urllib3.HTTPConnectionPool`` behind the same seam);
* ``loop``: the provider's asyncio engine, :class:`~airflow_provider_wamm.campaign.loop_pool.LoopPool`,
  with the same pacer and client (``send_engine="asyncio"`` of a campaign);
* ``asyncio``: the prototype that the engine was decided on: one event loop, one task per request in
  flight (the same number), the same pacing rule (evenly spaced at 98% of the cap, no one-second
  window above it), keep-alive connections of ``asyncio.open_connection``, the request written at
  once, the answer's head parsed and its JSON body decoded.

Spec: ``url``, ``count``, ``cap``, ``in_flight`` (requests in flight at most), ``engine``,
``transport``. Output: sent, errors, the sending span, CPU seconds of the process, peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common

HEADROOM = 0.02


def _path() -> str:
    return f"/v23.0/{common.PHONE_NUMBER_ID}/marketing_messages"


# ----------------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------------


class Urllib3Transport:
    """``urllib3.HTTPConnectionPool`` behind the client's transport seam."""

    def __init__(self, url: str, maxsize: int) -> None:
        import urllib3

        parts = urlsplit(url)
        self.pool = urllib3.HTTPConnectionPool(
            parts.hostname, parts.port, maxsize=maxsize, block=False, retries=False, timeout=30.0
        )

    def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        before_write: Callable[[], None] | None = None,
    ) -> Any:
        from airflow_provider_wamm.graph.transport import RawResponse

        if before_write is not None:
            before_write()
        response = self.pool.urlopen("POST", path, body=body, headers=dict(headers), redirect=False)
        return RawResponse(response.status, response.data, response.headers)

    def close(self) -> None:
        self.pool.close()


def threads(spec: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_wamm.campaign.pacing import Pacer
    from airflow_provider_wamm.campaign.workers import Accepted, Job, WorkerPool
    from airflow_provider_wamm.graph.client import GraphClient

    n, size = int(spec["count"]), int(spec["in_flight"])
    transport = Urllib3Transport(spec["url"], size) if spec.get("transport") == "urllib3" else None
    client = GraphClient(
        common.TOKEN,
        phone_number_id=common.PHONE_NUMBER_ID,
        base_url=spec["url"],
        pool_maxsize=size,
        timeout=30,
        **({"transport": transport} if transport else {}),
    )
    stop = threading.Event()
    cap = float(spec["cap"])
    pacer = Pacer(cap, floor=1.0, headroom=HEADROOM, throttle_share=0.2, recovery_s=10, stop=stop)
    if spec["engine"] == "loop":
        from airflow_provider_wamm.campaign.loop_pool import LoopPool

        pool: Any = LoopPool(client, pacer, stop)
    else:
        pool = WorkerPool(client, pacer, stop)
    pool.resize(size)
    cpu0, t0 = common.cpu_now(), time.monotonic()
    for i in range(n):
        pool.submit(Job(common.digits(i), common.payload(i)))
    sent = errors = 0
    while sent + errors < n:
        for answer in pool.collect(timeout=1.0):
            if isinstance(answer, Accepted):
                sent += 1
            else:
                errors += 1
    wall, cpu = time.monotonic() - t0, common.cpu_now() - cpu0
    pool.close()
    client.close()
    return {"sent": sent, "errors": errors, "wall_s": wall, "cpu_s": cpu}


# ----------------------------------------------------------------------------------------------
# asyncio
# ----------------------------------------------------------------------------------------------


class Pace:
    """Evenly spaced slots at ``rate`` and a sliding one-second window of at most ``limit``."""

    def __init__(self, cap: float) -> None:
        self.gap = 1.0 / (cap * (1 - HEADROOM))
        self.limit = max(1, math.floor(cap * (1 - HEADROOM)))
        self.next = 0.0
        self.sent: deque[float] = deque()

    async def turn(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self.next)
        self.next = slot + self.gap
        if slot > now:
            await asyncio.sleep(slot - now)
        while True:
            now = loop.time()
            while self.sent and self.sent[0] <= now - 1.0:
                self.sent.popleft()
            if len(self.sent) < self.limit:
                self.sent.append(now)
                return
            await asyncio.sleep(self.sent[0] + 1.0 - now)


async def _engine(spec: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(spec["url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {_path()} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {common.TOKEN}\r\n"
        "Content-Type: application/json\r\n"
    )
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    pace = Pace(float(spec["cap"]))
    slots = asyncio.Semaphore(int(spec["in_flight"]))
    counts = {"sent": 0, "errors": 0}

    async def send(i: int) -> None:
        try:
            body = json.dumps(common.payload(i), separators=(",", ":")).encode()
            request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            reader, writer = idle.pop() if idle else await asyncio.open_connection(host, port)
            await pace.turn()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = json.loads(await reader.readexactly(length))
            idle.append((reader, writer))
            ok = status_line.split()[1] == b"200" and bool(answer.get("messages"))
            counts["sent" if ok else "errors"] += 1
        except (OSError, ValueError, asyncio.IncompleteReadError):
            counts["errors"] += 1
        finally:
            slots.release()

    tasks = set()
    for i in range(int(spec["count"])):
        await slots.acquire()
        task = asyncio.create_task(send(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    for _, writer in idle:
        writer.close()
    return counts


def asyncio_engine(spec: dict[str, Any]) -> dict[str, Any]:
    cpu0, t0 = common.cpu_now(), time.monotonic()
    counts = asyncio.run(_engine(spec))
    return {**counts, "wall_s": time.monotonic() - t0, "cpu_s": common.cpu_now() - cpu0}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    out = (asyncio_engine if spec["engine"] == "asyncio" else threads)(spec)
    out["peak_rss_mb"] = round(common.peak_rss_mb(), 1)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
