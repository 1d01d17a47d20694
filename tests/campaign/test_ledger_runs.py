"""The ledger's attempts: who counts as alive (task instance and try), takeovers and releases limited
to some recipients, and runs tables of an earlier version upgraded in place."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.ledger.runs import Liveness
from airflow_provider_wamm.campaign.ledger.schema import add_missing_columns
from tests.campaign.test_ledger import T0, phones


def test_claims_of_an_older_try_of_the_same_owner_are_over_once_its_heartbeat_stops(ledger: Ledger) -> None:
    """A newer try takes over at once what an older try of its task instance left claimed."""
    hour = timedelta(hours=1)
    older_try = Liveness(
        hour, owner="dag.send.run.-1", try_number=2, older_try_live_within=timedelta(seconds=10)
    )
    for attempt, owner, try_number, beat_age_s in (
        ("try-1-silent", "dag.send.run.-1", 1, 15),  # older try, heartbeat stopped 15 s ago: over
        ("try-1-beating", "dag.send.run.-1", 1, 2),  # older try still beating (its stop grace): alive
        ("other-task", "dag.other.run.-1", 1, 15),  # another task's attempt: alive for an hour
        ("no-owner", None, None, 15),  # an attempt that names no owner: alive for an hour
        ("finished", "dag.send.run.-1", 3, 0),  # not running any more: over, whoever it is
    ):
        ledger.start_run("c", attempt, owner=owner, try_number=try_number, now=T0 - timedelta(minutes=1))
        ledger.heartbeat(attempt, now=T0 - timedelta(seconds=beat_age_s))
        ledger.claim("c", [attempt], attempt_id=attempt, now=T0)
    ledger.finish_run("finished", state="finished", summary={}, now=T0)
    assert ledger.mark_stale_claims("c", attempt_id="try-2", liveness=older_try, now=T0) == 2
    states = {r["recipient"]: r["state"] for r in ledger.iter_sends("c")}
    assert states == {
        "try-1-silent": "unknown",
        "try-1-beating": "claimed",
        "other-task": "claimed",
        "no-owner": "claimed",
        "finished": "unknown",
    }
    runs = {r["attempt_id"]: r for r in ledger.list_runs("c")}
    assert runs["try-1-silent"]["owner"] == "dag.send.run.-1" and runs["try-1-silent"]["try_number"] == 1
    assert runs["no-owner"]["owner"] is None and runs["no-owner"]["try_number"] is None
    # An hour later every silent attempt is over.
    later = T0 + timedelta(hours=2)
    assert ledger.mark_stale_claims("c", attempt_id="try-2", liveness=older_try, now=later) == 3


def test_stale_claims_and_releases_restricted_to_some_recipients(ledger: Ledger) -> None:
    ledger.claim("c", phones(4), attempt_id="dead", now=T0)
    ledger.claim("c", phones(3, start=10), attempt_id="me", now=T0)
    assert ledger.mark_stale_claims("c", attempt_id="me", recipients=phones(2)) == 2
    assert ledger.mark_stale_claims("c", attempt_id="me", recipients=[]) == 0
    assert ledger.release_claims("c", attempt_id="me", recipients=phones(1, start=10)) == 1
    assert ledger.release_claims("c", attempt_id="me", recipients=[]) == 0
    states = {r["recipient"]: r["state"] for r in ledger.iter_sends("c")}
    assert states == {
        **dict.fromkeys(phones(2), "unknown"),
        **dict.fromkeys(phones(2, start=2), "claimed"),
        **dict.fromkeys(phones(2, start=11), "claimed"),
    }


def test_a_ledger_of_an_earlier_version_gets_the_new_columns(ledger_url: str, table_prefix: str) -> None:
    """Runs tables made before attempts named their owner get the columns on first use, rows kept."""
    engine = sa.create_engine(ledger_url)
    old = sa.MetaData()
    sa.Table(
        f"{table_prefix}runs",
        old,
        sa.Column("attempt_id", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.String(255), nullable=False),
        sa.Column("shard_index", sa.Integer, nullable=False),
        sa.Column("shard_count", sa.Integer, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("summary", sa.Text),
    )
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            old.tables[f"{table_prefix}runs"].insert(),
            {
                "attempt_id": "old",
                "campaign_id": "c",
                "shard_index": 0,
                "shard_count": 1,
                "dry_run": False,
                "state": "finished",
                "started_at": datetime(2025, 1, 1),
            },
        )
    engine.dispose()
    led = Ledger.from_url(ledger_url, table_prefix=table_prefix)
    try:
        led.start_run("c", "new", owner="dag.send.run.-1", try_number=2, now=T0)
        runs = {r["attempt_id"]: r for r in led.list_runs("c")}
        assert runs["old"]["owner"] is None and runs["old"]["try_number"] is None
        assert runs["new"]["owner"] == "dag.send.run.-1" and runs["new"]["try_number"] == 2
        columns = {c["name"] for c in sa.inspect(led.engine).get_columns(f"{table_prefix}runs")}
        assert {"owner", "try_number"} <= columns
        assert add_missing_columns(led.engine, led.metadata) == []  # nothing left to add
    finally:
        led.dispose()
