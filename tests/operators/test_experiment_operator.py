"""MarketingMessageOperator with holdout, variants and a global control group, against the sandbox."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_wamm.campaign.experiments import Experiment
from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.sandbox import Sandbox, SandboxTemplate, default_templates
from tests.operators.conftest import (
    CRM_CONN_ID,
    LEDGER_CONN_ID,
    make_context,
    rows,
    seed_crm,
)
from tests.operators.conftest import send_operator as operator

VARIANTS = [
    {"name": "A", "weight": 1},
    {"name": "B", "weight": 1, "template_name": "spring_sale_v2", "body_parameters": ["{name}", "30%"]},
]


def add_v2(sandbox: Sandbox) -> None:
    spring = default_templates()["spring_sale"]
    v2 = SandboxTemplate.from_dict({**spring.to_meta(), "name": "spring_sale_v2", "id": "v2"})
    sandbox.configure(templates={**default_templates(), "spring_sale_v2": v2})


def test_holdout_variants_and_global_control_reach_the_ledger_and_xcom(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    add_v2(sandbox)
    op = operator(
        recipients=rows(300),
        campaign_id="ab-op",
        holdout=0.2,
        variants=VARIANTS,
        global_control={"name": "brand", "share": 0.1},
        experiment_key="spring-ab",
    )
    result = op.execute(make_context())
    experiment = Experiment.from_dict(
        {
            "key": "spring-ab",
            "holdout": 0.2,
            "variants": VARIANTS,
            "global_control": {"name": "brand", "share": 0.1},
        }
    )
    expected: dict[str, int] = {}
    for i in range(300):
        group = experiment.assign(f"49151{i:08d}").group
        expected[group] = expected.get(group, 0) + 1
    assert result["groups"] == dict(sorted(expected.items()))
    assert result["holdout"] == expected["holdout"] and result["global_control"] == expected["global_control"]
    assert result["accepted"] == expected["A"] + expected["B"] == len(sandbox.messages)
    for m in sandbox.messages:
        variant = experiment.assign(m.to).variant
        assert m.template == ("spring_sale_v2" if variant == "B" else "spring_sale")
        discount = m.payload["template"]["components"][0]["parameters"][1]["text"]
        assert discount == ("30%" if variant == "B" else "20%")
    reasons = {
        r["error_details"].split(":")[0] for r in ledger.iter_sends("ab-op") if r["state"] == "skipped"
    }
    assert reasons == {"holdout", "global_control"}


def test_experiment_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="holdout"):
        operator(recipients=rows(1), holdout=1.5)
    with pytest.raises(ValueError, match="cannot change"):
        operator(recipients=rows(1), variants=[{"name": "A", "colour": "red"}])


def test_preflight_checks_every_variant_template(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(recipients=rows(5), variants=VARIANTS, preflight=True)  # spring_sale_v2 is unknown
    with pytest.raises(AirflowException, match="spring_sale_v2"):
        op.execute(make_context())
    assert sandbox.messages == []


def test_winner_to_the_rest_defers_picks_the_favoured_variant_and_sends_it_to_the_rest(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_wamm.campaign.ledger import StatusUpdate, utcnow

    add_v2(sandbox)
    sandbox.configure(
        pair_limit=False,
        outcomes={"read": 0.2, "delivered": 0.8},
        template_outcomes={"spring_sale_v2": {"read": 0.6, "delivered": 0.4}},
    )
    op = operator(
        recipients=rows(2000),
        campaign_id="ab-rest",
        holdout=0.1,
        variants=VARIANTS,
        test_share=0.2,
        winner_wait=timedelta(minutes=30),
    )
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.method_name == "execute_winner"
    test = context["ti"].xcoms["test_result"]
    assert test["rest"] > 1000 and test["accepted"] == len(sandbox.messages)
    # The webhook receiver's part: the sandbox's outcomes reach the ledger.
    ledger.record_statuses(
        [
            StatusUpdate(wamid=m.wamid, status=m.outcome, timestamp=utcnow(), recipient_id=m.to)
            for m in sandbox.messages
        ]
    )
    result = op.execute_winner(context, None, **deferred.value.kwargs)
    decision = context["ti"].xcoms["winner"]
    assert decision["sent_to_rest"] == "B" and decision["decision"] == "winner"
    assert result["winner"]["sent_to_rest"] == "B" and result["accepted"] == test["rest"]
    assert set(sandbox.sends_per_recipient().values()) == {1}
    rest = [m for m in sandbox.messages[test["accepted"] :]]
    assert rest and {m.template for m in rest} == {"spring_sale_v2"}


def test_test_share_needs_variants() -> None:
    with pytest.raises(ValueError, match="two variants"):
        operator(recipients=rows(1), test_share=0.2)
    with pytest.raises(ValueError, match="winner_metric"):
        operator(recipients=rows(1), variants=VARIANTS, test_share=0.2, winner_metric="opens")


def test_attribution_reads_the_groups_the_sender_recorded_without_an_audience_query(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    from airflow_provider_wamm.campaign.stats import newcombe_interval
    from airflow_provider_wamm.operators.attribution import ConversionAttributionOperator

    add_v2(sandbox)
    result = operator(recipients=rows(400), campaign_id="attr", holdout=0.25, variants=VARIANTS).execute(
        make_context()
    )
    by_group: dict[str, list[str]] = {}
    for row in ledger.iter_sends("attr"):
        by_group.setdefault(row["variant"], []).append(row["recipient"])
    assert len(by_group["holdout"]) == result["holdout"]
    # Conversions: a third of A, half of B and a tenth of the holdout buy within the week.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    buyers = {
        g: members[: len(members) // d]
        for g, members in by_group.items()
        for d in [{"A": 3, "B": 2}.get(g, 10)]
    }
    seed_crm(
        crm,
        [{"phone": f"+{r}", "converted_at": later} for members in buyers.values() for r in members],
        table="orders",
    )
    report = ConversionAttributionOperator(
        task_id="attribute",
        campaign_id="attr",
        conversions_sql="SELECT phone, converted_at FROM orders",
        sql_conn_id=CRM_CONN_ID,
        ledger_conn_id=LEDGER_CONN_ID,
        window=timedelta(days=7),
    ).execute(make_context())
    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"holdout", "A", "B"}
    b, holdout = groups["B"], groups["holdout"]
    assert (b["recipients"], b["converters"]) == (len(by_group["B"]), len(buyers["B"]))
    assert (holdout["recipients"], holdout["converters"]) == (
        len(by_group["holdout"]),
        len(buyers["holdout"]),
    )
    # The lift by hand, and its interval.
    rate_b, rate_h = len(buyers["B"]) / len(by_group["B"]), len(buyers["holdout"]) / len(by_group["holdout"])
    assert b["lift"] == pytest.approx(rate_b - rate_h)
    ci = newcombe_interval(
        len(buyers["B"]), len(by_group["B"]), len(buyers["holdout"]), len(by_group["holdout"])
    )
    assert b["lift_interval"] == pytest.approx([ci.low, ci.high])
    assert ci.low < rate_b - rate_h < ci.high
