"""The agent's HTTPS and websocket (agent/transport.py) against small TLS servers written here.

httpx and websockets carried the agent's traffic before; where the agent relied on what they did, they are
the reference: the same request heads and websocket handshake on the wire, a server verified against the
pinned CA (and its name), connections kept for reuse, compressed and chunked bodies read, timeouts, and on
the websocket pings answered and sent, oversized messages refused and closes told apart.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import time
import zlib
from asyncio import sslproto
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.asyncio.client
from click.testing import CliRunner
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from cloudassist import tls
from cloudassist.agent import cli as agent_cli
from cloudassist.agent import client as client_module
from cloudassist.agent import identity as ident
from cloudassist.agent import serve, transport
from cloudassist.agent.client import ServerClient, register, ssl_context, user_agent
from cloudassist.agent.transport import ConnectionClosed, Http, TransportError, WebSocketRefused, open_websocket
from cloudassist.testing import free_port

SIGNED = {"X-Acs-Instance-Id": "mi-test", "X-Acs-Timestamp": "1764000000000",
          "X-Acs-Request-Id": "0b7c1e84-6c55-4b8e-9d1c-3f3f0e8a6a11", "X-Acs-Signature": "c2lnbmF0dXJl"}
#: Query values that quoting tells apart: spaces, reserved and non-ASCII characters, an empty value.
TRICKY = {"timeZone": "Asia/Shanghai", "errDesc": "exit 1: a+b & c=d?#é\t\n%", "empty": "", "offset": "-18000",
          "q": '[x]{y}|\\^`"<>~*!()@,;'}
OK = b'{"code": 200, "instanceId": "mi-test"}'


@dataclass
class Certs:
    ca: Path  #: the CA the client trusts
    server: ssl.SSLContext  #: a server context whose certificate that CA signed, for 127.0.0.1
    foreign: ssl.SSLContext  #: a certificate for 127.0.0.1 from another CA
    misnamed: ssl.SSLContext  #: a certificate from the trusted CA, for another name only


def _server_context(made: tls.ServerCertificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(made.cert, made.key)
    return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    trusted, other = tmp_path_factory.mktemp("trusted"), tmp_path_factory.mktemp("other")
    good = tls.ensure(trusted, ["127.0.0.1"])
    assert good.ca is not None
    foreign = _server_context(tls.ensure(other, ["127.0.0.1"]))
    misnamed_dir = tmp_path_factory.mktemp("misnamed")
    for name in ("ca.pem", "ca-key.pem"):  # the same CA, another server certificate
        (misnamed_dir / name).write_bytes((trusted / name).read_bytes())
    misnamed = _server_context(tls.ensure(misnamed_dir, ["agent.example.invalid"]))
    return Certs(good.ca, _server_context(good), foreign, misnamed)


Reply = Callable[[bytes], Awaitable[bytes | None]]


@dataclass
class Recorder:
    """A TLS server on 127.0.0.1 that records each request (head and body) and answers with `reply(raw)`
    (None: close the connection without answering); counts connections."""

    context: ssl.SSLContext
    reply: Reply
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    ended: int = 0  #: connections over (the client closed it, or the reply said so)
    hang_up: bool = False  #: close each connection after its reply, without saying so
    server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Recorder:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                raw = head + await reader.readexactly(length)
                self.requests.append(raw)
                answer = await self.reply(raw)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower() or self.hang_up:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.ended += 1
            writer.close()


def response(body: bytes = OK, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def ok(_raw: bytes) -> bytes:
    return response()


@pytest.fixture(scope="module")
def key() -> Any:
    return ident.generate()


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed signing headers, so that two clients' requests can be compared byte for byte."""
    monkeypatch.setattr(client_module, "sign_headers", lambda _identity: dict(SIGNED))


