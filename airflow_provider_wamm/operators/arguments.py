"""The operator's arguments: the string options it takes and how rendered values become settings.

Two moments, two kinds of error. Arguments without templates are checked when the DAG is parsed: a
``ValueError`` stops the DAG from loading and says why. Templated arguments are only known once rendered,
in ``execute``: they are converted here to the types the campaign engine takes, and a value that cannot
be converted fails the task (``AirflowFailException`` naming the argument; a retry would not help).
Ranges and combinations (shards, rates, sizes) are the engine's to check, once, in
:meth:`~airflow_provider_wamm.campaign.sender.CampaignSettings.validate`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, TypeVar, get_args

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_wamm.graph.limits import PRODUCT_POLICIES, ProductPolicy

#: What to do when a campaign has no recipients.
OnEmpty = Literal["succeed", "skip", "fail"]
#: What to do when a campaign ends with recipients whose outcome is open (``unknown``, or still
#: claimed by another attempt): log a warning, or fail the task.
OnUnknown = Literal["warn", "fail"]

#: Values of ``on_empty``.
ON_EMPTY: tuple[OnEmpty, ...] = get_args(OnEmpty)
#: Values of ``on_unknown``.
ON_UNKNOWN: tuple[OnUnknown, ...] = get_args(OnUnknown)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", "", "none"})


def is_templated(value: Any) -> bool:
    """Whether ``value`` is a Jinja template string (checked only once rendered)."""
    return isinstance(value, str) and "{{" in value


# -- when the DAG is parsed ------------------------------------------------------------------------------


def check_recipient_source(recipients: Any, sql: str | None, sql_conn_id: str | None) -> None:
    """``ValueError`` unless the recipients come from at most one of ``recipients`` and ``sql``."""
    if recipients is not None and sql is not None:
        raise ValueError("Pass either 'recipients' or 'sql', not both.")
    if sql is not None and not sql_conn_id:
        raise ValueError("'sql' needs 'sql_conn_id', the connection to run it on.")


_ChoiceT = TypeVar("_ChoiceT", bound=str)


def check_choice(name: str, value: object, choices: tuple[_ChoiceT, ...]) -> _ChoiceT:
    """``value`` as one of ``choices`` (the options of argument ``name``); ``ValueError`` naming the
    argument and its options otherwise."""
    if value not in choices:
        raise ValueError(f"{name!r} must be one of {choices}, got {value!r}.")
    return value


def check_on_empty(value: str) -> OnEmpty:
    """``value`` as an :data:`OnEmpty` option; ``ValueError`` naming the options otherwise."""
    return check_choice("on_empty", value, ON_EMPTY)


def check_on_unknown(value: str) -> OnUnknown:
    """``value`` as an :data:`OnUnknown` option; ``ValueError`` naming the options otherwise."""
    return check_choice("on_unknown", value, ON_UNKNOWN)


def check_failure_ratio(value: float | None) -> float | None:
    """``value`` when it is a share between 0 and 1 (or ``None``); ``ValueError`` otherwise."""
    if value is not None and not 0 <= value <= 1:
        raise ValueError(f"'max_failure_ratio' must be between 0 and 1, got {value}.")
    return value


def check_campaign_options(options: Mapping[str, Any] | None, allowed: Collection[str]) -> dict[str, Any]:
    """A copy of ``options``; ``ValueError`` naming the ones that are not in ``allowed``."""
    unknown = sorted(set(options or {}) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown campaign_options {unknown}; the operator's own arguments set the others. "
            f"Allowed: {sorted(allowed)}."
        )
    return dict(options or {})


def parse_product_policy(value: Any) -> ProductPolicy | None:
    """The policy in Meta's spelling (``"strict"`` is ``STRICT``), ``None`` when unset; ``ValueError``."""
    if not value:
        return None
    policy = str(value).upper()
    if policy not in PRODUCT_POLICIES:
        raise ValueError(f"'product_policy' must be one of {PRODUCT_POLICIES}, got {value!r}.")
    return policy


# -- once rendered ------------------------------------------------------------------------------------------


def as_product_policy(value: Any) -> ProductPolicy | None:
    """The rendered ``product_policy`` (see :func:`parse_product_policy`); fails the task when invalid."""
    try:
        return parse_product_policy(value)
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None


def as_bool(value: Any, name: str) -> bool:
    """A boolean argument that may have been rendered from a template to ``"True"``/``"false"``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise AirflowFailException(f"{name!r} must be true or false, got {value!r}.")


def as_number(value: Any, name: str) -> float:
    """A number argument that may have been rendered from a template to a string such as ``"12.5"``."""
    return _converted(value, name, float, "a number")


def as_int(value: Any, name: str) -> int:
    """An integer argument that may have been rendered from a template to a string such as ``"3"``."""
    return _converted(value, name, int, "an integer")


_NumberT = TypeVar("_NumberT", int, float)


def _converted(value: Any, name: str, convert: Callable[[Any], _NumberT], what: str) -> _NumberT:
    """``convert(value)``; a boolean, or a value it cannot convert, fails the task naming ``name``."""
    if not isinstance(value, bool):
        try:
            return convert(value)
        except (TypeError, ValueError):
            pass
    raise AirflowFailException(f"{name!r} must be {what}, got {value!r}.")


__all__ = [
    "ON_EMPTY",
    "ON_UNKNOWN",
    "PRODUCT_POLICIES",
    "OnEmpty",
    "OnUnknown",
    "ProductPolicy",
    "as_bool",
    "as_int",
    "as_number",
    "as_product_policy",
    "check_campaign_options",
    "check_choice",
    "check_failure_ratio",
    "check_on_empty",
    "check_on_unknown",
    "check_recipient_source",
    "is_templated",
    "parse_product_policy",
]
