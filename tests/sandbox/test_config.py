"""Configuration: validation, templates, forced outcomes, secrets kept out of reprs."""

from __future__ import annotations

import pytest

from airflow_provider_wamm.sandbox import ForcedOutcome, Sandbox, SandboxConfig, SandboxTemplate, parse_forced


def test_default_templates() -> None:
    templates = SandboxConfig().templates
    assert set(templates) == {
        "spring_sale",
        "welcome_named",
        "coupon_offer",
        "image_promo",
        "utility_notice",
        "paced_promo",
        "product_spotlight",
        "gif_teaser",
        "catalog_browse",
        "contact_request",
        "product_carousel",
    }
    assert templates["spring_sale"].body_param_count == 2
    assert templates["welcome_named"].body_param_names == ("first_name",)
    assert templates["image_promo"].header_format == "IMAGE"
    assert templates["utility_notice"].category == "UTILITY"
    assert templates["paced_promo"].message_status == "held_for_quality_assessment"
    assert templates["product_spotlight"].header_format == "PRODUCT"
    assert templates["product_spotlight"].message_send_ttl_seconds == 172_800
    assert templates["gif_teaser"].header_format == "GIF"
    assert len(templates["product_carousel"].cards) == 2
    assert len({t.id for t in templates.values()}) == len(templates)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("read", ForcedOutcome(outcome="read")),
        ("failed:131050", ForcedOutcome(outcome="failed:131050")),
        (
            "error:131000#2, delivered",
            ForcedOutcome(outcome="delivered", action="error", code=131000, times=2),
        ),
        ("held", ForcedOutcome(message_status="held_for_quality_assessment")),
        ("paused,lost", ForcedOutcome(action="lost", message_status="paused")),
        ("drop#1", ForcedOutcome(action="drop", times=1)),
    ],
)
def test_parse_forced(value: str, expected: ForcedOutcome) -> None:
    assert parse_forced(value) == expected


@pytest.mark.parametrize(
    "value", ["sometimes", "error", "error:abc", "drop:1", "lost,drop", "failed:x", "slow#0"]
)
def test_parse_forced_refuses_nonsense(value: str) -> None:
    with pytest.raises(ValueError):
        parse_forced(value)


@pytest.mark.parametrize(
    "changes",
    [
        {"fault_5xx_rate": 1.5},
        {"mps_cap": 0},
        {"webhook_batch_size": 1001},
        {"outcomes": {"opened": 1.0}},
        {"outcomes": {"read": 0.0}},
        {"forced_outcomes": {"1": "nope"}},
        {"lost_response_mode": "vanish"},
        {"webhook_url": "ftp://x"},
        {"latency_s": -1},
        {"no_such_setting": 1},
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SandboxConfig().replace(**changes)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "Bad Name"},
        {"name": "ok", "category": "PROMO"},
        {"name": "ok", "status": "LIVE"},
        {"name": "ok", "header_format": "AUDIO"},  # GIF and PRODUCT headers exist (Marketing Messages)
        {"name": "ok", "message_status": "queued"},
        {"name": "ok", "body_text": "{{1}} and {{name}}"},
        {"name": "ok", "message_send_ttl_seconds": 3600},  # marketing: 12 hours to 30 days
        {"name": "ok", "message_send_ttl_seconds": -1},
        {"name": "ok", "category": "UTILITY", "message_send_ttl_seconds": 86_400},
        {"name": "ok", "message_send_ttl_seconds": "1 day"},
    ],
)
def test_invalid_templates_are_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        SandboxTemplate(**kwargs)  # type: ignore[arg-type]


def test_templates_can_be_given_as_a_list_of_dicts() -> None:
    config = SandboxConfig(templates=[{"name": "a_b", "body_text": "Hi {{x}}"}])  # type: ignore[arg-type]
    assert config.templates["a_b"].parameter_format == "NAMED"


def test_secrets_stay_out_of_reprs_and_dicts() -> None:
    config = SandboxConfig(access_token="tok-123", app_secret="sec-456")
    assert "tok-123" not in repr(config) and "sec-456" not in repr(config)
    shown = config.to_dict()
    assert shown["access_token"] == "***" and shown["app_secret"] == "***"
    assert config.to_dict(include_secrets=True)["access_token"] == "tok-123"
    assert "tok-123" not in repr(Sandbox(config))


def test_context_manager_serves_on_a_free_port() -> None:
    with Sandbox(latency_s=0.0) as first, Sandbox() as second:
        assert first.url != second.url
        assert first.port > 0
    assert "running=False" in repr(first)


def test_config_is_immutable() -> None:
    config = SandboxConfig()
    with pytest.raises(AttributeError):
        config.mps_cap = 5  # type: ignore[misc]


def test_shown_config_can_be_sent_back() -> None:
    config = SandboxConfig(
        access_token="tok", mps_cap=12, forced_outcomes={"491": "read"}, webhook_url="http://h/x"
    )
    again = SandboxConfig.from_dict(config.to_dict(), base=config)
    assert again == config
    assert again.access_token == "tok"
    assert SandboxConfig.from_dict(config.to_dict(include_secrets=True)) == config
