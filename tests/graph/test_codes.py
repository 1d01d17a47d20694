"""Meta's codes as data: titles, classes, and the codes that outlast one message."""

from __future__ import annotations

import pytest

from airflow_provider_wamm.graph import (
    ERROR_TITLES,
    PER_USER_PERMANENT_CODES,
    RECIPIENT_CODES,
    Action,
    RecipientError,
    classify,
    error_class_for,
    error_title,
)
from airflow_provider_wamm.graph.codes import HALT_CODES, TEMPLATE_SYNC_CODES, TEMPLATE_SYNC_WAIT_S


@pytest.mark.parametrize(
    ("code", "action", "title"),
    [
        (131009, Action.RECIPIENT, "template is not synced yet: wait about 10 minutes"),
        (131052, Action.RECIPIENT, "Media download error"),
        (131053, Action.RECIPIENT, "Media upload error"),
        (130472, Action.RECIPIENT, "experiment"),
        (131062, Action.RECIPIENT, "Business-scoped user ID"),
        (135000, Action.RECIPIENT, "Generic user error"),
        (137000, Action.RECIPIENT, "Identity key hash mismatch"),
        (134102, Action.RECIPIENT, "Marketing Messages API"),
        (134103, Action.RECIPIENT, "Marketing Messages API"),
        (134101, Action.HALT, "not yet ready"),
    ],
)
def test_titles_and_classes(code: int, action: Action, title: str) -> None:
    assert classify(code, http_status=400) is action
    assert title in error_title(code)
    if action is Action.RECIPIENT:
        assert error_class_for(code, http_status=400) is RecipientError


def test_per_user_permanent_codes() -> None:
    assert {130472, 131050, 137000} == PER_USER_PERMANENT_CODES
    assert PER_USER_PERMANENT_CODES <= RECIPIENT_CODES  # the sender still records them per recipient
    assert all(code in ERROR_TITLES for code in PER_USER_PERMANENT_CODES)


def test_template_sync_codes() -> None:
    assert {131009, 134101} == TEMPLATE_SYNC_CODES
    assert TEMPLATE_SYNC_WAIT_S == 600
    assert 134101 in HALT_CODES and 131009 in RECIPIENT_CODES  # reactions unchanged
