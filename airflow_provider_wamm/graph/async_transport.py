"""Keep-alive HTTP/1.1 connections on an asyncio event loop, for the sends of one origin.

:class:`AsyncSocketPool` is :class:`~airflow_provider_wamm.graph.connections.SocketPoolTransport` for
one event loop: the same origin, certificates and timeouts, the request
written at once (head and body together), no retry, no redirect. Many requests in flight then cost a
task each instead of a thread each: at 1,000 messages per second and answers of a second, a thousand
threads spend most of the sending process's CPU handing the interpreter lock around.

Its failures are those the transport table reads
(:data:`~airflow_provider_wamm.graph.transport.TRANSPORT_ERRORS`): a connection that cannot be opened
raises :class:`~airflow_provider_wamm.graph.errors.ConnectError` (or
:class:`~airflow_provider_wamm.graph.errors.TLSError`), nothing written; once the request is written,
``OSError`` (a timeout too), :class:`asyncio.IncompleteReadError` or :class:`http.client.HTTPException`
(a malformed answer).

:func:`new_event_loop` is the loop such a pool runs on: uvloop's where it is installed (it comes with
Airflow's API server on Linux and macOS), as it reads and writes sockets without handing the
interpreter lock around on every call; asyncio's own elsewhere. (The sandbox picks its loop the same
way, by itself: it shares nothing with the client it stands in for Meta to.)
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from airflow_provider_wamm.graph.connections import SocketPoolTransport
from airflow_provider_wamm.graph.errors import ConnectError, TLSError
from airflow_provider_wamm.graph.transport import RawResponse

__all__ = ["AsyncSocketPool", "new_event_loop"]

#: Longest answer head read (status line and headers).
HEAD_LIMIT = 64 * 1024

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's where it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class AsyncSocketPool:
    """POSTs of JSON over keep-alive connections of one event loop, to the origin of ``transport``
    with its certificates and timeouts.

    Use it from the loop it first runs on. At most ``maxsize`` idle connections are kept (by default
    as many as ``transport`` keeps).
    """

    def __init__(self, transport: SocketPoolTransport, *, maxsize: int | None = None) -> None:
        self._origin = transport
        self.maxsize = transport.maxsize if maxsize is None else maxsize
        self._idle: deque[_Connection] = deque()
        self._closed = False

    async def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> RawResponse:
        """POST once; no retry, no redirect. ``before_write`` is awaited with the connection open (a
        new one's handshake done), right before the write; what it raises propagates, nothing written."""
        origin = self._origin
        head = (
            f"POST {origin.base_path}{path} HTTP/1.1\r\nHost: {origin.host_header}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        reader, writer = await self._take()
        if before_write is not None:
            try:
                await before_write()
            except BaseException:
                self._give_back((reader, writer))
                raise
            if reader.at_eof() or writer.is_closing():  # closed by the server during a long wait
                writer.close()
                reader, writer = await self._connect()
        try:
            writer.write(head + body)
            async with asyncio.timeout(origin.read_timeout):
                status, fields, data = await _read_answer(reader)
        except BaseException:
            writer.close()
            raise
        if fields.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._give_back((reader, writer))
        return RawResponse(status, data, fields)

    async def _take(self) -> _Connection:
        """An idle connection the server has not closed, or a new one."""
        idle = self._idle
        while idle:
            reader, writer = idle.pop()
            if not (reader.at_eof() or writer.is_closing()):
                return reader, writer
            writer.close()
        return await self._connect()

    async def _connect(self) -> _Connection:
        """A new connection, its TLS handshake done."""
        origin = self._origin
        context = origin.ssl_context
        try:
            async with asyncio.timeout(origin.connect_timeout):
                return await asyncio.open_connection(
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                    limit=HEAD_LIMIT,
                )
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSError(f"{type(exc).__name__}: {exc}") from exc
        except (OSError, ValueError) as exc:  # refused, unreachable, unknown host, timed out
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc

    def _give_back(self, connection: _Connection) -> None:
        if self._closed or len(self._idle) >= self.maxsize:
            connection[1].close()
        else:
            self._idle.append(connection)

    def close(self) -> None:
        """Close the idle connections; connections in use are closed when given back."""
        self._closed = True
        while self._idle:
            self._idle.pop()[1].close()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (names in lower case) and body of one answer: ``Content-Length``, chunked, or
    up to the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise http.client.LineTooLong("answer head") from exc
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise http.client.BadStatusLine(lines[0])
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise http.client.HTTPException(f"malformed header line {line!r}")
            fields[name.strip().lower()] = value.strip()
    status = int(code)
    if status in (204, 304) or 100 <= status < 200:
        return status, fields, b""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, fields, await _read_chunked(reader)
    length = fields.get("content-length")
    if length is None:
        fields["connection"] = "close"  # the body ends with the connection
        return status, fields, await reader.read()
    if not length.isdigit():
        raise http.client.HTTPException(f"malformed Content-Length {length!r}")
    return status, fields, await reader.readexactly(int(length))


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body, its trailer skipped."""
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise http.client.HTTPException(f"malformed chunk size {size_line[:40]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
