"""The transports of :class:`~airflow_provider_wamm.graph.client.GraphClient`'s sends.

* :class:`SocketPoolTransport` (the default): keep-alive sockets of the standard library, shared by
  the sender threads, verified as ``requests`` verifies them; a request is written in one
  ``sendall`` and its answer read by :class:`http.client.HTTPResponse`;
* :class:`SessionTransport`: a ``requests.Session``, for a session the caller gave and for base URLs
  an environment proxy applies to (``requests`` knows proxies; the socket pool does not).

Both implement :class:`~airflow_provider_wamm.graph.transport.Transport`; :func:`default_transport`
picks one for a base URL. Why a pool of its own rather than ``urllib3``'s ``HTTPConnectionPool``:
a campaign at 1,000 messages per second costs its sending process 0.39-0.41 ms of CPU per message
with it and 0.52-0.60 ms with ``urllib3``'s pool in the same runs (``requests``: 1.2 ms; a bare
``urllib3`` loop without validation, ledger or pacing: 0.37 ms), in a process whose interpreter
lock bounds what it can send (``benchmarks/``, figure B2).
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import requests
import requests.utils

from airflow_provider_wamm.graph.errors import ConnectError, TLSError
from airflow_provider_wamm.graph.transport import RawResponse, Transport

__all__ = [
    "SessionTransport",
    "SocketPoolTransport",
    "ca_bundle",
    "default_transport",
]


#: A connection held this long while ``before_write`` waited is checked again: the server may have
#: closed it meanwhile (keep-alive timeouts are seconds).
RECHECK_AFTER_S = 0.5


def ca_bundle() -> str:
    """The CA certificates ``requests`` would trust: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else
    its own bundle (a file or a directory)."""
    env = os.environ
    return env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or requests.utils.DEFAULT_CA_BUNDLE_PATH


def _is_dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket was closed by the server (readable means EOF or junk)."""
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class SocketPoolTransport:
    """Keep-alive HTTP/1.1 connections to one origin for POSTs of JSON, shared by sender threads.

    The request is written in one ``sendall`` (head and body together: one packet, one syscall) and
    the answer is read by the standard library's parser (:class:`http.client.HTTPResponse`: status
    line, headers, ``Content-Length`` or chunked bodies, ``Connection: close``). Each request takes an
    idle connection, dropping those the server closed meanwhile, or opens a new one, and gives it back
    afterwards unless the answer asked to close it. At most ``maxsize`` idle connections are kept.
    A connection that cannot be opened raises :class:`~airflow_provider_wamm.graph.errors.ConnectError`
    (:class:`~airflow_provider_wamm.graph.errors.TLSError` for the TLS handshake): nothing was written.
    """

    def __init__(
        self,
        base_url: str,
        *,
        maxsize: int,
        connect_timeout: float,
        read_timeout: float,
        ca_certs: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self.base_path = parts.path.rstrip("/")
        self.host = parts.hostname or ""
        https = parts.scheme == "https"
        self.port = parts.port or (443 if https else 80)
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = name if self.port == (443 if https else 80) else f"{name}:{self.port}"
        self.maxsize = maxsize
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ssl_context: ssl.SSLContext | None = None
        if https:
            bundle = ca_certs or ca_bundle()
            if os.path.isdir(bundle):
                self.ssl_context = ssl.create_default_context(capath=bundle)
            else:
                self.ssl_context = ssl.create_default_context(cafile=bundle)
        self._idle: deque[socket.socket] = deque()
        self._closed = False

    def _connect(self) -> socket.socket:
        """A new connection, its TLS handshake done."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except (OSError, ValueError) as exc:  # refused, unreachable, unknown host, connect timeout
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, ssl.SSLError | ssl.CertificateError):
                raise TLSError(f"{type(exc).__name__}: {exc}") from exc
            if isinstance(exc, OSError | ValueError):  # reset or timed out during the handshake
                raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
            raise
        return sock

    def _take(self) -> socket.socket:
        """An idle connection the server has not closed, or a new one."""
        while True:
            try:
                sock = self._idle.pop()
            except IndexError:
                return self._connect()
            if not _is_dropped(sock):
                return sock
            sock.close()

    def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        before_write: Callable[[], None] | None = None,
    ) -> RawResponse:
        """POST once; no retry, no redirect. ``before_write`` runs once the connection is open (a
        new one's handshake done), right before the one ``sendall``. A failure after the request
        began to be written may have left it on the wire: it propagates as the socket or parser
        raised it."""
        head = (
            f"POST {self.base_path}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        sock = self._take()
        if before_write is not None:
            sock = self._after(sock, before_write)
        try:
            sock.sendall(head + body)
            response = http.client.HTTPResponse(sock, method="POST")
            response.begin()
            data = response.read()
        except BaseException:
            sock.close()
            raise
        if response.will_close:
            sock.close()
        else:
            self._give_back(sock)
        return RawResponse(response.status, data, dict(response.getheaders()))

    def _after(self, sock: socket.socket, before_write: Callable[[], None]) -> socket.socket:
        """Run ``before_write`` holding ``sock``; the socket again, or a new one if the server closed
        it during a long wait. If ``before_write`` raises, the unused socket goes back to the pool."""
        began = time.monotonic()
        try:
            before_write()
        except BaseException:
            self._give_back(sock)
            raise
        if time.monotonic() - began >= RECHECK_AFTER_S and _is_dropped(sock):
            sock.close()
            return self._connect()
        return sock

    def _give_back(self, sock: socket.socket) -> None:
        if self._closed or len(self._idle) >= self.maxsize:
            sock.close()
        else:
            self._idle.append(sock)

    def close(self) -> None:
        """Close the idle connections; connections in use are closed when given back."""
        self._closed = True
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return


class SessionTransport:
    """POSTs through a ``requests.Session`` (its proxies, CA bundle and connection pool).

    :param owned: close the session in :meth:`close` (leave it open when the caller gave it).
    """

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        owned: bool = False,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.owned = owned

    def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        before_write: Callable[[], None] | None = None,
    ) -> RawResponse:
        """POST once; no redirect. ``before_write`` runs first (the session opens its connection
        itself, afterwards)."""
        if before_write is not None:
            before_write()
        response = self.session.post(
            self.base_url + path, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
        )
        return RawResponse(response.status_code, response.content, response.headers)

    def close(self) -> None:
        """Close the session if it is this transport's."""
        if self.owned:
            self.session.close()


def default_transport(
    base_url: str,
    *,
    session: requests.Session,
    maxsize: int,
    connect_timeout: float,
    read_timeout: float,
    pooled: bool = True,
) -> Transport:
    """The transport for sends to ``base_url``: :class:`SocketPoolTransport`, or :class:`SessionTransport`
    over ``session`` when ``pooled`` is false or an environment proxy applies to the URL."""
    if not pooled or requests.utils.get_environ_proxies(base_url):
        return SessionTransport(session, base_url, connect_timeout=connect_timeout, read_timeout=read_timeout)
    return SocketPoolTransport(
        base_url, maxsize=maxsize, connect_timeout=connect_timeout, read_timeout=read_timeout
    )
