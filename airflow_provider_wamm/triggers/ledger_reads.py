"""The ledger of a trigger that polls it: opened on the first read in the triggerer, disposed at the end.

The ledger is never serialized with the trigger (only its connection id and table prefix are): each
run of the trigger opens its own, on first use, in the worker thread that reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_wamm.campaign.ledger import Ledger


class LedgerReads:
    """Mix-in of the triggers that read the ledger (they set ``ledger_conn_id`` and
    ``ledger_table_prefix``)."""

    ledger_conn_id: str | None
    ledger_table_prefix: str
    _ledger: Ledger | None = None

    def _open(self) -> Ledger:
        """The ledger, opened on first use."""
        if self._ledger is None:
            from airflow_provider_wamm.hooks.ledger import get_ledger

            self._ledger = get_ledger(self.ledger_conn_id, table_prefix=self.ledger_table_prefix)
        return self._ledger

    def _close(self) -> None:
        """Dispose of the ledger's connections, if it was opened."""
        if self._ledger is not None:
            self._ledger.dispose()
            self._ledger = None


__all__ = ["LedgerReads"]
