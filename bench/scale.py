#!/usr/bin/env python
"""Fleet-scale benchmarks, driven by the fleet simulator (bench/fleet.py) against a real server process.

Scenarios (issue 7's table; SQLite on one server process unless --db says otherwise):

  s1   `echo` fan-out: RunCommand (100 instances per call, the real cap, calls in parallel) on every agent,
       until every result is Success through DescribeInvocations and then DescribeInvocationResults.
  s2   sustained: RunCommand calls at --rate results/s for --seconds across the fleet; results stored per
       second and report → acknowledged (= committed, visible) latency.
  s5   kill -9 of the server while the fleet reports, restart on the same store: acknowledged results lost,
       runs twice, tasks not terminal.
  s6   --agents idle agents connected: server RSS and CPU over --seconds.
  s7   StopInvocation of `sleep 600` running on every agent, until every record is Terminated.

Every run first measures the floor on the same machine: an unsigned API request, a signed no-op (auth only),
a bare single-row commit on the same engine, and the server's idle CPU.

    .venv/bin/python bench/scale.py s1 --agents 100,1000,5000
    .venv/bin/python bench/scale.py s2 --agents 1000 --rate 1000 --seconds 30
    .venv/bin/python bench/scale.py s7 --agents 1000
    .venv/bin/python bench/scale.py s1 --agents 1000 --db postgresql

Server CPU is read from /proc (utime+stime of the server process); the simulator's own CPU is printed apart,
since both share the machine's two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from retention import pg_commit_rate, sqlite_commit_rate

from cloudassist.testing import LiveServer, pg_database, signed_query
from fleet import Fleet, RunMode, default_key_cache, load_keys, patch_tls_buffers

REGION = "cn-hangzhou"
PER_ACTIVATION = 1000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(samples: Sequence[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def proc_cpu(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Api:
    """Signed (v1, HMAC-SHA1) ECS API calls over one pooled async HTTP client."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        # idle connections are dropped before the server's keep-alive (5 s) can close them under a request
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0)
        self.http = httpx.AsyncClient(trust_env=False, timeout=60.0, limits=limits)

    async def raw(self, params: dict[str, str]) -> httpx.Response:
        """One signed call; sent again (newly signed) once if the connection broke before an answer, which is
        safe because writes carry a ClientToken (run_command) or are idempotent (StopInvocation)."""
        for attempt in range(2):
            query = signed_query({"RegionId": REGION, **params}, self.server.access_key_id, self.server.secret)
            try:
                return await self.http.post(f"http://{self.server.endpoint}/?{query}")
            except httpx.TransportError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def __call__(self, action: str, **params: str) -> dict[str, Any]:
        response = await self.raw({"Action": action, **params})
        if response.status_code != 200:
            raise RuntimeError(f"{action}: HTTP {response.status_code} {response.text[:300]}")
        body: dict[str, Any] = response.json()
        return body

    async def close(self) -> None:
        await self.http.aclose()


@dataclass
class Rig:
    server: LiveServer
    api: Api
    fleet: Fleet
    engine: str
    db_url: str

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid


@contextlib.contextmanager
def database(engine: str) -> Iterator[str]:
    if engine == "postgresql":
        with pg_database("ca_bench_scale") as url:
            yield url
    else:
        yield ""


