"""The footprint of `cloudassist agent run`: idle RSS and CPU, CPU per fan-out cycle, start-up, imports, memory.

Starts a real server (LiveServer), registers one agent through an activation made with the API, and runs
`python -m cloudassist.agent run` (as the systemd unit and `cloudassist up` run it, without click; `--entry
cli` runs the console script, `cloudassist agent run`, which loads click and the command line first):

1. floor: VmRSS of a bare `python -c 'import time; time.sleep(60)'`, and of one that has imported ssl and
   asyncio (what any asyncio TLS client needs), to say how far the agent is above the interpreter;
2. imports: one agent run under `python -X importtime` until it has opened its kick channel and run one
   `echo hi`: the total import time, the slowest imports, every top-level package it loaded (and whether
   any of the server's: sqlalchemy, starlette, uvicorn…);
3. memory profile: a fresh interpreter imports the same modules one by one, in the order the agent
   finished importing them, and reads VmRSS/RssAnon/RssFile after each; the growth is added up per
   package (per module for cloudassist's own);
4. the measured run: start-up (spawn → `kick channel connected` in its log, and the CPU spent by then),
   then idle for --seconds (default 90, covering a heart-beat) and prints VmRSS, RssAnon, RssFile,
   threads and the CPU seconds it used, next to the official agent's figures from agent-protocol.md
   Part 2 §6 (~24 MB RSS, 0.09-0.16 s CPU after ~100 s idle);
5. fan-out: --cycles times RunCommand `echo hi` through the API, then DescribeInvocationResults until
   the execution is Success; the agent's own CPU (utime+stime) and its children's (cutime+cstime) per
   cycle, from /proc/<pid>/stat before and after (a 1 s settle after the last cycle is included);
6. signing: the CPU of one request signature with the agent's key, in a fresh interpreter that imported
   ssl, as the agent signs (OpenSSL through ctypes when it can) and in Python alone.

Before it starts, cloudassist's modules are compiled to .pyc next to their sources, as `pip install` does
for an installed agent: with PYTHONDONTWRITEBYTECODE set (as on our machines) an editable install would
otherwise compile every module of its own at each start; `--no-compile` measures that case.

    .venv/bin/python bench/agent_footprint.py [--seconds 90] [--cycles 20] [--entry module|cli] [--no-compile]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cloudassist
from cloudassist.testing import LiveServer

REGION = "cn-hangzhou"
OFFICIAL_IDLE = ("official agent 2.2.3.578 (agent-protocol.md Part 2 §6): VmRSS ~22.7-25.0 MB "
                 "(4-7 MB anonymous), 0.09-0.16 s CPU after ~100 s")
OFFICIAL_TASKS = "official agent: CPU under 0.4 s for a whole six-task scenario (about 75 s), RSS 25.6 MB after it"
TARGET = "target (S8): idle VmRSS <= 24 MB, ~0 CPU idle, < 20 ms agent CPU per fan-out cycle"
SERVER_PACKAGES = ("sqlalchemy", "starlette", "uvicorn", "alembic", "asyncpg", "aiosqlite", "cloudassist.api",
                   "cloudassist.services", "cloudassist.store", "cloudassist.server")
#: Per-instance InvocationStatus values that end an execution other than with success.
FAILED = frozenset({"Failed", "Invalid", "Aborted", "Error", "Timeout", "Cancelled", "Terminated"})
CONNECTED = "kick channel connected"
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")
#: Imports modules given as arguments one by one and prints `name VmRSS RssAnon RssFile` (kB) after each.
_PROFILE = """
import importlib, sys
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return " ".join(fields[k].split()[0] for k in ("VmRSS", "RssAnon", "RssFile"))
print("-", rss(), flush=True)
for name in sys.argv[1:]:
    if name in sys.modules:
        continue
    try:
        importlib.import_module(name)
    except Exception:
        print("!", name, flush=True)
        continue
    print(name, rss(), flush=True)
"""

#: Signs with the key of the state directory argv[1] as the agent does, then in Python alone; prints
#: `backend`, then the CPU ms per signature of each.
_SIGNING = """
import ssl, sys, time
from pathlib import Path
from cloudassist.agent import identity, keys, openssl
key = identity.load(Path(sys.argv[1])).private_key
print(keys.backend(key))
def per_signature(count):
    begun = time.process_time()
    for i in range(count):
        keys.sign_md5(key, b"mi-x" + b"0" * 32 + str(i).encode())
    return (time.process_time() - begun) * 1000 / count
