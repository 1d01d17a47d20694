"""The transport seam: the table of transport failures, the answer interpreter, and a fake transport
injected into ``GraphClient``."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import requests
import urllib3.exceptions

from airflow_provider_wamm.graph import (
    ConfigurationError,
    ConnectError,
    GraphClient,
    GraphError,
    GraphTransportError,
    InvalidRequestError,
    NoAnswerError,
    RecipientError,
    SendResult,
    ThrottlingError,
    TLSError,
    TransientError,
    UnknownOutcomeError,
    build_marketing_message,
)
from airflow_provider_wamm.graph.answers import read_answer, read_send_answer, retry_after
from airflow_provider_wamm.graph.transport import (
    TRANSPORT_ERRORS,
    RawResponse,
    map_transport_errors,
    transport_error,
)
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION
from tests.graph.conftest import PHONE_NUMBER_ID, TOKEN, graph_error, send_ok

WHAT = "POST /v23.0/1/marketing_messages"
BASE = "https://graph.facebook.com"
PAYLOAD = build_marketing_message(to="4915123456789", template_name="spring_sale", language="en")


def _refused() -> requests.exceptions.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", reason))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The table: each failure -> the right error, "not sent" apart from "sent, no answer"
# --------------------------------------------------------------------------------------------

NOT_SENT: list[tuple[BaseException, type[GraphTransportError]]] = [
    (ConnectionRefusedError(111, "Connection refused"), ConnectError),
    (socket.gaierror(-2, "Name or service not known"), ConnectError),
    (ConnectError("ConnectionRefusedError: refused"), ConnectError),
    (TLSError("SSLCertVerificationError: certificate verify failed"), TLSError),
    (InvalidRequestError("bad body"), InvalidRequestError),
    (urllib3.exceptions.NewConnectionError(None, "refused"), ConnectError),  # type: ignore[arg-type]
    (urllib3.exceptions.NameResolutionError("graph.invalid", None, socket.gaierror()), ConnectError),  # type: ignore[arg-type]
    (urllib3.exceptions.ConnectTimeoutError("connect timed out"), ConnectError),
    (urllib3.exceptions.ProxyError("proxy down", OSError()), ConnectError),
    (requests.exceptions.ConnectTimeout("connect timed out"), ConnectError),
    (requests.exceptions.ProxyError("proxy down"), ConnectError),
    (_refused(), ConnectError),
    (requests.exceptions.SSLError("certificate verify failed"), TLSError),
    (requests.exceptions.InvalidURL("no host"), InvalidRequestError),
    (requests.exceptions.InvalidJSONError("NaN"), InvalidRequestError),
]

NO_ANSWER: list[BaseException] = [
    TimeoutError("timed out"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),  # after the handshake
    http.client.RemoteDisconnected("Remote end closed connection without response"),
    http.client.IncompleteRead(b"{", 10),
    NoAnswerError("read timed out"),
    UnknownOutcomeError("read timed out"),
    urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
    urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out"),  # type: ignore[arg-type]
    urllib3.exceptions.SSLError("decryption failed"),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ConnectionError("Connection aborted."),
    requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("aborted", ConnectionResetError())),
    requests.exceptions.ChunkedEncodingError("incomplete read"),
    requests.exceptions.ContentDecodingError("bad gzip"),
]


@pytest.mark.parametrize(("exc", "kind"), NOT_SENT, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("idempotent", [True, False], ids=["read", "send"])
def test_failures_before_the_request_left_are_not_sent(
    exc: BaseException, kind: type[GraphTransportError], idempotent: bool
) -> None:
    error = transport_error(exc, WHAT, idempotent=idempotent)
    assert type(error) is kind
    assert error.request_sent is False
    assert error.retry_safe is (kind is ConnectError)  # TLS and invalid requests would fail the same way
    assert str(error).startswith(WHAT)


@pytest.mark.parametrize("exc", NO_ANSWER, ids=lambda v: type(v).__name__)
def test_failures_after_the_request_may_have_left_are_unknown_outcomes_for_sends(exc: BaseException) -> None:
    error = transport_error(exc, WHAT, idempotent=False)
    assert type(error) is UnknownOutcomeError
    assert error.request_sent is True and error.retry_safe is False
    assert "no usable answer after the request was sent" in str(error)


@pytest.mark.parametrize("exc", NO_ANSWER, ids=lambda v: type(v).__name__)
def test_failures_after_the_request_may_have_left_are_retryable_for_reads(exc: BaseException) -> None:
    error = transport_error(exc, "GET /v23.0/1", idempotent=True)
    assert type(error) is NoAnswerError
    assert error.request_sent is True and error.retry_safe is True


def test_every_error_of_the_table_gets_a_message_naming_the_request() -> None:
    kinds = {*TRANSPORT_ERRORS.values(), UnknownOutcomeError}
    assert all(issubclass(kind, GraphTransportError) for kind in kinds)
    for kind in kinds:
        for idempotent in (True, False):
            error = transport_error(kind("the detail"), WHAT, idempotent=idempotent)
            assert error is not None and str(error).startswith(WHAT) and "the detail" in str(error)


@pytest.mark.parametrize("exc", [ValueError("not a transport failure"), KeyError("x"), RuntimeError()])
def test_other_exceptions_pass_through_unchanged(exc: Exception) -> None:
    assert transport_error(exc, WHAT, idempotent=False) is None
    with pytest.raises(type(exc)) as info, map_transport_errors(WHAT, idempotent=False):
        raise exc
    assert info.value is exc


def test_a_plain_transport_error_passes_through_unchanged() -> None:
    exc = GraphTransportError("custom", request_sent=False)
    with pytest.raises(GraphTransportError) as info, map_transport_errors(WHAT, idempotent=False):
        raise exc
    assert info.value is exc


def test_the_context_manager_scrubs_and_chains() -> None:
    def scrub(text: str) -> str:
        return text.replace(TOKEN, "***")

    cause = ConnectionResetError(104, f"reset while sending {TOKEN}")
    with (
        pytest.raises(UnknownOutcomeError) as info,
        map_transport_errors(WHAT, idempotent=False, scrub=scrub),
    ):
        raise cause
    assert TOKEN not in str(info.value) and "***" in str(info.value)
    assert info.value.__cause__ is cause

    with (
        pytest.raises(NoAnswerError) as hidden,
        map_transport_errors("GET /debug_token", idempotent=True, scrub=scrub, keep_cause=False),
    ):
        raise requests.exceptions.ReadTimeout(f"GET /debug_token?input_token={TOKEN}")
    assert hidden.value.__cause__ is None and hidden.value.__suppress_context__
    assert TOKEN not in str(hidden.value)


# --------------------------------------------------------------------------------------------
# The interpreter
# --------------------------------------------------------------------------------------------


def _raw(status: int, body: Any = b"", headers: Mapping[str, str] | None = None) -> RawResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawResponse(status, data, dict(headers or {}))


def test_a_2xx_with_a_json_object_is_read() -> None:
    assert read_answer(_raw(200, {"id": "1"}), WHAT, idempotent=True, base_url=BASE) == {"id": "1"}
    result = read_send_answer(
        _raw(200, send_ok("wamid.X", "held_for_quality_assessment")), WHAT, base_url=BASE
    )
    assert result == SendResult.from_response(send_ok("wamid.X", "held_for_quality_assessment"))


@pytest.mark.parametrize(
    "body", [b"OK", b"<html>ok</html>", b"[1, 2]", b""], ids=["text", "html", "array", "empty"]
)
def test_a_2xx_without_a_json_object_is_unknown_for_sends_and_retryable_for_reads(body: bytes) -> None:
    with pytest.raises(UnknownOutcomeError):
        read_send_answer(_raw(200, body), WHAT, base_url=BASE)
    with pytest.raises(NoAnswerError) as info:
        read_answer(_raw(200, body), "GET /v23.0/1", idempotent=True, base_url=BASE)
    assert type(info.value) is NoAnswerError and info.value.retry_safe


@pytest.mark.parametrize("body", [{"messages": []}, {"messages": [{}]}, {"contacts": []}])
def test_a_send_answer_without_a_message_id_is_unknown(body: dict[str, Any]) -> None:
    with pytest.raises(UnknownOutcomeError, match="usable message id"):
        read_send_answer(_raw(200, body), WHAT, base_url=BASE)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_configuration_error(status: int) -> None:
    with pytest.raises(ConfigurationError, match=f"redirected \\(HTTP {status}\\).*{BASE}"):
        read_send_answer(
            _raw(status, headers={"Location": "https://elsewhere.example/"}), WHAT, base_url=BASE
        )


def test_an_error_envelope_becomes_its_typed_error() -> None:
    with pytest.raises(RecipientError) as info:
        read_send_answer(_raw(400, graph_error(131026)), WHAT, base_url=BASE)
    assert info.value.code == 131026 and info.value.http_status == 400
    assert info.value.details == "details of 131026" and info.value.retry_after is None


def test_retry_after_is_kept_on_the_error_whatever_the_header_case() -> None:
    with pytest.raises(ThrottlingError) as info:
        read_send_answer(_raw(429, graph_error(130429), {"retry-after": "7"}), WHAT, base_url=BASE)
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("value", "seconds"), [("7", 7.0), ("0.5", 0.5), ("-1", None), ("soon", None), (None, None)]
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after(_raw(429, headers={"Retry-After": value} if value is not None else {})) == seconds


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_failure_without_an_envelope_is_unknown_for_sends_only(status: int) -> None:
    with pytest.raises(UnknownOutcomeError, match="gateway"):
        read_send_answer(_raw(status, b"<html>Bad gateway</html>"), WHAT, base_url=BASE)
    with pytest.raises(TransientError) as info:
        read_answer(_raw(status, b"<html>Bad gateway</html>"), "GET /v23.0/1", idempotent=True, base_url=BASE)
    assert info.value.code is None and info.value.http_status == status


def test_a_gateway_status_with_an_envelope_is_the_graph_error() -> None:
    with pytest.raises(TransientError) as info:
        read_send_answer(_raw(502, graph_error(2)), WHAT, base_url=BASE)
    assert info.value.code == 2


def test_the_clean_callback_sees_every_graph_error() -> None:
    def clean(error: GraphError) -> GraphError:
        error.message = error.message.replace(TOKEN, "***")
        return error

    with pytest.raises(GraphError) as info:
        read_send_answer(_raw(401, graph_error(190, f"bad token {TOKEN}")), WHAT, base_url=BASE, clean=clean)
    assert TOKEN not in info.value.message


# --------------------------------------------------------------------------------------------
# A fake transport injected into GraphClient
# --------------------------------------------------------------------------------------------


class FakeTransport:
    """Answers (or failures) in order; records every post."""

    def __init__(self, *answers: RawResponse | BaseException) -> None:
        self.answers = list(answers)
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []
        self.closed = False

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
        self.posts.append((path, body, dict(headers)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


def _client(transport: FakeTransport, sleeps: list[float], **kwargs: Any) -> GraphClient:
    return GraphClient(
        TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        transport=transport,
        sleep=sleeps.append,
        random=lambda: 1.0,
        **kwargs,
    )


def test_a_send_posts_the_payload_through_the_transport(sleeps: list[float]) -> None:
    fake = FakeTransport(_raw(200, send_ok("wamid.FAKE")))
    client = _client(fake, sleeps)
    assert client.send_marketing_message(PAYLOAD).wamid == "wamid.FAKE"
    ((path, body, headers),) = fake.posts
    assert path == f"/{DEFAULT_API_VERSION}/{PHONE_NUMBER_ID}/marketing_messages"
    assert json.loads(body) == PAYLOAD
    assert headers["Authorization"] == f"Bearer {TOKEN}" and headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json" and headers["User-Agent"].startswith(
        "airflow-provider-wamm/"
    )


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.send_marketing_message(PAYLOAD, retry=False),
        lambda c: c.send_marketing_message_fast(PAYLOAD),
    ],
    ids=["retry=False", "fast"],
)
def test_one_attempt_sends_once(sleeps: list[float], send: Callable[[GraphClient], SendResult]) -> None:
    fake = FakeTransport(_raw(500, graph_error(131000)))
    with pytest.raises(TransientError):
        send(_client(fake, sleeps, max_retries=3))
    assert len(fake.posts) == 1 and sleeps == []


def test_retries_go_through_the_same_transport(sleeps: list[float]) -> None:
    fake = FakeTransport(
        ConnectionRefusedError(111, "refused"),
        _raw(429, graph_error(130429), {"Retry-After": "2"}),
        _raw(200, send_ok("wamid.THIRD")),
    )
    assert _client(fake, sleeps, max_retries=3).send_marketing_message(PAYLOAD).wamid == "wamid.THIRD"
    assert len(fake.posts) == 3
    assert sleeps == [0.5, 2.0]  # full jitter at its ceiling, then Retry-After


def test_a_send_that_left_without_an_answer_is_never_retried(sleeps: list[float]) -> None:
    fake = FakeTransport(TimeoutError("timed out"))
    with pytest.raises(UnknownOutcomeError) as info:
        _client(fake, sleeps, max_retries=3).send_marketing_message(PAYLOAD)
    assert len(fake.posts) == 1 and sleeps == [] and info.value.request_sent


def test_a_refused_connection_is_retried_and_not_sent(sleeps: list[float]) -> None:
    fake = FakeTransport(ConnectionRefusedError(111, "refused"))
    with pytest.raises(ConnectError) as info:
        _client(fake, sleeps, max_retries=2).send_marketing_message(PAYLOAD)
    assert len(fake.posts) == 3 and len(sleeps) == 2
    assert info.value.request_sent is False and "could not connect" in str(info.value)


def test_a_payload_that_is_not_json_never_reaches_the_transport(sleeps: list[float]) -> None:
    fake = FakeTransport(_raw(200, send_ok()))
    with pytest.raises(InvalidRequestError) as info:
        _client(fake, sleeps).send_marketing_message({**PAYLOAD, "bad": float("nan")})
    assert fake.posts == [] and info.value.request_sent is False


def test_a_given_transport_is_not_closed_by_the_client(sleeps: list[float]) -> None:
    fake = FakeTransport(_raw(200, send_ok()))
    with _client(fake, sleeps) as client:
        assert client.transport is fake
    assert fake.closed is False
