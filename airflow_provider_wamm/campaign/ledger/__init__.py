"""The send ledger: every campaign send written down, so nothing is ever sent twice.

The Graph API has no idempotency key, so a task retry, a crash or a re-run would otherwise message
the same person again. Each recipient of a campaign is *claimed* in the ``sends`` table (one row per
``(campaign_id, recipient)``, guarded by the table's primary key) before its request leaves, and the
outcome is recorded in batches afterwards. A ``claimed`` row left behind by a crashed attempt becomes
``unknown``: the request may or may not have reached Meta, so it is not sent again unless asked.

Webhook statuses land in ``statuses`` (by wamid, applied monotonically), link clicks in ``clicks``,
opt-outs and per-user limits in ``suppressions`` (honoured by every later campaign), and each attempt
of a campaign in ``runs``; the running senders of each phone number, which share its cap, in ``senders``.

SQLAlchemy Core only, portable to SQLite, PostgreSQL and MySQL/MariaDB. Values are always bound, never
formatted into SQL; the only identifiers that vary (table prefix, schema) are validated first. Batch
operations are one ``executemany`` round trip per batch.

The parts, each in its own module: :mod:`~airflow_provider_wamm.campaign.ledger.records` (states and
record types), :mod:`~airflow_provider_wamm.campaign.ledger.schema` (tables and SQL dialects),
:mod:`~airflow_provider_wamm.campaign.ledger.rows` (records to rows and back),
:mod:`~airflow_provider_wamm.campaign.ledger.transactions` (and
:mod:`~airflow_provider_wamm.campaign.ledger.prepared`, the statements of the busiest writes),
:mod:`~airflow_provider_wamm.campaign.ledger.claims`, :mod:`~airflow_provider_wamm.campaign.ledger.runs`,
:mod:`~airflow_provider_wamm.campaign.ledger.senders`,
:mod:`~airflow_provider_wamm.campaign.ledger.deliveries`,
:mod:`~airflow_provider_wamm.campaign.ledger.suppressions`,
:mod:`~airflow_provider_wamm.campaign.ledger.identities` (the keys of one person) and the signal tables
(:mod:`~airflow_provider_wamm.campaign.ledger.signal_tables`), composed by
:class:`~airflow_provider_wamm.campaign.ledger.facade.Ledger`. Every public name is importable from here.
The report's counts (``send_counts``, ``delivery_counts``, ``error_counts``) are in
:mod:`airflow_provider_wamm.campaign.report`.
"""

from __future__ import annotations

from airflow_provider_wamm.campaign.ledger import records as _records
from airflow_provider_wamm.campaign.ledger import signal_records as _signal_records
from airflow_provider_wamm.campaign.ledger.facade import Ledger
from airflow_provider_wamm.campaign.ledger.identities import IdentityLink, IdentityMap, IdentitySource
from airflow_provider_wamm.campaign.ledger.records import *  # noqa: F403 (exactly the records' __all__)
from airflow_provider_wamm.campaign.ledger.runs import Liveness
from airflow_provider_wamm.campaign.ledger.schema import DEFAULT_TABLE_PREFIX, default_ledger_path, upsert
from airflow_provider_wamm.campaign.ledger.senders import SenderRegistry, SenderRow
from airflow_provider_wamm.campaign.ledger.signal_records import *  # noqa: F403 (exactly their __all__)

__all__ = [
    "DEFAULT_TABLE_PREFIX",
    "IdentityLink",
    "IdentityMap",
    "IdentitySource",
    "Ledger",
    "Liveness",
    "SenderRegistry",
    "SenderRow",
    "default_ledger_path",
    "upsert",
]
# The states, record types and signal records are exported whole: their modules' __all__ is the list.
__all__ += _records.__all__
__all__ += _signal_records.__all__
