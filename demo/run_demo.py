"""The provider end to end on one machine, no Meta account needed (``make demo``).

It starts the sandbox (a local stand-in for the Graph API) and the webhook receiver, seeds a SQLite
CRM with fictional customers (some with bad numbers, some who opted out earlier, a few listed twice),
runs the example DAG ``wamm_campaign_from_sql`` with ``airflow dags test`` while showing progress,
then prints the campaign report, checks it against the seeded data and the sandbox's own record,
and says where the HTML report is. Everything runs offline and is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
DAG_ID = "wamm_campaign_from_sql"
TOKEN = "demo-sandbox-token"  # the sandbox's token: not a real secret
APP_SECRET = "demo-app-secret"
VERIFY_TOKEN = "demo-verify-token"
PHONE_NUMBER_ID = "100000000000001"
WABA_ID = "200000000000001"
FIRST_NAMES = ["Ana", "Ben", "Chiara", "Deniz", "Emil", "Fatma", "Greta", "Hugo", "Ines", "Jonas", "Kira"]
MOBILE_PREFIXES = ["151", "152", "157", "160", "162", "170", "171", "172", "175", "176", "177", "178"]
BAD_NUMBERS = ["12345", "not a number", "+49 1", "0000", "+999 123 456", "call me", "+49 30 1"]


@dataclasses.dataclass
class Seeded:
    """What the demo put in the CRM, and so what the report must show."""

    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    opted_out: int = 0

    @property
    def to_send(self) -> int:
        return self.valid - self.opted_out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mobile(rng: random.Random) -> str:
    return "49" + rng.choice(MOBILE_PREFIXES) + "".join(rng.choice("0123456789") for _ in range(8))


def _written(rng: random.Random, digits: str) -> str:
    """The same number the way people type it into a CRM."""
    national = "0" + digits[2:]
    style = rng.randrange(4)
    if style == 0:
        return "+" + digits
    if style == 1:
        return f"+49 {digits[2:5]} {digits[5:9]} {digits[9:]}"
    if style == 2:
        return f"{national[:4]}/{national[4:]}"  # national format: the DAG reads it with region DE
    return "0049" + digits[2:]


def seed_crm(path: pathlib.Path, ledger_url: str, customers: int, seed: int) -> Seeded:
    """Create the CRM table and record earlier opt-outs in the ledger's suppression list."""
    from airflow_provider_wamm.campaign.ledger import Ledger, Suppression
    from airflow_provider_wamm.graph.recipients import normalize_phone

    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    seeded = Seeded()
    rows: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    opted_out: list[str] = []
    while len(rows) < customers:
        customer = len(rows)
        name = rng.choice(FIRST_NAMES)
        discount = rng.choice([10, 15, 20, 25])
        slug = f"spring-{customer:05d}"
        signed_up = (today - timedelta(days=customer % 60)).isoformat()  # for safe_backfill.py's query
        roll = rng.random()
        if roll < 0.03:
            rows.append((rng.choice(BAD_NUMBERS), name, discount, slug, "DE", signed_up))
            seeded.invalid += 1
            continue
        if roll < 0.04 and seen:
            again = rng.choice(sorted(seen)[:50])
            rows.append((_written(rng, again), name, discount, slug, "DE", signed_up))
            seeded.duplicates += 1
            continue
        digits = _mobile(rng)
        if digits in seen:
            continue
        assert normalize_phone(_written(rng, digits), default_region="DE") == digits
        seen.add(digits)
        rows.append((_written(rng, digits), name, discount, slug, "DE", signed_up))
        seeded.valid += 1
        if roll > 0.96:
            opted_out.append(digits)
    seeded.rows = len(rows)
    seeded.opted_out = len(opted_out)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DROP TABLE IF EXISTS customers")
        db.execute(
            "CREATE TABLE customers (phone TEXT, first_name TEXT, discount INTEGER, promo_slug TEXT, "
            "country TEXT, signup_date TEXT)"
        )
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", rows)
    ledger = Ledger.from_url(ledger_url)
    try:
        ledger.add_suppressions(
            [
                Suppression(number, reason="replied STOP to an earlier campaign", error_code=131050)
                for number in opted_out
            ]
        )
    finally:
        ledger.dispose()
    return seeded


@contextlib.contextmanager
def _process(argv: list[str], log: pathlib.Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        return json.loads(response.read())


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: pathlib.Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited early; see {log}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=1.0).close()
            return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s; see {log}")


def _progress(done: int, total: int, rate: float, tty: bool) -> None:
    width = 30
    share = min(1.0, done / total) if total else 1.0
    bar = "#" * int(share * width) + "." * (width - int(share * width))
    line = f"  sending [{bar}] {done:>6}/{total} messages  {rate:6.1f} msg/s"
    if tty:
        print("\r" + line, end="", flush=True)
    else:
        print(line, flush=True)


