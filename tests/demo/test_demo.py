"""``demo/run_demo.py`` end to end, as ``make demo`` runs it, with a smaller CRM.

The demo migrates its own Airflow database, starts the sandbox and the webhook receiver, runs the
example DAG ``wamm_campaign_from_sql`` with ``airflow dags test`` and checks the report against the data
it seeded and the sandbox's record, exiting non-zero on any mismatch. It runs in a subprocess with the
tests' interpreter (its ``airflow``, ``wamm-sandbox`` and ``wamm-webhooks`` commands come from the same
environment); about 30 to 40 s.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_demo_sends_once_to_every_valid_customer_and_reports_it(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "demo"
    # The demo sets its own AIRFLOW_HOME and dags folder; nothing of this session's must leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "WAMM_"))}
    result = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "run_demo.py"), "--customers", "300", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
        check=False,
    )
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert "The report matches the seeded data" in result.stdout, tail

    seeded = re.search(r"Seeded 300 customers: (\d+) valid numbers, (\d+) bad numbers", result.stdout)
    assert seeded, tail
    accepted = re.search(r"^\s+accepted\s+(\d+)$", result.stdout, re.MULTILINE)
    assert accepted and 0 < int(accepted.group(1)) <= int(seeded.group(1))

    html = re.search(r"^HTML report: (.+\.html)$", result.stdout, re.MULTILINE)
    assert html, tail
    page = pathlib.Path(html.group(1))
    assert page.parent == out.resolve() and page.stat().st_size > 1000
    assert "spring_sale_" in page.read_text(encoding="utf-8")
