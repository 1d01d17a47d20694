"""The campaign report as SQL rows: one summary row per campaign and one row per error code and stage.

BI tools read the table the sensor writes; a re-run replaces a campaign's rows in one transaction.
The table name is validated as a plain identifier (optionally ``schema.table``) and every value is a
bound parameter, so neither can carry SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_provider_wamm.campaign.ledger import FAILED, as_utc, utcnow
from airflow_provider_wamm.campaign.ledger.schema import add_missing_columns, template_columns

if TYPE_CHECKING:
    from airflow_provider_wamm.campaign.report import CampaignReport

_TABLE_NAME = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]{0,62})\.)?([A-Za-z_][A-Za-z0-9_]{0,62})$")


def parse_table_name(name: str) -> tuple[str | None, str]:
    """``"table"`` or ``"schema.table"`` -> ``(schema, table)``, both plain SQL identifiers.

    :raises ValueError: for anything else (quotes, spaces, dashes...), so a table name can never carry SQL.
    """
    match = _TABLE_NAME.match(name.strip()) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            f"invalid report table name {name!r}: use letters, digits and '_' (optionally 'schema.table'), "
            "starting with a letter or '_', at most 63 characters each"
        )
    return match.group(1), match.group(2)


def report_table(name: str, metadata: sa.MetaData | None = None) -> sa.Table:
    """The report table's definition: one row per campaign (``row_key='summary'``) and per error code
    and stage (``row_key='error:<stage>:<code>'``), keyed by ``(campaign_id, row_key)``.

    ``cost`` is Meta's analytics ``amount_spent`` when analytics were fetched; ``meta_cost`` the sum of
    ``pricing.cost`` of the status webhooks (messages with a max price; ``costed`` of them) in
    ``meta_cost_currency``; ``ttl_s`` and ``expired`` the template's time-to-live and the messages it
    outlived undelivered."""
    schema, table = parse_table_name(name)
    return sa.Table(
        table,
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("campaign_id", sa.String(255), primary_key=True),
        sa.Column("row_key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16)),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_title", sa.String(255)),
        sa.Column("count", sa.Integer, nullable=False),
        *template_columns(),
        sa.Column("total", sa.Integer),
        sa.Column("accepted", sa.Integer),
        sa.Column("refused", sa.Integer),
        sa.Column("delivered", sa.Integer),
        sa.Column("read", sa.Integer),
        sa.Column("delivery_failed", sa.Integer),
        sa.Column("pending", sa.Integer),
        sa.Column("clicked", sa.Integer),
        sa.Column("marketing_lite", sa.Integer),
        sa.Column("marketing", sa.Integer),
        sa.Column("delivery_rate", sa.Float),
        sa.Column("read_rate", sa.Float),
        sa.Column("click_rate", sa.Float),
        sa.Column("median_deliver_s", sa.Float),
        sa.Column("p90_deliver_s", sa.Float),
        sa.Column("cost", sa.Float),
        sa.Column("settled", sa.Boolean),
        # Added later (nullable; an existing table gets them with ALTER TABLE ... ADD COLUMN).
        sa.Column("ttl_s", sa.Float),
        sa.Column("expired", sa.Integer),
        sa.Column("meta_cost", sa.Float),
        sa.Column("meta_cost_currency", sa.String(8)),
        sa.Column("costed", sa.Integer),
        sa.Column("free_entry_point", sa.Integer),
        sa.Column("timed_out", sa.Boolean),
        sa.Column("generated_at", sa.DateTime, nullable=False),
        schema=schema,
    )


def _summary_row(report: CampaignReport, generated: datetime) -> dict[str, Any]:
    """The ``summary`` row of one campaign's report."""
    cost = report.analytics.get("cost") if isinstance(report.analytics, Mapping) else None
    return {
        "campaign_id": report.campaign_id,
        "row_key": "summary",
        "kind": "summary",
        "stage": None,
        "error_code": None,
        "error_title": None,
        "count": report.total,
        "template_name": report.template_name,
        "language": report.language,
        "total": report.total,
        "accepted": report.accepted,
        "refused": report.sends.get(FAILED, 0),
        "delivered": report.delivered,
        "read": report.read,
        "delivery_failed": report.delivery_failed,
        "pending": report.delivery.get("pending", 0),
        "clicked": report.clicked,
        "marketing_lite": report.routing.get("marketing_lite", 0),
        "marketing": report.routing.get("marketing", 0),
        "delivery_rate": report.rates.get("delivery_rate"),
        "read_rate": report.rates.get("read_rate"),
        "click_rate": report.rates.get("click_rate"),
        "median_deliver_s": report.time_to_deliver_s.get("median"),
        "p90_deliver_s": report.time_to_deliver_s.get("p90"),
        "cost": float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
        "settled": report.settled,
        "timed_out": report.timed_out,
        "generated_at": generated,
        "ttl_s": report.ttl_s,
        "expired": report.expired,
        **_meta_cost(report),
        "costed": report.costed,
        "free_entry_point": report.pricing_types.get("free_entry_point", 0),
    }


def _meta_cost(report: CampaignReport) -> dict[str, Any]:
    """``meta_cost`` and its currency: Meta's attributed cost when it is in one currency (several: the
    cost is left out, the currencies listed)."""
    costs = report.attributed_cost
    if len(costs) == 1:
        ((currency, amount),) = costs.items()
        return {"meta_cost": float(amount), "meta_cost_currency": currency[:8]}
    return {"meta_cost": None, "meta_cost_currency": ",".join(sorted(costs))[:8] or None}


def report_rows(report: CampaignReport) -> list[dict[str, Any]]:
    """The report table rows of one campaign's report: a summary row, then one row per error."""
    generated = (as_utc(report.generated_at) or utcnow()).astimezone(UTC).replace(tzinfo=None)
    summary = _summary_row(report, generated)
    empty = {k: None for k in summary if k not in ("campaign_id", "row_key", "kind", "count", "generated_at")}
    rows = [summary]
    for error in report.errors:
        code = error.get("code")
        rows.append(
            {
                **empty,
                "campaign_id": report.campaign_id,
                "row_key": f"error:{error.get('stage')}:{code if code is not None else 'none'}"[:64],
                "kind": "error",
                "stage": error.get("stage"),
                "error_code": code,
                "error_title": (str(error.get("title") or ""))[:255] or None,
                "count": int(error.get("count", 0)),
                "template_name": report.template_name,
                "language": report.language,
                "generated_at": generated,
            }
        )
    return rows


def write_report_table(engine: Engine, table_name: str, reports: Iterable[CampaignReport]) -> int:
    """Replace each report's campaign rows in ``table_name`` (created if missing); returns rows written.

    One transaction: the campaign's old rows are deleted and the new ones inserted, so a re-run
    replaces its rows (an error code that no longer occurs disappears) and readers never see half a
    report. Values are always bound parameters; the table name is validated as an identifier.
    """
    table = report_table(table_name)
    items = list(reports)
    rows = [row for report in items for row in report_rows(report)]
    table.create(engine, checkfirst=True)
    add_missing_columns(engine, table.metadata)  # a table written by an earlier version
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.campaign_id.in_([r.campaign_id for r in items])))
        if rows:
            conn.execute(table.insert(), rows)
    return len(rows)


__all__ = ["parse_table_name", "report_rows", "report_table", "write_report_table"]
