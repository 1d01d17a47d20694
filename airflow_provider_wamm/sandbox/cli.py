"""``wamm-sandbox``: run the Graph API sandbox on its own (demo, DAG development, benchmarks).

It prints ``wamm-sandbox listening on http://HOST:PORT`` once it serves, then runs until SIGINT or
SIGTERM. The token and app secret can come from ``WAMM_SANDBOX_TOKEN`` and ``WAMM_SANDBOX_APP_SECRET``
so they do not show in process lists. Settings can change later through ``POST /_sandbox/config``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import threading
from typing import Any

from airflow_provider_wamm.sandbox.config import SandboxConfig, normalize_templates

DEFAULT_PORT = 8090


def _rate(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return number


def _outcomes(value: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for part in value.split(","):
        name, sep, weight = part.strip().rpartition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{part!r} is not OUTCOME=WEIGHT")
        result[name] = float(weight)
    return result


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (each maps to a :class:`SandboxConfig` field)."""
    p = argparse.ArgumentParser(
        prog="wamm-sandbox",
        description="Local stand-in for WhatsApp's Marketing Messages API (Graph API) with limits, faults "
        "and signed status webhooks.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1; the /_sandbox/ admin endpoints have no auth)",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port, 0 for any free one (default {DEFAULT_PORT})"
    )
    p.add_argument("--config", type=pathlib.Path, help="JSON file of SandboxConfig fields (applied first)")
    p.add_argument(
        "--templates", type=pathlib.Path, help="JSON file: a list of templates (Meta's format or ours)"
    )
    p.add_argument("--token", help="access token clients must send (env WAMM_SANDBOX_TOKEN)")
    p.add_argument("--app-id", help="app id reported by debug_token")
    p.add_argument("--app-secret", help="app secret signing webhooks (env WAMM_SANDBOX_APP_SECRET)")
    p.add_argument("--phone-number-id", help="phone number id that can send")
    p.add_argument("--waba-id", help="WhatsApp Business Account id")
    p.add_argument("--latency", type=float, help="seconds every answer takes")
    p.add_argument("--latency-jitter", type=float, help="extra random latency, 0..this seconds")
    p.add_argument("--mps-cap", type=float, help="messages per second accepted (0: no cap; default 80)")
    p.add_argument("--rate-limit-status", type=int, choices=(400, 429), help="HTTP status of 130429 answers")
    p.add_argument("--pair-interval", type=float, help="seconds per message per recipient (default 6)")
    p.add_argument("--pair-burst", type=int, help="burst allowance per recipient (default 45)")
    p.add_argument("--no-pair-limit", action="store_true", help="do not enforce the pair rate limit")
    p.add_argument("--seed", type=int, help="seed of faults and outcomes")
    p.add_argument(
        "--outcomes", type=_outcomes, help="weights, e.g. read=0.5,delivered=0.3,failed:131026=0.2"
    )
    p.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="NUMBER=OUTCOME",
        help="forced outcome for one recipient, e.g. 4915123456789=failed:131050 (repeatable)",
    )
    p.add_argument(
        "--fallback-rate", type=_rate, help="share of sends routed to Cloud API (category marketing)"
    )
    p.add_argument("--click-rate", type=_rate, help="share of read messages that get a click event")
    p.add_argument("--fault-5xx", type=_rate, help="rate of 500/502/503 answers")
    p.add_argument("--fault-transient", type=_rate, help="rate of Graph transient errors (1, 2, 131000)")
    p.add_argument("--fault-throttle", type=_rate, help="rate of throttle errors (4, 130429)")
    p.add_argument("--fault-lost", type=_rate, help="rate of answers lost after the message was recorded")
    p.add_argument("--fault-drop", type=_rate, help="rate of connections dropped before recording")
    p.add_argument("--fault-slow", type=_rate, help="rate of slow answers (after --slow seconds)")
    p.add_argument("--lost-mode", choices=("drop", "hang", "mixed"), help="how lost answers are lost")
    p.add_argument("--hang", type=float, help="seconds a hung answer waits before closing")
    p.add_argument("--slow", type=float, help="seconds a slow answer takes")
    p.add_argument("--webhook-url", help="callback URL for status webhooks")
    p.add_argument("--webhook-batch-size", type=int, help="statuses per webhook POST (1..1000)")
    p.add_argument("--webhook-delay", type=float, help="seconds from acceptance to the first status")
    p.add_argument("--webhook-step", type=float, help="seconds between sent, delivered and read")
    p.add_argument("--duplicate-rate", type=_rate, help="share of statuses delivered twice")
    p.add_argument("--reorder-rate", type=_rate, help="share of read messages with read before delivered")
    return p


