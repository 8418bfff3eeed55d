"""deploy/: the systemd units are valid to systemd (`systemd-analyze verify`), hardened as docs/deploy.md says,
and their ExecStart command lines are ones our command line takes; `cloudassist backup|restore` refuse what they
cannot do with a message that says what to do."""

from __future__ import annotations

import configparser
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cloudassist.agent.cli import agent
from cloudassist.agent.serve import plain_run
from cloudassist.cli.main import main

DEPLOY = Path(__file__).parent.parent / "deploy"
UNITS = ("cloudassist-server.service", "cloudassist-agent.service")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive in systemd
    parser.read(DEPLOY / name)
    return parser


def _exec_start(name: str) -> list[str]:
    return shlex.split(_unit(name)["Service"]["ExecStart"])


@pytest.mark.parametrize("name", UNITS)
def test_systemd_finds_nothing_wrong_in_the_unit(name: str, tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a warning (unknown keys and bad values are warnings
    there), its ExecStart pointed at this environment's own interpreter or script (systemd checks it exists)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian: apt-get install systemd)"
    text = (DEPLOY / name).read_text()
    here = Path(sys.executable).parent
    local = text.replace("/opt/cloudassist/venv/bin/cloudassist", str(here / "cloudassist"))
    local = local.replace("/usr/bin/python3 ", f"{sys.executable} ")
    assert local != text
    (tmp_path / name).write_text(local)
    done = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True, text=True, check=False,
                          timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_server_unit_runs_the_server_as_its_own_user_hardened() -> None:
    """A dedicated user, the data directory as the unit's StateDirectory, no privilege gain, a read-only system,
    a raised open-file limit; ExecStart is `cloudassist server` with options the command takes."""
    service = _unit("cloudassist-server.service")["Service"]
    assert service["User"] == service["Group"] == "cloudassist"
    assert service["StateDirectory"] == "cloudassist"
    assert service["StateDirectoryMode"] == "0700"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert int(service["LimitNOFILE"]) >= 65536
    argv = _exec_start("cloudassist-server.service")
    assert argv[0].endswith("/bin/cloudassist")
    assert argv[1] == "server"
    context = main.make_context("cloudassist", argv[1:], resilient_parsing=False)
    server = main.get_command(context, argv[1])
    assert isinstance(server, click.Command)
    parsed = server.make_context("server", argv[2:], parent=context)
    assert parsed.params["data_dir"] == Path("/var/lib/cloudassist")


def test_the_agent_unit_runs_the_agent_in_its_state_directory() -> None:
    """ExecStart is `python -m cloudassist.agent run --state-dir /var/lib/cloudassist-agent`: the click-free
    path takes it, and so does the click command it stands for."""
    argv = _exec_start("cloudassist-agent.service")
    assert argv[1:3] == ["-m", "cloudassist.agent"]
    assert plain_run(argv[3:], {}) is not None
    parsed = agent.make_context("agent", argv[3:])
    run = agent.get_command(parsed, argv[3])
    assert isinstance(run, click.Command)
    assert run.make_context("run", argv[4:], parent=parsed).params["state_dir"] == Path("/var/lib/cloudassist-agent")
    assert _unit("cloudassist-agent.service")["Service"]["StateDirectory"] == "cloudassist-agent"


def test_backup_refuses_a_directory_without_a_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["backup", "--data-dir", str(tmp_path / "nothing"), str(tmp_path / "b")])
    assert result.exit_code == 1
    assert "holds no cloudassist.db: give the server's data directory with --data-dir" in result.output
    assert not (tmp_path / "b").exists()


def test_backup_and_restore_send_postgresql_to_pg_dump(tmp_path: Path) -> None:
    for args in (["backup", str(tmp_path / "b")], ["restore", str(tmp_path)]):
        result = CliRunner().invoke(main, [*args, "--db", "postgresql://127.0.0.1/test"])
        assert result.exit_code == 2
        assert "pg_dump" in result.output


def test_restore_refuses_a_data_directory_that_holds_a_database(tmp_path: Path) -> None:
    """Restoring over a database (perhaps a running server's) is refused; the database is left as it was."""
    backup, target = tmp_path / "backup", tmp_path / "data"
    for where in (backup, target):
        where.mkdir()
        with sqlite3.connect(where / "cloudassist.db") as db:
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
            db.execute("INSERT INTO alembic_version VALUES (?)", (where.name,))
    result = CliRunner().invoke(main, ["restore", "--data-dir", str(target), str(backup)])
    assert result.exit_code == 1
    assert "already holds a database: restore into a new or empty directory" in result.output
    with sqlite3.connect(target / "cloudassist.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == ("data",)


def test_restore_refuses_a_backup_of_a_newer_schema(tmp_path: Path) -> None:
    """A backup made by a newer cloudassist (a schema revision this one does not know) is not restored."""
    backup = tmp_path / "backup"
    backup.mkdir()
    with sqlite3.connect(backup / "cloudassist.db") as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        db.execute("INSERT INTO alembic_version VALUES ('9999')")
    result = CliRunner().invoke(main, ["restore", "--data-dir", str(tmp_path / "data"), str(backup)])
    assert result.exit_code == 1
    assert "newer than this cloudassist's" in result.output
    assert list((tmp_path / "data").iterdir()) == []
