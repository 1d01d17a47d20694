"""Hostile recipient data: it is data, never code. Property tests (hypothesis).

Recipient fields end up in template parameters and phone numbers in ledger keys. Whatever a field
holds (format fields, SQL, markup, control characters), personalisation copies it or refuses it with a
:class:`PayloadError`; it is never interpreted. Phone numbers come out as digits or not at all.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.graph.payload import PayloadError, build_marketing_message
from airflow_provider_wamm.graph.recipients import InvalidRecipientError, normalize_phone

FAST = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

NASTY = st.sampled_from(
    [
        "{token}",
        "{0}",
        "{name.__class__.__init__.__globals__}",
        "{{name}}",
        "%s%s%(x)s",
        "'); DROP TABLE wamm_sends; --",
        "<script>alert(1)</script>",
        "${jndi:ldap://x}",
        "\u202eevil",
        "a\u0000b",
        "{{7*7}}",
    ]
)
values = st.one_of(NASTY, st.text(max_size=80), st.builds(lambda a, b: a + b, NASTY, st.text(max_size=10)))
SECRET_FIELD = "never-rendered-secret"


@FAST
@given(value=values)
def test_field_values_are_copied_or_refused_never_interpreted(value: str) -> None:
    positional = Personaliser(body_parameters=["{name}", "Hi {name}!"])
    named = Personaliser(body_parameters={"first_name": "{name}"})
    row: dict[str, Any] = {"name": value, "token": SECRET_FIELD}
    for personaliser, expected in ((positional, [value, f"Hi {value}!"]), (named, [value])):
        try:
            components = personaliser.render(row)
            payload = build_marketing_message(
                to="4915100000001", template_name="t", language="en_US", components=components
            )
        except PayloadError:
            continue
        texts = [p["text"] for p in payload["template"]["components"][0]["parameters"]]
        assert texts == expected
        assert SECRET_FIELD not in repr(payload) or SECRET_FIELD in value


@FAST
@given(value=st.one_of(NASTY, st.text(max_size=40), st.from_regex(r"\+?[0-9 ()\-.]{0,20}", fullmatch=True)))
@example(value="4930000000000000")  # phonenumbers calls this valid: 16 digits, more than E.164 allows
@example(value="+49 30 0000000000000000")
def test_phone_numbers_are_digits_or_refused(value: str) -> None:
    try:
        digits = normalize_phone(value)
    except InvalidRecipientError as exc:
        assert exc.field == "to"
        return
    assert re.fullmatch(r"[1-9][0-9]{4,14}", digits), digits
