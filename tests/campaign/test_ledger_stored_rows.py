"""The rows claims and outcomes leave in a SQLite ledger, value for value and type for type.

The expected rows were read from a ledger written by the statements SQLAlchemy built per call, before
the claims and outcomes were written by statements built once (``campaign.ledger.prepared``); the text
of every stored time, every NULL and every number must stay exactly as it was.
"""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome, SendState

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2025, 6, 1, 12, 0, 1, 250001, tzinfo=UTC)
LATER = T0 + timedelta(hours=2)


def write_scenario(ledger: Ledger) -> None:
    """Claims, outcomes of every kind, unsent rows, a take-over, a release and a second attempt."""
    r = [f"4915100000{i:03d}" for i in range(8)]
    assert ledger.claim("c", r[:6], attempt_id="a1", template_name="t", language="en", now=T0) == set(r[:6])
    ledger.record_results(
        "c",
        [
            SendOutcome(r[0], SendState.ACCEPTED, wamid="wamid.0", message_status="accepted", attempts=1),
            SendOutcome(
                r[1],
                SendState.HELD,
                wamid="wamid.1",
                message_status="held_for_quality_assessment",
                attempts=2,
                accepted_at=T1,
                wa_id="5511999990001",
            ),
            SendOutcome(
                r[2],
                SendState.FAILED,
                error_code=131000,
                error_title="Something went wrong",
                error_details="x" * 2100,
                attempts=3,
                not_before=T0 + timedelta(days=30),
            ),
            SendOutcome(
                r[3],
                SendState.FAILED,
                error_code=131049,
                error_title="limit",
                attempts=1,
                not_before=T0 + timedelta(days=1),
                retry_after=T0 + timedelta(days=1),
                user_id="US.12345",
            ),
            SendOutcome(r[4], SendState.UNKNOWN, attempts=1),
        ],
        attempt_id="a1",
        now=T1,
    )
    ledger.record_unsent(
        "c",
        [SendOutcome(r[6], SendState.SKIPPED, error_details="cap"), SendOutcome("!7", SendState.INVALID)],
        attempt_id="a1",
        template_name="t",
        language="en",
        now=T0,
    )
    # A second 131049 answer counts one more try and keeps the time of the first.
    assert ledger.claim("c", [r[3]], attempt_id="a2", now=T0 + timedelta(days=2)) == {r[3]}
    ledger.record_results(
        "c",
        [
            SendOutcome(
                r[3], SendState.FAILED, error_code=131049, attempts=1, retry_after=LATER + timedelta(days=3)
            )
        ],
        attempt_id="a2",
        now=LATER,
    )
    assert ledger.release_claims("c", attempt_id="a1", recipients=[r[5]]) == 1
    assert ledger.claim("c", r, attempt_id="a3", variant="v1", now=LATER, resend_unknown=True) == {
        r[4],
        r[5],
        r[6],
        r[7],
    }
    assert ledger.mark_stale_claims("c", attempt_id="a4", now=LATER + timedelta(seconds=1)) == 4
    assert ledger.claim("d", r[:2], attempt_id="d1", shard_index=2, now=T1) == set(r[:2])
    ledger.record_results(
        "d", [SendOutcome(r[0], SendState.PAUSED, message_status="paused")], attempt_id="d1", now=T1
    )