@contextlib.asynccontextmanager
async def database_async(engine: str) -> AsyncIterator[str]:
    """`database` from inside an event loop (pg_database runs a loop of its own, so it runs in a thread)."""
    manager = database(engine)
    url = await asyncio.to_thread(manager.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def rig(args: argparse.Namespace, agents: int, *, mode: RunMode = RunMode.FAKE,
              env: dict[str, str] | None = None) -> AsyncIterator[Rig]:
    """A server (fresh store), `agents` registered and started simulated agents, and an API client."""
    async with database_async(args.db) as db_url:
        with tempfile.TemporaryDirectory(prefix="ca-scale-") as tmp:
            server = LiveServer(Path(tmp) / "data", db=db_url, extra_env={
                "CLOUDASSIST_MAX_INSTANCES_PER_CALL": str(max(100, args.per_call)),
                "CLOUDASSIST_INVOCATION_QUOTA_DAILY": "0", **(env or {})}).start(timeout=60)
            api = Api(server)
            fleet = Fleet(server.agent_endpoint, server.data_dir / "ca.pem", mode=mode, noise=not args.quiet_agents,
                      http_idle_seconds=args.http_idle)
            try:
                keys = load_keys(agents, None if args.no_key_cache else args.key_cache)
                activations = []
                for first in range(0, agents, PER_ACTIVATION):
                    room = min(PER_ACTIVATION, agents - first)
                    made = await api("CreateActivation", InstanceCount=str(room), Description="fleet")
                    activations.append((made["ActivationId"], made["ActivationCode"], room))
                t0 = time.perf_counter()
                await fleet.register(keys, activations, REGION)
                t1 = time.perf_counter()
                await fleet.start()
                t2 = time.perf_counter()
                log(f"{agents} agents registered in {t1 - t0:.1f} s, started (websocket, heart-beat, start-up fetch) "
                    f"in {t2 - t1:.1f} s; {fleet.connected()} connected")
                profiler = None
                if args.profile:
                    assert server.process is not None
                    argv = ["py-spy", "record", "-p", str(server.process.pid), "-r", "250", "--gil", "-f", "raw",
                            "-o", str(args.profile)]
                    profiler = subprocess.Popen(  # noqa: ASYNC220 - started once, never waited on here
                        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    yield Rig(server, api, fleet, args.db, db_url)
                finally:
                    if profiler is not None:
                        profiler.send_signal(signal.SIGINT)
                        profiler.wait()
            finally:
                await fleet.close()
                await api.close()
                server.stop()


# ------------------------------------------------------------------------------------------------ floor


async def floor(server: LiveServer, api: Api, engine: str, db_url: str, n: int = 200) -> dict[str, float]:
    """The machine's floor, measured in this run: unsigned request, signed no-op, bare commit, idle CPU."""
    assert server.process is not None
    pid = server.process.pid
    unsigned, signed = [], []
    c0 = proc_cpu(pid)
    for _ in range(n):
        t0 = time.perf_counter()
        response = await api.http.post(f"http://{server.endpoint}/?Action=DescribeInvocations&RegionId={REGION}")
        unsigned.append(time.perf_counter() - t0)
        assert 400 <= response.status_code < 500, response.text
    c1 = proc_cpu(pid)
    for _ in range(n):
        t0 = time.perf_counter()
        response = await api.raw({"Action": "DescribeRegions"})
        signed.append(time.perf_counter() - t0)
        assert response.json().get("Code") == "InvalidAction.NotFound", response.text
    c2 = proc_cpu(pid)
    if engine == "postgresql":
        commits = await pg_commit_rate(db_url)
    else:
        commits = sqlite_commit_rate(server.data_dir)
    c3, t3 = proc_cpu(pid), time.perf_counter()
    await asyncio.sleep(5)
    idle = (proc_cpu(pid) - c3) / (time.perf_counter() - t3)
    return {
        "unsigned_p50_ms": statistics.median(unsigned) * 1e3,
        "unsigned_server_cpu_ms": (c1 - c0) / n * 1e3,
        "signed_noop_p50_ms": statistics.median(signed) * 1e3,
        "signed_noop_server_cpu_ms": (c2 - c1) / n * 1e3,
        "bare_commits_per_s": commits,
        "server_idle_cpu_pct": idle * 100,
    }


def show_floor(f: dict[str, float]) -> str:
    return (f"floor: unsigned request p50 {f['unsigned_p50_ms']:.2f} ms ({f['unsigned_server_cpu_ms']:.2f} ms server "
            f"CPU); signed no-op p50 {f['signed_noop_p50_ms']:.2f} ms ({f['signed_noop_server_cpu_ms']:.2f} ms server "
            f"CPU); bare commit {f['bare_commits_per_s']:,.0f}/s; server idle CPU {f['server_idle_cpu_pct']:.1f} %")


# ------------------------------------------------------------------------------------------------ helpers


def chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def run_command(api: Api, script: str, instances: Sequence[str], **params: str) -> str:
    ids = {f"InstanceId.{i + 1}": iid for i, iid in enumerate(instances)}
    made = await api("RunCommand", Type="RunShellScript", CommandContent=script, ContentEncoding="PlainText",
                     Timeout=params.pop("Timeout", "600"), ClientToken=uuid.uuid4().hex, **ids, **params)
    return str(made["InvokeId"])


async def until_status(api: Api, invoke_ids: Sequence[str], wanted: set[str], every: float = 0.05,
                       limit: float = 600.0) -> dict[str, float]:
    """Poll DescribeInvocations for each task until its roll-up is in `wanted`; when each got there."""
    left, seen, began = set(invoke_ids), {}, time.perf_counter()
    while left:
        for invoke_id in sorted(left):
            body = await api("DescribeInvocations", InvokeId=invoke_id)
            found = body["Invocations"]["Invocation"]
            if found and found[0]["InvocationStatus"] in wanted:
                seen[invoke_id] = time.perf_counter()
                left.discard(invoke_id)
        if time.perf_counter() - began > limit:
            raise RuntimeError(f"{len(left)} tasks not {wanted} after {limit} s")
        if left:
            await asyncio.sleep(every)
    return seen


async def results_of(api: Api, invoke_id: str) -> list[dict[str, Any]]:
    """Every record of a task through DescribeInvocationResults (NextToken paging, 50 a page)."""
    found: list[dict[str, Any]] = []
    token = ""
    while True:
        params = {"InvokeId": invoke_id, "MaxResults": "50", "ContentEncoding": "PlainText"}
        if token:
            params["NextToken"] = token
        body = await api("DescribeInvocationResults", **params)
        found += body["Invocation"]["InvocationResults"]["InvocationResult"]
        token = body.get("NextToken") or body["Invocation"].get("NextToken") or ""
        if not token:
            return found


# ------------------------------------------------------------------------------------------------ scenarios


async def s1(args: argparse.Namespace, agents: int) -> dict[str, Any]:
    async with rig(args, agents) as r:
        base = await floor(r.server, r.api, r.engine, r.db_url)
        log(show_floor(base))
        rounds = []
        for round_no in range(args.rounds):
            c0, s0, t0 = proc_cpu(r.pid), self_cpu(), time.perf_counter()
            req0 = r.fleet.stats.requests()
            parts = chunks(r.fleet.instance_ids, args.per_call)
            invoke_ids = await asyncio.gather(*(run_command(r.api, "echo hi", p, Timeout="60") for p in parts))
            t_created = time.perf_counter()
            done_at = await until_status(r.api, invoke_ids, {"Success", "Failed", "PartialFailed"})
            t_visible = max(done_at.values())
            c1, s1_, requests = proc_cpu(r.pid), self_cpu(), r.fleet.stats.requests() - req0
            records = [rec for iid in invoke_ids for rec in await results_of(r.api, iid)]
            ok = sum(1 for rec in records if rec["InvocationStatus"] == "Success" and rec["Output"] == "hi\n")
            row = {
                "agents": agents, "round": round_no, "tasks": len(invoke_ids),
                "run_commands_s": t_created - t0, "all_visible_s": t_visible - t0,
                "records": len(records), "success_with_output": ok,
                "server_cpu_s": c1 - c0, "sim_cpu_s": s1_ - s0, "agent_requests": requests,
                "server_cpu_ms_per_agent_request": (c1 - c0) / max(1, requests) * 1e3,
                "server_rss_mb": proc_rss_mb(r.pid),
            }
            log(f"S1 {agents} agents round {round_no}: all {ok}/{agents} visible Success in "
                f"{row['all_visible_s']:.2f} s (RunCommand x{len(invoke_ids)} {row['run_commands_s']:.2f} s); "
                f"server CPU {row['server_cpu_s']:.2f} s "
                f"for {requests} agent requests ({row['server_cpu_ms_per_agent_request']:.2f} ms each); "
                f"simulator CPU {row['sim_cpu_s']:.2f} s")
            if ok != agents:
                raise RuntimeError(f"only {ok} of {agents} records are Success with output 'hi'")
            rounds.append(row)
            await asyncio.sleep(1)
        return {"scenario": "s1", "floor": base, "rounds": rounds, "stats": summary(r)}


async def s7(args: argparse.Namespace, agents: int) -> dict[str, Any]:
    async with rig(args, agents) as r:
        base = await floor(r.server, r.api, r.engine, r.db_url)
        log(show_floor(base))
        parts = chunks(r.fleet.instance_ids, args.per_call)
        invoke_ids = await asyncio.gather(*(run_command(r.api, "sleep 600", p, Timeout="3600") for p in parts))
        await until_status(r.api, invoke_ids, {"Running"}, every=0.2)
        # every agent has started (the roll-up is Running once one has): wait for all of them
        while sum(1 for a in r.fleet.agents if a.runs) < agents:
            await asyncio.sleep(0.1)
        c0, t0 = proc_cpu(r.pid), time.perf_counter()
        await asyncio.gather(*(r.api("StopInvocation", InvokeId=iid) for iid in invoke_ids))
        t_called = time.perf_counter()
        done_at = await until_status(r.api, invoke_ids, {"Stopped"})
        t_done = max(done_at.values())
        records = [rec for iid in invoke_ids for rec in await results_of(r.api, iid)]
        terminated = sum(1 for rec in records if rec["InvocationStatus"] == "Terminated")
        row = {"agents": agents, "stop_calls_s": t_called - t0, "all_terminated_s": t_done - t0,
               "terminated": terminated, "records": len(records), "server_cpu_s": proc_cpu(r.pid) - c0}
        log(f"S7 {agents} agents: {terminated}/{len(records)} Terminated {row['all_terminated_s']:.2f} s after "
            f"StopInvocation (calls took {row['stop_calls_s']:.2f} s); server CPU {row['server_cpu_s']:.2f} s")
        return {"scenario": "s7", "floor": base, "rounds": [row], "stats": summary(r)}


async def s2(args: argparse.Namespace, agents: int) -> dict[str, Any]:
    async with rig(args, agents) as r:
        base = await floor(r.server, r.api, r.engine, r.db_url)
        log(show_floor(base))
        per_call = min(args.per_call, agents)
        calls_per_s = args.rate / per_call
        ids = r.fleet.instance_ids
        invoke_ids: list[str] = []
        c0, s0, t0 = proc_cpu(r.pid), self_cpu(), time.perf_counter()
        call_no = 0
        pending: set[asyncio.Task[str]] = set()
        while time.perf_counter() - t0 < args.seconds:
            due = t0 + call_no / calls_per_s
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            part = [ids[(call_no * per_call + i) % len(ids)] for i in range(per_call)]
            task = asyncio.ensure_future(run_command(r.api, "echo hi", part, Timeout="60"))
            pending.add(task)
            task.add_done_callback(pending.discard)
            task.add_done_callback(lambda t: invoke_ids.append(t.result()) if not t.exception() else None)
            call_no += 1
        await asyncio.gather(*pending)
        t_sent = time.perf_counter()
        await until_status(r.api, invoke_ids, {"Success", "Failed", "PartialFailed"}, every=0.5)
        t_done = time.perf_counter()
        c1, s1_ = proc_cpu(r.pid), self_cpu()
        outcomes = [o for runs in r.fleet.outcomes.values() for o in runs if o.kind]
        latency = [o.acked - o.reported for o in outcomes if o.acked]
        lost = [o for o in outcomes if not o.acked]
        total = len(invoke_ids) * per_call
        row = {"agents": agents, "target_results_per_s": args.rate, "seconds": args.seconds, "tasks": len(invoke_ids),
               "results": total, "results_per_s": total / (t_done - t0), "sent_for_s": t_sent - t0,
               "report_to_ack_p50_ms": pct(latency, 50) * 1e3, "report_to_ack_p99_ms": pct(latency, 99) * 1e3,
               "unacknowledged": len(lost), "server_cpu_s": c1 - c0,
               "server_cpu_ms_per_result": (c1 - c0) / max(1, total) * 1e3, "sim_cpu_s": s1_ - s0}
        log(f"S2 {agents} agents: {total} results in {t_done - t0:.1f} s = {row['results_per_s']:.0f}/s "
            f"(target {args.rate}/s); report→ack p50 {row['report_to_ack_p50_ms']:.0f} ms, p99 "
            f"{row['report_to_ack_p99_ms']:.0f} ms; server CPU {row['server_cpu_ms_per_result']:.2f} ms per result")
        return {"scenario": "s2", "floor": base, "rounds": [row], "stats": summary(r)}


async def s6(args: argparse.Namespace, agents: int) -> dict[str, Any]:
    async with rig(args, agents) as r:
        base = await floor(r.server, r.api, r.engine, r.db_url)
        log(show_floor(base))
        await asyncio.sleep(5)
        c0, s0, t0, req0 = proc_cpu(r.pid), self_cpu(), time.perf_counter(), r.fleet.stats.requests()
        await asyncio.sleep(args.seconds)
        elapsed = time.perf_counter() - t0
        row = {"agents": agents, "connected": r.fleet.connected(), "seconds": elapsed,
               "server_rss_mb": proc_rss_mb(r.pid), "server_cpu_pct": (proc_cpu(r.pid) - c0) / elapsed * 100,
               "sim_cpu_pct": (self_cpu() - s0) / elapsed * 100, "sim_rss_mb": proc_rss_mb(os.getpid()),
               "agent_requests_per_s": (r.fleet.stats.requests() - req0) / elapsed}
        log(f"S6 {agents} idle agents ({row['connected']} connected): server RSS {row['server_rss_mb']:.0f} MB, "
            f"server CPU {row['server_cpu_pct']:.1f} % of a core ({row['agent_requests_per_s']:.0f} agent requests/s); "
            f"simulator RSS {row['sim_rss_mb']:.0f} MB")
        return {"scenario": "s6", "floor": base, "rounds": [row], "stats": summary(r)}


async def s5(args: argparse.Namespace, agents: int) -> dict[str, Any]:
    async with rig(args, agents) as r:
        base = await floor(r.server, r.api, r.engine, r.db_url)
        log(show_floor(base))
        r.fleet.redial_seconds = 2.0
        ids = r.fleet.instance_ids
        # every agent runs a 1-3 s task, so reports are in flight when the server dies
        invoke_ids = await asyncio.gather(
            *(run_command(r.api, "sleep 2", part, Timeout="60") for part in chunks(ids, args.per_call)))
        await asyncio.sleep(2.0)
        assert r.server.process is not None
        r.server.process.send_signal(signal.SIGKILL)
        r.server.process.wait()
        killed = time.perf_counter()
        log("server killed (SIGKILL); restarting on the same store")
        await asyncio.sleep(1.0)
        r.server.start(timeout=60)
        restarted = time.perf_counter()
        done = await until_status(r.api, invoke_ids, {"Success", "Failed", "PartialFailed", "Stopped"}, every=1.0,
                                  limit=900)
        records = {(rec["InvokeId"], rec["InstanceId"]): rec
                   for iid in invoke_ids for rec in await results_of(r.api, iid)}
        acked_lost = [o for runs in r.fleet.outcomes.values() for o in runs
                      if o.acked and records.get((o.task_id, o.instance_id), {}).get("InvocationStatus") != "Success"]
        twice = [k for k, runs in r.fleet.outcomes.items() if sum(1 for o in runs if o.started) > 1]
        busy = ("Pending", "Running", "Stopping")
        not_terminal = [k for k, rec in records.items() if rec["InvocationStatus"] in busy]
        by_status: dict[str, int] = {}
        for rec in records.values():
            by_status[rec["InvocationStatus"]] = by_status.get(rec["InvocationStatus"], 0) + 1
        row = {"agents": agents, "acked_results_lost": len(acked_lost), "ran_twice": len(twice),
               "not_terminal": len(not_terminal), "statuses": by_status,
               "restart_s": restarted - killed, "all_terminal_after_restart_s": max(done.values()) - restarted,
               "dropped_reports": r.fleet.stats.dropped_reports}
        log(f"S5 {agents} agents: acknowledged results lost {len(acked_lost)}, ran twice {len(twice)}, not terminal "
            f"{len(not_terminal)}; statuses {by_status}; reports the agents dropped {r.fleet.stats.dropped_reports}")
        return {"scenario": "s5", "floor": base, "rounds": [row], "stats": summary(r)}


def summary(r: Rig) -> dict[str, Any]:
    s = r.fleet.stats
    return {
        "agent_requests": s.requests(), "server_errors": s.server_errors(), "statuses": dict(s.statuses),
        "dropped_reports": s.dropped_reports, "kicks": s.kicks, "reconnects": s.reconnects,
        "latency_ms": {name: {"n": len(v), "p50": pct(v, 50) * 1e3, "p99": pct(v, 99) * 1e3}
                       for name, v in sorted(s.latencies.items())},
    }


SCENARIOS = {"s1": s1, "s2": s2, "s5": s5, "s6": s6, "s7": s7}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--agents", default="100", help="comma-separated fleet sizes")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--per-call", type=int, default=100, help="instances per RunCommand (the real cap: 100)")
    parser.add_argument("--rounds", type=int, default=3, help="s1: fan-outs per fleet size")
    parser.add_argument("--rate", type=int, default=1000, help="s2: results per second asked for")
    parser.add_argument("--seconds", type=float, default=30.0, help="s2/s6: how long")
    parser.add_argument("--key-cache", type=Path, default=default_key_cache())
    parser.add_argument("--no-key-cache", action="store_true")
    parser.add_argument("--http-idle", type=float, default=None,
                        help="agents close their HTTPS connection after this many idle seconds (default: keep it)")
    parser.add_argument("--quiet-agents", action="store_true", help="no start-up metrics or state-manager polls")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", type=Path, help="record the server with py-spy (collapsed stacks) into this file")
    args = parser.parse_args()
    patch_tls_buffers()
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        del os.environ[name]
    results = []
    for size in [int(x) for x in args.agents.split(",")]:
        results.append(run(SCENARIOS[args.scenario](args, size)))
    text = json.dumps(results, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)


def run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


if __name__ == "__main__":
    main()
