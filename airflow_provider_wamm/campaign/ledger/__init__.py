"""The send ledger: every campaign send written down, so nothing is ever sent twice.

The Graph API has no idempotency key, so a task retry, a crash or a re-run would otherwise message
the same person again. Each recipient of a campaign is *claimed* in the ``sends`` table (one row per
``(campaign_id, recipient)``, guarded by the table's primary key) before its request leaves, and the
outcome is recorded in batches afterwards. A ``claimed`` row left behind by a crashed attempt becomes
``unknown``: the request may or may not have reached Meta, so it is not sent again unless asked.

Webhook statuses land in ``statuses`` (by wamid, applied monotonically), link clicks in ``clicks``,
opt-outs and per-user limits in ``suppressions`` (honoured by every later campaign), and each attempt
of a campaign in ``runs``.

SQLAlchemy Core only, portable to SQLite, PostgreSQL and MySQL/MariaDB. Values are always bound, never
formatted into SQL; the only identifiers that vary (table prefix, schema) are validated first. Batch
operations are one ``executemany`` round trip per batch.

The parts, each in its own module: :mod:`~airflow_provider_wamm.campaign.ledger.records` (states and
record types), :mod:`~airflow_provider_wamm.campaign.ledger.schema` (tables and SQL dialects),
:mod:`~airflow_provider_wamm.campaign.ledger.transactions`,
:mod:`~airflow_provider_wamm.campaign.ledger.claims`, :mod:`~airflow_provider_wamm.campaign.ledger.runs`,
:mod:`~airflow_provider_wamm.campaign.ledger.deliveries`,
:mod:`~airflow_provider_wamm.campaign.ledger.suppressions` and the signal tables
(:mod:`~airflow_provider_wamm.campaign.ledger.signal_tables`), composed by
:class:`~airflow_provider_wamm.campaign.ledger.facade.Ledger`. Every public name is importable from here.
The report's counts (``send_counts``, ``delivery_counts``, ``error_counts``) are in
:mod:`airflow_provider_wamm.campaign.report`.
"""

from __future__ import annotations

from airflow_provider_wamm.campaign.ledger.facade import Ledger
from airflow_provider_wamm.campaign.ledger.records import (
    ACCEPTED,
    CLAIMED,
    DELIVERED_TO_META,
    FAILED,
    FINAL_STATES,
    HELD,
    INVALID,
    PAUSED,
    PER_USER_LIMIT_WAIT,
    PER_USER_PERMANENT_WAIT,
    SEND_STATES,
    SETTLED_STATUSES,
    SKIPPED,
    STATUS_RANKS,
    SUPPRESS_MANUAL,
    SUPPRESS_PER_USER_LIMIT,
    SUPPRESS_PER_USER_PERMANENT,
    SUPPRESS_STOPPED_MARKETING,
    UNKNOWN,
    ClickEvent,
    DeliveryStatus,
    ExistingSend,
    PreferenceChange,
    PreferenceValue,
    RunState,
    SendOutcome,
    SendState,
    StatusUpdate,
    Suppression,
    SuppressionAction,
    SuppressionChange,
    SuppressionSource,
    as_utc,
    utcnow,
)
from airflow_provider_wamm.campaign.ledger.runs import Liveness
from airflow_provider_wamm.campaign.ledger.schema import DEFAULT_TABLE_PREFIX, default_ledger_path, upsert
from airflow_provider_wamm.campaign.ledger.signal_records import (
    AccountSignal,
    AccountSignalKind,
    SignalBatch,
    TemplateEvent,
    TemplateEventKind,
    TemplateState,
)

__all__ = [
    "ACCEPTED",
    "CLAIMED",
    "DEFAULT_TABLE_PREFIX",
    "DELIVERED_TO_META",
    "FAILED",
    "FINAL_STATES",
    "HELD",
    "INVALID",
    "PAUSED",
    "PER_USER_LIMIT_WAIT",
    "PER_USER_PERMANENT_WAIT",
    "SEND_STATES",
    "SETTLED_STATUSES",
    "SKIPPED",
    "STATUS_RANKS",
    "SUPPRESS_MANUAL",
    "SUPPRESS_PER_USER_LIMIT",
    "SUPPRESS_PER_USER_PERMANENT",
    "SUPPRESS_STOPPED_MARKETING",
    "UNKNOWN",
    "AccountSignal",
    "AccountSignalKind",
    "ClickEvent",
    "DeliveryStatus",
    "ExistingSend",
    "Ledger",
    "Liveness",
    "PreferenceChange",
    "PreferenceValue",
    "RunState",
    "SendOutcome",
    "SendState",
    "SignalBatch",
    "StatusUpdate",
    "Suppression",
    "SuppressionAction",
    "SuppressionChange",
    "SuppressionSource",
    "TemplateEvent",
    "TemplateEventKind",
    "TemplateState",
    "as_utc",
    "default_ledger_path",
    "upsert",
    "utcnow",
]