async def test_signed_requests_are_byte_for_byte_those_httpx_sent(certs: Certs, key: Any, signed: None) -> None:
    """GET with a query, POST with a query and no body, POST with a body, POST with an empty body: the request
    line, every header (names, values, order) and the body are what ServerClient's httpx client sent."""
    async with Recorder(certs.server, ok) as server:
        identity = ident.Identity("mi-test", "a" * 32, "cn-hangzhou", server.address, str(certs.ca), "", key)
        ours = ServerClient(identity)
        calls: list[tuple[str, str, dict[str, str] | None, bytes | None, str]] = [
            ("GET", "heart-beat", TRICKY, None, "application/x-www-form-urlencoded"),
            ("POST", "v1/task/list", {"reason": "kickoff", **TRICKY}, None, "application/json; charset=utf-8"),
            ("POST", "v1/task/finish", {"taskId": "t-1", "exitCode": "0"}, b"hi\n\xe4", "text/plain; charset=utf-8"),
            ("POST", "gshell", None, b"", "application/json; charset=utf-8"),
        ]
        for method, path, params, body, content_type in calls:
            await ours._request(method, path, params=params, body=body, content_type=content_type)
        await ours.aclose()
        mine = list(server.requests)
        server.requests.clear()
        async with httpx.AsyncClient(base_url=f"https://{server.address}/luban/api/",
                                     verify=ssl_context(str(certs.ca)), http2=False, timeout=10,
                                     headers={"User-Agent": user_agent(), "Accept-Encoding": "gzip"}) as old:
            for method, path, params, body, content_type in calls:
                await old.request(method, path, params=params, content=body,
                                  headers={**SIGNED, "Content-Type": content_type})
        assert mine == server.requests
        assert mine[0].startswith(b"GET /luban/api/heart-beat?timeZone=Asia%2FShanghai&errDesc=exit+1%3A+a%2Bb+")


async def test_registration_is_byte_for_byte_what_httpx_sent(certs: Certs) -> None:
    """The unsigned `instance/register` POST carries the same head and JSON body as httpx sent."""
    body = {"activationCode": "a-1", "hostname": "höst", "tag": [{"key": "k", "value": "v"}]}
    async with Recorder(certs.server, ok) as server:
        assert await register(server.address, str(certs.ca), body) == "mi-test"
        async with httpx.AsyncClient(verify=ssl_context(str(certs.ca)), http2=False, timeout=10) as old:
            await old.post(f"https://{server.address}/luban/api/instance/register",
                           content=client_module.json.dumps(body).encode(),
                           headers={"User-Agent": user_agent(), "Content-Type": "application/json; charset=utf-8"})
        assert server.requests[0] == server.requests[1]


async def test_the_websocket_handshake_is_the_one_websockets_sent(certs: Certs, key: Any, signed: None) -> None:
    """The upgrade request has the headers websockets sent (names, values, order; no extension offered), but
    the random Sec-WebSocket-Key."""

    async def refuse(_raw: bytes) -> bytes:
        return response(b"", "Connection: close", status="403 Forbidden")

    async with Recorder(certs.server, refuse) as server:
        ours = ServerClient(ident.Identity("mi-test", "a" * 32, "r", server.address, str(certs.ca), "", key))
        with pytest.raises(WebSocketRefused):
            await ours.notify_socket()
        with pytest.raises(websockets.exceptions.InvalidStatus):
            await websockets.asyncio.client.connect(
                f"wss://{server.address}/luban/notify_server", ssl=ssl_context(str(certs.ca)),
                additional_headers=SIGNED, user_agent_header=user_agent(), open_timeout=10, compression=None)

    def without_key(raw: bytes) -> list[bytes]:
        return [line for line in raw.split(b"\r\n") if not line.startswith(b"Sec-WebSocket-Key:")]

    assert without_key(server.requests[0]) == without_key(server.requests[1])
    assert b"Sec-WebSocket-Extensions" not in server.requests[0]


async def test_the_server_must_present_a_certificate_of_the_pinned_ca_for_its_address(certs: Certs, key: Any) -> None:
    """A certificate from another CA, or from the right CA for another name, is refused before anything is
    sent (HTTP and websocket); the CA's own certificate for 127.0.0.1 is accepted."""
    for context, expected in ((certs.foreign, "CERTIFICATE_VERIFY_FAILED"), (certs.misnamed, "mismatch")):
        async with Recorder(context, ok) as server:
            http = Http(server.address, ssl_context(str(certs.ca)))
            with pytest.raises(TransportError, match=expected):
                await http.request("GET", "/x")
            ours = ServerClient(ident.Identity("mi-test", "a" * 32, "r", server.address, str(certs.ca), "", key))
            with pytest.raises(TransportError, match=expected):
                await ours.notify_socket()
            assert server.requests == []
    async with Recorder(certs.server, ok) as server:
        http = Http(server.address, ssl_context(str(certs.ca)))
        assert (await http.request("GET", "/x")).status == 200
        await http.aclose()