print(f"{per_signature(1000):.2f}")
openssl.library = lambda: None
print(f"{per_signature(100):.2f}")
print(key.p.bit_length(), key.q.bit_length())
"""


def status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process itself."""
    return sum(user_system_seconds(pid))


def user_system_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of the process itself."""
    parts = _stat_fields(pid)
    return int(parts[11]) / os.sysconf("SC_CLK_TCK"), int(parts[12]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    """cutime + cstime: CPU of the children the process has waited for (the task shells)."""
    parts = _stat_fields(pid)
    return (int(parts[13]) + int(parts[14])) / os.sysconf("SC_CLK_TCK")


def kb(value: str) -> int:
    return int(value.split()[0])


def wait_until(probe: Callable[[], bool], seconds: float, what: str, every: float = 0.005) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"BENCHMARK FAILED: timed out after {seconds:g} s waiting for {what}")
        time.sleep(every)


def floor_rss(code: str) -> dict[str, str]:
    """/proc status of `python -c code` (which must end sleeping) 1.5 s after its start."""
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(1.5)
        return status(process.pid)
    finally:
        process.kill()
        process.wait()


@dataclass
class AgentProcess:
    """One `agent run` process of the bench, logging to `log`."""

    process: subprocess.Popen[bytes]
    log: Path
    started: float

    def connected(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"BENCHMARK FAILED: the agent exited: {self.log.read_text(errors='replace')}")
        return CONNECTED in self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


class Bench:
    def __init__(self, server: LiveServer, home: Path, entry: str) -> None:
        self.server = server
        self.home = home
        self.state = home / "agent"
        script = Path(sys.executable).with_name("cloudassist")
        if entry == "cli" and script.exists():
            self.argv = [str(script), "agent", "run"]
            self.label = "cloudassist agent run"
        else:
            self.argv = ["-m", "cloudassist.agent", "run"]
            self.label = "python -m cloudassist.agent run"
        self.env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.env["CLOUDASSIST_AGENT_RUNTIME_DIR"] = str(home)  # the cold-start flag, not in /dev/shm

    def register(self) -> tuple[str, float]:
        made = self.server.api(Action="CreateActivation", InstanceCount="1")
        begun = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "cloudassist.agent", "register", "--server",
                               self.server.agent_endpoint, "--activation-id", made["ActivationId"], "--region",
                               REGION, "--ca-file", str(self.server.data_dir / "ca.pem"), "--state-dir",
                               str(self.state)],
                              env={**self.env, "CLOUDASSIST_ACTIVATION_CODE": made["ActivationCode"]},
                              check=True, capture_output=True, text=True)
        seconds = time.monotonic() - begun
        instance_id = done.stdout.split("instance id ", 1)[1].split()[0]
        return instance_id, seconds

    def start(self, name: str, *python_options: str) -> AgentProcess:
        log = self.home / f"{name}.log"
        with open(log, "wb") as handle:
            begun = time.monotonic()
            process = subprocess.Popen([sys.executable, *python_options, *self.argv, "--state-dir", str(self.state),
                                        "--log-level", "info"],
                                       env=self.env, stdout=subprocess.DEVNULL, stderr=handle)
        return AgentProcess(process, log, begun)

    def cycle(self, instance_id: str) -> float:
        """RunCommand `echo hi` on the agent and wait until DescribeInvocationResults says Success; seconds."""
        begun = time.monotonic()
        invoke_id = self.server.api(Action="RunCommand", Type="RunShellScript", CommandContent="echo hi",
                                    ContentEncoding="PlainText", **{"InstanceId.1": instance_id})["InvokeId"]

        def succeeded() -> bool:
            page = self.server.api(Action="DescribeInvocationResults", InvokeId=invoke_id)
            results = page["Invocation"]["InvocationResults"]["InvocationResult"]
            state = results[0]["InvocationStatus"] if results else ""
            if state in FAILED:
                raise SystemExit(f"BENCHMARK FAILED: {invoke_id} ended {state}: {results}")
            return state == "Success"

        wait_until(succeeded, 30, f"{invoke_id} to succeed", every=0.01)
        return time.monotonic() - begun


def parse_importtime(text: str) -> list[tuple[str, int, int, int]]:
    """(module, self µs, cumulative µs, depth) for every `-X importtime` line, in the order printed."""
    rows = []
    for line in text.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            rows.append((match.group(4), int(match.group(1)), int(match.group(2)), len(match.group(3)) // 2))
    return rows


def group_of(module: str) -> str:
    """The package a module is counted under: cloudassist's modules one by one, others by top-level name."""
    if module.startswith("cloudassist."):
        return ".".join(module.split(".")[:3])
    return module.split(".")[0]


