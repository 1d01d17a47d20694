"""The seam between :class:`~airflow_provider_wamm.graph.client.GraphClient` and the wire.

A send is one ``POST`` of a JSON body. :class:`Transport` is all the client needs for it: ``post``
returns the status, body and headers of the answer as a :class:`RawResponse`, or raises what its HTTP
library raises. The client reads the answer with :mod:`airflow_provider_wamm.graph.answers` and maps
the failures with :data:`TRANSPORT_ERRORS` (one table for every transport, in the manner of
``httpx``'s ``map_httpcore_exceptions``), which tells a request that certainly never left (safe to
send again) from one that may have reached Meta without an answer coming back (an unknown outcome:
the Graph API has no idempotency key). Tests pass a fake transport to ``GraphClient(transport=...)``.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import inspect
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import requests
import urllib3.exceptions

from airflow_provider_wamm.graph.errors import (
    ConnectError,
    GraphTransportError,
    InvalidRequestError,
    NoAnswerError,
    TLSError,
    UnknownOutcomeError,
)
from airflow_provider_wamm.graph.redaction import redact

__all__ = [
    "TRANSPORT_ERRORS",
    "RawResponse",
    "Transport",
    "map_transport_errors",
    "post_paced",
    "transport_error",
]


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An HTTP answer as it came back: nothing decoded, nothing judged."""

    status: int
    """The HTTP status code."""
    body: bytes
    """The body, decompressed if it was sent compressed."""
    headers: Mapping[str, str]
    """The headers, as any mapping (:meth:`header` finds a name whatever its case)."""

    def header(self, name: str) -> str | None:
        """A header's value, whatever the case of its name, or ``None``."""
        value = self.headers.get(name)
        if value is None:
            lower = name.lower()
            value = next((v for k, v in self.headers.items() if k.lower() == lower), None)
        return value


class Transport(Protocol):
    """Posts JSON bodies to one Graph API origin over connections it keeps alive between calls.

    ``post`` is called from many sender threads at once. It raises its HTTP library's exceptions, read
    with :data:`TRANSPORT_ERRORS`, or the project's own: a transport that knows nothing of the request
    was written (the connection could not be opened) raises
    :class:`~airflow_provider_wamm.graph.errors.ConnectError` or
    :class:`~airflow_provider_wamm.graph.errors.TLSError`. Any failure the table does not read as one
    of the connection is taken to mean the request may have left.
    """

    def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        before_write: Callable[[], None] | None = None,
    ) -> RawResponse:
        """Send ``body`` to ``path`` (below the base URL, starting with ``/``) with exactly ``headers``
        (``Content-Length`` and ``Host`` are the transport's); never follow a redirect.

        ``before_write`` is called once the connection is ready, right before the request is
        written (a pacer's turn: what it counts is then what goes on the wire, and opening a
        connection never delays a request that was already counted); whatever it raises
        propagates, and nothing is written."""
        ...

    def close(self) -> None:
        """Close the idle connections; connections in use are closed when their request ends."""
        ...


#: What each transport failure means, by exception class: the most specific class of the exception
#: (its first class in method resolution order) found here decides. ``requests``' catch-all
#: ``ConnectionError`` is judged by the ``urllib3`` failure it wraps. Anything not found here is not
#: a transport failure and propagates as it is.
TRANSPORT_ERRORS: dict[type[BaseException], type[GraphTransportError]] = {
    # The project's own, raised by a transport that knows what happened (the socket pool's connect).
    ConnectError: ConnectError,
    TLSError: TLSError,
    InvalidRequestError: InvalidRequestError,
    NoAnswerError: NoAnswerError,  # UnknownOutcomeError too: it stays one only for a send
    # The standard library: the connection broke, or the answer was cut or malformed.
    OSError: NoAnswerError,
    ConnectionRefusedError: ConnectError,
    socket.gaierror: ConnectError,  # the host name did not resolve
    http.client.HTTPException: NoAnswerError,
    EOFError: NoAnswerError,  # asyncio's IncompleteReadError: the answer was cut
    # urllib3, as requests wraps it (its SSLError too: it may come after the request was written).
    urllib3.exceptions.HTTPError: NoAnswerError,
    urllib3.exceptions.ConnectTimeoutError: ConnectError,  # NewConnectionError, NameResolutionError too
    urllib3.exceptions.ProxyError: ConnectError,
    # requests: the session (reads, and sends through an environment proxy or a session of the caller).
    requests.exceptions.RequestException: InvalidRequestError,  # invalid URL, body not JSON, ...
    requests.exceptions.ConnectionError: NoAnswerError,
    requests.exceptions.Timeout: NoAnswerError,  # a read timeout
    requests.exceptions.ChunkedEncodingError: NoAnswerError,
    requests.exceptions.ContentDecodingError: NoAnswerError,
    requests.exceptions.ConnectTimeout: ConnectError,
    requests.exceptions.ProxyError: ConnectError,
    requests.exceptions.SSLError: TLSError,  # certificate and TLS setup problems do not fix themselves
}

