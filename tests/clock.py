"""A controlled clock for tests of timed behaviour (send windows): the provider's clocks read it.

``ControlledClock.install(monkeypatch)`` replaces the clock of the send windows, of their trigger and
the sandbox's arrival times (``SandboxMessage.timestamp``); ``advance_to`` moves it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


class ControlledClock:
    """A clock that stands still until told to move."""

    def __init__(self, start: datetime) -> None:
        self.current = start.astimezone(UTC)

    def now(self) -> datetime:
        """The time the clock shows."""
        return self.current

    def timestamp(self) -> float:
        """The same as ``time.time()`` would give."""
        return self.current.timestamp()

    def advance_to(self, moment: datetime) -> None:
        """Move the clock forward to ``moment``."""
        assert moment >= self.current, "a clock never goes back"
        self.current = moment.astimezone(UTC)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> ControlledClock:
        """Make the provider's clocks read this one for the rest of the test."""
        monkeypatch.setattr("airflow_provider_wamm.operators.scheduling.now", self.now)
        monkeypatch.setattr("airflow_provider_wamm.triggers.window.now", self.now)
        monkeypatch.setattr("airflow_provider_wamm.sandbox.send.wall_clock", self.timestamp)
        return self