def _read_report(airflow_home: pathlib.Path) -> dict[str, Any]:
    """The report the sensor returned, read back from the Airflow metadata database."""
    with contextlib.closing(sqlite3.connect(airflow_home / "airflow.db")) as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'report' AND key = 'return_value' "
            "ORDER BY timestamp DESC LIMIT 1",
            (DAG_ID,),
        ).fetchone()
    if row is None:
        raise SystemExit("The report task pushed no XCom; see the airflow log in the demo folder.")
    value = row[0]
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _table(title: str, rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    """The campaign report as plain tables."""
    sends = report.get("sends") or report.get("send_states") or {}
    delivery = report.get("delivery") or report.get("delivery_statuses") or {}
    print(_table("Sends (answers of the Marketing Messages API)", sorted(sends.items())))
    print()
    print(_table("Delivery (status webhooks)", sorted(delivery.items())))
    routing = report.get("routing") or {}
    if routing:
        print()
        print(_table("Routing", sorted(routing.items())))
    rates = report.get("rates") or {}
    if rates:
        print()
        print(
            _table(
                "Rates", [(k, f"{v:.1%}" if isinstance(v, float) else v) for k, v in sorted(rates.items())]
            )
        )
    errors = report.get("errors") or []
    if errors:
        print()
        rows = [(f"{e.get('code')} {e.get('title', '')}", e.get("count")) for e in errors]
        print(_table("Errors by code", rows))


def check(report: dict[str, Any], seeded: Seeded, sandbox: dict[str, Any]) -> list[str]:
    """Compare the report with the seeded data and the sandbox's record; return the mismatches."""
    sends = report.get("sends") or report.get("send_states") or {}
    delivery = report.get("delivery") or report.get("delivery_statuses") or {}
    by_outcome = sandbox.get("by_outcome", {})
    expected = {
        ("sends", "accepted"): (sends.get("accepted", 0), seeded.to_send),
        ("sends", "invalid"): (sends.get("invalid", 0), seeded.invalid),
        ("sends", "suppressed"): (sends.get("suppressed", sends.get("skipped", 0)), seeded.opted_out),
        ("sandbox", "messages"): (sandbox.get("accepted"), seeded.to_send),
        ("sandbox", "duplicates"): (len(sandbox.get("duplicates", {})), 0),
        ("delivery", "read"): (delivery.get("read", 0), by_outcome.get("read", 0)),
        ("delivery", "delivered"): (delivery.get("delivered", 0), by_outcome.get("delivered", 0)),
        ("delivery", "failed"): (
            delivery.get("failed", 0),
            sum(n for outcome, n in by_outcome.items() if outcome.startswith("failed")),
        ),
    }
    return [
        f"{a}.{b}: report {got}, expected {want}" for (a, b), (got, want) in expected.items() if got != want
    ]


def _environment(
    args: argparse.Namespace, out: pathlib.Path, sandbox_url: str, ledger_db: pathlib.Path
) -> dict[str, str]:
    """What the demo's Airflow processes see: its own AIRFLOW_HOME, the examples, the connections."""
    ledger_url = f"sqlite:///{ledger_db}"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(out / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_WHATSAPP_DEFAULT": json.dumps(
            {
                "conn_type": "whatsapp",
                "host": sandbox_url,
                "password": TOKEN,
                "extra": {
                    "phone_number_id": PHONE_NUMBER_ID,
                    "waba_id": WABA_ID,
                    "app_secret": APP_SECRET,
                    "webhook_verify_token": VERIFY_TOKEN,
                    "max_messages_per_second": args.rate,
                },
            }
        ),
        "AIRFLOW_CONN_CRM": json.dumps({"conn_type": "sqlite", "host": str(out / "crm.db")}),
        "AIRFLOW_CONN_WAMM_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(ledger_db)}),
        # The one ledger setting every example (and the API server's webhook receiver) reads.
        "AIRFLOW__WAMM__LEDGER_CONN_ID": "wamm_ledger",
        "AIRFLOW_VAR_WAMM_REPORT_DIR": str(out),
        "WAMM_APP_SECRET": APP_SECRET,
        "WAMM_VERIFY_TOKEN": VERIFY_TOKEN,
        "WAMM_LEDGER_URL": ledger_url,
        "WAMM_SANDBOX_TOKEN": TOKEN,
        "WAMM_SANDBOX_APP_SECRET": APP_SECRET,
    }


