"""Real agent processes for the acceptance tier, and the checks the agent tests make through the official SDKs.

    Agent           one agent in a state directory of its own: registered with `cloudassist agent register`
                    (an activation made through CreateActivation), run as `python -m cloudassist agent run`
    Agents          every agent a test or fixture started; `close()` ends them all, even after a failure
    activation      CreateActivation through the tea SDK: (ActivationId, ActivationCode)
    register_all    the `agent register` command for many state directories, in one interpreter per core
    own_server      a `cloudassist server` of a test's own (SQLite, or a PostgreSQL database made for it)
    final / finals  DescribeInvocationResults polled (with a deadline) until executions are terminal
    marked          live processes whose argv holds a marker (read from /proc), and `kill_marked`
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient

from acceptance.sdk import ISO, REGION, Server, tea_client
from cloudassist.testing import LiveServer, pg_database, wait_for

T = TypeVar("T")
Result: TypeAlias = ecs.DescribeInvocationResultsResponseBodyInvocationInvocationResultsInvocationResult

#: The agent's command line, as a user runs it (the console script `cloudassist` is the same entry point).
AGENT = [sys.executable, "-m", "cloudassist", "agent"]
#: Per-instance statuses after which nothing changes any more (reference §5.3).
TERMINAL = frozenset({"Success", "Failed", "Invalid", "Aborted", "Error", "Timeout", "Cancelled", "Terminated"})


def clean_env() -> dict[str, str]:
    """This process's environment without proxy variables (the agent talks to 127.0.0.1)."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def activation(tea: EcsClient, count: int = 1) -> tuple[str, str]:
    """CreateActivation for `count` instances through the tea SDK; (ActivationId, ActivationCode)."""
    body = tea.create_activation(ecs.CreateActivationRequest(region_id=REGION, instance_count=count)).body
    return str(body.activation_id), str(body.activation_code)


