"""Agent-side faults (issue 8), survived by real agent processes against a real `cloudassist server`.

A full disk is the kernel's own refusal: the agent process's file-size limit is set to 0 from outside
(`prlimit`, no root needed), so every write that would grow a regular file fails (EFBIG, as ENOSPC would),
while creating, renaming and removing files still work, as on a full disk. The agent logs to a pipe (read by
the test), which the limit does not touch. The limit is lifted again to play "space came back".

A read-only state directory is one the agent process may not write: mode 0500, and when the tests run as
root the agent runs without the capabilities that let root ignore modes. A clock step is a test-only
`sitecustomize` (tests/agent/clockstep/) that shifts `time.time()` in the agent when told. A slow or garbage
server is a TLS proxy in the test process, with the server's own certificate, that passes bytes through,
answers nothing, or answers garbage.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.test_runner import AGENT, AgentProcess, final_result, result, run_command
from agent.test_runner import server as server  # the module's live server, as in test_runner
from cloudassist.testing import LiveServer, wait_for

CLOCKSTEP = Path(__file__).parent / "clockstep"


@dataclass
class FaultyAgent(AgentProcess):
    """An agent process whose log goes through a pipe (so a file-size limit does not stop it), with an
    optional `preexec` and extra environment."""

    preexec: Callable[[], None] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    _drain: threading.Thread | None = None
    starts: int = 0

    def start(self) -> FaultyAgent:
        self.starts += 1
        self.process = subprocess.Popen(
            [*AGENT, "run", "--state-dir", str(self.state_dir), "--log-level", "info"],
            env={**self.env, **self.extra_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=self.preexec)
        self._drain = threading.Thread(target=self._copy, args=(self.process,), daemon=True)
        self._drain.start()
        return self

    def _copy(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with process.stdout, open(self.home / "agent.log", "ab", buffering=0) as log:
            for line in process.stdout:
                log.write(line)

    def connected(self) -> bool:
        """The current process has connected its kick channel (each start logs it once more)."""
        return self.log().count("kick channel connected") >= self.starts

    def disk_full(self, full: bool) -> None:
        """Make every write that grows a file fail in the agent process (or lift that)."""
        assert self.process is not None
        _, hard = resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE, (0 if full else hard, hard))

    def finish(self) -> None:
        """SIGTERM; it must exit 0 and have logged no traceback."""
        assert self.stop() == 0, self.log()
        if self._drain is not None:
            self._drain.join(10)
        assert "Traceback" not in self.log(), self.log()


@pytest.fixture
def agent(server: LiveServer, tmp_path: Path) -> Iterator[FaultyAgent]:
    """A registered agent, not started yet; stopped (if it runs) however the test ends."""
    made = FaultyAgent(tmp_path / "agent").register(server)
    yield made
    if made.process is not None and made.process.poll() is None:
        made.process.kill()
        made.process.wait()
    if made._drain is not None:
        made._drain.join(10)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_tasks_listed_while_the_state_directory_is_full_run_once_when_space_returns(
        server: LiveServer, agent: FaultyAgent, tmp_path: Path) -> None:
    """Issue 8, point 6. Two tasks are listed while no journal entry can be written: neither starts (nothing
    runs, the server keeps them Pending rather than counting them delivered), the second is not skipped for
    the first, and a few seconds after space comes back both are fetched again and run, each exactly once."""
    agent.start()
    wait_for(agent.connected, 30, "the agent to connect")
    runs = tmp_path / "runs"
    agent.disk_full(True)
    first = run_command(server, agent.instance_id, f"echo first >> {runs}; echo one")
    second = run_command(server, agent.instance_id, f"echo second >> {runs}; echo two")
    wait_for(lambda: agent.log().count("cannot journal it") >= 2, 20, "both tasks to be refused by the full disk")
    time.sleep(3)
    assert [result(server, i)["InvocationStatus"] for i in (first, second)] == ["Pending", "Pending"]
    assert not runs.exists()
    agent.disk_full(False)  # space came back
    done = [final_result(server, i, 45) for i in (first, second)]
    assert [(d["InvocationStatus"], d["Output"]) for d in done] == [("Success", "one\n"), ("Success", "two\n")]
    time.sleep(2)
    assert sorted(_lines(runs)) == ["first", "second"]
    agent.finish()


def test_a_run_that_ends_while_the_disk_is_full_loses_nothing(
        server: LiveServer, agent: FaultyAgent, tmp_path: Path) -> None:
    """A command ends while the agent can write nothing: its final report, which cannot be spooled, is kept in
    memory and delivered (Success, its whole output); the agent goes on, and after space comes back it runs
    the next task and, restarted, reports nothing more about the first."""
    agent.start()
    wait_for(agent.connected, 30, "the agent to connect")
    gate = tmp_path / "gate"
    invoke_id = run_command(server, agent.instance_id, f"echo before; while [ ! -e {gate} ]; do sleep 0.1; done; "
                            "echo after")
    wait_for(lambda: result(server, invoke_id)["Output"] == "before\n", 20, "the first output")
    agent.disk_full(True)
    gate.touch()
    done = final_result(server, invoke_id, 30)
    assert (done["InvocationStatus"], done["Output"]) == ("Success", "before\nafter\n")
    assert "kept in memory" in agent.log()
    agent.disk_full(False)
    after = final_result(server, run_command(server, agent.instance_id, "echo next"), 30)
    assert (after["InvocationStatus"], after["Output"]) == ("Success", "next\n")
    wait_for(lambda: all(e["state"] == "done" for e in _journal(agent)), 40, "the journal to catch up")
    agent.finish()
    agent.start()
    wait_for(agent.connected, 30, "the restarted agent to connect")
    assert "interrupted by an agent restart" not in agent.log()
    assert result(server, invoke_id)["Output"] == "before\nafter\n"
    agent.finish()


def _journal(agent: FaultyAgent) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (agent.state_dir / "journal").glob("*.json")]


def test_a_report_the_server_refuses_for_good_is_dead_lettered_and_the_reports_behind_it_go_on(
        server: LiveServer, agent: FaultyAgent) -> None:
    """A spooled report the server refuses with its own 4xx (here 413 RequestTooLarge: a body over 1 MiB) is
    moved to dead-letter/ with the server's answer and logged; the reports behind it are delivered."""
    spool = agent.state_dir / "spool"
    spool.mkdir(mode=0o700)
    header = {"kind": "running", "query": {"taskId": "t-poison", "invokeVersion": "1", "outputOffset": "0"},
              "final": False}
    (spool / "000000000001-chunk.rep").write_bytes(json.dumps(header).encode() + b"\n" + b"x" * (1024 * 1024 + 1))
    agent.start()
    wait_for(agent.connected, 30, "the agent to connect")
    done = final_result(server, run_command(server, agent.instance_id, "echo behind"), 30)
    assert (done["InvocationStatus"], done["Output"]) == ("Success", "behind\n")
    dead = agent.state_dir / "dead-letter"
    [kept] = list(dead.glob("*.rep"))
    assert kept.name.endswith("000000000001-chunk.rep")
    assert json.loads(kept.read_bytes().partition(b"\n")[0])["query"]["taskId"] == "t-poison"
    assert "413" in kept.with_suffix(".reason").read_text()
    assert "refused running report t-poison for good" in agent.log()
    assert not list(spool.glob("*.rep"))
    agent.finish()


