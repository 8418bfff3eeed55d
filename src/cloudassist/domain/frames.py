"""The Session Manager's two binary framings, its message types, status codes and resize forms.

A session is relayed between a client (the official `ali-instance-cli` or `cloudassist session`) and an
agent, which speak different framings of the same messages:

    agent format (relay <-> agent)            client format (relay <-> client)
    0   type            uint32 LE             0     type            uint32 LE
    4   schema version  4 ASCII bytes "1.01"  4     schema version  4 ASCII bytes "1.01"
    8   session id      32 bytes, space-pad   8     L, then L bytes of session id
    40  created (ms)    uint64 LE, never 0    9+L   M, then M bytes of instance id
    48  sequence        int64 LE              10+LM created (ms)    uint64 LE, never 0
    56  payload length  uint32 LE             18+LM sequence        int64 LE
    60  payload         the rest              26+LM payload length  uint32 LE
                                              30+LM payload         the rest

Both sides use the same message types (`MessageType`) and, inside a type-5 frame, the same status
codes (`StatusCode`). A resize is 4 binary bytes from the client (rows, cols as int16 LE) and JSON
`{"cols":N,"rows":N}` toward the agent; `Size` converts between them. A pacing rate inside a
status-7 frame is a big-endian unsigned integer of 1 to 4 bytes.

Every decoder raises `FrameError` (and nothing else) for bytes that break these rules; the relay
closes only the session that sent them. The payload-length field is written correctly and ignored
on receive, as both official peers do: the payload is always the rest of the frame.
"""

from __future__ import annotations

import enum
import json
import re
import struct
from dataclasses import dataclass
from typing import Final

SCHEMA_VERSION: Final = b"1.01"
AGENT_HEADER: Final = 60
CLIENT_HEADER: Final = 30  # with empty session and instance ids
CHANNEL_ID_MAX: Final = 32
#: Smallest non-zero pacing rate (bit/s) that neither the agent nor the official CLI divides by zero on.
MIN_RATE: Final = 16384
#: Largest input chunk a client sends in one frame; the relay refuses bigger input frames.
MAX_INPUT: Final = 2048

_AGENT = struct.Struct("<I4s32sQqI")
_CLIENT_TAIL = struct.Struct("<QqI")
_CHANNEL_ID = re.compile(r"[A-Za-z0-9_.~-]{1,32}")


class FrameError(ValueError):
    """A frame (or a payload inside one) that breaks the Session Manager framing."""


class MessageType(enum.IntEnum):
    """The `type` field shared by both framings."""

    INPUT = 0  # client -> agent: raw bytes
    OUTPUT = 1  # agent -> client: raw bytes
    SET_SIZE = 2  # client -> agent: terminal size
    CLOSE = 3  # client -> relay: local end reached
    STATUS = 5  # either way: byte 0 is a StatusCode


class StatusCode(enum.IntEnum):
    """Byte 0 of a type-5 payload."""

    MESSAGE = 2  # to the client: print the whole payload and exit
    NOOP = 3  # to the client: nothing
    CLOSED = 5  # to the client: the rest is an ASCII reason; print it and exit
    RATE = 7  # either way: the rest is a big-endian bit/s pacing rate


#: Reasons the official CLI knows for a CLOSED status (other strings are printed as they are).
CLOSE_REASONS: Final = frozenset(
    {
        "Exit",
        "AgentTimeout",
        "InitChannelFailed",
        "OpenChannelFailed",
        "SessionIdDuplicated",
        "ProcessDataError",
        "OpenPtyFailed",
        "FlowExceedLimit",
    }
)

