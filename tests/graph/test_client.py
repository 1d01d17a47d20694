"""GraphClient against a mocked Graph API (requests-mock): sends, errors, retries, transport, hygiene."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3.exceptions

from airflow_provider_wamm.graph import (
    Action,
    AuthenticationError,
    ConfigurationError,
    GraphClient,
    GraphError,
    GraphTransportError,
    HaltError,
    InsecureTransportError,
    PairRateLimitError,
    PermissionDeniedError,
    RecipientError,
    SendResult,
    TemplateError,
    ThrottlingError,
    TransientError,
    UnknownOutcomeError,
    build_marketing_message,
    is_loopback_host,
)
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION
from tests.graph.conftest import GRAPH, PHONE_NUMBER_ID, SEND_URL, TOKEN, WABA_ID, graph_error, send_ok

MakeClient = Callable[..., GraphClient]


def qs(request: Any) -> dict[str, list[str]]:
    """The query string of a recorded request (requests-mock's own ``.qs`` lower-cases values)."""
    return parse_qs(urlsplit(request.url).query)


PAYLOAD = build_marketing_message(
    to="4915123456789",
    template_name="spring_sale",
    language="en_US",
    components=[{"type": "body", "parameters": [{"type": "text", "text": "Anna"}]}],
)


# --------------------------------------------------------------------------------------------
# Sends
# --------------------------------------------------------------------------------------------


def test_send_returns_result_and_sends_payload(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, json=send_ok("wamid.ABC", "held_for_quality_assessment"))
    client = make_client()

    result = client.send_marketing_message(PAYLOAD)

    assert result == SendResult(
        wamid="wamid.ABC",
        message_status="held_for_quality_assessment",
        wa_id="4915123456789",
        input="4915123456789",
    )
    assert requests_mock.call_count == 1
    request = requests_mock.last_request
    assert request.json() == PAYLOAD
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"].startswith("airflow-provider-wamm/")
    assert request.timeout == (10.0, 30.0)


def test_send_by_bsuid_keeps_user_id(make_client: MakeClient, requests_mock: Any) -> None:
    body = {
        "contacts": [{"input": "US.13491208655302741918", "user_id": "US.13491208655302741918"}],
        "messages": [{"id": "wamid.X"}],
    }
    requests_mock.post(SEND_URL, json=body)
    result = make_client().send_marketing_message(PAYLOAD)
    assert result.user_id == "US.13491208655302741918"
    assert result.wa_id is None
    assert result.message_status == "accepted"  # Meta's default when the field is absent


def test_send_needs_phone_number_id(make_client: MakeClient) -> None:
    client = make_client(phone_number_id=None)
    with pytest.raises(ConfigurationError, match="phone_number_id"):
        client.send_marketing_message(PAYLOAD)


def test_custom_timeouts_are_used(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, json=send_ok())
    make_client(timeout=5, connect_timeout=2).send_marketing_message(PAYLOAD)
    assert requests_mock.last_request.timeout == (2.0, 5.0)


# --------------------------------------------------------------------------------------------
# Error classes
# --------------------------------------------------------------------------------------------

ERROR_CASES = [
    (1, 500, TransientError, Action.RETRY),
    (2, 500, TransientError, Action.RETRY),
    (131000, 500, TransientError, Action.RETRY),
    (4, 429, ThrottlingError, Action.THROTTLE),
    (130429, 400, ThrottlingError, Action.THROTTLE),
    (131056, 400, PairRateLimitError, Action.PAIR_LIMIT),
    (100, 400, RecipientError, Action.RECIPIENT),
    (131026, 400, RecipientError, Action.RECIPIENT),
    (131049, 400, RecipientError, Action.RECIPIENT),
    (131050, 400, RecipientError, Action.RECIPIENT),
    (190, 401, AuthenticationError, Action.HALT),
    (10, 403, PermissionDeniedError, Action.HALT),
    (200, 403, PermissionDeniedError, Action.HALT),
    (132001, 404, TemplateError, Action.HALT),
    (134100, 400, TemplateError, Action.HALT),
    (368, 403, HaltError, Action.HALT),
    (131031, 403, HaltError, Action.HALT),
]


@pytest.mark.parametrize(("code", "status", "cls", "action"), ERROR_CASES)
def test_error_codes_map_to_classes(
    make_client: MakeClient,
    requests_mock: Any,
    code: int,
    status: int,
    cls: type[GraphError],
    action: Action,
) -> None:
    requests_mock.post(SEND_URL, status_code=status, json=graph_error(code))
    client = make_client()

    with pytest.raises(GraphError) as info:
        client.send_marketing_message(PAYLOAD, retry=False)

    err = info.value
    assert type(err) is cls
    assert err.action is action
    assert err.code == code
    assert err.http_status == status
    assert err.details == f"details of {code}"
    assert err.fbtrace_id == "AbCdEfTrace"
    assert str(code) in str(err)
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [(c, s) for c, s, _, a in ERROR_CASES if a not in (Action.RETRY, Action.THROTTLE)],
)
def test_non_retryable_errors_are_sent_once_even_with_retry(
    make_client: MakeClient, requests_mock: Any, sleeps: list[float], code: int, status: int
) -> None:
    requests_mock.post(SEND_URL, status_code=status, json=graph_error(code))
    with pytest.raises(GraphError):
        make_client().send_marketing_message(PAYLOAD, retry=True)
    assert requests_mock.call_count == 1
    assert sleeps == []


