"""MarketingResponsesTrigger: serialisation and the event it fires on a real ledger."""

from __future__ import annotations

import asyncio
import importlib
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger, utcnow
from airflow_provider_wamm.triggers.responses import MarketingResponsesTrigger
from tests.report.seed import seed_sends, seed_statuses
from tests.sensors.conftest import LEDGER_CONN_ID


def make(**overrides: Any) -> MarketingResponsesTrigger:
    kwargs: dict[str, Any] = {
        "campaign_ids": ["c1"],
        "ledger_conn_id": LEDGER_CONN_ID,
        "settle_timeout": 3600.0,
        "poll_interval": 0.05,
    }
    kwargs.update(overrides)
    return MarketingResponsesTrigger(**kwargs)


def first_event(trigger: MarketingResponsesTrigger, timeout: float = 10.0) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        gen = trigger.run()
        event = await asyncio.wait_for(anext(gen), timeout)  # type: ignore[arg-type]
        await gen.aclose()  # type: ignore[attr-defined]
        return dict(event.payload)

    return asyncio.run(go())


def test_serialize_round_trips() -> None:
    trigger = make(campaign_ids=["a", "b"], ledger_table_prefix="x_", settle_timeout=None, poll_interval=7)
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls is MarketingResponsesTrigger
    again = cls(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs == {
        "campaign_ids": ["a", "b"],
        "ledger_conn_id": LEDGER_CONN_ID,
        "ledger_table_prefix": "x_",
        "settle_timeout": None,
        "poll_interval": 7.0,
    }


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        make(campaign_ids=[])
    with pytest.raises(ValueError):
        make(poll_interval=0)


def test_fires_settled_on_a_settled_ledger(ledger: Ledger) -> None:
    seed_sends(ledger, "c1", now=utcnow())
    seed_statuses(ledger, settle=True)
    event = first_event(make())
    assert event["status"] == "settled"
    assert event["campaign_ids"] == ["c1"]
    assert event["unsettled"] == 0 and event["settled"] is True
    assert len(repr(event)) < 1000  # a small payload: no report, no recipients


def test_waits_until_statuses_arrive(ledger: Ledger) -> None:
    seed_sends(ledger, "c1", now=utcnow())
    seed_statuses(ledger)  # two messages still open

    async def go() -> dict[str, Any]:
        gen = make().run()
        task = asyncio.ensure_future(anext(gen))  # type: ignore[arg-type]
        await asyncio.sleep(0.4)
        assert not task.done(), "must not fire while messages are open"
        await asyncio.to_thread(seed_statuses, ledger, settle=True)
        event = await asyncio.wait_for(task, 10)
        await gen.aclose()  # type: ignore[attr-defined]
        return dict(event.payload)

    event = asyncio.run(go())
    assert event["status"] == "settled"


def test_fires_timeout_after_the_settle_deadline(ledger: Ledger) -> None:
    seed_sends(ledger, "c1", now=utcnow() - timedelta(seconds=2))
    seed_statuses(ledger)
    event = first_event(make(settle_timeout=1.0))
    assert event["status"] == "timeout"
    assert event["timed_out"] is True and event["unsettled"] == 2


def test_deadline_shortens_the_poll(ledger: Ledger) -> None:
    seed_sends(ledger, "c1", now=utcnow())
    seed_statuses(ledger)
    event = first_event(make(settle_timeout=0.5, poll_interval=60.0), timeout=5.0)
    assert event["status"] == "timeout"


def test_fires_error_when_the_ledger_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAMM_BROKEN", '{"conn_type": "oracle", "host": "db"}')
    event = first_event(make(ledger_conn_id="wamm_broken", poll_interval=0.01))
    assert event["status"] == "error"
    assert "oracle" in event["message"]
