"""A fleet simulator: thousands of official Cloud Assistant agents in one process, exact on the wire.

Each simulated agent is what `aliyun-service` 2.2.3.578 in hybrid (registered) mode puts on the wire
(agent-protocol.md Part 2 §3-§4): it registers through a real activation code with its own RSA-2048 key
pair, signs every request (`X-Acs-*`: RSA PKCS#1 v1.5 over MD5 of instance id + machine id + timestamp +
request id), keeps its websocket to `/luban/notify_server` (a `keepalive` ping every 60 s), sends its
heart-beats (the first with the extra fields, then every `nextInterval` within 55-65 s), answers each kick
with `accept:<kick>` and fetches `v1/task/list?reason=kickoff[&taskId=…]` (once more after 3 s when a kick
brings nothing), runs at most 10 tasks at once, de-duplicates by (taskID, invokeVersion), posts the empty
`running` start, a `running` tick every output interval, then `finish`/`timeout`/`stopped` (lower-case
`exitcode`) with the output not yet sent, retrying a final report 3 times 2 s apart and then dropping it (as the
official agent does: it keeps no spool; `running` posts are sent once, fire-and-forget, basetask.go); a
task-list fetch is tried 3 times too. Scheduled tasks (`Rate`, `At`,
`Period` cron) run on its own clock with `currentTime`/`offset`/`timeZone` on their reports.

A run is either faked (`RunMode.FAKE`: it lasts `fake_seconds` and prints `fake_output` bytes; a task whose
script is `sleep N` lasts N seconds) or real (`RunMode.SHELL`: `/bin/sh -c` in its own process group,
killed as a group on timeout and stop).

HTTP/1.1 is framed by h11 over one kept-alive TLS connection per agent, reopened when the server closes it;
the kick channel is the `websockets` client. Nothing here imports the server: it is a black-box client
(the schedule arithmetic comes from `cloudassist.domain.schedules`, a pure function).

RSA-2048 key generation takes ~40 ms a key, so keys are generated on every core and kept in a cache file
(`--key-cache`, default `~/.cache/cloudassist/fleet-rsa2048.pem`); each agent still has its own key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import os
import random
import re
import signal
import ssl
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import h11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from cloudassist.domain.schedules import next_run

VERSION = "2.2.3.578"
OS_VERSION = "Linux_#1 SMP PREEMPT_DYNAMIC @0_x86_64"
JSON_UTF8 = "application/json; charset=utf-8"
TEXT_UTF8 = "text/plain; charset=utf-8"
FORM = "application/x-www-form-urlencoded"
#: The official agent's task pool: 10 workers (taskpool.go).
WORKERS = 10
#: Final-report retries of the official agent (3 tries, 2 s apart, then the result is dropped); `running` posts
#: (the start and the output ticks) are sent once.
REPORT_TRIES = 3
REPORT_RETRY_SECONDS = 2.0
#: Task-list fetches are tried as often on network errors.
FETCH_TRIES = 3
#: How much running output the official agent streams before it keeps the rest for the final report.
STREAM_BUDGET = 6000
PEM_BLOCK = re.compile(rb"-----BEGIN RSA PRIVATE KEY-----.+?-----END RSA PRIVATE KEY-----\n?", re.S)


def now_ms() -> int:
    return int(time.time() * 1000)


def go_query(*pairs: tuple[str, object]) -> str:
    """`k=v&k=v` in the given order, values escaped as Go's url.QueryEscape escapes them."""
    return "&".join(f"{key}={quote_plus(str(value), safe='')}" for key, value in pairs)


def go_json(value: object) -> bytes:
    """What Go's json.Marshal writes: compact, `<`, `>` and `&` escaped."""
    import json

    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


# ------------------------------------------------------------------------------------------------ keys


def default_key_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cloudassist" / "fleet-rsa2048.pem"


