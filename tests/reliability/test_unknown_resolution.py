"""The way ``docs/reliability.md`` says ``unknown`` sends are resolved works, with the documented SQL.

Lost answers and dropped connections make recipients ``unknown``; the sandbox's status webhooks, stored
by the receiver in the same ledger, resolve those Meta did take; the documented query (read from the
page itself, so the page cannot drift) then finds no status for the ones left.
"""

from __future__ import annotations

import pathlib
import re

import sqlalchemy as sa

from airflow_provider_wamm.campaign import ledger as L
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.sender import run_campaign
from airflow_provider_wamm.sandbox import Sandbox
from airflow_provider_wamm.webhooks import WebhookSettings, create_app
from tests.reliability.harness import REPO, audience, fast_settings, sandbox_client, serve_app

SECRET = "resolution-app-secret"


def documented_query() -> str:
    """The first ``sql`` block after the heading "Resolving `unknown`" of docs/reliability.md."""
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    section = text.split("### Resolving `unknown`", 1)[1]
    match = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert match, "the SQL block is missing from docs/reliability.md"
    return "\n".join(line.strip() for line in match.group(1).splitlines())


def test_status_webhooks_tell_which_unknown_recipients_meta_took(
    sandbox: Sandbox, file_ledger: Ledger, ledger_file: pathlib.Path
) -> None:
    receiver_ledger = Ledger.from_url(f"sqlite:///{ledger_file}")  # the receiver's own engine
    try:
        app = create_app(WebhookSettings(app_secret=SECRET, verify_token="v", ledger=receiver_ledger))
        with serve_app(app) as url:
            sandbox.configure(
                mps_cap=None,
                seed=21,
                webhook_url=url,
                app_secret=SECRET,
                fault_lost_response_rate=0.06,
                lost_response_mode="drop",
                fault_drop_rate=0.06,
            )
            crowd = audience(400, extras=False)
            with sandbox_client(sandbox, timeout=5.0) as client:
                result = run_campaign(
                    crowd.rows, client=client, ledger=file_ledger, settings=fast_settings("resolve")
                )
            assert sandbox.wait_webhooks_idle(30)
    finally:
        receiver_ledger.dispose()

    file_ledger.resolve_unknown(["resolve"])  # the sensor's pass, after the receiver's own
    rows_by = {r["recipient"]: r for r in file_ledger.iter_sends("resolve")}
    resolved = {r for r, row in rows_by.items() if (row["error_details"] or "").startswith("unknown until")}
    still = {r for r, row in rows_by.items() if row["state"] == L.UNKNOWN}
    recorded = {m.to for m in sandbox.messages}
    assert result.unknown == len(resolved | still) and resolved and still
    # Exactly the ones Meta took were resolved, with their own wamid; the dropped ones stay unknown.
    assert resolved == (resolved | still) & recorded and still == (resolved | still) - recorded
    wamids = {m.to: m.wamid for m in sandbox.messages}
    assert all(rows_by[r]["wamid"] == wamids[r] and rows_by[r]["state"] == L.ACCEPTED for r in resolved)

    with file_ledger.engine.connect() as conn:
        rows = conn.execute(sa.text(documented_query()), {"campaign_id": "resolve"}).all()
    assert rows == []  # the documented check for what is left finds no status of theirs
