"""The Session Manager framings: layouts from session-protocol.md §4, round trips and garbage."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudassist.domain import frames
from cloudassist.domain.frames import Frame, FrameError, MessageType, Size, StatusCode

CREATED = 1_733_400_000_123


def test_agent_frame_has_the_documented_60_byte_layout() -> None:
    """An agent frame is type, "1.01", a space-padded 32-byte id, created, sequence, length, payload."""
    data = frames.encode_agent(Frame(MessageType.INPUT, b"ls\r", CREATED, 7, "ch1"))
    assert len(data) == 63
    assert data[:4] == b"\x00\x00\x00\x00"
    assert data[4:8] == b"1.01"
    assert data[8:40] == b"ch1" + b" " * 29
    assert struct.unpack("<QqI", data[40:60]) == (CREATED, 7, 3)
    assert data[60:] == b"ls\r"


def test_client_frame_with_empty_ids_has_a_30_byte_header() -> None:
    """A client frame with L = M = 0 is type, "1.01", 0, 0, created, sequence, length, payload."""
    data = frames.encode_client(Frame(MessageType.OUTPUT, b"$ ", CREATED, 2))
    assert len(data) == 32
    assert data[:10] == b"\x01\x00\x00\x001.01\x00\x00"
    assert struct.unpack("<QqI", data[10:30]) == (CREATED, 2, 2)
    assert data[30:] == b"$ "


def test_client_frame_ids_shift_the_tail() -> None:
    """Non-empty session and instance ids are length-prefixed and move created/sequence along."""
    data = frames.encode_client(Frame(MessageType.OUTPUT, b"x", CREATED, 1, "s-1", "i-22"))
    assert data[8:12] == b"\x03s-1"
    assert data[12:17] == b"\x04i-22"
    assert frames.decode_client(data) == Frame(MessageType.OUTPUT, b"x", CREATED, 1, "s-1", "i-22")


def test_agent_decoding_trims_padding_and_nuls() -> None:
    """The agent-format id is read with spaces and NULs trimmed, and an empty payload is valid."""
    data = struct.pack("<I4s32sQqI", 1, b"1.01", b"abc\x00\x00" + b" " * 27, CREATED, 0, 0)
    assert frames.decode_agent(data) == Frame(MessageType.OUTPUT, b"", CREATED, 0, "abc")


def test_payload_length_field_is_not_trusted() -> None:
    """The payload is the rest of the frame whatever the length field says, as in both official peers."""
    data = bytearray(frames.encode_agent(Frame(MessageType.OUTPUT, b"hello", CREATED)))
    data[56:60] = struct.pack("<I", 999)
    assert frames.decode_agent(bytes(data)).payload == b"hello"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter"),
        (b"\x00" * 59, "shorter"),
        (struct.pack("<I4s32sQqI", 4, b"1.01", b" " * 32, CREATED, 0, 0), "unknown message type 4"),
        (struct.pack("<I4s32sQqI", 0, b"1.01", b" " * 32, 0, 0, 0), "created date is 0"),
        (struct.pack("<I4s32sQqI", 0, b"\x00\x00\x00\x00", b" " * 32, CREATED, 0, 0), "schema version"),
        (struct.pack("<I4s32sQqI", 0, b"1.01", b"\xff" * 32, CREATED, 0, 0), "not ASCII"),
    ],
)
def test_malformed_agent_frames_raise_frame_error(data: bytes, reason: str) -> None:
    """Each way an agent frame can break the layout raises FrameError naming it."""
    with pytest.raises(FrameError, match=reason):
        frames.decode_agent(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00" * 29, "shorter"),
        (b"\x00\x00\x00\x001.01\xff" + b"\x00" * 21, "inside its session id"),
        (b"\x00\x00\x00\x001.01\x00\x05" + b"\x00" * 22, "inside its header"),
        (b"\x00\x00\x00\x001.01\x00\x00" + b"\x00" * 20, "created date is 0"),
        (b"\x09\x00\x00\x001.01\x00\x00" + struct.pack("<QqI", CREATED, 0, 0), "unknown message type 9"),
    ],
)
def test_malformed_client_frames_raise_frame_error(data: bytes, reason: str) -> None:
    """Each way a client frame can break the layout raises FrameError naming it."""
    with pytest.raises(FrameError, match=reason):
        frames.decode_client(data)


def test_frames_the_relay_builds_are_never_dated_zero() -> None:
    """Encoding refuses a created date of 0 (the agent drops such frames, the CLI aborts)."""
    with pytest.raises(FrameError):
        frames.encode_client(Frame(MessageType.OUTPUT, b"x", 0))
    with pytest.raises(FrameError):
        frames.encode_agent(Frame(MessageType.INPUT, b"x", 0))


def test_agent_session_id_over_32_bytes_is_refused() -> None:
    """A 33-byte id would make every agent output frame fail silently, so it cannot be encoded."""
    with pytest.raises(FrameError):
        frames.encode_agent(Frame(MessageType.INPUT, b"", CREATED, 0, "c" * 33))


def test_client_resize_becomes_agent_json() -> None:
    """4 bytes rows=40, cols=120 (int16 LE) become {"cols":120,"rows":40}."""
    assert frames.resize_to_agent(struct.pack("<hh", 40, 120)) == b'{"cols":120,"rows":40}'


def test_json_resize_passes_through_validated() -> None:
    """A client that already sends JSON has it re-encoded unchanged in meaning."""
    assert frames.resize_to_agent(b'{"rows": 5, "cols": 6}') == b'{"cols":6,"rows":5}'


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01\x00",
        b"\x01\x00\x02\x00\x03",
        b"{}",
        b'{"cols":-1,"rows":3}',
        b'{"cols":"a","rows":3}',
        b"\xff\xff\xff\xff\xff",
        b"[1]",
    ],
)
def test_bad_resizes_raise_frame_error(payload: bytes) -> None:
    """A resize that is neither 4 valid bytes nor JSON with non-negative cols and rows is refused."""
    with pytest.raises(FrameError):
        frames.resize_to_agent(payload)


def test_negative_binary_size_is_refused() -> None:
    """int16 -1 rows is not a terminal size."""
    with pytest.raises(FrameError):
        Size.from_client(struct.pack("<hh", -1, 80))


def test_status_and_rate_round_trip_big_endian() -> None:
    """A status-7 payload carries the rate big-endian after the code byte."""
    payload = frames.status(StatusCode.RATE, frames.rate_bytes(200_000))
    assert payload == b"\x07\x00\x03\x0d\x40"
    code, rest = frames.parse_status(payload)
    assert code == StatusCode.RATE
    assert frames.parse_rate(rest) == 200_000


@pytest.mark.parametrize("rate", [1, 8191, 16383, 1 << 32])
def test_rates_that_crash_a_peer_cannot_be_built(rate: int) -> None:
    """Rates below 16384 bit/s divide by zero in the agent or the CLI and are refused."""
    with pytest.raises(FrameError):
        frames.rate_bytes(rate)


def test_empty_status_and_long_rate_are_refused() -> None:
    """A status payload needs its code byte; a rate is 1 to 4 bytes."""
    with pytest.raises(FrameError):
        frames.parse_status(b"")
    with pytest.raises(FrameError):
        frames.parse_rate(b"\x00" * 5)


@pytest.mark.parametrize(
    ("errorcode", "reason"),
    [
        ("Ok", "Exit"),
        ("Notified", "Exit"),
        ("Timeout", "AgentTimeout"),
        ("Open_pty_failed", "OpenPtyFailed"),
        ("IdleTimeout", "IdleTimeout"),
    ],
)
def test_agent_errorcodes_map_to_client_reasons(errorcode: str, reason: str) -> None:
    """The agent's session/status errorcode becomes the CLI's status-5 reason; unknown ones pass through."""
    assert frames.close_reason(errorcode) == reason


@pytest.mark.parametrize(
    ("channel_id", "valid"),
    [("c-0123456789abcdef", True), ("a" * 32, True), ("a" * 33, False), ("", False), ("a b", False), ("a&b", False)],
)
def test_channel_ids_are_short_url_safe_ascii(channel_id: str, valid: bool) -> None:
    """A channel id is 1 to 32 URL-safe ASCII characters."""
    assert frames.valid_channel_id(channel_id) is valid


_ascii_ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=32)
_frames = st.builds(
    Frame,
    type=st.sampled_from(MessageType),
    payload=st.binary(max_size=4096),
    created_ms=st.integers(1, (1 << 64) - 1),
    sequence=st.integers(-(1 << 63), (1 << 63) - 1),
    session_id=_ascii_ids,
    instance_id=_ascii_ids,
)


@given(_frames)
def test_client_format_round_trips(frame: Frame) -> None:
    """Any frame encodes to the client format and decodes back to itself."""
    assert frames.decode_client(frames.encode_client(frame)) == frame


@given(_frames)
def test_agent_format_round_trips_without_instance_id(frame: Frame) -> None:
    """Any frame encodes to the agent format and decodes back to itself, less the instance id it lacks."""
    decoded = frames.decode_agent(frames.encode_agent(frame))
    assert decoded == Frame(frame.type, frame.payload, frame.created_ms, frame.sequence, frame.session_id)


@given(st.integers(0, 0x7FFF), st.integers(0, 0x7FFF))
def test_sizes_round_trip_through_both_encodings(rows: int, cols: int) -> None:
    """A size survives client bytes -> agent JSON -> size -> client bytes."""
    size = Size(rows, cols)
    assert Size.from_agent(frames.resize_to_agent(size.to_client())) == size
    assert Size.from_client(size.to_client()).to_client() == size.to_client()


@given(st.binary(max_size=200))
def test_garbage_raises_only_frame_error(data: bytes) -> None:
    """Arbitrary bytes either decode or raise FrameError, in every decoder; nothing else escapes."""
    for decode in (
        frames.decode_agent,
        frames.decode_client,
        frames.resize_to_agent,
        frames.parse_status,
        frames.parse_rate,
    ):
        with contextlib.suppress(FrameError):
            decode(data)


def test_deeply_nested_json_resize_is_refused_not_crashing() -> None:
    """A resize payload of 100,000 brackets raises FrameError, never RecursionError."""
    with pytest.raises(FrameError):
        frames.resize_to_agent(b"[" * 100_000)