def _generate_pems(count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        out.append(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        )
    return out


def load_keys(count: int, cache: Path | None) -> list[rsa.RSAPrivateKey]:
    """`count` distinct RSA-2048 keys (PKCS#1 `RSA PRIVATE KEY`, as the agent keeps them): from the cache file,
    and as many more as needed generated on every core (and appended to the cache)."""
    pems: list[bytes] = []
    if cache is not None and cache.exists():
        pems = PEM_BLOCK.findall(cache.read_bytes())
    missing = count - len(pems)
    if missing > 0:
        workers = max(1, os.cpu_count() or 1)
        chunks = [missing // workers + (1 if i < missing % workers else 0) for i in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            fresh = [pem for part in pool.map(_generate_pems, [c for c in chunks if c]) for pem in part]
        pems += fresh
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with open(cache, "ab") as handle:
                handle.write(b"".join(fresh))
    keys = []
    for pem in pems[:count]:
        key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
        assert isinstance(key, rsa.RSAPrivateKey)
        keys.append(key)
    return keys


# ------------------------------------------------------------------------------------------------ stats


@dataclass
class Stats:
    """What the fleet sent and how it was answered, by endpoint."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    dropped_reports: int = 0
    #: (taskId, instance id) of every report an agent dropped after its tries, as the official agent does.
    dropped_for: set[tuple[str, str]] = field(default_factory=set)
    reconnects: int = 0
    kicks: int = 0

    def record(self, name: str, seconds: float, status: int) -> None:
        self.latencies[name].append(seconds)
        self.statuses[status] += 1
        if status >= 400:
            self.failures[name] += 1

    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


@dataclass
class Outcome:
    """One run of a task on one agent, as the agent saw it (monotonic seconds)."""

    task_id: str
    instance_id: str
    kind: str = ""  #: the final report: finish, timeout, stopped, error, invalid
    exit_code: int | None = None
    kicked: float = 0.0
    fetched: float = 0.0
    started: float = 0.0
    reported: float = 0.0  #: the final report sent
    acked: float = 0.0  #: the final report acknowledged (0: never)
    output: bytes = b""


# ------------------------------------------------------------------------------------------------ wire


class WireError(Exception):
    """The request could not be sent or answered (connection refused, reset, timed out)."""


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


class Wire:
    """One agent's HTTPS connection: HTTP/1.1 framed by h11, kept alive, reopened when it breaks.

    With several server addresses it behaves as a TCP load balancer in front of them would for the agent: a
    new connection goes to the current server, or to the next one that answers when it does not."""

    def __init__(
        self, endpoints: Sequence[str] | str, tls: ssl.SSLContext | None, idle_close: float | None = None
    ) -> None:
        self.endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        self.at = 0
        self.tls = tls
        #: close the connection after this long unused (None: keep it until the server closes it)
        self.idle_close = idle_close
        self._idle: asyncio.TimerHandle | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.conn: h11.Connection | None = None
        self.lock = asyncio.Lock()

    @property
    def endpoint(self) -> str:
        return self.endpoints[self.at]

    @property
    def host(self) -> str:
        return split_endpoint(self.endpoint)[0]

    def next_endpoint(self) -> None:
        self.at = (self.at + 1) % len(self.endpoints)

    async def _open(self) -> None:
        for attempt in range(len(self.endpoints)):
            host, port = split_endpoint(self.endpoint)
            tls = {"ssl": self.tls, "server_hostname": host} if self.tls is not None else {}
            try:
                self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 20, **tls)
            except OSError:
                if attempt + 1 == len(self.endpoints):
                    raise
                self.next_endpoint()
                continue
            self.conn = h11.Connection(h11.CLIENT)
            return

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = self.conn = None

    async def aclose(self) -> None:
        """Close, and wait until the transport has let go of its socket."""
        writer = self.writer
        self.close()
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"", timeout: float = 8.0
    ) -> tuple[int, bytes]:
        async with self.lock:
            if self._idle is not None:
                self._idle.cancel()
            try:
                return await self._request(method, target, headers, body, timeout)
            finally:
                if self.idle_close is not None and self.writer is not None:
                    self._idle = asyncio.get_running_loop().call_later(self.idle_close, self.close)

    async def _request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> tuple[int, bytes]:
        for attempt in range(2):
            fresh = self.writer is None
            try:
                if fresh:
                    await asyncio.wait_for(self._open(), timeout)
                return await asyncio.wait_for(self._exchange(method, target, headers, body), timeout)
            except (OSError, EOFError, h11.ProtocolError, asyncio.IncompleteReadError, TimeoutError) as exc:
                self.close()
                # a kept-alive connection the server closed meanwhile is retried once on a new one
                if fresh or attempt or isinstance(exc, TimeoutError):
                    raise WireError(f"{method} {target.split('?')[0]}: {exc!r}") from None
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes]:
        assert self.conn is not None
        assert self.writer is not None
        assert self.reader is not None
        conn = self.conn
        all_headers = [("Host", self.endpoint), *headers]
        if method == "POST":
            all_headers.append(("Content-Length", str(len(body))))
        data = conn.send(h11.Request(method=method, target=target, headers=all_headers))
        if method == "POST":
            data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        self.writer.write(data)
        status, chunks = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                received = await self.reader.read(65536)
                if not received:
                    raise EOFError("connection closed by the server")
                conn.receive_data(received)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("connection closed by the server")
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            self.close()
        else:
            conn.start_next_cycle()
        return status, b"".join(chunks)


# ------------------------------------------------------------------------------------------------ agent


class RunMode(enum.StrEnum):
    FAKE = "fake"
    SHELL = "shell"


SLEEP = re.compile(rb"^\s*sleep\s+(\d+(?:\.\d+)?)\s*$")
BUILT_IN = re.compile(rb"\{\{\s*(ACS::[A-Za-z0-9_]+)\s*\}\}")


def fill_built_ins(content: bytes, task: dict[str, Any]) -> bytes:
    """What the agent does with `enableParameter`: `{{ACS::Name}}` becomes the task's builtInParameter value."""
    if not task.get("enableParameter"):
        return content
    values = task.get("builtInParameter") or {}
    return BUILT_IN.sub(lambda m: str(values.get(m.group(1).decode(), m.group(0).decode())).encode(), content)


@dataclass
class Run:
    """A task an agent is running now."""

    task_id: str
    version: int
    start: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    output: bytearray = field(default_factory=bytearray)
    sent: int = 0  #: output bytes already posted in `running` ticks


class SimAgent:
    """One simulated host running the official agent in hybrid mode."""

    def __init__(self, fleet: Fleet, index: int, key: rsa.RSAPrivateKey) -> None:
        self.fleet = fleet
        self.index = index
        self.key = key
        pub = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.pub_b64 = base64.b64encode(pub).decode()
        self.machine_id = uuid.uuid4().hex
        self.instance_id = ""
        self.user_agent = f"linux_{'386' if index % 2 else 'amd64'}/{VERSION}"
        self.pid = 10_000 + index
        self.process_start = now_ms()
        self.acks = 0
        self.sent = 0
        # each agent starts at its own server of the fleet's (round robin) and moves on when it is gone
        shift = index % len(fleet.endpoints)
        self.wire = Wire(fleet.endpoints[shift:] + fleet.endpoints[:shift], fleet.tls, fleet.http_idle_seconds)
        self.ws: ClientConnection | None = None
        self.seen: set[tuple[str, int]] = set()
        self.runs: dict[str, Run] = {}
        self.schedules: dict[str, tuple[int, asyncio.Task[None]]] = {}
        self.pool = asyncio.Semaphore(WORKERS)
        self.fetching = asyncio.Lock()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.beat_handle: asyncio.TimerHandle | None = None
        self.closed = False
        self.kicks = 0

    # -- wire ---------------------------------------------------------------------------------------------

    def signing(self) -> list[tuple[str, str]]:
        stamp, rid = str(now_ms()), str(uuid.uuid4())
        data = (self.instance_id + self.machine_id + stamp + rid).encode()
        signature = self.key.sign(data, padding.PKCS1v15(), hashes.MD5())  # noqa: S303 - the agent protocol's
        return [
            ("X-Acs-Instance-Id", self.instance_id),
            ("X-Acs-Timestamp", stamp),
            ("X-Acs-Request-Id", rid),
            ("X-Acs-Signature", base64.b64encode(signature).decode()),
        ]

    async def send(
        self, name: str, method: str, path: str, query: str = "", *, body: bytes = b"",
        content_type: str = JSON_UTF8, signed: bool = True,
    ) -> tuple[int, bytes]:
        headers = [("User-Agent", self.user_agent), ("Content-Type", content_type)]
        if signed:
            headers += self.signing()
        headers.append(("Accept-Encoding", "gzip"))
        target = path + (f"?{query}" if query else "")
        began = time.perf_counter()
        try:
            status, answer = await self.wire.request(method, target, headers, body)
        except WireError:
            self.fleet.stats.record(name, time.perf_counter() - began, 599)
            raise
        self.fleet.stats.record(name, time.perf_counter() - began, status)
        return status, answer

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- registration and start-up ------------------------------------------------------------------------

    async def register(self, activation_id: str, code: str, region: str) -> None:
        import json

        body = go_json({
            "activationCode": code, "machineId": self.machine_id, "regionId": region,
            "instanceName": f"sim-{self.index:05d}", "hostname": f"sim-{self.index:05d}", "intranetIp": "<nil>",
            "osVersion": OS_VERSION, "osType": "linux", "agentVersion": VERSION,
            "publicKey": self.pub_b64, "activationId": activation_id,
            "tag": [{"key": "fleet", "value": self.fleet.tag}, {"key": "shard", "value": str(self.index % 10)}],
        })
        status, answer = await self.send("register", "POST", "/luban/api/instance/register", body=body, signed=False)
        reply = json.loads(answer) if answer else {}
        if status != 200 or reply.get("code") != 200:
            raise RuntimeError(f"registration of agent {self.index} refused: {status} {answer[:200]!r}")
        self.instance_id = str(reply["instanceId"])
        self.wire.close()  # `--register` is a process of its own, which exits; the service dials anew

    async def start(self, *, cold_start: bool = True) -> None:
        """What the service does when it starts: websocket, first heart-beat, start-up fetch."""
        await self.connect()
        await self.heartbeat(cold_start=cold_start)
        await self.fetch("startup", cold_start=cold_start)
        if self.fleet.noise:
            self.spawn(self.noise())

    async def connect(self) -> None:
        headers = dict(self.signing())
        self.ws = await ws_connect(
            f"wss://{self.wire.endpoint}/luban/notify_server",
            ssl=self.fleet.tls, server_hostname=self.wire.host, additional_headers=headers,
            user_agent_header=self.user_agent, compression=None, proxy=None, open_timeout=30,
            ping_interval=None, close_timeout=2, max_size=1 << 16,
        )
        self.spawn(self.listen(self.ws))

    async def listen(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                if isinstance(message, str) and message.startswith("kick_vm"):
                    self.fleet.stats.kicks += 1
                    self.kicks += 1
                    await ws.send(f"accept:{message}")
                    parts = message.split()
                    task_id = parts[3] if len(parts) >= 4 and parts[1] in ("task", "file") else None
                    self.spawn(self.on_kick(task_id, time.monotonic()))
                else:
                    await ws.send(f"unknow:{message}")
        except Exception:  # noqa: S110 - a broken socket is redialled below
            pass
        with contextlib.suppress(Exception):
            await ws.close()
        if not self.closed:
            self.fleet.stats.reconnects += 1
            self.spawn(self.redial())

    async def redial(self) -> None:
        """After a failed or lost websocket the official agent cools down (`wssCoolDownTime`), then dials again."""
        while not self.closed:
            await asyncio.sleep(self.fleet.redial_seconds * (0.5 + random.random()))
            try:
                await self.connect()
                return
            except Exception:
                self.wire.next_endpoint()

    async def noise(self) -> None:
        """The start-up metrics events and the state-manager poll (0-180 s after start) of Part 2 §4.1."""
        with contextlib.suppress(WireError):
            await self.send("metrics", "POST", "/luban/api/metrics", body=go_json({
                "eventId": "agent.startup", "category": "AGENT", "subCategory": "", "eventLevel": "INFO",
                "eventTime": now_ms(), "common": "{}", "keywords": '{"type":"cold start"}'}))
            await asyncio.sleep(random.uniform(0, 180))
            await self.send("state_configurations", "POST", "/luban/api/instance/list_instance_state_configurations",
                            body=go_json({"agentName": "aliyunAssist", "agentVersion": VERSION,
                                          "computerName": f"sim-{self.index:05d}", "ipAddress": "",
                                          "platformName": "debian", "platformType": "linux",
                                          "platformVersion": "12", "ramRole": ""}))

    # -- heart-beat ---------------------------------------------------------------------------------------

    async def heartbeat(self, *, cold_start: bool = False) -> None:
        import json

        process_uptime = now_ms() - self.process_start
        pairs: list[tuple[str, object]] = [
            ("uptime", 1_785_000 + process_uptime), ("timestamp", now_ms()), ("pid", self.pid),
            ("process_uptime", process_uptime), ("index", self.acks), ("seq_no", self.sent)]
        if self.acks == 0:
            pairs += [("virt_type", "kvm"), ("os_version", OS_VERSION), ("az", "unknown"),
                      ("machineid", self.machine_id), ("cold_start", "true" if cold_start else "false")]
        interval = 0
        try:
            status, answer = await self.send("heart-beat", "GET", "/luban/api/heart-beat", go_query(*pairs),
                                             content_type=FORM)
            if status <= 400:
                self.acks += 1
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    interval = int(json.loads(answer).get("nextInterval", 0))
        except WireError:
            pass
        finally:
            self.sent += 1
        # honoured only within 55-65 s, otherwise a random value in that range (jitter against herds)
        seconds = interval / 1000 if 55_000 <= interval <= 65_000 else random.uniform(55, 65)
        seconds *= self.fleet.beat_scale
        if not self.closed:
            self.beat_handle = asyncio.get_running_loop().call_later(seconds, self._beat)

    def _beat(self) -> None:
        self.spawn(self.heartbeat())
        if self.ws is not None and self.fleet.beat_scale >= 1:
            self.spawn(self._ping(self.ws))

    @staticmethod
    async def _ping(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            await ws.ping(b"keepalive")

    # -- tasks --------------------------------------------------------------------------------------------

    async def on_kick(self, task_id: str | None, kicked: float) -> None:
        found = await self.fetch("kickoff", task_id=task_id, kicked=kicked)
        if found == 0:  # a kick that brings nothing is fetched once more after 3 s (fetchtask.go)
            await asyncio.sleep(3)
            await self.fetch("kickoff", task_id=task_id, kicked=kicked)

    async def fetch(
        self, reason: str, *, task_id: str | None = None, cold_start: bool = False, kicked: float = 0.0
    ) -> int:
        import json

        async with self.fetching:
            pairs: list[tuple[str, object]] = [("reason", reason)]
            if reason == "startup":
                pairs.append(("cold_start", "true" if cold_start else "false"))
            if task_id:
                pairs.append(("taskId", task_id))
            pairs += [("currentTime", now_ms()), ("offset", 0), ("timeZone", "Etc/UTC")]
            reply = None
            for attempt in range(FETCH_TRIES):  # network errors: 3 tries, 2 s apart (fetchtask.go)
                try:
                    status, answer = await self.send("task/list", "POST", "/luban/api/v1/task/list", go_query(*pairs))
                except WireError:
                    if attempt + 1 < FETCH_TRIES:
                        await asyncio.sleep(REPORT_RETRY_SECONDS)
                    continue
                if status == 200:
                    reply = json.loads(answer)
                break
            if reply is None:
                return -1
        fetched = time.monotonic()
        found = 0
        for entry in reply.get("stop") or []:
            found += 1
            self.spawn(self.stop(entry["task"]))
        for entry in reply.get("run") or []:
            task = entry["task"]
            key = (task["taskID"], int(task["invokeVersion"]))
            found += 1
            if key in self.seen:
                continue
            self.seen.add(key)
            repeat = entry.get("repeat") or ("Period" if task.get("cron") else "Once")
            if repeat in ("Rate", "At", "Period"):
                self.schedule(entry, repeat)
            else:
                outcome = self.fleet.outcome(task["taskID"], self.instance_id)
                outcome.kicked, outcome.fetched = kicked, fetched
                self.spawn(self.run(entry, outcome))
        return found

    def schedule(self, entry: dict[str, Any], repeat: str) -> None:
        task = entry["task"]
        earlier = self.schedules.pop(task["taskID"], None)
        if earlier is not None:  # a new invokeVersion quietly replaces the schedule
            earlier[1].cancel()
        runner = self.spawn(self.keep_schedule(entry, repeat))
        self.schedules[task["taskID"]] = (int(task["invokeVersion"]), runner)

    async def keep_schedule(self, entry: dict[str, Any], repeat: str) -> None:
        task = entry["task"]
        created = datetime.fromtimestamp(int(task.get("creationTime") or now_ms()) / 1000, UTC)
        expression = task.get("cron", "")
        if repeat == "At":
            expression = expression.replace("T", " ", 1)
        while not self.closed:
            try:
                due = next_run(expression, after=datetime.now(UTC), created=created, local_zone=UTC)
            except ValueError:
                await self.report("invalid", ("taskId", task["taskID"]), ("invokeVersion", task["invokeVersion"]),
                                  ("param", "cron"), ("value", "InvalidCronExpression"))
                return
            if due is None:
                return
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            outcome = self.fleet.outcome(task["taskID"], self.instance_id)
            await self.run(entry, outcome, repeat=repeat)

    def _times(self, repeat: str, stamp: int) -> list[tuple[str, object]]:
        if repeat == "Period":
            return [("currentTime", stamp), ("offset", 0), ("timeZone", "Etc/UTC")]
        if repeat in ("Rate", "At"):
            return [("currentTime", stamp)]
        return []

    async def run(self, entry: dict[str, Any], outcome: Outcome, repeat: str = "Once") -> None:
        task, output = entry["task"], entry.get("output") or {}
        task_id, version = task["taskID"], int(task["invokeVersion"])
        async with self.pool:
            run = Run(task_id, version, now_ms())
            self.runs[task_id] = run
            outcome.started = time.monotonic()
            base = [("taskId", task_id), ("invokeVersion", version), ("start", run.start)]
            try:
                if output.get("sendStart", True):
                    await self.report("running", *base, *self._times(repeat, run.start))
                interval = max(1.0, int(output.get("interval", 1000)) / 1000)
                timeout = float(task.get("timeOut") or 60)
                content = fill_built_ins(base64.b64decode(task.get("commandContent", "")), task)
                ticker = self.spawn(self.tick(run, base, repeat, interval, bool(output.get("skipEmpty"))))
                try:
                    if self.fleet.mode is RunMode.SHELL:
                        kind, code = await self.shell(run, content, timeout, task.get("workingDirectory") or None)
                    else:
                        kind, code = await self.fake(run, content, timeout)
                finally:
                    run.ended.set()  # the tick in flight, if any, is sent whole: its output is not sent again
                    await ticker
                if kind == "stopped" or self.runs.get(task_id) is not run:
                    return  # stop() reports it
                end = max(now_ms(), run.start + 1)
                rest = bytes(run.output[run.sent:])
                quota = max(12_000, int(output.get("logQuota", 12_000)))
                dropped = max(0, len(rest) - quota)
                pairs = [*base, ("end", end), ("exitCode", code), ("dropped", dropped), *self._times(repeat, end)]
                outcome.kind, outcome.exit_code, outcome.output = kind, code, bytes(run.output)
                outcome.reported = time.monotonic()
                if await self.report(kind, *pairs, body=rest[dropped:]):
                    outcome.acked = time.monotonic()
            finally:
                if self.runs.get(task_id) is run:
                    del self.runs[task_id]

    async def tick(
        self, run: Run, base: list[tuple[str, object]], repeat: str, interval: float, skip_empty: bool
    ) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.ended.wait(), interval)
            if run.ended.is_set():
                return
            budget = max(0, STREAM_BUDGET - run.sent)
            chunk = bytes(run.output[run.sent:run.sent + budget])
            if not chunk and skip_empty:
                continue
            run.sent += len(chunk)
            await self.report("running", *base, *self._times(repeat, now_ms()), body=chunk)

    async def fake(self, run: Run, content: bytes, timeout: float) -> tuple[str, int]:
        """A pretend run: `sleep N` scripts last N seconds; anything else `fake_seconds`, printing `fake_output`."""
        match = SLEEP.match(content)
        seconds = float(match.group(1)) if match else self.fleet.fake_seconds
        try:
            await asyncio.wait_for(run.stop.wait(), min(seconds, timeout))
            return "stopped", 0
        except TimeoutError:
            pass
        if seconds > timeout:
            return "timeout", 1
        run.output += self.fleet.fake_output if not match else b""
        return "finish", 0

    async def shell(self, run: Run, content: bytes, timeout: float, cwd: str | None) -> tuple[str, int]:
        """`/bin/sh -c` in its own session, output merged, killed as a group on timeout or stop.

        Spawned with subprocess.Popen (CPython uses vfork: ~0.6 ms) rather than the event loop's own spawn
        (uvloop forks: ~30 ms from a simulator holding thousands of agents, during which nothing else runs);
        the exit is awaited through a pidfd."""
        loop = asyncio.get_running_loop()
        proc = subprocess.Popen(  # noqa: ASYNC220 - vfork returns at once; the wait is async below
            ["/bin/sh", "-c", content.decode("utf-8", "replace")], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
        )
        assert proc.stdout is not None
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), proc.stdout)
        exited = loop.create_future()
        pidfd = os.pidfd_open(proc.pid)
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))

        async def drain() -> None:
            while chunk := await reader.read(65536):
                run.output += chunk

        reading = asyncio.ensure_future(drain())
        stopping = asyncio.ensure_future(run.stop.wait())
        try:
            done, _ = await asyncio.wait({exited, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            kind = "finish" if exited in done else ("stopped" if run.stop.is_set() else "timeout")
            if kind != "finish":
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await exited
            code = proc.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reading, 5)  # a daemon that kept stdout open is not waited for longer
        finally:
            stopping.cancel()
            if proc.poll() is None:  # cancelled (the fleet closes): the run goes with it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            loop.remove_reader(pidfd)
            os.close(pidfd)
            transport.close()
        return kind, (int(code) if kind == "finish" else (0 if kind == "stopped" else 1))

    async def stop(self, task: dict[str, Any]) -> None:
        """A `stop` entry: kill the run (or end the schedule) and report `stopped`, even for an unknown task."""
        task_id, version = task["taskID"], int(task["invokeVersion"])
        schedule = self.schedules.pop(task_id, None)
        if schedule is not None:
            schedule[1].cancel()
        run = self.runs.pop(task_id, None)
        start = run.start if run else 0
        if run is not None:
            run.stop.set()
        outcome = self.fleet.last(task_id, self.instance_id)
        if outcome is None or outcome.kind:  # the stop of a run this agent never started, or ended already
            outcome = self.fleet.outcome(task_id, self.instance_id)
        end = now_ms()
        body = bytes(run.output[run.sent:]) if run else b""
        outcome.kind, outcome.reported = "stopped", time.monotonic()
        if await self.report("stopped", ("taskId", task_id), ("invokeVersion", version), ("start", start),
                             ("end", end), ("exitcode", 0), ("dropped", 0), ("result", "killed"), body=body):
            outcome.acked = time.monotonic()

    async def report(self, kind: str, *pairs: tuple[str, object], body: bytes = b"") -> bool:
        """`POST v1/task/<kind>`: 3 tries, 2 s apart (`running`: one); True once acknowledged (HTTP ≤ 400, as the
        agent judges)."""
        tries = 1 if kind == "running" else REPORT_TRIES
        for attempt in range(tries):
            try:
                status, _ = await self.send(f"task/{kind}", "POST", f"/luban/api/v1/task/{kind}", go_query(*pairs),
                                            body=body, content_type=TEXT_UTF8)
                if status <= 400:
                    return True
            except WireError:
                pass
            if attempt + 1 < tries:
                await asyncio.sleep(REPORT_RETRY_SECONDS)
        self.fleet.stats.dropped_reports += 1
        self.fleet.stats.dropped_for.add((str(dict(pairs).get("taskId", "")), self.instance_id))
        return False

    async def close(self) -> None:
        self.closed = True
        if self.beat_handle is not None:
            self.beat_handle.cancel()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # their runs let go of processes and pipes
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        await self.wire.aclose()


# ------------------------------------------------------------------------------------------------ fleet


def patch_tls_buffers() -> None:
    """asyncio's own TLS transport allocates (and zero-fills) a 256 KiB read buffer per connection; a record is
    at most 16 KiB, so 64 KiB keeps every read whole while 10,000 connections fit in memory. (uvloop, when
    installed, allocates its buffer without touching it.)"""
    import asyncio.sslproto

    asyncio.sslproto.SSLProtocol.max_size = 64 * 1024  # type: ignore[attr-defined]


@dataclass
class Fleet:
    """Simulated agents of one server's agent face."""

    agent_endpoint: str
    ca_file: Path
    mode: RunMode = RunMode.FAKE
    fake_seconds: float = 0.0
    fake_output: bytes = b"hi\n"
    #: start-up metrics and the state-manager poll, as the official agent sends them
    noise: bool = True
    #: heart-beat intervals are multiplied by this (1 = the agent's 55-65 s)
    beat_scale: float = 1.0
    #: websocket re-dial cool-down, seconds (the official agent's wssCoolDownTime is 60 s)
    redial_seconds: float = 60.0
    #: close an agent's HTTPS connection after this long unused (None: keep it until the server closes it)
    http_idle_seconds: float | None = None
    tag: str = "sim"
    agents: list[SimAgent] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    outcomes: dict[tuple[str, str], list[Outcome]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        #: a comma-separated list: servers behind one address, as a TCP load balancer presents them
        self.endpoints = [e.strip() for e in self.agent_endpoint.split(",") if e.strip()]
        self.tls = ssl.create_default_context(cafile=str(self.ca_file))

    def outcome(self, task_id: str, instance_id: str) -> Outcome:
        found = Outcome(task_id, instance_id)
        self.outcomes[(task_id, instance_id)].append(found)
        return found

    def last(self, task_id: str, instance_id: str) -> Outcome | None:
        runs = self.outcomes.get((task_id, instance_id))
        return runs[-1] if runs else None

    @property
    def instance_ids(self) -> list[str]:
        return [a.instance_id for a in self.agents]

    async def register(
        self, keys: Sequence[rsa.RSAPrivateKey], activations: Iterable[tuple[str, str, int]], region: str,
        concurrency: int = 32,
    ) -> None:
        """One agent per key, registered with the activation codes given as (id, code, room)."""
        slots = [(aid, code) for aid, code, room in activations for _ in range(room)]
        if len(slots) < len(keys):
            raise ValueError(f"activations have room for {len(slots)} agents, {len(keys)} asked")
        start = len(self.agents)
        fresh = [SimAgent(self, start + i, key) for i, key in enumerate(keys)]
        gate = asyncio.Semaphore(concurrency)

        async def one(agent: SimAgent, slot: tuple[str, str]) -> None:
            async with gate:
                await agent.register(slot[0], slot[1], region)

        await asyncio.gather(*(one(a, s) for a, s in zip(fresh, slots, strict=False)))
        self.agents += fresh

    async def start(self, agents: Sequence[SimAgent] | None = None, concurrency: int = 64,
                    cold_start: bool = True) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(agent: SimAgent) -> None:
            async with gate:
                await agent.start(cold_start=cold_start)

        await asyncio.gather(*(one(a) for a in (self.agents if agents is None else agents)))

    def connected(self) -> int:
        return sum(1 for a in self.agents if a.ws is not None and a.ws.state.name == "OPEN")

    async def close(self) -> None:
        await asyncio.gather(*(a.close() for a in self.agents), return_exceptions=True)
        await asyncio.sleep(0.2)  # the event loop closes the transports it was told to close
