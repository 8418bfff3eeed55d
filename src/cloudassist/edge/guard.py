"""One face's connections: how many it holds, and which one gives way when it holds its cap.

A connection is counted from the moment it is accepted (before any TLS handshake) until it closes, so
the count is what the face spends in file descriptors. A connection with no request in progress (one
that has not finished sending its request, a keep-alive connection between requests, one still in its
TLS handshake) is *idle*: when the face is full, an idle connection is closed to make room, as nginx drains
keep-alive connections. Connections that have never been answered go first, the longest idle of them; a
kept-alive connection that has been answered goes only when no such one is left, so a flood of connections
that never finish a request cannot push out the clients that use the face (each would lose the request it
was sending as its connection closed). Only when every connection is busy (a request being answered, an
agent's websocket) is a new one refused.
"""

from __future__ import annotations

import asyncio
import logging

from cloudassist.edge.tally import Tally

log = logging.getLogger("cloudassist.edge")


class Slot:
    """One accepted connection's place in its face's count."""

    __slots__ = ("answered", "guard", "open", "transport")

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport) -> None:
        self.guard = guard
        self.transport = transport
        self.open = True
        #: a response has been sent on it: a client's kept-alive connection, closed to make room last
        self.answered = False

    def _forget(self) -> None:
        self.guard._fresh.pop(self, None)
        self.guard._answered.pop(self, None)

    def busy(self) -> None:
        self._forget()

    def idle(self, answered: bool = False) -> None:
        """Idle from now (`answered`: after a response), at the end of its tier: the longest idle come first."""
        if self.open:
            self._forget()
            self.answered = self.answered or answered
            (self.guard._answered if self.answered else self.guard._fresh)[self] = None

    def release(self) -> None:
        if self.open:
            self.open = False
            self.guard.count -= 1
            self.guard.closed += 1
            self._forget()


class ConnectionGuard:
    """The connections of one face (`name`), at most `cap` of them."""

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.count = 0
        self.closed = 0  #: connections closed since start
        # idle connections, insertion-ordered (the longest idle first): never answered, and answered
        self._fresh: dict[Slot, None] = {}
        self._answered: dict[Slot, None] = {}
        self.refused = Tally(log, f"{name} face: connections refused, all {cap} busy")
        self.evicted = Tally(log, f"{name} face: idle connections closed to make room", level=logging.INFO)

    def admit(self, transport: asyncio.Transport) -> Slot | None:
        """A slot for a connection just accepted, or None when it must be closed (the face is full and busy)."""
        if self.count >= self.cap and not self._evict():
            self.refused.note(peer_of(transport))
            return None
        slot = Slot(self, transport)
        self.count += 1
        self._fresh[slot] = None
        return slot

    def _evict(self) -> bool:
        oldest = next(iter(self._fresh), None) or next(iter(self._answered), None)
        if oldest is None:
            return False
        oldest.release()
        oldest.transport.abort()  # at once: a TLS close would wait for the peer's close_notify
        self.evicted.note(peer_of(oldest.transport))
        return True

    @property
    def idle(self) -> int:
        return len(self._fresh) + len(self._answered)


def peer_of(transport: asyncio.BaseTransport) -> str:
    """The peer's address (no port), for the logs."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""
