"""A handle to stop a running campaign from outside: another thread, or a signal handler.

:meth:`CampaignControl.stop` only sets two attributes: it never blocks, takes no lock and touches
neither the ledger nor the network, so it is safe to call from a signal handler that interrupted the
campaign's own thread mid-loop (Airflow's task runner calls ``on_kill`` that way on SIGTERM). The run
notices the request within milliseconds and winds down (see
:func:`~airflow_provider_wamm.campaign.sender.run_campaign`).
"""

from __future__ import annotations

import threading


class CampaignControl:
    """Passed to ``run_campaign``; :meth:`stop` asks the run to stop as soon as it safely can."""

    def __init__(self) -> None:
        self._requested = False
        self._reason: str | None = None

    def stop(self, reason: str = "stop requested") -> None:
        """Ask the run to stop (the first reason given is kept). Only sets flags: never blocks."""
        if not self._requested:
            self._reason = reason
            self._requested = True

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._requested

    @property
    def reason(self) -> str | None:
        """The reason given to the first :meth:`stop`, if any."""
        return self._reason

    def __repr__(self) -> str:
        state = f"stop requested: {self._reason}" if self._requested else "running"
        return f"CampaignControl({state})"


class StopEvent(threading.Event):
    """The run's stop, shared with its workers and its pace: set by the run (a halt, an error, a stop
    it noticed), and seen as set by :meth:`is_set` the moment ``control`` asks for a stop, before the
    run's own thread has noticed, so that no worker starts another request meanwhile.

    :param control: the caller's handle, if any.
    """

    def __init__(self, control: CampaignControl | None = None) -> None:
        super().__init__()
        self._control = control

    def is_set(self) -> bool:
        """Set by the run, or a stop requested through the control."""
        return super().is_set() or (self._control is not None and self._control.stop_requested)


__all__ = ["CampaignControl", "StopEvent"]