async def test_idle_connections_are_reused_until_they_expire_or_close(certs: Certs,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests one after another share a connection; after KEEPALIVE idle seconds (when the client closes it
    by itself), after `Connection: close` and after the server hung up an idle connection, the next request
    opens a new one and succeeds."""
    monkeypatch.setattr(transport, "KEEPALIVE", 0.3)
    closing = False

    async def reply(_raw: bytes) -> bytes:
        return response(OK, "Connection: close") if closing else response()

    async with Recorder(certs.server, reply) as server:
        http = Http(server.address, ssl_context(str(certs.ca)))
        for _ in range(3):
            assert (await http.request("GET", "/a")).status == 200
        assert server.connections == 1
        await asyncio.sleep(0.5)
        assert server.ended == 1  # closed while idle, not only when the next request comes
        await http.request("GET", "/b")
        assert server.connections == 2
        closing = True
        await http.request("GET", "/c")
        closing = False
        server.hang_up = True
        await http.request("GET", "/d")
        await asyncio.sleep(0.1)
        server.hang_up = False
        await http.request("GET", "/e")
        assert server.connections == 4
        await http.aclose()
        assert len(server.requests) == 7


async def test_compressed_and_chunked_bodies_are_decoded(certs: Certs) -> None:
    """gzip, zlib deflate, raw deflate and chunked transfer encoding give back the body the server meant."""
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = deflater.compress(OK) + deflater.flush()
    replies = [response(gzip.compress(OK), "Content-Encoding: gzip"),
               response(zlib.compress(OK), "Content-Encoding: deflate"),
               response(raw_deflate, "Content-Encoding: deflate"),
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n" + OK[:5] + b"\r\n" +
               f"{len(OK) - 5:x}".encode() + b"\r\n" + OK[5:] + b"\r\n0\r\n\r\n"]

    async def reply(_raw: bytes) -> bytes:
        return replies.pop(0)

    async with Recorder(certs.server, reply) as server:
        http = Http(server.address, ssl_context(str(certs.ca)))
        for _ in range(4):
            assert (await http.request("GET", "/x")).body == OK
        await http.aclose()


async def test_no_answer_is_a_transport_error(certs: Certs) -> None:
    """A server that does not answer within the read timeout, one that closes without answering, one that
    answers something that is not HTTP and a port nobody listens on: TransportError each time."""

    async def slow(_raw: bytes) -> bytes:
        await asyncio.sleep(2)
        return response()

    async def silent(_raw: bytes) -> None:
        return None

    async def garbage(_raw: bytes) -> bytes:
        return b"SSH-2.0-OpenSSH_9.6\r\n\r\n"

    for reply, expected in ((slow, "ReadTimeout"), (silent, "closed the connection"), (garbage, "Protocol")):
        async with Recorder(certs.server, reply) as server:
            http = Http(server.address, ssl_context(str(certs.ca)))
            began = time.monotonic()
            with pytest.raises(TransportError, match=expected):
                await http.request("GET", "/x", read_timeout=0.3)
            assert time.monotonic() - began < 1.5
    async with Recorder(certs.server, ok) as server:
        address = server.address
    with pytest.raises(TransportError, match="ConnectError"):
        await Http(address, ssl_context(str(certs.ca))).request("GET", "/x")


class Peer:
    """The server's end of a websocket (wsproto), for the tests below."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = WSConnection(ConnectionType.SERVER)
        self.pending: list[Any] = []

    async def event(self) -> Any:
        while not self.pending:
            data = await self.reader.read(65536)
            self.protocol.receive_data(data or None)
            self.pending.extend(self.protocol.events())
        return self.pending.pop(0)

    async def send(self, event: Any) -> None:
        self.writer.write(self.protocol.send(event))
        await self.writer.drain()


Script = Callable[[Peer], Awaitable[None]]


@pytest.fixture
async def websocket_server(certs: Certs) -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """Start a websocket server that accepts the upgrade and runs a script with its Peer; its address."""
    servers: list[asyncio.Server] = []
    scripts: list[asyncio.Task[None]] = []

    async def start(script: Script) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = Peer(reader, writer)
            assert isinstance(await peer.event(), Request)
            await peer.send(AcceptConnection())
            task = asyncio.current_task()
            assert task is not None
            scripts.append(task)
            try:
                await script(peer)
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=certs.server)
        servers.append(server)
        return f"127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
    for task in scripts:
        task.cancel()


