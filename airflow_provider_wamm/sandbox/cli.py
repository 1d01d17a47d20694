"""``wamm-sandbox``: run the Graph API sandbox on its own (demo, DAG development, benchmarks).

``--stopped`` and ``--signal`` script Meta's signals (a stop, a template pause after N sends, a limit
change at a time); ``POST /_sandbox/signals`` sends one at once.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_wamm.sandbox.config import (
    LOST_RESPONSE_MODES,
    SandboxConfig,
    SignalStep,
    normalize_templates,
)

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


@dataclass(frozen=True)
class FieldOption:
    """A command-line option that sets one :class:`SandboxConfig` field."""

    flag: str
    field: str
    type: Callable[[str], Any]
    help: str
    choices: tuple[Any, ...] | None = None

    @property
    def metavar(self) -> str | None:
        """``SECONDS`` for times, ``RATE`` for shares, else argparse's default."""
        if self.field.endswith("_s"):
            return "SECONDS"
        return "RATE" if self.type is _rate else None

    @property
    def dest(self) -> str:
        """The attribute argparse stores the value in."""
        return self.flag.removeprefix("--").replace("-", "_")


#: The options that map one to one to a configuration field, by help section.
FIELD_OPTIONS: dict[str, tuple[FieldOption, ...]] = {
    "identity": (
        FieldOption(
            "--token", "access_token", str, "access token clients must send (env WAMM_SANDBOX_TOKEN)"
        ),
        FieldOption("--app-id", "app_id", str, "app id reported by debug_token"),
        FieldOption(
            "--app-secret", "app_secret", str, "app secret signing webhooks (env WAMM_SANDBOX_APP_SECRET)"
        ),
        FieldOption("--phone-number-id", "phone_number_id", str, "phone number id that can send"),
        FieldOption("--waba-id", "waba_id", str, "WhatsApp Business Account id"),
    ),
    "latency (an answer takes latency + U(0, jitter) + median * exp(sigma * N(0,1)) + spikes)": (
        FieldOption("--latency", "latency_s", float, "flat seconds every answer takes"),
        FieldOption("--latency-jitter", "latency_jitter_s", float, "extra random latency, 0..this seconds"),
        FieldOption("--latency-median", "latency_median_s", float, "median seconds of the log-normal part"),
        FieldOption("--latency-sigma", "latency_sigma", float, "spread of the log-normal part (e.g. 0.6)"),
        FieldOption("--latency-spike-rate", "latency_spike_rate", _rate, "share of answers that spike"),
        FieldOption("--latency-spike", "latency_spike_s", float, "extra seconds of a spiking answer"),
        FieldOption("--latency-step", "latency_step_s", float, "log-normal median during the step, seconds"),
        FieldOption(
            "--latency-step-at", "latency_step_at_s", float, "the step starts this long after the first send"
        ),
        FieldOption(
            "--latency-step-for",
            "latency_step_for_s",
            float,
            "the step lasts this long (default: until reset)",
        ),
    ),
    "limits": (
        FieldOption(
            "--rate-limit-status", "rate_limit_http_status", int, "HTTP status of 130429 answers", (400, 429)
        ),
        FieldOption(
            "--pair-interval", "pair_interval_s", float, "seconds per message per recipient (default 6)"
        ),
        FieldOption("--pair-burst", "pair_burst", int, "burst allowance per recipient (default 45)"),
    ),
    "outcomes": (
        FieldOption("--seed", "seed", int, "seed of faults, outcomes and latencies"),
        FieldOption(
            "--outcomes", "outcomes", _outcomes, "weights, e.g. read=0.5,delivered=0.3,failed:131026=0.2"
        ),
        FieldOption(
            "--fallback-rate",
            "cloud_api_fallback_rate",
            _rate,
            "share of sends routed to Cloud API (category marketing)",
        ),
        FieldOption("--click-rate", "click_rate", _rate, "share of read messages that get a click event"),
    ),
    "faults": (
        FieldOption("--fault-5xx", "fault_5xx_rate", _rate, "rate of 500/502/503 answers"),
        FieldOption(
            "--fault-transient",
            "fault_transient_rate",
            _rate,
            "rate of Graph transient errors (1, 2, 131000)",
        ),
        FieldOption("--fault-throttle", "fault_throttle_rate", _rate, "rate of throttle errors (4, 130429)"),
        FieldOption(
            "--fault-lost",
            "fault_lost_response_rate",
            _rate,
            "rate of answers lost after the message was recorded",
        ),
        FieldOption("--fault-drop", "fault_drop_rate", _rate, "rate of connections dropped before recording"),
        FieldOption("--fault-slow", "fault_slow_rate", _rate, "rate of slow answers (after --slow seconds)"),
        FieldOption(
            "--lost-mode", "lost_response_mode", str, "how lost answers are lost", LOST_RESPONSE_MODES
        ),
        FieldOption("--hang", "hang_s", float, "seconds a hung answer waits before closing"),
        FieldOption("--slow", "slow_response_s", float, "seconds a slow answer takes"),
    ),
    "webhooks": (
        FieldOption("--webhook-url", "webhook_url", str, "callback URL for status webhooks"),
        FieldOption("--webhook-batch-size", "webhook_batch_size", int, "statuses per webhook POST (1..1000)"),
        FieldOption(
            "--webhook-delay", "webhook_delay_s", float, "seconds from acceptance to the first status"
        ),
        FieldOption("--webhook-step", "webhook_step_s", float, "seconds between sent, delivered and read"),
        FieldOption("--duplicate-rate", "webhook_duplicate_rate", _rate, "share of statuses delivered twice"),
        FieldOption(
            "--reorder-rate",
            "webhook_reorder_rate",
            _rate,
            "share of read messages with read before delivered",
        ),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (each maps to a :class:`SandboxConfig` field)."""
    p = argparse.ArgumentParser(
        prog="wamm-sandbox",
        description="Local stand-in for WhatsApp's Marketing Messages API (Graph API) with limits, faults, "
        "Meta-like latencies and signed status webhooks.",
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
    p.add_argument("--mps-cap", type=float, help="messages per second accepted (0: no cap; default 80)")
    p.add_argument("--no-pair-limit", action="store_true", help="do not enforce the pair rate limit")
    p.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="NUMBER=OUTCOME",
        help="forced outcome for one recipient, e.g. 4915123456789=failed:131050 (repeatable)",
    )
    signals = p.add_argument_group("Meta's signals (signed webhooks; the sandbox acts on them too)")
    signals.add_argument(
        "--stopped",
        action="append",
        default=[],
        metavar="RECIPIENT",
        help="a recipient who stopped marketing messages: sends to them fail with 131050 (repeatable)",
    )
    signals.add_argument(
        "--signal",
        action="append",
        default=[],
        metavar="STEP",
        help="a scripted signal, ACTION:TARGET[/LANGUAGE][=VALUE][@sends=N|@t=SECONDS], e.g. "
        "pause_template:spring_sale@sends=100, stop:4915123456789@t=5, messaging_limit:TIER_250@t=10 "
        "(repeatable)",
    )
    for title, options in FIELD_OPTIONS.items():
        group = p.add_argument_group(title)
        for option in options:
            group.add_argument(
                option.flag,
                type=option.type,
                choices=option.choices,
                metavar=option.metavar,
                help=option.help,
            )
    return p


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
    for options in FIELD_OPTIONS.values():
        for option in options:
            value = getattr(args, option.dest)
            if value is not None:
                changes[option.field] = value
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
    changes.update(_signal_changes(args, config))
    return config.replace(**changes)


def _signal_changes(args: argparse.Namespace, config: SandboxConfig) -> dict[str, Any]:
    """``--stopped`` and ``--signal``, added to what the config file set."""
    changes: dict[str, Any] = {}
    stopped = getattr(args, "stopped", None) or []
    steps = getattr(args, "signal", None) or []
    if stopped:
        changes["stopped_users"] = (*config.stopped_users, *stopped)
    if steps:
        changes["signal_steps"] = (*config.signal_steps, *(SignalStep.parse(step) for step in steps))
    return changes


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