def test_error_without_envelope_is_classified_by_status(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.get(f"{GRAPH}/{PHONE_NUMBER_ID}", status_code=503, text="<html>Service Unavailable</html>")
    with pytest.raises(TransientError) as info:
        make_client(max_retries=0).get_phone_number()
    assert info.value.code is None
    assert info.value.http_status == 503


# --------------------------------------------------------------------------------------------
# Retries and backoff
# --------------------------------------------------------------------------------------------


def test_retries_are_bounded_and_backoff_is_exponential(
    make_client: MakeClient, requests_mock: Any, sleeps: list[float]
) -> None:
    requests_mock.post(SEND_URL, status_code=500, json=graph_error(2, is_transient=True))
    client = make_client(max_retries=4, backoff_base=0.5, backoff_max=30.0)

    with pytest.raises(TransientError):
        client.send_marketing_message(PAYLOAD)

    assert requests_mock.call_count == 5
    # random() == 1.0 gives the ceiling of full jitter: base * 2**attempt.
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_backoff_is_capped_and_jittered(
    make_client: MakeClient, requests_mock: Any, sleeps: list[float]
) -> None:
    requests_mock.post(SEND_URL, status_code=429, json=graph_error(130429))
    draws = iter([0.5, 0.25, 0.0, 0.999, 0.5, 0.5])
    client = make_client(max_retries=6, backoff_base=1.0, backoff_max=3.0, random=lambda: next(draws))

    with pytest.raises(ThrottlingError):
        client.send_marketing_message(PAYLOAD)

    assert requests_mock.call_count == 7
    ceilings = [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    assert sleeps == pytest.approx([0.5 * 1.0, 0.25 * 2.0, 0.0, 0.999 * 3.0, 1.5, 1.5])
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


def test_retry_then_success(make_client: MakeClient, requests_mock: Any, sleeps: list[float]) -> None:
    requests_mock.post(
        SEND_URL,
        [
            {"status_code": 500, "json": graph_error(131000)},
            {"status_code": 429, "json": graph_error(4)},
            {"status_code": 200, "json": send_ok("wamid.OK")},
        ],
    )
    result = make_client().send_marketing_message(PAYLOAD)
    assert result.wamid == "wamid.OK"
    assert requests_mock.call_count == 3
    assert len(sleeps) == 2


def test_retry_false_sends_once(make_client: MakeClient, requests_mock: Any, sleeps: list[float]) -> None:
    requests_mock.post(SEND_URL, status_code=500, json=graph_error(1))
    with pytest.raises(TransientError):
        make_client().send_marketing_message(PAYLOAD, retry=False)
    assert requests_mock.call_count == 1
    assert sleeps == []


def test_retry_after_header_is_honoured_up_to_the_cap(
    make_client: MakeClient, requests_mock: Any, sleeps: list[float]
) -> None:
    requests_mock.post(
        SEND_URL,
        [
            {"status_code": 429, "json": graph_error(4), "headers": {"Retry-After": "7"}},
            {"status_code": 429, "json": graph_error(4), "headers": {"Retry-After": "999"}},
            {"status_code": 200, "json": send_ok()},
        ],
    )
    make_client(backoff_max=20.0, random=lambda: 0.0).send_marketing_message(PAYLOAD)
    assert sleeps == [7.0, 20.0]


def test_max_retries_zero_disables_retries(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, status_code=500, json=graph_error(1))
    with pytest.raises(TransientError):
        make_client(max_retries=0).send_marketing_message(PAYLOAD)
    assert requests_mock.call_count == 1


# --------------------------------------------------------------------------------------------
# Transport failures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError(
            urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
        ),
        requests.exceptions.ConnectionError("Connection aborted."),
        requests.exceptions.ChunkedEncodingError("incomplete read"),
    ],
    ids=["read-timeout", "reset-after-send", "connection-error", "chunked"],
)
def test_unknown_outcome_is_never_retried(
    make_client: MakeClient, requests_mock: Any, sleeps: list[float], exc: Exception
) -> None:
    requests_mock.post(SEND_URL, exc=exc)
    with pytest.raises(UnknownOutcomeError) as info:
        make_client(max_retries=5).send_marketing_message(PAYLOAD, retry=True)
    assert requests_mock.call_count == 1
    assert sleeps == []
    assert info.value.request_sent is True


