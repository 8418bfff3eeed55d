"""Bounded capture of a task's merged stdout/stderr: the first bytes and the last bytes, the middle counted.

The agent streams the head while the task runs (`take_head_chunk`, at most 2048 bytes a tick as the official
agent does) and sends the rest with the final report (`finish`). Whatever the task prints, the buffer holds
O(head + tail) bytes, and no cut ever falls inside a UTF-8 character: a cut that would split one moves to
the character's edge, so the character goes wholly to one side. Bytes that are not UTF-8 are kept verbatim
and cut where the limit falls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

_CONTEXT = 3  # bytes kept before the tail window: enough to see a character that straddles its start


def _seq_len(byte: int) -> int:
    """Length of the UTF-8 sequence `byte` starts: 1 for ASCII and for bytes that cannot start one."""
    if 0xC2 <= byte <= 0xDF:
        return 2
    if 0xE0 <= byte <= 0xEF:
        return 3
    if 0xF0 <= byte <= 0xF4:
        return 4
    return 1


def _is_continuation(byte: int) -> bool:
    return byte & 0xC0 == 0x80


def _straddler(data: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """The (start, end) of a UTF-8 character that a cut at `pos` would split, or None if the cut is clean.

    Bytes of the character beyond the end of `data` are not known yet and count as if they will complete it;
    a known byte that is not a continuation byte makes the sequence invalid, and then nothing is split.
    """
    lowest = max(0, pos - _CONTEXT)
    start = pos - 1
    while start >= lowest and _is_continuation(data[start]):
        start -= 1
    if start < lowest:
        return None
    end = start + _seq_len(data[start])
    if end <= pos:
        return None
    if not all(_is_continuation(b) for b in data[pos:end]):
        return None
    return start, end


class OutputBuffer:
    """Bounded capture of a merged stdout/stderr stream: keeps the first `head` bytes and the last `tail` bytes,
    counts the rest as dropped; cuts on UTF-8 character boundaries (a multi-byte char is never split; invalid
    bytes are kept as they are). Memory is O(head + tail) whatever is written.

    `take_head_chunk` hands out the head as it fills (for the running reports); `finish` returns what was not
    handed out (the rest of the head, then the tail) and the dropped count. A head cut that would split a
    character ends the head before it, so the head may hold up to 3 bytes fewer than `head`; the same holds for
    the start of the tail. Not thread-safe: one writer and one reader on the same thread (the agent's loop).
    """

    def __init__(self, head: int = 12 * 1024, tail: int = 12 * 1024) -> None:
        if head < 0 or tail < 0:
            raise ValueError("head and tail must be >= 0")
        self._head_cap = head
        self._tail_cap = tail
        self._head = bytearray()
        self._head_closed = False  # True once the stream went past the head: the head's end is final
        self._taken = 0  # bytes of the head already handed out by take_head_chunk
        self._ring = bytearray()  # the last tail + _CONTEXT bytes of the stream after the head
        self._after_head = 0  # bytes of the stream after the head
        self._finished: tuple[bytes, int] | None = None
        self.total = 0
        self.dropped = 0

    def write(self, data: bytes) -> None:
        """Append `data` to the stream. Raises RuntimeError after `finish`."""
        if self._finished is not None:
            raise RuntimeError("OutputBuffer.write after finish")
        if not data:
            return
        self.total += len(data)
        if self._head_closed:
            self._write_tail(data)
            return
        room = self._head_cap - len(self._head)
        if len(data) <= room:
            self._head += data
            return
        # The stream now passes the end of the head: decide the cut, now that the byte after it is known.
        self._head += data[:room]
        rest = data[room:]
        before = bytes(self._head[-_CONTEXT:])
        split = _straddler(before + rest[:_CONTEXT], len(before))
        cut = len(self._head)
        if split is not None:  # the last character of the head continues in `rest`: it goes to the tail side
            cut = max(self._taken, cut - (len(before) - split[0]))
        carry = bytes(self._head[cut:])
        del self._head[cut:]
        self._head_closed = True
        self._write_tail(carry + rest)

    def _write_tail(self, data: bytes) -> None:
        self._after_head += len(data)
        self.dropped = max(0, self._after_head - self._tail_cap)  # the exact figure comes with finish()
        cap = self._tail_cap + _CONTEXT
        if len(data) >= cap:
            self._ring[:] = data[-cap:]
        else:
            self._ring += data
            if len(self._ring) > 2 * cap:
                del self._ring[: len(self._ring) - cap]

    def take_head_chunk(self, max_bytes: int = 2048) -> bytes:
        """The next not-yet-taken bytes of the head (at most `max_bytes`, >= 4), ending on a character boundary.

        While the head is still filling, an incomplete character at the end of what was written is held back
        until its remaining bytes arrive (or until `finish`). Returns b"" when there is nothing to hand out.
        """
        if max_bytes < 4:
            raise ValueError("max_bytes must be >= 4 (the longest UTF-8 character)")
        if self._finished is not None:
            return b""
        end = min(len(self._head), self._taken + max_bytes)
        if end < len(self._head) or not self._head_closed:
            split = _straddler(self._head, end)
            if split is not None:
                end = max(self._taken, split[0])
        chunk = bytes(self._head[self._taken : end])
        self._taken = end
        return chunk

    def finish(self) -> tuple[bytes, int]:
        """(remaining = untaken head + tail, dropped): head-taken + remaining is what was kept. Idempotent."""
        if self._finished is None:
            ring = bytes(self._ring[-(self._tail_cap + _CONTEXT) :])
            if self._after_head <= self._tail_cap:
                tail = ring  # everything after the head fits
            else:
                start = len(ring) - self._tail_cap
                split = _straddler(ring, start)
                tail = ring[split[1] if split is not None else start :]
            remaining = bytes(self._head[self._taken :]) + tail
            self.dropped = self.total - len(self._head) - len(tail)
            self._taken = len(self._head)
            self._finished = (remaining, self.dropped)
            self._ring = bytearray()
        return self._finished


class PipeReader:
    """Reads a pipe on the running event loop into an OutputBuffer, a chunk per wake-up, until EOF or close().

    Memory stays bounded however fast the writer is: each chunk goes straight into the buffer, and the pipe's
    own capacity makes the writer wait while the loop is busy. Takes ownership of `fd`.
    """

    def __init__(self, fd: int, buffer: OutputBuffer, chunk: int = 64 * 1024) -> None:
        self._fd: int | None = fd
        self._buffer = buffer
        self._chunk = chunk
        self._loop = asyncio.get_running_loop()
        self.eof: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, self._chunk)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._buffer.write(data)
        else:
            self.close()

    async def drain(self, seconds: float) -> None:
        """Keep reading until EOF, for at most `seconds` (a background child may hold the pipe); then close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.eof), seconds)
        self.close()

    def close(self) -> None:
        """Stop reading and close the pipe (a writer still holding it gets EPIPE/SIGPIPE)."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if not self.eof.done():
            self.eof.set_result(None)
