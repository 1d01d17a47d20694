"""Conversion attribution: the engine on its own, and the operator on a SQLite ledger and a SQLite CRM.

The operator test seeds a campaign's accepted sends in the ledger, its audience and a conversions table
in the CRM, and checks the lift over the holdout and its Newcombe interval against values computed by
hand here (Wilson intervals of each rate, then Newcombe's combination).
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_wamm.campaign.attribution import (
    OFF_PLAN_GROUP,
    Attribution,
    Conversion,
    Exposure,
    attribute,
    audience_exposures,
    ledger_exposures,
)
from airflow_provider_wamm.campaign.experiments import AssignmentKind, Experiment
from airflow_provider_wamm.campaign.ledger import ACCEPTED, FAILED, Ledger, SendOutcome
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.operators.attribution import ConversionAttributionOperator
from tests.operators.conftest import CRM_CONN_ID, LEDGER_CONN_ID, digits, make_context, number, seed_crm

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
Z95 = 1.959963984540054
EXPERIMENT: dict[str, Any] = {"key": "attribution-test", "holdout": 0.3}
DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"


def split(experiment: Experiment, treatment: int, holdout: int) -> tuple[list[int], list[int]]:
    """The first ``treatment`` sent and ``holdout`` held-out recipient indexes under ``experiment``."""
    sent: list[int] = []
    held: list[int] = []
    i = 0
    while len(sent) < treatment or len(held) < holdout:
        kind = experiment.assign(digits(i)).kind
        if kind is AssignmentKind.HOLDOUT and len(held) < holdout:
            held.append(i)
        elif kind is AssignmentKind.TREATMENT and len(sent) < treatment:
            sent.append(i)
        i += 1
    return sent, held


def record_sends(ledger: Ledger, campaign_id: str, indexes: list[int], state: str = ACCEPTED) -> None:
    recipients = [digits(i) for i in indexes]
    ledger.claim(campaign_id, recipients, attempt_id="a1", now=T0)
    outcomes = [
        SendOutcome(
            r, state, wamid=f"wamid.{r}" if state == ACCEPTED else None, accepted_at=T0, error_code=None
        )
        for r in recipients
    ]
    ledger.record_results(campaign_id, outcomes, attempt_id="a1", now=T0)


def at(hours: float) -> str:
    """A naive UTC timestamp ``hours`` after the send, as SQLite stores text."""
    return (T0 + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")


def wilson(x: int, n: int) -> tuple[float, float]:
    p, z2 = x / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return centre - half, centre + half


# -- the engine ------------------------------------------------------------------------------------


def test_conversions_count_only_inside_each_recipient_s_window() -> None:
    exposures = [
        Exposure("491", "treatment", T0),
        Exposure("492", "treatment", T0 + timedelta(days=2)),
        Exposure("493", "holdout", T0),
        Exposure("491", "holdout", T0),  # a recipient keeps its first exposure
    ]
    conversions = [
        Conversion("491", T0 + timedelta(hours=1), 10.0),
        Conversion("491", T0 + timedelta(days=3), 5.0),  # second conversion: same converter, more value
        Conversion("492", T0 + timedelta(days=1), 99.0),  # before its send
        Conversion("492", T0 + timedelta(days=9), 7.0),  # on the window's last second: counts
        Conversion("493", T0 + WEEK + timedelta(seconds=1), 1.0),  # just after the window
        Conversion("499", T0, 1.0),  # not in the campaign
    ]
    report = attribute(exposures, conversions, WEEK)
    treatment, holdout = report.group("treatment"), report.group("holdout")
    assert [g.group for g in report.groups] == ["holdout", "treatment"]  # the control group first
    assert (treatment.recipients, treatment.converters, treatment.conversions) == (2, 2, 3)
    assert treatment.total_value == pytest.approx(22.0)
    assert (holdout.recipients, holdout.converters) == (1, 0)
    assert report.conversions_read == 6
    assert report.conversions_attributed == 3
    assert report.conversions_outside_window == 2
    assert report.conversions_unmatched == 1
    assert treatment.lift == pytest.approx(1.0) and treatment.relative_lift is None  # control rate 0


def test_conversion_rows_are_normalised_like_the_sender_and_bad_rows_counted() -> None:
    attribution = Attribution(WEEK)
    attribution.add_exposures([Exposure("4915123456789", "treatment", T0)])
    attribution.add_conversion_rows(
        [
            {"phone": "0151 23456789", "converted_at": T0 + timedelta(hours=1), "value": "19.90"},
            {"phone": "+49 151 2345-6789", "converted_at": "2026-05-05T10:00:00+02:00", "value": None},
            {"phone": "+49 151 2345 6789", "converted_at": date(2026, 5, 6), "value": 5},
            {"phone": "not a phone", "converted_at": T0, "value": 1},
            {"phone": "+4915123456789", "converted_at": "yesterday", "value": 1},
        ],
        value_field="value",
        default_region="DE",
    )
    report = attribution.report()
    assert report.group("treatment").conversions == 3
    assert report.group("treatment").total_value == pytest.approx(24.9)
    assert report.conversions_invalid == 2 and report.conversions_read == 5


def test_missing_conversion_columns_are_named() -> None:
    attribution = Attribution(WEEK)
    with pytest.raises(ConfigurationError, match=r"lack the fields \['converted_at'\]"):
        attribution.add_conversion_rows([{"phone": "+4915123456789", "when": T0}])


def test_a_bad_window_or_confidence_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="positive timedelta"):
        Attribution(timedelta(0))
    with pytest.raises(ConfigurationError, match="confidence"):
        Attribution(WEEK, confidence=1.0)


def test_ledger_sends_take_their_variant_and_the_audience_gives_the_holdout(tmp_path: pathlib.Path) -> None:
    experiment = Experiment.from_dict({**EXPERIMENT, "variants": [{"name": "A"}, {"name": "B"}]})
    sent, held = split(experiment, 40, 20)
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        record_sends(ledger, "c", sent)
        record_sends(ledger, "c", held[:1])  # sent before the holdout was decided: off plan
        record_sends(ledger, "other", held[1:2])
        exposures = list(ledger_exposures(ledger, "c", experiment=experiment))
    finally:
        ledger.dispose()
    groups = {e.recipient: e.group for e in exposures}
    assert len(groups) == 41
    assert groups[digits(held[0])] == OFF_PLAN_GROUP
    assert {groups[digits(i)] for i in sent} == {"A", "B"}
    assert all(groups[digits(i)] == experiment.variant_for(digits(i)) for i in sent)
    assert {e.exposed_at for e in exposures} == {T0}
    audience = [number(i) for i in sent + held] + ["garbage"]
    held_out = list(audience_exposures(audience, experiment, exposed_at=T0))
    assert {e.recipient for e in held_out} == {digits(i) for i in held}
    assert {e.group for e in held_out} == {"holdout"}


# -- the operator ----------------------------------------------------------------------------------------


@pytest.fixture
def campaign(ledger: Ledger, crm: pathlib.Path) -> dict[str, Any]:
    """200 accepted sends and 100 held out of campaign ``spring``; 30 and 5 of them convert in the week."""
    experiment = Experiment.from_dict(EXPERIMENT)
    sent, held = split(experiment, 200, 100)
    record_sends(ledger, "spring", sent)
    failed = [max(sent + held) + 1 + k for k in range(20)]
    failed = [i for i in failed if experiment.assign(digits(i)).sends][:5]
    record_sends(ledger, "spring", failed, state=FAILED)
    record_sends(ledger, "another-campaign", held[:10])  # another campaign's sends do not count
    seed_crm(crm, [{"phone": number(i), "segment": "spring"} for i in sent + held + failed])
    conversions = []
    for k, i in enumerate(sent[:30]):
        conversions.append({"phone": number(i), "converted_at": at(1 + k), "value": "20.00"})
    conversions.append({"phone": number(sent[0]), "converted_at": at(50), "value": "5.00"})  # repeat buyer
    for k, i in enumerate(held[:5]):
        conversions.append({"phone": number(i), "converted_at": at(2 + k), "value": "10.00"})
    conversions += [
        {"phone": number(sent[40]), "converted_at": at(-1), "value": "1"},  # before the send
        {"phone": number(sent[41]), "converted_at": at(24 * 8), "value": "1"},  # after the window
        {"phone": number(held[50]), "converted_at": at(24 * 7 + 1), "value": "1"},  # after the window
        {"phone": number(failed[0]), "converted_at": at(3), "value": "1"},  # never reached
        {"phone": "+49 30 12345678", "converted_at": at(3), "value": "1"},  # not in the campaign
        {"phone": "n/a", "converted_at": at(3), "value": "1"},
    ]
    seed_crm(crm, conversions, table="orders")
    return {"sent": sent, "held": held}


def attribution_operator(**kwargs: Any) -> ConversionAttributionOperator:
    args: dict[str, Any] = {
        "task_id": "attribute",
        "campaign_id": "spring",
        "conversions_sql": "SELECT phone, converted_at, value FROM orders",
        "sql_conn_id": CRM_CONN_ID,
        "value_field": "value",
        "window": WEEK,
        "experiment": EXPERIMENT,
        "audience_sql": "SELECT phone FROM customers WHERE segment = ?",
        "audience_parameters": ["spring"],
        "ledger_conn_id": LEDGER_CONN_ID,
        "batch_size": 7,
        **kwargs,
    }
    return ConversionAttributionOperator(**args)


def test_the_lift_over_the_holdout_and_its_interval(campaign: dict[str, Any]) -> None:
    result = attribution_operator().execute(make_context())
    assert json.loads(json.dumps(result)) == result
    groups = {g["group"]: g for g in result["groups"]}
    assert list(groups) == ["holdout", "treatment"]
    treatment, holdout = groups["treatment"], groups["holdout"]
    assert (treatment["recipients"], treatment["converters"], treatment["conversions"]) == (200, 30, 31)
    assert (holdout["recipients"], holdout["converters"], holdout["conversions"]) == (100, 5, 5)
    assert treatment["total_value"] == pytest.approx(30 * 20 + 5)
    assert holdout["total_value"] == pytest.approx(50)
    # By hand: 30/200 = 15 % against 5/100 = 5 %, a lift of 10 points.
    assert treatment["conversion_rate"] == pytest.approx(0.15)
    assert holdout["conversion_rate"] == pytest.approx(0.05)
    assert treatment["lift"] == pytest.approx(0.10)
    # Newcombe: 0.10 - sqrt((0.15 - l1)^2 + (u2 - 0.05)^2), 0.10 + sqrt((u1 - 0.15)^2 + (0.05 - l2)^2).
    (l1, u1), (l2, u2) = wilson(30, 200), wilson(5, 100)
    low = 0.10 - math.sqrt((0.15 - l1) ** 2 + (u2 - 0.05) ** 2)
    high = 0.10 + math.sqrt((u1 - 0.15) ** 2 + (0.05 - l2) ** 2)
    assert treatment["lift_interval"] == pytest.approx([low, high], rel=1e-12)
    assert treatment["lift_interval"] == pytest.approx([0.02483, 0.16287], abs=5e-5)
    assert treatment["rate_interval"] == pytest.approx(list(wilson(30, 200)), rel=1e-12)
    # Relative lift 0.15 / 0.05 - 1 = 2, interval from the log rate ratio.
    se = math.sqrt(1 / 30 - 1 / 200 + 1 / 5 - 1 / 100)
    assert treatment["relative_lift"] == pytest.approx(2.0)
    assert treatment["relative_lift_interval"] == pytest.approx(
        [math.exp(math.log(3) - Z95 * se) - 1, math.exp(math.log(3) + Z95 * se) - 1], rel=1e-12
    )
    pooled = 35 / 300
    z = 0.10 / math.sqrt(pooled * (1 - pooled) * (1 / 200 + 1 / 100))
    assert treatment["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert holdout["lift"] is None
    assert (result["conversions_read"], result["conversions_attributed"]) == (42, 36)
    assert result["conversions_outside_window"] == 3
    assert result["conversions_unmatched"] == 2
    assert result["conversions_invalid"] == 1
    assert result["readout"] is None
    assert result["campaign_id"] == "spring" and result["window_s"] == WEEK.total_seconds()


def test_the_xcom_holds_counts_and_rates_never_a_phone_number(campaign: dict[str, Any]) -> None:
    result = attribution_operator().execute(make_context())
    assert not re.search(r"49151\d{8}|\+49", json.dumps(result))


def test_variants_sent_by_one_task_each_get_a_winner_readout(ledger: Ledger, crm: pathlib.Path) -> None:
    spec = {"key": "ab", "holdout": 0.2, "variants": [{"name": "A"}, {"name": "B"}]}
    experiment = Experiment.from_dict(spec)
    sent, held = split(experiment, 400, 50)
    for variant in ("A", "B"):  # one send task, so one campaign, per variant
        record_sends(
            ledger, f"spring-{variant}", [i for i in sent if experiment.variant_for(digits(i)) == variant]
        )
    seed_crm(crm, [{"phone": number(i)} for i in sent + held])
    buyers = [i for i in sent if experiment.variant_for(digits(i)) == "B"][:40]
    buyers += [i for i in sent if experiment.variant_for(digits(i)) == "A"][:5]
    seed_crm(crm, [{"phone": number(i), "converted_at": at(5)} for i in buyers], table="orders")
    result = attribution_operator(
        campaign_id=["spring-A", "spring-B"],
        experiment=spec,
        audience_sql="SELECT phone FROM customers",
        audience_parameters=None,
        conversions_sql="SELECT phone, converted_at FROM orders",
        value_field=None,
    ).execute(make_context())
    groups = {g["group"]: g for g in result["groups"]}
    assert list(groups) == ["holdout", "A", "B"]
    assert groups["B"]["converters"] == 40 and groups["A"]["converters"] == 5
    assert groups["holdout"]["recipients"] == 50 and groups["holdout"]["converters"] == 0
    assert result["readout"]["decision"] == "winner" and result["readout"]["winner"] == "B"
    assert result["readout"]["metric"] == "converters"


def test_without_an_experiment_every_send_is_the_treatment(campaign: dict[str, Any]) -> None:
    result = attribution_operator(experiment=None, audience_sql=None).execute(make_context())
    (group,) = result["groups"]
    assert (group["group"], group["recipients"], group["converters"]) == ("treatment", 200, 30)
    assert group["lift"] is None


def test_bad_arguments_fail_at_parse_time() -> None:
    with pytest.raises(ValueError, match="pass the experiment too"):
        attribution_operator(experiment=None)
    with pytest.raises(ValueError, match="experiment: unknown experiment settings"):
        attribution_operator(experiment={"key": "k", "hold": 0.1})
    with pytest.raises(ValueError, match="control_group must be"):
        attribution_operator(control_group="A")


def test_a_query_without_the_time_column_fails_with_its_columns(campaign: dict[str, Any]) -> None:
    op = attribution_operator(conversions_sql="SELECT phone, value FROM orders")
    with pytest.raises(AirflowFailException, match=r"lack the fields \['converted_at'\]"):
        op.execute(make_context())


def test_the_operator_is_listed_in_the_provider_info() -> None:
    from airflow_provider_wamm.get_provider_info import get_provider_info

    modules = [m for entry in get_provider_info()["operators"] for m in entry["python-modules"]]
    assert "airflow_provider_wamm.operators.attribution" in modules


# -- the recipes ---------------------------------------------------------------------------------------

RECIPES = sorted((DOCS / "recipes").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


@pytest.mark.parametrize("page", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_examples_compile(page: pathlib.Path) -> None:
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    assert blocks, f"{page.name} has no Python example"
    for i, code in enumerate(blocks):
        compile(code, f"{page.name}#{i}", "exec")


DAG_BLOCKS = [
    (f"{page.stem}#{i}", code)
    for page in RECIPES
    for i, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")))
    if "@dag" in code
]


@pytest.mark.parametrize(("where", "code"), DAG_BLOCKS, ids=[w for w, _ in DAG_BLOCKS])
def test_recipe_dags_build(where: str, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each recipe's DAG parses: its operators accept the arguments the page shows."""
    built: list[BaseOperator] = []
    original = BaseOperator.__init__

    def recording_init(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(BaseOperator, "__init__", recording_init)
    exec(compile(code, where, "exec"), {"__name__": "recipe"})
    assert built, f"{where}: the recipe's DAG builds no task"


def test_every_recipe_is_in_the_index_and_names_no_machine_path() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert {"cost-planner", "experiments", "attribution"} <= {p.stem for p in RECIPES}
    for page in RECIPES:
        assert f"recipes/{page.stem}" in index, f"{page.name} is not in the docs index"
        text = page.read_text(encoding="utf-8")
        assert "/work/" not in text and "/tmp/" not in text