def print_imports(rows: list[tuple[str, int, int, int]], failed: set[str]) -> None:
    """The import-time summary; `failed` are the names Python looked for and did not find (optional
    dependencies, other platforms' modules), which -X importtime lists too."""
    rows = [r for r in rows if r[0] not in failed]
    total = sum(own for _, own, _, _ in rows)
    print(f"imports of the agent (python -X importtime, through start-up and one task): {len(rows)} modules, "
          f"{total / 1000:.0f} ms in all")
    top = sorted((r for r in rows if r[3] == 0), key=lambda r: -r[2])[:3]
    print("  top-level: " + ", ".join(f"{name} {cum / 1000:.0f} ms" for name, _, cum, _ in top))
    slowest = sorted(rows, key=lambda r: -r[1])[:8]
    print("  slowest (own time, ms): " + ", ".join(f"{name} {own / 1000:.1f}" for name, own, _, _ in slowest))
    packages = sorted({m.split(".")[0] for m, *_ in rows if not m.startswith("_")} - set(sys.stdlib_module_names))
    print(f"  packages outside the standard library: {', '.join(packages)}")
    server = sorted({m for m, *_ in rows if m.startswith(SERVER_PACKAGES)})
    print(f"  modules of the server's stack: {', '.join(server) if server else 'none'}")


@dataclass
class Profile:
    base: list[int]  #: VmRSS, RssAnon, RssFile (kB) of the fresh interpreter
    final: list[int]  #: the same after every import
    growth: dict[str, list[int]]  #: per package (cloudassist: per module), the growth its imports caused
    failed: set[str]  #: modules that could not be imported


def profile(modules: list[str]) -> Profile:
    out = subprocess.run([sys.executable, "-c", _PROFILE, *modules], capture_output=True, text=True, check=True)
    lines = [line.split() for line in out.stdout.splitlines()]
    base = previous = [int(v) for v in lines[0][1:]]
    growth: dict[str, list[int]] = {}
    failed = set()
    for fields in lines[1:]:
        if fields[0] == "!":
            failed.add(fields[1])
            continue
        now = [int(v) for v in fields[1:]]
        row = growth.setdefault(group_of(fields[0]), [0, 0, 0])
        for i in range(3):
            row[i] += now[i] - previous[i]
        previous = now
    return Profile(base, previous, growth, failed)