def _refused() -> requests.exceptions.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "exc",
    [requests.exceptions.ConnectTimeout("connect timed out"), _refused()],
    ids=["connect-timeout", "refused"],
)
def test_connect_errors_before_sending_are_retried(
    make_client: MakeClient, requests_mock: Any, sleeps: list[float], exc: Exception
) -> None:
    requests_mock.post(SEND_URL, exc=exc)
    with pytest.raises(GraphTransportError) as info:
        make_client(max_retries=2).send_marketing_message(PAYLOAD)
    assert not isinstance(info.value, UnknownOutcomeError)
    assert info.value.request_sent is False
    assert requests_mock.call_count == 3
    assert sleeps == [0.5, 1.0]


def test_connect_error_then_success(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(
        SEND_URL,
        [{"exc": requests.exceptions.ConnectTimeout("connect timed out")}, {"json": send_ok("wamid.2")}],
    )
    assert make_client().send_marketing_message(PAYLOAD).wamid == "wamid.2"
    assert requests_mock.call_count == 2


def test_ssl_errors_are_not_retried(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, exc=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(GraphTransportError) as info:
        make_client().send_marketing_message(PAYLOAD)
    assert info.value.request_sent is False
    assert requests_mock.call_count == 1


def test_get_read_timeouts_are_retried(
    make_client: MakeClient, requests_mock: Any, sleeps: list[float]
) -> None:
    url = f"{GRAPH}/{PHONE_NUMBER_ID}"
    requests_mock.get(
        url, [{"exc": requests.exceptions.ReadTimeout("slow")}, {"json": {"id": PHONE_NUMBER_ID}}]
    )
    assert make_client().get_phone_number() == {"id": PHONE_NUMBER_ID}
    assert requests_mock.call_count == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_failure_on_send_is_unknown(make_client: MakeClient, requests_mock: Any, status: int) -> None:
    requests_mock.post(SEND_URL, status_code=status, text="<html>Bad gateway</html>")
    with pytest.raises(UnknownOutcomeError):
        make_client().send_marketing_message(PAYLOAD)
    assert requests_mock.call_count == 1


def test_gateway_error_with_graph_envelope_is_retried(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, [{"status_code": 502, "json": graph_error(2)}, {"json": send_ok()}])
    make_client().send_marketing_message(PAYLOAD)
    assert requests_mock.call_count == 2


def test_success_without_json_is_unknown(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, status_code=200, text="OK")
    with pytest.raises(UnknownOutcomeError):
        make_client().send_marketing_message(PAYLOAD)
    assert requests_mock.call_count == 1


def test_success_with_a_json_array_is_unknown_for_sends_and_an_error_for_reads(
    make_client: MakeClient, requests_mock: Any, sleeps: list[float]
) -> None:
    requests_mock.post(SEND_URL, json=[1, 2])
    with pytest.raises(UnknownOutcomeError):
        make_client().send_marketing_message(PAYLOAD)
    requests_mock.get(f"{GRAPH}/{PHONE_NUMBER_ID}", json=["not", "an", "object"])
    with pytest.raises(GraphTransportError, match="JSON object"):
        make_client(max_retries=1).get_phone_number()
    assert len(sleeps) == 1  # a read is idempotent, so it was tried twice
    requests_mock.get(f"{GRAPH}/{WABA_ID}/message_templates", json={"data": 5})
    assert list(make_client().list_templates()) == []


def test_success_without_message_id_is_unknown(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, json={"messaging_product": "whatsapp", "messages": []})
    with pytest.raises(UnknownOutcomeError, match="message id"):
        make_client().send_marketing_message(PAYLOAD)


def test_redirect_is_a_configuration_error(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, status_code=301, headers={"Location": "https://elsewhere.example/"})
    with pytest.raises(ConfigurationError, match="redirected"):
        make_client().send_marketing_message(PAYLOAD)
    assert requests_mock.call_count == 1


# --------------------------------------------------------------------------------------------
# Transport security and configuration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://graph.facebook.com",
        "http://10.0.0.5:8080",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
    ],
)
def test_plain_http_is_refused_off_loopback(base_url: str) -> None:
    with pytest.raises(InsecureTransportError) as info:
        GraphClient(TOKEN, base_url=base_url)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8080", "http://localhost:9999", "http://[::1]:80", "http://127.8.9.10/"]
)
def test_plain_http_is_allowed_on_loopback(base_url: str, requests_mock: Any) -> None:
    client = GraphClient(TOKEN, phone_number_id=PHONE_NUMBER_ID, base_url=base_url)
    assert client.base_url == base_url.rstrip("/")
    phone_url = f"{client.base_url}/{DEFAULT_API_VERSION}/{PHONE_NUMBER_ID}"
    requests_mock.get(phone_url, json={"id": PHONE_NUMBER_ID})
    assert client.get_phone_number()["id"] == PHONE_NUMBER_ID


