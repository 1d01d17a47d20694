"""The ``wamm-sandbox`` command: options, and a real process that serves and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import pathlib
import selectors
import signal
import subprocess
import sys

import pytest
import requests

from airflow_provider_wamm.sandbox.cli import build_parser, config_from_args
from tests.sandbox.conftest import message


def _start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_wamm.sandbox.cli", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout=20):
        proc.kill()
        pytest.fail("wamm-sandbox did not print its address in time")
    line = proc.stdout.readline()
    assert line.startswith("wamm-sandbox listening on http://127.0.0.1:"), line
    return proc, line.split()[-1]


def test_cli_serves_and_stops_on_sigterm(tmp_path: pathlib.Path) -> None:
    templates = tmp_path / "templates.json"
    templates.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "name": "flash_deal",
                        "language": "en_US",
                        "status": "APPROVED",
                        "category": "MARKETING",
                        "components": [{"type": "BODY", "text": "Hi {{1}}"}],
                    }
                ]
            }
        )
    )
    proc, url = _start(
        [
            "--templates",
            str(templates),
            "--latency",
            "0.01",
            "--mps-cap",
            "0",
            "--force",
            "4915123456789=read",
        ],
        env={"WAMM_SANDBOX_TOKEN": "cli-token"},
    )
    try:
        body = message(
            template="flash_deal",
            components=[{"type": "body", "parameters": [{"type": "text", "text": "A"}]}],
        )
        ok = requests.post(
            f"{url}/v23.0/100000000000001/marketing_messages",
            json=body,
            headers={"Authorization": "Bearer cli-token"},
            timeout=5,
        )
        assert ok.status_code == 200, ok.text
        refused = requests.post(
            f"{url}/v23.0/100000000000001/marketing_messages",
            json=body,
            headers={"Authorization": "Bearer sandbox-token"},
            timeout=5,
        )
        assert refused.status_code == 401
        counts = requests.get(f"{url}/_sandbox/counts", timeout=5).json()
        assert counts["accepted"] == 1 and counts["by_outcome"] == {"read": 1}
        config = requests.get(f"{url}/_sandbox/config", timeout=5).json()
        assert config["mps_cap"] is None and config["latency_s"] == 0.01
        assert "cli-token" not in json.dumps(config)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "cli-token" not in out + err


def test_options_map_to_config(tmp_path: pathlib.Path) -> None:
    config_file = tmp_path / "sandbox.json"
    config_file.write_text(json.dumps({"waba_id": "42", "pair_burst": 3}))
    args = build_parser().parse_args(
        [
            "--config",
            str(config_file),
            "--latency",
            "0.1",
            "--mps-cap",
            "1000",
            "--pair-interval",
            "1",
            "--fault-5xx",
            "0.01",
            "--fault-lost",
            "0.02",
            "--lost-mode",
            "hang",
            "--webhook-url",
            "http://127.0.0.1:1/h",
            "--duplicate-rate",
            "0.1",
            "--reorder-rate",
            "0.2",
            "--outcomes",
            "read=1,failed:131026=1",
            "--force",
            "+4915100000001=error:131000#1",
            "--no-pair-limit",
            "--app-secret",
            "s",
        ]
    )
    config = config_from_args(args, environ={})
    assert (config.waba_id, config.pair_burst, config.latency_s, config.mps_cap) == ("42", 3, 0.1, 1000.0)
    assert (config.fault_5xx_rate, config.fault_lost_response_rate, config.lost_response_mode) == (
        0.01,
        0.02,
        "hang",
    )
    assert config.webhook_url == "http://127.0.0.1:1/h"
    assert (config.webhook_duplicate_rate, config.webhook_reorder_rate) == (0.1, 0.2)
    assert config.outcomes == {"read": 1.0, "failed:131026": 1.0}
    assert config.forced_outcomes == {"4915100000001": "error:131000#1"}
    assert config.pair_limit is False and config.pair_interval_s == 1.0
    assert config.app_secret == "s"


def test_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--fault-5xx", "2"])
    with pytest.raises(SystemExit):
        from airflow_provider_wamm.sandbox.cli import main

        main(["--force", "123=sometimes"])
    assert "sometimes" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    script = pathlib.Path(sys.executable).parent / "wamm-sandbox"
    if not script.exists():
        pytest.skip("package not installed with its console scripts")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0
    assert "--webhook-url" in result.stdout
