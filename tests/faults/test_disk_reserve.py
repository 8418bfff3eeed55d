"""A SQLite database whose file system fills up keeps storing: the server holds a reserve of disk space beside
the database and gives it back at the first write that meets the full disk (store/reserve.py), and makes it
again once space is back. Without the reserve (`disk_reserve_mb=0`) the same full disk answers every signed
call ServiceUnavailable, since each call must store its nonce (found by the chaos run, bench/chaos.py,
disk-full: 293 answers of 503 and 7 outputs an official agent dropped after its third 503).

The database lives on a real, size-limited tmpfs (mounted here: the fault suite runs as root) and is filled by
a real file until the kernel answers ENOSPC; the server's log stays on another file system.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from luban import Agent, Ecs, create_activation

from cloudassist.store.reserve import NAME
from cloudassist.testing import LiveServer, signed_query, wait_for

RESERVE_MB = 8
PARAMS = {"Action": "DescribeCommands", "RegionId": "cn-hangzhou", "Version": "2014-05-26"}


@contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextmanager
def filled(fs: Path) -> Iterator[int]:
    """Write a file on `fs` until the kernel refuses (ENOSPC); how many bytes it took. Removed on the way out."""
    filler = fs / "filler"
    written = 0
    chunk = b"\0" * (1 << 20)
    try:
        with open(filler, "wb", buffering=0) as handle:
            while True:
                try:
                    written += handle.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
            for size in (65536, 4096, 512, 1):  # the last pages too
                try:
                    while True:
                        written += handle.write(b"\0" * size)
                except OSError:
                    pass
        yield written
    finally:
        filler.unlink(missing_ok=True)


def signed_calls(server: LiveServer, count: int) -> list[int]:
    with httpx.Client(timeout=30, trust_env=False) as http:
        query = lambda: signed_query(PARAMS, server.access_key_id, server.secret)  # noqa: E731
        return [http.post(f"http://{server.endpoint}/?{query()}").status_code for _ in range(count)]


def test_a_full_disk_under_the_database_is_met_with_the_reserve(
    start: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """With the reserve: 40 signed calls, a RunCommand and an agent's registration and reports while the disk is
    full are all served (the write that meets the full disk may be refused once), the release is logged once,
    and once space is back the reserve is made again. Without it: every signed call is a 503."""
    with tmpfs(tmp_path / "db-fs", 200) as fs:  # the reserve is at most a twentieth: 10 MiB
        bare = start(db=f"sqlite:///{fs}/bare.db", disk_reserve_mb=0)
        assert not (fs / NAME).exists()
        with filled(fs):
            assert set(signed_calls(bare, 10)) == {503}

        server = start(db=f"sqlite:///{fs}/cloudassist.db", disk_reserve_mb=RESERVE_MB)
        reserve = fs / NAME
        assert reserve.stat().st_size == RESERVE_MB << 20
        assert reserve.stat().st_blocks * 512 >= RESERVE_MB << 20  # allocated, not sparse
        ecs = Ecs(server.endpoint)
        activation = create_activation(ecs, 1)
        with filled(fs) as taken:
            assert taken > 0
            answers = signed_calls(server, 40)
            assert answers.count(503) <= 1, answers
            assert answers.count(200) >= 39, answers
            assert not reserve.exists()
            agent = Agent(server)
            assert agent.register(activation.activation_id, activation.code).status_code == 200
            assert agent.heartbeat().status_code == 200
            invoke_id = ecs.run_command(agent.instance_id, "echo still-stored")
            run = agent.execution(agent.tasks("kickoff", task_id=invoke_id)["run"][0])
            assert agent.running(run).status_code == 200
            assert agent.finish(run, 0, b"still-stored\n").status_code == 200
            result = ecs.result(invoke_id)
            assert result["InvocationStatus"] == "Success"
            assert result["Output"] == "still-stored\n"
            agent.close()
        wait_for(reserve.exists, 30, "the reserve to be made again once space is back")
        ecs.close()
        log = server.log()
        assert log.count("disk full beside the database: gave back the 8 MiB reserve") == 1, log[-3000:]
        assert log.count(f"disk reserve of {RESERVE_MB} MiB held") == 2
