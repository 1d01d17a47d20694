"""The ledger's tables for Meta's other signals, registered in the ledger's schema as one group.

Each table is defined in the module that reads and writes it: the suppression audit
(:mod:`~airflow_provider_wamm.campaign.ledger.audit`), template events
(:mod:`~airflow_provider_wamm.campaign.ledger.template_events`) and account signals
(:mod:`~airflow_provider_wamm.campaign.ledger.account_signals`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from airflow_provider_wamm.campaign.ledger.account_signals import define_account_signals
from airflow_provider_wamm.campaign.ledger.audit import define_suppression_audit
from airflow_provider_wamm.campaign.ledger.template_events import define_template_events


@dataclass(frozen=True)
class SignalTables:
    """The tables of Meta's signals besides delivery statuses."""

    suppression_audit: sa.Table
    """One row per change of a person's suppression, with the signal that caused it."""
    template_events: sa.Table
    """One row per template status, quality or category event (deduplicated)."""
    account_signals: sa.Table
    """One row per account, capability, phone-number quality or alert signal (deduplicated)."""


def define_signal_tables(metadata: sa.MetaData, table_prefix: str) -> SignalTables:
    """Define the signal tables in ``metadata`` (the prefix is validated by the caller)."""
    return SignalTables(
        suppression_audit=define_suppression_audit(metadata, table_prefix),
        template_events=define_template_events(metadata, table_prefix),
        account_signals=define_account_signals(metadata, table_prefix),
    )


__all__ = ["SignalTables", "define_signal_tables"]
