"""Live deployments for the security suite, on both engines.

A *deployment* is one store (a SQLite data directory, or a fresh PostgreSQL database created here with
asyncpg and dropped afterwards) served by TWO `cloudassist server` processes at once, so that anything a
request does to one (a nonce it uses up) must be seen by the other. The servers know the key
testak/testsecret of account `default` (account A). Account B's key is made the way an operator makes
one: `cloudassist keys create --account B`.

Every test of this directory runs once per engine. The secrets check (test_security_logs.py) is moved to
the end of the run so that it reads logs written by everything before it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from secwire import AK, REGION, SECRET

from cloudassist.clock import SystemClock
from cloudassist.services.context import Context
from cloudassist.settings import Settings, database_url
from cloudassist.store.store import Store
from cloudassist.testing import LiveServer, free_port, pg_database, register_instance

ENGINES = ["sqlite", "postgresql"]
LAST_MODULE = "test_security_logs.py"


@pytest.hookimpl(trylast=True)  # after pytest has grouped the tests by deployment
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order this directory's tests engine by engine, each engine's log checks after all its other tests,
    so the logs they read hold that deployment's whole traffic (a deployment is made once per engine)."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]

    def key(item: pytest.Item) -> tuple[int, bool]:
        params = getattr(item, "callspec", None)
        engine = params.params.get("deployment", params.params.get("backend")) if params else None
        return (ENGINES.index(engine) if engine in ENGINES else len(ENGINES), item.path.name == LAST_MODULE)

    ordered = sorted((items[i] for i in slots), key=key)
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


def _without_proxies() -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            del os.environ[name]


_without_proxies()  # the SDKs (and httpx) would send 127.0.0.1 traffic to a proxy otherwise


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: no proxies, no CLOUDASSIST_* settings but `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith("CLOUDASSIST_")}
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------------ databases

@dataclass
class Backend:
    """Where a store lives: a data directory and the `--db` value ("" = SQLite inside the data dir)."""

    engine: str
    data_dir: Path
    db: str

    @property
    def url(self) -> str:
        return database_url(self.db, self.data_dir)

    def db_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), *(["--db", self.db] if self.db else [])]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `cloudassist ARGS --data-dir D [--db URL]` as an operator would."""
        argv = [sys.executable, "-m", "cloudassist", *args, *self.db_args()]
        done = subprocess.run(argv, env=child_env(COLUMNS="200"), capture_output=True, text=True, timeout=60,
                              check=False)
        if check:
            assert done.returncode == 0, f"{argv} failed ({done.returncode}): {done.stdout}{done.stderr}"
        return done

    def create_key(self, account: str) -> tuple[str, str]:
        """`cloudassist keys create --account ACCOUNT`: the new key's id and secret, read from its output."""
        out = self.cli("keys", "create", "--account", account).stdout
        key_id = re.search(r"^AccessKeyId:\s*(\S+)\s*$", out, re.M)
        secret = re.search(r"^AccessKeySecret:\s*(\S+)\s*$", out, re.M)
        assert key_id, out
        assert secret, out
        return key_id.group(1), secret.group(1)

    def register_instance(self, account: str, region: str = REGION, name: str | None = None) -> str:
        """A managed Linux instance of `account`, registered (and heart-beating) through
        cloudassist.testing.register_instance as an agent would; its mi- id."""
        return asyncio.run(_register_instance(self, account, region, name))


async def _register_instance(backend: Backend, account: str, region: str, name: str | None) -> str:
    store = await Store.open(backend.url, upgrade=False)
    try:
        ctx = Context(store, SystemClock(), Settings(data_dir=backend.data_dir, db=backend.db))
        return await register_instance(ctx, account=account, region_id=region, name=name)
    finally:
        await store.close()


