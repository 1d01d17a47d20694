"""Run every benchmark of the provider against the local sandbox and write ``docs/benchmarks.md``.

Usage: ``python benchmarks/run.py`` (what ``make bench`` runs), or ``--only B1,B4`` for some of them.
Each figure is measured next to its baseline in the same run, on this machine, and checked against
its target; the exit status is 1 when any figure misses its target. The sandbox (the stand-in for
Meta) and every measured piece run in processes of their own (see ``common.py`` and ``child.py``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common
import latency
import ledger_scale
import memory
import shared_cap
import throughput
from harness import RUN, Bench
from report import write_report

STEPS: dict[str, Callable[[Bench], None]] = {
    "B1": throughput.b1,
    "B1R": latency.b1r,
    "B2R": latency.b2r,
    "B8": shared_cap.b8,
    "B2": throughput.b2,
    "B3": throughput.b3,
    "B4": memory.b4_b5,
    "B6": ledger_scale.b6,
    "B7": ledger_scale.b7,
}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; 0 when every figure meets its target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmarks, e.g. B1,B4 (B5 runs with B4)")
    parser.add_argument(
        "--output", type=pathlib.Path, default=common.ROOT / "docs" / "benchmarks.md", help="report file"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the harness")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases)")
    args = parser.parse_args(argv)
    wanted = [s.strip().upper() for s in args.only.split(",")] if args.only else list(STEPS)
    wanted = ["B4" if w == "B5" else w for w in wanted]
    unknown = [w for w in wanted if w not in STEPS]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {sorted(STEPS)} (B5 runs with B4)")
    started = time.monotonic()
    machine = common.machine()
    print(f"machine: {machine}", flush=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="wamm-bench-"))
    bench = Bench(work, quick=args.quick)
    try:
        for name, step in STEPS.items():
            if name not in wanted:
                continue
            print(f"{name} ...", flush=True)
            t0 = time.monotonic()
            try:
                step(bench)
            except Exception as exc:
                bench.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            bench.timings[name] = time.monotonic() - t0
            print(f"{name} done in {bench.timings[name]:.0f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    command = RUN + (f" --only {args.only}" if args.only else "") + (" --quick" if args.quick else "")
    write_report(bench, args.output, started, machine, command)
    failed = [f for f in bench.figures if f.passed is False]
    print(
        f"wrote {args.output}: {len(bench.figures)} figures, {len(failed)} missed, {len(bench.errors)} errors"
    )
    return 1 if failed or bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
