"""Tables and properties for bounding command output: `utf8_cut` and `append` (Output/Dropped)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cloudassist.domain.output import append, utf8_cut

E_ACUTE = "é".encode()  # 2 bytes: C3 A9
EURO = "€".encode()  # 3 bytes: E2 82 AC
SMILE = "😀".encode()  # 4 bytes: F0 9F 98 80


@pytest.mark.parametrize(("data", "limit", "expected"), [
    pytest.param(b"", 0, b"", id="empty"),
    pytest.param(b"abc", 3, b"abc", id="fits-exactly"),
    pytest.param(b"abc", 10, b"abc", id="fits"),
    pytest.param(b"abcdef", 4, b"abcd", id="ascii"),
    pytest.param(b"abc", 0, b"", id="zero-limit"),
    pytest.param(b"a" + E_ACUTE, 2, b"a", id="2-byte-split-after-lead"),
    pytest.param(b"a" + E_ACUTE + b"b", 3, b"a" + E_ACUTE, id="2-byte-whole"),
    pytest.param(EURO, 1, b"", id="3-byte-split-1"),
    pytest.param(EURO, 2, b"", id="3-byte-split-2"),
    pytest.param(EURO + b"x", 3, EURO, id="3-byte-whole"),
    pytest.param(b"ab" + SMILE, 3, b"ab", id="4-byte-split-1"),
    pytest.param(b"ab" + SMILE, 4, b"ab", id="4-byte-split-2"),
    pytest.param(b"ab" + SMILE, 5, b"ab", id="4-byte-split-3"),
    pytest.param(b"ab" + SMILE + b"c", 6, b"ab" + SMILE, id="4-byte-whole"),
    pytest.param(b"\xff" * 10, 5, b"\xff" * 5, id="not-utf8-lead-bytes"),
    pytest.param(b"\x80" * 10, 5, b"\x80" * 5, id="not-utf8-continuation-bytes"),
])
def test_utf8_cut(data: bytes, limit: int, expected: bytes) -> None:
    """The cut keeps the longest prefix of at most `limit` bytes that ends on a character boundary."""
    assert utf8_cut(data, limit) == expected


@pytest.mark.parametrize(("data", "limit", "expected"), [
    pytest.param(b"\x80" * 10, 2, b"\x80\x80", id="continuation-bytes-only-small-limit"),
    pytest.param(b"a\x80\x80\x80\x80", 3, b"a\x80\x80", id="ascii-then-stray-continuations"),
    pytest.param("À".encode() + b"\x80", 2, "À".encode(), id="whole-char-then-stray-continuation"),
])
def test_utf8_cut_keeps_bytes_that_split_no_character(data: bytes, limit: int, expected: bytes) -> None:
    """Bytes that are not part of any UTF-8 character are cut where the limit falls (the docstring's
    promise): stray continuation bytes never make the cut drop a complete character or ASCII byte."""
    assert utf8_cut(data, limit) == expected


def _longest_boundary_prefix(text: str, limit: int) -> bytes:
    kept = b""
    for char in text:
        encoded = char.encode()
        if len(kept) + len(encoded) > limit:
            break
        kept += encoded
    return kept


@given(st.text(), st.integers(min_value=0, max_value=80))
def test_utf8_cut_never_splits_a_character(text: str, limit: int) -> None:
    """For UTF-8 text the cut is a strictly decodable prefix: the longest one of at most `limit` bytes."""
    data = text.encode()
    kept = utf8_cut(data, limit)
    kept.decode("utf-8")  # strict: raises if a character was split
    assert kept == _longest_boundary_prefix(text, limit)


@given(st.binary(), st.integers(min_value=0, max_value=80))
def test_utf8_cut_is_a_bounded_prefix(data: bytes, limit: int) -> None:
    """For any bytes the cut is a prefix of at most `limit` bytes, shorter by at most 3 bytes (one
    partial character), and the whole data when it fits."""
    kept = utf8_cut(data, limit)
    assert data.startswith(kept)
    assert len(kept) <= limit or kept == data
    assert len(kept) >= min(len(data), limit) - 3
    if len(data) <= limit:
        assert kept == data


@pytest.mark.parametrize(("kept", "dropped", "chunk", "limit", "expected"), [
    pytest.param(b"", 0, b"abc", 10, (b"abc", 0), id="first-chunk-fits"),
    pytest.param(b"ab", 0, b"cd", 4, (b"abcd", 0), id="fills-exactly"),
    pytest.param(b"ab", 0, b"cdef", 4, (b"abcd", 2), id="partly-dropped"),
    pytest.param(b"abcd", 2, b"xyz", 4, (b"abcd", 5), id="full-drops-all"),
    pytest.param(b"ab", 0, E_ACUTE, 3, (b"ab", 2), id="character-not-split"),
    pytest.param(b"ab", 0, b"", 2, (b"ab", 0), id="empty-chunk"),
    pytest.param(b"abcdef", 0, b"g", 4, (b"abcdef", 1), id="already-over-a-lowered-limit"),
])
def test_append(kept: bytes, dropped: int, chunk: bytes, limit: int, expected: tuple[bytes, int]) -> None:
    """Appending keeps what fits (whole characters only) and counts every other byte in Dropped."""
    assert append(kept, dropped, chunk, limit) == expected


def _fold(chunks: list[bytes], limit: int) -> tuple[bytes, int]:
    kept, dropped = b"", 0
    for chunk in chunks:
        kept, dropped = append(kept, dropped, chunk, limit)
    return kept, dropped


_CHUNK = st.one_of(st.binary(max_size=12), st.text(max_size=6).map(str.encode))


@given(st.lists(_CHUNK, max_size=8), st.integers(min_value=0, max_value=40))
@example(chunks=[b"ab" + E_ACUTE, b"c"], limit=3)
def test_append_counts_every_byte_and_keeps_a_prefix(chunks: list[bytes], limit: int) -> None:
    """Over any sequence of chunks, kept + dropped is the total length and the kept bytes are a prefix
    of the whole output of at most `limit` bytes (no byte of a later chunk fills a gap left earlier)."""
    whole = b"".join(chunks)
    kept, dropped = _fold(chunks, limit)
    assert len(kept) + dropped == len(whole)
    assert whole.startswith(kept)
    assert len(kept) <= limit


@st.composite
def _split_text(draw: st.DrawFn) -> list[bytes]:
    """UTF-8 text cut into chunks at arbitrary byte positions, as a pipe may deliver it."""
    whole = draw(st.text(max_size=30)).encode()
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(whole)), max_size=6)))
    return [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]


@given(_split_text(), st.integers(min_value=0, max_value=40))
@example(chunks=[b"ab\xc3", b"\xa9"], limit=3)
def test_append_does_not_depend_on_how_output_was_chunked(chunks: list[bytes], limit: int) -> None:
    """The agent may split output (even inside a character) anywhere: the stored Output and Dropped are
    those of cutting the whole output once, so the Output never ends in half a character."""
    whole = b"".join(chunks)
    head = utf8_cut(whole, limit)
    assert _fold(chunks, limit) == (head, len(whole) - len(head))