async def _connect(address: str, certs: Certs, **options: float) -> transport.WebSocket:
    settings: dict[str, float] = {"open_timeout": 10, "ping_interval": 60, "ping_timeout": 30, "close_timeout": 5,
                                  "max_size": 64 * 1024, **options}
    return await open_websocket(address, "/luban/notify_server", ssl_context(str(certs.ca)), [("User-Agent", "t")],
                                open_timeout=settings["open_timeout"], ping_interval=settings["ping_interval"],
                                ping_timeout=settings["ping_timeout"], close_timeout=settings["close_timeout"],
                                max_size=int(settings["max_size"]))


async def test_websocket_messages_fragments_pings_and_a_normal_close(
        websocket_server: Callable[[Script], Awaitable[str]], certs: Certs) -> None:
    """Text messages both ways, one sent in three fragments arrives whole, a binary one as bytes, a ping is
    answered with its payload; the server's close (1000) ends `async for` without an error and is answered."""
    seen: list[Any] = []

    async def script(peer: Peer) -> None:
        await peer.send(TextMessage(data="kick_vm"))
        seen.append(await peer.event())
        for part, last in (("kick_vm ", False), ("task run ", False), ("t-1", True)):
            await peer.send(TextMessage(data=part, message_finished=last))
        await peer.send(BytesMessage(data=b"\x00\x01"))
        await peer.send(Ping(payload=b"ping"))
        seen.append(await peer.event())
        await peer.send(CloseConnection(code=1000))
        seen.append(await peer.event())

    ws = await _connect(await websocket_server(script), certs)
    async with ws:
        received = []
        async for message in ws:
            received.append(message)
            if message == "kick_vm":
                await ws.send("accept:kick_vm")
    assert received == ["kick_vm", "kick_vm task run t-1", b"\x00\x01"]
    assert isinstance(seen[0], TextMessage)
    assert seen[0].data == "accept:kick_vm"
    assert isinstance(seen[1], Pong)
    assert seen[1].payload == b"ping"
    assert isinstance(seen[2], CloseConnection)
    assert seen[2].code == 1000


async def test_a_lost_connection_or_an_error_close_raises(
        websocket_server: Callable[[Script], Awaitable[str]], certs: Certs) -> None:
    """The server dropping TCP without a close frame ends the iteration with ConnectionClosed 1006; a close
    with 1011 raises ConnectionClosed 1011; sending afterwards raises too."""

    async def drop(peer: Peer) -> None:
        peer.writer.transport.abort()

    async def error(peer: Peer) -> None:
        await peer.send(CloseConnection(code=1011, reason="boom"))
        await peer.event()

    for script, code in ((drop, 1006), (error, 1011)):
        ws = await _connect(await websocket_server(script), certs)
        with pytest.raises(ConnectionClosed) as closed:
            async for _ in ws:
                pass
        assert closed.value.code == code
        with pytest.raises(ConnectionClosed):
            await ws.send("late")
        await ws.close()


async def test_keepalive_pings_and_a_silent_server_is_dropped(
        websocket_server: Callable[[Script], Awaitable[str]], certs: Certs) -> None:
    """The client pings every ping_interval; a server that answers keeps the connection, one that stops
    answering is dropped after ping_timeout with close code 1011."""
    pings: list[float] = []

    async def script(peer: Peer) -> None:
        while True:
            event = await peer.event()
            if isinstance(event, Ping):
                pings.append(time.monotonic())
                if len(pings) <= 2:
                    await peer.send(event.response())
            elif isinstance(event, CloseConnection):
                return

    began = time.monotonic()
    ws = await _connect(await websocket_server(script), certs, ping_interval=0.2, ping_timeout=0.3)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.code == 1011
    assert len(pings) == 3
    assert 0.8 <= time.monotonic() - began < 3


async def test_a_message_over_max_size_closes_with_1009(
        websocket_server: Callable[[Script], Awaitable[str]], certs: Certs) -> None:
    """A text message larger than max_size (even in small fragments) is not delivered: the connection is
    closed with 1009."""
    closes: list[Any] = []

    async def script(peer: Peer) -> None:
        for _ in range(5):
            await peer.send(TextMessage(data="x" * 300, message_finished=False))
        closes.append(await peer.event())

    ws = await _connect(await websocket_server(script), certs, max_size=1000)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.code == 1009
    await asyncio.sleep(0.1)
    assert isinstance(closes[0], CloseConnection)
    assert closes[0].code == 1009


