"""`python -m cloudassist.agent run` (agent/serve.py): the agent without click, and click for everything else.

A plain `run` is read by hand and the agent runs without click or the `cloudassist` command line in its memory;
help, errors and the other commands go to the click command, so they read as they always did.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudassist.agent import identity as ident
from cloudassist.agent import serve
from cloudassist.testing import free_port

MODULE = [sys.executable, "-m", "cloudassist.agent"]
CONSOLE = [sys.executable, "-m", "cloudassist", "agent"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != serve.STATE_DIR_ENV}
    return {**env, ident.RUNTIME_DIR_ENV: str(home)}


def test_plain_run_command_lines_are_read_and_the_rest_left_to_click(tmp_path: Path) -> None:
    """`run` with --state-dir, --log-level, --max-concurrent (either spelling, the last one counting, the
    state directory from the environment or the default otherwise) is read; another command, --help, an
    unknown option, a missing, empty or dash-led value, a level or a count click refuses, and a state
    directory that is a file are not."""
    default = ident.DEFAULT_STATE_DIR
    env = {serve.STATE_DIR_ENV: str(tmp_path / "env")}
    assert serve.plain_run(["run"], {}) == (default, "info", 10)
    assert serve.plain_run(["run"], {serve.STATE_DIR_ENV: ""}) == (default, "info", 10)
    assert serve.plain_run(["run"], env) == (tmp_path / "env", "info", 10)
    assert serve.plain_run(["run", "--state-dir", str(tmp_path), "--log-level=debug", "--max-concurrent", "1000"],
                           env) == (tmp_path, "debug", 1000)
    assert serve.plain_run(["run", "--log-level", "error", "--log-level", "warning", "--state-dir=/x"], {}) == (
        Path("/x"), "warning", 10)
    a_file = tmp_path / "file"
    a_file.write_text("")
    for argv in (["status"], [], ["run", "--help"], ["run", "--verbose"], ["run", "extra"], ["run", "--state-dir"],
                 ["run", "--state-dir="], ["run", "--state-dir", "--log-level"], ["run", "--log-level", "INFO"],
                 ["run", "--max-concurrent", "0"], ["run", "--max-concurrent", "1001"],
                 ["run", "--max-concurrent", "+5"], ["run", "--state-dir", str(a_file)], ["run", "--", "x"]):
        assert serve.plain_run(argv, env) is None, argv


def _without_prog(text: str) -> str:
    return text.replace("python -m cloudassist.agent", "PROG").replace("python -m cloudassist agent", "PROG")


@pytest.mark.parametrize("args", [["run", "--help"], ["run", "--log-level", "loud"], ["run", "--max-concurrent", "0"],
                                  ["run", "--bogus"], ["status", "--state-dir", "{home}/none"],
                                  ["run", "--state-dir", "{home}/none"], ["run", "--state-dir", "{home}/file"]])
def test_help_and_errors_are_those_of_cloudassist_agent(tmp_path: Path, args: list[str]) -> None:
    """For help and every refusal, `python -m cloudassist.agent …` prints what `cloudassist agent …` prints
    (but the program's name) and exits with the same status; so does an agent that is not registered."""
    (tmp_path / "file").write_text("")
    argv = [a.format(home=tmp_path) for a in args]
    ours = subprocess.run([*MODULE, *argv], capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    reference = subprocess.run([*CONSOLE, *argv], capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    assert ours.returncode == reference.returncode
    assert (ours.returncode == 0) == (args[-1] == "--help")
    assert (_without_prog(ours.stdout), _without_prog(ours.stderr)) == (
        _without_prog(reference.stdout), _without_prog(reference.stderr))
    assert (ours.stdout + ours.stderr).strip()


def test_the_agent_runs_without_loading_click(tmp_path: Path) -> None:
    """`python -X importtime -m cloudassist.agent run` until it serves (its server refusing): no module of
    click nor of the `cloudassist` command line is imported, the agent's runner is; SIGTERM ends it with 0."""
    state = tmp_path / "state"
    ident.save(state, ident.Identity("mi-x", "a" * 32, "cn-test", f"127.0.0.1:{free_port()}", "", "",
                                     ident.generate()))
    agent = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "cloudassist.agent", "run", "--state-dir",
                              str(state)], stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    assert agent.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("signing requests with" in line for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = agent.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        agent.send_signal(signal.SIGTERM)
        rest, _ = agent.communicate(timeout=30)
    finally:
        agent.kill()
    assert agent.returncode == 0, "".join(lines) + rest
    imported = {m.group(1) for line in lines if (m := re.match(r"import time:.*\|\s*(\S+)$", line.rstrip()))}
    assert "cloudassist.agent.runner" in imported
    assert [m for m in imported if m.split(".")[0] == "click" or m.startswith("cloudassist.cli")] == []