def test_plain_http_can_be_allowed_explicitly() -> None:
    client = GraphClient(TOKEN, base_url="http://sandbox.internal:8080", allow_insecure_http=True)
    assert client.base_url == "http://sandbox.internal:8080"


def test_is_loopback_host() -> None:
    assert is_loopback_host("localhost")
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("[::1]")
    assert not is_loopback_host("localhost.example.com")
    assert not is_loopback_host("192.168.1.1")
    assert not is_loopback_host(None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"access_token": ""}, "access_token"),
        ({"access_token": "abc def"}, "white space"),
        ({"api_version": "23"}, "api_version"),
        ({"base_url": "ftp://graph.facebook.com"}, "http"),
        ({"base_url": "https://user:pw@graph.facebook.com"}, "credentials"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_invalid_configuration(kwargs: dict[str, Any], match: str) -> None:
    options = {"access_token": TOKEN, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        GraphClient(options.pop("access_token"), **options)


def test_base_url_without_scheme_defaults_to_https() -> None:
    assert GraphClient(TOKEN, base_url="graph.facebook.com/").base_url == "https://graph.facebook.com"


def test_close_and_context_manager() -> None:
    client = GraphClient(TOKEN)
    with mock.patch.object(client._session, "close") as close:
        with client:
            pass
        close.assert_called_once()
    own = requests.Session()
    with mock.patch.object(own, "close") as own_close, GraphClient(TOKEN, session=own):
        pass
    own_close.assert_not_called()


# --------------------------------------------------------------------------------------------
# Secrets never leak
# --------------------------------------------------------------------------------------------


def test_token_absent_from_repr_logs_and_errors(
    make_client: MakeClient, requests_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client()
    echo = graph_error(190, f"Invalid OAuth access token {TOKEN}")
    echo["error"]["error_data"]["details"] = f"token {TOKEN} expired"
    requests_mock.post(
        SEND_URL, [{"status_code": 500, "json": graph_error(2)}, {"status_code": 401, "json": echo}]
    )
    requests_mock.get(
        f"{GRAPH}/debug_token", status_code=400, json=graph_error(100, f"bad token {TOKEN} APPSECRETxyz")
    )
    requests_mock.get(
        f"{GRAPH}/{PHONE_NUMBER_ID}", exc=requests.exceptions.ReadTimeout(f"url?input_token={TOKEN}")
    )

    texts = [repr(client), str(vars(client))]
    with pytest.raises(AuthenticationError) as auth:
        client.send_marketing_message(PAYLOAD)
    texts += [str(auth.value), repr(auth.value), json.dumps(auth.value.to_dict())]
    with pytest.raises(GraphError) as debug:
        client.debug_token(app_id="123", app_secret="APPSECRETxyz")
    texts += [str(debug.value), repr(debug.value), json.dumps(debug.value.to_dict())]
    with pytest.raises(GraphTransportError) as transport:
        client.get_phone_number()
    texts += [str(transport.value), repr(transport.value)]
    # Every log line except those of the test double itself (requests-mock logs whole URLs; in
    # production urllib3 does, and its lines are redacted: see test_client_socket.py).
    texts += [caplog.handler.format(r) for r in caplog.records if not r.name.startswith("requests_mock")]

    assert "Bearer ***" not in repr(client)
    assert any("retry" in record.getMessage() for record in caplog.records)  # logging did happen
    for text in texts:
        assert TOKEN not in text
        assert "APPSECRETxyz" not in text
    assert "***" in str(auth.value)


def test_error_details_survive_scrubbing(make_client: MakeClient, requests_mock: Any) -> None:
    requests_mock.post(SEND_URL, status_code=400, json=graph_error(131009, "Parameter value is not valid"))
    with pytest.raises(RecipientError) as info:
        make_client().send_marketing_message(PAYLOAD)
    assert info.value.message == "(#131009) Parameter value is not valid"
    assert info.value.details == "details of 131009"
