"""Running the server: open the store, make sure a key exists, serve with uvicorn until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import ssl
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from cloudassist import preflight
from cloudassist.api.agent.app import create_agent_app, keep_delivering
from cloudassist.api.agent.hub import KickHub
from cloudassist.api.app import create_app
from cloudassist.api.session.relay import Relay
from cloudassist.clock import SystemClock
from cloudassist.edge.budget import Budget
from cloudassist.edge.guard import ConnectionGuard
from cloudassist.edge.loop import count_accept_errors
from cloudassist.edge.memory import keep_trimming, pin_mmap_threshold
from cloudassist.edge.protocols import BoundedWebSocket, Edge, http_protocol
from cloudassist.services.access import AccessService, NewKey
from cloudassist.services.context import Context
from cloudassist.services.retention import RetentionJob
from cloudassist.settings import Settings
from cloudassist.store.channel import KickChannel
from cloudassist.store.leader import Leadership
from cloudassist.store.migrate import SchemaTooNew
from cloudassist.store.reserve import DiskReserve
from cloudassist.store.store import Store

if TYPE_CHECKING:
    from cloudassist import tls

log = logging.getLogger("cloudassist.server")
#: How often a given-back disk reserve is tried again.
RESERVE_CHECK_SECONDS = 10.0
KEY_FILE = "access-key.txt"
#: The largest websocket message taken from an agent: it sends `accept:kick_vm`-sized replies.
WS_MAX_BYTES = 4096


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the server's event loop: uvloop where it is installed (less CPU per request, and a TLS connection
    costs ~50 KB instead of the ~290 KB of asyncio's own TLS transport, which zero-fills a 256 KiB buffer
    for each), asyncio's own loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def split_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (or [v6]:PORT) into its parts."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def prepare(settings: Settings) -> tuple[Context, NewKey | None]:
    """Open (and migrate) the store; make sure an access key exists. Returns a key created just now.

    The data directory holds secrets (the database, keys, the CA's key): only its owner may enter it,
    and everything the server creates there is private to it.
    """
    secure_data_dir(settings.data_dir)
    try:
        store = await Store.open(settings.database_url, reserve_bytes=settings.disk_reserve_mb << 20)
    except SchemaTooNew as exc:
        raise preflight.StartupError(str(exc)) from None
    ctx = Context(store, SystemClock(), settings)
    access = AccessService(ctx)
    key_id, secret = os.environ.get("CLOUDASSIST_ACCESS_KEY_ID"), os.environ.get("CLOUDASSIST_ACCESS_KEY_SECRET")
    if key_id and secret:
        await access.ensure_key(key_id, secret)
        return ctx, None
    if await access.has_keys():
        return ctx, None
    created = await access.create_key()
    write_key_file(settings.data_dir, created)
    return ctx, created


async def keep_reserve(reserve: DiskReserve, every: float = RESERVE_CHECK_SECONDS) -> None:
    """Make the disk reserve again once there is room for it (it was given back to a full disk)."""
    while True:
        await asyncio.sleep(every)
        if not reserve.held:
            await asyncio.to_thread(reserve.ensure)


def secure_data_dir(path: Path) -> None:
    """Create the data directory private to its owner; files made after this are private too."""
    os.umask(0o077)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_key_file(data_dir: Path, key: NewKey) -> Path:
    """Write a generated key to a file only its owner can read."""
    path = data_dir / KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"CLOUDASSIST_ACCESS_KEY_ID={key.access_key_id}\nCLOUDASSIST_ACCESS_KEY_SECRET={key.secret}\n")
    os.chmod(path, 0o600)
    return path


def show_new_key(key: NewKey, path: Path) -> None:
    """Tell of a generated key. Its secret goes to a terminal only: where standard output is a file or a pipe
    (a service's journal, `cloudassist up`'s server.log) it is a log, and the secret stays in the key file."""
    print(f"Created access key {key.access_key_id} for account 'default'.", flush=True)
    if sys.stdout.isatty():
        print(f"Its secret is shown once: {key.secret}", flush=True)
        print(f"Both are saved in {path} (mode 0600).", flush=True)
    else:
        print(f"Its secret is in {path} (mode 0600), and in no log.", flush=True)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us: two servers share one process."""

    def __init__(self, config: uvicorn.Config, edge: Edge) -> None:
        super().__init__(config)
        self.edge = edge

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def _log_started_message(self, listeners: Any) -> None:
        if self.edge.tls is None:
            super()._log_started_message(listeners)
        else:  # the TLS is ours (edge/protocols.py): uvicorn listens in plain TCP and would say http://
            host, port = listeners[0].getsockname()[:2]
            logging.getLogger("uvicorn.error").info("Uvicorn running on https://%s:%d (TLS)", host, port)


def _config(app: Any, listen: str, settings: Settings, edge: Edge, *, agent_face: bool = False) -> uvicorn.Config:
    """uvicorn's configuration of one face, bounded by `edge` (edge/protocols.py). The API parses with h11, whose
    line limit admits the 128 KB+ query strings the SDKs send (httptools stops at 64 KB); the agent face's
    requests are small, so it takes the faster httptools parser, and keeps an idle connection open across a
    heart-beat interval, so a fleet's heart-beats do not each pay a TLS handshake. Websockets take small
    messages only, without compression (a deflate context per socket), and are pinged."""
    host, port = split_listen(listen)
    ping = settings.agent_ping_seconds or None
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_protocol(edge, h11=not agent_face),
        ws=BoundedWebSocket,
        timeout_keep_alive=settings.agent_keep_alive_seconds if agent_face else 5,
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
        server_header=False,
        h11_max_incomplete_event_size=settings.max_request_bytes,
        ws_max_size=WS_MAX_BYTES,
        ws_ping_interval=ping,
        ws_ping_timeout=ping,
        ws_per_message_deflate=False,
        log_config=None,  # uvicorn's records go to our handler, in our format (text or JSON)
    )


