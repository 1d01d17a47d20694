"""Run one campaign (or one shard of it) with the engine in this process, so a test can kill it.

Usage: ``python -m tests.reliability.campaign_child '<json>'``. The JSON holds ``base_url``,
``access_token``, ``phone_number_id``, ``ledger_url``, ``table_prefix``, ``campaign_id``, ``start`` and
``count`` (recipients ``+49 151 <start>`` .. ``<start + count - 1>``), and optional ``settings`` (keyword
arguments of the fault suite's campaign settings, e.g. ``shard_index``), ``owner`` and ``try_number``
(the task instance the attempt belongs to). The result's counts are printed as one JSON line on
success. With ``report_in_flight``, every new high of the recipients claimed for the worker pool and not
yet recorded is printed at once as ``{"in_flight_max": n}``, so that a test that kills the process
knows the most it had in flight (all a kill can leave claimed).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any


def _log_to_file() -> None:
    """Append this process's log records to ``WAMM_TEST_LOG_FILE`` too, like the test session does."""
    path = os.environ.get("WAMM_TEST_LOG_FILE")
    if path:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.DEBUG)


def _report_in_flight() -> None:
    """Print each new high of the recipients this process holds claimed without an outcome: claimed for
    the worker pool (one hand-over's transaction) and not yet recorded in the ledger (or given back).
    All a kill can leave claimed."""
    from collections.abc import Sequence

    from airflow_provider_wamm.campaign.attempt import Attempt
    from airflow_provider_wamm.campaign.ledger import Ledger

    claim, record, release = Attempt.claim, Ledger.record_results, Ledger.release_claims
    lock = threading.Lock()
    held: set[str] = set()
    most = [0]

    def counted_claim(attempt: Attempt, recipients: Sequence[str]) -> set[str]:
        # Counted (and printed) before the transaction, so a kill right after it is covered.
        with lock:
            held.update(recipients)
            if len(held) > most[0]:
                most[0] = len(held)
                print(json.dumps({"in_flight_max": most[0]}), flush=True)
        claimed = claim(attempt, recipients)
        with lock:
            held.difference_update(set(recipients) - claimed)
        return claimed

    def counted_record(ledger: Ledger, campaign_id: str, outcomes: Any, **kwargs: Any) -> int:
        done = record(ledger, campaign_id, outcomes, **kwargs)
        with lock:
            held.difference_update(o.recipient for o in outcomes)
        return done

    def counted_release(ledger: Ledger, campaign_id: str, **kwargs: Any) -> int:
        released = release(ledger, campaign_id, **kwargs)
        with lock:
            held.difference_update(kwargs.get("recipients") or ())
        return released

    Attempt.claim = counted_claim  # type: ignore[method-assign]
    Ledger.record_results = counted_record  # type: ignore[method-assign]
    Ledger.release_claims = counted_release  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    """Run the campaign described by ``argv[0]``; 0 on success, 3 if it halted."""
    _log_to_file()
    from airflow_provider_wamm.campaign.ledger import Ledger
    from airflow_provider_wamm.campaign.result import CampaignHalted
    from airflow_provider_wamm.campaign.sender import run_campaign
    from airflow_provider_wamm.graph.client import GraphClient
    from tests.reliability.harness import audience, fast_settings

    spec: dict[str, Any] = json.loads(argv[0])
    if spec.get("report_in_flight"):
        _report_in_flight()
    crowd = audience(int(spec["count"]), start=int(spec.get("start", 0)), extras=False)
    ledger = Ledger.from_url(spec["ledger_url"], table_prefix=spec.get("table_prefix", "wamm_"))
    client = GraphClient(
        spec["access_token"],
        phone_number_id=spec["phone_number_id"],
        base_url=spec["base_url"],
        timeout=float(spec.get("timeout", 5.0)),
        max_retries=0,
    )
    try:
        result = run_campaign(
            crowd.rows,
            client=client,
            ledger=ledger,
            settings=fast_settings(spec["campaign_id"], **spec.get("settings", {})),
            owner=spec.get("owner"),
            try_number=spec.get("try_number"),
        )
    except CampaignHalted as halted:
        print(json.dumps(halted.result.to_dict()), flush=True)
        return 3
    finally:
        client.close()
        ledger.dispose()
    print(json.dumps(result.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
