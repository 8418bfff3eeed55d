"""uvicorn's protocols, bounded: a connection is counted by its face's guard from accept() to close, must
send a whole request (headers and body) within the read timeout once it starts one (or, just accepted,
before it has sent anything), and on the agent face completes its TLS handshake within that time too.

uvicorn arms only a keep-alive timer, after a response: a connection that never sends a request, or
sends half of one, is kept for ever (issue 8). And a TLS server built by `create_server(ssl=…)` calls
its protocol only once the handshake is done, so a peer that never finishes one is invisible for the
60 s of the loop's default handshake timeout. So the agent face listens in plain TCP and each connection
runs its own handshake (`loop.start_tls`) under the guard's count and the read timeout.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, cast, runtime_checkable

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from cloudassist.edge.guard import ConnectionGuard, Slot, peer_of
from cloudassist.edge.tally import Tally

log = logging.getLogger("cloudassist.edge")


@dataclass
class Edge:
    """What bounds one face: its guard, its read timeout, and its TLS context (None: plain HTTP)."""

    guard: ConnectionGuard
    read_timeout: float
    tls: ssl.SSLContext | None = None
    timeouts: Tally = field(init=False)
    handshakes: Tally = field(init=False)

    def __post_init__(self) -> None:
        name = self.guard.name
        self.timeouts = Tally(
            log, f"{name} face: connections closed, no whole request within {self.read_timeout:g} s", level=logging.INFO
        )
        self.handshakes = Tally(log, f"{name} face: TLS handshakes failed or timed out", level=logging.INFO)


@runtime_checkable
class _Buffered(Protocol):
    """The buffered-protocol interface of a TLS protocol (uvloop's does not subclass asyncio's)."""

    def get_buffer(self, sizehint: int) -> Any: ...

    def buffer_updated(self, nbytes: int) -> None: ...


class _Bounded:
    """Mixed into uvicorn's HTTP protocols (httptools and h11 share the attributes used here)."""

    edge: ClassVar[Edge]
    # uvicorn's, set by its __init__ and connection_made
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot: Slot | None = None
        self._made = False
        self._deadline: asyncio.TimerHandle | None = None
        self._reading: Any = None  # the cycle current when the deadline was armed: a new one means headers are in
        self._handshake: asyncio.Task[None] | None = None
        self._early: list[bytes] = []  # TLS bytes read before start_tls took the connection over

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)  # uvloop's transports do not subclass asyncio's
        self.slot = self.edge.guard.admit(transport)
        if self.slot is None:
            transport.abort()
        elif self.edge.tls is None:
            self._open(transport)
        else:
            self._handshake = self.loop.create_task(self._secure(transport, self.edge.tls))

    async def _secure(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        # the transport reads from the moment connection_made returns, so the ClientHello may have come to
        # data_received before start_tls puts its TLS protocol in between: it is handed on once it has
        self.loop.call_soon(self._replay, transport)
        try:
            secure = await self.loop.start_tls(
                transport,
                cast(asyncio.BaseProtocol, self),
                context,
                server_side=True,
                ssl_handshake_timeout=self.edge.read_timeout,
            )
        except Exception as exc:  # a failed or abandoned handshake: the peer's problem, counted, never a traceback
            self._lost()
            transport.abort()
            self.edge.handshakes.note(peer_of(transport))
            log.debug("TLS handshake failed: %r", exc)
            return
        if secure is None or self.slot is None or not self.slot.open:  # closed to make room meanwhile
            self._lost()
            transport.abort()
            return
        self._open(secure)

    def _replay(self, transport: asyncio.Transport) -> None:
        early, self._early = b"".join(self._early), []
        tls: object = transport.get_protocol()
        while early and tls is not self and isinstance(tls, asyncio.BufferedProtocol | _Buffered):
            buffer = memoryview(tls.get_buffer(len(early)))
            n = min(len(buffer), len(early))
            buffer[:n] = early[:n]
            tls.buffer_updated(n)
            early = early[n:]

    def _open(self, transport: asyncio.Transport) -> None:
        self._made = True
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()
        if self._made:
            super().connection_lost(exc)  # type: ignore[misc]

    def _lost(self) -> None:
        if self.slot is not None:
            self.slot.release()
        self._disarm()

    def data_received(self, data: bytes) -> None:
        if not self._made:  # the start of a TLS handshake (see _secure)
            self._early.append(data)
            return
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # a new request begins
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if self._deadline is not None and cycle is not None and cycle is not self._reading:
            if self.slot is not None:
                self.slot.busy()  # its headers are in: the request is being answered
            if not cycle.more_body:
                self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.slot is not None and not self.transport.is_closing():
            self.slot.idle(answered=True)

    def handle_websocket_upgrade(self, *args: Any) -> None:
        """The connection becomes a websocket: no read deadline, never closed to make room, and the websocket
        protocol releases its slot when it closes."""
        self._disarm()
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.busy()
        super().handle_websocket_upgrade(*args)  # type: ignore[misc]
        protocol = self.transport.get_protocol()
        if isinstance(protocol, BoundedWebSocket):
            protocol.slot = slot
        elif slot is not None:
            slot.release()

    def _arm(self) -> None:
        self._disarm()
        self._reading = self.cycle
        self._deadline = self.loop.call_later(self.edge.read_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        self.edge.timeouts.note(peer_of(self.transport))
        self.transport.abort()


class BoundedHttpTools(_Bounded, HttpToolsProtocol):
    """The agent face's parser, bounded."""


class BoundedH11(_Bounded, H11Protocol):
    """The API's parser (its line limit admits the SDKs' long query strings), bounded."""


class BoundedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, releasing the connection's slot when it closes, and dropping a peer that
    does not answer pings."""

    slot: Slot | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.slot is not None:
            self.slot.release()
        super().connection_lost(exc)

    def keepalive_timeout(self) -> None:
        """The peer did not answer a ping: after the close frame, the connection is dropped at once (a TLS close
        would wait 30 s for the silent peer's own), so its agent is marked offline now."""
        super().keepalive_timeout()
        self.transport.abort()


def http_protocol(edge: Edge, *, h11: bool) -> type[asyncio.Protocol]:
    """The HTTP protocol class uvicorn builds for each connection of the face `edge` bounds."""
    base: type[_Bounded] = BoundedH11 if h11 else BoundedHttpTools
    return type(base.__name__, (base,), {"edge": edge})