@dataclass
class Agent:
    """An agent in `home`: its state directory is `home/state`, its log `home/agent.log`."""

    home: Path
    instance_id: str = ""
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    starts: int = 0  #: how many times `start` ran the agent

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    def prepare(self) -> Agent:
        """Make the agent's home and its environment (no proxies; its cold-start flag kept in its home rather
        than in /dev/shm, so that each agent of a test has its own)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {**clean_env(), "CLOUDASSIST_AGENT_RUNTIME_DIR": str(self.home)}
        return self

    def register(self, live: LiveServer, activation_id: str, code: str) -> Agent:
        """`cloudassist agent register` with the activation, trusting the server's CA; keeps the instance id."""
        self.prepare()
        done = subprocess.run([*AGENT, "register", *register_args(live, activation_id), "--state-dir",
                               str(self.state_dir)],
                              env={**self.env, "CLOUDASSIST_ACTIVATION_CODE": code}, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        [self.instance_id] = registered_ids(done.stdout)
        return self

    def start(self) -> Agent:
        """`cloudassist agent run --state-dir …` in the background, logging to agent.log."""
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.home / "agent.log", "ab") as log:
            self.process = subprocess.Popen([*AGENT, "run", "--state-dir", str(self.state_dir), "--log-level", "info"],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        return self

    def connected(self) -> bool:
        """The agent's current process has opened its kick channel (each start logs it once more)."""
        return self.log().count("kick channel connected") >= self.starts and self.running()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` (if it still runs) and wait for the exit; SIGKILL if it outlives `timeout`. The status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"agent {self.instance_id} ignored signal {sig} for {timeout:g} s") from None

    def log(self) -> str:
        path = self.home / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def rss_kib(self) -> int:
        """Resident memory of the agent process (VmRSS, KiB)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


class Agents:
    """The agents a test or fixture made; `close()` ends every one of them (SIGTERM, then SIGKILL)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.all: list[Agent] = []

    def new(self, name: str) -> Agent:
        agent = Agent(self.root / name)
        self.all.append(agent)
        return agent

    def close(self) -> list[int]:
        """Stop every running agent; their exit statuses (SIGTERM'd ones in parallel, SIGKILL after 30 s)."""
        running = [a for a in self.all if a.running()]
        for agent in running:
            assert agent.process is not None
            agent.process.send_signal(signal.SIGTERM)
        statuses = []
        deadline = time.monotonic() + 30
        for agent in running:
            assert agent.process is not None
            try:
                statuses.append(agent.process.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                agent.process.kill()
                statuses.append(agent.process.wait())
        return statuses


@contextlib.contextmanager
def agents(root: Path) -> Iterator[Agents]:
    """Agents made under `root`, all ended on the way out however the block ends."""
    made = Agents(root)
    try:
        yield made
    finally:
        made.close()


@contextlib.contextmanager
def one_agent(server: Server, root: Path, name: str = "a") -> Iterator[Agent]:
    """One registered, connected `cloudassist agent` process (its own activation, made through the tea SDK).
    On a clean way out it must exit 0 on SIGTERM with no traceback in its log; it is ended however the block
    ends."""
    with agents(root) as made:
        activation_id, code = activation(tea_client(server.endpoint), 1)
        one = made.new(name).register(server.live, activation_id, code).start()
        wait_for(one.connected, 60, f"agent {one.instance_id} to connect")
        yield one
        assert made.close() == [0], one.log()
        assert "Traceback" not in one.log(), one.log()


def register_args(live: LiveServer, activation_id: str) -> list[str]:
    """The arguments of `cloudassist agent register` but --state-dir (the code comes from the environment,
    CLOUDASSIST_ACTIVATION_CODE, as the CLI recommends for a secret)."""
    return ["--server", live.agent_endpoint, "--activation-id", activation_id, "--region", REGION,
            "--ca-file", str(live.data_dir / "ca.pem")]


def registered_ids(stdout: str) -> list[str]:
    """The instance ids `agent register` printed ("registered: instance id mi-…"), in order."""
    found = [line.split("instance id ", 1)[1].split()[0] for line in stdout.splitlines()
             if line.startswith("registered: instance id ")]
    assert all(i.startswith("mi-") for i in found), stdout
    return found


#: Runs the `agent register` command (the click command itself, argv for argv) once per state directory
#: given on its command line, in one interpreter: the registrations are the CLI's, minus an interpreter
#: start each.
_BATCH = """
import sys
from cloudassist.agent.cli import agent
split = sys.argv.index("--")
common, dirs = sys.argv[1:split], sys.argv[split + 1:]
for state_dir in dirs:
    agent.main(["register", *common, "--state-dir", state_dir], standalone_mode=False)
    sys.stdout.flush()
"""


def register_all(live: LiveServer, fleet: list[Agent], activation_id: str, code: str, processes: int = 2) -> None:
    """Register every agent of `fleet` with one activation: `processes` interpreters (one per core) each run
    the `agent register` command for its share of the state directories, one after the other."""
    for agent in fleet:
        agent.prepare()
    shares = [fleet[i::processes] for i in range(processes)]
    env = {**clean_env(), "CLOUDASSIST_ACTIVATION_CODE": code}
    common = register_args(live, activation_id)
    running = [subprocess.Popen([sys.executable, "-c", _BATCH, *common, "--", *(str(a.state_dir) for a in share)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for share in shares if share]
    for share, process in zip([s for s in shares if s], running, strict=True):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, out + err
        ids = registered_ids(out)
        assert len(ids) == len(share), out + err
        for agent, instance_id in zip(share, ids, strict=True):
            agent.instance_id = instance_id


def engine(server: Server) -> str:
    """"sqlite" or "postgresql": the engine of the session's server (the test's parameter)."""
    return "postgresql" if server.db else "sqlite"


@contextlib.contextmanager
def own_server(kind: str, data_dir: Path) -> Iterator[LiveServer]:
    """A server of the caller's own on `kind` ("sqlite" or "postgresql", then in a database made for it and
    dropped afterwards), started; stopped on the way out."""
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(pg_database("acc_agent")) if kind == "postgresql" else ""
        live = LiveServer(data_dir, db=db)
        stack.callback(live.stop)
        live.start(timeout=60)
        yield live


def page(tea: EcsClient, invoke_id: str, encoding: str = "PlainText", **fields: Any) -> list[Result]:
    """Every execution of a task (up to 50), through DescribeInvocationResults with ContentEncoding `encoding`."""
    body = tea.describe_invocation_results(ecs.DescribeInvocationResultsRequest(
        region_id=REGION, invoke_id=invoke_id, content_encoding=encoding, page_size=50, **fields)).body
    found: list[Result] = body.invocation.invocation_results.invocation_result
    assert body.invocation.total_count == len(found)
    return found


def finals(tea: EcsClient, invoke_id: str, count: int, seconds: float = 60.0,
           encoding: str = "PlainText") -> list[Result]:
    """The `count` executions of a task once all are terminal, polled with a deadline of `seconds`; on timeout
    the error says how many were in which status."""
    seen: list[Result] = []

    def done() -> list[Result] | None:
        seen[:] = page(tea, invoke_id, encoding)
        return seen if len(seen) == count and all(r.invocation_status in TERMINAL for r in seen) else None
    try:
        return wait_for(done, seconds, f"the {count} execution(s) of {invoke_id} to end")
    except AssertionError as exc:
        statuses = Counter(r.invocation_status for r in seen)
        raise AssertionError(f"{exc}; last seen: {len(seen)} execution(s), {dict(statuses)}") from None


def final(tea: EcsClient, invoke_id: str, seconds: float = 60.0, encoding: str = "PlainText") -> Result:
    """The one execution of a task, once terminal."""
    [one] = finals(tea, invoke_id, 1, seconds, encoding)
    return one


def current(tea: EcsClient, invoke_id: str) -> Result:
    """The one execution of a task, as it is now."""
    [one] = page(tea, invoke_id)
    return one


def when(text: str) -> datetime:
    """An API time (`2019-12-20T06:15:55Z`) as an aware datetime."""
    assert ISO.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def recent(text: str, seconds: float = 300) -> bool:
    """An API time that is well-formed and no more than `seconds` from now."""
    return abs((datetime.now(UTC) - when(text)).total_seconds()) <= seconds


def decoded(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def marked(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose argv contains `marker`."""
    needle = marker.encode()
    return sorted(int(p) for p in os.listdir("/proc")
                  if p.isdigit() and needle in _cmdline(p) and _state(p) not in ("Z", "X", "?"))


def kill_marked(marker: str) -> None:
    """SIGKILL whatever still carries `marker` (clean-up after a failed test)."""
    for pid in marked(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def tag() -> str:
    """A marker unique to one test: digits only, so `sleep 1000.<tag>` is a valid duration."""
    return str(uuid.uuid4().int)[:12]
