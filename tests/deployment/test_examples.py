"""Every example DAG, run by a real Airflow the way users run it.

The DAGs are unpaused and triggered through the REST API with no logical date (what ``airflow dags
trigger``, the UI and scripts do in Airflow 3); a scheduled DAG also gets the run the scheduler creates
when it is unpaused. Each run must succeed; the sandbox's record must hold every valid recipient exactly
once per campaign; the sensors' reports must match it; and no task log may hold a phone number.
"""

from __future__ import annotations

import collections
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.deployment.airflow_deployment import AirflowDeployment, de_digits, de_number
from tests.deployment.rest import AirflowApi
from tests.deployment.services import SandboxProcess, wait_until

#: Numbers of ``recipients_from_task.py`` (its task returns them).
TASK_NUMBERS = {"4915123456701": "+49 151 23456701", "4915123456702": "+49 151 23456702"}
TASK_NUMBERS["34612345678"] = "+34 612 345 678"


def customers(
    ids: range, *, signup_date: str = "2026-01-01", extras: bool = True
) -> tuple[list[Any], set[str]]:
    """CRM rows for German customers ``ids`` (plus one in Spain, a bad number and one listed twice);
    returns the rows and the digits of the valid German numbers."""
    rows: list[Any] = [
        (de_number(i), f"Ana{i}", str(10 + 5 * (i % 3)), f"s-{i}", "DE", signup_date) for i in ids
    ]
    if extras:
        rows += [
            (f"+34 612 000 {ids.start % 1000:03d}", "Carla", "10", "es", "ES", signup_date),
            ("12345", "Bad", "10", "bad", "DE", signup_date),
            ("+49 151 " + de_digits(ids.start)[5:], "Again", "10", "again", "DE", signup_date),
        ]
    return rows, {de_digits(i) for i in ids}


def sends_per_recipient(sandbox: SandboxProcess) -> collections.Counter[str]:
    return collections.Counter(m["to"] for m in sandbox.messages())


