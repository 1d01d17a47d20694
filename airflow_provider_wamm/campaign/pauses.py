"""Template pauses: what the stored template events say about sending a campaign's template now.

The webhook receiver stores every ``message_template_status_update`` and ``template_category_update``
in the ledger; :func:`template_trip` reads a template's current state from them and says whether a
campaign must stop: ``PAUSED`` (Meta lifts a first pause after 3 hours, a second after 6 hours; a third
disables the template) or ``PENDING`` can be waited for, ``DISABLED``, ``REJECTED`` or a category other
than ``MARKETING`` cannot. :class:`TemplateGuard` is the running campaign's guard over it.
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_wamm.campaign.guards import BaseGuard, Trip
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.ledger.signal_records import TemplateState

#: Statuses a campaign waits out: the template may be APPROVED again.
WAIT_STATUSES = frozenset({"PAUSED", "PENDING", "IN_APPEAL"})
#: Statuses a campaign cannot wait out.
FINAL_STATUSES = frozenset({"DISABLED", "REJECTED", "PENDING_DELETION", "DELETED", "ARCHIVED"})
#: The only category the Marketing Messages API sends.
MARKETING = "MARKETING"


def _newer(at: datetime | None, since: datetime | None) -> bool:
    """Whether a state part reported at ``at`` counts (it is not older than ``since``)."""
    return since is None or at is None or at >= since


def template_trip(state: TemplateState | None, *, since: datetime | None = None) -> Trip | None:
    """Why the template described by ``state`` cannot be sent now (``None``: nothing stored says so).

    :param since: parts of the state reported before this time are ignored (a fresher read of the
        template, such as the preflight's, said it was APPROVED MARKETING then).
    """
    if state is None:
        return None
    label = f"template {state.template_name or state.template_id!r} ({state.language or 'any language'})"
    status = (state.status or "").upper()
    if status and _newer(state.status_at, since):
        reason = f" (reason {state.reason})" if state.reason and state.reason != "NONE" else ""
        if status in FINAL_STATUSES:
            message = f"{label} was {status}{reason} by Meta; it cannot be sent any more"
            return Trip("template_disabled", message, final=True, status=status)
        if status in WAIT_STATUSES:
            message = f"{label} is {status}{reason}; sends fail with 132015 until it is APPROVED again"
            return Trip("template_paused", message, status=status)
    category = (state.category or "").upper()
    if category and category != MARKETING and _newer(state.category_at, since):
        message = (
            f"{label} was re-categorised {category} by Meta; the Marketing Messages API sends only "
            "MARKETING templates (Meta error 134100)"
        )
        return Trip("template_recategorised", message, final=True, status=category)
    return None


class TemplateGuard(BaseGuard):
    """Trips when the ledger's template events say the campaign's template is paused, disabled or no
    longer MARKETING.

    :param ledger: the ledger the webhook receiver writes to.
    :param template_name: the campaign's template.
    :param language: its language.
    :param waba_id: its account, if known (narrows the events read).
    :param since: ignore state reported before this time (the preflight read the template then).
    """

    def __init__(
        self,
        ledger: Ledger,
        template_name: str,
        language: str,
        *,
        waba_id: str | None = None,
        since: datetime | None = None,
    ) -> None:
        self.ledger = ledger
        self.template_name = template_name
        self.language = language
        self.waba_id = waba_id
        self.since = since

    def state(self) -> TemplateState | None:
        """The template's state from the stored events."""
        return self.ledger.template_state(
            name=self.template_name, language=self.language, waba_id=self.waba_id
        )

    def check(self) -> Trip | None:
        """Why the template may not be sent now, from its newest stored events."""
        return template_trip(self.state(), since=self.since)


__all__ = ["FINAL_STATUSES", "MARKETING", "WAIT_STATUSES", "TemplateGuard", "template_trip"]