_MESSAGES: dict[type[GraphTransportError], str] = {
    ConnectError: "{what} could not connect ({detail})",
    TLSError: "{what}: TLS failure ({detail})",
    InvalidRequestError: "{what} failed ({detail})",
    NoAnswerError: "{what} failed after sending ({detail})",
    UnknownOutcomeError: (
        "{what}: no usable answer after the request was sent ({detail}); Meta may or may not have "
        "accepted it, so it is not retried"
    ),
}


def _kind(exc: BaseException) -> type[GraphTransportError] | None:
    """The project error class :data:`TRANSPORT_ERRORS` gives ``exc``, or ``None``."""
    if type(exc) is requests.exceptions.ConnectionError and exc.args:
        reason = exc.args[0]
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        if isinstance(reason, BaseException) and (kind := _kind(reason)) is not None:
            return kind
    for cls in type(exc).__mro__:
        kind = TRANSPORT_ERRORS.get(cls)
        if kind is not None:
            return kind
    return None


def transport_error(
    exc: BaseException, what: str, *, idempotent: bool, scrub: Callable[[str], str] = redact
) -> GraphTransportError | None:
    """The project error for a transport failure of the request ``what`` (``None``: not one).

    A request that left without an answer is a :class:`~airflow_provider_wamm.graph.errors.NoAnswerError`
    when sending it again is harmless (``idempotent``), else an
    :class:`~airflow_provider_wamm.graph.errors.UnknownOutcomeError`. ``scrub`` cleans the failure's
    text of secrets before it goes into the message.
    """
    kind = _kind(exc)
    if kind is None:
        return None
    if kind is NoAnswerError and not idempotent:
        kind = UnknownOutcomeError
    detail = scrub(str(exc) if isinstance(exc, GraphTransportError) else f"{type(exc).__name__}: {exc}")
    return kind(_MESSAGES[kind].format(what=what, detail=detail))


@contextlib.contextmanager
def map_transport_errors(
    what: str, *, idempotent: bool, scrub: Callable[[str], str] = redact, keep_cause: bool = True
) -> Iterator[None]:
    """Raise the project error for any transport failure inside the block (see :func:`transport_error`).

    :param keep_cause: chain the original exception; pass ``False`` when its text may hold a secret
        (a URL with a token in its query string).
    """
    try:
        yield
    except Exception as exc:
        error = transport_error(exc, what, idempotent=idempotent, scrub=scrub)
        if error is None:
            raise
        raise error from (exc if keep_cause else None)


@functools.cache
def _takes_before_write(cls: type) -> bool:
    post = getattr(cls, "post", None)
    try:
        return post is not None and "before_write" in inspect.signature(post).parameters
    except (TypeError, ValueError):
        return False


def post_paced(
    transport: Transport,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    before_write: Callable[[], None] | None,
) -> RawResponse:
    """``transport.post``, with ``before_write`` called right before the write when the transport
    takes it, else just before ``post`` (a transport of a test that knows nothing of it)."""
    if before_write is None:
        return transport.post(path, body, headers)
    if _takes_before_write(type(transport)):
        return transport.post(path, body, headers, before_write=before_write)
    before_write()
    return transport.post(path, body, headers)
