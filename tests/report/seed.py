"""A small campaign with every kind of outcome, written through the ledger's own API.

Used by the report and sensor tests. The expected numbers are spelled out in ``EXPECTED``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow_provider_wamm.campaign.ledger import (
    ACCEPTED,
    FAILED,
    HELD,
    INVALID,
    SKIPPED,
    ClickEvent,
    Ledger,
    SendOutcome,
    StatusUpdate,
)

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
TEMPLATE = "spring_sale"
LANGUAGE = "en_US"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seed_sends(ledger: Ledger, campaign_id: str, *, now: datetime = T0, prefix: str = "w") -> None:
    """11 recipients: 6 accepted, 1 held, 2 refused (131026, 131050), 1 skipped, 1 invalid."""
    sent = [f"4915100000{i:03d}" for i in range(9)]
    ledger.claim(campaign_id, sent, attempt_id="att-1", template_name=TEMPLATE, language=LANGUAGE, now=now)
    outcomes = [
        SendOutcome(
            sent[i], ACCEPTED, wamid=f"{prefix}{i}", message_status="accepted", attempts=1, accepted_at=now
        )
        for i in range(6)
    ]
    outcomes.append(
        SendOutcome(
            sent[6],
            HELD,
            wamid=f"{prefix}6",
            message_status="held_for_quality_assessment",
            attempts=1,
            accepted_at=now,
        )
    )
    outcomes.append(
        SendOutcome(
            sent[7],
            FAILED,
            error_code=131026,
            error_title="Message undeliverable",
            error_details="x",
            attempts=1,
        )
    )
    outcomes.append(SendOutcome(sent[8], FAILED, error_code=131050, error_title="stopped", attempts=1))
    ledger.record_results(campaign_id, outcomes, attempt_id="att-1", now=now)
    ledger.record_unsent(
        campaign_id,
        [
            SendOutcome("4915100000999", SKIPPED, error_code=131050, error_details="suppressed"),
            SendOutcome("!0:12", INVALID, error_details="missing field 'phone'"),
        ],
        attempt_id="att-1",
        template_name=TEMPLATE,
        language=LANGUAGE,
        now=now,
    )


def seed_statuses(ledger: Ledger, *, prefix: str = "w", settle: bool = False) -> None:
    """Statuses of the accepted messages; ``settle=True`` also finalises the two open ones."""

    def st(
        i: int, status: str, seconds: float, category: str | None = "marketing_lite", code: int | None = None
    ) -> StatusUpdate:
        return StatusUpdate(
            wamid=f"{prefix}{i}",
            status=status,
            timestamp=at(seconds),
            recipient_id=f"4915100000{i:03d}",
            pricing_category=category,
            pricing_model="PMP" if category else None,
            error_code=code,
            error_title="Meta chose not to deliver" if code else None,
            error_details="healthy ecosystem" if code else None,
        )

    updates = [
        st(0, "sent", 1),
        st(0, "delivered", 2),
        st(0, "read", 5, None),  # read after 2 s delivery
        st(1, "sent", 1),
        st(1, "delivered", 4),  # delivered after 4 s
        st(2, "read", 10, "marketing"),  # read without delivered (Cloud API fallback), 10 s
        st(3, "failed", 3, None, 131049),  # failed after acceptance
        st(4, "sent", 1),  # only sent: unsettled
        # w5: nothing yet: pending, unsettled
        st(6, "delivered", 6),  # held, then delivered after 6 s
    ]
    if settle:
        updates += [st(4, "delivered", 8), st(5, "failed", 9, None, 131049)]
    ledger.record_statuses(updates)
    ledger.record_clicks(
        [
            ClickEvent(click_id=f"{prefix}-k1", timestamp=at(20), wamid=f"{prefix}0"),
            ClickEvent(click_id=f"{prefix}-k2", timestamp=at(21), wamid=f"{prefix}0"),
            ClickEvent(click_id=f"{prefix}-k3", timestamp=at(22), wamid=f"{prefix}1"),
            ClickEvent(click_id=f"{prefix}-k4", timestamp=at(23)),  # no message known
        ]
    )


EXPECTED = {
    "total": 11,
    "sends": {"accepted": 6, "held": 1, "failed": 2, "skipped": 1, "invalid": 1},
    "accepted": 7,
    "delivery": {"sent": 1, "delivered": 2, "read": 2, "failed": 1, "pending": 1},
    "delivered": 4,
    "read": 2,
    "delivery_failed": 1,
    "clicked": 2,
    "clicks": 3,
    "routing": {"marketing_lite": 4, "marketing": 1, "unknown": 2},
    "latencies": [2.0, 4.0, 10.0, 6.0],
    "unsettled": 2,
}