def print_profile(found: Profile, shown: int = 24) -> None:
    base, final = found.base, found.final
    print(f"memory profile (RSS growth as a fresh interpreter imports the agent's modules; kB): "
          f"interpreter {base[0]} (anon {base[1]}, file {base[2]}), after all imports {final[0]} "
          f"(anon {final[1]}, file {final[2]})")
    ranked = sorted(found.growth.items(), key=lambda item: -item[1][0])
    for name, (rss, anon, file) in ranked[:shown]:
        print(f"  {name:34} {rss:6d}  (anon {anon:6d}, file {file:6d})")
    rest = ranked[shown:]
    print(f"  {len(rest)} more packages/modules: {sum(r[1][0] for r in rest)} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--entry", choices=("module", "cli"), default="module")
    parser.add_argument("--no-compile", action="store_true", help="do not write cloudassist's .pyc files first")
    args = parser.parse_args()

    if not args.no_compile:
        compileall.compile_dir(Path(cloudassist.__file__).parent, quiet=1)
    bare = floor_rss("import time; time.sleep(60)")
    stack = floor_rss("import ssl, asyncio, time; time.sleep(60)")
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp) / "server").start()
        agent = None
        try:
            bench = Bench(server, Path(tmp), args.entry)
            instance_id, registration = bench.register()

            traced = bench.start("importtime", "-X", "importtime")
            try:
                wait_until(traced.connected, 60, "the importtime agent to connect")
                bench.cycle(instance_id)
            finally:
                traced.stop()
            rows = parse_importtime(traced.log.read_text(errors="replace"))

            agent = bench.start("agent")
            wait_until(agent.connected, 60, "the agent to connect")
            startup = time.monotonic() - agent.started
            startup_cpu = cpu_seconds(agent.process.pid)
            time.sleep(max(0.0, args.seconds - (time.monotonic() - agent.started)))
            info = status(agent.process.pid)
            idle_cpu = cpu_seconds(agent.process.pid)

            before = (*user_system_seconds(agent.process.pid), children_cpu_seconds(agent.process.pid))
            latencies = [bench.cycle(instance_id) for _ in range(args.cycles)]
            time.sleep(1.0)
            after = (*user_system_seconds(agent.process.pid), children_cpu_seconds(agent.process.pid))
            busy = status(agent.process.pid)
            signing = subprocess.run([sys.executable, "-c", _SIGNING, str(bench.state)], capture_output=True,
                                     text=True, check=True).stdout.splitlines()
        finally:
            if agent is not None:
                agent.stop()
            server.stop()

    print(f"cloudassist agent after {args.seconds:.0f} s idle (one heart-beat, kick socket open):")
    print(f"  VmRSS {info['VmRSS']}  RssAnon {info['RssAnon']}  RssFile {info['RssFile']}  "
          f"VmHWM {info['VmHWM']}  threads {info['Threads']}")
    print(f"  CPU used since start: {idle_cpu:.2f} s (includes start-up and imports)")
    print(OFFICIAL_IDLE)
    print(TARGET)
    print()
    print(f"measured command: {bench.label} "
          f"({'compiling its modules at each start' if args.no_compile else 'bytecode cached, as installed'})")
    print(f"interpreter floor: bare python VmRSS {bare['VmRSS']} (anon {bare['RssAnon']}, file {bare['RssFile']}); "
          f"python with ssl+asyncio imported {stack['VmRSS']} (anon {stack['RssAnon']}, file {stack['RssFile']})")
    print(f"  the idle agent is {kb(info['VmRSS']) - kb(bare['VmRSS'])} kB above bare python, "
          f"{kb(info['VmRSS']) - kb(stack['VmRSS'])} kB above python+ssl+asyncio")
    print(f"start-up: {startup * 1000:.0f} ms from spawn to '{CONNECTED}', {startup_cpu:.2f} s CPU by then; "
          f"idle CPU after that: {idle_cpu - startup_cpu:.2f} s over {args.seconds - startup:.0f} s")
    print(f"registration (`agent register`, RSA-2048 key generation included): {registration:.2f} s")
    cycles, tick = max(args.cycles, 1), 1000 / os.sysconf("SC_CLK_TCK")
    user, system, children = ((a - b) * 1000 / cycles for a, b in zip(after, before, strict=True))
    print(f"fan-out: {args.cycles} cycles of RunCommand `echo hi` → Success: agent CPU {user + system:.1f} ms/cycle "
          f"(user {user:.1f}, system {system:.1f}), children (/bin/sh) {children:.1f} ms/cycle "
          f"(clock tick {tick:.0f} ms); "
          f"latency median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    print(f"  after the cycles: VmRSS {busy['VmRSS']}  RssAnon {busy['RssAnon']}  RssFile {busy['RssFile']}  "
          f"VmHWM {busy['VmHWM']}  threads {busy['Threads']}")
    print(OFFICIAL_TASKS)
    primes = signing[3].replace(" ", "/")
    print(f"signing (the agent's key, p and q of {primes} bits): {signing[1]} ms CPU a signature with {signing[0]}; "
          f"{signing[2]} ms in Python alone")
    print()
    seen: dict[str, None] = {}
    for name, *_ in rows:
        if not name.endswith("__main__"):
            seen.setdefault(name)
    found = profile(list(seen))
    print_imports(rows, found.failed)
    print()
    print_profile(found)


if __name__ == "__main__":
    main()
