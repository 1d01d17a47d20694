"""Fixtures of the fault suite, and the fault table printed at the end of the session."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger
from tests.reliability.harness import FAULT_TABLE, format_table


@pytest.fixture
def ledger_file(tmp_path: pathlib.Path) -> pathlib.Path:
    """Path of the test's SQLite ledger (a file, so a child process can share it)."""
    return tmp_path / "ledger.db"


@pytest.fixture
def file_ledger(ledger_file: pathlib.Path) -> Iterator[Ledger]:
    """A ledger in the test's SQLite file."""
    led = Ledger.from_url(f"sqlite:///{ledger_file}")
    yield led
    led.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault table: one line per fault scenario run in this session."""
    if not FAULT_TABLE:
        return
    terminalreporter.write_sep("=", "campaign fault table (duplicates and lost must be 0)")
    for line in format_table(FAULT_TABLE):
        terminalreporter.write_line(line)
    for row in FAULT_TABLE:
        if not row.ok:
            label = "known bug" if row.known_bug else "FAILED"
            terminalreporter.write_line(f"{label}: {row.fault}: " + "; ".join(row.problems[:5]))