_REASON_OF_ERRORCODE: Final = {
    "Ok": "Exit",
    "Notified": "Exit",
    "Timeout": "AgentTimeout",
    "Open_channel_failed": "OpenChannelFailed",
    "Init_channel_failed": "InitChannelFailed",
    "Session_id_duplicate": "SessionIdDuplicated",
    "Open_pty_failed": "OpenPtyFailed",
    "Process_data_error": "ProcessDataError",
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One message of either framing.

    `session_id` is the agent format's 32-byte id field (the agent writes its channel id there) or
    the client format's session id; `instance_id` exists only in the client format.
    """

    type: MessageType
    payload: bytes
    created_ms: int
    sequence: int = 0
    session_id: str = ""
    instance_id: str = ""


def _check_header(kind: int, version: bytes, created_ms: int) -> MessageType:
    try:
        message_type = MessageType(kind)
    except ValueError:
        raise FrameError(f"unknown message type {kind}") from None
    if not (len(version) == 4 and all(0x20 < byte < 0x7F for byte in version)):
        raise FrameError("schema version is not 4 printable ASCII bytes")
    if created_ms == 0:
        raise FrameError("created date is 0")
    return message_type


def _ascii_field(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(f"{what} is not ASCII") from None


def _check_outgoing(frame: Frame) -> None:
    if frame.created_ms <= 0 or frame.created_ms >= 1 << 64:
        raise FrameError("created date must be a positive uint64")
    if not -(1 << 63) <= frame.sequence < 1 << 63:
        raise FrameError("sequence number does not fit an int64")
    if len(frame.payload) >= 1 << 32:
        raise FrameError("payload too large")


def encode_agent(frame: Frame) -> bytes:
    """The agent-format bytes of `frame` (its `instance_id` is not part of this format)."""
    _check_outgoing(frame)
    if not frame.session_id.isascii() or len(frame.session_id) > CHANNEL_ID_MAX:
        raise FrameError("agent-format session id must be at most 32 ASCII bytes")
    session = frame.session_id.encode("ascii")
    header = _AGENT.pack(
        int(frame.type),
        SCHEMA_VERSION,
        session.ljust(CHANNEL_ID_MAX, b" "),
        frame.created_ms,
        frame.sequence,
        len(frame.payload),
    )
    return header + frame.payload


def decode_agent(data: bytes) -> Frame:
    """The frame in agent-format `data`; `FrameError` when it is malformed."""
    if len(data) < AGENT_HEADER:
        raise FrameError(f"agent frame of {len(data)} bytes is shorter than its {AGENT_HEADER}-byte header")
    kind, version, session, created_ms, sequence, _length = _AGENT.unpack_from(data)
    message_type = _check_header(kind, version, created_ms)
    session_id = _ascii_field(session, "session id").strip("\x00 ")
    return Frame(message_type, bytes(data[AGENT_HEADER:]), created_ms, sequence, session_id)


def encode_client(frame: Frame) -> bytes:
    """The client-format bytes of `frame`, with its session and instance ids when they are set."""
    _check_outgoing(frame)
    ids = []
    for value, what in ((frame.session_id, "session id"), (frame.instance_id, "instance id")):
        if not value.isascii() or len(value) > 255:
            raise FrameError(f"client-format {what} must be at most 255 ASCII bytes")
        ids.append(bytes([len(value)]) + value.encode("ascii"))
    head = struct.pack("<I4s", int(frame.type), SCHEMA_VERSION)
    tail = _CLIENT_TAIL.pack(frame.created_ms, frame.sequence, len(frame.payload))
    return head + ids[0] + ids[1] + tail + frame.payload


def decode_client(data: bytes) -> Frame:
    """The frame in client-format `data`; `FrameError` when it is malformed."""
    if len(data) < CLIENT_HEADER:
        raise FrameError(f"client frame of {len(data)} bytes is shorter than its {CLIENT_HEADER}-byte header")
    kind, version = struct.unpack_from("<I4s", data)
    session_len = data[8]
    instance_at = 9 + session_len
    if len(data) < instance_at + 1:
        raise FrameError("client frame ends inside its session id")
    instance_len = data[instance_at]
    tail_at = instance_at + 1 + instance_len
    if len(data) < tail_at + _CLIENT_TAIL.size:
        raise FrameError("client frame ends inside its header")
    created_ms, sequence, _length = _CLIENT_TAIL.unpack_from(data, tail_at)
    message_type = _check_header(kind, version, created_ms)
    return Frame(
        message_type,
        bytes(data[tail_at + _CLIENT_TAIL.size :]),
        created_ms,
        sequence,
        _ascii_field(bytes(data[9:instance_at]), "session id"),
        _ascii_field(bytes(data[instance_at + 1 : tail_at]), "instance id"),
    )


@dataclass(frozen=True, slots=True)
class Size:
    """A terminal size, in the two encodings of a type-2 payload."""

    rows: int
    cols: int

    def __post_init__(self) -> None:
        for value in (self.rows, self.cols):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0x7FFF:
                raise FrameError("terminal rows and cols must be integers from 0 to 32767")

    @classmethod
    def from_client(cls, payload: bytes) -> Size:
        """The size in a client's type-2 payload: rows then cols, int16 LE."""
        if len(payload) != 4:
            raise FrameError(f"client resize payload is {len(payload)} bytes, not 4")
        rows, cols = struct.unpack("<hh", payload)
        return cls(rows, cols)

    @classmethod
    def from_agent(cls, payload: bytes) -> Size:
        """The size in an agent-format type-2 payload: JSON `{"cols":N,"rows":N}`."""
        if len(payload) > 256:
            raise FrameError("agent resize payload is longer than 256 bytes")
        try:
            value = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise FrameError("agent resize payload is not JSON") from None
        if not isinstance(value, dict) or not {"cols", "rows"} <= value.keys():
            raise FrameError("agent resize payload lacks cols or rows")
        return cls(value["rows"], value["cols"])

    def to_client(self) -> bytes:
        """The 4-byte client encoding."""
        return struct.pack("<hh", self.rows, self.cols)

    def to_agent(self) -> bytes:
        """The JSON encoding the agent expects."""
        return json.dumps({"cols": self.cols, "rows": self.rows}, separators=(",", ":")).encode()


def resize_to_agent(payload: bytes) -> bytes:
    """A client's type-2 payload as the agent's JSON; JSON from other clients is validated and re-encoded."""
    if len(payload) == 4:  # no JSON object with cols and rows is this short
        return Size.from_client(payload).to_agent()
    return Size.from_agent(payload).to_agent()


def status(code: StatusCode, rest: bytes = b"") -> bytes:
    """A type-5 payload: the code byte, then `rest`."""
    return bytes([int(code)]) + rest


def parse_status(payload: bytes) -> tuple[int, bytes]:
    """The code byte and the rest of a type-5 payload (the code may be one this module does not name)."""
    if not payload:
        raise FrameError("status payload is empty")
    return payload[0], payload[1:]


def rate_bytes(bits_per_second: int) -> bytes:
    """The big-endian rate of a status-7 payload; refuses rates that crash a peer."""
    if not MIN_RATE <= bits_per_second < 1 << 32:
        raise FrameError(f"pacing rate must be from {MIN_RATE} to 2**32-1 bit/s")
    return bits_per_second.to_bytes(4, "big")


def parse_rate(rest: bytes) -> int:
    """The rate (bit/s) in the rest of a status-7 payload: 1 to 4 bytes big-endian; 0 means "ignore"."""
    if not 1 <= len(rest) <= 4:
        raise FrameError(f"pacing rate is {len(rest)} bytes, not 1 to 4")
    return int.from_bytes(rest, "big")


def close_reason(errorcode: str) -> str:
    """The client's CLOSED reason for an agent's session/status `errorcode` (unknown codes pass through)."""
    return _REASON_OF_ERRORCODE.get(errorcode, errorcode)


def valid_channel_id(channel_id: str) -> bool:
    """True when `channel_id` is 1-32 URL-safe ASCII characters, as the agent needs it."""
    return _CHANNEL_ID.fullmatch(channel_id) is not None
