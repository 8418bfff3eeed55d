"""Fixtures of the in-process API tests: the server's log, and an `Api` client of `create_app(ctx)` over a
store holding the test key and a few managed instances."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from apiwire import Api, ServerLog, seed_instances

from cloudassist.api.app import create_app
from cloudassist.services.context import Context


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    """The server's log records during the test (logger `cloudassist`, DEBUG and up)."""
    handler = ServerLog()
    logger = logging.getLogger("cloudassist")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture
async def api(ctx: Context, server_log: ServerLog) -> AsyncIterator[Api]:
    """A client of `create_app(ctx)` in-process, with the test key and the seeded instances."""
    await seed_instances(ctx)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Api(ctx, client, server_log)
