#!/usr/bin/env python
"""Latency of DescribeInvocationResults at the seed's ceiling of 100,000 execution records.

For each engine (SQLite, PostgreSQL) this script

1. starts a real `cloudassist server` (so migrations run and the `testak` key exists), then seeds
   the database directly with SQLAlchemy Core: commands, invocations and their execution records,
   shaped like `InvocationService._start` writes them (each task takes the account's next task
   number, each record the next record number; `result_seq` and `task_seq` end at the highest ones);
2. measures the machine's floor: an unsigned HTTP request (error envelope, no database), a signed
   request for an unknown action (authentication only), and `SELECT 1` on the database;
3. for each query mix measures, in this order, the latency through HTTP (signed v1, one keep-alive
   httpx client), through the service layer in-process (`InvocationService`) and the raw store
   queries (`Results.list` = the page, `Results.count` = TotalCount), checking every answer against
   what was seeded (HTTP 200, TotalCount, and the exact records of the page);
4. EXPLAINs the page and count statements exactly as the store sent them;
5. prints a table and writes `bench/results/<engine>-<timestamp>.json`.

Run `.venv/bin/python bench/describe_invocation_results.py --help`; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import and_, bindparam, event, func, literal, select, text, union_all, update

from cloudassist.clock import SystemClock
from cloudassist.domain.paging import Page
from cloudassist.domain.statuses import (
    ErrorCode,
    InvocationStatus,
    legacy,
    legacy_filter,
    legacy_roll_up,
    roll_up,
)
from cloudassist.services.context import Context
from cloudassist.services.invocations import InvocationService
from cloudassist.settings import Settings, database_url
from cloudassist.settings import load as load_settings
from cloudassist.store.counts import recount
from cloudassist.store.results import ResultFilter
from cloudassist.store.store import Store, Tx
from cloudassist.store.tables import access_keys, accounts, commands, invocation_results, invocations
from cloudassist.testing import TEST_PG, LiveServer, signed_query

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REGION = "cn-hangzhou"
ACCESS_KEY, SECRET = "testak", "testsecret"
INSTANCES_PER_TASK = 10
INSTANCE_POOL = 500
COMMAND_POOL = 50
BIG_OUTPUT_SHARE = 0.01
#: The newest 0.5% of tasks still run (about one execution per instance). They are long jobs (Timeout one
#: day) so that the server's deadline sweeper rightly leaves them alone.
RUNNING_SHARE = 0.005
RUNNING_TIMEOUT = 86_400
#: one database per run (with the process id): other runs may share the PostgreSQL server
PG_BENCH_DB = f"bench_describe_invocation_results_{os.getpid()}"
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
S = InvocationStatus
R = invocation_results.c


class BenchError(RuntimeError):
    """The data or an answer is not what the benchmark expects: stop, loudly."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- stats

