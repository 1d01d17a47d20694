"""TemplateEventTrigger: serialisation, use in an AssetWatcher, and firing on stored template events only."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import pathlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_wamm.campaign.ledger import Ledger, TemplateEvent, TemplateEventKind, utcnow
from airflow_provider_wamm.triggers.templates import Cursor, TemplateEventTrigger
from tests.sensors.conftest import LEDGER_CONN_ID


def make(**overrides: Any) -> TemplateEventTrigger:
    kwargs: dict[str, Any] = {
        "events": ["APPROVED"],
        "template_name": "spring_sale",
        "language": "en_US",
        "ledger_conn_id": LEDGER_CONN_ID,
        "poll_interval": 0.05,
    }
    kwargs.update(overrides)
    return TemplateEventTrigger(**kwargs)


def event(name: str = "APPROVED", template: str = "spring_sale", kind: str = "status") -> TemplateEvent:
    return TemplateEvent(
        kind=TemplateEventKind(kind),
        event=name,
        waba_id="200000000000001",
        template_id="1234",
        template_name=template,
        language="en_US",
        event_at=utcnow(),
        category="MARKETING",
    )


class MemoryStore:
    """The asset state store the triggerer injects (its async face)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        json.dumps(value)  # the store keeps JSON values only
        self.data[key] = value


def run_with(
    trigger: TemplateEventTrigger,
    actions: Callable[[], None] | None = None,
    *,
    want: int = 1,
    timeout: float = 3.0,
) -> list[dict[str, Any]]:
    """Run the trigger, do ``actions`` after its first poll, collect up to ``want`` events in ``timeout``."""

    async def go() -> list[dict[str, Any]]:
        gen = trigger.run()
        got: list[dict[str, Any]] = []

        async def collect() -> None:
            async for fired in gen:
                got.append(dict(fired.payload))
                if len(got) >= want:
                    return

        task = asyncio.ensure_future(collect())
        await asyncio.sleep(0.3)  # the first poll has run
        if actions is not None:
            await asyncio.to_thread(actions)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await gen.aclose()  # type: ignore[attr-defined]
        return got

    return asyncio.run(go())


