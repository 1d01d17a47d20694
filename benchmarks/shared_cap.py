"""B8: one cap per phone number, shared by every run that sends from it through the ledger.

Two campaigns on one number started 10 s apart (the second one ends first, or is killed mid-run),
and four shards of one campaign without a hand-set cap. Every sender is a ``run_campaign`` child
process with the operator's defaults; rates are counted on the sandbox's arrival stamps.
"""

from __future__ import annotations

import itertools
import json
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import common
from harness import Bench, Figure, Section
from latency import SIGMA, arrivals, busiest, campaign, campaign_spec

CAP = 80
#: Seconds after its start the second campaign of the killed case gets SIGKILL.
KILL_AFTER_S = 12.0


def _parallel(jobs: list[tuple[float, Callable[[], dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Run each job in a thread after its delay (seconds from now); their results in order."""
    out: list[dict[str, Any]] = [{} for _ in jobs]
    errors: list[BaseException] = []

    def run(i: int, delay: float, job: Callable[[], dict[str, Any]]) -> None:
        time.sleep(delay)
        try:
            out[i] = job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, d, j)) for i, (d, j) in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return out


def _rate(stamps: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in stamps) / max(1e-9, end - start)


def _back(survivor: list[float], since: float) -> float:
    """Seconds from ``since`` until the survivor's last second holds >= 0.9 of the cap."""
    return next(
        (t - since for t in survivor if t > since + 1 and _rate(survivor, t - 1, t) >= 0.9 * CAP),
        float("inf"),
    )


def _killed(spec: dict[str, Any], after_s: float) -> dict[str, Any]:
    """Start a campaign child and SIGKILL it ``after_s`` later (mid-run); when it was killed."""
    proc = subprocess.Popen(
        [common.PYTHON, str(common.CHILD), "campaign", json.dumps(spec)],
        cwd=common.ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(after_s)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    proc.wait()
    return {"killed_at": killed_at, "was_running": alive}


def _split(msgs: list[dict[str, Any]], start: int, count: int) -> tuple[list[float], list[float]]:
    """The arrival stamps of the first campaign and of the second (recipients from ``start``)."""
    second = {common.digits(start + i) for i in range(count)}
    return (
        sorted(m["t"] for m in msgs if m["to"] not in second),
        sorted(m["t"] for m in msgs if m["to"] in second),
    )


def b8(bench: Bench) -> None:
    """Two campaigns on one number 10 s apart (one ends, or is killed); four shards without a cap."""
    sec = bench.section("B8", "One cap per phone number")
    sec.lines.append(
        "Each sender is a `run_campaign` child process (`share_cap` on, the default) with the "
        f"operator's defaults at `max_messages_per_second` {CAP} and no `number_cap`, all on one "
        "SQLite-file ledger (its `senders` table) and one sandbox answering log-normal times (median "
        "300 ms, sigma 0.6). Rates are counted on the sandbox's arrival stamps."
    )
    _two(bench, sec)
    _kill(bench, sec)
    _shards(bench, sec)


def _two(bench: Bench, sec: Section) -> None:
    ledger = bench.ledger_path("b8-two")
    a_n, b_n = bench.scale(3_000, 600), bench.scale(1_200, 200)
    with common.SandboxProcess("--latency-median", "0.3", "--latency-sigma", SIGMA) as sandbox:
        sandbox.reset()
        results = _parallel(
            [
                (0.0, lambda: campaign(sandbox, bench, "b8-a", cap=CAP, count=a_n, ledger=ledger)),
                (
                    10.0,
                    lambda: campaign(
                        sandbox, bench, "b8-b", cap=CAP, count=b_n, start=500_000, ledger=ledger
                    ),
                ),
            ]
        )
        msgs, deaf = arrivals(sandbox)
    a_t, b_t = _split(msgs, 500_000, b_n)
    both = [m["t"] for m in msgs]
    window, heard = busiest(both), busiest(both, deaf)
    together = (b_t[0] + 2.0, b_t[-1])  # both sending (B's first two seconds: it waits for room)
    a_both, b_both = _rate(a_t, *together) / CAP, _rate(b_t, *together) / CAP
    back = _back(a_t, b_t[-1])
    bench.add(
        Figure(
            "B8",
            "two campaigns 10 s apart: busiest 1 s window, both together",
            f"{window} (heard all along: {heard})",
            f"<= {CAP}",
            f"each alone may take {CAP}",
            heard <= CAP,
        )
    )
    bench.add(
        Figure(
            "B8",
            "two campaigns: each one's share while both send",
            f"{a_both:.3f} / {b_both:.3f}",
            ">= 0.45 each",
            f"alone: {_rate(a_t, a_t[0] + 1, b_t[0]) / CAP:.3f}",
            min(a_both, b_both) >= 0.45,
        )
    )
    bench.add(
        Figure(
            "B8",
            "two campaigns: the survivor back to >= 0.9 of the cap after the other ends",
            f"{back:.1f} s",
            "<= 10 s",
            "",
            back <= 10,
        )
    )
    sec.lines.append(
        f"Two campaigns: A ({a_n:,} recipients) at 0 s, B ({b_n:,}) at 10 s. While both sent "
        f"({together[1] - together[0]:.1f} s): A {a_both:.3f}, B {b_both:.3f} of the cap; A alone before "
        f"B: {_rate(a_t, a_t[0] + 1, b_t[0]):.1f} msg/s; A back at >= {0.9 * CAP:.0f} msg/s {back:.1f} s "
        f"after B's last send. Accepted: A {results[0]['result']['accepted']:,}, "
        f"B {results[1]['result']['accepted']:,}; sandbox deaf spells {len(deaf)}."
    )


def _kill(bench: Bench, sec: Section) -> None:
    ledger = bench.ledger_path("b8-kill")
    a_n, b_n = bench.scale(3_000, 600), bench.scale(3_000, 600)
    with common.SandboxProcess("--latency-median", "0.3", "--latency-sigma", SIGMA) as sandbox:
        sandbox.reset()
        b_spec = campaign_spec(sandbox, bench, "b8-killed", cap=CAP, count=b_n, start=500_000, ledger=ledger)
        results = _parallel(
            [
                (0.0, lambda: campaign(sandbox, bench, "b8-survivor", cap=CAP, count=a_n, ledger=ledger)),
                (10.0, lambda: _killed(b_spec, KILL_AFTER_S)),
            ]
        )
        msgs, deaf = arrivals(sandbox)
    a_t, b_t = _split(msgs, 500_000, b_n)
    killed_at = results[1]["killed_at"]
    back = _back(a_t, killed_at)
    stamps = [m["t"] for m in msgs]
    window, heard = busiest(stamps), busiest(stamps, deaf)
    bench.add(
        Figure(
            "B8",
            "two campaigns: the survivor back to >= 0.9 of the cap after the other is killed (SIGKILL)",
            f"{back:.1f} s",
            "<= 10 s",
            "a dead sender expires after `cap_share_expire_s` (5 s)",
            back <= 10 and results[1]["was_running"],
        )
    )
    bench.add(
        Figure(
            "B8",
            "killed case: busiest 1 s window, both together",
            f"{window} (heard all along: {heard})",
            f"<= {CAP}",
            "",
            heard <= CAP,
        )
    )
    while_both = (b_t[0] + 2.0, killed_at) if b_t else (killed_at, killed_at)
    sec.lines.append(
        f"Killed: A ({a_n:,} recipients) at 0 s, B ({b_n:,}) at 10 s, B's process killed with SIGKILL "
        f"{KILL_AFTER_S:.0f} s after its start (it had sent {len(b_t):,}, its last arrival "
        f"{killed_at - b_t[-1] if b_t else float('nan'):.2f} s before the kill). While both sent: A "
        f"{_rate(a_t, *while_both) / CAP:.3f}, B {_rate(b_t, *while_both) / CAP:.3f} of the cap; A back at "
        f">= {0.9 * CAP:.0f} msg/s {back:.1f} s after the kill, per second after it "
        f"{[round(_rate(a_t, killed_at + i, killed_at + i + 1)) for i in range(10)]}. Accepted: A "
        f"{results[0]['result']['accepted']:,}; sandbox deaf spells {len(deaf)}."
    )


def _shards(bench: Bench, sec: Section) -> None:
    from airflow_provider_wamm.campaign.sharding import shard_of

    ledger = bench.ledger_path("b8-shards")
    per = bench.scale(800, 150)
    with common.SandboxProcess("--latency-median", "0.3", "--latency-sigma", SIGMA) as sandbox:
        sandbox.reset()
        jobs = []
        for i in range(4):
            options = {"shard_index": i, "shard_count": 4}
            jobs.append(
                (
                    0.3 * i,
                    lambda o=options: campaign(
                        sandbox, bench, "b8-shards", cap=CAP, count=4 * per, ledger=ledger, options=o
                    ),
                )
            )
        results = _parallel(jobs)
        msgs, deaf = arrivals(sandbox)
    stamps = sorted(m["t"] for m in msgs)
    by_shard: list[list[float]] = [[] for _ in range(4)]
    for m in msgs:
        by_shard[shard_of(m["to"], 4)].append(m["t"])
    accepted = sum(r["result"]["accepted"] for r in results)
    runs = [r["result"]["elapsed_s"] for r in results]
    span = stamps[-1] - stamps[0]
    # All four sending: from the last one's first arrival to the first one's last.
    all_four = (max(min(s) for s in by_shard), min(max(s) for s in by_shard))
    together = _rate(stamps, *all_four) / CAP
    whole = accepted / span / CAP
    window, heard = busiest(stamps), busiest(stamps, deaf)
    bench.add(
        Figure(
            "B8",
            "four shards, no hand-set cap: together / the number's cap, while all four send",
            f"{together:.3f} (first arrival to last: {whole:.3f})",
            ">= 0.95",
            "cap / 4 by hand: 0.25 each (0.98 x 80 / 4: 19 a second each, 0.95)",
            together >= 0.95,
        )
    )
    bench.add(
        Figure(
            "B8",
            "four shards: busiest 1 s window, all together",
            f"{window} (heard all along: {heard})",
            f"<= {CAP}",
            "",
            heard <= CAP,
        )
    )
    sec.lines.append(
        f"Four shards of one campaign ({4 * per:,} recipients, about {per} each), started 0.3 s apart, each "
        f"with `max_messages_per_second` {CAP}: {accepted:,} accepted in {span:.1f} s from the first "
        f"arrival to the last = {accepted / span:.1f} msg/s; all four sent for "
        f"{all_four[1] - all_four[0]:.1f} s at {together * CAP:.1f} msg/s together (per shard "
        f"{', '.join(f'{_rate(s, *all_four):.1f}' for s in by_shard)}); shard runs took "
        f"{', '.join(f'{elapsed:.1f}' for elapsed in runs)} s; sandbox deaf spells "
        f"{len(deaf)}; median arrival gap "
        f"{1000 * statistics.median(b - a for a, b in itertools.pairwise(stamps)):.1f} ms."
    )


__all__ = ["b8"]
