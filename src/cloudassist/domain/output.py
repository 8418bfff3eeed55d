"""Bounding command output: keep at most the limit, count the rest in `Dropped`."""

from __future__ import annotations


def utf8_cut(data: bytes, limit: int) -> bytes:
    """The longest prefix of `data` of at most `limit` bytes that does not split a UTF-8 character.

    Bytes that are not UTF-8 at all are cut where the limit falls.
    """
    if len(data) <= limit:
        return data
    cut = limit
    # step back over continuation bytes (10xxxxxx) to the start of the character the limit splits
    back = 0
    while cut > 0 and back < 3 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
        back += 1
    if back == 3 and (data[cut] & 0xC0) == 0x80:
        return data[:limit]
    return data[:cut]


def append(kept: bytes, dropped: int, chunk: bytes, limit: int) -> tuple[bytes, int]:
    """Append `chunk` to output already `kept`, returning the new kept bytes and dropped count."""
    room = limit - len(kept)
    if room <= 0:
        return kept, dropped + len(chunk)
    head = utf8_cut(chunk, room)
    return kept + head, dropped + len(chunk) - len(head)
