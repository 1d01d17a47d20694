"""Property tests: no body, however odd, makes the receiver answer 5xx or the parser raise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.webhooks import WebhookFormatError, WebhookSettings, create_app, parse_webhook
from tests.webhooks.conftest import APP_SECRET, VERIFY_TOKEN, ASGIClient, signed

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["sent", "delivered", "read", "failed", "played", "1760000000", "wamid.X", "marketing_lite"]
    ),
)
any_json = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, sometimes anything at all."""
    return st.integers(0, 7).flatmap(lambda i: any_json if i == 0 else valid)


timestamps = st.sampled_from(
    ["1760000000", 1760000000, 1760000000.5, " 1760000001 ", "-1", "1e400", "NaN", 0]
)
status_like = st.fixed_dictionaries(
    {
        "id": either(st.sampled_from(["wamid.1", "wamid.2", "wamid." + "x" * 200, 12345])),
        "status": either(
            st.sampled_from(["sent", "delivered", "read", "failed", "played", "READ", "deleted"])
        ),
        "timestamp": either(timestamps),
    },
    optional={
        "recipient_id": either(st.sampled_from(["4915123456789", 4915123456789, "9" * 80])),
        "biz_opaque_callback_data": either(
            st.sampled_from(
                [
                    "wamm1.0123456789abcdef.camp",
                    "wamm1.0123456789abcdef." + "c" * 400,
                    "wamm1.XYZ.camp",
                    "x" * 10_000,
                    "tag wamm1.0123456789abcdef.c1 tail",
                ]
            )
        ),
        "pricing": either(
            st.fixed_dictionaries(
                {},
                optional={
                    "category": either(st.sampled_from(["marketing_lite", "marketing", "m" * 50])),
                    "pricing_model": either(st.just("PMP")),
                },
            )
        ),
        "errors": either(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "code": either(st.sampled_from([131049, "131026", 2**40, -3, 1.5, "12a"])),
                        "title": any_json,
                        "message": any_json,
                        "error_data": either(st.fixed_dictionaries({}, optional={"details": any_json})),
                    },
                )
                | any_json,
                max_size=2,
            )
        ),
    },
)
action_like = st.fixed_dictionaries(
    {
        "action_type": either(st.sampled_from(["marketing_messages_link_click", "landing_page_view"])),
        "timestamp": either(timestamps),
    },
    optional={
        "marketing_messages_link_click_data": either(
            st.fixed_dictionaries(
                {},
                optional={
                    "click_id": either(st.sampled_from(["c1", "c2", "c" * 300])),
                    "click_component": either(st.sampled_from(["cta", "BODY"])),
                    "product_id": any_json,
                    "tracking_token": any_json,
                },
            )
        ),
    },
)
value_like = st.one_of(
    st.fixed_dictionaries({"statuses": either(st.lists(either(status_like), max_size=5))}),
    st.fixed_dictionaries({"user_actions": either(st.lists(either(action_like), max_size=3))}),
    st.fixed_dictionaries(
        {},
        optional={
            "statuses": either(st.lists(either(status_like), max_size=5)),
            "user_actions": either(st.lists(either(action_like), max_size=3)),
            "messages": any_json,
        },
    ),
)
change_like = st.fixed_dictionaries(
    {"value": either(value_like)}, optional={"field": either(st.sampled_from(["messages", "other"]))}
)
entry_like = st.fixed_dictionaries(
    {"changes": either(st.lists(either(change_like), max_size=3))}, optional={"id": any_json}
)
meta_like = st.fixed_dictionaries(
    {"entry": st.lists(either(entry_like), max_size=3)}, optional={"object": any_json}
)
bodies = st.integers(0, 4).flatmap(lambda i: any_json if i == 0 else meta_like)


@settings(max_examples=200, deadline=None)
@given(payload=bodies)
def test_parser_never_raises_anything_but_format_error(payload: Any) -> None:
    try:
        parsed = parse_webhook(payload)
    except WebhookFormatError:
        assert not (isinstance(payload, dict) and isinstance(payload.get("entry"), list))
        return
    for update in parsed.statuses:
        assert update.status in {"sent", "delivered", "read", "failed", "played"}
        assert 0 < len(update.wamid) <= 191
    assert parsed.skipped >= 0 and parsed.ignored >= 0


@pytest.fixture(scope="module")
def hostile_client(tmp_path_factory: pytest.TempPathFactory) -> ASGIClient:
    ledger = Ledger.from_url(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'ledger.db'}")
    return ASGIClient(
        create_app(WebhookSettings(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, ledger=ledger))
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=bodies)
def test_signed_random_bodies_never_give_5xx(hostile_client: ASGIClient, payload: Any) -> None:
    raw = json.dumps(payload).encode()
    response = hostile_client.post("/", content=raw, headers=signed(raw))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert set(response.json()) == {"statuses", "clicks", "skipped", "ignored"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_signed_random_bytes_never_give_5xx(hostile_client: ASGIClient, raw: bytes) -> None:
    response = hostile_client.post("/", content=raw, headers=signed(raw))
    assert response.status_code in (200, 400)
