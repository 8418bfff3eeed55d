"""The key a server generates for itself when none is configured: where it goes, who can read it, how
often its secret is shown, and that it is generated only once per store."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from alibabacloud_ecs20140526 import models as ecs_models
from secwire import REGION, acs_call, acs_client, tea_client

from conftest import Backend, ServerProcess, child_env

KEY_FILE = "access-key.txt"


def read_key_file(backend: Backend) -> tuple[str, str, str]:
    """(id, secret, raw text) of <data_dir>/access-key.txt."""
    text = (backend.data_dir / KEY_FILE).read_text()
    key_id = re.search(r"^CLOUDASSIST_ACCESS_KEY_ID=(\S+)$", text, re.M)
    secret = re.search(r"^CLOUDASSIST_ACCESS_KEY_SECRET=(\S+)$", text, re.M)
    assert key_id, text
    assert secret, text
    return key_id.group(1), secret.group(1), text


def works(endpoint: str, key_id: str, secret: str) -> None:
    """The key is accepted by both official SDKs (v1 through aliyunsdkcore, V3 through the tea SDK)."""
    assert "Commands" in acs_call(acs_client(key_id, secret), endpoint, "DescribeCommands", {"RegionId": REGION})
    typed = tea_client(endpoint, key_id, secret).describe_commands(ecs_models.DescribeCommandsRequest(
        region_id=REGION))
    assert typed.status_code == 200


def test_generated_key_file_is_private_works_and_is_made_once(backend: Backend) -> None:
    """A server started with no CLOUDASSIST_ACCESS_KEY_ID/SECRET (under umask 0) creates one key, writes it
    to <data_dir>/access-key.txt with mode 0600, says so on stdout without the secret (stdout is a file here,
    so a log: only a terminal is shown it) and never prints it on stderr; the key works through both SDKs; a
    restart on the same store creates no second key, prints no secret, leaves the file as it was, and the key
    still works."""
    env = child_env()  # no CLOUDASSIST_* at all
    first = ServerProcess(backend, env).start("first")
    try:
        path = backend.data_dir / KEY_FILE
        assert path.is_file()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
        key_id, secret, text = read_key_file(backend)
        assert secret not in first.stdout(), first.stdout()
        assert f"Created access key {key_id}" in first.stdout()
        assert secret not in first.stderr(), first.stderr()
        works(first.endpoint, key_id, secret)
    finally:
        first.stop()

    listed = backend.cli("keys", "list").stdout
    assert listed.count("LTAI") == 1, listed
    assert key_id in listed
    assert secret not in listed

    second = ServerProcess(backend, env).start("second")
    try:
        assert secret not in second.stdout()
        assert "Created access key" not in second.stdout(), second.stdout()
        assert secret not in second.stderr()
        assert path.read_text() == text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        works(second.endpoint, key_id, secret)
    finally:
        second.stop()
    listed = backend.cli("keys", "list").stdout
    assert listed.count("LTAI") == 1, listed


def test_configured_key_writes_no_key_file(backend: Backend) -> None:
    """A server given CLOUDASSIST_ACCESS_KEY_ID/SECRET in its environment uses that key, writes no
    access-key.txt and never prints the configured secret."""
    env = child_env(CLOUDASSIST_ACCESS_KEY_ID="LTAIconfiguredkey0001",
                    CLOUDASSIST_ACCESS_KEY_SECRET="configured-s3cret")
    server = ServerProcess(backend, env).start("configured")
    try:
        works(server.endpoint, "LTAIconfiguredkey0001", "configured-s3cret")
        assert not (backend.data_dir / KEY_FILE).exists()
        assert "configured-s3cret" not in server.stdout() + server.stderr()
    finally:
        server.stop()


def readable_by_others(path: Path, data_dir: Path) -> bool:
    """Whether users other than the owner could read `path` (its mode, or the data directory's, lets them)."""
    dir_open = stat.S_IMODE(data_dir.stat().st_mode) & 0o011 != 0
    return dir_open and stat.S_IMODE(path.stat().st_mode) & 0o044 != 0


def secret_holders(data_dir: Path, secret: str) -> list[Path]:
    """Files under `data_dir` that contain `secret` or a PEM private key."""
    return [p for p in data_dir.rglob("*") if p.is_file()
            and (secret.encode() in p.read_bytes() or b"PRIVATE KEY-----" in p.read_bytes())]


def exposed(data_dir: Path, secret: str) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in secret_holders(data_dir, secret)
            if readable_by_others(p, data_dir)}


def test_no_file_holding_a_secret_is_readable_by_other_users(backend: Backend) -> None:
    """Under the usual umask 022, no file the server keeps in its data directory that contains the generated
    AccessKey secret (the key file; on SQLite also the database and its WAL) or a private key (the agent
    face's) can be read by other local users, while the server runs and after it stops: otherwise the key
    file's 0600 protects nothing."""
    server = ServerProcess(backend, child_env(), umask=0o022).start("umask022")
    try:
        _, secret, _ = read_key_file(backend)
        assert backend.data_dir / KEY_FILE in secret_holders(backend.data_dir, secret)
        data_dir_mode = oct(stat.S_IMODE(backend.data_dir.stat().st_mode))
        running = exposed(backend.data_dir, secret)
    finally:
        server.stop()
    stopped = exposed(backend.data_dir, secret)
    assert not running, f"while running, readable by other users (data dir {data_dir_mode}): {running}"
    assert not stopped, f"after stopping, readable by other users (data dir {data_dir_mode}): {stopped}"
