"""Helpers for tests of cloudassist and of code written against it: clocks, signing, live servers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlencode

from cloudassist.cli.client import sign_v1

T = TypeVar("T")
TEST_PG = os.environ.get("CLOUDASSIST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg_admin(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(TEST_PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def pg_database(prefix: str = "ca_test") -> Iterator[str]:
    """A new, empty PostgreSQL database on the TEST_PG server, as a postgresql:// URL; dropped (connections
    and all) on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield TEST_PG.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class FixedClock:
    """A clock that says what it is told; `advance` moves it on."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 26, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def signed_query(params: Mapping[str, str], access_key_id: str, secret: str, **kw: object) -> str:
    """A signed v1 query string for `params`."""
    return urlencode(sign_v1(params, access_key_id, secret, **kw), quote_via=quote)  # type: ignore[arg-type]


def wait_for(probe: Callable[[], T | None], seconds: float = 30.0, what: str = "condition", every: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy, for at most `seconds`; that value."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A `cloudassist server` process on a free port, with a known access key."""

    data_dir: Path
    db: str = ""
    access_key_id: str = "testak"
    secret: str = "testsecret"  # noqa: S105 - the well-known test key of the reference captures
    port: int = field(default_factory=free_port)
    agent_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    #: The process's open-file limit (soft and hard), when it must be smaller than ours.
    open_files: int | None = None
    _log: BinaryIO | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def agent_endpoint(self) -> str:
        return f"127.0.0.1:{self.agent_port}"

    def start(self, timeout: float = 20.0) -> LiveServer:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update(
            {
                "CLOUDASSIST_ACCESS_KEY_ID": self.access_key_id,
                "CLOUDASSIST_ACCESS_KEY_SECRET": self.secret,
                # a test's server holds no disk reserve (64 MiB each, hundreds a run) unless it asks for one
                "CLOUDASSIST_DISK_RESERVE_MB": "0",
                **self.extra_env,
            }
        )
        argv = [
            sys.executable,
            "-m",
            "cloudassist",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            self.endpoint,
            "--agent-listen",
            self.agent_endpoint,
        ]
        if self.db:
            argv += ["--db", self.db]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - closed by stop()
        limit = self.open_files
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if limit is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                for port in (self.port, self.agent_port):
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        pass
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log()}")

    def api(self, region_id: str = "cn-hangzhou", **params: str) -> dict[str, Any]:
        """One signed RPC call (`Action=…` among `params`) to this server; its JSON answer, which must be a 200."""
        import json
        import urllib.error
        import urllib.request

        query = signed_query({"RegionId": region_id, **params}, self.access_key_id, self.secret)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        request = urllib.request.Request(f"http://{self.endpoint}/?{query}", data=b"", method="POST")
        try:
            with opener.open(request, timeout=10) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # any status but 2xx
            raise AssertionError(f"{exc.code}: {exc.read().decode(errors='replace')}") from None
        return answer

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> int | None:
        """Terminate the process (if it still runs) and return its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode


from cloudassist.services.context import Context, Scope  # noqa: E402 - kept next to the helpers it serves


async def default_scope(ctx: Context, region_id: str = "cn-hangzhou") -> Scope:
    """The scope of the "default" account (the one `register_instance` uses) in `region_id`."""
    async with ctx.store.write() as tx:
        return Scope(await tx.accounts.ensure("default", ctx.clock.now()), region_id)


#: What `register_instance` reuses: one throwaway public key (RSA key generation is slow) and, per store,
#: account and region, an activation code with room left (an account may keep only 5,000 codes per region).
_THROWAWAY_KEY: dict[str, str] = {}
_ACTIVATIONS: dict[tuple[str, str, str], tuple[str, str]] = {}


async def register_instance(
    ctx: Context,
    *,
    account: str = "default",
    region_id: str = "cn-hangzhou",
    os_type: str = "linux",
    name: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """A managed instance of `account` that has just sent a heart-beat; its `mi-` id.

    Creates the account if needed and an activation code through ActivationService (reused by later calls
    while it has room and has not expired), registers through InstanceService.register as the agent would,
    with a throwaway RSA-2048 key, and sends one heart-beat.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from cloudassist.domain.tags import Tag
    from cloudassist.errors import ApiError
    from cloudassist.services.activations import ActivationService, ActivationSpec
    from cloudassist.services.instances import InstanceService

    if "pem" not in _THROWAWAY_KEY:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        _THROWAWAY_KEY["pem"] = base64.b64encode(pem).decode()
    service = InstanceService(ctx)
    cache_key = (ctx.store.url, account, region_id)
    for attempt in range(2):
        if attempt or cache_key not in _ACTIVATIONS:
            async with ctx.store.write() as tx:
                account_id = await tx.accounts.ensure(account, ctx.clock.now())
            created = await ActivationService(ctx).create_activation(
                Scope(account_id, region_id), ActivationSpec(instance_count=1000)
            )
            _ACTIVATIONS[cache_key] = (created.activation.activation_id, created.code)
        activation_id, code = _ACTIVATIONS[cache_key]
        try:
            instance = await service.register(
                activation_code=code,
                activation_id=activation_id,
                region_id=region_id,
                machine_id=uuid.uuid4().hex,
                instance_name=name,
                hostname="test-host",
                intranet_ip="10.0.0.2",
                os_type=os_type,
                os_version="test",
                agent_version="2.2.3.578",
                public_key=_THROWAWAY_KEY["pem"],
                tags=[Tag(k, v) for k, v in (tags or {}).items()],
                remote_ip="127.0.0.1",
            )
        except ApiError as exc:
            if attempt or exc.code not in (
                "InvalidActivationId.NotFound",
                "InvalidActivationCode.Mismatch",
                "InvalidActivation.Disabled",
                "InvalidActivation.Expired",
                "InvalidActivation.CountExhausted",
            ):
                raise
            continue  # the cached code is gone or used up: make a new one
        await service.heartbeat(instance.instance_id, ctx.clock.now(), "2.2.3.578")
        return instance.instance_id
    raise AssertionError("unreachable")


@dataclass
class Contention:
    """How long an API-like writer and reader took while a background job ran (seconds each)."""

    writes: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)


async def under_contention(ctx: Context, account_id: int, job: Awaitable[T]) -> tuple[T, Contention]:
    """Run `job` while, every 5 ms, a write transaction takes the write lock (as every API write does first)
    and a read transaction reads; the job's result and the duration of each of those transactions."""
    seen = Contention()
    running = asyncio.ensure_future(job)
    while not running.done():
        began = time.perf_counter()
        async with ctx.store.write() as tx:
            await tx.accounts.allocate_task_seq(account_id)
        seen.writes.append(time.perf_counter() - began)
        began = time.perf_counter()
        async with ctx.store.read() as tx:
            await tx.accounts.current_seq(account_id)
        seen.reads.append(time.perf_counter() - began)
        await asyncio.sleep(0.005)
    return await running, seen
