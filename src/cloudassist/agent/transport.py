"""HTTPS and a websocket for the agent: h11 and wsproto (sans-I/O protocol libraries) on asyncio's TLS streams.

The agent makes a handful of requests a minute to one server and keeps one websocket open; httpx and
websockets did this before, with about 10 MB more resident memory between them. What they did that the
agent relied on is kept:

* `Http` sends the same request head httpx sent (header names, values and order: `Host`, then for a POST
  without a body `Content-Length: 0`, the client's default headers, the request's, and `Content-Length`
  last), keeps a connection open for reuse while it is idle for up to `KEEPALIVE` seconds (httpx's
  keep-alive expiry), decodes gzip and deflate bodies, and applies its timeouts to the connection (with
  the TLS handshake), to each write and to each read;
* `open_websocket` sends the handshake websockets sent (its headers, in its order, without extensions),
  checks the server's answer, answers pings, pings every `ping_interval` seconds and drops the connection
  when no pong comes within `ping_timeout` (or when a message exceeds `max_size`), and on close waits up
  to `close_timeout` for the server's close frame;
* TLS is the `ssl.SSLContext` it is given, so the server is verified exactly as before (certificate chain
  to the configured CA, host name or IP address). Environment proxies are not used: the agent talks to its
  server directly.

A request gets at most `REQUEST_DEADLINE` seconds in all and a reply at most `MAX_REPLY` bytes (decoded too),
so a server that trickles its answer or sends without end cannot hold or swell the agent.

Every failure to get an answer is a `TransportError`; an answer that is not a success is the caller's
business (a websocket upgrade refused is `WebSocketRefused`, with the status).

asyncio's TLS transport (CPython 3.11: `asyncio.sslproto.SSLProtocol`) reads the socket into a buffer it
allocates and zero-fills for each connection, so resident for as long as the connection is open: 256 KiB
by default, when a TLS record is at most 16 KiB (plus 256 bytes). `agent run` makes it `TLS_READ_BUFFER`
for the whole process (`limit_tls_read_buffer`): the kick websocket is always open, an HTTPS connection
often.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
import zlib
from asyncio import sslproto
from collections.abc import Sequence
from dataclasses import dataclass, field

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import Request as WebSocketRequest
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

TIMEOUT = 10.0  #: seconds for connecting (TCP and TLS), for each write and, by default, for each read
#: seconds for a whole request, however its reply trickles in (a server sending a byte every few seconds)
REQUEST_DEADLINE = 60.0
#: bytes of a reply (its body as sent, and decoded); a task list of 100 tasks and files is a few MB
MAX_REPLY = 32 * 1024 * 1024
KEEPALIVE = 5.0  #: seconds an idle connection is kept for the next request
READ_SIZE = 65536
TLS_READ_BUFFER = 32 * 1024  #: two TLS records of the largest size
Headers = Sequence[tuple[str, str]]


class TransportError(Exception):
    """No answer: the connection failed (refused, reset, TLS refused), an operation timed out, or what came back
    was not HTTP."""


class ConnectFailed(TransportError):
    """No connection at all (refused, unreachable, timed out, TLS refused): the request was never sent."""


class WebSocketRefused(Exception):
    """The server answered the websocket upgrade with another status than 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"websocket upgrade refused: HTTP {status}: {body[:200].decode(errors='replace')}")
        self.status = status


class ConnectionClosed(Exception):
    """The websocket is closed: `code` is the close code (1006 when the connection was lost without one)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason

    @property
    def ok(self) -> bool:
        """A normal closure (1000, or 1001 "going away"), as opposed to an error or a lost connection."""
        return self.code in (1000, 1001)


def limit_tls_read_buffer(size: int = TLS_READ_BUFFER) -> None:
    """Make every asyncio TLS connection opened from now on in this process read the socket through a buffer
    of `size` bytes (at least one TLS record: 16 KiB + 256 B) rather than 256 KiB."""
    if size < 16 * 1024 + 256:
        raise ValueError(f"a TLS read buffer of {size} bytes cannot hold a whole record")
    sslproto.SSLProtocol.max_size = size


def authority(server: str) -> tuple[str, int, str]:
    """`HOST:PORT` (or `[v6]:PORT`, or `HOST` for 443) → (host to connect to, port, Host header), the host
    lower-cased and the port left out of the header when it is 443, as httpx wrote it."""
    host, port = server, 443
    if server.startswith("["):
        end = server.find("]")
        if end < 0:
            raise ValueError(f"bad server address {server!r}")
        host, rest = server[1:end], server[end + 1 :]
        if rest:
            port = int(rest.removeprefix(":"))
    elif server.count(":") == 1:
        host, _, number = server.partition(":")
        port = int(number)
    host = host.lower()
    shown = f"[{host}]" if ":" in host else host
    return host, port, shown if port == 443 else f"{shown}:{port}"


async def _open(
    host: str, port: int, context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection (plain TCP when `context` is None: `cloudassist session` on a `ws://` URL)."""
    try:
        async with asyncio.timeout(TIMEOUT):
            if context is None:
                return await asyncio.open_connection(host, port, limit=READ_SIZE)
            return await asyncio.open_connection(host, port, ssl=context, server_hostname=host, limit=READ_SIZE)
    except TimeoutError:
        raise ConnectFailed(f"ConnectTimeout: no TLS connection to {host}:{port} within {TIMEOUT:g} s") from None
    except OSError as exc:  # refused, unreachable, reset, and ssl.SSLError (a certificate not trusted)
        raise ConnectFailed(f"ConnectError: {host}:{port}: {exc}") from exc


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    try:
        async with asyncio.timeout(TIMEOUT):
            await writer.drain()
    except TimeoutError:
        raise TransportError(f"WriteTimeout: could not send within {TIMEOUT:g} s") from None
    except OSError as exc:
        raise TransportError(f"WriteError: {exc}") from exc


