"""The throughput jobs: B1 (under a cap, flat answers), B2 (CPU per message), B3 (against what a user
would write instead)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import common
from harness import LATENCY_S, Bench, Figure
from latency import arrivals, busiest


def b1(bench: Bench) -> None:
    sec = bench.section("B1", "Throughput under a cap")
    sec.lines.append(
        f"Sandbox in its own process (`benchmarks/sandbox_server.py`: its message log kept out of the "
        f"garbage collector, a raised scheduling priority where allowed), {LATENCY_S * 1000:.0f} ms per "
        "answer, counting (not enforcing) messages per one-second window of their arrival; "
        "`run_campaign` in a child process with a SQLite-file ledger and the default `rate_headroom` "
        "(0.02: paced at 98% of the cap). Achieved = accepted / the campaign's own elapsed time "
        "(start-up, first ledger batch and the last answers included). The busiest window is given on "
        "all the sandbox's arrival stamps and, beside it, leaving out the windows over a spell in which "
        "the sandbox's event loop was too busy to hear (as in B1R); the sender's own window is counted "
        "on its write times. The target applies to the last two."
    )
    with common.SandboxProcess("--latency", str(LATENCY_S)) as sandbox:
        for cap, count, concurrency in (
            (80, bench.scale(20_000, 400), 32),
            (1000, bench.scale(20_000, 2_000), 128),
        ):
            sandbox.reset()
            data = common.run_child(
                "campaign",
                {
                    "url": sandbox.url,
                    "count": count,
                    "cap": cap,
                    "concurrency": concurrency,
                    "ledger": bench.ledger_path(f"b1-{cap}"),
                    "campaign_id": f"b1-{cap}",
                    "trace": True,
                },
            ).data
            counts = sandbox.counts()
            msgs, deaf = arrivals(sandbox)
            heard = busiest([m["t"] for m in msgs], deaf)
            own = data["trace"]["max_window"]
            longest = 1000 * max((end - begin for begin, end in deaf), default=0)
            result = data["result"]
            achieved = result["accepted"] / result["elapsed_s"]
            window = int(counts["max_window_count"])
            exact_once = (
                counts["accepted"] == count and counts["recipients"] == count and not counts["duplicates"]
            )
            ratio = achieved / cap
            bench.add(
                Figure(
                    "B1",
                    f"cap {cap} msg/s: achieved / cap ({count:,} recipients)",
                    f"{ratio:.3f} ({achieved:.1f} msg/s)",
                    ">= 0.95",
                    f"the cap, {cap} msg/s",
                    ratio >= 0.95 and exact_once,
                )
            )
            bench.add(
                Figure(
                    "B1",
                    f"cap {cap} msg/s: most messages in any 1 s window (sandbox)",
                    f"{window} (heard all along: {heard})",
                    f"<= {cap}",
                    f"sender's own: {own}",
                    heard <= cap and own <= cap and not counts["errors"],
                )
            )
            sec.lines.append(
                f"cap {cap}: {count:,} recipients, concurrency {concurrency}: {result['accepted']:,} "
                f"accepted in {result['elapsed_s']:.2f} s = {achieved:.1f} msg/s; sandbox: "
                f"{counts['accepted']:,} accepted, {counts['recipients']:,} recipients, duplicates "
                f"{len(counts['duplicates'])}, errors {counts['errors'] or 'none'}, max window {window} "
                f"({heard} leaving out {len(deaf)} deaf spells, longest {longest:.0f} ms; the sender's "
                f"own {own}); "
                f"CPU {1000 * data['cpu_s'] / max(1, result['accepted']):.3f} ms/message."
            )


def b2(bench: Bench) -> None:
    sec = bench.section("B2", "CPU per message of the sending process")
    count = bench.scale(10_000, 1_000)
    sec.lines.append(
        f"{count:,} messages each, sandbox at {LATENCY_S * 1000:.0f} ms per answer. CPU = user + system "
        "time of the sending process (`resource.getrusage(RUSAGE_SELF)`) around the measured call, "
        "divided by the messages sent. The campaign includes reading and validating every row, "
        "personalisation, the SQLite ledger (claims and outcomes), pacing at 1,000 msg/s with 128 "
        "threads. The bare loop is 128 threads posting the same JSON bodies through one "
        "`urllib3.PoolManager`, with no validation, ledger or pacing."
    )
    runs: dict[str, dict[str, Any]] = {}
    with common.SandboxProcess("--latency", str(LATENCY_S)) as sandbox:
        for name, kind, options in (
            ("campaign", "campaign", {"transport": "fast"}),
            ("bare", "bare_urllib3", {"threads": 128}),
            ("campaign_requests", "campaign", {"transport": "requests"}),
        ):
            sandbox.reset()
            spec = {
                **options,
                "url": sandbox.url,
                "count": count,
                "cap": 1000,
                "concurrency": 128,
                "ledger": bench.ledger_path(f"b2-{name}"),
                "campaign_id": f"b2-{name}",
            }
            data = common.run_child(kind, spec).data
            sent = data["result"]["accepted"] if "result" in data else data["sent"]
            runs[name] = {"ms": 1000 * data["cpu_s"] / max(1, sent), "sent": sent, "wall": data["wall_s"]}
            sec.lines.append(
                f"{name}: {sent:,} sent in {data['wall_s']:.2f} s, CPU {data['cpu_s']:.2f} s = "
                f"{runs[name]['ms']:.3f} ms/message"
            )
    ms, bare, before = runs["campaign"]["ms"], runs["bare"]["ms"], runs["campaign_requests"]["ms"]
    bench.add(
        Figure(
            "B2",
            "CPU per message, whole campaign",
            f"{ms:.3f} ms",
            "<= 0.6 ms",
            f"bare urllib3 loop {bare:.3f} ms",
            ms <= 0.6,
        )
    )
    bench.add(
        Figure(
            "B2",
            "CPU per message / bare urllib3 loop",
            f"{ms / bare:.2f}x",
            "<= 1.5x",
            f"bare urllib3 loop {bare:.3f} ms",
            ms / bare <= 1.5,
        )
    )
    bench.add(
        Figure(
            "B2",
            "before: the same campaign sending through requests.Session",
            f"{before:.3f} ms ({before / bare:.2f}x the bare loop)",
            "(before/after)",
            f"after: {ms:.3f} ms",
            None,
        )
    )


def _http_provider(bench: Bench) -> bool:
    """Make sure apache-airflow-providers-http is importable, installing it (additions only)."""
    if importlib.util.find_spec("airflow.providers.http") is not None:
        return True
    print("  installing apache-airflow-providers-http for the B3 baseline", flush=True)
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=False,
    )
    constraints = bench.work / "constraints.txt"
    constraints.write_text(freeze.stdout)
    uv = shutil.which("uv", path=os.path.dirname(sys.executable))
    command = (
        [uv, "pip", "install", "--python", sys.executable] if uv else [sys.executable, "-m", "pip", "install"]
    )
    done = subprocess.run(
        [*command, "-c", str(constraints), "apache-airflow-providers-http"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:])
        return False
    importlib.invalidate_caches()
    return True


def b3(bench: Bench) -> None:
    sec = bench.section("B3", "Against what a user would write instead")
    provider_n = bench.scale(5_000, 1_000)
    sequential_n = bench.scale(200, 30)
    mapped_n = bench.scale(200, 10)
    sec.lines.append(
        f"Same sandbox, {LATENCY_S * 1000:.0f} ms per answer, the same recipients (the first ones of "
        f"one list). The provider sends {provider_n:,} of them at Meta's highest cap (1,000 msg/s, "
        f"128 threads); the sequential `requests.post` loop (what a PythonOperator would do) sends the "
        f"first {sequential_n}: its rate does not depend on the count."
    )
    with common.SandboxProcess("--latency", str(LATENCY_S)) as sandbox:
        sandbox.reset()
        campaign = common.run_child(
            "campaign",
            {
                "url": sandbox.url,
                "count": provider_n,
                "cap": 1000,
                "concurrency": 128,
                "ledger": bench.ledger_path("b3"),
                "campaign_id": "b3",
            },
        ).data
        result = campaign["result"]
        provider_rate = result["accepted"] / result["elapsed_s"]
        sandbox.reset()
        seq = common.run_child("sequential_requests", {"url": sandbox.url, "count": sequential_n}).data
        seq_rate = seq["sent"] / seq["wall_s"]
        sec.lines.append(
            f"provider: {result['accepted']:,} in {result['elapsed_s']:.2f} s = "
            f"{provider_rate:.1f} msg/s; sequential loop: {seq['sent']} in {seq['wall_s']:.2f} s = "
            f"{seq_rate:.2f} msg/s."
        )
        bench.add(
            Figure(
                "B3",
                "throughput / sequential requests.post loop",
                f"{provider_rate / seq_rate:.0f}x ({provider_rate:.0f} vs {seq_rate:.2f} msg/s)",
                ">= 50x",
                f"sequential loop {seq_rate:.2f} msg/s",
                provider_rate / seq_rate >= 50,
            )
        )
        if not _http_provider(bench):
            bench.errors.append("B3: apache-airflow-providers-http could not be installed")
            return
        home = bench.work / "airflow-home"
        home.mkdir(exist_ok=True)
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(common.HERE / "dags"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "WAMM_BENCH_HTTP_COUNT": str(mapped_n),
            "AIRFLOW_CONN_BENCH_HTTP": json.dumps(
                {
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": int(sandbox.url.rsplit(":", 1)[1]),
                    "schema": "http",
                }
            ),
        }
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            bench.errors.append(f"B3: airflow db migrate failed: {migrate.stderr[-500:]}")
            return
        sandbox.reset()
        mapped = common.run_child("mapped_http", {}, env=env).data
        mapped_rate = mapped["sent"] / mapped["wall_s"]
        sec.lines.append(
            f"mapped HttpOperator: {mapped['sent']} of {mapped['tasks']} mapped task instances succeeded "
            f"in {mapped['wall_s']:.1f} s = {mapped_rate:.2f} msg/s "
            f"({mapped['wall_s'] / max(1, mapped['tasks']):.2f} s per task instance, "
            f"{mapped['cpu_s'] / max(1, mapped['tasks']):.2f} s CPU each; sandbox accepted "
            f"{sandbox.counts()['accepted']})."
        )
        sec.lines.append(
            "The mapped baseline is `HttpOperator.partial(...).expand(data=[one JSON body per "
            f"recipient])` (`benchmarks/dags/bench_mapped_http.py`) on {mapped_n} recipients, run by "
            "`dag.test()` on a SQLite metadata database: the task instances run one after the other in "
            "one process, with no scheduler loop, queueing or worker start-up, so this is a best case "
            "for per-task overhead; a deployment runs several at once but pays seconds of scheduling "
            "per task instance. apache-airflow-providers-http is installed into the environment by the "
            "benchmark when missing (it is not a dependency of the provider)."
        )
        bench.add(
            Figure(
                "B3",
                "throughput / HttpOperator mapped per recipient (dag.test)",
                f"{provider_rate / mapped_rate:.0f}x ({mapped_rate:.2f} msg/s mapped)",
                "(reported)",
                f"mapped HttpOperator {mapped_rate:.2f} msg/s",
                None,
            )
        )


__all__ = ["b1", "b2", "b3"]
