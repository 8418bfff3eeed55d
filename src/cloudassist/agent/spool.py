"""A durable FIFO of task reports, and the sender that drains it to the server.

Every report (the "started" post, running-output chunks, the final report) is written here first, one
file per report named by a sequence number, atomically and durably (temp file, fsync, rename, fsync of
the directory). A report leaves the spool only when the server acknowledged it (HTTP 2xx with
`"code": 200`), so a result survives a server outage, a network loss, an agent crash and a reboot; the
official agent drops it after three tries (agent-protocol §1.12, field lessons #10).

Reports go out one at a time, in order: a task's chunks reach the server before its final report. While
the server cannot be reached the sender backs off exponentially with jitter (1 s doubling to 60 s);
`retry_now()` cuts the wait short when the agent learns the server is back (a heart-beat got through).
Resending is harmless: the server skips output it already has (`outputOffset`) and ignores reports for an
execution that has ended.

Disk use is bounded by `max_files` (10,000): when full, new running chunks are dropped (and counted, so
the final report can add them to `dropped`); a final report pushes out the oldest running chunk
instead, and is never dropped itself.

A write that fails (the disk is full, the directory read-only) drops a running chunk the same way; a final
report is then kept in memory, in its place in the order, written to disk as soon as a write succeeds and
sent meanwhile like the others (only an agent crash before either loses it; the journal then reports the
run ExecutionInterrupted).

A report the server refuses for good (`ServerError.permanent`: our server's own 4xx answer, not an auth,
conflict or throttling one) would block every report behind it forever: it is moved to `dead-letter/` in
the state directory with the server's answer, logged, and the reports behind it go on. 5xx answers,
network errors and anything unreadable are retried with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cloudassist.agent.client import ServerError
from cloudassist.agent.identity import fsync_dir, write_atomic

log = logging.getLogger("cloudassist.agent.spool")
MAX_FILES = 10_000
#: The directory, beside the spool, of reports the server refused for good; and how many are kept there.
DEAD_LETTER = "dead-letter"
MAX_DEAD_LETTERS = 1000
_NAME = re.compile(r"^(\d{12})-(final|chunk)\.rep$")

Send = Callable[[str, Mapping[str, str], bytes], Awaitable[None]]


@dataclass(frozen=True)
class Item:
    """One spooled report: POST v1/task/<kind>?<query> with `body`."""

    seq: int
    kind: str
    query: dict[str, str]
    body: bytes
    final: bool


def _encode(item: Item) -> bytes:
    """A spool file: a JSON header line, then the body."""
    header = json.dumps({"kind": item.kind, "query": item.query, "final": item.final}, sort_keys=True).encode()
    return header + b"\n" + item.body


class Spool:
    """The reports waiting in `directory` (created 0700). Used from one thread (the agent's event loop)."""

    def __init__(self, directory: Path, max_files: int = MAX_FILES) -> None:
        self.directory = directory
        self.max_files = max_files
        self.dropped_chunks = 0
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._index: dict[int, bool] = {}  # seq -> final, in seq order
        self._held: dict[int, Item] = {}  # final reports that could not be written yet (kept in memory)
        for path in sorted(directory.iterdir()):
            if match := _NAME.match(path.name):
                self._index[int(match.group(1))] = match.group(2) == "final"
        self._next = max(self._index, default=0) + 1

    def discard_partial_writes(self) -> int:
        """Remove temp files of reports a crash cut short (never acknowledged, never counted); only while no
        other process writes (the agent calls it at startup, holding the state directory's lock)."""
        stale = list(self.directory.glob(".*.tmp"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def __len__(self) -> int:
        return len(self._index)

    def _path(self, seq: int, final: bool) -> Path:
        return self.directory / f"{seq:012d}-{'final' if final else 'chunk'}.rep"

    def put(self, kind: str, query: Mapping[str, str], body: bytes = b"", *, final: bool) -> int | None:
        """Append a report durably; its sequence number, or None if a running chunk was dropped (spool full)."""
        if len(self._index) >= self.max_files:
            if not final:
                self.dropped_chunks += 1
                return None
            oldest_chunk = next((seq for seq, is_final in self._index.items() if not is_final), None)
            if oldest_chunk is not None:
                log.warning("spool full: dropping running chunk %d to keep a final report", oldest_chunk)
                self.remove(oldest_chunk)
                self.dropped_chunks += 1
        seq = self._next
        self._next += 1
        try:
            self._write(Item(seq, kind, dict(query), body, final))
        except OSError as exc:
            if not final:
                self.dropped_chunks += 1
                log.warning("cannot spool a running report of %s (%s); dropped", query.get("taskId"), exc)
                return None
            log.error("cannot spool the final report of %s (%s); kept in memory until it can be written",
                      query.get("taskId"), exc)
            self._held[seq] = Item(seq, kind, dict(query), body, final)
        self._index[seq] = final
        return seq

    def _write(self, item: Item) -> None:
        write_atomic(self._path(item.seq, item.final), _encode(item), mode=0o600)  # its temp file matches ".*.tmp"

    def _persist_held(self) -> None:
        """Write the reports kept in memory, oldest first, while writes succeed."""
        for seq, item in list(self._held.items()):
            try:
                self._write(item)
            except OSError:
                return
            del self._held[seq]
            log.info("final report %d of %s is on disk now", seq, item.query.get("taskId"))

    @property
    def held(self) -> int:
        """Final reports kept in memory only (their writes failed)."""
        return len(self._held)

    def peek(self) -> Item | None:
        """The oldest report, or None when empty. An unreadable file is logged and removed."""
        if self._held:
            self._persist_held()
        while self._index:
            seq, final = next(iter(self._index.items()))
            if seq in self._held:
                return self._held[seq]
            try:
                raw = self._path(seq, final).read_bytes()
                header, _, body = raw.partition(b"\n")
                meta = json.loads(header)
                return Item(
                    seq,
                    str(meta["kind"]),
                    {str(k): str(v) for k, v in meta["query"].items()},
                    body,
                    bool(meta.get("final", final)),
                )
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                log.error("dropping unreadable spooled report %d: %s", seq, exc)
                self.remove(seq)
        return None

    def items(self) -> list[Item]:
        """Every report, oldest first (for inspection; the sender uses peek/remove)."""
        found = []
        for seq, final in list(self._index.items()):
            if seq in self._held:
                found.append(self._held[seq])
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                header, _, body = self._path(seq, final).read_bytes().partition(b"\n")
                meta = json.loads(header)
                found.append(Item(seq, meta["kind"], dict(meta["query"]), body, bool(meta["final"])))
        return found

    def remove(self, seq: int) -> None:
        """Forget a report (the server acknowledged it)."""
        final = self._index.pop(seq, None)
        if final is None:
            return
        if self._held.pop(seq, None) is not None:
            return
        self._path(seq, final).unlink(missing_ok=True)
        fsync_dir(self.directory)

    def dead_letter(self, item: Item, reason: str) -> Path | None:
        """Move `item` out of the queue into `dead-letter/` beside the spool (with `reason` in a second file);
        its path there, or None if it could not be kept (it leaves the queue all the same)."""
        dead = self.directory.parent / DEAD_LETTER
        name = self._path(item.seq, item.final).name
        kept: Path | None = dead / f"{time.strftime('%Y%m%dT%H%M%S')}-{name}"
        try:
            dead.mkdir(mode=0o700, exist_ok=True)
            assert kept is not None
            if item.seq in self._held:
                write_atomic(kept, _encode(item))
            else:
                os.replace(self._path(item.seq, item.final), kept)
            with contextlib.suppress(OSError):
                kept.with_suffix(".reason").write_text(reason + "\n")
            self._prune_dead(dead)
        except OSError as exc:
            log.error("cannot keep the refused report %d in %s: %s", item.seq, dead, exc)
            kept = None
        self.remove(item.seq)
        return kept

    @staticmethod
    def _prune_dead(dead: Path) -> None:
        """Keep the newest MAX_DEAD_LETTERS refused reports."""
        reports = sorted(dead.glob("*.rep"))
        for old in reports[: max(0, len(reports) - MAX_DEAD_LETTERS)]:
            old.unlink(missing_ok=True)
            old.with_suffix(".reason").unlink(missing_ok=True)


class Backoff:
    """Exponential back-off with jitter: the n-th delay is min(cap, first * 2**n) times a random 0.5 to 1."""

    def __init__(self, first: float = 1.0, cap: float = 60.0, rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret

    def next(self) -> float:
        base = min(self.cap, self.first * float(2 ** min(self.failures, 30)))
        self.failures += 1
        return base * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


class SpoolSender:
    """Drains a Spool in order through `send(kind, query, body)`, which raises unless acknowledged."""

    def __init__(self, spool: Spool, send: Send, backoff: Backoff | None = None) -> None:
        self.spool = spool
        self._send = send
        self.backoff = backoff or Backoff()
        self._work = asyncio.Event()  # something new was spooled
        self._retry = asyncio.Event()  # the server seems reachable again: end a back-off wait early
        self._empty = asyncio.Event()
        self.sent = 0
        self.refused = 0  #: reports the server refused for good (moved to dead-letter/)
        self.last_error: str = ""

    def notify(self) -> None:
        """A report was spooled: send it when the sender is idle (it does not cut a back-off short)."""
        self._work.set()

    def retry_now(self) -> None:
        """The server answered something else: try the waiting report now rather than after the back-off."""
        self._retry.set()
        self._work.set()

    async def run(self) -> None:
        """Send forever (until cancelled)."""
        while True:
            item = self.spool.peek()
            if item is None:  # nothing awaits between peek and clear: a notify() cannot slip through
                self._empty.set()
                self._work.clear()
                await self._work.wait()
                continue
            self._empty.clear()
            try:
                await self._send(item.kind, item.query, item.body)
            except ServerError as exc:
                if exc.permanent:  # the server will never take it: do not block the reports behind it
                    kept = self.spool.dead_letter(item, str(exc))
                    log.error(
                        "server refused %s report %s for good (%s); dropped from the spool, kept in %s",
                        item.kind,
                        item.query.get("taskId"),
                        exc,
                        kept,
                    )
                    self.refused += 1
                    self.backoff.reset()
                    continue
                await self._wait_after_failure(item, exc)
            except Exception as exc:  # network, TLS, a 5xx, an unexpected reply: retry later
                await self._wait_after_failure(item, exc)
            else:
                self.spool.remove(item.seq)
                self.sent += 1
                self.backoff.reset()
                self.last_error = ""

    async def _wait_after_failure(self, item: Item, exc: BaseException) -> None:
        delay = self.backoff.next()
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.info(
            "cannot deliver %s report for %s (%s); %d waiting, next try in %.1f s",
            item.kind,
            item.query.get("taskId"),
            self.last_error,
            len(self.spool),
            delay,
        )
        self._retry.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._retry.wait(), delay)
        self._retry.clear()

    async def flush(self, within: float) -> bool:
        """Wait up to `within` seconds for the spool to empty (trying at once); True if it did."""
        if not len(self.spool):
            return True
        self._empty.clear()
        self.retry_now()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._empty.wait(), within)
        return not len(self.spool)