def _without_root_overrides() -> None:
    """In the agent's child before exec: drop the capabilities that let root ignore file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_read_only_state_directory_is_reported_and_waited_for_not_crash_looped(
        server: LiveServer, agent: FaultyAgent) -> None:
    """With a state directory it cannot write, the agent neither runs nor exits: it says so once, clearly (no
    traceback), and waits; once the directory can be written it starts and runs tasks."""
    if os.geteuid() == 0:
        agent.preexec = _without_root_overrides
    os.chmod(agent.state_dir, 0o500)
    try:
        agent.start()
        wait_for(lambda: "cannot be written" in agent.log(), 20, "the agent to say why it waits")
        time.sleep(3)
        assert agent.process is not None
        assert agent.process.poll() is None, agent.log()
        log = agent.log()
        assert log.count("cannot be written") == 1, log
        assert "Traceback" not in log, log
        assert str(agent.state_dir) in log
    finally:
        os.chmod(agent.state_dir, 0o700)
    wait_for(agent.connected, 40, "the agent to start once the directory can be written")
    done = final_result(server, run_command(server, agent.instance_id, "echo writable"), 30)
    assert (done["InvocationStatus"], done["Output"]) == ("Success", "writable\n")
    agent.finish()


def test_a_clock_step_changes_no_timeout(server: LiveServer, agent: FaultyAgent, tmp_path: Path) -> None:
    """The wall clock steps 5 minutes ahead while a task with Timeout 10 runs 3 s: it still succeeds; it steps
    5 minutes back while one runs past its Timeout of 10: it still ends Timeout about 10 s after it started."""
    offset = tmp_path / "offset"
    offset.write_text("0")
    agent.extra_env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(CLOCKSTEP), os.environ.get("PYTHONPATH")])),
                       "CLOUDASSIST_TEST_CLOCK_OFFSET_FILE": str(offset)}
    agent.start()
    wait_for(agent.connected, 30, "the agent to connect")
    assert "clock offset hook" in agent.log()

    short = run_command(server, agent.instance_id, "echo a; sleep 3; echo b", Timeout="10")
    wait_for(lambda: result(server, short)["Output"] == "a\n", 20, "the short task to start")
    offset.write_text("300")
    done = final_result(server, short, 30)
    assert (done["InvocationStatus"], done["Output"]) == ("Success", "a\nb\n")

    offset.write_text("0")
    long = run_command(server, agent.instance_id, "echo a; sleep 60", Timeout="10")
    wait_for(lambda: result(server, long)["Output"] == "a\n", 20, "the long task to start")
    began = time.monotonic()
    offset.write_text("-300")
    done = final_result(server, long, 40)
    assert done["InvocationStatus"] == "Timeout", done
    assert time.monotonic() - began < 15
    offset.write_text("0")
    agent.finish()


def _reply(body: bytes, status: str = "200 OK", *, length: int | None = None, extra: bytes = b"") -> bytes:
    size = len(body) if length is None else length
    return b"HTTP/1.1 " + status.encode() + b"\r\n" + extra + b"Content-Length: %d\r\n\r\n" % size + body


#: What the garbage proxy answers, one after the other. None is `"code": 200`: that would be an answer, and a
#: report so answered is acknowledged (a server that lies is not a fault the agent can see).
GARBAGE = (
    b"\x00\xffnot http at all\r\n\r\n",
    _reply(b"not json!"),
    _reply(b"abcd", extra=b"Content-Encoding: gzip\r\n"),
    _reply(b"oops!", "500 Internal Server Error"),
    _reply(b"truncated", length=100_000),
    _reply(b'{"code":"200\xff\xfe"}'),
    _reply(b'{"code":500,"nextInterval":"soon","newTasks":"yes"}'),
    _reply(b'[1, 2, 3]'),
)
#: What it answers a task list request: lists that are not lists, entries that are not entries.
GARBAGE_LISTS = (
    _reply(b'{"code":200,"run":"zzz","stop":{"a":1},"file":5,"x":[1,2,3]}'),
    _reply(b'{"code":200,"run":[1,[2],{"task":"x"},{"task":{},"output":"o"}],"stop":[null],"file":[{"task":[]}]}'),
)


class Proxy:
    """An endpoint in front of the agent face: `mode` is "pass" (TCP through to it), or, as TLS with the
    server's own certificate, "silent" (requests are read and never answered) or "garbage" (each request
    gets the next of GARBAGE, or of GARBAGE_LISTS). `drop()` closes every connection open now."""


    def __init__(self, live: LiveServer) -> None:
        self.upstream = live.agent_port
        self.mode = "pass"
        self.served = 0
        self.lists = 0
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(live.data_dir / "agent-cert.pem", live.data_dir / "agent-key.pem")
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drop(self) -> None:
        with self._lock:
            for sock in list(self._open):
                with _quiet():
                    sock.shutdown(socket.SHUT_RDWR)
                with _quiet():
                    sock.close()
            self._open.clear()

    def close(self) -> None:
        self._listener.close()
        self.drop()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _serve(self, raw: socket.socket) -> None:
        self._track(raw)
        try:
            if self.mode == "pass":  # TCP through: TLS is between the agent and the server
                up = socket.create_connection(("127.0.0.1", self.upstream))
                self._track(up)
                threading.Thread(target=self._pipe, args=(up, raw), daemon=True).start()
                self._pipe(raw, up)
                return
            conn = self._context.wrap_socket(raw, server_side=True)
            self._track(conn)
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                if self.mode == "silent":
                    while conn.recv(65536):
                        pass
                    return
                if b"/v1/task/list" in head.split(b"\r\n", 1)[0]:
                    conn.sendall(GARBAGE_LISTS[self.lists % len(GARBAGE_LISTS)])
                    self.lists += 1
                else:
                    conn.sendall(GARBAGE[self.served % len(GARBAGE)])
                    self.served += 1
        except OSError:
            pass
        finally:
            with _quiet():
                raw.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with _quiet():
                sink.shutdown(socket.SHUT_RDWR)


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


def test_a_server_that_answers_slowly_or_with_garbage_is_retried_never_a_crash(
        server: LiveServer, tmp_path: Path) -> None:
    """Behind a proxy that for a while answers nothing, then garbage (not HTTP, not JSON, a broken gzip body, a
    500, a truncated body, invalid UTF-8), the agent keeps running and logs no
    traceback; a result made meanwhile waits in its spool; once the server answers again, that result and a
    task created meanwhile both arrive."""
    proxy = Proxy(server)
    made = server.api(Action="CreateActivation", InstanceCount="1")
    agent = FaultyAgent(tmp_path / "agent")
    agent.home.mkdir(parents=True)
    agent.env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    agent.env.update(CLOUDASSIST_AGENT_RUNTIME_DIR=str(agent.home), CLOUDASSIST_ACTIVATION_CODE=made["ActivationCode"])
    registered = subprocess.run([*AGENT, "register", "--server", proxy.endpoint, "--activation-id",
                                 made["ActivationId"], "--region", "cn-hangzhou", "--ca-file",
                                 str(server.data_dir / "ca.pem"), "--state-dir", str(agent.state_dir)],
                                env=agent.env, capture_output=True, text=True, timeout=60, check=False)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    agent.instance_id = registered.stdout.split("instance id ", 1)[1].split()[0]
    try:
        agent.start()
        wait_for(agent.connected, 30, "the agent to connect through the proxy")
        gate = tmp_path / "gate"
        early = run_command(server, agent.instance_id, f"echo x; while [ ! -e {gate} ]; do sleep 0.1; done; echo y",
                            Timeout="600")
        wait_for(lambda: result(server, early)["Output"] == "x\n", 20, "the first task to start")

        proxy.mode = "silent"
        proxy.drop()
        gate.touch()  # it ends while nobody answers: its result is spooled
        wait_for(lambda: list((agent.state_dir / "spool").glob("*-final.rep")), 20, "the result to be spooled")
        time.sleep(12)
        proxy.mode = "garbage"
        proxy.drop()
        wait_for(lambda: proxy.served >= len(GARBAGE), 100, "every kind of garbage to be served")
        late = run_command(server, agent.instance_id, "echo late")  # its kick is lost: the agent must fetch
        assert agent.process is not None
        assert agent.process.poll() is None, agent.log()
        assert result(server, early)["InvocationStatus"] == "Running"

        proxy.mode = "pass"
        proxy.drop()
        done = final_result(server, early, 120)
        assert (done["InvocationStatus"], done["Output"]) == ("Success", "x\ny\n")
        got = final_result(server, late, 120)
        assert (got["InvocationStatus"], got["Output"]) == ("Success", "late\n")
        agent.finish()
    finally:
        proxy.close()
        if agent.process is not None and agent.process.poll() is None:
            agent.process.kill()


def test_send_file_to_a_full_disk_fails_cleanly_and_the_next_one_is_written(
        server: LiveServer, agent: FaultyAgent, tmp_path: Path) -> None:
    """SendFile of 20 KB where no file may grow past 4 KB (the journal's entries fit, the file does not): the
    task ends Failed/FileCreateFail, no partial file is left, the agent goes on; with room again the same
    file is written."""
    agent.start()
    wait_for(agent.connected, 30, "the agent to connect")
    assert agent.process is not None
    _, hard = resource.prlimit(agent.process.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(agent.process.pid, resource.RLIMIT_FSIZE, (4096, hard))
    target = tmp_path / "target"
    content = base64.b64encode(os.urandom(20_000)).decode()

    def send(name: str) -> dict[str, Any]:
        made = server.api(Action="SendFile", Name=name, TargetDir=str(target), Content=content,
                          ContentType="Base64", **{"InstanceId.1": agent.instance_id})
        invoke_id = made["InvokeId"]

        def ended() -> dict[str, Any] | None:
            found = server.api(Action="DescribeSendFileResults", InvokeId=invoke_id)
            [task] = found["Invocations"]["Invocation"]
            [one] = task["InvokeInstances"]["InvokeInstance"]
            return dict(one) if one["InvocationStatus"] not in ("Pending", "Running") else None
        return dict(wait_for(ended, 30, f"{invoke_id} to end"))

    failed = send("big.bin")
    assert (failed["InvocationStatus"], failed["ErrorCode"]) == ("Failed", "FileCreateFail"), failed
    assert not list(target.iterdir())
    resource.prlimit(agent.process.pid, resource.RLIMIT_FSIZE, (hard, hard))
    written = send("big2.bin")
    assert written["InvocationStatus"] == "Success", written
    assert (target / "big2.bin").read_bytes() == base64.b64decode(content)
    agent.finish()


async def test_a_task_list_of_garbage_is_skipped_entry_by_entry(tmp_path: Path) -> None:
    """A task list whose lists are not lists, or whose entries are not entries (numbers, lists, a `task` that
    is a string or a list, an `output` that is a string), is logged and skipped without an exception, and a
    good entry after the bad ones still runs."""
    from cloudassist.agent import identity as ident
    from cloudassist.agent.runner import Agent

    class NoServer:
        async def aclose(self) -> None:
            return None

        async def report(self, kind: str, query: Any, body: bytes) -> None:
            return None

    identity = ident.Identity("i-garbage01", "0" * 32, "cn-test", "127.0.0.1:9", "", "", ident.generate())
    made = Agent(identity, tmp_path / "state", client=NoServer())  # type: ignore[arg-type]
    good = {"task": {"taskID": "t-good", "invokeVersion": 1, "type": "RunShellScript",
                     "commandContent": base64.b64encode(b"true").decode()}, "repeat": "Once"}
    for reply in GARBAGE_LISTS:
        made.dispatch(json.loads(reply.partition(b"\r\n\r\n")[2]))
    made.dispatch({"code": 200, "run": [1, [2], {"task": []}, {"task": {"taskID": "t-bad"}, "output": "o"}, good],
                   "stop": [None, {"task": "x"}], "file": [{"task": []}, 7]})
    assert set(made._runs) == {("t-good", 1)}
    await asyncio.gather(*(r.future for r in made._runs.values() if r.future), return_exceptions=True)


def test_a_restarted_agent_that_lost_its_journal_is_not_handed_its_running_task_again(
        server: LiveServer, agent: FaultyAgent, tmp_path: Path) -> None:
    """Issue 8, point 7, with our agent: it is SIGKILLed while a one-time task runs and restarts with its
    journal gone (what the official agent's missing script file is to it): the server does not list the
    task again, so it is not run a second time, not even after the agent fetched and ran another task."""
    runs, pid = tmp_path / "runs", tmp_path / "pid"
    agent.start()
    wait_for(agent.connected, 30, "the agent to connect")
    invoke_id = run_command(server, agent.instance_id, f"echo run >> {runs}; echo $$ > {pid}; exec sleep 30",
                            Timeout="600")
    wait_for(lambda: result(server, invoke_id)["InvocationStatus"] == "Running" and pid.exists(), 20)
    assert agent.process is not None
    agent.process.kill()
    agent.process.wait()
    for entry in (agent.state_dir / "journal").iterdir():
        entry.unlink()
    agent.start()
    wait_for(agent.connected, 30, "the restarted agent to connect")
    after = final_result(server, run_command(server, agent.instance_id, "echo after"), 30)
    assert (after["InvocationStatus"], after["Output"]) == ("Success", "after\n")
    time.sleep(1)
    assert _lines(runs) == ["run"]
    assert result(server, invoke_id)["InvocationStatus"] == "Running"
    agent.finish()
    with _quiet():
        os.kill(int(pid.read_text()), signal.SIGKILL)  # the first run, which nothing tracks any more
