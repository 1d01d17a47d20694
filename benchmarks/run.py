"""Run every benchmark of the provider against the local sandbox and write ``docs/benchmarks.md``.

Usage: ``python benchmarks/run.py`` (what ``make bench`` runs), or ``--only B1,B4`` for some of them.
Each figure is measured next to its baseline in the same run, on this machine, and checked against
its target; the exit status is 1 when any figure misses its target. The sandbox (the stand-in for
Meta) and every measured piece run in processes of their own (see ``common.py`` and ``child.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common
import latency

RUN = "python benchmarks/run.py"
LATENCY_S = 0.1


@dataclass
class Figure:
    """One measured figure with its target (``passed`` is ``None`` for figures without one)."""

    bench: str
    what: str
    value: str
    target: str
    baseline: str
    passed: bool | None
    notes: str = ""


@dataclass
class Section:
    """The detail of one benchmark for the report: settings and raw numbers."""

    bench: str
    title: str
    lines: list[str] = field(default_factory=list)


class Bench:
    """Runs the benchmarks and keeps their figures."""

    def __init__(self, work: pathlib.Path, *, quick: bool) -> None:
        self.work = work
        self.quick = quick
        self.figures: list[Figure] = []
        self.sections: dict[str, Section] = {}
        self.errors: list[str] = []
        self.timings: dict[str, float] = {}

    def scale(self, n: int, quick: int) -> int:
        """``n``, or ``quick`` in a ``--quick`` run (a smoke test of the harness, not a measurement)."""
        return quick if self.quick else n

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        mark = {True: "pass", False: "FAIL", None: "info"}[figure.passed]
        print(f"  [{mark}] {figure.bench} {figure.what}: {figure.value} (target {figure.target})", flush=True)

    def section(self, bench: str, title: str) -> Section:
        return self.sections.setdefault(bench, Section(bench, title))

    def ledger_path(self, name: str) -> str:
        path = self.work / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            pathlib.Path(f"{path}{suffix}").unlink(missing_ok=True)
        return str(path)

    # ------------------------------------------------------------------------------------------
    # B1: throughput under a cap
    # ------------------------------------------------------------------------------------------

    def b1(self) -> None:
        sec = self.section("B1", "Throughput under a cap")
        sec.lines.append(
            f"Sandbox in its own process (`benchmarks/sandbox_server.py`: its message log kept out of the "
            f"garbage collector, a raised scheduling priority where allowed), {LATENCY_S * 1000:.0f} ms per "
            "answer, counting (not enforcing) messages per one-second window of their arrival; "
            "`run_campaign` in a child process with a SQLite-file ledger and the default `rate_headroom` "
            "(0.02: paced at 98% of the cap). Achieved = accepted / the campaign's own elapsed time "
            "(start-up, first ledger batch and the last answers included)."
        )
        with common.SandboxProcess("--latency", str(LATENCY_S)) as sandbox:
            for cap, count, concurrency in (
                (80, self.scale(20_000, 400), 32),
                (1000, self.scale(20_000, 2_000), 128),
            ):
                sandbox.reset()
                data = common.run_child(
                    "campaign",
                    {
                        "url": sandbox.url,
                        "count": count,
                        "cap": cap,
                        "concurrency": concurrency,
                        "ledger": self.ledger_path(f"b1-{cap}"),
                        "campaign_id": f"b1-{cap}",
                    },
                ).data
                counts = sandbox.counts()
                result = data["result"]
                achieved = result["accepted"] / result["elapsed_s"]
                window = int(counts["max_window_count"])
                exact_once = (
                    counts["accepted"] == count and counts["recipients"] == count and not counts["duplicates"]
                )
                ratio = achieved / cap
                self.add(
                    Figure(
                        "B1",
                        f"cap {cap} msg/s: achieved / cap ({count:,} recipients)",
                        f"{ratio:.3f} ({achieved:.1f} msg/s)",
                        ">= 0.95",
                        f"the cap, {cap} msg/s",
                        ratio >= 0.95 and exact_once,
                    )
                )
                self.add(
                    Figure(
                        "B1",
                        f"cap {cap} msg/s: most messages in any 1 s window (sandbox)",
                        f"{window}",
                        f"<= {cap}",
                        f"the cap, {cap} msg/s",
                        window <= cap and not counts["errors"],
                    )
                )
                sec.lines.append(
                    f"cap {cap}: {count:,} recipients, concurrency {concurrency}: {result['accepted']:,} "
                    f"accepted in {result['elapsed_s']:.2f} s = {achieved:.1f} msg/s; sandbox: "
                    f"{counts['accepted']:,} accepted, {counts['recipients']:,} recipients, duplicates "
                    f"{len(counts['duplicates'])}, errors {counts['errors'] or 'none'}, max window {window}; "
                    f"CPU {1000 * data['cpu_s'] / max(1, result['accepted']):.3f} ms/message."
                )

    # ------------------------------------------------------------------------------------------
    # B2: CPU per message
    # ------------------------------------------------------------------------------------------

    def b2(self) -> None:
        sec = self.section("B2", "CPU per message of the sending process")
        count = self.scale(10_000, 1_000)
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
                    "ledger": self.ledger_path(f"b2-{name}"),
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
        self.add(
            Figure(
                "B2",
                "CPU per message, whole campaign",
                f"{ms:.3f} ms",
                "<= 0.6 ms",
                f"bare urllib3 loop {bare:.3f} ms",
                ms <= 0.6,
            )
        )
        self.add(
            Figure(
                "B2",
                "CPU per message / bare urllib3 loop",
                f"{ms / bare:.2f}x",
                "<= 1.5x",
                f"bare urllib3 loop {bare:.3f} ms",
                ms / bare <= 1.5,
            )
        )
        self.add(
            Figure(
                "B2",
                "before: the same campaign sending through requests.Session",
                f"{before:.3f} ms ({before / bare:.2f}x the bare loop)",
                "(before/after)",
                f"after: {ms:.3f} ms",
                None,
            )
        )

    # ------------------------------------------------------------------------------------------
    # B3: against what a user would write instead
    # ------------------------------------------------------------------------------------------

    def _http_provider(self) -> bool:
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
        constraints = self.work / "constraints.txt"
        constraints.write_text(freeze.stdout)
        uv = shutil.which("uv", path=os.path.dirname(sys.executable))
        command = (
            [uv, "pip", "install", "--python", sys.executable]
            if uv
            else [sys.executable, "-m", "pip", "install"]
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

    def b3(self) -> None:
        sec = self.section("B3", "Against what a user would write instead")
        provider_n = self.scale(5_000, 1_000)
        sequential_n = self.scale(200, 30)
        mapped_n = self.scale(200, 10)
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
                    "ledger": self.ledger_path("b3"),
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
            self.add(
                Figure(
                    "B3",
                    "throughput / sequential requests.post loop",
                    f"{provider_rate / seq_rate:.0f}x ({provider_rate:.0f} vs {seq_rate:.2f} msg/s)",
                    ">= 50x",
                    f"sequential loop {seq_rate:.2f} msg/s",
                    provider_rate / seq_rate >= 50,
                )
            )
            if not self._http_provider():
                self.errors.append("B3: apache-airflow-providers-http could not be installed")
                return
            home = self.work / "airflow-home"
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
                self.errors.append(f"B3: airflow db migrate failed: {migrate.stderr[-500:]}")
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
            self.add(
                Figure(
                    "B3",
                    "throughput / HttpOperator mapped per recipient (dag.test)",
                    f"{provider_rate / mapped_rate:.0f}x ({mapped_rate:.2f} msg/s mapped)",
                    "(reported)",
                    f"mapped HttpOperator {mapped_rate:.2f} msg/s",
                    None,
                )
            )

    # ------------------------------------------------------------------------------------------
    # B4 and B5: memory of the whole operator path, and resuming
    # ------------------------------------------------------------------------------------------

    def b4_b5(self) -> None:
        sec = self.section("B4", "Peak memory streaming recipients through the operator")
        sizes = [self.scale(10_000, 1_000), self.scale(100_000, 5_000), self.scale(1_000_000, 20_000)]
        crm = self.work / "crm.db"
        seeded = common.run_child("seed_recipients", {"path": str(crm), "count": sizes[-1]}).data
        sec.lines.append(
            f"`MarketingMessageOperator.execute` in a fresh process per run, `sql=` a SELECT over a SQLite "
            f"table of {sizes[-1]:,} recipients (seeded in {seeded['wall_s']:.1f} s) through a `sqlite` "
            "connection (rows streamed with fetchmany), a SQLite-file ledger, personalisation of "
            "`spring_sale`. Peak RSS is the process's `ru_maxrss` (imports of Airflow and the provider "
            "included); the RSS before `execute` is shown for reference. Dry runs validate and render every "
            "row and read the ledger; send runs go to the sandbox at 0 ms latency, no cap, 5,000 msg/s, "
            "32 threads. 1,000,000 recipients are measured as a dry run only: the send path at about "
            "2,000 msg/s on this machine would take over 8 minutes."
        )
        peaks: dict[tuple[str, int], float] = {}
        with common.SandboxProcess("--latency", "0") as sandbox:
            base_env = {
                "AIRFLOW_HOME": str(self.work / "airflow-home-b4"),
                "AIRFLOW_CONN_WAMM_BENCH_WHATSAPP": json.dumps(
                    {
                        "conn_type": "whatsapp",
                        "host": sandbox.url,
                        "password": common.TOKEN,
                        "extra": {"phone_number_id": common.PHONE_NUMBER_ID, "waba_id": common.WABA_ID},
                    }
                ),
                "AIRFLOW_CONN_WAMM_BENCH_CRM": json.dumps({"conn_type": "sqlite", "host": str(crm)}),
            }
            plan = [("dry", n) for n in sizes] + [("send", n) for n in sizes[:2]]
            ledgers: dict[tuple[str, int], str] = {}
            for mode, n in plan:
                ledger = self.ledger_path(f"b4-{mode}-{n}")
                ledgers[(mode, n)] = ledger
                env = {
                    **base_env,
                    "AIRFLOW_CONN_WAMM_BENCH_LEDGER": json.dumps({"conn_type": "sqlite", "host": ledger}),
                }
                sandbox.reset()
                data = common.run_child(
                    "operator",
                    {"count": n, "campaign_id": f"b4-{mode}-{n}", "dry_run": mode == "dry"},
                    env=env,
                ).data
                result = data["result"]
                done = result["would_send"] if mode == "dry" else result["accepted"]
                peaks[(mode, n)] = data["peak_rss_mb"]
                sec.lines.append(
                    f"{mode} {n:,}: {done:,} {'would be sent' if mode == 'dry' else 'sent'} in "
                    f"{data['wall_s']:.1f} s; RSS before execute {data['rss_before_mb']:.1f} MiB, "
                    f"peak {data['peak_rss_mb']:.1f} MiB"
                )
                if done != n:
                    self.errors.append(f"B4: {mode} {n}: {done} of {n} handled")
            small, big = sizes[0], sizes[-1]
            ratio = peaks[("dry", big)] / peaks[("dry", small)]
            self.add(
                Figure(
                    "B4",
                    f"peak RSS, dry run, {big:,} / {small:,} recipients",
                    f"{ratio:.2f}x ({peaks[('dry', big)]:.0f} / {peaks[('dry', small)]:.0f} MiB)",
                    "<= 1.2x",
                    f"{small:,} recipients: {peaks[('dry', small)]:.0f} MiB",
                    ratio <= 1.2,
                )
            )
            self.add(
                Figure(
                    "B4",
                    f"peak RSS, dry run, {big:,} recipients",
                    f"{peaks[('dry', big)]:.0f} MiB",
                    "<= 300 MB",
                    f"{small:,} recipients: {peaks[('dry', small)]:.0f} MiB",
                    peaks[("dry", big)] * 1.048576 <= 300,
                )
            )
            mid = sizes[1]
            send_ratio = peaks[("send", mid)] / peaks[("send", small)]
            self.add(
                Figure(
                    "B4",
                    f"peak RSS, sending, {mid:,} / {small:,} recipients",
                    f"{send_ratio:.2f}x ({peaks[('send', mid)]:.0f} / {peaks[('send', small)]:.0f} MiB)",
                    "<= 1.2x",
                    f"{small:,} recipients: {peaks[('send', small)]:.0f} MiB",
                    send_ratio <= 1.2,
                )
            )

            # B5: the finished send campaign, run again with the same campaign id and ledger.
            sec5 = self.section("B5", "Resuming a finished campaign")
            env = {
                **base_env,
                "AIRFLOW_CONN_WAMM_BENCH_LEDGER": json.dumps(
                    {"conn_type": "sqlite", "host": ledgers[("send", mid)]}
                ),
            }
            sandbox.reset()
            data = common.run_child(
                "operator", {"count": mid, "campaign_id": f"b4-send-{mid}", "dry_run": False}, env=env
            ).data
            result = data["result"]
            sent = sandbox.counts()["accepted"]
            sec5.lines.append(
                f"The {mid:,}-recipient campaign of B4 (all accepted), run again through "
                f"`MarketingMessageOperator.execute` with the same campaign id, ledger and SQL: "
                f"{data['wall_s']:.2f} s; already done {result.get('already_done', 0):,}, accepted "
                f"{result['accepted']}, requests that reached the sandbox: {sent}."
            )
            self.add(
                Figure(
                    "B5",
                    f"re-run of a finished {mid:,}-recipient campaign",
                    f"{data['wall_s']:.2f} s, {sent} sent",
                    "<= 10 s, sends nothing",
                    f"first run: {mid:,} sent",
                    data["wall_s"] <= 10 and sent == 0 and result["accepted"] == 0,
                )
            )

    # ------------------------------------------------------------------------------------------
    # B6: webhook ingest
    # ------------------------------------------------------------------------------------------

    def b6(self) -> None:
        sec = self.section("B6", "Webhook receiver ingest")
        messages = self.scale(20_000, 2_000)
        batches = 3 * messages // 1000
        path = self.ledger_path("b6")
        seeded = common.run_child(
            "seed_ledger", {"path": path, "count": messages, "campaign_id": "b6", "statuses": False}
        ).data
        port = common.free_port()
        secret = "bench-app-secret"
        argv = [
            sys.executable,
            "-m",
            "airflow_provider_wamm.webhooks.cli",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ledger-url",
            f"sqlite:///{path}",
        ]
        env = {"WAMM_APP_SECRET": secret, "WAMM_VERIFY_TOKEN": "bench-verify-token"}
        sec.lines.append(
            f"`wamm-webhooks` (the receiver app of `webhooks/` under uvicorn, log level info) in its own "
            f"process on a SQLite-file ledger holding a campaign of {messages:,} sends "
            f"(seeded in {seeded['wall_s']:.1f} s). The client posts {batches} signed bodies of 1,000 "
            "statuses each (Meta's format, `X-Hub-Signature-256`): sent, then delivered, then read for "
            "every message, about 1% failed, over keep-alive connections."
        )
        for concurrency in (1, 4):
            with common.Background(argv, health_url=f"http://127.0.0.1:{port}/health", env=env) as server:
                cpu0 = server.cpu_seconds()
                data = common.run_child(
                    "webhook_load",
                    {
                        "host": "127.0.0.1",
                        "port": port,
                        "app_secret": secret,
                        "batch": 1000,
                        "batches": batches,
                        "messages": messages,
                        "concurrency": concurrency,
                    },
                ).data
                server_cpu = server.cpu_seconds() - cpu0
            rate = data["statuses"] / data["wall_s"]
            ok = not data["failures"] and data["statuses"] == batches * 1000
            sec.lines.append(
                f"{concurrency} batch(es) in flight: {data['statuses']:,} statuses stored in "
                f"{data['wall_s']:.2f} s = {rate:,.0f}/s; batch latency p50 {data['p50_ms']} ms, p90 "
                f"{data['p90_ms']} ms, max {data['max_ms']} ms; receiver CPU "
                f"{1e6 * server_cpu / max(1, data['statuses']):.0f} us/status"
                + (f"; failures: {data['failures']}" if data["failures"] else "")
            )
            self.add(
                Figure(
                    "B6",
                    f"ingest, {concurrency} signed batch(es) of 1,000 in flight",
                    f"{rate:,.0f} statuses/s, p50 {data['p50_ms']:.0f} ms",
                    ">= 3,000/s, p50 <= 250 ms" if concurrency == 1 else "(reported)",
                    "the targets",
                    (ok and rate >= 3000 and data["p50_ms"] <= 250) if concurrency == 1 else None,
                )
            )

    # ------------------------------------------------------------------------------------------
    # B7: the report
    # ------------------------------------------------------------------------------------------

    def b7(self) -> None:
        sec = self.section("B7", "Report over a million sends")
        count = self.scale(1_000_000, 50_000)
        path = self.ledger_path("b7")
        seeded = common.run_child("seed_ledger", {"path": path, "count": count, "campaign_id": "b7"}).data
        data = common.run_child("report", {"path": path, "campaign_id": "b7"}).data
        sec.lines.append(
            f"A SQLite-file ledger with {seeded['sends']:,} sends (95% accepted) and {seeded['statuses']:,} "
            f"statuses (delivered, read with clicks, failed, still sent; 10% routed to Cloud API), seeded "
            f"with executemany in {seeded['wall_s']:.1f} s. `campaign.report.build_report` in a fresh "
            f"process: {data['wall_s']:.2f} s ({data['summary']}); `settle_state`: {data['settle_s']:.2f} s."
        )
        self.add(
            Figure(
                "B7",
                f"build_report over {count:,} sends with statuses",
                f"{data['wall_s']:.2f} s",
                "<= 5 s",
                f"settle_state {data['settle_s']:.2f} s",
                data["wall_s"] <= 5 and data["total"] == count,
            )
        )


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------

#: The record of the optimisations, appended to the report (static text, kept next to this script).
HISTORY = common.HERE / "optimisations.md"


def write_report(
    bench: Bench, path: pathlib.Path, started: float, machine: dict[str, str], argv: str
) -> None:
    lines = [
        "---",
        "orphan: true",
        "---",
        "",
        "# Benchmarks",
        "",
        f"Generated by `{argv}` (`make bench`) on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC in "
        f"{(time.monotonic() - started) / 60:.1f} minutes. Every figure was measured in that run, next to "
        "its baseline, against the local sandbox (`wamm-sandbox`, in its own process).",
        "",
        "| machine | |",
        "| --- | --- |",
        f"| CPU | {machine['cpu']} |",
        f"| cores | {machine['cores']} |",
        f"| RAM | {machine['ram']} |",
        f"| Python | {machine['python']} |",
        f"| OS | {machine['os']} |",
        f"| load average at the start | {machine['load']} |",
        "",
        "The machine is shared (other work ran at the same time), so absolute numbers drift between runs;"
        " each figure is compared with its baseline from the same run.",
        "",
        "| | figure | measured | target | baseline, same run | result | command |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in bench.figures:
        result = {True: "pass", False: "**FAIL**", None: "-"}[f.passed]
        lines.append(
            f"| {f.bench} | {f.what} | {f.value} | {f.target} | {f.baseline} | {result} | "
            f"`{RUN} --only {'B4' if f.bench == 'B5' else f.bench}` |"
        )
    if bench.errors:
        lines += ["", "Problems:", ""] + [f"- {e}" for e in bench.errors]
    lines += ["", "## Details", ""]
    for key in sorted(bench.sections):
        sec = bench.sections[key]
        lines += [f"### {sec.bench}: {sec.title}", ""]
        for line in sec.lines:
            lines += [line, ""]
        if key in bench.timings:
            lines += [f"({bench.timings[key]:.0f} s)", ""]
    lines += [HISTORY.read_text()]
    path.write_text("\n".join(lines).rstrip() + "\n")


STEPS: dict[str, Callable[[Bench], None]] = {
    "B1": Bench.b1,
    "B1R": latency.b1r,
    "B2R": latency.b2r,
    "B8": latency.b8,
    "B2": Bench.b2,
    "B3": Bench.b3,
    "B4": Bench.b4_b5,
    "B6": Bench.b6,
    "B7": Bench.b7,
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