def pct(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of samples in seconds."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def stats(samples: Sequence[float]) -> dict[str, float]:
    """Milliseconds: median, p99, mean, min, max."""
    if not samples:
        return {}
    return {"n": len(samples), "p50_ms": statistics.median(samples) * 1e3, "p99_ms": pct(samples, 99) * 1e3,
            "mean_ms": statistics.fmean(samples) * 1e3, "min_ms": min(samples) * 1e3,
            "max_ms": max(samples) * 1e3}


# ------------------------------------------------------------------------------------------- dataset

@dataclass
class Task:
    invoke_id: str
    command: int
    seq: int
    created: datetime
    #: per record: (instance index, status, exit code, error code, output index or -1 for a big one, seconds)
    records: list[tuple[int, InvocationStatus, int | None, ErrorCode, int, int]]
    timeout: int


@dataclass
class Dataset:
    """Deterministic (per `seed`) tasks and records; times are relative to `now`."""

    n_records: int
    seed: int
    now: datetime
    retention_count: int
    instance_ids: list[str] = field(default_factory=list)
    command_ids: list[str] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    small_outputs: list[bytes] = field(default_factory=list)
    big_outputs: list[tuple[bytes, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)

        def token() -> str:
            return "".join(rng.choice(ALPHABET) for _ in range(20))

        self.instance_ids = [f"mi-hz{token()}" for _ in range(INSTANCE_POOL)]
        self.command_ids = [f"c-hz{token()}" for _ in range(COMMAND_POOL)]
        self.small_outputs = [_log_text(rng, rng.randint(200, 600)) for _ in range(256)]
        self.big_outputs = [(_log_text(rng, 24 * 1024), rng.randint(1_000, 500_000)) for _ in range(8)]
        weights = [1 / (i + 1) for i in range(COMMAND_POOL)]  # a few commands run most of the tasks
        n_tasks = math.ceil(self.n_records / INSTANCES_PER_TASK)
        span = timedelta(hours=22)
        start = self.now - timedelta(hours=23)
        seen: set[str] = set()
        seq = 0
        left = self.n_records
        for k in range(n_tasks):
            invoke_id = f"t-hz{token()}"
            if invoke_id in seen:
                raise BenchError("duplicate InvokeId generated")
            seen.add(invoke_id)
            size = min(INSTANCES_PER_TASK, left)
            left -= size
            running = k >= n_tasks * (1 - RUNNING_SHARE)
            records: list[tuple[int, InvocationStatus, int | None, ErrorCode, int, int]] = []
            for inst in rng.sample(range(INSTANCE_POOL), size):
                out = -1 if rng.random() < BIG_OUTPUT_SHARE else rng.randrange(len(self.small_outputs))
                if running:
                    records.append((inst, S.RUNNING, None, ErrorCode.NONE, out, 0))
                    continue
                r = rng.random()
                if r < 0.90:
                    records.append((inst, S.SUCCESS, 0, ErrorCode.NONE, out, rng.randint(1, 60)))
                elif r < 0.96:
                    records.append((inst, S.FAILED, rng.choice((1, 2, 127)), ErrorCode.EXIT_CODE_NONZERO, out,
                                    rng.randint(1, 60)))
                else:
                    records.append((inst, S.TIMEOUT, None, ErrorCode.EXECUTION_TIMEOUT, out, 60))
            command = rng.choices(range(COMMAND_POOL), weights)[0]
            self.tasks.append(Task(invoke_id, command, seq + 1, start + span * k / n_tasks, records,
                                   RUNNING_TIMEOUT if running else 60))
            seq += size  # one record number per record; tasks have their own sequence
        self.last_seq = seq
        self.min_seq = self.last_seq - self.retention_count
        # (seq, invoke_id, instance_id, command_id, status) of every record the API may return, newest first
        self.visible: list[tuple[int, str, str, str, InvocationStatus]] = []
        for task in reversed(self.tasks):
            for i in reversed(range(len(task.records))):
                rec_seq = task.seq + i
                if rec_seq > self.min_seq:
                    inst, status = task.records[i][0], task.records[i][1]
                    self.visible.append((rec_seq, task.invoke_id, self.instance_ids[inst],
                                         self.command_ids[task.command], status))
        self._cache: dict[Any, list[tuple[str, str]]] = {}

    def listing(self, key: Any, pred: Callable[[tuple[int, str, str, str, InvocationStatus]], bool]
                ) -> list[tuple[str, str]]:
        """(InvokeId, InstanceId) of the visible records matching `pred`, newest first (cached by `key`)."""
        if key not in self._cache:
            self._cache[key] = [(r[1], r[2]) for r in self.visible if pred(r)]
        return self._cache[key]

    def rows(self, account_id: int, chunk_tasks: int = 200):  # type: ignore[no-untyped-def]
        """Yield (command rows) once, then (invocation rows, result rows) per chunk of tasks."""
        yield [{
            "command_id": cid, "account_id": account_id, "region_id": REGION, "name": f"bench-command-{i}",
            "description": "seeded by bench/describe_invocation_results.py", "type": "RunShellScript",
            "content": f"#!/bin/sh\necho step {i}\n/usr/local/bin/deploy --stage {i}\n".encode(),
            "working_dir": "/root", "timeout": 60, "enable_parameter": False, "launcher": "",
            "resource_group_id": "", "creation_time": self.now - timedelta(days=2),
            "invoke_times": sum(1 for t in self.tasks if t.command == i), "kept": True,
        } for i, cid in enumerate(self.command_ids)]
        for first in range(0, len(self.tasks), chunk_tasks):
            inv_rows, res_rows = [], []
            for task_seq, task in enumerate(self.tasks[first:first + chunk_tasks], start=first + 1):
                statuses = [r[1] for r in task.records]
                rolled = roll_up(statuses)
                cid = self.command_ids[task.command]
                inv_rows.append({
                    "invoke_id": task.invoke_id, "account_id": account_id, "region_id": REGION, "command_id": cid,
                    "command_name": f"bench-command-{task.command}", "command_type": "RunShellScript",
                    "command_description": "seeded by bench/describe_invocation_results.py",
                    "content": f"#!/bin/sh\necho step {task.command}\n".encode(), "parameters": "{}",
                    "repeat_mode": "Once", "frequency": "", "timeout": task.timeout, "working_dir": "/root",
                    "username": "root", "windows_password_name": "", "termination_mode": "Process",
                    "launcher": "", "container_id": "", "container_name": "", "resource_group_id": "",
                    "creation_time": task.created, "stop_time": None, "seq": task_seq, "status": rolled.value,
                    "invoke_status": legacy_roll_up(rolled, statuses).value, "client_token": None,
                })
                for i, (inst, status, exit_code, error, out, secs) in enumerate(task.records):
                    started = task.created + timedelta(seconds=1)
                    finished = None if status is S.RUNNING else started + timedelta(seconds=secs)
                    output, dropped = self.big_outputs[inst % len(self.big_outputs)] if out < 0 \
                        else (self.small_outputs[out], 0)
                    res_rows.append({
                        "account_id": account_id, "region_id": REGION, "seq": task.seq + i,
                        "invoke_id": task.invoke_id, "instance_id": self.instance_ids[inst], "command_id": cid,
                        "status": status.value, "record_status": legacy(status).value,
                        "exit_code": exit_code, "output": output, "dropped": dropped,
                        "error_code": error.value, "start_time": started, "finished_time": finished,
                        "stop_time": None, "update_time": finished or started, "creation_time": task.created,
                        "repeats": 1,
                    })
            yield inv_rows, res_rows


_WORDS = ("INFO", "DEBUG", "WARN", "sync", "deploy", "restart", "nginx", "systemctl", "package", "updated",
          "files", "checksum", "ok", "done", "/var/log/app", "/srv/app/releases", "config", "reloaded")


def _log_text(rng: random.Random, size: int) -> bytes:
    """Log-like text of exactly `size` bytes (compresses roughly like real command output)."""
    lines, total = [], 0
    while total < size:
        line = f"2026-11-26T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z " + \
            " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9))) + f" {rng.randint(0, 99999)}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


# ----------------------------------------------------------------------------------------- the mixes

Rec = tuple[int, str, str, str, InvocationStatus]


@dataclass(frozen=True)
class Variant:
    """One request of a mix: API parameters, the equivalent ResultFilter fields, the records it selects."""

    params: dict[str, str]
    filter: dict[str, Any]
    expected: list[tuple[str, str]]


@dataclass(frozen=True)
class Mix:
    key: str
    label: str
    variants: list[Variant]
    page_number: int = 1
    page_size: int = 10
    walk: int = 0  # >0: NextToken paging, this many pages per walk

    @property
    def offset(self) -> int:
        return (self.page_number - 1) * self.page_size


def build_mixes(ds: Dataset) -> list[Mix]:
    always: Callable[[Rec], bool] = lambda r: True  # noqa: E731
    everything = ds.listing("all", always)
    full_tasks = [t for t in ds.tasks if t.seq > ds.min_seq]
    picked_tasks = [full_tasks[int(i * (len(full_tasks) - 1) / 49)] for i in range(50)] if full_tasks else []
    instances = [ds.instance_ids[i] for i in range(0, INSTANCE_POOL, INSTANCE_POOL // 50)]
    finished = frozenset(legacy_filter("Finished"))
    failed = frozenset(legacy_filter("Failed"))
    stopped = frozenset(legacy_filter("Stopped"))
    last_page = max(1, math.ceil(len(everything) / 50))

    def by(column: str, value: str, index: int) -> Variant:
        api = {"invoke_id": "InvokeId", "instance_id": "InstanceId", "command_id": "CommandId"}[column]
        return Variant({api: value}, {column: value},
                       ds.listing((column, value), lambda r: r[index] == value))

    return [
        Mix("a", "(a) no filter, page 1, size 10", [Variant({}, {}, everything)]),
        Mix("b", "(b) InvokeId", [by("invoke_id", t.invoke_id, 1) for t in picked_tasks]),
        Mix("c", "(c) InstanceId", [by("instance_id", i, 2) for i in instances]),
        Mix("d", "(d) InvokeRecordStatus=Finished",
            [Variant({"InvokeRecordStatus": "Finished"}, {"record_status": "Finished"},
                     ds.listing("finished", lambda r: r[4] in finished))]),
        Mix("e", "(e) PageNumber=2000, PageSize=50", [Variant({}, {}, everything)], page_number=2000, page_size=50),
        Mix("e2", f"(e2) last page ({last_page}), size 50", [Variant({}, {}, everything)],
            page_number=last_page, page_size=50),
        Mix("f", "(f) NextToken walk, 20 pages x 10", [Variant({}, {}, everything)], walk=20),
        Mix("g", "(g) CommandId", [by("command_id", c, 3) for c in ds.command_ids]),
        # every legacy InvokeRecordStatus except Success selects several statuses: `status IN (…)`
        Mix("h", "(h) InvokeRecordStatus=Failed (rare)",
            [Variant({"InvokeRecordStatus": "Failed"}, {"record_status": "Failed"},
                     ds.listing("failed", lambda r: r[4] in failed))]),
        Mix("i", "(i) InvokeRecordStatus=Stopped (none)",
            [Variant({"InvokeRecordStatus": "Stopped"}, {"record_status": "Stopped"},
                     ds.listing("stopped", lambda r: r[4] in stopped))]),
    ]


def page_params(mix: Mix, variant: Variant, token: str | None, first: bool) -> dict[str, str]:
    params = {"Action": "DescribeInvocationResults", "RegionId": REGION, **variant.params}
    if mix.walk:
        params["MaxResults"] = str(mix.page_size)
        if not first:
            if not token:
                raise BenchError(f"{mix.key}: NextToken missing before the end of the walk")
            params["NextToken"] = token
    else:
        params["PageNumber"] = str(mix.page_number)
        params["PageSize"] = str(mix.page_size)
    return params


def expect(mix: Mix, variant: Variant, walk_page: int, got_total: int | None, got: list[tuple[str, str]],
           where: str) -> None:
    offset = walk_page * mix.page_size if mix.walk else mix.offset
    want = variant.expected[offset:offset + mix.page_size]
    if got_total is not None and got_total != len(variant.expected):
        raise BenchError(f"{where} {mix.label} {variant.params}: TotalCount {got_total}, "
                         f"expected {len(variant.expected)}")
    if got != want:
        raise BenchError(f"{where} {mix.label} {variant.params} page {walk_page}: got {len(got)} records "
                         f"{got[:3]}…, expected {len(want)} {want[:3]}…")


# --------------------------------------------------------------------------------------- measurements

def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Http:
    def __init__(self, endpoint: str, server_pid: int) -> None:
        self.base = f"http://{endpoint}/"
        self.client = httpx.Client(timeout=120, trust_env=False)
        self.server_pid = server_pid

    def server_cpu(self) -> float:
        return process_cpu(self.server_pid)

    def signed(self, params: dict[str, str]) -> tuple[float, httpx.Response]:
        url = f"{self.base}?{signed_query(params, ACCESS_KEY, SECRET)}"  # signing is outside the timing
        t0 = time.perf_counter()
        resp = self.client.post(url)
        return time.perf_counter() - t0, resp

    def raw(self, query: str) -> tuple[float, httpx.Response]:
        url = f"{self.base}?{query}"
        t0 = time.perf_counter()
        resp = self.client.post(url)
        return time.perf_counter() - t0, resp

    def close(self) -> None:
        self.client.close()


def position(mix: Mix, j: int) -> tuple[Variant, int]:
    """The variant and the walk page (0 outside walks) of the `j`-th request of a mix (warm-up included)."""
    return mix.variants[j // (mix.walk or 1) % len(mix.variants)], (j % mix.walk if mix.walk else 0)


class HttpRunner:
    """DescribeInvocationResults through HTTP, one request per step; follows NextToken in walks."""

    def __init__(self, http: Http, mix: Mix) -> None:
        self.http, self.mix, self.token = http, mix, None

    def step(self, j: int) -> float:
        mix = self.mix
        variant, page = position(mix, j)
        dt, resp = self.http.signed(page_params(mix, variant, self.token, page == 0))
        if resp.status_code != 200:
            raise BenchError(f"HTTP {mix.label}: status {resp.status_code}: {resp.text[:500]}")
        body = resp.json()["Invocation"]
        got = [(r["InvokeId"], r["InstanceId"]) for r in body["InvocationResults"]["InvocationResult"]]
        expect(mix, variant, page, None if mix.walk else body["TotalCount"], got, "HTTP")
        self.token = body["NextToken"]
        return dt


def result_filter(ds: Dataset, account_id: int, settings: Settings, variant: Variant,
                  before_seq: int | None = None) -> ResultFilter:
    """The window the service computes: newest - retention_count, now - retention_days."""
    now = datetime.now(UTC)
    return ResultFilter(account_id=account_id, region_id=REGION,
                        not_before=now - timedelta(days=settings.retention_days),
                        min_seq=ds.last_seq - settings.retention_count, before_seq=before_seq, **variant.filter)


class DbRunner:
    """`Results.list` (page) and `Results.count` (TotalCount) in one read transaction, as the service runs them."""

    def __init__(self, store: Store, ds: Dataset, account_id: int, settings: Settings, mix: Mix) -> None:
        self.store, self.ds, self.account_id, self.settings, self.mix = store, ds, account_id, settings, mix
        self.before: int | None = None

    async def step(self, j: int) -> tuple[float, float | None, float]:
        """(page seconds, count seconds or None in walks, seconds of the whole transaction)."""
        mix = self.mix
        variant, page = position(mix, j)
        if page == 0:
            self.before = None
        f = result_filter(self.ds, self.account_id, self.settings, variant, self.before)
        t0 = time.perf_counter()
        async with self.store.read() as tx:  # as the service: TotalCount first, then the page that knows it
            t1 = time.perf_counter()
            total = None if mix.walk else await tx.results.count(f)
            t2 = time.perf_counter()
            rows = await tx.results.list(f, 0 if mix.walk else mix.offset, mix.page_size + 1, total=total)
            t3 = time.perf_counter()
        t4 = time.perf_counter()
        expect(mix, variant, page, total, [(r.invoke_id, r.instance_id) for _, r in rows[:mix.page_size]], "DB")
        self.before = rows[mix.page_size - 1][0] if len(rows) > mix.page_size else None
        return t3 - t2, None if mix.walk else t2 - t1, t4 - t0


class ServiceRunner:
    """DescribeInvocationResults below HTTP: window, page, count, one lookup per task on the page, tags."""

    def __init__(self, service: InvocationService, account_id: int, mix: Mix) -> None:
        self.service, self.account_id, self.mix = service, account_id, mix
        self.after: str | None = None

    async def step(self, j: int) -> float:
        mix = self.mix
        variant, page_index = position(mix, j)
        if page_index == 0:
            self.after = None
        f = ResultFilter(account_id=self.account_id, region_id=REGION, not_before=datetime.now(UTC), min_seq=0,
                         **variant.filter)
        page = Page(1, mix.page_size, True, self.after) if mix.walk else \
            Page(mix.page_number, mix.page_size, False, None)
        t0 = time.perf_counter()
        found = await self.service.describe_invocation_results(f, page)
        dt = time.perf_counter() - t0
        expect(mix, variant, page_index, None if mix.walk else found.total,
               [(r.invoke_id, r.instance_id) for r, _ in found.results], "service")
        self.after = str(found.next_seq) if found.next_seq is not None else None
        return dt


async def measure_mix(http: Http, store: Store, service: InvocationService, ds: Dataset, account_id: int,
                      settings: Settings, mix: Mix, n: int, warmup: int) -> dict[str, Any]:
    """The three layers interleaved request by request, so a change in the machine's load hits all alike."""
    h, svc, db = HttpRunner(http, mix), ServiceRunner(service, account_id, mix), \
        DbRunner(store, ds, account_id, settings, mix)
    out: dict[str, list[float]] = {"http": [], "service": [], "page": [], "count": [], "page+count": [], "txn": [],
                                   "http-db": []}
    server_cpu = 0.0
    load = [os.getloadavg()[0]]
    for i in range(-warmup, n):
        j = i + warmup
        cpu0 = http.server_cpu()
        t_http = h.step(j)
        cpu1 = http.server_cpu()
        t_svc = await svc.step(j)
        t_page, t_count, t_txn = await db.step(j)
        if i < 0:
            continue
        server_cpu += cpu1 - cpu0
        out["http"].append(t_http)
        out["service"].append(t_svc)
        out["page"].append(t_page)
        if t_count is not None:
            out["count"].append(t_count)
        out["page+count"].append(t_page + (t_count or 0.0))
        out["txn"].append(t_txn)
        out["http-db"].append(t_http - t_page - (t_count or 0.0))
    load.append(os.getloadavg()[0])
    return {"http": stats(out["http"]), "server_cpu_ms_per_req": server_cpu / n * 1e3,
            "service": stats(out["service"]),
            "db": {k: stats(out[k]) for k in ("page", "count", "page+count", "txn")},
            "http_minus_db_paired": stats(out["http-db"]), "loadavg_1m": load}


# ------------------------------------------------------------------------------------- alternatives

Keys = list[Any]


def _window_binds() -> tuple[Any, Any, Any, Any]:
    return (bindparam("account_id", type_=R.account_id.type), bindparam("region_id", type_=R.region_id.type),
            bindparam("min_seq", type_=R.seq.type), bindparam("not_before", type_=R.creation_time.type))


def window_params(f: ResultFilter) -> dict[str, Any]:
    return {"account_id": f.account_id, "region_id": f.region_id, "min_seq": f.min_seq, "not_before": f.not_before}


def union_page(statuses: Sequence[str], offset: int, limit: int) -> Any:
    """A page of a multi-status filter: per status, the newest `offset + limit` sequence numbers from the
    (account, region, status, seq) index (index-only), merged with UNION ALL; then only those rows are read.
    Built once with bind parameters (building this nested construct per call costs milliseconds of Python)."""
    account_id, region_id, min_seq, not_before = _window_binds()
    window = [R.account_id == account_id, R.region_id == region_id, R.seq > min_seq, R.creation_time >= not_before]
    parts = [select(select(R.seq).where(*window, R.status == status).order_by(R.seq.desc())
                    .limit(offset + limit).subquery()) for status in sorted(statuses)]
    keys = union_all(*parts).subquery()
    return (select(invocation_results)
            .where(R.account_id == account_id, R.region_id == region_id, R.seq.in_(select(keys.c.seq)))
            .order_by(R.seq.desc()).offset(offset).limit(limit))


def deferred_join_page(offset: int, limit: int) -> Any:
    """OFFSET over the sequence numbers alone (an index-only scan), then read only the rows of the page."""
    account_id, region_id, min_seq, not_before = _window_binds()
    keys = (select(R.seq).where(R.account_id == account_id, R.region_id == region_id, R.seq > min_seq,
                                R.creation_time >= not_before)
            .order_by(R.seq.desc()).offset(offset).limit(limit).subquery())
    return (select(invocation_results)
            .join(keys, and_(R.account_id == account_id, R.region_id == region_id, R.seq == keys.c.seq))
            .order_by(R.seq.desc()))


async def alternatives(store: Store, engine: str, capture: Capture, ds: Dataset, account_id: int,
                       settings: Settings, mixes: dict[str, Mix], n: int, warmup: int) -> list[dict[str, Any]]:
    """The store's current queries against rewrites proposed in the README, interleaved, answers compared."""

    async def current_page(tx: Tx, mix: Mix, v: Variant) -> Keys:
        rows = await tx.results.list(result_filter(ds, account_id, settings, v), mix.offset, mix.page_size + 1)
        return [(r.invoke_id, r.instance_id) for _, r in rows]

    def rewritten(stmt: Any) -> Callable[[Tx, Mix, Variant], Any]:
        async def run(tx: Tx, mix: Mix, v: Variant) -> Keys:
            params = window_params(result_filter(ds, account_id, settings, v))
            return [(r.invoke_id, r.instance_id) for r in await tx.conn.execute(stmt, params)]
        return run

    def by_status(mix: Mix) -> Callable[[Tx, Mix, Variant], Any]:
        statuses = [s.value for s in legacy_filter(mix.variants[0].filter["record_status"])]
        return rewritten(union_page(statuses, mix.offset, mix.page_size + 1))

    async def lookups_one_by_one(tx: Tx, mix: Mix, v: Variant) -> Keys:
        ids = sorted({i for i, _ in v.expected[mix.offset:mix.offset + mix.page_size]})
        found = []
        for invoke_id in ids:  # as InvocationService.describe_invocation_results does
            inv = await tx.invocations.get(account_id, REGION, invoke_id)
            if inv is not None:
                found.append(inv.invoke_id)
        return sorted(found)

    async def lookups_batched(tx: Tx, mix: Mix, v: Variant) -> Keys:
        ids = sorted({i for i, _ in v.expected[mix.offset:mix.offset + mix.page_size]})
        rows = await tx.conn.execute(select(invocations).where(
            invocations.c.invoke_id.in_(ids), invocations.c.account_id == account_id,
            invocations.c.region_id == REGION))
        return sorted(r.invoke_id for r in rows)

    rewrites = [
        ("d", "page, status IN (…) -> UNION ALL of seq per status", current_page, by_status(mixes["d"])),
        ("h", "page, status IN (…) -> UNION ALL of seq per status", current_page, by_status(mixes["h"])),
        ("i", "page, status IN (…) -> UNION ALL of seq per status", current_page, by_status(mixes["i"])),
        ("e2", "page, OFFSET over rows -> OFFSET over seq, then join", current_page,
         rewritten(deferred_join_page(mixes["e2"].offset, mixes["e2"].page_size + 1))),
        ("c", "task lookups: one query per task -> one IN query", lookups_one_by_one, lookups_batched),
    ]
    found = []
    for key, label, now_fn, new_fn in rewrites:
        mix = mixes[key]
        log(f"alternative for {mix.label}: {label}")
        a: list[float] = []
        b: list[float] = []
        for i in range(-warmup, n):
            variant, _ = position(mix, i + warmup)
            async with store.read() as tx:
                t0 = time.perf_counter()
                old = await now_fn(tx, mix, variant)
                t1 = time.perf_counter()
                new = await new_fn(tx, mix, variant)
                t2 = time.perf_counter()
            if old != new:
                raise BenchError(f"alternative {key} ({label}) answers differently: {old[:3]} vs {new[:3]}")
            if i >= 0:
                a.append(t1 - t0)
                b.append(t2 - t1)
        plan = None
        if key != "c":
            def proposed(tx: Tx, m: Mix = mix, fn: Callable[[Tx, Mix, Variant], Any] = new_fn) -> Any:
                return fn(tx, m, m.variants[0])
            plan = await explain_run(store, engine, capture, proposed)
        found.append({"mix": key, "label": f"{mix.label}: {label}", "current": stats(a), "proposed": stats(b),
                      "explain": plan})
    return found


async def limits(http: Http, store: Store, engine: str, db_url: str, sqlite_path: Path | None, n: int,
                 warmup: int, idle_seconds: float = 15.0) -> dict[str, dict[str, float]]:
    found: dict[str, list[float]] = {k: [] for k in (
        "http_unsigned", "http_signed_auth_only", "select1_raw_driver", "select1_engine_conn",
        "select1_store_read_txn", "pool_checkout")}
    cpu: dict[str, float] = {"http_unsigned": 0.0, "http_signed_auth_only": 0.0}
    for i in range(-warmup, n):
        c0 = http.server_cpu()
        dt, resp = http.raw(f"Action=DescribeInvocationResults&RegionId={REGION}&Format=JSON")
        if not 400 <= resp.status_code < 500 or "Code" not in resp.json():
            raise BenchError(f"unsigned request: expected an error envelope, got {resp.status_code} {resp.text[:300]}")
        c1 = http.server_cpu()
        if i >= 0:
            found["http_unsigned"].append(dt)
            cpu["http_unsigned"] += c1 - c0
        dt, resp = http.signed({"Action": "DescribeRegions", "RegionId": REGION})
        if resp.status_code != 404 or resp.json().get("Code") != "InvalidAction.NotFound":
            raise BenchError(f"signed no-op: expected InvalidAction.NotFound, got {resp.status_code} {resp.text[:300]}")
        if i >= 0:
            found["http_signed_auth_only"].append(dt)
            cpu["http_signed_auth_only"] += http.server_cpu() - c1
    if engine == "sqlite":
        assert sqlite_path is not None
        raw = sqlite3.connect(sqlite_path)
        try:
            for i in range(-warmup, n):
                t0 = time.perf_counter()
                raw.execute("SELECT 1").fetchone()
                if i >= 0:
                    found["select1_raw_driver"].append(time.perf_counter() - t0)
        finally:
            raw.close()
    else:
        conn = await asyncpg.connect(db_url)
        try:
            for i in range(-warmup, n):
                t0 = time.perf_counter()
                await conn.fetchval("SELECT 1")
                if i >= 0:
                    found["select1_raw_driver"].append(time.perf_counter() - t0)
        finally:
            await conn.close()
    async with store.engine.connect() as conn:
        for i in range(-warmup, n):
            t0 = time.perf_counter()
            (await conn.exec_driver_sql("SELECT 1")).scalar()
            if i >= 0:
                found["select1_engine_conn"].append(time.perf_counter() - t0)
    for i in range(-warmup, n):
        t0 = time.perf_counter()
        async with store.read() as tx:
            await tx.conn.scalar(text("SELECT 1"))
        t1 = time.perf_counter()
        async with store.engine.connect():
            pass
        t2 = time.perf_counter()
        if i >= 0:
            found["select1_store_read_txn"].append(t1 - t0)
            found["pool_checkout"].append(t2 - t1)
    summary: dict[str, dict[str, float]] = {k: stats(v) for k, v in found.items()}
    # the server's own background work (the deadline sweeper runs every 5 s), with no requests at all
    c0, t0 = http.server_cpu(), time.perf_counter()
    await asyncio.sleep(idle_seconds)
    summary["server_idle"] = {"seconds": time.perf_counter() - t0,
                              "cpu_ms_per_s": (http.server_cpu() - c0) / (time.perf_counter() - t0) * 1e3}
    for k, seconds in cpu.items():
        summary[k]["server_cpu_ms_per_req"] = seconds / n * 1e3
    return summary


# -------------------------------------------------------------------------------------------- explain

class Capture:
    """Records the statements the store sends, so they can be EXPLAINed exactly as sent."""

    def __init__(self, store: Store) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        # SQLite statements of the store run on its inline engine (store/inline.py), PostgreSQL's on the async one
        event.listen(store.inline or store.engine.sync_engine, "before_cursor_execute", self._hook)

    def _hook(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if self.on:
            self.statements.append((statement, parameters))


async def explain_run(store: Store, engine: str, capture: Capture, run: Callable[[Tx], Any],
                      allow_none: bool = False) -> dict[str, Any]:
    """Run `run` in a read transaction, capture the one statement it sends to invocation_results, EXPLAIN it
    (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN (ANALYZE, BUFFERS), i.e. the real row counts)."""
    capture.statements.clear()
    capture.on = True
    try:
        async with store.read() as tx:
            await run(tx)
    finally:
        capture.on = False
    statements = [s for s in capture.statements if "invocation_results" in s[0]]
    if not statements and allow_none:
        return {"sql": "", "params": [], "plan": ["(no statement: the page is past TotalCount)"]}
    if len(statements) != 1:
        raise BenchError(f"explain: captured {len(statements)} statements")
    sql, params = statements[0]
    params = tuple(params) if isinstance(params, list) else params
    prefix = "EXPLAIN QUERY PLAN " if engine == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
    async with store.engine.connect() as conn:
        rows: list[Any] = list((await conn.exec_driver_sql(prefix + sql, params)).all())
    if engine == "sqlite":
        depth: dict[int, int] = {0: -1}
        lines = []
        for row in rows:
            node, parent, detail = int(row[0]), int(row[1]), str(row[3])
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + detail)
    else:
        lines = [str(r[0]) for r in rows]
    return {"sql": " ".join(sql.split()), "params": [str(p) for p in params], "plan": lines}


async def explain(store: Store, engine: str, capture: Capture, ds: Dataset, account_id: int, settings: Settings,
                  mix: Mix) -> dict[str, Any]:
    f = result_filter(ds, account_id, settings, mix.variants[0])
    total = None
    if not mix.walk:
        async with store.read() as tx:
            total = await tx.results.count(f)
    plans = {"page": await explain_run(store, engine, capture, lambda tx: tx.results.list(
        f, 0 if mix.walk else mix.offset, mix.page_size + 1, total=total), allow_none=True)}
    if not mix.walk:
        plans["count"] = await explain_run(store, engine, capture, lambda tx: tx.results.count(f))
    return plans


# ------------------------------------------------------------------------------------------ per engine

async def pg_admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def seed(store: Store, ds: Dataset, engine: str) -> tuple[int, float]:
    async with store.read() as tx:
        row = (await tx.conn.execute(
            select(accounts.c.account_id, accounts.c.name, accounts.c.result_seq)
            .join(access_keys, access_keys.c.account_id == accounts.c.account_id)
            .where(access_keys.c.access_key_id == ACCESS_KEY))).first()
        existing = await tx.conn.scalar(select(func.count()).select_from(invocation_results))
    if row is None:
        raise BenchError(f"no account owns access key {ACCESS_KEY}; did the server start?")
    if row.name != "default":
        raise BenchError(f"{ACCESS_KEY} belongs to account {row.name!r}, expected 'default'")
    if existing or row.result_seq:
        raise BenchError(f"the database is not fresh: {existing} records, result_seq {row.result_seq}")
    account_id = int(row.account_id)
    t0 = time.perf_counter()
    written = 0
    async with store.engine.begin() as conn:
        chunks = ds.rows(account_id)
        await conn.execute(commands.insert(), next(chunks))
        for inv_rows, res_rows in chunks:
            await conn.execute(invocations.insert(), inv_rows)
            for start in range(0, len(res_rows), 1000):
                await conn.execute(invocation_results.insert(), res_rows[start:start + 1000])
            written += len(res_rows)
            if written % 20_000 < len(res_rows):
                log(f"  {engine}: {written:,} / {ds.n_records:,} records")
        await conn.execute(update(accounts).where(accounts.c.account_id == account_id)
                           .values(result_seq=ds.last_seq, task_seq=len(ds.tasks)))
        await conn.run_sync(recount)  # the counters the store keeps on every write (store/counts.py)
    seconds = time.perf_counter() - t0
    async with store.read() as tx:
        count = await tx.conn.scalar(select(func.count()).select_from(invocation_results))
        top = await tx.conn.scalar(select(func.max(invocation_results.c.seq)))
        current = await tx.accounts.current_seq(account_id)
    if count != ds.n_records or top != ds.last_seq - 0 or current != ds.last_seq:
        raise BenchError(f"seeding: {count} records, max seq {top}, result_seq {current}; "
                         f"expected {ds.n_records} records ending at {ds.last_seq}")
    return account_id, seconds


async def seed_tenants(store: Store, ds: Dataset, engine: str, account_id: int, tenants: int) -> float:
    """`tenants - 1` more accounts with a copy of the measured account's tasks and records (InvokeIds suffixed),
    copied inside the database, one transaction per account; then the counters rebuilt. The measured account's
    requests then run against a table of `tenants` times its records."""
    t0 = time.perf_counter()
    for k in range(2, tenants + 1):
        async with store.engine.begin() as conn:
            other = await conn.scalar(accounts.insert().values(
                name=f"tenant-{k}", creation_time=ds.now, result_seq=ds.last_seq, task_seq=len(ds.tasks))
                .returning(accounts.c.account_id))
            for table in (invocations, invocation_results):
                names = [c.name for c in table.c if c.name != "result_id"]
                copied = [literal(other).label(n) if n == "account_id" else
                          (table.c.invoke_id + f"-{k}").label(n) if n == "invoke_id" else table.c[n] for n in names]
                await conn.execute(table.insert().from_select(
                    names, select(*copied).where(table.c.account_id == account_id)))
        if k % 10 == 0 or k == tenants:
            log(f"  {engine}: {k} accounts, {k * ds.n_records:,} records ({time.perf_counter() - t0:.0f}s)")
    async with store.engine.begin() as conn:
        await conn.run_sync(recount)
    seconds = time.perf_counter() - t0
    log(f"{engine}: {tenants - 1} more accounts copied and counted in {seconds:.0f}s")
    return seconds


async def run_engine(engine: str, args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    info = machine()  # at the start: the revision the server is about to load
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-dir-{engine}-"))
    admin_url = args.pg_url
    pg_db = ""
    if engine == "postgresql":
        pg_db = admin_url.rsplit("/", 1)[0] + f"/{PG_BENCH_DB}"
        await pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        await pg_admin(admin_url, f'CREATE DATABASE "{PG_BENCH_DB}"')
    db = pg_db  # "" = SQLite in the data directory, as the server's default
    settings = load_settings(data_dir=workdir, db=db)
    url = database_url(db, workdir)
    sqlite_path = workdir / "cloudassist.db" if engine == "sqlite" else None
    server = LiveServer(data_dir=workdir, db=db)
    store: Store | None = None
    http: Http | None = None
    ok = False
    try:
        log(f"{engine}: starting the server once (runs the migrations, creates {ACCESS_KEY}), then stopping it")
        server.start(timeout=60)
        server.stop()  # seeding is one long write transaction: the server's deadline sweeper would time out
        store = await Store.open(url)
        ds = Dataset(args.records, args.seed, datetime.now(UTC), settings.retention_count)
        log(f"{engine}: seeding {ds.n_records:,} records in {len(ds.tasks):,} tasks")
        account_id, seed_seconds = await seed(store, ds, engine)
        log(f"{engine}: seeded in {seed_seconds:.1f}s; {len(ds.visible):,} records inside the retention window")
        tenant_seconds = await seed_tenants(store, ds, engine, account_id, args.tenants) if args.tenants > 1 else 0.0
        if engine == "postgresql":
            conn = await asyncpg.connect(pg_db)
            try:
                await conn.execute("VACUUM (ANALYZE)")  # what autovacuum would have done by now
                server_version = await conn.fetchval("SHOW server_version")
                db_bytes = await conn.fetchval("SELECT pg_database_size(current_database())")
            finally:
                await conn.close()
        else:
            async with store.engine.connect() as conn:
                if args.sqlite_analyze:
                    await conn.exec_driver_sql("ANALYZE")
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                await conn.commit()
            server_version = sqlite3.sqlite_version
            assert sqlite_path is not None
            db_bytes = sum(p.stat().st_size for p in workdir.glob("cloudassist.db*"))  # noqa: ASYNC240
        log(f"{engine}: starting the server on the seeded database")
        server = LiveServer(data_dir=workdir, db=db)
        t0 = time.perf_counter()
        server.start(timeout=120)
        start_seconds = time.perf_counter() - t0
        mixes = build_mixes(ds)
        assert server.process is not None
        http = Http(server.endpoint, server.process.pid)
        n, warmup = args.requests, args.warmup
        log(f"{engine}: measuring the floor ({n} each)")
        floor = await limits(http, store, engine, pg_db, sqlite_path, n, warmup)
        service = InvocationService(Context(store, SystemClock(), settings))
        capture = Capture(store)
        results: list[dict[str, Any]] = []
        for mix in mixes:
            log(f"{engine}: {mix.label}")
            measured = await measure_mix(http, store, service, ds, account_id, settings, mix, n, warmup)
            plans = await explain(store, engine, capture, ds, account_id, settings, mix)
            v0 = mix.variants[0]
            totals = sorted({len(v.expected) for v in mix.variants})
            results.append({
                "key": mix.key, "label": mix.label, "variants": len(mix.variants),
                "page_number": mix.page_number, "page_size": mix.page_size, "walk_pages": mix.walk,
                "total_count": totals if len(totals) > 1 else totals[0],
                "rows_per_page": len(v0.expected[mix.offset:mix.offset + mix.page_size]) if not mix.walk
                else mix.page_size,
                **measured, "explain": plans,
            })
        alts = [] if args.no_alternatives else await alternatives(
            store, engine, capture, ds, account_id, settings, {m.key: m for m in mixes}, n, warmup)
        log_text = server.log()
        if "Traceback" in log_text or "internal error" in log_text:
            raise BenchError(f"the server logged an error:\n{log_text[-3000:]}")
        ok = True
        return {
            "engine": engine, "timestamp": stamp, "server_version": server_version, "db_bytes": db_bytes,
            "config": {"records": args.records, "requests": n, "warmup": warmup, "seed": args.seed,
                       "quick": args.quick, "sqlite_analyze": args.sqlite_analyze,
                       "retention_count": settings.retention_count, "retention_days": settings.retention_days},
            "dataset": {"records": ds.n_records, "tasks": len(ds.tasks), "instances": INSTANCE_POOL,
                        "commands": COMMAND_POOL, "last_seq": ds.last_seq, "min_seq": ds.min_seq,
                        "visible": len(ds.visible), "seed_seconds": seed_seconds,
                        "tenants": args.tenants, "tenant_seed_seconds": tenant_seconds,
                        "server_start_seconds": start_seconds},
            "machine": {**info, "loadavg_end": os.getloadavg()},
            "limits": floor,
            "mixes": results,
            "alternatives": alts,
        }
    finally:
        if http is not None:
            http.close()
        if store is not None:
            await store.close()
        server.stop()
        if not ok:
            log(f"{engine}: server log tail:\n{server.log()[-2000:]}")
        if args.keep:
            log(f"{engine}: kept {workdir}" + (f" and database {PG_BENCH_DB}" if pg_db else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            if pg_db:
                await pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')


def git_revision() -> str:
    """HEAD of the checkout, with `+dirty` when src/ has uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=BENCH_DIR.parent,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    return {"git": git_revision(), "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "sqlite": sqlite3.sqlite_version}


# ------------------------------------------------------------------------------------------- printing

def fmt(s: dict[str, float], key: str = "p50_ms") -> str:
    return f"{s[key]:8.2f}" if s else f"{'-':>8}"


def report(r: dict[str, Any], slow_ms: float, show_all_plans: bool) -> str:
    d, c = r["dataset"], r["config"]
    out = [
        "",
        f"=== {r['engine']} {r['server_version']} — {d['records']:,} records stored in {d['tasks']:,} tasks "
        f"({d['visible']:,} inside the retention window: seq > {d['min_seq']:,} of {d['last_seq']:,})"
        + (f"; {d['tenants'] - 1} other accounts alike, {d['tenants'] * d['records']:,} records in all, copied in "
           f"{d['tenant_seed_seconds']:.0f}s" if d.get("tenants", 1) > 1 else "") + ", "
        f"database {r['db_bytes'] / 2**20:.0f} MiB, seeded in {d['seed_seconds']:.1f}s, server up in "
        f"{d.get('server_start_seconds', float('nan')):.1f}s",
        f"    {c['requests']} measured requests per mix after {c['warmup']} warm-up; milliseconds; "
        f"{r['machine']['cpus']} CPUs, Python {r['machine']['python']}, cloudassist {r['machine'].get('git', '?')}",
        "",
        f"{'mix':<38} {'rows':>4} {'TotalCount':>12} | {'HTTP p50':>8} {'p99':>8} | {'svc p50':>8} {'p99':>8} | "
        f"{'page p50':>8} {'p99':>8} | {'count p50':>9} {'p99':>8} | {'DB p50':>8} {'p99':>8} | "
        f"{'HTTP-DB':>8} | {'srvCPU':>6}",
        "-" * 180,
    ]
    for m in r["mixes"]:
        total = m["total_count"]
        total_s = (f"{total[0]}..{total[-1]}" if isinstance(total, list) else
                   ("n/a" if m["walk_pages"] else f"{total:,}"))
        db = m["db"]
        overhead = m["http_minus_db_paired"]["p50_ms"]
        out.append(
            f"{m['label']:<38} {m['rows_per_page']:>4} {total_s:>12} | {fmt(m['http'])} {fmt(m['http'], 'p99_ms')} |"
            f" {fmt(m['service'])} {fmt(m['service'], 'p99_ms')} | {fmt(db['page'])} {fmt(db['page'], 'p99_ms')} |"
            f" {fmt(db['count']):>9} {fmt(db['count'], 'p99_ms')} | {fmt(db['page+count'])} "
            f"{fmt(db['page+count'], 'p99_ms')} | {overhead:8.2f} | {m['server_cpu_ms_per_req']:6.1f}")
    out += ["", "floor of the stack (p50 / p99 ms; server CPU ms per request):"]
    names = {
        "http_unsigned": "HTTP, unsigned request (error envelope, no DB)",
        "http_signed_auth_only": "HTTP, signed unknown action (auth: key read + nonce write)",
        "select1_raw_driver": "SELECT 1, raw driver (sqlite3 / asyncpg)",
        "select1_engine_conn": "SELECT 1, SQLAlchemy async, held connection",
        "select1_store_read_txn": "SELECT 1 inside Store.read() (pool + BEGIN/COMMIT)",
        "pool_checkout": "pool checkout + release, no query (PostgreSQL: pre-ping)",
    }
    for k, label in names.items():
        s = r["limits"].get(k)
        if not s:
            continue
        srv = f"   cpu {s['server_cpu_ms_per_req']:.2f}" if "server_cpu_ms_per_req" in s else ""
        out.append(f"  {label:<62} {s['p50_ms']:8.3f} / {s['p99_ms']:8.3f}{srv}")
    idle = r["limits"].get("server_idle")
    if idle:
        out.append(f"  {'server CPU while idle (deadline sweeper every 5 s), ms per s':<62} {idle['cpu_ms_per_s']:8.2f}"
                   f"   (over {idle['seconds']:.0f} s)")
    out += ["", "columns: HTTP = signed POST through uvicorn; svc = InvocationService in-process (page + count +",
            "one invocation lookup per task on the page + tags); page = Results.list; count = Results.count;",
            "DB = page + count in one read transaction; HTTP-DB = median of (HTTP - DB) over requests (the three",
            "layers run interleaved, request by request);",
            "srvCPU = CPU ms the server process used per HTTP request (robust to other load on the machine)."]
    loads = [x for m in r["mixes"] for x in m.get("loadavg_1m", [])]
    if loads and max(loads) > r["machine"]["cpus"] * 0.75:
        out.append(f"WARNING: 1-minute load average reached {max(loads):.1f} on {r['machine']['cpus']} CPUs during "
                   "the run: other processes competed for the CPUs; compare srvCPU rather than latencies.")
    if r.get("alternatives"):
        out += ["", "proposed rewrites, timed against the current query on the same data, answers compared "
                "(p50 / p99 ms):"]
        for a in r["alternatives"]:
            out.append(f"  {a['label']:<96} {a['current']['p50_ms']:8.2f} / {a['current']['p99_ms']:8.2f}  ->  "
                       f"{a['proposed']['p50_ms']:8.2f} / {a['proposed']['p99_ms']:8.2f}")
    for a in r.get("alternatives") or []:
        if show_all_plans and a.get("explain"):
            out += ["", f"--- {r['engine']} proposed: {a['label']}, p50 {a['proposed']['p50_ms']:.2f} ms:",
                    f"    {a['explain']['sql']}"]
            out += [f"    {line}" for line in a["explain"]["plan"]]
    for m in r["mixes"]:
        for kind, plan in m["explain"].items():
            stat = m["db"][kind]
            if not (show_all_plans or (stat and stat["p50_ms"] >= slow_ms)):
                continue
            out += ["", f"--- {r['engine']} {m['label']} — {kind} query, p50 {stat['p50_ms']:.2f} ms:",
                    f"    {_short_sql(plan['sql'])}", f"    params: {plan['params']}"]
            out += [f"    {line}" for line in plan["plan"]]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ main

def _short_sql(sql: str) -> str:
    """The page query lists all 21 columns; show them as `invocation_results.*` (the JSON keeps the SQL whole)."""
    head, sep, tail = sql.partition(" FROM ")
    if sep and head.startswith("SELECT invocation_results.result_id,"):
        return f"SELECT invocation_results.* FROM {tail}"
    return sql


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    p.add_argument("--records", type=int, default=None, help="execution records to seed (default 100000)")
    p.add_argument("--requests", type=int, default=None, help="measured requests per mix (default 300)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests per mix (default 20)")
    p.add_argument("--quick", action="store_true", help="smoke run: 10,000 records, 50 requests, 5 warm-up")
    p.add_argument("--seed", type=int, default=20261126, help="random seed of the data set")
    p.add_argument("--tenants", type=int, default=1,
                   help="accounts holding a copy of the data set (the first is measured): --records 100000 "
                        "--tenants 100 makes a table of 10 million records")
    p.add_argument("--pg-url", default=TEST_PG,
                   help=f"PostgreSQL admin URL; the benchmark creates and drops {PG_BENCH_DB} next to it")
    p.add_argument("--sqlite-analyze", action="store_true",
                   help="run ANALYZE on SQLite after seeding (the server never does; off by default)")
    p.add_argument("--slow-ms", type=float, default=5.0, help="print the plan of DB queries slower than this (p50)")
    p.add_argument("--explain", action="store_true", help="print the plans of every query")
    p.add_argument("--no-alternatives", action="store_true", help="skip timing the proposed query rewrites")
    p.add_argument("--keep", action="store_true", help="keep the data directory and the PostgreSQL database")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--report", type=Path, nargs="+", metavar="JSON",
                   help="only print the tables of earlier results files (with --explain/--slow-ms)")
    args = p.parse_args(argv)
    args.records = args.records or (10_000 if args.quick else 100_000)
    args.requests = args.requests or (50 if args.quick else 300)
    args.warmup = args.warmup if args.warmup is not None else (5 if args.quick else 20)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in args.engines:
        if e not in ("sqlite", "postgresql"):
            p.error(f"unknown engine {e!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        for path in args.report:
            print(report(json.loads(path.read_text()), args.slow_ms, args.explain))
        return 0
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for engine in args.engines:
        try:
            result = asyncio.run(run_engine(engine, args, stamp))
        except BenchError as exc:
            print(f"\nBENCHMARK FAILED on {engine}: {exc}", file=sys.stderr, flush=True)
            return 1
        path = args.results_dir / f"{engine}-{stamp}.json"
        path.write_text(json.dumps(result, indent=1, default=str))
        print(report(result, args.slow_ms, args.explain), flush=True)
        print(f"\n(wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