@pytest.fixture(params=ENGINES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty store on each engine (nothing listening on it yet)."""
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        yield Backend("sqlite", data_dir, "")
        return
    with pg_database("ca_sec") as url:
        yield Backend("postgresql", data_dir, url)


# ------------------------------------------------------------------------------------------------ deployments

@dataclass
class Deployment(Backend):
    """A store with two live servers on it, and account B's key."""

    servers: list[LiveServer] = field(default_factory=list)
    b_key: tuple[str, str] = ("", "")

    @property
    def primary(self) -> LiveServer:
        return self.servers[0]

    @property
    def secondary(self) -> LiveServer:
        return self.servers[1]

    @property
    def endpoint(self) -> str:
        return self.primary.endpoint

    def log(self) -> str:
        """What the servers wrote: their stdout and stderr (LiveServer sends both to <data_dir>/server.log)."""
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="session", params=ENGINES)
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Two server processes sharing one store (same data directory, same --db) on each engine, logging at
    the default level (test_security_logs.py covers debug level separately)."""
    data_dir = tmp_path_factory.mktemp(f"deploy-{request.param}") / "data"
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(pg_database("ca_sec")) if request.param == "postgresql" else ""
        deployment = Deployment(request.param, data_dir, db)
        for _ in range(2):  # one after the other: the first migrates the store
            server = LiveServer(data_dir, db=db, access_key_id=AK, secret=SECRET)
            stack.callback(server.stop)
            deployment.servers.append(server.start())
        deployment.b_key = deployment.create_key("B")
        yield deployment


# ------------------------------------------------------------------------------------------------ bare processes

@dataclass
class ServerProcess:
    """A `cloudassist server` started by hand, with the environment we choose and stdout kept apart."""

    backend: Backend
    env: dict[str, str]
    umask: int = 0  #: 0 by default: the key file's 0600 must come from the server, not from a careful parent
    port: int = field(default_factory=free_port)
    agent_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    stdout_path: Path | None = None
    stderr_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, tag: str, timeout: float = 30.0) -> ServerProcess:
        logs = self.backend.data_dir.parent
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = logs / f"{tag}.stdout", logs / f"{tag}.stderr"
        argv = [sys.executable, "-m", "cloudassist", "server", "--listen", self.endpoint,
                "--agent-listen", f"127.0.0.1:{self.agent_port}", *self.backend.db_args()]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(argv, env=self.env, stdout=out, stderr=err, umask=self.umask)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}: {self.stdout()}{self.stderr()}")
            if "listening on" in self.stdout():
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.stdout()}{self.stderr()}")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path and self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path and self.stderr_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ------------------------------------------------------------------------------------------------ resources

@dataclass(frozen=True)
class World:
    """Resources of account A (testak) and account B in cn-hangzhou, made through the API."""

    a_instance: str
    a_command: str  #: created with CreateCommand, named A_COMMAND_NAME
    a_invoke: str  #: InvokeCommand of a_command on a_instance
    a_run_invoke: str  #: RunCommand on a_instance
    a_run_command: str
    b_instance: str
    b_command: str


A_COMMAND_NAME = "a-private-command"
A_SECRET_CONTENT = "echo a-private-marker"


@pytest.fixture(scope="session")
def world(deployment: Deployment) -> World:
    """Account A's instance, command, invocation and RunCommand task; account B's instance and command."""
    from secwire import acs_call, acs_client

    a, b = acs_client(), acs_client(*deployment.b_key)
    endpoint = deployment.endpoint
    a_instance = deployment.register_instance("default", REGION, name="a-host")
    b_instance = deployment.register_instance("B", REGION, name="b-host")
    a_command = acs_call(a, endpoint, "CreateCommand", {
        "RegionId": REGION, "Name": A_COMMAND_NAME, "Type": "RunShellScript",
        "CommandContent": base64.b64encode(A_SECRET_CONTENT.encode()).decode()})["CommandId"]
    a_invoke = acs_call(a, endpoint, "InvokeCommand", {
        "RegionId": REGION, "CommandId": a_command, "InstanceId.1": a_instance})["InvokeId"]
    run = acs_call(a, endpoint, "RunCommand", {
        "RegionId": REGION, "Type": "RunShellScript", "CommandContent": A_SECRET_CONTENT,
        "InstanceId.1": a_instance, "Name": "a-private-run"})
    b_command = acs_call(b, endpoint, "CreateCommand", {
        "RegionId": REGION, "Name": "b-command", "Type": "RunShellScript",
        "CommandContent": base64.b64encode(b"echo b").decode()})["CommandId"]
    return World(a_instance, a_command, a_invoke, run["InvokeId"], run["CommandId"], b_instance, b_command)


@pytest.fixture(scope="session")
def a_activation(deployment: Deployment) -> str:
    """An activation code account A created with CreateActivation in cn-hangzhou; its ActivationId."""
    from secwire import acs_call, acs_client

    created = acs_call(acs_client(), deployment.endpoint, "CreateActivation", {
        "RegionId": REGION, "Description": "a-private-activation", "InstanceName": "apriv", "InstanceCount": "5"})
    activation_id: str = created["ActivationId"]
    assert created["ActivationCode"]
    return activation_id