async def _read(reader: asyncio.StreamReader, seconds: float) -> bytes:
    try:
        async with asyncio.timeout(seconds):
            return await reader.read(READ_SIZE)
    except TimeoutError:
        raise TransportError(f"ReadTimeout: no data within {seconds:g} s") from None
    except OSError as exc:
        raise TransportError(f"ReadError: {exc}") from exc


def _drop(writer: asyncio.StreamWriter) -> None:
    """Close the socket now, without TLS's close_notify: after an error, or once the peer is done with it."""
    writer.transport.abort()


async def _shut(writer: asyncio.StreamWriter) -> None:
    """Close the connection politely (TLS close_notify), for at most a second."""
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        _drop(writer)


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _inflate(body: bytes, wbits: int) -> bytes:
    """`body` decompressed, at most MAX_REPLY bytes of it (a small reply must not inflate into gigabytes)."""
    inflater = zlib.decompressobj(wbits)
    data = inflater.decompress(body, MAX_REPLY)
    if inflater.unconsumed_tail:
        raise TransportError(f"DecodingError: the reply decompresses to more than {MAX_REPLY} bytes")
    return data


def _decoded(encoding: bytes | None, body: bytes) -> bytes:
    """The body of a response with this Content-Encoding (h11 lower-cases header names, not values)."""
    coding = (encoding or b"identity").strip().lower()
    try:
        if coding == b"gzip":
            return _inflate(body, 16 + zlib.MAX_WBITS)
        if coding == b"deflate":
            try:
                return _inflate(body, zlib.MAX_WBITS)
            except zlib.error:
                return _inflate(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    except zlib.error as exc:
        raise TransportError(f"DecodingError: {coding.decode(errors='replace')} body: {exc}") from None
    return body


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0

    def reusable(self, now: float) -> bool:
        return (
            self.protocol.our_state is h11.IDLE
            and now - self.idle_since < KEEPALIVE
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    async def exchange(self, request: h11.Request, body: bytes, read_timeout: float) -> Response:
        protocol = self.protocol
        data = protocol.send(request) or b""
        if body:
            data += protocol.send(h11.Data(data=body)) or b""
        await _write(self.writer, data + (protocol.send(h11.EndOfMessage()) or b""))
        status, headers, chunks, size = 0, [], [], 0
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                data = await _read(self.reader, read_timeout)
                if not data and not status:
                    raise TransportError("RemoteProtocolError: the server closed the connection without a reply")
                protocol.receive_data(data)
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
                size += len(event.data)
                if size > MAX_REPLY:
                    raise TransportError(f"RemoteProtocolError: a reply of more than {MAX_REPLY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                break
        response = Response(status, headers, b"".join(chunks))
        response.body = _decoded(response.header(b"content-encoding"), response.body)
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
        return response


class Http:
    """HTTP/1.1 requests to one server over TLS, each connection used by one request at a time and kept open
    for the next while it is fresh. Close with `aclose()`."""

    def __init__(self, server: str, context: ssl.SSLContext, headers: Headers = ()) -> None:
        self.host, self.port, self.authority = authority(server)
        self.context = context
        self.headers = list(headers)  #: sent with every request, after Host (and a POST's Content-Length 0)
        self._idle: list[_Connection] = []
        self._expiry: asyncio.TimerHandle | None = None

    async def request(
        self, method: str, target: str, *, headers: Headers = (), body: bytes = b"", read_timeout: float = TIMEOUT
    ) -> Response:
        """Send one request and read the whole reply (waiting at most `read_timeout` for each read); TransportError
        if no reply came."""
        head = [("Host", self.authority)]
        if method == "POST" and not body:
            head.append(("Content-Length", "0"))
        head += [*self.headers, *headers]
        if body:
            head.append(("Content-Length", str(len(body))))
        connection = self._reuse() or _Connection(*await _open(self.host, self.port, self.context))
        try:
            request = h11.Request(method=method, target=target, headers=head)
            async with asyncio.timeout(REQUEST_DEADLINE):
                response = await connection.exchange(request, body, read_timeout)
        except TimeoutError:
            _drop(connection.writer)
            raise TransportError(f"ReadTimeout: no whole reply within {REQUEST_DEADLINE:g} s") from None
        except h11.ProtocolError as exc:
            _drop(connection.writer)
            raise TransportError(f"RemoteProtocolError: {exc}") from exc
        except BaseException:
            _drop(connection.writer)
            raise
        if connection.protocol.our_state is h11.IDLE:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
            if self._expiry is None:
                self._expiry = asyncio.get_running_loop().call_later(KEEPALIVE, self._expire)
        else:
            _drop(connection.writer)
        return response

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable(now):
                return connection
            _drop(connection.writer)
        return None

    def _expire(self) -> None:
        """Close the connections idle for KEEPALIVE seconds (each holds its TLS buffers), not at the next
        request only: the agent is idle for about a minute between heart-beats."""
        now = time.monotonic()
        expired = [c for c in self._idle if not c.reusable(now)]
        self._idle = [c for c in self._idle if c not in expired]
        for connection in expired:
            connection.writer.close()
        self._expiry = None
        if self._idle:
            oldest = min(c.idle_since for c in self._idle)
            self._expiry = asyncio.get_running_loop().call_later(oldest + KEEPALIVE - now, self._expire)

    async def aclose(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        while self._idle:
            await _shut(self._idle.pop().writer)


class WebSocket:
    """A client websocket after its handshake: `recv()`/`send()`, `async for` over its messages (ending at a
    normal close, raising ConnectionClosed at any other), and `async with` to close it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: WSConnection,
        *,
        ping_interval: float,
        ping_timeout: float,
        close_timeout: float,
        max_size: int,
    ) -> None:
        self._reader, self._writer, self._protocol = reader, writer, protocol
        self._ping_interval, self._ping_timeout = ping_interval, ping_timeout
        self._close_timeout, self._max_size = close_timeout, max_size
        self._messages: asyncio.Queue[str | bytes | ConnectionClosed] = asyncio.Queue()
        self._pong = asyncio.Event()
        self._closed: ConnectionClosed | None = None
        self._text: list[str] = []  #: the frames of a text message not finished yet
        self._binary: list[bytes] = []  #: the same of a binary one
        self._size = 0
        self._reading = asyncio.create_task(self._read_frames())
        self._pinging = asyncio.create_task(self._keepalive())

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except ConnectionClosed as closed:
            if closed.ok:
                raise StopAsyncIteration from None
            raise

    async def recv(self) -> str | bytes:
        """The next message; ConnectionClosed once the connection is closed."""
        item = await self._messages.get()
        if isinstance(item, ConnectionClosed):
            self._messages.put_nowait(item)  # for every later call too
            raise item
        return item

    async def send(self, message: str | bytes) -> None:
        """Send a text message (a binary one for bytes); ConnectionClosed if the connection is closed or closing."""
        if self._closed is not None or self._protocol.state is not ConnectionState.OPEN:
            raise self._closed or ConnectionClosed(1006, "closing")
        await self._send(BytesMessage(data=message) if isinstance(message, bytes) else TextMessage(data=message))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (if still open), wait up to close_timeout for the server to end the connection,
        and close it."""
        self._pinging.cancel()
        if self._protocol.state is ConnectionState.OPEN:
            with contextlib.suppress(Exception):
                await self._send(CloseConnection(code=code, reason=reason))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._close_timeout):
                await asyncio.shield(self._reading)
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading
        await _shut(self._writer)
        self._finish(ConnectionClosed(code, reason))

    async def _send(self, event: TextMessage | BytesMessage | Ping | Pong | CloseConnection) -> None:
        data = self._protocol.send(event)
        self._writer.write(data)
        await self._writer.drain()

    def _finish(self, closed: ConnectionClosed) -> None:
        if self._closed is None:
            self._closed = closed
            self._messages.put_nowait(closed)

    async def _fail(self, code: int, reason: str) -> None:
        """Close at once with `code` (a protocol error, a message too big, a keepalive timeout)."""
        if self._protocol.state is ConnectionState.OPEN:
            with contextlib.suppress(Exception):
                self._writer.write(self._protocol.send(CloseConnection(code=code, reason=reason)))
        self._writer.close()  # the close frame is flushed first
        self._finish(ConnectionClosed(code, reason))

    async def _read_frames(self) -> None:
        """Read until the server ends the connection (after the close handshake, or not)."""
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                if self._protocol.state is not ConnectionState.CLOSED:
                    self._protocol.receive_data(data or None)
                    for event in self._protocol.events():
                        await self._handle(event)
                if not data:
                    break
        except (OSError, LocalProtocolError, RemoteProtocolError) as exc:
            self._finish(ConnectionClosed(1006, f"{type(exc).__name__}: {exc}"))
        finally:
            self._finish(ConnectionClosed(1006, "connection lost"))
            self._writer.close()  # what is buffered (our close frame) is sent first

    async def _handle(self, event: Event) -> None:
        if isinstance(event, (TextMessage, BytesMessage)):
            if isinstance(event, TextMessage):
                self._text.append(event.data)
            else:
                self._binary.append(bytes(event.data))
            self._size += len(event.data)
            if self._size > self._max_size:
                await self._fail(1009, f"message over {self._max_size} bytes")
            elif event.message_finished:
                message = "".join(self._text) if isinstance(event, TextMessage) else b"".join(self._binary)
                self._text, self._binary, self._size = [], [], 0
                self._messages.put_nowait(message)
        elif isinstance(event, Ping):
            if self._protocol.state is ConnectionState.OPEN:  # not once our close frame is out
                await self._send(event.response())
        elif isinstance(event, Pong):
            self._pong.set()
        elif isinstance(event, CloseConnection):
            if self._protocol.state is ConnectionState.REMOTE_CLOSING:
                with contextlib.suppress(Exception):
                    await self._send(event.response())
            self._finish(ConnectionClosed(event.code, event.reason or ""))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            self._pong.clear()
            try:
                await self._send(Ping(payload=os.urandom(4)))
                async with asyncio.timeout(self._ping_timeout):
                    await self._pong.wait()
            except TimeoutError:
                await self._fail(1011, "keepalive ping timeout")
                return
            except (OSError, LocalProtocolError):
                return  # the connection is going away: the reader notices


async def open_websocket(
    server: str,
    target: str,
    context: ssl.SSLContext | None,
    headers: Headers,
    *,
    open_timeout: float,
    ping_interval: float,
    ping_timeout: float,
    close_timeout: float,
    max_size: int,
) -> WebSocket:
    """Connect, send the upgrade with `headers` (after Host, Upgrade, Connection, Sec-WebSocket-Key and
    -Version) and wait for the 101; TransportError if that fails, WebSocketRefused if the server says no.
    `context` None: plain TCP (a `ws://` URL), `server` then names port 80 when it has none."""
    host, port, shown = authority(server)
    if context is None and ":" not in server.rpartition("]")[2]:
        port, shown = 80, shown.removesuffix(":443")
    try:
        async with asyncio.timeout(open_timeout):
            reader, writer = await _open(host, port, context)
            try:
                protocol = WSConnection(ConnectionType.CLIENT)
                extra = [(k.encode(), v.encode()) for k, v in headers]
                await _write(writer, protocol.send(WebSocketRequest(host=shown, target=target, extra_headers=extra)))
                early = await _handshake(reader, protocol)
            except BaseException:
                _drop(writer)
                raise
    except TimeoutError:
        raise TransportError(f"ConnectTimeout: no websocket within {open_timeout:g} s") from None
    socket = WebSocket(reader, writer, protocol, ping_interval=ping_interval, ping_timeout=ping_timeout,
                       close_timeout=close_timeout, max_size=max_size)
    for event in early:
        await socket._handle(event)
    return socket


async def _handshake(reader: asyncio.StreamReader, protocol: WSConnection) -> list[Event]:
    """Read until the server accepts (the events that came with the 101 are returned) or refuses."""
    refused: RejectConnection | None = None
    body: list[bytes] = []
    while True:
        data = await _read(reader, TIMEOUT)
        try:
            protocol.receive_data(data or None)
            events = list(protocol.events())
        except RemoteProtocolError as exc:
            raise TransportError(f"InvalidHandshake: {exc}") from exc
        for index, event in enumerate(events):
            if isinstance(event, AcceptConnection):
                return events[index + 1 :]
            if isinstance(event, RejectConnection):
                refused = event
                if not event.has_body:
                    raise WebSocketRefused(event.status_code, b"")
            elif isinstance(event, RejectData) and refused is not None:
                body.append(bytes(event.data))
                if event.body_finished:
                    raise WebSocketRefused(refused.status_code, b"".join(body))
        if not data:
            if refused is not None:
                raise WebSocketRefused(refused.status_code, b"".join(body))
            raise TransportError("InvalidHandshake: the server closed the connection during the handshake")
