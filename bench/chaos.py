#!/usr/bin/env python
"""The chaos run (issue 8): faults under a steady API load, with the fleet simulator and real agents.

One server process per engine (SQLite, then PostgreSQL), its data directory on a small tmpfs; `--agents`
simulated official agents (bench/fleet.py, real `/bin/sh` runs) and `--real-agents` real `cloudassist agent`
processes, all reaching the agent face through bench/proxy.py. While signed RunCommand and
DescribeInvocationResults calls come at a steady rate, each scenario injects one fault:

  server-kill   kill -9 of the server, restarted on the same store
  agent-kill    kill -9 of a fifth of the simulated agents and of every real agent, restarted
  pg-restart    `pg_ctlcluster 15 main restart` (PostgreSQL only)
  network       the proxy delays every chunk, then resets every connection, then swallows everything
  disk-full     the server's data directory full, then the real agents' state directory full
  idle-conns    10,000 idle connections (half on each port), reopened as the server closes them

Every run writes a per-run marker (`start TOKEN INSTANCE` … `end TOKEN INSTANCE`) to a file outside the
filled file systems, so real executions are counted, not reports. Per scenario it prints: requests served,
results lost, runs twice, 5xx answered (from the server's access log, both faces, and as the clients saw
them), and the signed-call latency before and during the fault. Results lost are results an agent had
acknowledged, or (real agents, which spool) runs that reached their end marker, that DescribeInvocationResults
does not show as Success with their output; plus records of accepted RunCommand calls that are missing or
still not final once the load stopped and the deadlines passed. A simulated official agent that gave up on one
of the run's reports (3 tries for a final report, one for a `running` output post, as the official agent does:
it keeps no spool) is counted apart, as "short by reports the official agent dropped": that output never
reached the server.

    .venv/bin/python bench/chaos.py                                   # both engines, every scenario
    .venv/bin/python bench/chaos.py --db sqlite --scenarios network,disk-full --agents 50

It needs root (tmpfs mounts, pg_ctlcluster). Everything it starts is stopped and removed on the way out,
on failure and on SIGTERM too, and PostgreSQL is started again if it is down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from proxy import Proxy
from scale import REGION, Api, database_async, floor, pct, proc_rss_mb, results_of, run, show_floor

from cloudassist.testing import LiveServer, wait_for
from fleet import Fleet, RunMode, SimAgent, default_key_cache, load_keys, patch_tls_buffers

SCENARIOS = ("server-kill", "agent-kill", "pg-restart", "network", "disk-full", "idle-conns")
BUSY = ("Pending", "Running", "Stopping")
PG_CLUSTER = ["15", "main"]
#: an access line answered 5xx: `api … Action=X … code=Y status=5NN` or `agent route=R … status=5NN`
STATUS_5XX = re.compile(rb"\b(?:api .*?Action=(\S+) .*?code=(\S+)|agent route=(\S+)) .*?status=(5\d\d)\b")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ the box


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=check)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A size-limited tmpfs mounted on `path` (made here), unmounted and removed on the way out."""
    path.mkdir(parents=True)
    sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        if sh("umount", str(path), check=False).returncode:
            sh("umount", "-l", str(path), check=False)


@contextlib.contextmanager
def full(fs: Path) -> Iterator[int]:
    """Fill the file system of `fs` until writes fail with ENOSPC; the filler goes on the way out. Yields
    the bytes written."""
    filler = fs / ".chaos-filler"
    written = 0
    try:
        with open(filler, "wb") as handle:
            block = b"\0" * (1 << 20)
            try:
                while True:
                    handle.write(block)
                    handle.flush()
                    written += len(block)
            except OSError:
                pass
            try:  # the last partial megabyte too
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
                    written += 4096
            except OSError:
                pass
    except OSError:
        pass
    try:
        yield written
    finally:
        filler.unlink(missing_ok=True)


