"""OutputBuffer: bounded head + tail capture of a task's output, cut on UTF-8 character boundaries."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudassist.agent.output import OutputBuffer, PipeReader

EURO = "€".encode()  # 3 bytes


def _drain(buf: OutputBuffer, max_bytes: int = 2048) -> bytes:
    out = b""
    while chunk := buf.take_head_chunk(max_bytes):
        out += chunk
    return out


def _splits(kept: bytes, dropped: int, stream: bytes, head: int, tail: int) -> list[int]:
    """Every h for which kept == stream[:h] + stream[h + dropped:], with h <= head and the rest <= tail."""
    return [
        h
        for h in range(min(head, len(kept)) + 1)
        if len(kept) - h <= tail and stream[:h] == kept[:h] and stream[h + dropped :] == kept[h:]
    ]


def _decodes(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_small_output_is_kept_whole() -> None:
    """Output shorter than head + tail comes back whole, nothing dropped."""
    buf = OutputBuffer(head=10, tail=8)
    buf.write(b"hello ")
    buf.write(b"world, again")
    assert buf.finish() == (b"hello world, again", 0)
    assert buf.total == 18


def test_head_and_tail_kept_middle_counted() -> None:
    """Past head + tail, the first `head` and last `tail` bytes are kept and exactly the rest is dropped."""
    buf = OutputBuffer(head=4, tail=4)
    for i in range(10):
        buf.write(str(i).encode() * 3)
    remaining, dropped = buf.finish()
    assert remaining == b"0001" + b"8999"
    assert dropped == 30 - 8 == buf.dropped


def test_head_cut_never_splits_a_character() -> None:
    """A head limit falling inside a multi-byte character ends the head before that character."""
    buf = OutputBuffer(head=6, tail=0)
    buf.write(b"ab" + EURO + EURO)  # the limit (6) falls after the first byte of the second euro sign
    assert _drain(buf) == b"ab" + EURO
    assert buf.finish() == (b"", 3)


def test_tail_cut_never_splits_a_character() -> None:
    """A tail window starting inside a multi-byte character starts after that character instead."""
    buf = OutputBuffer(head=0, tail=4)
    buf.write(b"x" + EURO + EURO)  # the last 4 bytes start with the euro's last byte
    assert buf.finish() == (EURO, 4)


def test_incomplete_character_is_held_back_while_streaming() -> None:
    """take_head_chunk does not hand out the first bytes of a character whose last byte has not arrived."""
    buf = OutputBuffer()
    buf.write(b"ok " + EURO[:2])
    assert buf.take_head_chunk() == b"ok "
    assert buf.take_head_chunk() == b""
    buf.write(EURO[2:])
    assert buf.take_head_chunk() == EURO


def test_chunks_end_on_character_boundaries() -> None:
    """A chunk limit inside a character ends the chunk before it; the character comes whole in the next."""
    buf = OutputBuffer()
    buf.write(b"a" + EURO * 3)
    assert buf.take_head_chunk(5) == b"a" + EURO
    assert buf.take_head_chunk(5) == EURO
    assert buf.take_head_chunk(5) == EURO


def test_invalid_bytes_are_kept_verbatim() -> None:
    """Bytes that are not UTF-8 are neither replaced nor lost, at a cut or elsewhere."""
    data = b"\xff\xfe\x80 \xe2\x82 x \xc3"
    buf = OutputBuffer(head=3, tail=5)
    buf.write(data)
    head = _drain(buf)
    remaining, dropped = buf.finish()
    assert head == data[:3]
    assert remaining == data[-5:]
    assert dropped == len(data) - 8


def test_finish_is_final_and_idempotent() -> None:
    """finish() returns the same answer twice, nothing more is handed out, and later writes are refused."""
    buf = OutputBuffer(head=2, tail=2)
    buf.write(b"abcdef")
    assert buf.finish() == buf.finish() == (b"abef", 2)
    assert buf.take_head_chunk() == b""
    with pytest.raises(RuntimeError):
        buf.write(b"x")


def test_memory_is_bounded_by_head_and_tail() -> None:
    """However much is written, the buffer holds O(head + tail) bytes."""
    buf = OutputBuffer(head=100, tail=100)
    block = os.urandom(64 * 1024)
    for _ in range(200):
        buf.write(block)
        assert len(buf._head) + len(buf._ring) <= 100 + 2 * 103
    for _ in range(200):
        buf.write(block[:1000])
        assert len(buf._head) + len(buf._ring) <= 100 + 2 * 103
    assert buf.total == 200 * (64 * 1024 + 1000)


Case = tuple[bytes, list[tuple[bytes, int]]]


def _text() -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=300)


@st.composite
def _writes(draw: st.DrawFn, valid_utf8: bool) -> Case:
    """A stream, cut into writes, each followed by a take_head_chunk of some size (0 = none)."""
    stream = draw(_text()).encode() if valid_utf8 else draw(st.binary(max_size=300))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return stream, [(p, draw(st.sampled_from([0, 4, 5, 7, 64]))) for p in pieces]


def _run(head: int, tail: int, writes: list[tuple[bytes, int]]) -> tuple[OutputBuffer, list[bytes], bytes, int]:
    buf = OutputBuffer(head=head, tail=tail)
    chunks: list[bytes] = []
    for data, take in writes:
        buf.write(data)
        if take:
            chunks.append(buf.take_head_chunk(take))
    remaining, dropped = buf.finish()
    return buf, chunks, remaining, dropped


@settings(max_examples=400)
@given(head=st.integers(0, 40), tail=st.integers(0, 40), case=_writes(valid_utf8=False))
def test_property_accounting_and_prefix_suffix(head: int, tail: int, case: Case) -> None:
    """For any bytes and any write/take pattern: taken + remaining + dropped == total, and what is kept is
    a prefix of at most `head` bytes followed by a suffix of at most `tail` bytes of the stream."""
    stream, writes = case
    buf, chunks, remaining, dropped = _run(head, tail, writes)
    kept = b"".join(chunks) + remaining
    assert buf.total == len(stream)
    assert len(kept) + dropped == buf.total
    assert _splits(kept, dropped, stream, head, tail)
    if len(stream) <= head:
        assert kept == stream


@settings(max_examples=400)
@given(head=st.integers(0, 40), tail=st.integers(0, 40), case=_writes(valid_utf8=True))
def test_property_never_splits_utf8(head: int, tail: int, case: Case) -> None:
    """For valid UTF-8 input, every streamed chunk, the head and the tail decode: no character is ever split,
    and at most 3 bytes of each limit go unused because of it."""
    stream, writes = case
    _, chunks, remaining, dropped = _run(head, tail, writes)
    assert all(_decodes(chunk) for chunk in chunks)
    kept = b"".join(chunks) + remaining
    assert any(
        _decodes(kept[:h]) and _decodes(kept[h:]) and (not dropped or (h > head - 4 and len(kept) - h > tail - 4))
        for h in _splits(kept, dropped, stream, head, tail)
    )


async def test_pipe_reader_reads_to_eof() -> None:
    """PipeReader moves everything written to a pipe into the buffer and sees EOF when the writer closes."""
    r, w = os.pipe()
    buf = OutputBuffer(head=10, tail=10)
    reader = PipeReader(r, buf)
    os.write(w, b"x" * 1000)
    os.close(w)
    await reader.drain(5)
    assert buf.total == 1000
    assert buf.finish() == (b"x" * 20, 980)


async def test_pipe_reader_drain_gives_up() -> None:
    """drain() stops waiting after its deadline when the writer keeps the pipe open."""
    r, w = os.pipe()
    try:
        reader = PipeReader(r, OutputBuffer())
        loop = asyncio.get_running_loop()
        start = loop.time()
        await reader.drain(0.2)
        assert 0.15 < loop.time() - start < 2
        assert reader.eof.done()
    finally:
        os.close(w)
