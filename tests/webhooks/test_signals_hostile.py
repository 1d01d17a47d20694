"""Property tests: no signal webhook body, however odd, makes the parser raise or the receiver answer 5xx,
and whatever is stored is whole."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.webhooks import WebhookSettings, create_app, parse_webhook
from airflow_provider_wamm.webhooks.signals import SIGNAL_PARSERS
from tests.webhooks.conftest import APP_SECRET, VERIFY_TOKEN, ASGIClient, signed
from tests.webhooks.meta_examples import EXAMPLES, user_preferences

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        ["stop", "resume", "marketing_messages", "APPROVED", "PAUSED", "RED", "TIER_2K", "2000", "1731705721"]
    ),
)
any_json = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=15,
)
PREFERENCE_ITEM = user_preferences()["entry"][0]["changes"][0]["value"]["user_preferences"][0]


def mutated(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``base`` with some keys replaced by anything and some dropped; sometimes anything at all."""
    keys = sorted(base)
    edits = st.dictionaries(st.sampled_from(keys), any_json, max_size=len(keys))
    drops = st.sets(st.sampled_from(keys), max_size=2)

    def apply(edit: dict[str, Any], drop: set[str]) -> dict[str, Any]:
        out = {**base, **edit}
        for key in drop:
            out.pop(key, None)
        return out

    return st.one_of(st.builds(apply, edits, drops), any_json)


values = st.one_of(
    *(st.tuples(st.just(field), mutated(value)) for field, value in sorted(EXAMPLES.items())),
    st.tuples(
        st.just("user_preferences"),
        st.fixed_dictionaries({"user_preferences": st.lists(mutated(PREFERENCE_ITEM), max_size=3)})
        | any_json,
    ),
)
bodies = st.builds(
    lambda pair, entry_id, time: {
        "object": "whatsapp_business_account",
        "entry": [{"id": entry_id, "time": time, "changes": [{"field": pair[0], "value": pair[1]}]}],
    },
    values,
    st.one_of(st.just("102290129340398"), any_json),
    st.one_of(st.just(1751247548), any_json),
)


@settings(max_examples=300, deadline=None)
@given(payload=bodies)
def test_signal_parsers_never_raise(payload: Any) -> None:
    parsed = parse_webhook(payload)
    assert parsed.skipped >= 0 and parsed.ignored >= 0
    for change in parsed.signals.preferences:
        assert change.recipient and len(change.recipient) <= 64 and change.timestamp is not None
    for event in parsed.signals.template_events:
        assert event.event and (event.template_id or event.template_name)


def test_every_parser_is_exercised() -> None:
    assert set(SIGNAL_PARSERS) == {*EXAMPLES, "user_preferences"}


@pytest.fixture(scope="module")
def signal_ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    return Ledger.from_url(f"sqlite:///{tmp_path_factory.mktemp('signals') / 'ledger.db'}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=bodies)
def test_signed_signal_bodies_never_give_5xx(signal_ledger: Ledger, payload: Any) -> None:
    client = ASGIClient(
        create_app(WebhookSettings(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, ledger=signal_ledger))
    )
    raw = json.dumps(payload).encode()
    response = client.post("/", content=raw, headers=signed(raw))
    assert response.status_code == 200, response.text
    with signal_ledger.engine.connect() as conn:
        for row in conn.execute(sa.select(signal_ledger.template_events)).mappings():
            assert row["event"] and (row["template_id"] or row["template_name"])
        for row in conn.execute(sa.select(signal_ledger.suppression_audit)).mappings():
            assert row["recipient"] and row["event_at"] is not None
