"""`cloudassist keys`: create, list, disable and enable access keys of named accounts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloudassist.cli.main import main
from cloudassist.testing import TEST_PG, free_port


def test_keys_lifecycle_without_ever_showing_a_secret_twice(tmp_path: Path) -> None:
    """A created key's secret is printed once; `list` shows the key and account but never the secret."""
    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--create", "--account", "team-b", "--data-dir", str(tmp_path)])
    assert created.exit_code == 0, created.output
    fields = dict(line.split(":", 1) for line in created.output.strip().splitlines())
    key_id, secret = fields["AccessKeyId"].strip(), fields["AccessKeySecret"].strip()
    assert fields["Account"].strip() == "team-b"
    assert key_id.startswith("LTAI")
    assert len(secret) >= 24

    listed = runner.invoke(main, ["keys", "list", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0
    assert key_id in listed.output
    assert "team-b" in listed.output
    assert secret not in listed.output

    disabled = runner.invoke(main, ["keys", "disable", key_id, "--data-dir", str(tmp_path)])
    assert disabled.exit_code == 0
    assert "disabled" in disabled.output
    assert "no" in runner.invoke(main, ["keys", "list", "--data-dir", str(tmp_path)]).output
    enabled = runner.invoke(main, ["keys", "enable", key_id, "--data-dir", str(tmp_path)])
    assert enabled.exit_code == 0
    assert "enabled" in enabled.output


def test_disabling_an_unknown_key_fails_with_a_message(tmp_path: Path) -> None:
    """Disabling a key that does not exist exits non-zero and says so."""
    assert CliRunner().invoke(main, ["keys", "create", "--create", "--data-dir", str(tmp_path)]).exit_code == 0
    result = CliRunner().invoke(main, ["keys", "disable", "LTAInope", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "no access key LTAInope" in result.output


# --- errors that say what to do (issue 9, item 5) -----------------------------------------------------------

def _cloudassist(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDASSIST_") and not k.lower().endswith("_proxy")}
    return subprocess.run([sys.executable, "-m", "cloudassist", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The failure's output: exit status 1, one line starting `Error:`, no traceback, naming `words`."""
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), output
    assert "Traceback" not in output
    assert all(word in output for word in words), output
    return lines[0]


@pytest.mark.parametrize("command", ["server", "up"])
def test_a_taken_port_is_one_line_and_nothing_is_created(tmp_path: Path, command: str) -> None:
    """A port held by another process: one line naming the address, the flag to change; no data directory."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        done = _cloudassist(command, "--data-dir", str(tmp_path / "data"), "--listen", taken,
                            "--agent-listen", f"127.0.0.1:{free_port()}")
    _one_line(done, taken, "already in use", "--listen")
    assert not (tmp_path / "data").exists()


def test_a_taken_agent_port_names_its_flag(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        done = _cloudassist("server", "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{free_port()}",
                            "--agent-listen", taken)
    _one_line(done, taken, "--agent-listen")
    assert not (tmp_path / "data").exists()


def test_a_missing_postgresql_database_is_one_line_saying_how_to_create_it(tmp_path: Path) -> None:
    """A database that does not exist on a reachable PostgreSQL: its name and `createdb`, not a traceback."""
    url = TEST_PG.rsplit("/", 1)[0] + "/cloudassist_no_such_database"
    done = _cloudassist("server", "--data-dir", str(tmp_path / "data"), "--db", url,
                        "--listen", f"127.0.0.1:{free_port()}", "--agent-listen", "")
    _one_line(done, "'cloudassist_no_such_database' does not exist", "createdb cloudassist_no_such_database")
    assert not (tmp_path / "data").exists()


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    """Nothing listens at the URL's port: say so and what to fix; the password is never shown."""
    url = f"postgresql://someone:hunter2@127.0.0.1:{free_port()}/x"
    done = _cloudassist("server", "--data-dir", str(tmp_path / "data"), "--db", url,
                        "--listen", f"127.0.0.1:{free_port()}", "--agent-listen", "")
    line = _one_line(done, "cannot reach the database", "start PostgreSQL", "--db")
    assert "hunter2" not in line
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("where", ["under-a-file", "read-only-fs"])
def test_an_unwritable_data_directory_is_one_line(tmp_path: Path, where: str) -> None:
    """A data directory that cannot be made or written (a file in its path; a read-only file system, which
    refuses root too): one line naming it and --data-dir."""
    if where == "under-a-file":
        (tmp_path / "file").write_text("")
        data = tmp_path / "file" / "data"
    else:
        data = Path("/proc/cloudassist-test/data")
    done = _cloudassist("server", "--data-dir", str(data), "--listen", f"127.0.0.1:{free_port()}",
                        "--agent-listen", "")
    _one_line(done, str(data), "--data-dir")


def test_keys_refuses_a_directory_without_data_unless_asked_to_create(tmp_path: Path) -> None:
    """`keys` run against a directory with no database says so (and how to point at the server's) and creates
    nothing; `keys create --create` starts one; afterwards `keys list` works there."""
    empty = tmp_path / "elsewhere"
    for args in (["keys", "list"], ["keys", "create"], ["keys", "disable", "LTAIx"]):
        _one_line(_cloudassist(*args, "--data-dir", str(empty)), "holds no cloudassist data", "--data-dir", "--create")
        assert not empty.exists()
    made = _cloudassist("keys", "create", "--create", "--data-dir", str(empty))
    assert made.returncode == 0, made.stderr
    assert _cloudassist("keys", "list", "--data-dir", str(empty)).returncode == 0
