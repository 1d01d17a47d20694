"""Peak memory of a campaign streamed from SQL is flat in the number of recipients.

For each size N (20,000 and 200,000 by default) this script writes N customers into a fresh SQLite
file, then runs ``MarketingMessageOperator`` over them with ``sql=`` and ``dry_run=True`` (every row is
read through a DB-API cursor, normalised, deduplicated, checked against the ledger and personalised
into a full payload; nothing is sent) in a fresh Python process, and reads that process's peak RSS
with ``resource.getrusage``. One process per size, so the peaks do not mix.

It exits with status 1 when the largest size's peak is more than ``--max-ratio`` (1.3) times the
smallest's.

Usage::

    python benchmarks/stream_memory.py [--sizes 20000 200000] [--max-ratio 1.3]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

SQL = "SELECT phone, first_name, discount, slug FROM customers ORDER BY id"


def _customers(count: int) -> Iterator[tuple[int, str, str, str, str]]:
    for i in range(count):
        yield (i, f"+49 151 {i:08d}", f"Customer{i}", f"{5 + i % 30}%", f"c{i}")


def make_database(path: pathlib.Path, count: int) -> None:
    """A SQLite file with ``count`` customers (written in a stream, so this costs no memory either)."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE customers "
            "(id INTEGER PRIMARY KEY, phone TEXT, first_name TEXT, discount TEXT, slug TEXT)"
        )
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", _customers(count))
    db.close()


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class _TaskInstance:
    dag_id = "benchmark"
    task_id = "stream_memory"
    map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        """Not used by a dry run."""


def child(size: int) -> None:
    """Run the dry-run campaign over ``size`` rows in this process; print a JSON line of figures."""
    import logging

    logging.disable(logging.WARNING)  # keep the benchmark's output readable
    from airflow_provider_wamm.operators.marketing import MarketingMessageOperator

    op = MarketingMessageOperator(
        task_id="stream_memory",
        sql=SQL,
        sql_conn_id="bench_crm",
        whatsapp_conn_id="bench_whatsapp",
        ledger_conn_id="bench_ledger",
        template_name="spring_sale",
        language="en_US",
        body_parameters=["{first_name}", "{discount}"],
        buttons=[{"type": "url", "index": 0, "text": "{slug}"}],
        campaign_id=f"stream-memory-{size}",
        dry_run=True,
        campaign_options={"progress_interval_s": 3600},
    )
    baseline = _peak_rss_mib()
    started = time.perf_counter()
    context: Any = {"ti": _TaskInstance(), "run_id": "benchmark", "logical_date": datetime.now(UTC)}
    result = op.execute(context)
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "size": size,
                "would_send": result["would_send"],
                "total": result["total"],
                "elapsed_s": elapsed,
                "baseline_mib": baseline,
                "peak_mib": _peak_rss_mib(),
            }
        )
    )


def measure(size: int, workdir: pathlib.Path) -> dict[str, Any]:
    """Build the database for ``size`` and run the campaign in a fresh interpreter."""
    home = workdir / f"home-{size}"
    home.mkdir()
    crm = workdir / f"crm-{size}.db"
    make_database(crm, size)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONN_BENCH_CRM": json.dumps({"conn_type": "sqlite", "host": str(crm)}),
        "AIRFLOW_CONN_BENCH_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(home / "ledger.db")}),
        "AIRFLOW_CONN_BENCH_WHATSAPP": json.dumps(
            {
                "conn_type": "whatsapp",
                "password": "dry-run-token",
                "extra": {"phone_number_id": "100000000000001"},
            }
        ),
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(size)], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"size {size}: the campaign process failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if figures["total"] != size or figures["would_send"] != size:
        raise SystemExit(f"size {size}: expected {size} rows to be read and rendered, got {figures}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000], help="numbers of rows")
    parser.add_argument("--max-ratio", type=float, default=1.3, help="largest allowed peak(max) / peak(min)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return 0

    sizes = sorted(args.sizes)
    with tempfile.TemporaryDirectory(prefix="wamm-stream-memory-") as tmp:
        results = [measure(size, pathlib.Path(tmp)) for size in sizes]
    print(f"{'rows':>10} {'rows/s':>9} {'after imports MiB':>18} {'peak RSS MiB':>13}")
    for r in results:
        rate = r["size"] / r["elapsed_s"]
        print(f"{r['size']:>10,} {rate:>9,.0f} {r['baseline_mib']:>18.1f} {r['peak_mib']:>13.1f}")
    ratio = results[-1]["peak_mib"] / results[0]["peak_mib"]
    growth = results[-1]["peak_mib"] - results[0]["peak_mib"]
    print(
        f"peak({sizes[-1]:,}) / peak({sizes[0]:,}) = {ratio:.3f} ({growth:+.1f} MiB for "
        f"{sizes[-1] - sizes[0]:,} more rows); limit {args.max_ratio}"
    )
    if ratio > args.max_ratio:
        print("FAIL: memory grows with the number of recipients")
        return 1
    print("OK: memory is flat in the number of recipients")
    return 0


if __name__ == "__main__":
    sys.exit(main())