def pg_online() -> bool:
    done = sh("pg_lsclusters", "--no-header", check=False)
    return any(line.split()[:2] == PG_CLUSTER and "online" in line for line in done.stdout.splitlines())


def pg_ctl(action: str) -> None:
    """`pg_ctlcluster 15 main <action>`; through systemd when it is there, directly otherwise."""
    done = sh("pg_ctlcluster", *PG_CLUSTER, action, check=False)
    if done.returncode:
        sh("pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, action)


def pg_ensure_up() -> None:
    if not pg_online():
        log("PostgreSQL is down: starting it")
        with contextlib.suppress(Exception):
            pg_ctl("start")
        wait_for(pg_online, 60, "PostgreSQL to be online")


def limits(server: LiveServer) -> dict[str, Any]:
    """The machine's limits as this run sees them."""
    assert server.process is not None
    mem = {line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
           if line.startswith(("MemTotal", "MemAvailable"))}
    server_files = [line for line in Path(f"/proc/{server.process.pid}/limits").read_text().splitlines()
                    if line.startswith("Max open files")]
    raised = [line for line in server.log().splitlines() if "open-file limit" in line or "open files" in line]
    return {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
            "mem_total_mb": mem.get("MemTotal", 0) // 1024, "mem_available_mb": mem.get("MemAvailable", 0) // 1024,
            "open_files_bench": resource.getrlimit(resource.RLIMIT_NOFILE),
            "open_files_server": server_files[0].split()[3:5] if server_files else None,
            "server_log_on_limit": raised[-1][-160:] if raised else ""}


# ------------------------------------------------------------------------------------------------ agents


@dataclass
class RealAgent:
    """A `cloudassist agent` process (real `/bin/sh` runs), its state directory wherever it is told."""

    home: Path
    state_dir: Path
    process: subprocess.Popen[bytes] | None = None
    instance_id: str = ""
    env: dict[str, str] = field(default_factory=dict)
    starts: int = 0

    def register(self, api: LiveServer, agent_endpoint: str) -> RealAgent:
        made = api.api(Action="CreateActivation", InstanceCount="1")
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.env.update(CLOUDASSIST_AGENT_RUNTIME_DIR=str(self.home),
                        CLOUDASSIST_ACTIVATION_CODE=made["ActivationCode"])
        done = subprocess.run([sys.executable, "-m", "cloudassist", "agent", "register", "--server", agent_endpoint,
                               "--activation-id", made["ActivationId"], "--region", REGION, "--ca-file",
                               str(api.data_dir / "ca.pem"), "--state-dir", str(self.state_dir)],
                              env=self.env, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode:
            raise RuntimeError(f"agent register: {done.stdout}{done.stderr}")
        self.instance_id = done.stdout.split("instance id ", 1)[1].split()[0]
        return self

    def start(self) -> RealAgent:
        self.starts += 1
        with open(self.home / "agent.log", "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cloudassist", "agent", "run", "--state-dir", str(self.state_dir)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def connected(self) -> bool:
        return self.log().count("kick channel connected") >= self.starts

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        path = self.home / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""


def crash(agent: SimAgent) -> None:
    """What kill -9 does to an official agent: its sockets are reset without a goodbye, its work is gone."""
    agent.closed = True
    if agent.beat_handle is not None:
        agent.beat_handle.cancel()
    for task in list(agent.tasks):
        task.cancel()
    if agent.ws is not None:
        agent.ws.transport.abort()
    if agent.wire.writer is not None:
        agent.wire.writer.transport.abort()
    agent.wire.reader = agent.wire.writer = agent.wire.conn = None


async def revive(fleet: Fleet, dead: SimAgent) -> SimAgent:
    """The agent's service starts it again: same identity and key, nothing remembered."""
    fresh = SimAgent(fleet, dead.index, dead.key)
    fresh.instance_id, fresh.machine_id = dead.instance_id, dead.machine_id
    fleet.agents[fleet.agents.index(dead)] = fresh
    await fresh.start(cold_start=False)
    return fresh


# ------------------------------------------------------------------------------------------------ idle


def _hold_idle(targets: list[tuple[int, int]], stop_file: str, out: Any) -> None:
    """In a child process (its own descriptors): keep `count` idle TCP connections open to each port,
    reopening each one the server closes, until `stop_file` exists. Puts (opened, held at the end)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1:] * 2)
    selector = selectors.DefaultSelector()
    opened, failed = 0, 0

    def dial(port: int) -> None:
        nonlocal opened, failed
        sock = socket.socket()
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            failed += 1
            sock.close()
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, port)
        opened += 1

    for port, count in targets:
        for _ in range(count):
            dial(port)
    while not os.path.exists(stop_file):
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()
                dial(int(key.data))
    held = len(selector.get_map())
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    out.put((opened, held, failed))


# ------------------------------------------------------------------------------------------------ load


@dataclass
class Call:
    action: str
    began: float
    seconds: float
    status: int  #: 0: no answer (refused, reset, timed out)
    error: str = ""  #: what the client saw when there was no answer


@dataclass
class Launch:
    """One accepted (or attempted) RunCommand."""

    token: str
    scenario: str
    instances: list[str]
    invoke_id: str = ""


@dataclass
class Load:
    """Signed RunCommand (a few instances each, now and then a real agent among them) and
    DescribeInvocationResults at steady rates, as long as it runs."""

    server: LiveServer
    fleet: Fleet
    real: list[RealAgent]
    markers: Path
    rate: float
    per_call: int
    run_seconds: float
    calls: list[Call] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)
    scenario: str = ""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(trust_env=False, timeout=30.0,
                                      limits=httpx.Limits(max_connections=32, keepalive_expiry=2.0))

    async def signed(self, params: dict[str, str]) -> httpx.Response | None:
        from cloudassist.testing import signed_query

        query = signed_query({"RegionId": REGION, **params}, self.server.access_key_id, self.server.secret)
        began = time.perf_counter()
        try:
            response = await self.http.post(f"http://{self.server.endpoint}/?{query}")
        except httpx.HTTPError as exc:
            why = f"{type(exc).__name__}: {exc}"
            self.calls.append(Call(params["Action"], began, time.perf_counter() - began, 0, why))
            return None
        self.calls.append(Call(params["Action"], began, time.perf_counter() - began, response.status_code))
        return response

    def script(self, token: str) -> str:
        mark = f"{token} {{{{ACS::InstanceId}}}}"
        return (f'echo "start {mark}" >> {self.markers}; sleep {self.run_seconds:g}; echo {token}; '
                f'echo "end {mark}" >> {self.markers}')

    async def launch(self, number: int) -> None:
        ids = [a.instance_id for a in self.fleet.agents]
        instances = random.sample(ids, min(self.per_call, len(ids)))
        if self.real and number % 4 == 0:
            instances[0] = self.real[(number // 4) % len(self.real)].instance_id
        found = Launch(uuid.uuid4().hex, self.scenario, instances)
        self.launches.append(found)
        params = {"Action": "RunCommand", "Type": "RunShellScript", "CommandContent": self.script(found.token),
                  "ContentEncoding": "PlainText", "EnableParameter": "true", "Timeout": "20",
                  "ClientToken": found.token, **{f"InstanceId.{i + 1}": iid for i, iid in enumerate(instances)}}
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:  # as a careful client does: the same ClientToken until answered
            response = await self.signed(params)
            if response is not None and response.status_code == 200:
                found.invoke_id = str(response.json()["InvokeId"])
                break
            if response is not None and response.status_code < 500 and response.status_code != 429:
                raise RuntimeError(f"RunCommand refused: {response.status_code} {response.text[:300]}")
            await asyncio.sleep(0.5)
        if found.invoke_id:
            await self.signed({"Action": "DescribeInvocationResults", "InvokeId": found.invoke_id})

    async def read(self) -> None:
        done = [x.invoke_id for x in self.launches[-200:] if x.invoke_id]
        if done:
            await self.signed({"Action": "DescribeInvocationResults", "InvokeId": random.choice(done),
                               "ContentEncoding": "PlainText"})

    async def paced(self, rate: float, make: Callable[[int], Any]) -> None:
        pending: set[asyncio.Task[Any]] = set()
        began, number = time.perf_counter(), 0
        while not self._stop.is_set():
            await asyncio.sleep(max(0.0, began + number / rate - time.perf_counter()))
            task = asyncio.ensure_future(make(number))
            pending.add(task)
            task.add_done_callback(pending.discard)
            number += 1
        if pending:
            await asyncio.gather(*pending)

    @contextlib.asynccontextmanager
    async def running(self, scenario: str) -> AsyncIterator[None]:
        self.scenario = scenario
        self._stop.clear()
        loops = asyncio.gather(self.paced(self.rate, self.launch), self.paced(self.rate * 2, lambda _: self.read()))
        try:
            yield
        finally:
            self._stop.set()
            await loops

    async def close(self) -> None:
        await self.http.aclose()


# ------------------------------------------------------------------------------------------------ the rig


@dataclass
class Chaos:
    args: argparse.Namespace
    engine: str
    db_url: str
    root: Path
    server: LiveServer
    proxy: Proxy
    fleet: Fleet
    real: list[RealAgent]
    load: Load
    agent_fs: Path

    def log_size(self) -> int:
        return (self.server.data_dir / "server.log").stat().st_size

    def server_5xx(self, since: int) -> Counter[str]:
        with open(self.server.data_dir / "server.log", "rb") as handle:
            handle.seek(since)
            found = STATUS_5XX.finditer(handle.read())
            return Counter(b" ".join(g for g in m.groups() if g).decode() for m in found)

    async def restart_server(self) -> None:
        await asyncio.to_thread(self.server.start, 60)


def markers(path: Path) -> tuple[Counter[tuple[str, str]], set[tuple[str, str]]]:
    """Starts per (token, instance) and the (token, instance) pairs that reached their end."""
    starts: Counter[tuple[str, str]] = Counter()
    ends: set[tuple[str, str]] = set()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "start":
                starts[(parts[1], parts[2])] += 1
            elif len(parts) == 3 and parts[0] == "end":
                ends.add((parts[1], parts[2]))
    return starts, ends


def latency(calls: Sequence[Call], since: float, until: float) -> dict[str, float]:
    window = [c for c in calls if since <= c.began < until]
    answered = [c.seconds for c in window if c.status]
    return {"calls": len(window), "unanswered": len(window) - len(answered),
            "p50_ms": pct(answered, 50) * 1e3, "p99_ms": pct(answered, 99) * 1e3,
            "max_ms": max(answered, default=float("nan")) * 1e3}


async def fault(c: Chaos, name: str) -> dict[str, Any]:
    """Inject the fault `name`; what it did (and the window it covered is the caller's)."""
    if name == "server-kill":
        assert c.server.process is not None
        c.server.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(c.server.process.wait)
        await asyncio.sleep(1.0)
        began = time.perf_counter()
        await c.restart_server()
        return {"restart_s": round(time.perf_counter() - began, 2)}
    if name == "agent-kill":
        victims = random.sample(c.fleet.agents, max(1, len(c.fleet.agents) // 5))
        for agent in victims:
            crash(agent)
        for agent in c.real:
            agent.kill()
        await asyncio.sleep(2.0)
        for agent in c.real:
            agent.start()
        await asyncio.gather(*(revive(c.fleet, agent) for agent in victims))
        await asyncio.to_thread(wait_for, lambda: all(a.connected() for a in c.real), 60, "real agents to reconnect")
        return {"simulated_killed": len(victims), "real_killed": len(c.real)}
    if name == "pg-restart":
        began = time.perf_counter()
        try:
            await asyncio.to_thread(pg_ctl, "restart")
        finally:
            await asyncio.to_thread(pg_ensure_up)
        return {"restart_s": round(time.perf_counter() - began, 2)}
    if name == "network":
        c.proxy.delay = c.args.delay
        steps = [("delay", c.args.fault_seconds), ("drop", c.args.fault_seconds / 2),
                 ("blackhole", c.args.fault_seconds), ("pass", 0.0)]
        for mode, seconds in steps:
            c.proxy.mode = mode
            log(f"  proxy: {mode} for {seconds:g} s")
            await asyncio.sleep(seconds)
        return {"proxy_resets": c.proxy.resets}
    if name == "disk-full":
        done: dict[str, Any] = {}
        with full(c.server.data_dir) as filled:
            log(f"  server data directory full ({filled >> 20} MiB filler)")
            done["server_fs_filled_mb"] = filled >> 20
            await asyncio.sleep(c.args.fault_seconds)
        with full(c.agent_fs) as filled:
            log(f"  agents' state directory full ({filled >> 20} MiB filler)")
            done["agent_fs_filled_mb"] = filled >> 20
            await asyncio.sleep(c.args.fault_seconds)
        return done
    if name == "idle-conns":
        half = c.args.idle // 2
        stop_file = c.root / "idle.stop"
        queue: Any = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(
            target=_hold_idle, args=([(c.server.port, half), (c.server.agent_port, c.args.idle - half)],
                                     str(stop_file), queue))
        child.start()
        try:
            await asyncio.sleep(c.args.fault_seconds * 2)
            assert c.server.process is not None
            rss = proc_rss_mb(c.server.process.pid)
            stop_file.touch()
            opened, held, failed = await asyncio.to_thread(queue.get, True, 60)
        finally:
            stop_file.touch()
            await asyncio.to_thread(child.join, 30)
            if child.is_alive():
                child.kill()
        return {"idle_opened": opened, "idle_held_at_end": held, "idle_dial_failures": failed,
                "server_rss_mb": round(rss)}
    raise ValueError(name)


async def settle(c: Chaos, launches: Sequence[Launch]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every record of `launches` once none is Pending/Running/Stopping (or `--settle` seconds passed)."""
    api = Api(c.server)
    try:
        deadline = time.perf_counter() + c.args.settle
        while True:
            records: dict[tuple[str, str], dict[str, Any]] = {}
            for launch in launches:
                if launch.invoke_id:
                    for rec in await results_of(api, launch.invoke_id):
                        records[(launch.invoke_id, rec["InstanceId"])] = rec
            busy = sum(1 for rec in records.values() if rec["InvocationStatus"] in BUSY)
            if not busy or time.perf_counter() > deadline:
                return records
            await asyncio.sleep(2.0)
    finally:
        await api.close()


async def scenario(c: Chaos, name: str) -> dict[str, Any]:
    log(f"{c.engine} {name}: load for {c.args.before:g} s, then the fault")
    load, fleet = c.load, c.fleet
    first_call, first_launch = len(load.calls), len(load.launches)
    log_at, agent0, agent_status0 = c.log_size(), fleet.stats.requests(), Counter(fleet.stats.statuses)
    dropped0 = fleet.stats.dropped_reports
    t0 = time.perf_counter()
    async with load.running(name):
        await asyncio.sleep(c.args.before)
        f0 = time.perf_counter()
        done = await fault(c, name)
        f1 = time.perf_counter()
        await asyncio.sleep(c.args.after)
    t1 = time.perf_counter()
    launches = load.launches[first_launch:]
    records = await settle(c, launches)
    calls = load.calls[first_call:]
    starts, ends = markers(load.markers)
    real_ids = {a.instance_id for a in c.real}
    by_token = {x.invoke_id: x.token for x in launches if x.invoke_id}
    acked = {(o.task_id, o.instance_id) for runs in fleet.outcomes.values() for o in runs
             if o.kind == "finish" and o.acked and o.task_id in by_token}
    lost, missing, agent_dropped = [], 0, 0
    for launch in launches:
        if not launch.invoke_id:
            continue
        for iid in launch.instances:
            rec = records.get((launch.invoke_id, iid))
            if rec is None:
                missing += 1
                lost.append((launch.invoke_id, iid, "no record"))
                continue
            ok = rec["InvocationStatus"] == "Success" and rec["Output"] == f"{launch.token}\n"
            ran_to_end = (launch.token, iid) in ends
            if not ok and ((launch.invoke_id, iid) in acked or (iid in real_ids and ran_to_end)):
                if (launch.invoke_id, iid) in fleet.stats.dropped_for:
                    agent_dropped += 1  # the simulated official agent gave up on a report (no spool): not the server's
                    continue
                agent = "real" if iid in real_ids else "simulated"
                lost.append((launch.invoke_id, iid, agent, rec["InvocationStatus"], rec["Output"][:80]))
    tokens = {x.token for x in launches}
    twice = sorted(k for k, n in starts.items() if n > 1 and k[0] in tokens)
    hung = [k for k, rec in records.items() if rec["InvocationStatus"] in BUSY]
    statuses = Counter(rec["InvocationStatus"] for rec in records.values())
    agent_status = Counter(fleet.stats.statuses)
    agent_status.subtract(agent_status0)
    api_answers = Counter(call.status for call in calls)
    server_5xx = c.server_5xx(log_at)
    row = {
        "engine": c.engine, "scenario": name, "fault": done, "fault_s": round(f1 - f0, 1),
        "api_calls_answered": sum(n for s, n in api_answers.items() if s),
        "api_calls_unanswered": api_answers.get(0, 0),
        "api_unanswered_why": dict(Counter(call.error[:120] for call in calls if not call.status)),
        "agent_requests_answered": sum(n for s, n in agent_status.items() if s != 599 and n > 0),
        "agent_requests_unanswered": agent_status.get(599, 0),
        "runcommand_accepted": sum(1 for x in launches if x.invoke_id), "runcommand_not_accepted":
            sum(1 for x in launches if not x.invoke_id),
        "records": len(records), "statuses": dict(statuses), "runs": sum(1 for k in starts if k[0] in tokens),
        "results_lost": len(lost), "lost": lost[:20],
        "lost_output_only": sum(1 for x in lost if x[3] == "Success"),
        "missing_records": missing, "not_final": len(hung),
        "runs_twice": len(twice), "twice": twice[:10],
        "server_5xx": dict(server_5xx), "api_5xx_seen": sum(n for s, n in api_answers.items() if s >= 500),
        "agent_5xx_seen": sum(n for s, n in agent_status.items() if 500 <= s < 599 and n > 0),
        "reports_dropped_by_simulated_agents": fleet.stats.dropped_reports - dropped0,
        "results_short_by_agent_drops": agent_dropped,
        "latency_before": latency(calls, t0, f0), "latency_during": latency(calls, f0, f1 + 2.0),
        "latency_after": latency(calls, f1 + 2.0, t1),
        "agent_requests": fleet.stats.requests() - agent0,
    }
    log(summary_line(row))
    return row


def summary_line(row: dict[str, Any]) -> str:
    during, before = row["latency_during"], row["latency_before"]
    fives = sum(row["server_5xx"].values())
    return (f"{row['engine']:<10} {row['scenario']:<11} served API {row['api_calls_answered']:>5} "
            f"(unanswered {row['api_calls_unanswered']:>3}), agent {row['agent_requests_answered']:>5} | "
            f"runs {row['runs']:>5} | lost {row['results_lost']} ({row['lost_output_only']} Success with another "
            f"output; {row['results_short_by_agent_drops']} short by reports the official agent dropped) | "
            f"twice {row['runs_twice']} | "
            f"5xx {fives} (API seen {row['api_5xx_seen']}, agents seen {row['agent_5xx_seen']}) | "
            f"not final {row['not_final']} | signed p50/p99/max before {before['p50_ms']:.0f}/{before['p99_ms']:.0f}/"
            f"{before['max_ms']:.0f} ms, during {during['p50_ms']:.0f}/{during['p99_ms']:.0f}/"
            f"{during['max_ms']:.0f} ms | {row['fault']}")


@contextlib.asynccontextmanager
async def chaos(args: argparse.Namespace, engine: str) -> AsyncIterator[Chaos]:
    """Server on a tmpfs, proxy, simulated fleet and real agents; everything undone on the way out."""
    async with database_async(engine) as db_url, contextlib.AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ca-chaos-")))
        server_fs = stack.enter_context(tmpfs(root / "server-fs", args.server_fs))
        agent_fs = stack.enter_context(tmpfs(root / "agent-fs", args.agent_fs))
        data = server_fs / "data"
        data.mkdir()
        (root / "server.log").touch()
        (data / "server.log").symlink_to(root / "server.log")  # the log is kept off the filled disk
        # the disk reserve as users get it (test servers hold none by default)
        env = {"CLOUDASSIST_INVOCATION_QUOTA_DAILY": "0", "CLOUDASSIST_DISK_RESERVE_MB": "64"}
        server = LiveServer(data, db=db_url, extra_env=env)
        stack.callback(server.stop)
        await asyncio.to_thread(server.start, 60)
        proxy = await Proxy(("127.0.0.1", server.agent_port)).start()
        stack.push_async_callback(proxy.close)
        fleet = Fleet(proxy.endpoint, data / "ca.pem", mode=RunMode.SHELL, noise=False, redial_seconds=2.0)
        stack.push_async_callback(fleet.close)
        real: list[RealAgent] = []
        for i in range(args.real_agents):
            agent = RealAgent(root / f"agent{i}", agent_fs / f"agent{i}")
            stack.callback(agent.stop)
            real.append(await asyncio.to_thread(agent.register, server, proxy.endpoint))
            agent.start()
        api = Api(server)
        stack.push_async_callback(api.close)
        keys = load_keys(args.agents, None if args.no_key_cache else args.key_cache)
        made = await api("CreateActivation", InstanceCount=str(args.agents), Description="chaos")
        await fleet.register(keys, [(made["ActivationId"], made["ActivationCode"], args.agents)], REGION)
        await fleet.start()
        await asyncio.to_thread(wait_for, lambda: all(a.connected() for a in real), 60, "real agents to connect")
        log(f"{engine}: server {server.endpoint} / {server.agent_endpoint} (via proxy {proxy.endpoint}), "
            f"{fleet.connected()} simulated agents connected, {len(real)} real agents")
        load = Load(server, fleet, real, root / "markers", args.rate, args.per_call, args.run_seconds)
        stack.push_async_callback(load.close)
        if args.logs is not None:
            stack.callback(keep_logs, args.logs / engine, root, real)
        yield Chaos(args, engine, db_url, root, server, proxy, fleet, real, load, agent_fs)
        log_text = server.log()
        if "Traceback" in log_text:
            log(f"{engine}: the server logged {log_text.count('Traceback')} traceback(s); last:\n"
                f"{log_text[log_text.rfind('Traceback') - 300:][:3000]}")
        for agent in real:
            if "Traceback" in agent.log():
                log(f"{engine}: real agent {agent.instance_id} logged a traceback")


def keep_logs(to: Path, root: Path, real: Sequence[RealAgent]) -> None:
    to.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "server.log", to / "server.log")
    for agent in real:
        shutil.copy(agent.home / "agent.log", to / f"agent-{agent.instance_id}.log")


async def engine_run(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    async with chaos(args, engine) as c:
        api = Api(c.server)
        try:
            base = await floor(c.server, api, engine, c.db_url)
        finally:
            await api.close()
        measured = limits(c.server)
        log(f"{engine} {show_floor(base)}")
        log(f"{engine} limits: {measured}")
        rows = []
        for name in args.scenarios:
            if name == "pg-restart" and engine != "postgresql":
                continue
            rows.append(await scenario(c, name))
        return {"engine": engine, "floor": base, "limits": measured, "scenarios": rows}


def table(results: Sequence[dict[str, Any]]) -> str:
    lines = ["| engine | scenario | fault | API served (unanswered) | agent requests served | runs | results lost | "
             "runs twice | 5xx | not final | signed p50 / p99 / max before → during (ms) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        for r in result["scenarios"]:
            b, d = r["latency_before"], r["latency_during"]
            fault_text = ", ".join(f"{k} {v}" for k, v in r["fault"].items())
            lines.append(
                f"| {r['engine']} | {r['scenario']} | {r['fault_s']} s; {fault_text} | {r['api_calls_answered']} "
                f"({r['api_calls_unanswered']}) | {r['agent_requests_answered']} | {r['runs']} | {r['results_lost']} | "
                f"{r['runs_twice']} | {sum(r['server_5xx'].values())} | {r['not_final']} | "
                f"{b['p50_ms']:.0f} / {b['p99_ms']:.0f} / {b['max_ms']:.0f} → {d['p50_ms']:.0f} / {d['p99_ms']:.0f} / "
                f"{d['max_ms']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql", help="engines, comma-separated")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, of: " + ", ".join(SCENARIOS))
    parser.add_argument("--agents", type=int, default=100, help="simulated official agents")
    parser.add_argument("--real-agents", type=int, default=2, help="real `cloudassist agent` processes")
    parser.add_argument("--rate", type=float, default=4.0, help="RunCommand calls per second (reads: twice that)")
    parser.add_argument("--per-call", type=int, default=5, help="instances per RunCommand")
    parser.add_argument("--run-seconds", type=float, default=1.0,
                        help="each run sleeps this long between its markers, so runs are in flight at each fault")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before each fault")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of load after each fault")
    parser.add_argument("--fault-seconds", type=float, default=6.0,
                        help="how long a disk stays full or a network mode lasts (idle connections: twice that)")
    parser.add_argument("--delay", type=float, default=2.0, help="network: the proxy's delay per chunk, seconds")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections, half on each port")
    parser.add_argument("--settle", type=float, default=90.0, help="seconds to wait for every record to be final")
    parser.add_argument("--server-fs", default="64m", help="size of the server data directory's tmpfs")
    parser.add_argument("--agent-fs", default="16m", help="size of the real agents' state directories' tmpfs")
    parser.add_argument("--key-cache", type=Path, default=default_key_cache())
    parser.add_argument("--no-key-cache", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--logs", type=Path, help="keep the server's and the real agents' logs here, per engine")
    args = parser.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        parser.error("the chaos run needs root (tmpfs mounts, pg_ctlcluster)")
    patch_tls_buffers()
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        del os.environ[name]
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    results = []
    try:
        for engine in [e.strip() for e in args.db.split(",") if e.strip()]:
            results.append(run(engine_run(args, engine)))
    finally:
        if "postgresql" in args.db:
            pg_ensure_up()
    print(table(results))
    bad = [(r["engine"], r["scenario"]) for res in results for r in res["scenarios"]
           if r["results_lost"] or r["runs_twice"] or sum(r["server_5xx"].values()) or r["not_final"]]
    text = json.dumps(results, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    if bad:
        print(f"CHAOS FAILED: {bad}")
        sys.exit(1)


if __name__ == "__main__":
    main()
