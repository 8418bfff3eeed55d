"""Running the server: open the store, make sure a key exists, serve with uvicorn until a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import uvicorn

from cloudassist.api.app import create_app
from cloudassist.clock import SystemClock
from cloudassist.services.access import AccessService, NewKey
from cloudassist.services.context import Context
from cloudassist.settings import Settings
from cloudassist.store.store import Store

log = logging.getLogger("cloudassist.server")
KEY_FILE = "access-key.txt"


def split_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (or [v6]:PORT) into its parts."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def prepare(settings: Settings) -> tuple[Context, NewKey | None]:
    """Open (and migrate) the store; make sure an access key exists. Returns a key created just now."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(settings.database_url)
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


def write_key_file(data_dir: Path, key: NewKey) -> Path:
    """Write a generated key to a file only its owner can read."""
    path = data_dir / KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"CLOUDASSIST_ACCESS_KEY_ID={key.access_key_id}\nCLOUDASSIST_ACCESS_KEY_SECRET={key.secret}\n")
    os.chmod(path, 0o600)
    return path


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Serve the API until SIGINT or SIGTERM, then shut down cleanly."""
    ctx, created = await prepare(settings)
    host, port = split_listen(settings.listen)
    if created is not None:
        print(f"Created access key {created.access_key_id} for account 'default'.", flush=True)
        print(f"Its secret is shown once: {created.secret}", flush=True)
        print(f"Both are saved in {settings.data_dir / KEY_FILE} (mode 0600).", flush=True)
    config = uvicorn.Config(
        create_app(ctx), host=host, port=port, http="httptools", lifespan="on", access_log=False,
        log_level=settings.log_level, timeout_graceful_shutdown=5, server_header=False,
        h11_max_incomplete_event_size=settings.max_request_bytes,
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            print(f"cloudassist API listening on http://{host}:{port}/", flush=True)
            if ready is not None:
                ready.set()
        await task
    finally:
        await ctx.store.close()
