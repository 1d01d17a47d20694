"""The experiment section of a campaign report: the funnel of each variant and the holdout, and lifts.

The ledger's ``variant`` column records each recipient's group (a variant's name, ``holdout``,
``global_control``, ``rest``). One grouped query over ``sends`` joined to ``statuses`` counts, per
group, the recipients, the messages Meta took, delivered, read and clicked; each variant's read and
click rates get a Wilson interval, and their lift against the baseline variant (the first by name)
a Newcombe interval and a two-proportion z-test. Held-back groups have recipients and nothing else:
their outcome is measured with conversions (:mod:`~airflow_provider_wamm.campaign.attribution`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_provider_wamm.campaign.experiments import AssignmentKind
from airflow_provider_wamm.campaign.ledger import DELIVERED_TO_META, Ledger
from airflow_provider_wamm.campaign.report_queries import sends_with_statuses
from airflow_provider_wamm.campaign.stats import newcombe_interval, two_proportion_z_test, wilson_interval

#: Groups that are held back (no funnel of their own).
HELD_BACK = frozenset(str(k) for k in AssignmentKind if k is not AssignmentKind.TREATMENT)
#: The funnel metrics compared between variants, as (name, numerator stage).
METRICS = (("read_rate", "read"), ("click_rate", "clicked"))


def variant_counts(conn: Connection, ledger: Ledger, ids: list[str]) -> dict[str, dict[str, int]]:
    """Per group: ``recipients``, ``sent`` (Meta took it), ``delivered``, ``read``, ``clicked``."""
    s, t = ledger.sends.c, ledger.statuses.c
    taken = s.state.in_(DELIVERED_TO_META)
    rows = conn.execute(
        sa.select(
            s.variant,
            sa.func.count(),
            sa.func.sum(sa.case((taken, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(taken, t.status.in_(("delivered", "read"))), 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(taken, t.status == "read"), 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(taken, t.clicked_at.is_not(None)), 1), else_=0)),
        )
        .select_from(sends_with_statuses(ledger))
        .where(s.campaign_id.in_(ids), s.variant.is_not(None))
        .group_by(s.variant)
    )
    return {
        str(group): {
            "recipients": int(n),
            "sent": int(sent or 0),
            "delivered": int(delivered or 0),
            "read": int(read or 0),
            "clicked": int(clicked or 0),
        }
        for group, n, sent, delivered, read, clicked in rows
    }


def variant_section(counts: dict[str, dict[str, int]], *, confidence: float = 0.95) -> list[dict[str, Any]]:
    """The report's ``variants``: one entry per group, variants first (by name), then held-back ones.

    Each variant has its counts, ``read_rate`` and ``click_rate`` (of the messages Meta took) with
    their intervals, and against the baseline (the first variant) ``read_lift``/``click_lift`` with
    an interval and a p-value. A held-back group has its recipients only.
    """
    variants = sorted(g for g in counts if g not in HELD_BACK)
    held = sorted(g for g in counts if g in HELD_BACK)
    baseline = counts[variants[0]] if variants else None
    section: list[dict[str, Any]] = []
    for group in variants:
        c = counts[group]
        entry: dict[str, Any] = {"group": group, "held_back": False, **c, "baseline": group == variants[0]}
        for metric, stage in METRICS:
            entry[metric] = c[stage] / c["sent"] if c["sent"] else None
            entry[f"{metric}_interval"] = wilson_interval(c[stage], c["sent"], confidence).to_list()
            if baseline is None or group == variants[0]:
                continue
            lift = metric.replace("_rate", "_lift")
            if c["sent"] and baseline["sent"]:
                ci = newcombe_interval(c[stage], c["sent"], baseline[stage], baseline["sent"], confidence)
                test = two_proportion_z_test(c[stage], c["sent"], baseline[stage], baseline["sent"])
                entry[lift] = c[stage] / c["sent"] - baseline[stage] / baseline["sent"]
                entry[f"{lift}_interval"] = ci.to_list()
                entry[f"{lift}_p_value"] = test.p_value
        section.append(entry)
    for group in held:
        section.append({"group": group, "held_back": True, "recipients": counts[group]["recipients"]})
    return section


__all__ = ["HELD_BACK", "METRICS", "variant_counts", "variant_section"]
