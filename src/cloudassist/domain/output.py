"""Bounding command output: keep at most the limit, count the rest in `Dropped`."""

from __future__ import annotations


def _sequence_length(lead: int) -> int:
    """How many bytes the UTF-8 sequence starting with `lead` declares (1 for anything else)."""
    if lead >= 0xF0 and lead <= 0xF4:
        return 4
    if lead >= 0xE0 and lead <= 0xEF:
        return 3
    if lead >= 0xC2 and lead <= 0xDF:
        return 2
    return 1


def utf8_cut(data: bytes, limit: int) -> bytes:
    """The longest prefix of `data` of at most `limit` bytes that does not split a UTF-8 character.

    A multi-byte sequence that the limit falls inside is left out whole, also when `data` ends before
    the sequence does (the rest may follow in a later chunk). Bytes that are not UTF-8 (stray
    continuation bytes, other encodings) are cut exactly at the limit.
    """
    if len(data) <= limit:
        return data
    if limit <= 0:
        return b""
    start = limit  # back to the lead byte of the character the limit falls in: at most 3 steps
    while start > 0 and limit - start < 3 and (data[start] & 0xC0) == 0x80:
        start -= 1
    if start < limit:
        length = _sequence_length(data[start])
        following = data[start + 1 : start + length]
        if length > 1 and start + length > limit and all((b & 0xC0) == 0x80 for b in following):
            return data[:start]
    return data[:limit]


def append(kept: bytes, dropped: int, chunk: bytes, limit: int) -> tuple[bytes, int]:
    """Append `chunk` to output already `kept`, returning the new kept bytes and dropped count.

    The kept output is always a prefix of the whole stream: once anything was dropped, every later
    byte is dropped too, and the result does not depend on how the stream was cut into chunks
    (a character split across two chunks is judged whole).
    """
    if dropped or not chunk or len(kept) > limit:  # over: the limit was lowered since; keep what was kept
        return kept, dropped + len(chunk)
    whole = kept + chunk
    # a trailing half character kept earlier is given back if the stream now overflows inside it
    head = utf8_cut(whole, limit)
    return head, len(whole) - len(head)
