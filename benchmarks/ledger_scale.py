"""B6 and B7: the webhook receiver's ingest and the report over a million sends."""

from __future__ import annotations

import sys

import common
from harness import Bench, Figure


def b6(bench: Bench) -> None:
    sec = bench.section("B6", "Webhook receiver ingest")
    messages = bench.scale(20_000, 2_000)
    batches = 3 * messages // 1000
    path = bench.ledger_path("b6")
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
        bench.add(
            Figure(
                "B6",
                f"ingest, {concurrency} signed batch(es) of 1,000 in flight",
                f"{rate:,.0f} statuses/s, p50 {data['p50_ms']:.0f} ms",
                ">= 3,000/s, p50 <= 250 ms" if concurrency == 1 else "(reported)",
                "the targets",
                (ok and rate >= 3000 and data["p50_ms"] <= 250) if concurrency == 1 else None,
            )
        )


def b7(bench: Bench) -> None:
    sec = bench.section("B7", "Report over a million sends")
    count = bench.scale(1_000_000, 50_000)
    path = bench.ledger_path("b7")
    seeded = common.run_child("seed_ledger", {"path": path, "count": count, "campaign_id": "b7"}).data
    data = common.run_child("report", {"path": path, "campaign_id": "b7"}).data
    sec.lines.append(
        f"A SQLite-file ledger with {seeded['sends']:,} sends (95% accepted) and {seeded['statuses']:,} "
        f"statuses (delivered, read with clicks, failed, still sent; 10% routed to Cloud API), seeded "
        f"with executemany in {seeded['wall_s']:.1f} s. `campaign.report.build_report` in a fresh "
        f"process: {data['wall_s']:.2f} s ({data['summary']}); `settle_state`: {data['settle_s']:.2f} s."
    )
    bench.add(
        Figure(
            "B7",
            f"build_report over {count:,} sends with statuses",
            f"{data['wall_s']:.2f} s",
            "<= 5 s",
            f"settle_state {data['settle_s']:.2f} s",
            data["wall_s"] <= 5 and data["total"] == count,
        )
    )


__all__ = ["b6", "b7"]
