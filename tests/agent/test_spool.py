"""The report spool: durable, ordered, bounded, and drained only by acknowledgements.

The sender's `send` here is a stand-in for the server's HTTP endpoint (the boundary of the agent), which
fails when told to; delivery to the real server is proven in test_runner.py.
"""

from __future__ import annotations

import asyncio
import random
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest

from cloudassist.agent.client import ServerError
from cloudassist.agent.spool import Backoff, Spool, SpoolSender


def _query(n: int) -> dict[str, str]:
    return {"taskId": f"t-{n}", "invokeVersion": "1", "outputOffset": str(n)}


def test_reports_survive_a_restart_in_order(tmp_path: Path) -> None:
    """Reports spooled by one agent process are read back by the next in the order they were put, bodies
    byte for byte (binary included); later reports queue behind them."""
    first = Spool(tmp_path / "spool")
    bodies = [b"", b"hello\n", bytes(range(256)), "中文\n".encode()]
    for n, body in enumerate(bodies):
        first.put("running", _query(n), body, final=False)
    first.put("finish", _query(9), b"tail", final=True)

    second = Spool(tmp_path / "spool")
    second.put("finish", _query(10), b"later", final=True)
    seen = []
    while (item := second.peek()) is not None:
        seen.append((item.kind, item.query["taskId"], item.body, item.final))
        second.remove(item.seq)
    assert seen == [("running", f"t-{n}", body, False) for n, body in enumerate(bodies)] + [
        ("finish", "t-9", b"tail", True), ("finish", "t-10", b"later", True)]
    assert len(Spool(tmp_path / "spool")) == 0


def test_files_are_private_and_crash_leftovers_are_ignored(tmp_path: Path) -> None:
    """Spooled reports are 0600 files in a 0700 directory. A temporary file left by a crash mid-write is
    never read as a report, and removed at startup; an unreadable report is dropped rather than blocking
    the others."""
    spool = Spool(tmp_path / "spool")
    spool.put("finish", _query(1), b"one", final=True)
    spool.put("finish", _query(2), b"two", final=True)
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "spool").iterdir())
    (tmp_path / "spool" / ".000000000003.abc.tmp").write_bytes(b'{"kind": "finish"')
    first = sorted((tmp_path / "spool").glob("*.rep"))[0]
    first.write_bytes(b"not json\n")

    reopened = Spool(tmp_path / "spool")
    assert len(reopened) == 2
    assert reopened.discard_partial_writes() == 1
    item = reopened.peek()
    assert item is not None
    assert item.body == b"two"
    assert not list((tmp_path / "spool").glob("*.tmp"))


def test_the_spool_is_bounded_but_never_drops_a_final_report(tmp_path: Path) -> None:
    """At max_files, a running chunk is refused (and counted); a final report pushes out the oldest running
    chunk; with only final reports left, a final report is still taken."""
    spool = Spool(tmp_path / "spool", max_files=3)
    assert spool.put("running", _query(1), b"a", final=False) is not None
    assert spool.put("running", _query(2), b"b", final=False) is not None
    assert spool.put("finish", _query(3), b"c", final=True) is not None
    assert spool.put("running", _query(4), b"d", final=False) is None
    assert spool.put("finish", _query(5), b"e", final=True) is not None
    assert [i.query["taskId"] for i in spool.items()] == ["t-2", "t-3", "t-5"]
    spool.put("finish", _query(6), b"f", final=True)
    spool.put("finish", _query(7), b"g", final=True)
    assert [i.query["taskId"] for i in spool.items()] == ["t-3", "t-5", "t-6", "t-7"]
    assert spool.dropped_chunks == 3


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    """Delay n is within [0.5, 1] x min(cap, first x 2^n): 1 s, 2 s, 4 s ... capped at 60 s; reset restarts."""
    backoff = Backoff(1.0, 60.0, rng=random.Random(7))
    delays = [backoff.next() for _ in range(10)]
    for n, delay in enumerate(delays):
        ceiling = min(60.0, 2.0**n)
        assert ceiling / 2 <= delay <= ceiling, (n, delay)
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not a fixed ladder
    backoff.reset()
    assert 0.5 <= backoff.next() <= 1.0


class FlakyServer:
    """Takes reports, or fails with what it is told to fail with; records what it took."""

    def __init__(self) -> None:
        self.failures: list[Exception] = []
        self.taken: list[tuple[str, str]] = []
        self.attempts = 0

    async def send(self, kind: str, query: Mapping[str, str], body: bytes) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.taken.append((kind, query["taskId"]))


async def _until(condition: object, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_sender_keeps_each_report_until_acknowledged_and_keeps_order(tmp_path: Path) -> None:
    """Network errors and 5xx/401 answers leave the report in place and it is retried after a back-off,
    in order; a permanent refusal (400) drops only that report; each acknowledged report is removed."""
    spool = Spool(tmp_path / "spool")
    server = FlakyServer()
    server.failures = [OSError("connection refused"), ServerError(503, 503, "busy"), ServerError(401, 401, "sig")]
    sender = SpoolSender(spool, server.send, Backoff(0.01, 0.02))
    task = asyncio.create_task(sender.run())
    try:
        for n in range(3):
            spool.put("running", _query(n), b"x", final=False)
        sender.notify()
        await _until(lambda: len(server.taken) == 3)
        assert server.taken == [("running", "t-0"), ("running", "t-1"), ("running", "t-2")]
        assert server.attempts == 6
        assert len(spool) == 0

        server.failures = [ServerError(400, 400, "bad request", "InvalidParameter")]
        spool.put("finish", _query(3), b"", final=True)
        spool.put("finish", _query(4), b"", final=True)
        sender.notify()
        await _until(lambda: len(spool) == 0)
        assert server.taken[-1] == ("finish", "t-4")
    finally:
        task.cancel()


async def test_retry_now_cuts_a_long_back_off_short(tmp_path: Path) -> None:
    """While the sender waits out a long back-off, retry_now() (the server answered a heart-beat) makes it
    try at once; flush() does the same and reports whether the spool emptied."""
    spool = Spool(tmp_path / "spool")
    server = FlakyServer()
    server.failures = [OSError("down")]
    sender = SpoolSender(spool, server.send, Backoff(30.0, 60.0))
    task = asyncio.create_task(sender.run())
    try:
        spool.put("finish", _query(1), b"", final=True)
        sender.notify()
        await _until(lambda: server.attempts == 1)
        await asyncio.sleep(0.05)
        assert len(spool) == 1
        sender.retry_now()
        await _until(lambda: len(spool) == 0, seconds=2)

        server.failures = [OSError("down")]
        spool.put("finish", _query(2), b"", final=True)
        sender.notify()
        await _until(lambda: server.attempts == 3)
        assert await sender.flush(2.0)
    finally:
        task.cancel()


@pytest.mark.parametrize("status", [401, 403, 407, 408, 409, 423, 425, 429, 499, 500, 502])
def test_only_definite_refusals_are_permanent(status: int) -> None:
    """Auth, conflicts, throttling and server errors are retried; other 4xx answers are not, when they are the
    server's own error document (with an errCode): a bare 4xx (a proxy's page) is retried too."""
    assert not ServerError(status, status, "", "Whatever").permanent
    assert ServerError(400, 400, "", "InvalidParameter").permanent
    assert ServerError(413, 413, "", "RequestTooLarge").permanent
    assert ServerError(404, 404, "", "NotFound").permanent
    assert not ServerError(400, None, "<html>400 Bad Request</html>").permanent
    assert not ServerError(404, None, "not found").permanent
