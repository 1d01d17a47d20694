"""MarketingMessageOperator against the sandbox over HTTP and a real SQLite ledger: arguments and outcomes."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
)
from airflow.sdk import DAG

from airflow_provider_wamm.campaign.ledger import Ledger
from airflow_provider_wamm.campaign.report import send_counts
from airflow_provider_wamm.hooks.ledger import ledger_url
from airflow_provider_wamm.operators.marketing import HALTED_RESULT_KEY, MarketingMessageOperator
from airflow_provider_wamm.sandbox import Sandbox, SandboxTemplate, default_templates
from tests.operators.conftest import (
    CRM_CONN_ID,
    WHATSAPP_CONN_ID,
    digits,
    make_context,
    number,
    rows,
    seed_crm,
)
from tests.operators.conftest import send_operator as operator

#: Keys the XCom result must always carry.
RESULT_KEYS = {
    "campaign_id",
    "total",
    "accepted",
    "held",
    "paused",
    "failed",
    "skipped",
    "unknown",
    "duplicates",
    "invalid",
    "suppressed",
    "errors_by_code",
    "elapsed_s",
    "messages_per_second",
}


def with_template(sandbox: Sandbox, template: SandboxTemplate) -> None:
    sandbox.configure(templates={**default_templates(), template.name: template})


# -- template fields ---------------------------------------------------------------------------------


def test_template_fields_cover_what_users_template() -> None:
    fields = set(MarketingMessageOperator.template_fields)
    assert {
        "template_name",
        "language",
        "whatsapp_conn_id",
        "recipients",
        "sql",
        "sql_conn_id",
        "parameters",
        "recipient_field",
        "default_region",
        "body_parameters",
        "header",
        "buttons",
        "components",
        "campaign_id",
        "ledger_conn_id",
        "product_policy",
        "max_messages_per_second",
        "is_dry_run",
        "shard_index",
        "shard_count",
    } <= fields
    assert MarketingMessageOperator.template_ext == (".sql",)
    op = operator()
    for name in fields:  # every template field is an attribute the renderer can read
        getattr(op, name)


def test_templated_arguments_and_sql_file_are_rendered(tmp_path: pathlib.Path) -> None:
    (tmp_path / "audience.sql").write_text(
        "SELECT phone, name FROM customers WHERE segment = :segment AND since < '{{ ds }}'"
    )
    with DAG("wamm_render", schedule=None, template_searchpath=[str(tmp_path)]):
        op = operator(
            template_name="promo_{{ ds_nodash }}",
            sql="audience.sql",
            sql_conn_id="crm_{{ params.region }}",
            parameters={"segment": "{{ params.segment }}"},
            campaign_id="spring_{{ ds_nodash }}",
            body_parameters=["{name}", "{{ params.discount }}"],
            product_policy="{{ params.policy }}",
            dry_run="{{ params.dry }}",
        )
    context = make_context(
        ds="2026-05-01",
        ds_nodash="20260501",
        params={"region": "de", "segment": "vip", "discount": "25%", "policy": "strict", "dry": "true"},
    )
    op.render_template_fields(context)
    assert op.template_name == "promo_20260501"
    assert op.sql == "SELECT phone, name FROM customers WHERE segment = :segment AND since < '2026-05-01'"
    assert op.sql_conn_id == "crm_de" and op.parameters == {"segment": "vip"}
    assert op.campaign_id == "spring_20260501"
    assert op.body_parameters == ["{name}", "25%"]  # personalisation fields stay for the engine
    assert op.product_policy == "strict" and op.is_dry_run == "true"


def test_invalid_arguments_fail_at_parse_time() -> None:
    with pytest.raises(ValueError, match="either 'recipients' or 'sql'"):
        operator(recipients=["+4915100000001"], sql="SELECT 1", sql_conn_id="x")
    with pytest.raises(ValueError, match="'sql' needs 'sql_conn_id'"):
        operator(sql="SELECT phone FROM t")
    with pytest.raises(ValueError, match="'product_policy' must be one of"):
        operator(product_policy="SOMETIMES")
    with pytest.raises(ValueError, match="'on_empty' must be one of"):
        operator(on_empty="explode")
    with pytest.raises(ValueError, match="max_failure_ratio"):
        operator(max_failure_ratio=1.5)
    with pytest.raises(ValueError, match=r"Unknown campaign_options \['speed'\]"):
        operator(campaign_options={"speed": 11})
    operator(product_policy="{{ params.policy }}")  # templated: checked once rendered


# -- recipients ----------------------------------------------------------------------------------------


def test_list_of_strings_to_a_template_without_parameters(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    with_template(sandbox, SandboxTemplate(name="plain_promo", body_text="Our shop reopened!"))
    op = operator(
        template_name="plain_promo",
        body_parameters=None,
        buttons=None,
        recipients=[number(1), digits(2), "+49 (151) 0000-0003"],
    )
    context = make_context()
    result = op.execute(context)
    assert set(result) >= RESULT_KEYS
    assert result["campaign_id"] == "wamm_ops.send.manual__2026-05-01T10:00:00+00:00"
    assert result["total"] == 3 and result["accepted"] == 3
    assert sorted(sandbox.sends_per_recipient()) == [digits(1), digits(2), digits(3)]
    assert all("components" not in m.payload["template"] for m in sandbox.messages)
    assert send_counts(ledger, result["campaign_id"]) == {"accepted": 3}


def test_dicts_with_named_parameters_a_custom_field_and_a_default_region(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(
        template_name="welcome_named",
        body_parameters={"first_name": "{first_name}"},
        buttons=None,
        recipient_field="mobile",
        default_region="DE",
        recipients=[
            {"mobile": "0151 00000007", "first_name": "Jo"},
            {"mobile": number(8), "first_name": "Al"},
        ],
    )
    result = op.execute(make_context())
    assert result["accepted"] == 2
    sent = {m.to: m.payload for m in sandbox.messages}
    assert set(sent) == {digits(7), digits(8)}
    body = sent[digits(7)]["template"]["components"][0]
    assert body["parameters"] == [{"type": "text", "parameter_name": "first_name", "text": "Jo"}]


def test_sql_rows_are_streamed_with_bound_parameters(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger, crm: pathlib.Path
) -> None:
    seed_crm(
        crm,
        [{**row, "segment": "vip" if i % 2 == 0 else "new"} for i, row in enumerate(rows(40))],
    )
    op = operator(
        sql="SELECT phone, name, discount, slug FROM customers WHERE segment = :segment",
        sql_conn_id=CRM_CONN_ID,
        parameters={"segment": "vip"},
        batch_size=7,  # several fetchmany() rounds
    )
    result = op.execute(make_context())
    assert result["total"] == 20 and result["accepted"] == 20
    assert set(sandbox.sends_per_recipient()) == {digits(i) for i in range(0, 40, 2)}
    # Personalisation came from the row: Ana4's message carries her name and her URL suffix.
    payload = next(m.payload for m in sandbox.messages if m.to == digits(4))
    body, button = payload["template"]["components"]
    assert body["parameters"][0]["text"] == "Ana4" and button["parameters"][0]["text"] == "s4"


def test_recipients_rendered_to_a_string_is_a_clear_error(
    wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(recipients="['+4915100000001']")
    with pytest.raises(AirflowFailException, match="rendered to a string, not a list"):
        op.execute(make_context())


# -- sending options ---------------------------------------------------------------------------------


def test_product_policy_and_activity_sharing_reach_the_payload(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(recipients=rows(3), product_policy="strict", message_activity_sharing=False)
    assert op.execute(make_context())["accepted"] == 3
    for message in sandbox.messages:
        assert message.payload["product_policy"] == "STRICT"
        assert message.payload["message_activity_sharing"] is False


def test_rate_defaults_to_the_connection_cap_shared_by_the_shards(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    wa_sandbox(max_messages_per_second=90)
    sharded = operator(recipients=rows(30), shard_count=3, shard_index=1, campaign_id="rate")
    result = sharded.execute(make_context())
    assert result["final_rate"] == pytest.approx(90.0)  # alone on the number: the whole cap
    assert 0 < result["total"] < 30 and result["accepted"] == result["total"]
    divided = operator(
        recipients=rows(30),
        shard_count=3,
        shard_index=1,
        campaign_id="rate-divided",
        campaign_options={"share_cap": False},
    )
    assert divided.execute(make_context())["final_rate"] == pytest.approx(30.0)
    explicit = operator(recipients=rows(5), max_messages_per_second="12.5", campaign_id="rate-2")
    assert explicit.execute(make_context())["final_rate"] == pytest.approx(12.5)


def test_a_cap_below_one_message_per_second_is_accepted(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    wa_sandbox(max_messages_per_second=2)
    op = operator(
        recipients=rows(1),
        shard_count=4,
        shard_index=0,
        campaign_id="slow",
        dry_run=True,
        campaign_options={"share_cap": False},
    )
    assert op.execute(make_context())["final_rate"] == pytest.approx(0.5)


def test_the_hook_is_built_once_with_a_connection_per_sender(
    wa_sandbox: Callable[..., str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook
    from airflow_provider_wamm.operators import marketing

    built: list[dict[str, Any]] = []
    reads: list[str] = []

    class RecordingHook(WhatsAppHook):
        def __init__(self, **kwargs: Any) -> None:
            built.append(kwargs)
            super().__init__(**kwargs)

        @classmethod
        def get_connection(cls, conn_id: str) -> Any:
            reads.append(conn_id)
            return super().get_connection(conn_id)

    monkeypatch.setattr(marketing, "WhatsAppHook", RecordingHook)
    wa_sandbox(max_messages_per_second=100)
    assert (
        operator(recipients=rows(3), concurrency=6, campaign_id="pool").execute(make_context())["accepted"]
        == 3
    )
    # The senders follow the round trips, up to max_concurrency: a kept-alive connection for each.
    assert [b["pool_maxsize"] for b in built] == [1024] and reads == [WHATSAPP_CONN_ID]
    built.clear()
    fixed = operator(
        recipients=rows(3),
        concurrency=6,
        campaign_id="pool-fixed",
        campaign_options={"adaptive_concurrency": False},
    )
    assert fixed.execute(make_context())["accepted"] == 3
    assert [b["pool_maxsize"] for b in built] == [6]
    built.clear()
    reads.clear()
    sharded = operator(
        recipients=rows(3),
        shard_count=2,
        shard_index=0,
        campaign_id="pool-2",
        campaign_options={"adaptive_concurrency": False, "share_cap": False},
    )
    sharded.execute(make_context())
    # The rate (the connection's cap split between the shards) sizes a fixed pool: 50 msg/s -> 10.
    assert [b["pool_maxsize"] for b in built] == [10] and reads == [WHATSAPP_CONN_ID]


def test_shard_index_outside_the_shards_fails(wa_sandbox: Callable[..., str], ledger: Ledger) -> None:
    with pytest.raises(AirflowFailException, match=r"'shard_index' 3 is outside 0\.\.2"):
        operator(recipients=rows(3), shard_count=3, shard_index=3).execute(make_context())
    with pytest.raises(AirflowFailException, match="'shard_count' must be at least 1, got 0"):
        operator(recipients=rows(3), shard_count=0).execute(make_context())
    with pytest.raises(AirflowFailException, match="'shard_index' must be an integer, got 'two'"):
        operator(recipients=rows(3), shard_count=3, shard_index="two").execute(make_context())


def test_dry_run_makes_no_request_and_records_nothing(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    data = [*rows(10), {"phone": "not a number", "name": "X", "discount": "1%", "slug": "x"}]
    op = operator(recipients=data, dry_run=True)
    result = op.execute(make_context())
    assert result["dry_run"] is True and result["would_send"] == 10 and result["invalid"] == 1
    assert result["accepted"] == 0
    assert sandbox.counts()["requests"] == 0  # not even the template check
    assert send_counts(ledger, result["campaign_id"]) == {}


def test_max_lateness_skips_an_old_run_with_a_clear_log_line(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    airflow_logs: list[MutableMapping[str, Any]],
) -> None:
    op = operator(recipients=rows(3), max_lateness=timedelta(hours=12))
    old = datetime.now(UTC) - timedelta(days=3)
    with pytest.raises(AirflowSkipException, match=r"is 3 days old, more than max_lateness \(12 hours\)"):
        op.execute(make_context(logical_date=old))
    assert sandbox.counts()["requests"] == 0
    assert any(
        "Skipping the campaign: this run's logical date" in e["event"] and e["log_level"] == "warning"
        for e in airflow_logs
    )
    # A fresh run of the same operator is not late.
    assert op.execute(make_context())["accepted"] == 3


@pytest.mark.parametrize(
    ("on_empty", "outcome"),
    [("succeed", None), ("skip", AirflowSkipException), ("fail", AirflowFailException)],
)
def test_on_empty(
    on_empty: str, outcome: type[Exception] | None, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    op = operator(recipients=[], on_empty=on_empty)
    if outcome is None:
        assert op.execute(make_context())["total"] == 0
    else:
        with pytest.raises(outcome, match="No recipients"):
            op.execute(make_context())


def test_max_failure_ratio_fails_the_task_after_the_run(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(forced_outcomes={digits(i): "error:131026" for i in range(3)})
    op = operator(recipients=rows(10), max_failure_ratio=0.2)
    with pytest.raises(AirflowFailException, match=r"3 of 10 sends failed \(30\.0%\).*'131026': 3"):
        op.execute(make_context())
    assert len(sandbox.messages) == 7  # the run went on for everybody else
    relaxed = operator(recipients=rows(10), max_failure_ratio=0.5, campaign_id="relaxed")
    assert relaxed.execute(make_context())["failed"] == 3


def test_progress_logs_mask_numbers_and_never_show_the_token(
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
    airflow_logs: list[MutableMapping[str, Any]],
) -> None:
    sandbox.configure(latency_s=0.01, forced_outcomes={digits(3): "error:131026"})
    op = operator(
        recipients=rows(60),
        concurrency=4,
        max_messages_per_second=150,
        campaign_options={"progress_interval_s": 0.05},
    )
    op.execute(make_context())
    text = "\n".join(str(e) for e in airflow_logs)
    assert "rows done" in text  # progress lines were written
    assert sandbox.config.access_token not in text
    for i in range(60):
        assert digits(i) not in text and number(i) not in text


def test_default_ledger_is_a_sqlite_file_under_airflow_home(
    sandbox: Sandbox, wa_sandbox: Callable[..., str]
) -> None:
    op = operator(recipients=rows(2), ledger_conn_id=None, campaign_id="default-ledger-check")
    op.execute(make_context())
    url = ledger_url(None)
    assert pathlib.Path(url.database or "").parent.parent == pathlib.Path(_airflow_home())
    led = Ledger.from_url(url)
    try:
        assert send_counts(led, "default-ledger-check") == {"accepted": 2}
    finally:
        led.dispose()


def _airflow_home() -> str:
    import os

    return os.environ["AIRFLOW_HOME"]


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        (
            '{"conn_type": "postgres", "host": "db", "port": 5432, "login": "u", "password": "p", '
            '"schema": "wamm"}',
            "postgresql+psycopg://u:***@db:5432/wamm",
        ),
        ('{"conn_type": "mysql", "host": "db", "login": "u", "schema": "wamm"}', "mysql+pymysql://u@db/wamm"),
        ('{"conn_type": "sqlite", "host": "/data/ledger.db"}', "sqlite:////data/ledger.db"),
    ],
)
def test_ledger_connections_of_each_type(conn: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAMM_SOME_LEDGER", conn)
    assert str(ledger_url("wamm_some_ledger")) == expected


# -- preflight ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "kwargs", "message"),
    [
        (
            SandboxTemplate(name="paused_sale", body_text="Hi {{1}}", status="PAUSED"),
            {
                "template_name": "paused_sale",
                "body_parameters": ["{name}"],
                "buttons": None,
                "on_template_paused": "fail",
            },
            "template 'paused_sale' (en_US) is PAUSED (read before the first send). Set "
            "on_template_paused='defer' to wait instead.",
        ),
        (
            None,
            {"template_name": "utility_notice", "body_parameters": ["{name}"], "buttons": None},
            "is in category UTILITY; the Marketing Messages API sends only MARKETING templates",
        ),
        (
            None,
            {"language": "de_DE"},
            "template 'spring_sale' (de_DE) was not found in WABA 200000000000001: it exists only in en_US: "
            "set 'language' to one of them",
        ),
        (
            None,
            {"template_name": "autumn_sale"},
            "template 'autumn_sale' (en_US) was not found in WABA 200000000000001: no template of that name",
        ),
        (
            None,
            {"body_parameters": ["{name}"]},
            "body: the template expects 2 parameter(s) ({{1}}, {{2}}), got 1 (Meta error 132000); "
            "the template needs: body {{1}}, {{2}}, button 0 url",
        ),
        (
            None,
            {"buttons": None},
            "button 0: the template's URL button needs a url button component",
        ),
    ],
    ids=["not-approved", "not-marketing", "other-language", "missing", "body-count", "missing-button"],
)
def test_preflight_stops_before_any_send(
    template: SandboxTemplate | None,
    kwargs: dict[str, Any],
    message: str,
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
) -> None:
    if template is not None:
        with_template(sandbox, template)
    op = operator(recipients=rows(5), **kwargs)
    with pytest.raises(AirflowFailException) as info:
        op.execute(make_context())
    assert message in str(info.value)
    assert str(info.value).endswith("Nothing was sent.")
    assert sandbox.messages == [] and not sandbox.errors()
    assert send_counts(ledger, op.campaign_id or "wamm_ops.send.manual__2026-05-01T10:00:00+00:00") == {}


def test_preflight_is_off_without_a_waba_id_and_can_be_turned_off(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    wa_sandbox(waba_id=None)
    # Without the check the template's own error (132000, a template-wide HALT) stops the campaign.
    op = operator(recipients=rows(5), body_parameters=["{name}"])
    with pytest.raises(AirflowFailException, match="Graph error 132000"):
        op.execute(make_context())
    assert sandbox.errors()[132000] >= 1 and sandbox.messages == []
    wa_sandbox()
    assert (
        operator(recipients=rows(2), preflight=False, campaign_id="np").execute(make_context())["accepted"]
        == 2
    )


# -- halts -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exception", "advice"),
    [
        (10, AirflowFailException, "give the system user access to the WhatsApp account"),
        (131042, AirflowException, "fix the WhatsApp Business Account's payment method"),
    ],
)
def test_account_errors_halt_with_what_to_fix(
    code: int,
    exception: type[Exception],
    advice: str,
    sandbox: Sandbox,
    wa_sandbox: Callable[..., str],
    ledger: Ledger,
) -> None:
    sandbox.configure(forced_outcomes={digits(0): f"error:{code}"})
    context = make_context()
    op = operator(recipients=rows(1), concurrency=1)
    with pytest.raises(exception) as info:
        op.execute(context)
    text = str(info.value)
    assert f"halted after 0 messages on Graph error {code}" in text and advice in text
    assert "clear the task (same campaign_id)" in text
    retryable = not isinstance(info.value, AirflowFailException)
    assert retryable is (code == 131042)  # a payment problem may be fixed before the next try
    assert context["ti"].xcoms[HALTED_RESULT_KEY]["halt_error"]["code"] == code


def test_unknown_outcomes_are_resent_only_with_resend_unknown(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    lost = [digits(2), digits(5)]
    sandbox.configure(lost_response_mode="drop", forced_outcomes={d: "lost#1" for d in lost})
    first = operator(recipients=rows(8)).execute(make_context())
    assert first["unknown"] == 2 and first["accepted"] == 6 and first["errors_by_code"] == {"unknown": 2}
    again = operator(recipients=rows(8)).execute(make_context())
    assert again["accepted"] == 0 and len(sandbox.messages) == 8  # Meta took them; nobody is asked twice
    forced = operator(recipients=rows(8), resend_unknown=True).execute(make_context())
    assert forced["accepted"] == 2
    assert [sandbox.sends_per_recipient()[d] for d in lost] == [2, 2]  # the documented risk


def test_an_expired_token_fails_the_preflight_without_retries(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    sandbox.configure(token_expired=True)
    with pytest.raises(
        AirflowFailException, match=r"Preflight: reading template 'spring_sale'.*System users"
    ):
        operator(recipients=rows(3)).execute(make_context())
    assert sandbox.messages == []


def test_a_connection_without_a_phone_number_id_is_a_clear_error(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    wa_sandbox(phone_number_id=None)
    with pytest.raises(AirflowFailException, match="misconfigured: Connection 'wamm_test_whatsapp' has no"):
        operator(recipients=rows(3)).execute(make_context())
    assert sandbox.messages == []


def test_rendered_recipients_are_kept_out_of_the_rendered_fields(
    sandbox: Sandbox, wa_sandbox: Callable[..., str], ledger: Ledger
) -> None:
    with DAG("wamm_render_recipients", schedule=None):
        op = operator(recipients=rows(4))
    op.render_template_fields(make_context())
    assert op.recipients == "<4 recipients: not shown>"  # what Airflow stores and the UI shows
    assert op.execute(make_context())["accepted"] == 4  # the rows themselves are still sent
    assert len(sandbox.messages) == 4