def _edges(settings: Settings, open_files: int, api_tls: ssl.SSLContext | None) -> tuple[Edge, Edge | None]:
    """Each face's bounds: its share of the open-file limit, the read timeout, and its TLS."""
    budget = Budget.of(
        open_files, settings.max_connections, settings.agent_max_connections, agent_face=bool(settings.agent_listen)
    )
    log.info("%s", budget.describe())
    timeout = float(settings.read_timeout_seconds)
    api = Edge(ConnectionGuard("API", budget.api), timeout, api_tls)
    if not settings.agent_listen:
        return api, None
    cert = agent_certificate(settings)
    context = _tls_context(str(cert.cert), str(cert.key), "the agent face's certificate")
    return api, Edge(ConnectionGuard("agent", budget.agent), timeout, context)


def _tls_context(cert: str, key: str, what: str) -> ssl.SSLContext:
    """A server-side TLS context holding `cert` and its `key`; a StartupError naming `what` when they do not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise preflight.StartupError(
            f"cannot load {what} ({cert}, {key}): {exc}; give a readable PEM certificate and its key"
        ) from None
    return context


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (each connected agent holds one or two sockets);
    the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Serve the API (and the agent face, unless turned off) until SIGINT or SIGTERM, then stop cleanly.
    Raises preflight.StartupError, before anything is created, when it cannot."""
    await preflight.check(settings)
    api_tls = _tls_context(settings.api_cert, settings.api_key, "--api-cert/--api-key") if settings.api_cert else None
    log.debug(
        "settings: listen=%s agent_listen=%s data_dir=%s db=%s", settings.listen, settings.agent_listen or "off",
        settings.data_dir, preflight.shown_url(settings.db) if settings.db else "SQLite in the data directory",
    )
    open_files = raise_fd_limit()
    trim = pin_mmap_threshold()
    count_accept_errors(asyncio.get_running_loop())
    ctx, created = await prepare(settings)
    # after prepare: the generated certificate goes in the data directory
    api_edge, agent_edge = _edges(settings, open_files, api_tls)
    hub = KickHub()
    leadership = Leadership(ctx.store.url)
    relay = Relay()
    ctx = replace(ctx, notify=hub, leader=leadership, sessions=relay)
    relay.bind(ctx)  # after notify: the relay kicks through the hub
    background = [asyncio.create_task(leadership.keep_trying()), asyncio.create_task(relay.run())]
    if not ctx.store.sqlite:  # servers sharing a PostgreSQL database kick each other's agents
        hub.channel = KickChannel(ctx.store.url, hub.kick_local)
        background.append(asyncio.create_task(hub.channel.run()))
    if created is not None:
        show_new_key(created, settings.data_dir / KEY_FILE)
    servers = [_Server(_config(create_app(ctx), settings.listen, settings, api_edge), api_edge)]
    if agent_edge is not None:
        app = create_agent_app(ctx, hub)
        servers.append(_Server(_config(app, settings.agent_listen, settings, agent_edge, agent_face=True), agent_edge))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    runs = [asyncio.create_task(server.serve()) for server in servers]
    background.append(asyncio.create_task(keep_delivering(ctx, hub)))
    background.append(asyncio.create_task(RetentionJob(ctx).keep_running()))
    if ctx.store.reserve is not None:
        background.append(asyncio.create_task(keep_reserve(ctx.store.reserve)))
    if trim is not None:
        guards = [edge.guard for edge in (api_edge, agent_edge) if edge is not None]
        background.append(asyncio.create_task(keep_trimming(guards, trim)))
    try:
        # uvicorn exposes `started` as a flag, not an event
        while not all(server.started for server in servers) and not any(task.done() for task in runs):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if all(server.started for server in servers):
            scheme = "https" if settings.api_cert else "http"
            print(f"cloudassist API listening on {scheme}://{settings.listen}/", flush=True)
            print(f"web console on {scheme}://{settings.listen}/console/", flush=True)
            if settings.agent_listen:
                print(
                    f"agent protocol listening on https://{settings.agent_listen}/ "
                    f"(CA certificate: {agent_certificate(settings).ca or settings.agent_cert})",
                    flush=True,
                )
            if ready is not None:
                ready.set()
        else:
            stop()
        await asyncio.gather(*runs)
    finally:
        for job in background:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await ctx.store.close()
    failed = [server for server in servers if not server.started]
    if failed:
        raise SystemExit(1)


def agent_certificate(settings: Settings) -> tls.ServerCertificate:
    """The operator's certificate if given, else the one generated in the data directory."""
    from cloudassist import tls  # x509 is needed only here, once
    if settings.agent_cert:
        return tls.ServerCertificate(Path(settings.agent_cert), Path(settings.agent_key), None)
    host, _ = split_listen(settings.agent_listen)
    names = tls.default_names(settings.agent_names)
    if host not in ("0.0.0.0", "::", "") and host not in names:  # noqa: S104 - wildcards get no SAN
        names.append(host)
    return tls.ensure(settings.data_dir, names)