def stored_rows(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables the scenario writes, as the driver reads them (stored text and types)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with ledger.read() as conn:
        for table, order in ((ledger.sends, "campaign_id, recipient"), (ledger.identities, "key")):
            rows = conn.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY {order}")
            out[table.name] = [tuple(row) for row in rows]
    return out


def test_stored_rows_are_as_before(tmp_path: pathlib.Path) -> None:
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    write_scenario(ledger)
    assert stored_rows(ledger) == EXPECTED
    ledger.dispose()


EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "wamm_sends": [
        (
            "c",
            "!7",
            "invalid",
            "a1",
            0,
            "t",
            "en",
            None,
            None,
            None,
            None,
            None,
            0,
            None,
            None,
            None,
            "2025-06-01 12:00:00.000000",
            None,
            None,
            None,
            None,
            None,
            None,
        ),
        (
            "c",
            "4915100000000",
            "accepted",
            "a1",
            0,
            "t",
            "en",
            "wamid.0",
            "accepted",
            None,
            None,
            None,
            1,
            None,
            "2025-06-01 12:00:00.000000",
            "2025-06-01 12:00:01.250001",
            "2025-06-01 12:00:01.250001",
            None,
            None,
            None,
            None,
            None,
            None,
        ),
        (
            "c",
            "4915100000001",
            "held",
            "a1",
            0,
            "t",
            "en",
            "wamid.1",
            "held_for_quality_assessment",
            None,
            None,
            None,
            2,
            None,
            "2025-06-01 12:00:00.000000",
            "2025-06-01 12:00:01.250001",
            "2025-06-01 12:00:01.250001",
            None,
            None,
            None,
            None,
            "5511999990001",
            None,
        ),
        (
            "c",
            "4915100000002",
            "failed",
            "a1",
            0,
            "t",
            "en",
            None,
            None,
            131000,
            "Something went wrong",
            "x" * 1999 + "…",
            3,
            "2025-07-01 12:00:00.000000",
            "2025-06-01 12:00:00.000000",
            None,
            "2025-06-01 12:00:01.250001",
            None,
            None,
            None,
            None,
            None,
            None,
        ),
        (
            "c",
            "4915100000003",
            "failed",
            "a2",
            0,
            None,
            None,
            None,
            None,
            131049,
            None,
            None,
            1,
            None,
            "2025-06-03 12:00:00.000000",
            None,
            "2025-06-01 14:00:00.000000",
            2,
            "2025-06-01 12:00:01.250001",
            "2025-06-04 14:00:00.000000",
            None,
            None,
            "US.12345",
        ),
        (
            "c",
            "4915100000004",
            "unknown",
            "a3",
            0,
            None,
            None,
            None,
            None,
            None,
            None,
            "claimed by an attempt that did not finish: the message may or may not have been sent",
            0,
            None,
            "2025-06-01 14:00:00.000000",
            None,
            "2025-06-01 14:00:01.000000",
            None,
            None,
            None,
            "v1",
            None,
            None,
        ),
        (
            "c",
            "4915100000005",
            "unknown",
            "a3",
            0,
            None,
            None,
            None,
            None,
            None,
            None,
            "claimed by an attempt that did not finish: the message may or may not have been sent",
            0,
            None,
            "2025-06-01 14:00:00.000000",
            None,
            "2025-06-01 14:00:01.000000",
            None,
            None,
            None,
            "v1",
            None,
            None,
        ),
        (
            "c",
            "4915100000006",
            "unknown",
            "a3",
            0,
            None,
            None,
            None,
            None,
            None,
            None,
            "claimed by an attempt that did not finish: the message may or may not have been sent",
            0,
            None,
            "2025-06-01 14:00:00.000000",
            None,
            "2025-06-01 14:00:01.000000",
            None,
            None,
            None,
            "v1",
            None,
            None,
        ),
        (
            "c",
            "4915100000007",
            "unknown",
            "a3",
            0,
            None,
            None,
            None,
            None,
            None,
            None,
            "claimed by an attempt that did not finish: the message may or may not have been sent",
            0,
            None,
            "2025-06-01 14:00:00.000000",
            None,
            "2025-06-01 14:00:01.000000",
            None,
            None,
            None,
            "v1",
            None,
            None,
        ),
        (
            "d",
            "4915100000000",
            "paused",
            "d1",
            2,
            None,
            None,
            None,
            "paused",
            None,
            None,
            None,
            0,
            None,
            "2025-06-01 12:00:01.250001",
            "2025-06-01 12:00:01.250001",
            "2025-06-01 12:00:01.250001",
            None,
            None,
            None,
            None,
            None,
            None,
        ),
        (
            "d",
            "4915100000001",
            "claimed",
            "d1",
            2,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            0,
            None,
            "2025-06-01 12:00:01.250001",
            None,
            "2025-06-01 12:00:01.250001",
            None,
            None,
            None,
            None,
            None,
            None,
        ),
    ],
    "wamm_identities": [
        (
            "4915100000001",
            "4915100000001",
            "phone",
            "send_answer",
            "2025-06-01 12:00:01.250001",
            "2025-06-01 12:00:01.250001",
        ),
        (
            "4915100000003",
            "4915100000003",
            "phone",
            "send_answer",
            "2025-06-01 12:00:01.250001",
            "2025-06-01 12:00:01.250001",
        ),
        (
            "5511999990001",
            "4915100000001",
            "phone",
            "send_answer",
            "2025-06-01 12:00:01.250001",
            "2025-06-01 12:00:01.250001",
        ),
        (
            "US.12345",
            "4915100000003",
            "user_id",
            "send_answer",
            "2025-06-01 12:00:01.250001",
            "2025-06-01 12:00:01.250001",
        ),
    ],
}
