"""Running on PostgreSQL as docs/deploy.md says: a role of its own that owns a database of its own (not a
superuser), the server started with its URL migrates and serves it; a pg_dump of it, taken while the server
runs, restored with pg_restore into a new database, is served by a new server with the same data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from alibabacloud_ecs20140526 import models as ecs

from acceptance.sdk import REGION, tea_client
from cloudassist.testing import TEST_PG, LiveServer, _pg_admin

pytestmark = pytest.mark.acceptance


def _admin(sql: str) -> None:
    asyncio.run(_pg_admin(sql))


@pytest.fixture
def role() -> Iterator[str]:
    """A login role `cloudassist_<random>` owning two empty databases, `<role>` and `<role>_restored`; all
    dropped afterwards."""
    name = f"cloudassist_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE ROLE "{name}" LOGIN')  # docs: CREATE ROLE cloudassist LOGIN PASSWORD '…'
    try:
        for database in (name, f"{name}_restored"):
            _admin(f'CREATE DATABASE "{database}" OWNER "{name}"')
        yield name
    finally:
        for database in (name, f"{name}_restored"):
            _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _admin(f'DROP ROLE IF EXISTS "{name}"')


def _pg_tool(*args: str) -> None:
    server = urlsplit(TEST_PG)
    env = {**os.environ, "PGHOST": server.hostname or "127.0.0.1", "PGPORT": str(server.port or 5432)}
    done = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_server_on_its_own_role_and_database_survives_pg_dump_and_pg_restore(role: str, tmp_path: Path) -> None:
    server = urlsplit(TEST_PG)
    url = f"postgresql://{role}@{server.hostname}:{server.port or 5432}/{role}"
    live = LiveServer(tmp_path / "a", db=url)
    restored: LiveServer | None = None
    try:
        live.start(timeout=60)
        tea = tea_client(live.endpoint)
        made = tea.create_command(ecs.CreateCommandRequest(
            region_id=REGION, name="on-postgresql", type="RunShellScript", command_content="ZWNobyBwZw=="))
        command_id = made.body.command_id
        dump = tmp_path / "cloudassist.dump"
        _pg_tool("pg_dump", "--username", role, "--format", "custom", "--file", str(dump), role)  # server running
        live.stop()
        _pg_tool("pg_restore", "--username", role, "--no-owner", "--dbname", f"{role}_restored", str(dump))

        restored = LiveServer(tmp_path / "b", db=f"{url}_restored").start(timeout=60)
        found = tea_client(restored.endpoint).describe_commands(
            ecs.DescribeCommandsRequest(region_id=REGION, command_id=command_id)).body
        assert [c.name for c in found.commands.command] == ["on-postgresql"]
        assert "Traceback" not in live.log() + restored.log()
    finally:
        live.stop()
        if restored is not None:
            assert restored.stop() == 0
