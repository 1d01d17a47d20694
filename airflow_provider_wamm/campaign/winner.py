"""Winner to the rest: read an A/B/n test's outcome from the ledger and decide what the rest gets.

After the test slice was sent (an :class:`~airflow_provider_wamm.campaign.experiments.Experiment`
with ``test_share`` below 1) and had time to be read, :func:`winner_readout` counts each variant's
messages Meta took and those read (or clicked) from the ledger's ``sends`` and ``statuses``, and runs
:func:`~airflow_provider_wamm.campaign.stats.pick_winner` on them. :func:`decide` turns the readout
into the variant the rest is sent (or none), and :meth:`Experiment.with_winner` then assigns it.

On ``conversion``, :func:`conversion_readout` counts instead each variant's test recipients Meta took
and those who converted (rows of any SQL table of conversions) within the attribution window after
their send, with the same test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, Literal

import sqlalchemy as sa

from airflow_provider_wamm.campaign.attribution import Attribution, ledger_exposures
from airflow_provider_wamm.campaign.experiments import Experiment
from airflow_provider_wamm.campaign.ledger import ACCEPTED, DELIVERED_TO_META, Ledger
from airflow_provider_wamm.campaign.report_variants import HELD_BACK, variant_counts
from airflow_provider_wamm.campaign.stats import WinnerReadout, pick_winner
from airflow_provider_wamm.graph.errors import ConfigurationError

WinnerMetric = Literal["read", "click", "conversion"]
"""What a success of a test message is: read, clicked, or a conversion within the window (from SQL)."""
NoWinner = Literal["first", "leader", "none"]
"""What the rest gets when no variant wins: the first variant, the leader anyway, or nothing."""
WINNER_METRICS: tuple[str, ...] = ("read", "click", "conversion")
NO_WINNER_CHOICES: tuple[str, ...] = ("first", "leader", "none")
_STAGE = {"read": "read", "click": "clicked"}


def winner_readout(
    ledger: Ledger,
    campaign_id: str,
    metric: WinnerMetric = "read",
    *,
    alpha: float = 0.05,
    min_trials: int = 30,
) -> WinnerReadout:
    """The test's readout: per variant (the test slice only), successes among the messages Meta took.

    :raises ConfigurationError: an unknown metric, or fewer than two variants were sent.
    """
    if metric not in _STAGE:
        if metric == "conversion":
            raise ConfigurationError("the conversion metric reads conversions: use conversion_readout")
        raise ConfigurationError(f"winner metric must be one of {list(WINNER_METRICS)}, got {metric!r}")
    with ledger.read() as conn:
        counts = variant_counts(conn, ledger, [campaign_id])
    arms = {
        group: (c[_STAGE[metric]], c["sent"])
        for group, c in counts.items()
        if group not in HELD_BACK and not group.startswith("rest:")
    }
    if len(arms) < 2:
        raise ConfigurationError(
            f"campaign {campaign_id!r}: the test needs two variants with sends, found {sorted(arms)}"
        )
    return pick_winner(arms, metric, alpha, min_trials=min_trials)


def conversion_readout(
    ledger: Ledger,
    campaign_id: str,
    conversions: Iterable[Mapping[str, Any]],
    *,
    window: timedelta,
    alpha: float = 0.05,
    min_trials: int = 30,
    recipient_field: str = "recipient",
    time_field: str = "converted_at",
    value_field: str | None = None,
    default_region: str | None = None,
) -> WinnerReadout:
    """The test's readout on conversions: per variant (the test slice only), its recipients Meta took
    and those with a conversion row within ``window`` after their send (streamed, never held).

    :param conversions: rows with the recipient's number, the conversion time and optionally a value.
    :raises ConfigurationError: fewer than two variants were sent, or the rows lack a field.
    """
    attribution = Attribution(window, confidence=1 - alpha)
    test = (
        e
        for e in ledger_exposures(ledger, campaign_id, states=(ACCEPTED,))
        if e.group not in HELD_BACK and not e.group.startswith("rest:")
    )
    attribution.add_exposures(test)
    attribution.add_conversion_rows(
        conversions,
        recipient_field=recipient_field,
        time_field=time_field,
        value_field=value_field,
        default_region=default_region,
    )
    arms = {g.group: (g.converters, g.recipients) for g in attribution.report().groups}
    if len(arms) < 2:
        raise ConfigurationError(
            f"campaign {campaign_id!r}: the test needs two variants with sends, found {sorted(arms)}"
        )
    return pick_winner(arms, "conversion", alpha, min_trials=min_trials)


def shards_of_test_slice(ledger: Ledger, campaign_id: str) -> list[int]:
    """The shards whose test-slice messages the readout counted (those with a variant Meta took)."""
    s = ledger.sends.c
    query = (
        sa.select(s.shard_index)
        .where(
            s.campaign_id == campaign_id,
            s.state.in_(DELIVERED_TO_META),
            s.variant.is_not(None),
            s.variant.not_in(sorted(HELD_BACK)),
            s.variant.not_like("rest:%"),
        )
        .distinct()
    )
    with ledger.read() as conn:
        return sorted(int(i) for i in conn.execute(query).scalars())


def decide(readout: WinnerReadout, experiment: Experiment, on_no_winner: NoWinner = "first") -> str | None:
    """The variant the rest is sent: the winner, else as ``on_no_winner`` says (``None``: nothing)."""
    if readout.winner is not None:
        return readout.winner
    if on_no_winner == "leader":
        return readout.arms[0].name
    if on_no_winner == "first":
        return experiment.variants[0].name
    return None


def decision_dict(readout: WinnerReadout, sent_to_rest: str | None) -> dict[str, Any]:
    """The decision, the test and its numbers, JSON-safe (for XCom)."""
    return {"sent_to_rest": sent_to_rest, **readout.to_dict()}


__all__ = [
    "NO_WINNER_CHOICES",
    "WINNER_METRICS",
    "NoWinner",
    "WinnerMetric",
    "conversion_readout",
    "decide",
    "decision_dict",
    "shards_of_test_slice",
    "winner_readout",
]
