"""PostgreSQL refusing connections (as while it restarts) is an outage, 503 ServiceUnavailable, never an
internal error (found by the chaos run, bench/chaos.py, pg-restart: 500s with `internal error … DBAPIError`
in the log, from connections refused with `57P03 the database system is shutting down`).

The shared test server is not restarted: the server's database is made to refuse connections
(`ALLOW_CONNECTIONS false`, which binds superusers too) and its backends are ended, as the postmaster ends
them at a restart; the server's pool then finds its connections gone and cannot open new ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from cloudassist.testing import TEST_PG, LiveServer, pg_database, signed_query, wait_for

PARAMS = {"Action": "DescribeCommands", "RegionId": "cn-hangzhou", "Version": "2014-05-26"}


async def _refuse(database: str, refuse: bool) -> None:
    admin = await asyncpg.connect(TEST_PG)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"false" if refuse else "true"}')
        if refuse:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await admin.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    with pg_database("restart") as url:
        server = LiveServer(tmp_path / "data", db=url).start(timeout=60)
        try:
            yield server, url.rsplit("/", 1)[1]
        finally:
            asyncio.run(_refuse(url.rsplit("/", 1)[1], False))
            alive = server.process is not None and server.process.poll() is None
            server.stop()
            assert alive, server.log()[-3000:]


def _call(server: LiveServer, http: httpx.Client) -> httpx.Response:
    return http.post(f"http://{server.endpoint}/?{signed_query(PARAMS, server.access_key_id, server.secret)}")


def test_a_call_while_the_database_restarts_waits_for_it(live: tuple[LiveServer, str]) -> None:
    """PostgreSQL ends the server's connections and refuses new ones for a second, as a restart does: calls
    made meanwhile wait and are served (200), none is answered 5xx."""
    server, database = live
    with httpx.Client(timeout=60, trust_env=False) as http:
        assert _call(server, http).status_code == 200
        asyncio.run(_refuse(database, True))

        async def during() -> list[httpx.Response]:
            calls = [asyncio.ensure_future(asyncio.to_thread(_call, server, http)) for _ in range(3)]
            await asyncio.sleep(1.0)
            await _refuse(database, False)
            return list(await asyncio.gather(*calls))

        answers = asyncio.run(during())
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]


def test_a_database_that_keeps_refusing_connections_is_service_unavailable(live: tuple[LiveServer, str]) -> None:
    """While PostgreSQL refuses connections for longer than the server waits, signed calls get 503
    ServiceUnavailable in the API's shape (a 500 with an internal error before) and the log holds no internal
    error; once it takes connections again, calls are served."""
    server, database = live
    with httpx.Client(timeout=60, trust_env=False) as http:
        assert _call(server, http).status_code == 200
        asyncio.run(_refuse(database, True))
        answers = [_call(server, http) for _ in range(2)]
        assert {(a.status_code, a.json()["Code"]) for a in answers} == {(503, "ServiceUnavailable")}
        asyncio.run(_refuse(database, False))
        wait_for(lambda: _call(server, http).status_code == 200, 30, "a call to be served again")
    assert "internal error" not in server.log(), server.log()[-3000:]
