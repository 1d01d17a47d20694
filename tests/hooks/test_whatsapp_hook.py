"""WhatsAppHook: connection parsing, the lazy client, test_connection, check_token and secret hygiene.

HTTP goes through the real GraphClient, answered by requests-mock; connections come from
``AIRFLOW_CONN_*`` variables (no metadata database).
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION
from airflow_provider_wamm.hooks import whatsapp as whatsapp_module
from airflow_provider_wamm.hooks.whatsapp import (
    DEFAULT_BASE_URL,
    TokenInfo,
    WhatsAppConnectionSettings,
    WhatsAppHook,
    base_url_from_connection,
)
from tests.plugins.airflow_fixtures import TEST_PHONE_NUMBER_ID, TEST_WABA_ID

TOKEN = "EAAGtoken-secret-0123456789abcdef"
APP_ID = "555000111"
APP_SECRET = "appsecret-0123456789abcdef"
VERIFY_TOKEN = "verify-token-0123456789"
SECRETS = (TOKEN, APP_SECRET, VERIFY_TOKEN)

GRAPH = f"https://graph.facebook.com/{DEFAULT_API_VERSION}"
PHONE_URL = f"{GRAPH}/{TEST_PHONE_NUMBER_ID}"
WABA_URL = f"{GRAPH}/{TEST_WABA_ID}"
DEBUG_URL = f"{GRAPH}/debug_token"

PHONE_OK = {
    "id": TEST_PHONE_NUMBER_ID,
    "display_phone_number": "+1 555-0100",
    "verified_name": "Acme",
    "quality_rating": "GREEN",
    "throughput": {"level": "STANDARD"},
}
WABA_OK = {"id": TEST_WABA_ID, "name": "Acme WABA", "marketing_messages_onboarding_status": "ONBOARDED"}


def graph_error(code: int, message: str, *, subcode: int | None = None, details: str | None = None) -> dict:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Ab12"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"details": details}
    return {"error": error}


def debug_data(
    *,
    valid: bool = True,
    expires_at: int = 0,
    scopes: tuple[str, ...] | None = None,
    error: str | None = None,
) -> dict:
    data: dict[str, Any] = {
        "app_id": APP_ID,
        "type": "SYSTEM_USER",
        "is_valid": valid,
        "expires_at": expires_at,
        "scopes": list(
            scopes if scopes is not None else ("whatsapp_business_messaging", "whatsapp_business_management")
        ),
    }
    if error:
        data["error"] = {"code": 190, "message": error}
    return {"data": data}


@pytest.fixture
def wa_conn(whatsapp_connection: Callable[..., str]) -> Callable[..., str]:
    """A whatsapp connection with the secrets of this module (app credentials unless told otherwise)."""

    def make(conn_id: str = "wa_test", *, app: bool = True, **kwargs: Any) -> str:
        kwargs.setdefault("access_token", TOKEN)
        kwargs.setdefault("webhook_verify_token", VERIFY_TOKEN)
        if app:
            kwargs.setdefault("app_id", APP_ID)
            kwargs.setdefault("app_secret", APP_SECRET)
        return whatsapp_connection(conn_id, **kwargs)

    return make


def hook_for(conn_id: str, **kwargs: Any) -> WhatsAppHook:
    kwargs.setdefault("max_retries", 0)
    return WhatsAppHook(whatsapp_conn_id=conn_id, **kwargs)


# -- construction ---------------------------------------------------------------------------------


def test_constructing_the_hook_reads_nothing_and_sends_nothing(
    requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the connection was read in __init__")

    monkeypatch.setattr(WhatsAppHook, "get_connection", classmethod(forbidden))
    hook = WhatsAppHook(whatsapp_conn_id="not_defined_anywhere", api_version="v22.0", timeout=5)
    assert hook.whatsapp_conn_id == "not_defined_anywhere"
    assert requests_mock.call_count == 0
    assert repr(hook) == "WhatsAppHook(whatsapp_conn_id='not_defined_anywhere')"


def test_class_attributes_match_the_provider_info() -> None:
    assert WhatsAppHook.conn_name_attr == "whatsapp_conn_id"
    assert WhatsAppHook.default_conn_name == "whatsapp_default"
    assert WhatsAppHook.conn_type == "whatsapp"
    assert WhatsAppHook.hook_name == "WhatsApp Marketing Messages"
    assert WhatsAppHook().whatsapp_conn_id == "whatsapp_default"


def test_airflow_resolves_the_hook_from_the_connection_type(wa_conn: Callable[..., str]) -> None:
    from airflow.providers.common.compat.sdk import BaseHook

    conn_id = wa_conn("wa_resolve")
    hook = BaseHook.get_hook(conn_id)
    assert isinstance(hook, WhatsAppHook)
    assert hook.whatsapp_conn_id == "wa_resolve"


# -- connection parsing ---------------------------------------------------------------------------


def test_json_connection_builds_the_client(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    conn_id = wa_conn(max_messages_per_second=250, timeout="12.5")
    hook = hook_for(conn_id)
    settings = hook.settings
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.access_token == TOKEN
    assert settings.api_version == "v25.0"
    assert (hook.phone_number_id, hook.waba_id) == (TEST_PHONE_NUMBER_ID, TEST_WABA_ID)
    assert hook.max_messages_per_second == 250.0
    assert settings.timeout == 12.5
    assert (hook.app_secret, hook.webhook_verify_token) == (APP_SECRET, VERIFY_TOKEN)

    client = hook.get_conn()
    assert isinstance(client, GraphClient)
    assert hook.get_conn() is client
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    assert client.get_phone_number()["verified_name"] == "Acme"
    request = requests_mock.last_request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.timeout[1] == 12.5  # (connect, read)


def test_defaults_when_extras_are_absent(wa_conn: Callable[..., str]) -> None:
    hook = hook_for(wa_conn(waba_id=None, app=False, webhook_verify_token=None))
    assert hook.waba_id is None
    assert hook.max_messages_per_second == 80.0
    assert hook.settings.timeout == 30.0
    assert hook.app_secret is None and hook.webhook_verify_token is None


def test_uri_connection(airflow_connection: Callable[..., str], requests_mock: Any) -> None:
    token = urllib.parse.quote(TOKEN, safe="")
    conn_id = airflow_connection(
        "wa_uri",
        uri=f"whatsapp://:{token}@graph.facebook.com/?phone_number_id={TEST_PHONE_NUMBER_ID}"
        f"&api_version=v22.0&max_messages_per_second=500&app_secret={APP_SECRET}",
    )
    hook = hook_for(conn_id)
    assert hook.settings.access_token == TOKEN
    assert hook.max_messages_per_second == 500.0
    assert hook.app_secret == APP_SECRET
    requests_mock.get(f"https://graph.facebook.com/v22.0/{TEST_PHONE_NUMBER_ID}", json=PHONE_OK)
    hook.get_conn().get_phone_number()
    assert requests_mock.call_count == 1


def test_uri_with_a_loopback_http_host_and_port(
    airflow_connection: Callable[..., str], requests_mock: Any
) -> None:
    conn_id = airflow_connection(
        "wa_local", uri=f"whatsapp://http://:{TOKEN}@127.0.0.1:8099/?phone_number_id={TEST_PHONE_NUMBER_ID}"
    )
    hook = hook_for(conn_id)
    assert hook.settings.base_url == "http://127.0.0.1:8099"
    requests_mock.get(f"http://127.0.0.1:8099/{DEFAULT_API_VERSION}/{TEST_PHONE_NUMBER_ID}", json=PHONE_OK)
    assert hook.get_conn().get_phone_number()["id"] == TEST_PHONE_NUMBER_ID


def test_legacy_prefixed_extras_are_read(airflow_connection: Callable[..., str]) -> None:
    conn_id = airflow_connection(
        "wa_legacy",
        conn_type="whatsapp",
        password=TOKEN,
        extra={
            "phone_number_id": "",  # a blank plain value must not hide the legacy one
            "extra__whatsapp__phone_number_id": "111",
            "extra__whatsapp__waba_id": "222",
            "waba_id": "333",  # the plain key wins when both are set
            "extra__whatsapp__api_version": "v21.0",
            "extra__whatsapp__max_messages_per_second": "",
            "extra__whatsapp__app_secret": APP_SECRET,
        },
    )
    settings = hook_for(conn_id).settings
    assert settings.phone_number_id == "111"
    assert settings.waba_id == "333"
    assert settings.api_version == "v21.0"
    assert settings.max_messages_per_second == 80.0
    assert settings.app_secret == APP_SECRET


def test_hook_arguments_override_the_connection(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    conn_id = wa_conn(api_version="v21.0", timeout=30)
    hook = hook_for(conn_id, api_version="v24.0", timeout=3)
    assert hook.settings.api_version == "v24.0"
    assert hook.settings.timeout == 3.0
    requests_mock.get(f"https://graph.facebook.com/v24.0/{TEST_PHONE_NUMBER_ID}", json=PHONE_OK)
    hook.get_conn().get_phone_number()
    assert requests_mock.called


def test_plain_http_to_a_remote_host_is_refused_unless_allowed(wa_conn: Callable[..., str]) -> None:
    from airflow_provider_wamm.graph.errors import InsecureTransportError

    conn_id = wa_conn(host="http://graph.example.com")
    with pytest.raises(InsecureTransportError):
        hook_for(conn_id).get_conn()
    assert hook_for(conn_id, allow_insecure_http=True).get_conn() is not None


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, "https://graph.facebook.com"),
        ("", "", None, "https://graph.facebook.com"),
        ("graph.facebook.com", None, None, "https://graph.facebook.com"),
        ("https://graph.facebook.com/", None, None, "https://graph.facebook.com"),
        (" HTTPS://graph.facebook.com ", None, None, "https://graph.facebook.com"),
        ("127.0.0.1", "http", 8080, "http://127.0.0.1:8080"),
        ("localhost", "https", None, "https://localhost"),
        ("proxy.internal", "graph", None, "https://proxy.internal"),
        ("http://localhost:9000", None, 1234, "http://localhost:9000"),
        ("https://proxy.internal/graph/", None, None, "https://proxy.internal/graph"),
    ],
)
def test_base_url_from_connection(
    host: str | None, schema: str | None, port: int | None, expected: str
) -> None:
    assert base_url_from_connection(host, schema, port) == expected


@pytest.mark.parametrize("host", ["ftp://graph.facebook.com", "https://", "://"])
def test_unusable_host_is_a_configuration_error(host: str) -> None:
    with pytest.raises(ConfigurationError, match="host"):
        base_url_from_connection(host)


def test_missing_token_names_the_field_and_the_connection(wa_conn: Callable[..., str]) -> None:
    hook = hook_for(wa_conn("wa_no_token", access_token=None))
    with pytest.raises(ConfigurationError) as info:
        hook.get_conn()
    text = str(info.value)
    assert "'wa_no_token'" in text
    assert "access token" in text and "password" in text
    ok, message = hook.test_connection()
    assert not ok and "'wa_no_token'" in message and "access token" in message


def test_missing_phone_number_id_names_the_field_and_the_connection(wa_conn: Callable[..., str]) -> None:
    hook = hook_for(wa_conn("wa_no_phone", phone_number_id=None))
    with pytest.raises(ConfigurationError, match=r"'wa_no_phone'.*'phone_number_id'"):
        hook.get_conn()
    with pytest.raises(ConfigurationError, match="phone_number_id"):
        _ = hook.phone_number_id
    # What does not need the number still works (the webhook receiver only needs the app secret).
    assert hook.app_secret == APP_SECRET


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"phone_number_id": "+1 555 0100"}, "not the number itself"),
        ({"waba_id": "acme"}, "'waba_id'"),
        ({"api_version": "23.0"}, "'api_version'"),
        ({"max_messages_per_second": "fast"}, "'max_messages_per_second' must be a number"),
        ({"max_messages_per_second": 0}, "'max_messages_per_second' must be above 0"),
        ({"max_messages_per_second": 5000}, "at most 1000"),
        ({"timeout": -1}, "'timeout'"),
    ],
)
def test_invalid_extras_are_configuration_errors(
    wa_conn: Callable[..., str], extra: dict[str, Any], match: str
) -> None:
    hook = hook_for(wa_conn("wa_bad", **extra))
    with pytest.raises(ConfigurationError, match=match) as info:
        _ = hook.settings
    assert "'wa_bad'" in str(info.value)


def test_secrets_are_registered_with_the_masker(
    wa_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    masked: list[Any] = []
    monkeypatch.setattr(whatsapp_module, "mask_secret", lambda value, *a, **k: masked.append(value))
    _ = hook_for(wa_conn()).settings
    assert APP_SECRET in masked
    assert VERIFY_TOKEN in masked
    assert TOKEN in masked


def test_close_drops_the_client(wa_conn: Callable[..., str]) -> None:
    hook = hook_for(wa_conn())
    first = hook.get_conn()
    hook.close()
    assert hook.get_conn() is not first


def test_the_pool_size_is_fixed_when_the_hook_is_built(
    wa_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[dict[str, Any]] = []

    def recording_client(access_token: str, **kwargs: Any) -> GraphClient:
        built.append(kwargs)
        return GraphClient(access_token, **kwargs)

    monkeypatch.setattr(whatsapp_module, "GraphClient", recording_client)
    hook = hook_for(wa_conn(), pool_maxsize=12)
    assert hook.pool_maxsize == 12
    with pytest.raises(AttributeError):
        hook.pool_maxsize = 3  # type: ignore[misc]
    hook.get_conn()
    assert [kwargs["pool_maxsize"] for kwargs in built] == [12]
    hook_for(wa_conn("wa_default_pool")).get_conn()
    assert "pool_maxsize" not in built[1]  # the client's own default


def test_settings_read_beforehand_are_handed_over_and_not_read_again(
    wa_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    masked: list[Any] = []
    monkeypatch.setattr(whatsapp_module, "mask_secret", lambda value, *a, **k: masked.append(value))
    conn_id = wa_conn(max_messages_per_second=250)
    settings = WhatsAppHook.read_connection_settings(conn_id, api_version="v22.0")
    assert settings.max_messages_per_second == 250 and settings.api_version == "v22.0"
    assert TOKEN in masked and APP_SECRET in masked

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the connection was read again")

    monkeypatch.setattr(WhatsAppHook, "get_connection", classmethod(forbidden))
    hook = hook_for(conn_id, pool_maxsize=50, connection_settings=settings)
    assert hook.settings is settings
    assert hook.get_conn().phone_number_id == TEST_PHONE_NUMBER_ID


# -- test_connection ------------------------------------------------------------------------------


def test_connection_success(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json=WABA_OK)
    requests_mock.get(DEBUG_URL, json=debug_data())
    ok, message = hook_for(wa_conn()).test_connection()
    assert ok, message
    assert message == (
        f"Connected to +1 555-0100 (Acme, quality GREEN, throughput STANDARD); "
        f"WABA {TEST_WABA_ID} marketing messages: ONBOARDED; token: never expires"
    )
    methods = {r.method for r in requests_mock.request_history}
    assert methods == {"GET"}, "the connection test must not change anything"
    phone_request = next(r for r in requests_mock.request_history if r.path.endswith(TEST_PHONE_NUMBER_ID))
    fields = set(phone_request.qs["fields"][0].split(","))
    assert {"display_phone_number", "verified_name", "quality_rating", "throughput"} <= fields


def test_connection_without_app_credentials_skips_the_token_check(
    wa_conn: Callable[..., str], requests_mock: Any
) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json=WABA_OK)
    ok, message = hook_for(wa_conn(app=False)).test_connection()
    assert ok, message
    assert "not checked (set app_id and app_secret" in message
    assert not any("debug_token" in r.path for r in requests_mock.request_history)


def test_connection_bad_token_says_how_to_get_a_system_user_token(
    wa_conn: Callable[..., str], requests_mock: Any
) -> None:
    requests_mock.get(
        PHONE_URL,
        status_code=401,
        json=graph_error(190, "Error validating access token: Session has expired.", subcode=463),
    )
    requests_mock.get(
        DEBUG_URL,
        json=debug_data(valid=False, expires_at=int(time.time()) - 3600, error="Session has expired"),
    )
    ok, message = hook_for(wa_conn()).test_connection()
    assert not ok
    assert message.startswith("The access token was rejected (Graph error 190")
    assert "System users" in message and "Never" in message and "password" in message
    assert "expired" in message  # debug_token's diagnosis is added when the app credentials are there
    assert requests_mock.call_count == 2  # nothing else is tried with a dead token


def test_connection_permission_error_names_the_permission(
    wa_conn: Callable[..., str], requests_mock: Any
) -> None:
    requests_mock.get(PHONE_URL, status_code=403, json=graph_error(200, "Permissions error"))
    ok, message = hook_for(wa_conn(app=False)).test_connection()
    assert not ok
    assert f"phone number {TEST_PHONE_NUMBER_ID}" in message
    assert "whatsapp_business_messaging" in message


def test_connection_unknown_phone_number_id(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    requests_mock.get(
        PHONE_URL,
        status_code=400,
        json=graph_error(100, "Unsupported get request.", subcode=33, details="Object does not exist"),
    )
    ok, message = hook_for(wa_conn(app=False)).test_connection()
    assert not ok
    assert "check phone_number_id" in message and "Object does not exist" in message


def test_connection_network_failure(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    requests_mock.get(PHONE_URL, exc=requests.exceptions.ConnectionError("connection refused"))
    ok, message = hook_for(wa_conn(app=False)).test_connection()
    assert not ok
    assert message.startswith("Could not reach the Graph API at https://graph.facebook.com")


def test_connection_without_waba(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(DEBUG_URL, json=debug_data())
    ok, message = hook_for(wa_conn(waba_id=None)).test_connection()
    assert ok, message
    assert "waba_id not set" in message
    assert "onboarding status and analytics are off" in message
    assert not any(TEST_WABA_ID in r.path for r in requests_mock.request_history)


def test_connection_unknown_waba(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, status_code=400, json=graph_error(100, "Unsupported get request."))
    ok, message = hook_for(wa_conn(app=False)).test_connection()
    assert not ok
    assert message.startswith(f"WABA {TEST_WABA_ID} could not be read")
    assert "check waba_id" in message
    assert "Connected to +1 555-0100" in message  # what worked is still reported


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        ("ELIGIBLE", "accept the Marketing Messages API terms"),
        ("PENDING_VALID_PAYMENT_METHOD", "payment method"),
        ("INELIGIBLE_COUNTRY_NOT_SUPPORTED", "country is not supported"),
        ("SOMETHING_NEW", "complete Marketing Messages onboarding"),
    ],
)
def test_connection_waba_not_onboarded(
    wa_conn: Callable[..., str], requests_mock: Any, status: str, advice: str
) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json={**WABA_OK, "marketing_messages_onboarding_status": status})
    requests_mock.get(DEBUG_URL, json=debug_data())
    ok, message = hook_for(wa_conn()).test_connection()
    assert not ok
    assert message.startswith(
        f"WABA {TEST_WABA_ID} is not onboarded to the Marketing Messages API (status {status})"
    )
    assert advice in message
    assert "fall back to the Cloud API" in message
    assert "token: never expires" in message


def test_connection_token_expiring_soon_passes_with_a_warning(
    wa_conn: Callable[..., str], requests_mock: Any
) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json=WABA_OK)
    requests_mock.get(DEBUG_URL, json=debug_data(expires_at=int(time.time()) + 5 * 3600 + 60))
    ok, message = hook_for(wa_conn()).test_connection()
    assert ok, message
    assert "token: expires" in message and "(in 5 h)" in message
    assert "WARNING: replace it soon with a system-user token" in message


def test_connection_token_expiring_later_suggests_a_permanent_token(
    wa_conn: Callable[..., str], requests_mock: Any
) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json=WABA_OK)
    requests_mock.get(DEBUG_URL, json=debug_data(expires_at=int(time.time()) + 50 * 86400))
    ok, message = hook_for(wa_conn()).test_connection()
    assert ok, message
    assert "(in 49 days)" in message or "(in 50 days)" in message
    assert "WARNING" not in message and "never expires" in message


def test_connection_token_missing_scope(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json=WABA_OK)
    requests_mock.get(DEBUG_URL, json=debug_data(scopes=("whatsapp_business_management",)))
    ok, message = hook_for(wa_conn()).test_connection()
    assert not ok
    assert message.startswith("The access token lacks the whatsapp_business_messaging permission")


def test_connection_token_without_management_scope_is_noted(
    wa_conn: Callable[..., str], requests_mock: Any
) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json=WABA_OK)
    requests_mock.get(DEBUG_URL, json=debug_data(scopes=("whatsapp_business_messaging",)))
    ok, message = hook_for(wa_conn()).test_connection()
    assert ok, message
    assert "token lacks whatsapp_business_management" in message


def test_connection_invalid_token_per_debug_token(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json=WABA_OK)
    requests_mock.get(DEBUG_URL, json=debug_data(valid=False, error="The session was invalidated"))
    ok, message = hook_for(wa_conn()).test_connection()
    assert not ok
    assert message.startswith("The access token is not valid (The session was invalidated)")


def test_connection_app_credentials_refused(wa_conn: Callable[..., str], requests_mock: Any) -> None:
    requests_mock.get(PHONE_URL, json=PHONE_OK)
    requests_mock.get(WABA_URL, json=WABA_OK)
    requests_mock.get(DEBUG_URL, status_code=400, json=graph_error(101, "Error validating application."))
    ok, message = hook_for(wa_conn()).test_connection()
    assert not ok
    assert "check app_id and app_secret" in message


# -- check_token ----------------------------------------------------------------------------------


def _warnings(events: list[Any]) -> list[str]:
    return [str(e["event"]) for e in events if e.get("log_level") == "warning"]


def test_check_token_warns_when_the_token_expires_within_a_day(
    wa_conn: Callable[..., str], requests_mock: Any, airflow_logs: list[Any]
) -> None:
    requests_mock.get(DEBUG_URL, json=debug_data(expires_at=int(time.time()) + 2 * 3600 + 60))
    info = hook_for(wa_conn("wa_expiring")).check_token()
    assert info is not None and info.is_valid and not info.never_expires
    warnings = _warnings(airflow_logs)
    assert len(warnings) == 1, warnings
    assert "'wa_expiring'" in warnings[0] and "(in 2 h)" in warnings[0] and "System users" in warnings[0]


def test_check_token_quiet_for_a_token_that_lasts(
    wa_conn: Callable[..., str], requests_mock: Any, airflow_logs: list[Any]
) -> None:
    requests_mock.get(DEBUG_URL, json=debug_data(expires_at=int(time.time()) + 3 * 86400))
    info = hook_for(wa_conn()).check_token()
    assert info is not None
    assert _warnings(airflow_logs) == []
    hook_for(wa_conn()).check_token(warn_within=timedelta(days=7))
    assert len(_warnings(airflow_logs)) == 1


def test_check_token_warns_about_an_invalid_token_or_a_missing_scope(
    wa_conn: Callable[..., str], requests_mock: Any, airflow_logs: list[Any]
) -> None:
    requests_mock.get(DEBUG_URL, json=debug_data(valid=False, error="Session has expired"))
    info = hook_for(wa_conn()).check_token()
    assert info is not None and not info.is_valid
    requests_mock.get(DEBUG_URL, json=debug_data(scopes=("whatsapp_business_management",)))
    hook_for(wa_conn()).check_token()
    warnings = _warnings(airflow_logs)
    assert len(warnings) == 2, warnings
    assert "is not valid (Session has expired)" in warnings[0]
    assert "lacks whatsapp_business_messaging" in warnings[1]


def test_check_token_is_a_no_op_without_app_credentials(
    wa_conn: Callable[..., str], requests_mock: Any
) -> None:
    assert hook_for(wa_conn(app=False)).check_token() is None
    assert requests_mock.call_count == 0


def test_check_token_never_raises(
    wa_conn: Callable[..., str], requests_mock: Any, airflow_logs: list[Any]
) -> None:
    requests_mock.get(DEBUG_URL, exc=requests.exceptions.ConnectTimeout("timed out"))
    assert hook_for(wa_conn()).check_token() is None
    requests_mock.get(DEBUG_URL, status_code=400, json=graph_error(101, "Error validating application."))
    assert hook_for(wa_conn()).check_token() is None
    warnings = _warnings(airflow_logs)
    assert len(warnings) == 2 and all("Could not inspect the access token" in w for w in warnings)


def test_token_info_from_debug_token() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    info = TokenInfo.from_debug_token(
        {"data": {"is_valid": True, "expires_at": int((now + timedelta(hours=3)).timestamp()), "scopes": []}}
    )
    assert info.expires_within(timedelta(days=1), now=now)
    assert not info.expires_within(timedelta(hours=2), now=now)
    assert info.describe_expiry(now=now) == "expires 2026-01-01 03:00 UTC (in 3 h)"
    assert info.missing_scopes == ("whatsapp_business_messaging",)
    never = TokenInfo.from_debug_token(
        {"is_valid": True, "expires_at": 0, "scopes": ["whatsapp_business_messaging"]}
    )
    assert never.never_expires and never.describe_expiry() == "never expires" and not never.missing_scopes
    expired = TokenInfo.from_debug_token(
        {"data": {"is_valid": False, "expires_at": int(now.timestamp()) - 60}}
    )
    assert expired.describe_expiry(now=now).startswith("expired 2025-12-31 23:59 UTC")


# -- secrets --------------------------------------------------------------------------------------


def _scenarios(requests_mock: Any) -> list[Callable[[], None]]:
    """Register answers for one scenario each; a leaky Meta message echoes the token back."""
    leaky = graph_error(190, f"Invalid OAuth access token - Cannot parse access token {TOKEN}")
    return [
        lambda: (
            requests_mock.get(PHONE_URL, json=PHONE_OK),
            requests_mock.get(WABA_URL, json=WABA_OK),
            requests_mock.get(DEBUG_URL, json=debug_data(expires_at=int(time.time()) + 3600)),
        ),
        lambda: (
            requests_mock.get(PHONE_URL, status_code=401, json=leaky),
            requests_mock.get(DEBUG_URL, json=debug_data(valid=False, error=f"bad token {TOKEN}")),
        ),
        lambda: (
            requests_mock.get(PHONE_URL, json=PHONE_OK),
            requests_mock.get(WABA_URL, json={"marketing_messages_onboarding_status": "ELIGIBLE"}),
            requests_mock.get(DEBUG_URL, status_code=400, json=graph_error(101, f"bad secret {APP_SECRET}")),
        ),
        lambda: (requests_mock.get(PHONE_URL, exc=requests.exceptions.ConnectionError("refused")),),
    ]


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked into {where}: {text[:300]}"


def test_secrets_never_leak(
    wa_conn: Callable[..., str],
    requests_mock: Any,
    caplog: pytest.LogCaptureFixture,
    airflow_logs: list[Any],
    capfd: pytest.CaptureFixture[str],
) -> None:
    conn_id = wa_conn()
    texts: list[tuple[str, str]] = []
    with caplog.at_level(logging.DEBUG):
        for register in _scenarios(requests_mock):
            register()
            hook = hook_for(conn_id)
            _ok, message = hook.test_connection()
            texts.append(("test_connection message", message))
            hook.check_token(warn_within=timedelta(days=30))
            texts += [
                ("repr(hook)", repr(hook)),
                ("repr(settings)", repr(hook.settings)),
                ("str(settings)", str(hook.settings)),
                ("repr(client)", repr(hook.get_conn())),
            ]
            try:
                hook.get_conn().get_phone_number()
            except Exception as exc:
                texts += [("exception str", str(exc)), ("exception repr", repr(exc))]
        for bad in (
            {"access_token": None},
            {"phone_number_id": "+1 555 0100"},
            {"max_messages_per_second": "x"},
        ):
            hook = hook_for(wa_conn("wa_broken", **bad))
            try:
                hook.get_conn()
            except ConfigurationError as exc:
                texts.append(("configuration error", str(exc)))
            texts.append(("broken test_connection", hook.test_connection()[1]))
    assert len(texts) > 20
    assert requests_mock.call_count >= 6
    for where, text in texts:
        _assert_clean(text, where)
    # requests-mock's own adapter logs the raw URL it answers; it is the test double, not the provider
    # (the real transport's urllib3 lines are covered by test_secrets_never_leak_over_real_http).
    records = [r for r in caplog.records if not r.name.startswith("requests_mock")]
    assert any(r.name.startswith("airflow_provider_wamm") for r in records)
    for record in records:
        _assert_clean(record.getMessage(), f"log record {record.name}")
        _assert_clean(str(record.__dict__), f"log record attributes {record.name}")
    assert _warnings(airflow_logs), "the scenarios should have logged warnings through the hook's logger"
    for event in airflow_logs:
        _assert_clean(repr(event), "hook log event")
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if "requests_mock" not in line]
    _assert_clean("\n".join(lines), "stdout/stderr")


def test_settings_repr_shows_which_secrets_are_set() -> None:
    settings = WhatsAppConnectionSettings(
        conn_id="x", access_token=TOKEN, app_secret=None, webhook_verify_token=""
    )
    text = repr(settings)
    assert "access_token=***" in text and "app_secret=None" in text and "webhook_verify_token=None" in text
    assert TOKEN not in text
    assert settings.secrets == (TOKEN,)


def test_json_form_round_trip_of_the_fixture(whatsapp_connection: Callable[..., str]) -> None:
    import os

    conn_id = whatsapp_connection("wa_fixture", access_token=TOKEN, host="http://127.0.0.1:1", timeout=9)
    data = json.loads(os.environ["AIRFLOW_CONN_WA_FIXTURE"])
    assert data == {
        "conn_type": "whatsapp",
        "host": "http://127.0.0.1:1",
        "password": TOKEN,
        "extra": {"phone_number_id": TEST_PHONE_NUMBER_ID, "waba_id": TEST_WABA_ID, "timeout": 9},
    }
    assert hook_for(conn_id).settings.timeout == 9.0


class _FakeGraph(http.server.BaseHTTPRequestHandler):
    """Answers the three reads of the connection test like the Graph API (over real HTTP)."""

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == f"/{DEFAULT_API_VERSION}/{TEST_PHONE_NUMBER_ID}":
            status, body = 200, PHONE_OK
        elif path == f"/{DEFAULT_API_VERSION}/{TEST_WABA_ID}":
            status, body = 200, {**WABA_OK, "marketing_messages_onboarding_status": "ELIGIBLE"}
        elif path == f"/{DEFAULT_API_VERSION}/debug_token":
            status, body = 200, debug_data(expires_at=int(time.time()) + 600)
        else:
            status, body = 400, graph_error(100, f"Unknown path {self.path}")
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def fake_graph_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeGraph)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_secrets_never_leak_over_real_http(
    wa_conn: Callable[..., str],
    fake_graph_url: str,
    caplog: pytest.LogCaptureFixture,
    airflow_logs: list[Any],
    capfd: pytest.CaptureFixture[str],
) -> None:
    hook = hook_for(wa_conn("wa_http", host=fake_graph_url))
    with caplog.at_level(logging.DEBUG):
        ok, message = hook.test_connection()
        hook.check_token()
    assert not ok and "status ELIGIBLE" in message and "WARNING" in message
    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("debug_token" in line for line in urllib3_lines), "urllib3 should log the requests at DEBUG"
    for record in caplog.records:
        _assert_clean(record.getMessage(), f"log record {record.name}")
    for event in airflow_logs:
        _assert_clean(repr(event), "hook log event")
    out, err = capfd.readouterr()
    _assert_clean(out + err + message, "output")
