"""How an answer of the Graph API is read: the JSON object it carries, or the exception it means.

One interpreter for every transport and every call, so that the same status and body always mean
the same thing: a 2xx carries a JSON object (a send's must name its message), a 3xx is a
misconfigured base URL (redirects are never followed: they would carry the token elsewhere), any
other status carries Meta's error envelope, parsed into a typed
:class:`~airflow_provider_wamm.graph.errors.GraphError`. A send answered by a gateway (502 or 504
without an envelope) or by a 2xx without a message id may have been accepted: that is an
:class:`~airflow_provider_wamm.graph.errors.UnknownOutcomeError`, never a failure to retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from airflow_provider_wamm.graph.errors import (
    ConfigurationError,
    GraphError,
    NoAnswerError,
    UnknownOutcomeError,
    parse_error_envelope,
)
from airflow_provider_wamm.graph.results import SendResult
from airflow_provider_wamm.graph.transport import RawResponse

__all__ = [
    "UNKNOWN_GATEWAY_STATUSES",
    "json_object",
    "read_answer",
    "read_send_answer",
    "retry_after",
]

#: Statuses a gateway answers when it lost track of the request (it may have reached Meta).
UNKNOWN_GATEWAY_STATUSES = frozenset({502, 504})


def _unchanged(error: GraphError) -> GraphError:
    """The default ``clean``: the error as it is."""
    return error


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` decoded as a JSON object, or ``None`` (not JSON, or another JSON value)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_answer(
    response: RawResponse,
    what: str,
    *,
    idempotent: bool,
    base_url: str,
    clean: Callable[[GraphError], GraphError] = _unchanged,
) -> dict[str, Any]:
    """The JSON object of a successful answer to the request ``what``; else raise what the answer means.

    :param idempotent: the request can be sent again harmlessly (a read): a 2xx without a JSON object
        is then a :class:`~airflow_provider_wamm.graph.errors.NoAnswerError` (worth retrying), and a
        gateway's 502/504 an ordinary retryable error.
    :param base_url: named in the error of a redirect.
    :param clean: applied to a parsed Graph error before it is raised (to scrub secrets from its text).
    :raises GraphError: the error envelope, typed by its code.
    :raises UnknownOutcomeError: a send whose answer does not say whether Meta accepted it.
    :raises ConfigurationError: a redirect.
    """
    status = response.status
    if 200 <= status < 300:
        body = json_object(response.body)
        if body is not None:
            return body
        if not idempotent:
            raise UnknownOutcomeError(
                f"{what} answered HTTP {status} without a JSON object: the request may have been accepted"
            )
        raise NoAnswerError(f"{what} answered HTTP {status} without a JSON object")
    if 300 <= status < 400:
        raise ConfigurationError(f"{what} was redirected (HTTP {status}); check the base URL ({base_url})")
    error = clean(parse_error_envelope(response.body, http_status=status))
    error.retry_after = retry_after(response)
    if not idempotent and error.code is None and status in UNKNOWN_GATEWAY_STATUSES:
        raise UnknownOutcomeError(
            f"{what} answered HTTP {status} without a Graph error envelope (a gateway timeout or "
            "failure): the request may have reached Meta"
        )
    raise error


def read_send_answer(
    response: RawResponse,
    what: str,
    *,
    base_url: str,
    clean: Callable[[GraphError], GraphError] = _unchanged,
) -> SendResult:
    """The :class:`~airflow_provider_wamm.graph.results.SendResult` of an answer to a send (see
    :func:`read_answer`); a 2xx without a usable message id is an unknown outcome."""
    body = read_answer(response, what, idempotent=False, base_url=base_url, clean=clean)
    try:
        return SendResult.from_response(body)
    except ValueError as exc:
        raise UnknownOutcomeError(
            f"marketing_messages answered HTTP 200 without a usable message id ({exc})"
        ) from None


def retry_after(response: RawResponse) -> float | None:
    """The answer's ``Retry-After`` in seconds (the number form only), or ``None``."""
    value = response.header("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
