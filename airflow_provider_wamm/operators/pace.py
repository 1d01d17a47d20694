"""How fast one task of the operator may send: its own cap and the phone number's cap it shares.

With ``share_cap`` (the default), every task sending from a number takes its share of the number's
cap through the ledger (:mod:`airflow_provider_wamm.campaign.cap_share`): a task's own cap is
``max_messages_per_second`` when given, else the whole connection's cap, and the number's cap is the
connection's (or the task's own, when that is higher: the number was upgraded before the connection).
Shards need no hand-set cap. With ``share_cap=False`` the old rule holds: the connection's cap divided
by ``shard_count``, each task on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_wamm.hooks.whatsapp import WhatsAppConnectionSettings


def shares_cap(options: Mapping[str, Any]) -> bool:
    """Whether the task shares its number's cap (``campaign_options["share_cap"]``, default on)."""
    return bool(options.get("share_cap", True))


def needs_connection(max_messages_per_second: object, options: Mapping[str, Any]) -> bool:
    """The connection's cap is needed: no cap was given, or the number's cap is shared."""
    return max_messages_per_second is None or (shares_cap(options) and "number_cap" not in options)


def task_pace(
    connection: WhatsAppConnectionSettings | None,
    rate: float | None,
    shard_count: int,
    options: Mapping[str, Any],
) -> tuple[float, dict[str, Any]]:
    """This task's own cap, and the engine options of the shared cap (``number_cap``).

    :param connection: the connection's settings (``None`` when :func:`needs_connection` said so).
    :param rate: ``max_messages_per_second`` as given, or ``None``.
    """
    number = connection.max_messages_per_second if connection is not None else None
    if not shares_cap(options):
        if rate is None:
            assert number is not None
            rate = number / max(shard_count, 1)  # validate() refuses a shard_count below 1
        return rate, {}
    if rate is None:
        assert number is not None
        rate = number
    extra: dict[str, Any] = {}
    if "number_cap" not in options:
        extra["number_cap"] = max(rate, number) if number is not None else rate
    return rate, extra


__all__ = ["needs_connection", "shares_cap", "task_pace"]