_FIELD_OPTIONS = {
    "token": "access_token",
    "app_id": "app_id",
    "app_secret": "app_secret",
    "phone_number_id": "phone_number_id",
    "waba_id": "waba_id",
    "latency": "latency_s",
    "latency_jitter": "latency_jitter_s",
    "rate_limit_status": "rate_limit_http_status",
    "pair_interval": "pair_interval_s",
    "pair_burst": "pair_burst",
    "seed": "seed",
    "outcomes": "outcomes",
    "fallback_rate": "cloud_api_fallback_rate",
    "click_rate": "click_rate",
    "fault_5xx": "fault_5xx_rate",
    "fault_transient": "fault_transient_rate",
    "fault_throttle": "fault_throttle_rate",
    "fault_lost": "fault_lost_response_rate",
    "fault_drop": "fault_drop_rate",
    "fault_slow": "fault_slow_rate",
    "lost_mode": "lost_response_mode",
    "hang": "hang_s",
    "slow": "slow_response_s",
    "webhook_url": "webhook_url",
    "webhook_batch_size": "webhook_batch_size",
    "webhook_delay": "webhook_delay_s",
    "webhook_step": "webhook_step_s",
    "duplicate_rate": "webhook_duplicate_rate",
    "reorder_rate": "webhook_reorder_rate",
}


def config_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> SandboxConfig:
    """Turn parsed options (and the environment's secrets) into a :class:`SandboxConfig`."""
    env = os.environ if environ is None else environ
    config = SandboxConfig()
    if args.config:
        config = SandboxConfig.from_dict(json.loads(args.config.read_text()), base=config)
    changes: dict[str, Any] = {}
    if env.get("WAMM_SANDBOX_TOKEN"):
        changes["access_token"] = env["WAMM_SANDBOX_TOKEN"]
    if env.get("WAMM_SANDBOX_APP_SECRET"):
        changes["app_secret"] = env["WAMM_SANDBOX_APP_SECRET"]
    for option, field_name in _FIELD_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            changes[field_name] = value
    if args.mps_cap is not None:
        changes["mps_cap"] = args.mps_cap if args.mps_cap > 0 else None
    if args.no_pair_limit:
        changes["pair_limit"] = False
    if args.templates:
        data = json.loads(args.templates.read_text())
        changes["templates"] = normalize_templates(data.get("data", data) if isinstance(data, dict) else data)
    if args.force:
        forced = dict(config.forced_outcomes)
        for item in args.force:
            number, sep, outcome = item.partition("=")
            if not sep:
                raise ValueError(f"--force {item!r} is not NUMBER=OUTCOME")
            forced[number.strip()] = outcome.strip()
        changes["forced_outcomes"] = forced
    return config.replace(**changes)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until interrupted; returns the exit status."""
    from airflow_provider_wamm.sandbox.server import Sandbox

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def _handle(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(config, host=args.host, port=args.port)
    try:
        sandbox.start()
        print(f"wamm-sandbox listening on {sandbox.url}", flush=True)
        print(
            f"  phone_number_id={config.phone_number_id} waba_id={config.waba_id} "
            f"templates={','.join(sorted(config.templates))}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
