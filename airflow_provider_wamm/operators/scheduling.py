"""The operator's send windows: message each recipient in their own local hours, deferring in between.

A mix-in of :class:`~airflow_provider_wamm.operators.marketing.MarketingMessageOperator`. With
``send_window`` a run sends to the recipients whose window is open now (see
:mod:`airflow_provider_wamm.campaign.windows`), records those whose window will not open before the
deadline as ``skipped`` with the reason, and then defers the task (in the triggerer, holding no worker
slot) until the next held recipient's window opens; the task then runs the campaign again, and the
ledger skips everyone already messaged. The counts carry ``send_window``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger, SendOutcome
from airflow_provider_wamm.campaign.narrow import in_batches, recipients_of
from airflow_provider_wamm.campaign.settings import CampaignSettings
from airflow_provider_wamm.campaign.sharding import in_shard
from airflow_provider_wamm.campaign.windows import OPEN, SendWindow, Skip, WindowPlan, ZoneChoice
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.operators.arguments import is_templated
from airflow_provider_wamm.operators.extensions import CampaignSteps
from airflow_provider_wamm.triggers.window import SendWindowTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: The clock of the send windows (tests replace it to control time).
now = L.utcnow
#: The operator's templated send-window arguments.
WINDOW_TEMPLATE_FIELDS: tuple[str, ...] = ("not_after",)
#: The ``attempt_id`` of the ``skipped`` rows a send window records.
WINDOW_ATTEMPT = "send-window"
_ZONE_CHOICES = ("first", "middle", "last")


def _moment(value: datetime | str | None, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(f"{name} must be a time (ISO 8601), got {value!r}") from None
    if moment.tzinfo is None:
        raise ConfigurationError(f"{name} must carry its time zone, got {value!r}")
    return moment


class SendWindowOptions(CampaignSteps):
    """Send-window arguments of the marketing operator.

    :param send_window: ``("09:00", "20:00")``: message each recipient only between these local times
        (start included, end excluded). Recipients outside their window are held, not dropped: the task
        sends everyone whose window is open, defers until the next window opens and resumes, sending
        nobody twice.
    :param send_days: Days of the week the window is open (``["mon", "tue", "wed", "thu", "fri"]``);
        every day by default.
    :param timezone_field: The row field holding the recipient's IANA time zone (``"Europe/Berlin"``);
        rows without a usable one get the zone of their number.
    :param zone_choice: For a number spanning several zones (Australia, Russia...): ``"first"`` (the
        zone where the window opens first, the east), ``"middle"`` or ``"last"`` (the west).
    :param default_timezone: The zone of recipients whose zone is unknown.
    :param send_at_field: The row field holding the earliest time (ISO 8601, UTC when naive) to message
        the recipient; their window applies from then on.
    :param not_after: Nobody is messaged from this time on (aware ISO 8601 or datetime): recipients
        whose window opens later are recorded ``skipped`` with the reason. Templated.
    :param message_ttl: The template's time to live: a recipient whose window opens more than this after
        the campaign's first run is skipped with the reason.
    """

    def __init__(
        self,
        *,
        send_window: Sequence[str | time] | None = None,
        send_days: Sequence[str | int] | None = None,
        timezone_field: str | None = None,
        zone_choice: ZoneChoice = "middle",
        default_timezone: str = "UTC",
        send_at_field: str | None = None,
        not_after: datetime | str | None = None,
        message_ttl: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            if send_window is not None:
                SendWindow.parse((send_window[0], send_window[1]), send_days)
            if not is_templated(not_after):
                _moment(not_after, "not_after")
        except (ConfigurationError, IndexError, TypeError) as exc:
            raise ValueError(f"send window: {exc}") from None
        if zone_choice not in _ZONE_CHOICES:
            raise ValueError(f"'zone_choice' must be one of {_ZONE_CHOICES}, got {zone_choice!r}.")
        self.send_window = tuple(send_window) if send_window is not None else None
        self.send_days = list(send_days) if send_days is not None else None
        self.timezone_field = timezone_field
        self.zone_choice: ZoneChoice = zone_choice
        self.default_timezone = default_timezone
        self.send_at_field = send_at_field
        self.not_after = not_after
        self.message_ttl = message_ttl
        self._window_plan: WindowPlan | None = None
        self._window_started: datetime | None = None
        self._window_rounds = 0

    def narrow_recipients(
        self, rows: Iterable[Any], settings: CampaignSettings, ledger: Ledger
    ) -> Iterable[Any]:
        """Only the recipients whose window is open now; the others are held or skipped."""
        rows = super().narrow_recipients(rows, settings, ledger)
        if self.send_window is None:
            return rows
        at = now()
        self._window_started = self._window_started or at
        plan = self._window_plan = WindowPlan(
            SendWindow.parse((self.send_window[0], self.send_window[1]), self.send_days),
            at,
            zone_field=self.timezone_field,
            zone_choice=self.zone_choice,
            default_zone=self.default_timezone,
            send_at_field=self.send_at_field,
            deadline=self._deadline(),
        )
        return self._window_rows(rows, plan, settings, ledger)

    def _deadline(self) -> datetime | None:
        ends = [_moment(self.not_after, "not_after")]
        if self.message_ttl is not None and self._window_started is not None:
            ends.append(self._window_started + self.message_ttl)
        found = [e for e in ends if e is not None]
        return min(found) if found else None

    def _window_rows(
        self, rows: Iterable[Any], plan: WindowPlan, settings: CampaignSettings, ledger: Ledger
    ) -> Iterator[Mapping[str, Any]]:
        """The open recipients' rows; skipped ones recorded with the reason (not in a dry run)."""
        pending: list[SendOutcome] = []

        def flush() -> None:
            if pending and not settings.dry_run:
                ledger.record_unsent(
                    settings.campaign_id,
                    pending,
                    attempt_id=WINDOW_ATTEMPT,
                    shard_index=settings.shard_index,
                    template_name=settings.template_name,
                    language=settings.language,
                )
            pending.clear()

        for batch in in_batches(
            recipients_of(
                rows, recipient_field=settings.recipient_field, default_region=settings.default_region
            ),
            settings.batch_size,
        ):
            numbers = [
                d
                for d, _ in batch
                if d is not None and in_shard(d, settings.shard_index, settings.shard_count)
            ]
            mine = set(numbers)
            known = ledger.existing_sends(settings.campaign_id, numbers)
            done = {
                r
                for r, row in known.items()
                if not row.reclaimable(plan.now, resend_unknown=settings.resend_unknown)
            }
            for digits, fields in batch:
                if digits is None:
                    yield fields  # recorded invalid by the run
                elif digits in mine and digits not in done:
                    decision = plan.decide(digits, fields)
                    if decision == OPEN:
                        yield fields
                    elif isinstance(decision, Skip):
                        pending.append(SendOutcome(digits, L.SKIPPED, error_details=decision.reason[:500]))
            flush()

    def extend_summary(self, summary: dict[str, Any]) -> None:
        """``send_window`` in the counts; defer until the next window opens while anyone is held."""
        super().extend_summary(summary)
        plan = self._window_plan
        if plan is None:
            return
        self._window_rounds += 1
        summary["send_window"] = plan.to_dict() | {"rounds": self._window_rounds}
        self.log.info("campaign %s: send window: %s", summary.get("campaign_id"), summary["send_window"])
        if plan.held and plan.next_open is not None and not summary.get("dry_run"):
            started = self._window_started.isoformat() if self._window_started else None
            self.defer(
                trigger=SendWindowTrigger(campaign_id=str(summary.get("campaign_id")), moment=plan.next_open),
                method_name="resume_send_window",
                kwargs={"window_started": started, "window_rounds": self._window_rounds},
            )

    def resume_send_window(
        self,
        context: Context,
        event: Mapping[str, Any] | None = None,
        window_started: str | None = None,
        window_rounds: int = 0,
    ) -> Any:
        """Run the campaign again once a window opened (the ledger skips everyone already messaged)."""
        self._window_started = datetime.fromisoformat(window_started) if window_started else None
        self._window_rounds = int(window_rounds)
        return self.execute(context)


__all__ = ["WINDOW_ATTEMPT", "WINDOW_TEMPLATE_FIELDS", "SendWindowOptions"]