def test_serialize_round_trips_and_hashes() -> None:
    trigger = make(kinds=["status", "quality"], events=["approved", "RED"], waba_id=200, lookback=60)
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls is TemplateEventTrigger
    again = cls(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs == {
        "events": ["APPROVED", "RED"],
        "kinds": ["quality", "status"],
        "template_name": "spring_sale",
        "language": "en_US",
        "template_id": None,
        "waba_id": "200",
        "ledger_conn_id": LEDGER_CONN_ID,
        "ledger_table_prefix": "wamm_",
        "poll_interval": 0.05,
        "lookback": 60.0,
    }
    json.dumps(kwargs)
    assert TemplateEventTrigger.hash(path, kwargs) == TemplateEventTrigger.hash(*again.serialize())
    assert make().state_key != make(events=["PAUSED"]).state_key
    assert make().state_key == make(poll_interval=60, lookback=10).state_key


def test_invalid_arguments() -> None:
    for bad in (
        {"poll_interval": 0},
        {"lookback": -1},
        {"kinds": ["edits"]},
        {"kinds": []},
        {"events": []},
        {"template_name": None, "language": "en_US"},
    ):
        with pytest.raises(ValueError):
            make(**bad)


def test_usable_in_an_asset_watcher_and_serialised_with_the_dag() -> None:
    from airflow.sdk import Asset, AssetWatcher
    from airflow.serialization.encoders import encode_asset_like

    asset = Asset("whatsapp://templates/x/approved", watchers=[AssetWatcher(name="x", trigger=make())])
    encoded = encode_asset_like(asset)
    watcher = encoded["watchers"][0]
    assert watcher["trigger"]["classpath"] == "airflow_provider_wamm.triggers.templates.TemplateEventTrigger"
    json.dumps(encoded)


def test_the_example_dag_is_scheduled_on_a_watched_template_asset() -> None:
    path = pathlib.Path(__file__).resolve().parents[2] / "dags_examples" / "campaign_on_template_approval.py"
    spec = importlib.util.spec_from_file_location("wamm_example_template_approval", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    watcher = example.TEMPLATE_APPROVED.watchers[0]
    assert isinstance(watcher.trigger, TemplateEventTrigger)
    assert watcher.trigger.events == ["APPROVED"] and watcher.trigger.template_name == "spring_sale"


def test_fires_on_a_stored_matching_event_and_not_otherwise(ledger: Ledger) -> None:
    def store_others() -> None:
        ledger.record_template_events(
            [
                event("PAUSED"),
                event("APPROVED", template="other_template"),
                event("RED", kind="quality"),
            ]
        )

    assert run_with(make(), store_others, timeout=0.6) == []

    def store_approval() -> None:
        ledger.record_template_events([event("APPROVED")])

    fired = run_with(make(), store_approval)
    assert len(fired) == 1
    payload = fired[0]
    assert (payload["event"], payload["template_name"], payload["language"]) == (
        "APPROVED",
        "spring_sale",
        "en_US",
    )
    assert payload["kind"] == "status" and payload["template_id"] == "1234" and payload["received_at"]
    json.dumps(payload)


def test_events_before_the_start_fire_only_within_lookback(ledger: Ledger) -> None:
    ledger.record_template_events([event("APPROVED")], now=utcnow() - timedelta(minutes=1))
    assert run_with(make(), timeout=0.5) == []
    assert len(run_with(make(lookback=300), timeout=2)) == 1


def test_the_cursor_survives_a_restart_through_the_asset_state_store(ledger: Ledger) -> None:
    store = MemoryStore()
    first = make()
    first.asset_state_store = store  # type: ignore[assignment]
    # The triggerer goes on iterating after an event (want=2): the cursor is saved then.
    fired = run_with(first, lambda: ledger.record_template_events([event("APPROVED")]), want=2, timeout=0.8)
    assert len(fired) == 1
    assert Cursor.from_json(store.data[first.state_key]) is not None
    # A new instance (the triggerer restarted) neither fires the old event again nor misses a new one.
    again = make()
    again.asset_state_store = store  # type: ignore[assignment]
    later = TemplateEvent(
        kind=TemplateEventKind.STATUS,
        event="APPROVED",
        template_name="spring_sale",
        language="en_US",
        event_at=utcnow() + timedelta(seconds=1),
    )
    fired = run_with(again, lambda: ledger.record_template_events([later]), want=2, timeout=0.8)
    assert [p["event"] for p in fired] == ["APPROVED"]
    assert fired[0]["template_id"] is None  # the new event, not the one fired before the restart


def test_cursor_json_round_trip_and_junk() -> None:
    now = utcnow()
    cursor = Cursor(now - timedelta(hours=1), now, {3: now, 1: now - timedelta(minutes=1)})
    assert Cursor.from_json(cursor.to_json()) == cursor
    junk: list[object] = [None, "x", {"watermark": "yesterday"}, {"seen": [1]}]
    junk.append({"start": now.isoformat(), "watermark": now.isoformat(), "seen": "ab"})
    for value in junk:
        assert Cursor.from_json(value) is None


def test_cursor_prunes_what_it_will_not_read_again() -> None:
    now = utcnow()
    cursor = Cursor.starting(now - timedelta(hours=1))
    old = TemplateEvent(TemplateEventKind.STATUS, "APPROVED", id=1, received_at=now - timedelta(minutes=30))
    new = TemplateEvent(TemplateEventKind.STATUS, "APPROVED", id=2, received_at=now)
    assert cursor.fresh([old, new]) == [old, new]
    cursor.mark(old)
    cursor.mark(new)
    assert cursor.fresh([old, new]) == []
    cursor.settle(now)
    assert set(cursor.seen) == {2} and cursor.read_from() == now - timedelta(minutes=5)
