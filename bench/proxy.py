#!/usr/bin/env python
"""A small asyncio TCP proxy that plays a bad network between agents and a server.

Modes, switched at any time (`Proxy.mode = …`):

  pass       bytes go through as they come
  delay      every chunk, both ways, is held `delay` seconds before it goes on (order kept)
  drop       every open connection is reset, and new ones are reset as soon as they are accepted
  blackhole  connections are accepted and read, but nothing goes on either way until the mode changes
             (a route that lost its packets: TCP keeps the bytes and delivers them once the way is back)

TLS passes through untouched (the proxy never decrypts), so agents keep checking the server's certificate.

    .venv/bin/python bench/proxy.py --listen 127.0.0.1:9000 --to 127.0.0.1:8443 --mode delay --delay 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field

MODES = ("pass", "delay", "drop", "blackhole")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a dropped route or a firewall reject looks to the peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class Proxy:
    """Listens on `listen_port` (0: any free port) and forwards to `target`."""

    target: tuple[str, int]
    host: str = "127.0.0.1"
    listen_port: int = 0
    delay: float = 2.0
    _mode: str = "pass"
    _server: asyncio.Server | None = None
    _pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)
    accepted: int = 0
    resets: int = 0

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.listen_port}"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode {value!r}: one of {', '.join(MODES)}")
        self._mode = value
        if value == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()
        if value == "drop":
            for pair in list(self._pairs):
                for writer in pair:
                    _reset(writer)
                self.resets += 1
            self._pairs.clear()

    async def start(self) -> Proxy:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, self.listen_port, backlog=4096)
        self.listen_port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self._pairs):
            for writer in pair:
                writer.transport.abort()
        self._pairs.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._mode == "drop":
            self.resets += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)  # the server is down: the client sees its connection refused, as it would directly
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for side in pair:
                side.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                if self._mode == "delay":
                    await asyncio.sleep(max(0.0, self.delay))
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass
        finally:
            if not writer.transport.is_closing():
                with contextlib.suppress(OSError):
                    writer.close()


async def _main(args: argparse.Namespace) -> None:
    host, _, port = args.listen.rpartition(":")
    to_host, _, to_port = args.to.rpartition(":")
    proxy = await Proxy((to_host, int(to_port)), host=host, listen_port=int(port), delay=args.delay).start()
    proxy.mode = args.mode
    print(f"proxy {proxy.endpoint} -> {args.to}, mode {proxy.mode}", flush=True)
    try:
        while True:
            await asyncio.sleep(60)
            print(f"{time.strftime('%H:%M:%S')} accepted {proxy.accepted}, open {len(proxy._pairs)}", flush=True)
    finally:
        await proxy.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--to", required=True)
    parser.add_argument("--mode", choices=MODES, default="pass")
    parser.add_argument("--delay", type=float, default=2.0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))
