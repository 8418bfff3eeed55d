"""The target of a port-forward session: one TCP stream to `targetHost:portNumber` (localhost by default).

One session channel is one TCP stream (session-protocol.md §6). Where we differ from the official agent: when
the target closes its side, the rest of its data is sent and the session ends `Ok` (the relay tells the
client, which closes that local connection), instead of re-dialling the target on the next inbound frame.
"""

from __future__ import annotations

import asyncio
import contextlib

CONNECT_TIMEOUT = 10.0


class OpenFailed(Exception):
    """The target cannot be reached."""


class Target:
    """A TCP connection to the forwarded port. `open()` once, then `read()`/`write()`; `close()` any time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host or "localhost"
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise OpenFailed(f"cannot connect to {self.host}:{self.port}: {exc or 'timed out'}") from None

    async def read(self, size: int) -> bytes:
        """The next bytes from the target; b"" at its end (or when the connection broke)."""
        assert self._reader is not None
        try:
            return await self._reader.read(size)
        except OSError:
            return b""

    async def write(self, data: bytes) -> None:
        """Send `data` to the target (ignored once the connection is gone: the read side ends the session)."""
        assert self._writer is not None
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.write(data)
            await self._writer.drain()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
