"""One face's connections: how many it holds, and which one gives way when it holds its cap.

A connection is counted from the moment it is accepted (before any TLS handshake) until it closes, so
the count is what the face spends in file descriptors. A connection with no request in progress (one
that has not finished sending its request, a keep-alive connection between requests, one still in its
TLS handshake) is *idle*: when the face is full, the connection idle the longest is closed to make room,
as nginx drains keep-alive connections. Only when every connection is busy (a request being answered,
an agent's websocket) is a new one refused.
"""

from __future__ import annotations

import asyncio
import logging

from cloudassist.edge.tally import Tally

log = logging.getLogger("cloudassist.edge")


class Slot:
    """One accepted connection's place in its face's count."""

    __slots__ = ("guard", "open", "transport")

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport) -> None:
        self.guard = guard
        self.transport = transport
        self.open = True

    def busy(self) -> None:
        self.guard._idle.pop(self, None)

    def idle(self) -> None:
        if self.open:
            self.guard._idle.pop(self, None)
            self.guard._idle[self] = None  # to the end: the longest idle come first

    def release(self) -> None:
        if self.open:
            self.open = False
            self.guard.count -= 1
            self.guard.closed += 1
            self.guard._idle.pop(self, None)


class ConnectionGuard:
    """The connections of one face (`name`), at most `cap` of them."""

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.count = 0
        self.closed = 0  #: connections closed since start
        self._idle: dict[Slot, None] = {}  # insertion-ordered: the longest idle first
        self.refused = Tally(log, f"{name} face: connections refused, all {cap} busy")
        self.evicted = Tally(log, f"{name} face: idle connections closed to make room", level=logging.INFO)

    def admit(self, transport: asyncio.Transport) -> Slot | None:
        """A slot for a connection just accepted, or None when it must be closed (the face is full and busy)."""
        if self.count >= self.cap and not self._evict():
            self.refused.note(peer_of(transport))
            return None
        slot = Slot(self, transport)
        self.count += 1
        self._idle[slot] = None
        return slot

    def _evict(self) -> bool:
        oldest = next(iter(self._idle), None)
        if oldest is None:
            return False
        oldest.release()
        oldest.transport.abort()  # at once: a TLS close would wait for the peer's close_notify
        self.evicted.note(peer_of(oldest.transport))
        return True

    @property
    def idle(self) -> int:
        return len(self._idle)


def peer_of(transport: asyncio.BaseTransport) -> str:
    """The peer's address (no port), for the logs."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""