def _sandbox_command(args: argparse.Namespace, sandbox_port: int, receiver_port: int) -> list[str]:
    return [
        str(BIN / "wamm-sandbox"),
        "--port", str(sandbox_port),
        "--phone-number-id", PHONE_NUMBER_ID,
        "--waba-id", WABA_ID,
        "--mps-cap", str(args.rate),
        "--latency", "0.05",
        "--seed", str(args.seed),
        "--webhook-url", f"http://127.0.0.1:{receiver_port}/",
        # A message's statuses (sent, delivered, read) arrive together, one POST for many messages, right
        # after the send: the sensor finds the campaign settled at its first look instead of waiting for
        # its next one (15 s), and never reports a message as delivered whose "read" is a moment away.
        "--webhook-delay", "0.02",
        "--webhook-step", "0",
        "--webhook-batch-size", "1000",
        "--duplicate-rate", "0.05",  # Meta delivers some webhooks twice: the ledger must not count them twice
    ]  # fmt: skip


def _run_dag(env: dict[str, str], out: pathlib.Path, sandbox_url: str, to_send: int) -> int:
    """``airflow dags test`` of the example, with a progress bar from the sandbox's counts."""
    tty = sys.stdout.isatty()
    with (out / "airflow.log").open("wb") as log:
        dag_run = subprocess.Popen(
            [str(BIN / "airflow"), "dags", "test", DAG_ID], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        last = -1
        first: tuple[float, int] | None = None  # the first sample with messages: Airflow is up
        while dag_run.poll() is None:
            done = int(_get_json(f"{sandbox_url}/_sandbox/counts").get("accepted", 0))
            now = time.monotonic()
            if done and first is None:
                first = (now, done)
            rate = (done - first[1]) / (now - first[0]) if first and now > first[0] else 0.0
            if done != last and (tty or done == to_send or done // 500 != last // 500):
                _progress(done, to_send, rate, tty)
                last = done
            time.sleep(0.5)
    if tty:
        print()
    return int(dag_run.returncode)


def _conclude(out: pathlib.Path, seeded: Seeded, counts: dict[str, Any], seconds: float) -> int:
    """Print the report, check it against the seed and the sandbox; the exit code."""
    report = _read_report(out / "airflow")
    campaign = ", ".join(report.get("campaign_ids") or [str(report.get("campaign_id"))])
    print(f"\nCampaign {campaign} done in {seconds:.1f} s\n")
    print_report(report)
    problems = check(report, seeded, counts)
    print()
    if problems:
        print("The report does NOT match the seeded data:\n  " + "\n  ".join(problems))
        return 1
    print("The report matches the seeded data and the sandbox's record: every valid, opted-in customer got")
    print("exactly one message; bad numbers and opt-outs were recorded, not sent.")
    html = sorted(out.glob("*.html"))
    print(f"HTML report: {html[0] if html else 'not written (see the airflow log)'}")
    return 0 if html else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000, help="rows in the fictional CRM")
    parser.add_argument("--rate", type=int, default=100, help="messages per second of the sandbox number")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "demo-output", help="working folder")
    args = parser.parse_args(argv)

    out: pathlib.Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    (out / "airflow").mkdir(parents=True)
    ledger_db = out / "ledger.db"
    sandbox_port, receiver_port = _free_port(), _free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = _environment(args, out, sandbox_url, ledger_db)
    os.environ.update({k: env[k] for k in ("AIRFLOW_HOME",)})

    print(f"Demo folder: {out}")
    seeded = seed_crm(out / "crm.db", f"sqlite:///{ledger_db}", args.customers, args.seed)
    print(
        f"Seeded {seeded.rows} customers: {seeded.valid} valid numbers, {seeded.invalid} bad numbers, "
        f"{seeded.duplicates} listed twice, {seeded.opted_out} opted out earlier."
    )
    migrate = [str(BIN / "airflow"), "db", "migrate"]
    subprocess.run(migrate, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    receiver_cmd = [str(BIN / "wamm-webhooks"), "--port", str(receiver_port), "--log-level", "warning"]
    with (
        _process(receiver_cmd, out / "receiver.log", env) as receiver,
        _process(_sandbox_command(args, sandbox_port, receiver_port), out / "sandbox.log", env) as sandbox,
    ):
        _wait_http(f"http://127.0.0.1:{receiver_port}/health", receiver, out / "receiver.log")
        _wait_http(f"{sandbox_url}/_sandbox/health", sandbox, out / "sandbox.log")
        print(f"Sandbox on {sandbox_url}, webhook receiver on http://127.0.0.1:{receiver_port}/")
        print(f"Running `airflow dags test {DAG_ID}` (log: {out / 'airflow.log'})")
        started = time.monotonic()
        returncode = _run_dag(env, out, sandbox_url, seeded.to_send)
        if returncode != 0:
            print((out / "airflow.log").read_text(errors="replace")[-4000:])
            print(f"`airflow dags test` failed (exit {returncode}); see {out / 'airflow.log'}")
            return 1
        counts = _get_json(f"{sandbox_url}/_sandbox/counts")
    return _conclude(out, seeded, counts, time.monotonic() - started)


if __name__ == "__main__":
    raise SystemExit(main())
