#!/usr/bin/env python
"""S3: the ECS API under concurrent clients — RunCommand with 50 targets, then DescribeInvocationResults by
InvokeId — against a real server process, with the floor measured in the same run.

Clients are separate processes (--procs, each holding --concurrency connections), so the client side's
Python does not share one core with itself; every request is v1-signed (HMAC-SHA1) with a fresh nonce, as
aliyunsdkcore sends it. The 50 target instances are registered through a real activation (bench/fleet.py)
but not started: the tasks stay Pending, which is all RunCommand needs.

    .venv/bin/python bench/api_load.py [--db sqlite|postgresql] [--seconds 15] [--procs 2] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).parent))

from scale import REGION, Api, database, floor, pct, proc_cpu, proc_rss_mb, show_floor

from cloudassist.testing import LiveServer, sign_v1
from fleet import Fleet, Wire, default_key_cache, load_keys

TARGETS = 50


def signed_target(params: dict[str, str], key_id: str, secret: str) -> str:
    query = urlencode(sign_v1({"RegionId": REGION, **params}, key_id, secret), quote_via=quote)
    return f"/?{query}"


async def _client(endpoint: str, key_id: str, secret: str, make: Any, until: float,
                  latencies: list[float], codes: dict[str, int]) -> None:
    wire = Wire(endpoint, None)
    while time.perf_counter() < until:
        target = signed_target(make(), key_id, secret)
        t0 = time.perf_counter()
        status, body = await wire.request("POST", target, [("Accept", "application/json")], b"", timeout=60)
        latencies.append(time.perf_counter() - t0)
        code = "OK" if status == 200 else json.loads(body).get("Code", str(status))
        codes[code] = codes.get(code, 0) + 1
    wire.close()


def _proc(endpoint: str, key_id: str, secret: str, kind: str, payload: list[str], seconds: float,
          concurrency: int, start_at: float, out: Any) -> None:
    rng = random.Random(os.getpid())

    def make() -> dict[str, str]:
        if kind == "run":
            ids = {f"InstanceId.{i + 1}": iid for i, iid in enumerate(payload)}
            return {"Action": "RunCommand", "Type": "RunShellScript", "CommandContent": "echo hi",
                    "ContentEncoding": "PlainText", **ids}
        return {"Action": "DescribeInvocationResults", "InvokeId": rng.choice(payload)}

    async def main() -> tuple[list[float], dict[str, int]]:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        until = time.perf_counter() + seconds
        latencies: list[float] = []
        codes: dict[str, int] = {}
        await asyncio.gather(*(_client(endpoint, key_id, secret, make, until, latencies, codes)
                               for _ in range(concurrency)))
        return latencies, codes

    out.put(asyncio.run(main()))


def load(server: LiveServer, kind: str, payload: list[str], args: argparse.Namespace) -> dict[str, Any]:
    profiler = None
    if args.profile:
        assert server.process is not None
        profiler = subprocess.Popen(["py-spy", "record", "-p", str(server.process.pid), "-r", "250", "--gil", "-f",
                                     "raw", "-o", f"{args.profile}.{kind}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue: Any = multiprocessing.get_context("fork").Queue()
    start_at = time.time() + 0.5
    assert server.process is not None
    c0 = proc_cpu(server.process.pid)
    procs = [multiprocessing.get_context("fork").Process(
        target=_proc, args=(server.endpoint, server.access_key_id, server.secret, kind, payload, args.seconds,
                            args.concurrency, start_at, queue)) for _ in range(args.procs)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    cpu = proc_cpu(server.process.pid) - c0
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait()
    latencies = [x for lat, _ in results for x in lat]
    codes: dict[str, int] = {}
    for _, c in results:
        for k, v in c.items():
            codes[k] = codes.get(k, 0) + v
    return {"requests": len(latencies), "per_s": len(latencies) / args.seconds,
            "p50_ms": pct(latencies, 50) * 1e3, "p99_ms": pct(latencies, 99) * 1e3,
            "server_cpu_ms_per_request": cpu / max(1, len(latencies)) * 1e3, "codes": codes}


async def prepare(server: LiveServer, api: Api, key_cache: Path | None) -> list[str]:
    fleet = Fleet(server.agent_endpoint, server.data_dir / "ca.pem", noise=False)
    made = await api("CreateActivation", InstanceCount=str(TARGETS), Description="api load")
    await fleet.register(load_keys(TARGETS, key_cache), [(made["ActivationId"], made["ActivationCode"], TARGETS)],
                         REGION)
    return fleet.instance_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="connections per client process")
    parser.add_argument("--key-cache", type=Path, default=default_key_cache())
    parser.add_argument("--profile", help="record the server with py-spy into PROFILE.run and PROFILE.read")
    args = parser.parse_args()
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="ca-api-") as tmp, database(args.db) as db_url:
        server = LiveServer(Path(tmp) / "data", db=db_url, extra_env={"CLOUDASSIST_INVOCATION_QUOTA_DAILY": "0"})
        server.start(timeout=60)
        try:
            async def setup() -> tuple[dict[str, float], list[str]]:
                api = Api(server)
                try:
                    return await floor(server, api, args.db, db_url), await prepare(server, api, args.key_cache)
                finally:
                    await api.close()

            base, instances = asyncio.run(setup())
            print(show_floor(base), flush=True)
            clients = args.procs * args.concurrency
            run = load(server, "run", instances, args)
            print(f"RunCommand ({TARGETS} targets), {clients} clients: {run['per_s']:.0f}/s "
                  f"({run['per_s'] * TARGETS:,.0f} records/s), p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, "
                  f"server CPU {run['server_cpu_ms_per_request']:.2f} ms/request; answers {run['codes']}", flush=True)

            async def invoke_ids() -> list[str]:
                api = Api(server)
                try:
                    found: list[str] = []
                    token = ""
                    while len(found) < 2000:
                        paging = {"MaxResults": "50", **({"NextToken": token} if token else {})}
                        body = await api("DescribeInvocations", **paging)
                        found += [i["InvokeId"] for i in body["Invocations"]["Invocation"]]
                        token = body.get("NextToken", "")
                        if not token:
                            break
                    return found
                finally:
                    await api.close()

            ids = asyncio.run(invoke_ids())
            read = load(server, "read", ids, args)
            print(f"DescribeInvocationResults by InvokeId, {clients} clients: {read['per_s']:.0f}/s, p50 "
                  f"{read['p50_ms']:.1f} ms, p99 {read['p99_ms']:.1f} ms, server CPU "
                  f"{read['server_cpu_ms_per_request']:.2f} ms/request; answers {read['codes']}", flush=True)
            assert server.process is not None
            print(json.dumps({"floor": base, "run_command": run, "describe_invocation_results": read,
                              "server_rss_mb": proc_rss_mb(server.process.pid)}, indent=2, default=str))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