def run_and_wait(api: AirflowApi, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trigger ``dag_id`` through the REST API (no logical date) and wait for the run to end."""
    run = api.trigger(dag_id, conf)
    assert run["logical_date"] is None and run["run_type"] == "manual"
    return api.wait_run(dag_id, run["dag_run_id"])


def scheduled_run(api: AirflowApi, dag_id: str) -> dict[str, Any]:
    """The run the scheduler created when the DAG was unpaused, once it is over."""
    run = wait_until(
        lambda: next((r for r in api.runs(dag_id) if r["run_type"] == "scheduled"), None),
        120,
        f"the scheduled run of {dag_id}",
        interval=1,
    )
    return api.wait_run(dag_id, run["dag_run_id"])


def run_day(run: dict[str, Any]) -> str:
    return datetime.fromisoformat(run["run_after"]).strftime("%Y%m%d")


# -- recipients_from_task.py -----------------------------------------------------------------------


def test_recipients_from_task(deployment: AirflowDeployment) -> None:
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    sandbox.reset()
    api.set_paused("wamm_recipients_from_task", False)
    run = run_and_wait(api, "wamm_recipients_from_task")
    states = api.task_states("wamm_recipients_from_task", run["dag_run_id"])
    assert run["state"] == "success", states
    assert sends_per_recipient(sandbox) == dict.fromkeys(TASK_NUMBERS, 1)
    send = api.xcom("wamm_recipients_from_task", run["dag_run_id"], "send")
    assert send["campaign_id"] == f"wamm_recipients_from_task.send.{run['dag_run_id']}"
    assert (send["total"], send["accepted"], send["failed"], send["unknown"]) == (3, 3, 0, 0)

    # The same with the CLI, as the README says: another run, so another campaign.
    sandbox.reset()
    deployment.airflow("dags", "trigger", "wamm_recipients_from_task")
    cli_run = wait_until(
        lambda: next(
            (r for r in api.runs("wamm_recipients_from_task") if r["dag_run_id"] != run["dag_run_id"]), None
        ),
        60,
        "the run triggered with the CLI",
    )
    assert cli_run["logical_date"] is None
    cli_run = api.wait_run("wamm_recipients_from_task", cli_run["dag_run_id"])
    assert cli_run["state"] == "success"
    again = api.xcom("wamm_recipients_from_task", cli_run["dag_run_id"], "send")
    assert again["campaign_id"] != send["campaign_id"]
    # Whoever stopped marketing messages after the first campaign (a 131050 webhook) is suppressed.
    assert again["accepted"] + again["suppressed"] == 3 and again["accepted"] >= 1
    sent = sends_per_recipient(sandbox)
    assert set(sent) <= set(TASK_NUMBERS) and sum(sent.values()) == len(sent) == again["accepted"]


# -- campaign_from_sql.py and report_on_asset.py ---------------------------------------------------


def check_campaign_run(
    deployment: AirflowDeployment, run: dict[str, Any], expected: set[str]
) -> dict[str, Any]:
    """The run of wamm_campaign_from_sql succeeded, sent its day's campaign and reported it."""
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    dag_id, run_id = "wamm_campaign_from_sql", run["dag_run_id"]
    assert run["state"] == "success", api.task_states(dag_id, run_id)
    send = api.xcom(dag_id, run_id, "send")
    assert send["campaign_id"] == f"spring_sale_{run_day(run)}"
    assert send["failed"] == 0 and send["unknown"] == 0
    # People who stopped marketing messages in an earlier campaign (131050 webhooks) are suppressed.
    done = send["accepted"] + send.get("already_done", 0)
    assert done + send["suppressed"] == len(expected)
    ledger = deployment.ledger_rows(send["campaign_id"])
    accepted = {r for r, state in ledger.items() if state == "accepted"}
    assert accepted <= expected and len(accepted) == done
    report = api.xcom(dag_id, run_id, "report")
    assert report["campaign_ids"] == [send["campaign_id"]]
    assert report["settled"] is True and report["accepted"] == done
    assert report["sends"]["invalid"] == 1
    if send["accepted"]:  # this run sent the messages: the sandbox's record is this campaign's
        assert sends_per_recipient(sandbox) == dict.fromkeys(accepted, 1)
        outcomes = collections.Counter(m["outcome"] for m in sandbox.messages())
        assert report["delivered"] == outcomes["delivered"] + outcomes["read"]
    page = deployment.home / "reports" / f"{send['campaign_id']}.html"
    assert send["campaign_id"] in page.read_text(encoding="utf-8")
    return send


def test_campaign_from_sql_scheduled_and_triggered(deployment: AirflowDeployment) -> None:
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    rows, expected = customers(range(0, 60))
    deployment.seed_customers(rows)
    sandbox.reset()
    api.set_paused("wamm_report_on_asset", False)
    # Unpausing makes the scheduler create the run of the latest Sunday: it is sent, not skipped.
    api.set_paused("wamm_campaign_from_sql", False)
    scheduled = scheduled_run(api, "wamm_campaign_from_sql")
    assert datetime.now(UTC) - datetime.fromisoformat(scheduled["logical_date"]) < timedelta(days=7)
    first = check_campaign_run(deployment, scheduled, expected)
    assert first["accepted"] == len(expected) and first["suppressed"] == 0

    # The asset event of the first send started a report; it must see every webhook of that campaign
    # before the sandbox is reset (a reset drops the statuses still to be sent).
    wait_until(lambda: _asset_reports(api, {first["campaign_id"]}), 180, "the first campaign's report", 2)

    # Triggered by hand (no logical date): today's campaign; a new one unless today is that Sunday.
    sandbox.reset()
    manual = run_and_wait(api, "wamm_campaign_from_sql")
    second = check_campaign_run(deployment, manual, expected)
    if second["campaign_id"] == first["campaign_id"]:
        assert second["accepted"] == 0 and sandbox.messages() == []

    # Each send emitted the campaign's asset event; report_on_asset ran on it and reported the campaign.
    campaign_ids = {first["campaign_id"], second["campaign_id"]}
    reported = wait_until(lambda: _asset_reports(api, campaign_ids), 180, "the asset-triggered reports", 2)
    assert set(reported) >= campaign_ids

    # Triggered by hand with a campaign id as config.
    run = run_and_wait(api, "wamm_report_on_asset", {"campaign_id": first["campaign_id"]})
    assert run["state"] == "success"
    report = api.xcom("wamm_report_on_asset", run["dag_run_id"], "report")
    assert report["campaign_ids"] == [first["campaign_id"]] and report["accepted"] == first["accepted"]


def _asset_reports(api: AirflowApi, wanted: set[str]) -> list[str] | None:
    """Campaign ids reported by the finished asset-triggered runs, once they cover ``wanted``."""
    ids: list[str] = []
    for run in api.runs("wamm_report_on_asset"):
        if run["run_type"] != "asset_triggered":
            continue
        if run["state"] == "failed":
            raise AssertionError(
                f"{run['dag_run_id']}: {api.task_states('wamm_report_on_asset', run['dag_run_id'])}"
            )
        if run["state"] == "success":
            ids += api.xcom("wamm_report_on_asset", run["dag_run_id"], "report")["campaign_ids"]
    return ids if wanted <= set(ids) else None


# -- sharded_campaign.py ---------------------------------------------------------------------------


def test_sharded_campaign(deployment: AirflowDeployment) -> None:
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    rows, expected = customers(range(1000, 1120))
    deployment.seed_customers(rows)
    sandbox.reset()
    api.set_paused("wamm_sharded_campaign", False)
    run = run_and_wait(api, "wamm_sharded_campaign")
    run_id = run["dag_run_id"]
    assert run["state"] == "success", api.task_states("wamm_sharded_campaign", run_id)
    spain = {m["to"] for m in sandbox.messages() if m["to"].startswith("34")}
    assert sends_per_recipient(sandbox) == dict.fromkeys(expected | spain, 1) and len(spain) == 1
    shards = [api.xcom("wamm_sharded_campaign", run_id, "send", map_index=i) for i in range(4)]
    assert {s["campaign_id"] for s in shards} == {f"wamm_sharded_campaign.send.{run_id}"}
    assert sum(s["accepted"] for s in shards) == len(expected) + 1 and all(s["accepted"] for s in shards)
    report = api.xcom("wamm_sharded_campaign", run_id, "report")
    assert report["accepted"] == len(expected) + 1 and report["settled"] is True


# -- safe_backfill.py ------------------------------------------------------------------------------


def test_safe_backfill_scheduled_then_triggered(deployment: AirflowDeployment) -> None:
    api, sandbox = deployment.require_api(), deployment.require_sandbox()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    rows, expected = customers(range(2000, 2030), signup_date=str(yesterday), extras=False)
    deployment.seed_customers(rows)
    sandbox.reset()
    # Unpausing creates today's midnight run: it welcomes yesterday's sign-ups.
    api.set_paused("wamm_safe_backfill", False)
    scheduled = scheduled_run(api, "wamm_safe_backfill")
    assert scheduled["state"] == "success"
    first = api.xcom("wamm_safe_backfill", scheduled["dag_run_id"], "send")
    assert first["accepted"] == len(expected)
    assert sends_per_recipient(sandbox) == dict.fromkeys(expected, 1)

    # A manual run the same day is its own campaign: the 24 h frequency cap keeps everyone from a second
    # message, and max_lateness does not skip it.
    manual = run_and_wait(api, "wamm_safe_backfill")
    assert manual["state"] == "success", api.task_states("wamm_safe_backfill", manual["dag_run_id"])
    second = api.xcom("wamm_safe_backfill", manual["dag_run_id"], "send")
    assert second["campaign_id"] != first["campaign_id"]
    # Who stopped marketing messages after the first one (a 131050 webhook) is suppressed instead.
    capped = second["frequency_capped"] + second["suppressed"]
    assert (second["total"], second["accepted"], capped) == (len(expected), 0, len(expected))
    assert sends_per_recipient(sandbox) == dict.fromkeys(expected, 1)


# -- every example ---------------------------------------------------------------------------------


def phone_forms(written: str) -> set[str]:
    """How a number may show up in a log: as written, compact, as E.164 digits with and without '+'."""
    compact = "".join(ch for ch in written if ch.isdigit() or ch == "+")
    digits = compact.lstrip("+")
    if len(digits) < 7:  # not a phone number ("12345")
        return set()
    e164 = "49" + digits[1:] if digits.startswith("0") else digits
    return {written, compact, digits, e164, "+" + e164}


def test_no_phone_number_in_any_task_log(deployment: AirflowDeployment) -> None:
    """Runs last in this module: every task log of the deployment so far, every number any test used
    (the crash and Celery modules run before this one)."""
    logs = list(deployment.all_task_logs())
    assert logs, "no task log found"
    needles = set().union(*(phone_forms(p) for p in {*deployment.seeded_phones, *TASK_NUMBERS.values()}))
    assert len(needles) > 100
    for path, text in logs:
        compact = text.replace(" ", "")
        found = sorted(n for n in needles if n in text or n.replace(" ", "") in compact)
        assert not found, f"{path.relative_to(deployment.home)} holds {len(found)} phone numbers"