async def test_a_refused_upgrade_carries_its_status(certs: Certs) -> None:
    """An upgrade answered 401 with a body is WebSocketRefused(401), the body in its message."""

    async def refuse(_raw: bytes) -> bytes:
        return response(b"bad signature", "Connection: close", status="401 Unauthorized")

    async with Recorder(certs.server, refuse) as server:
        with pytest.raises(WebSocketRefused, match="bad signature") as refused:
            await _connect(server.address, certs)
        assert refused.value.status == 401


async def test_close_waits_for_the_servers_close_frame_at_most_close_timeout(
        websocket_server: Callable[[Script], Awaitable[str]], certs: Certs) -> None:
    """close() sends 1000 and returns when the server answers; a server that never answers holds it up for
    close_timeout only."""
    got: list[Any] = []

    async def answers(peer: Peer) -> None:
        event = await peer.event()
        got.append(event)
        await peer.send(event.response())  # and the server ends the connection

    async def mute(peer: Peer) -> None:
        got.append(await peer.event())
        await asyncio.sleep(10)

    for script, low, high in ((answers, 0.0, 0.25), (mute, 0.3, 1.5)):
        ws = await _connect(await websocket_server(script), certs, close_timeout=0.3)
        began = time.monotonic()
        await ws.close()
        assert low <= time.monotonic() - began < high
    assert [type(e) for e in got] == [CloseConnection, CloseConnection]
    assert got[0].code == 1000


async def test_a_ping_while_closing_does_not_spoil_the_close(
        websocket_server: Callable[[Script], Awaitable[str]], certs: Certs) -> None:
    """A ping that crosses the client's close frame is not answered (no pong after a close), and the server's
    close frame still completes the closing handshake: the connection ends with 1000."""
    got: list[Any] = []

    async def script(peer: Peer) -> None:
        close = await peer.event()
        peer.writer.write(b"\x89\x04late")  # a ping frame, by hand: wsproto sends none after a close
        await peer.send(close.response())
        got.append(close)

    ws = await _connect(await websocket_server(script), certs)
    await ws.close()
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.code == 1000
    assert isinstance(got[0], CloseConnection)


