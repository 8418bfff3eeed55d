"""Both sides of a Session Manager connection as the official programs speak them (session-protocol.md):
the agent (kick, v1/session/list, the data websocket in agent framing, v1/session/status) and the CLI
(the WebSocketUrl in client framing). The framings are written here by hand, independently of the server's
`domain/frames.py`, so that a mistake there cannot hide itself."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from luban import Agent, acknowledged, trust, wait_for_kick
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

AGENT_HEADER = 60


def ms() -> int:
    return int(time.time() * 1000)


def agent_frame(kind: int, payload: bytes, channel: str, seq: int) -> bytes:
    """60-byte header: type, "1.01", 32-byte space-padded id, created ms, sequence, payload length (LE)."""
    return struct.pack("<I4s32sQqI", kind, b"1.01", channel.encode().ljust(32, b" "), ms(), seq, len(payload)) + payload


def read_agent_frame(data: bytes) -> tuple[int, bytes]:
    kind, version, _sid, created, _seq, _length = struct.unpack_from("<I4s32sQqI", data)
    assert version == b"1.01", data[:60]
    assert created > 0, data[:60]
    return kind, data[60:]


def client_frame(kind: int, payload: bytes, seq: int = 0) -> bytes:
    """What the official CLI sends: L = M = 0, a 30-byte header."""
    return struct.pack("<I4sBBQqI", kind, b"1.01", 0, 0, ms(), seq, len(payload)) + payload


def read_client_frame(data: bytes) -> tuple[int, bytes]:
    kind, version, sid_len = struct.unpack_from("<I4sB", data)
    iid_len = data[9 + sid_len]
    tail = 10 + sid_len + iid_len
    created, _seq, _length = struct.unpack_from("<QqI", data, tail)
    assert version == b"1.01", data[:40]
    assert created > 0, data[:40]
    return kind, data[tail + 20 :]


def open_client(url: str) -> ClientConnection:
    """The CLI's dial: the URL as returned, an empty `x-acs-session-token` header, no proxy."""
    return connect(url, additional_headers={"x-acs-session-token": ""}, proxy=None, open_timeout=30,
                   ping_interval=None, close_timeout=2, compression=None)


def open_data_socket(agent: Agent, channel: str) -> ClientConnection:
    """The agent's dial of `wss://<host>/luban/session/backend?channelId=…` with its signing headers."""
    return connect(f"wss://{agent.server.agent_endpoint}/luban/session/backend?channelId={channel}",
                   ssl=trust(agent.server), additional_headers=agent.sign(), user_agent_header=agent.user_agent,
                   compression=None, proxy=None, open_timeout=30, ping_interval=None, close_timeout=2)


def session_list(agent: Agent, channel: str) -> list[dict[str, Any]]:
    """POST v1/session/list?channelId=… with an empty body, as FetchTaskList does."""
    body = acknowledged(agent.send("POST", "/luban/api/v1/session/list", f"channelId={quote(channel)}"))
    entries: list[dict[str, Any]] = body["session"]
    assert set(body) <= {"code", "instanceId", "session"}, body  # no run/stop/file entries: they would be run
    return entries


def report_status(agent: Agent, channel: str, status: str, errorcode: str, extra: str = "") -> None:
    """POST v1/session/status; `extra` is more of the query (our agent's `exitCode=N`)."""
    acknowledged(agent.send("POST", "/luban/api/v1/session/status",
                            f"channelId={channel}&status={status}&errorcode={errorcode}{extra and '&' + extra}",
                            content_type="text/plain"))


def in_flight(frame: bytes, meanwhile: Callable[[], None]) -> Iterator[bytes]:
    """`frame` as the fragments of one websocket message (pass it to `send`), with `meanwhile()` done after its
    first fragment went out and before its last: the message is on its way, and the server cannot take it yet."""
    yield frame[:AGENT_HEADER]
    meanwhile()
    yield frame[AGENT_HEADER:]


def accept_session_kick(notify: ClientConnection) -> str:
    """The channel of the next `kick_vm session start <channel>`."""
    kick = wait_for_kick(notify, timeout=15.0)
    words = kick.split(" ")
    assert words[:3] == ["kick_vm", "session", "start"], kick
    assert len(words) == 4, kick
    return words[3]


def recv_client(client: ClientConnection, timeout: float = 15.0) -> tuple[int, bytes]:
    data = client.recv(timeout=timeout)
    assert isinstance(data, bytes), data
    return read_client_frame(data)


def recv_client_to_the_end(client: ClientConnection, timeout: float = 15.0) -> list[tuple[int, bytes]]:
    """Every frame the client gets until the server closes its socket."""
    got = []
    try:
        while True:
            got.append(recv_client(client, timeout))
    except ConnectionClosed:
        return got


def recv_agent(data_socket: ClientConnection, timeout: float = 15.0) -> tuple[int, bytes]:
    data = data_socket.recv(timeout=timeout)
    assert isinstance(data, bytes), data
    return read_agent_frame(data)
