"""A fresh SQLite ledger per test."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger


@pytest.fixture
def ledger(tmp_path: pathlib.Path) -> Iterator[Ledger]:
    led = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield led
    led.dispose()