async def test_a_limited_tls_read_buffer_still_reads_large_bodies(certs: Certs,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """After limit_tls_read_buffer(), a connection's TLS layer holds a 32 KiB read buffer instead of 256 KiB,
    and a 1 MB body (many records, many reads) arrives whole; a buffer smaller than one TLS record is refused."""
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", 256 * 1024)  # restored after the test
    body = bytes(range(256)) * 4096
    sizes: list[int] = []

    async def big(_raw: bytes) -> bytes:
        return response(body)

    async with Recorder(certs.server, big) as server:
        for limit in (False, True):
            if limit:
                transport.limit_tls_read_buffer()
            http = Http(server.address, ssl_context(str(certs.ca)))
            assert (await http.request("GET", "/big")).body == body
            [connection] = http._idle
            sizes.append(len(connection.writer.transport._ssl_protocol._ssl_buffer))  # type: ignore[attr-defined]
            await http.aclose()
    assert sizes == [256 * 1024, transport.TLS_READ_BUFFER]
    assert transport.TLS_READ_BUFFER == 32 * 1024
    with pytest.raises(ValueError, match="cannot hold a whole record"):
        transport.limit_tls_read_buffer(16 * 1024)


def test_agent_run_limits_the_tls_read_buffer(tmp_path: Path, key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`agent run` (through click, and as `python -m cloudassist.agent run`) limits the buffer before the agent
    opens any connection."""
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", 256 * 1024)  # restored after the test
    ident.save(tmp_path, ident.Identity("mi-x", "a" * 32, "cn-test", "127.0.0.1:9", "", "", key))
    seen: list[int] = []

    class Stub:
        def __init__(self, *_args: object, **_kwargs: object) -> None:
            pass

        def request_stop(self) -> None:
            pass

        async def run(self) -> None:
            seen.append(sslproto.SSLProtocol.max_size)

    monkeypatch.setattr(serve, "Agent", Stub)
    result = CliRunner().invoke(agent_cli.agent, ["run", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(sslproto.SSLProtocol, "max_size", 256 * 1024)
    serve.main(["run", "--state-dir", str(tmp_path)])  # python -m cloudassist.agent run
    assert seen == [transport.TLS_READ_BUFFER] * 2


def _dead_address() -> str:
    """An address where nothing listens (connections are refused)."""
    return f"127.0.0.1:{free_port()}"


def _request_id(raw: bytes) -> bytes:
    return next(line.split(b": ", 1)[1] for line in raw.split(b"\r\n") if line.startswith(b"X-Acs-Request-Id:"))


async def test_requests_fail_over_to_the_next_server_and_stay_there(certs: Certs, key: Any) -> None:
    """Servers A and B: requests go to A while it answers. A stops answering (it hangs up on the open
    connection, and refuses new ones): the same request is signed afresh and sent to B, and later ones go
    to B without trying A first. When B stops answering too, A is tried again; with neither answering the
    request fails with a TransportError."""
    answering = {"A": True, "B": True}

    def replier(name: str) -> Reply:
        async def reply(_raw: bytes) -> bytes | None:
            return response() if answering[name] else None
        return reply

    async with Recorder(certs.server, replier("A")) as a, Recorder(certs.server, replier("B")) as b:
        identity = ident.Identity("mi-test", "a" * 32, "cn-hangzhou", f"{a.address}, {b.address}", str(certs.ca), "",
                                  key)
        client = ServerClient(identity)
        assert client.servers == [a.address, b.address]
        await client.check()
        assert (len(a.requests), len(b.requests), client.server) == (1, 0, a.address)
        answering["A"] = False
        assert a.server is not None
        a.server.close()  # new connections refused; the kept-alive one is hung up on
        await client.check()
        assert (len(a.requests), len(b.requests), client.server) == (2, 1, b.address)
        assert _request_id(a.requests[1]) != _request_id(b.requests[0])  # signed afresh: not a replay
        for _ in range(3):
            await client.heart_beat(first=False, cold_start=False)
        assert (len(a.requests), len(b.requests)) == (2, 4)
        answering["B"] = False
        with pytest.raises(TransportError, match="ConnectError"):  # B hangs up, then A refuses
            await client.check()
        assert (len(a.requests), len(b.requests)) == (2, 5)
        await client.aclose()


async def test_concurrent_failures_on_one_server_move_on_once(certs: Certs, key: Any) -> None:
    """A (refusing), B and C answering: requests made at once all fail on A and all go to B, none to C; B
    stays in use."""
    async with Recorder(certs.server, ok) as b, Recorder(certs.server, ok) as c:
        servers = f"{_dead_address()},{b.address},{c.address}"
        client = ServerClient(ident.Identity("mi-test", "a" * 32, "cn-hangzhou", servers, str(certs.ca), "", key))
        await asyncio.gather(*(client.check() for _ in range(4)))
        assert (len(b.requests), len(c.requests), client.server) == (4, 0, b.address)
        await client.aclose()


async def test_the_kick_websocket_fails_over_too(websocket_server: Callable[[Script], Awaitable[str]],
                                                 certs: Certs, key: Any) -> None:
    """The first server refuses: the websocket is opened on the second, which is then the one in use for
    requests as well."""
    async def script(peer: Peer) -> None:
        await peer.send(TextMessage(data="kick_vm"))
        close = await peer.event()
        await peer.send(close.response())

    live = await websocket_server(script)
    servers = f"{_dead_address()},{live}"
    client = ServerClient(ident.Identity("mi-test", "a" * 32, "cn-hangzhou", servers, str(certs.ca), "", key))
    ws = await client.notify_socket()
    assert await ws.recv() == "kick_vm"
    assert client.server == live
    await ws.close()
    await client.aclose()


async def test_registration_moves_on_only_when_no_connection_was_made(certs: Certs) -> None:
    """`register` to a refusing address then a live one registers on the live one; to a server that takes the
    request and does not answer, it does not move on (that server may have registered the machine)."""
    async def silent(_raw: bytes) -> None:
        return None

    async with Recorder(certs.server, ok) as live, Recorder(certs.server, silent) as mute:
        assert await register(f"{_dead_address()},{live.address}", str(certs.ca), {"a": 1}) == "mi-test"
        assert len(live.requests) == 1
        with pytest.raises(TransportError, match="without a reply"):
            await register(f"{mute.address},{live.address}", str(certs.ca), {"a": 1})
        assert (len(mute.requests), len(live.requests)) == (1, 1)
        with pytest.raises(TransportError, match="ConnectError"):
            await register(f"{_dead_address()},{_dead_address()}", str(certs.ca), {"a": 1})
