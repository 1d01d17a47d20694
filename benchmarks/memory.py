"""B4 and B5: peak memory streaming recipients through the operator, and resuming a finished campaign."""

from __future__ import annotations

import json

import common
from harness import Bench, Figure


def b4_b5(bench: Bench) -> None:
    sec = bench.section("B4", "Peak memory streaming recipients through the operator")
    sizes = [bench.scale(10_000, 1_000), bench.scale(100_000, 5_000), bench.scale(1_000_000, 20_000)]
    crm = bench.work / "crm.db"
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
            "AIRFLOW_HOME": str(bench.work / "airflow-home-b4"),
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
            ledger = bench.ledger_path(f"b4-{mode}-{n}")
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
                bench.errors.append(f"B4: {mode} {n}: {done} of {n} handled")
        small, big = sizes[0], sizes[-1]
        ratio = peaks[("dry", big)] / peaks[("dry", small)]
        bench.add(
            Figure(
                "B4",
                f"peak RSS, dry run, {big:,} / {small:,} recipients",
                f"{ratio:.2f}x ({peaks[('dry', big)]:.0f} / {peaks[('dry', small)]:.0f} MiB)",
                "<= 1.2x",
                f"{small:,} recipients: {peaks[('dry', small)]:.0f} MiB",
                ratio <= 1.2,
            )
        )
        bench.add(
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
        bench.add(
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
        sec5 = bench.section("B5", "Resuming a finished campaign")
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
        bench.add(
            Figure(
                "B5",
                f"re-run of a finished {mid:,}-recipient campaign",
                f"{data['wall_s']:.2f} s, {sent} sent",
                "<= 10 s, sends nothing",
                f"first run: {mid:,} sent",
                data["wall_s"] <= 10 and sent == 0 and result["accepted"] == 0,
            )
        )


__all__ = ["b4_b5"]
