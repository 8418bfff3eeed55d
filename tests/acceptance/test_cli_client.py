"""The operator's CLI (`cloudassist run`, the listings, `stop`, `send-file`) against a live server and a real agent,
run as a user runs it: `python -m cloudassist …` in a subprocess, credentials from a temporary HOME's
`~/.aliyun/config.json` or the environment, the endpoint from `--endpoint` or `CLOUDASSIST_ENDPOINT`."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs

from acceptance.agents import Agent, clean_env, kill_marked, one_agent, tag
from acceptance.sdk import AK, REGION, SECRET, Server, tea_client
from cloudassist.testing import free_port

pytestmark = pytest.mark.acceptance

CLI = [sys.executable, "-m", "cloudassist"]
#: How the CLI prints an API error: `Error: Code: Message (RequestId)`.
API_ERROR = re.compile(r"^Error: (?P<code>[\w.]+): .+ \((?P<request_id>[0-9A-F-]{36})\)$")


@pytest.fixture(scope="module")
def agent(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One registered, connected agent for the module; it must exit 0 on SIGTERM with no traceback."""
    with one_agent(server, tmp_path_factory.mktemp("cli-agents"), "cli") as one:
        yield one


def environment(home: Path, **extra: str) -> dict[str, str]:
    """No proxies, no inherited credentials: HOME is `home`; `extra` is added."""
    env = {k: v for k, v in clean_env().items()
           if not k.startswith(("ALIBABA_CLOUD_", "ALIBABACLOUD_", "ALICLOUD_", "CLOUDASSIST_"))}
    return {**env, "HOME": str(home), **extra}


def keyed(server: Server, home: Path) -> dict[str, str]:
    """An environment with the server's test key in the variables and its endpoint in CLOUDASSIST_ENDPOINT."""
    return environment(home, ALIBABA_CLOUD_ACCESS_KEY_ID=AK, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET,
                       CLOUDASSIST_ENDPOINT=server.endpoint)


def cli(env: dict[str, str], *args: str, stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)


def api_error(done: subprocess.CompletedProcess[str]) -> str:
    """The code of the one API error line the CLI printed, which exited 1 with nothing on stdout."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    match = API_ERROR.match(line)
    assert match, line
    return match["code"]


def write_config(home: Path, current: str, *profiles: dict[str, Any]) -> None:
    (home / ".aliyun").mkdir(parents=True, exist_ok=True)
    (home / ".aliyun" / "config.json").write_text(json.dumps({"current": current, "profiles": list(profiles),
                                                              "meta_path": ""}))


def profile(name: str, key: str, secret: str, **extra: str) -> dict[str, Any]:
    """A profile as `aliyun configure` writes it (AK mode), with `extra` keys."""
    return {"name": name, "mode": "AK", "access_key_id": key, "access_key_secret": secret, "sts_token": "",
            "region_id": REGION, "output_format": "json", "language": "en", "site": "", "retry_timeout": 0,
            "retry_count": 0, **extra}


# --- cloudassist run -------------------------------------------------------------------------------------------

def test_a_command_that_succeeds_prints_its_output_and_exits_zero(server: Server, agent: Agent, tmp_path: Path) -> None:
    """`run -i ID -- COMMAND` on a real agent: each status change on stderr (stdout is not a terminal), the
    output under the instance's headline on stdout, a summary, exit status 0."""
    marker = tag()
    done = cli(keyed(server, tmp_path), "run", "-i", agent.instance_id, "--", f"echo hello-{marker}; echo 'a  b'")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"── {agent.instance_id}  Success  exit 0\nhello-{marker}\na  b\n"
    assert f"{agent.instance_id}  Success  exit 0" in done.stderr
    assert re.search(r"1 instance: 1 Success  \(t-\w+\)", done.stderr), done.stderr


def test_a_failing_command_exits_three_with_its_exit_code_and_output(server: Server, agent: Agent,
                                                                    tmp_path: Path) -> None:
    """A non-zero exit on the instance: exit status 3, the instance's status, exit code, error and output."""
    done = cli(keyed(server, tmp_path), "run", "-i", agent.instance_id, "--", "echo oops >&2; exit 4")
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.startswith(f"── {agent.instance_id}  Failed  exit 4  ExitCodeNonzero")
    assert "oops" in done.stdout
    assert "1 instance: 1 Failed" in done.stderr
    quiet = cli(keyed(server, tmp_path), "run", "-o", "none", "-i", agent.instance_id, "--", "exit 1")
    assert (quiet.returncode, quiet.stdout) == (3, "")


def stuck(process: subprocess.Popen[bytes]) -> str:
    """The signal masks of a CLI that did not exit on SIGINT; SIGABRT then ends it, and dumps its Python stack
    onto its stderr (PYTHONFAULTHANDLER is in its environment)."""
    status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
    masks = ", ".join(line for line in status if line.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn")))
    process.send_signal(signal.SIGABRT)
    process.wait(10)
    return masks


def test_an_interrupted_run_exits_130_and_says_the_task_goes_on(server: Server, agent: Agent, tmp_path: Path) -> None:
    """Ctrl-C while the command runs: exit status 130 and the InvokeId with how to stop it; the task still
    runs (then `stop` ends it)."""
    marker = tag()
    env = keyed(server, tmp_path)
    try:
        with open(tmp_path / "stderr", "wb") as errors:
            process = subprocess.Popen([*CLI, "run", "-i", agent.instance_id, "--", f"sleep 1000.{marker}"],
                                       env={**env, "PYTHONFAULTHANDLER": "1"}, stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + 60
        while "Running" not in (tmp_path / "stderr").read_text():
            assert process.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "never ran"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        try:
            status = process.wait(30)
        except subprocess.TimeoutExpired:
            masks = stuck(process)
            pytest.fail(f"no exit 30 s after SIGINT ({masks}); its stderr:\n{(tmp_path / 'stderr').read_text()}")
        assert status == 130
        said = (tmp_path / "stderr").read_text()
        invoke_id = re.search(r"interrupted; (t-\w+) goes on \(`cloudassist stop \1` stops it\)", said)
        assert invoke_id, said
        assert "Traceback" not in said
        [result] = json.loads(cli(env, "results", invoke_id[1], "--json").stdout)
        assert result["InvocationStatus"] == "Running"
        assert cli(env, "stop", invoke_id[1]).returncode == 0
    finally:
        kill_marked(f"1000.{marker}")


def test_json_output_has_every_option_applied(server: Server, agent: Agent, tmp_path: Path) -> None:
    """-o json: the task's results with decoded output; the script comes from stdin (-f -), with a parameter,
    a working directory and a timeout, and runs as a task with the given name kept as a command."""
    name = f"cli-{tag()}"
    script = "pwd; echo 'n={{n}}'; printf 'no newline'"
    done = cli(keyed(server, tmp_path), "run", "-i", agent.instance_id, "-f", "-", "-p", "n=ü 1", "--workdir", "/tmp",
               "--timeout", "30", "--name", name, "--keep-command", "-o", "json", stdin=script)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    [result] = answer["InvocationResults"]
    assert result["InvokeId"] == answer["InvokeId"]
    assert (result["InstanceId"], result["InvocationStatus"], result["ExitCode"]) == (agent.instance_id, "Success", 0)
    assert result["Output"] == "/tmp\nn=ü 1\nno newline"

    listed = cli(keyed(server, tmp_path), "commands", "--name", name, "--json")
    assert listed.returncode == 0, listed.stderr
    [command] = json.loads(listed.stdout)
    assert (command["Name"], command["Timeout"], command["WorkingDir"]) == (name, 30, "/tmp")
    assert command["CommandContent"] == script


def test_run_by_tag_reaches_the_tagged_instance(server: Server, agent: Agent, tmp_path: Path) -> None:
    """--tag k=v runs on the instances carrying the tag (ResourceTag), no instance id given; --enable-parameter
    substitutes the built-in {{ACS::InstanceId}}."""
    marker = tag()
    tea = tea_client(server.endpoint)
    tea.tag_resources(ecs.TagResourcesRequest(region_id=REGION, resource_type="managedinstance",
                                              resource_id=[agent.instance_id],
                                              tag=[ecs.TagResourcesRequestTag(key="cli", value=marker)]))
    done = cli(keyed(server, tmp_path), "run", "--tag", f"cli={marker}", "--enable-parameter", "-o", "json", "--",
               "echo tagged {{ACS::InstanceId}}")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["InvocationResults"]
    assert (result["InstanceId"], result["Output"]) == (agent.instance_id, f"tagged {agent.instance_id}\n")

    shown = cli(keyed(server, tmp_path), "instances", "--tag", f"cli={marker}")
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.strip().splitlines()
    assert header.split("\t")[:3] == ["InstanceId", "Name", "Hostname"]
    fields = row.split("\t")
    assert fields[0] == agent.instance_id
    assert "online" in fields
    assert f"cli={marker}" in fields
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields[7]), fields  # the last heart-beat


def test_on_a_terminal_the_progress_is_a_live_table(server: Server, agent: Agent, tmp_path: Path) -> None:
    """With stdout a terminal: a table of instance, status, exit code and the output's last line, redrawn while
    the command runs (its streamed output seen before the end), then the output."""
    marker = tag()
    leader, follower = pty.openpty()
    with open(tmp_path / "stderr", "wb") as errors:
        process = subprocess.Popen([*CLI, "run", "-i", agent.instance_id, "--interval", "0.2", "--",
                                    f"echo first-{marker}; sleep 3; echo last-{marker}"],
                                   env={**keyed(server, tmp_path), "COLUMNS": "160", "TERM": "xterm"},
                                   stdin=subprocess.DEVNULL, stdout=follower, stderr=errors)
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end closed: the command ended
                break
            if not chunk:
                break
            screen += chunk
    os.close(leader)
    assert process.wait(30) == 0, (tmp_path / "stderr").read_text()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode("utf-8", errors="replace"))
    assert "Instance" in text
    assert "Output (last line)" in text
    running = text.index("Running")
    assert f"first-{marker}" in text[running:text.index("1/1 done")]  # streamed while it ran
    assert re.search(rf"{agent.instance_id}\s*│\s*Success\s*│\s*0\s*│", text), text
    assert f"last-{marker}" in text


def test_no_wait_prints_the_invoke_id_and_results_wait_for_it(server: Server, agent: Agent, tmp_path: Path) -> None:
    """--no-wait prints only the InvokeId; `results ID --wait` waits, then lists it (exit 0 on success);
    `invocations` finds it by id."""
    env = keyed(server, tmp_path)
    started = cli(env, "run", "--no-wait", "-i", agent.instance_id, "--", "sleep 1; echo later")
    assert started.returncode == 0, started.stderr
    invoke_id = started.stdout.strip()
    assert re.fullmatch(r"t-\w+", invoke_id)
    waited = cli(env, "results", invoke_id, "--wait", "--json")
    assert waited.returncode == 0, waited.stderr
    [result] = json.loads(waited.stdout)
    assert (result["InvocationStatus"], result["Output"]) == ("Success", "later\n")
    full = cli(env, "results", invoke_id, "--full")
    assert full.stdout == f"── {agent.instance_id}  Success  exit 0\nlater\n"

    listed = cli(env, "invocations", "--invoke-id", invoke_id, "--json")
    [invocation] = json.loads(listed.stdout)
    assert (invocation["InvokeId"], invocation["InvocationStatus"]) == (invoke_id, "Success")
    assert invocation["CommandContent"] == "sleep 1; echo later"


def test_stop_ends_a_running_command(server: Server, agent: Agent, tmp_path: Path) -> None:
    """`stop ID` stops a running task; `results ID --wait` then exits 3 (it did not succeed)."""
    marker = tag()
    env = keyed(server, tmp_path)
    try:
        invoke_id = cli(env, "run", "--no-wait", "-i", agent.instance_id, "--", f"sleep 1000.{marker}").stdout.strip()
        deadline = time.monotonic() + 60
        while '"Running"' not in cli(env, "results", invoke_id, "--json").stdout:
            assert time.monotonic() < deadline, "never ran"
            time.sleep(0.3)
        stopped = cli(env, "stop", invoke_id)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith(f"stopping {invoke_id}")
        waited = cli(env, "results", invoke_id, "--wait", "--json")
        assert waited.returncode == 3, waited.stdout + waited.stderr
        assert json.loads(waited.stdout)[0]["InvocationStatus"] == "Terminated"
    finally:
        kill_marked(f"1000.{marker}")


def test_send_file_writes_the_file_and_reports_each_instance(server: Server, agent: Agent, tmp_path: Path) -> None:
    """`send-file SOURCE DIR -i ID` puts the bytes on the instance with the given mode; exit 0."""
    source = tmp_path / "app.conf"
    source.write_bytes(b"key = \xc3\xbc\n\x00binary")
    target = tmp_path / "target"
    done = cli(keyed(server, tmp_path), "send-file", str(source), str(target), "-i", agent.instance_id,
               "--mode", "0640", "--json")
    assert done.returncode == 0, done.stderr
    [record] = json.loads(done.stdout)["InvokeInstances"]
    assert (record["InstanceId"], record["InvocationStatus"]) == (agent.instance_id, "Success")
    assert (target / "app.conf").read_bytes() == source.read_bytes()
    assert (target / "app.conf").stat().st_mode & 0o777 == 0o640


# --- listings and paging ---------------------------------------------------------------------------------------

def test_all_follows_next_token_and_one_page_says_there_is_more(server: Server, agent: Agent, tmp_path: Path) -> None:
    """Three tasks with one tag: `--max-results 1` lists one and prints the NextToken on stderr; `--all` lists
    the three, newest first, as a table whose first column is the InvokeId."""
    marker = tag()
    env = keyed(server, tmp_path)
    ids = [cli(env, "run", "--no-wait", "-i", agent.instance_id, "--task-tag", f"batch={marker}", "--",
               "true").stdout.strip() for _ in range(3)]
    one = cli(env, "invocations", "--tag", f"batch={marker}", "--max-results", "1", "--json")
    assert len(json.loads(one.stdout)) == 1
    assert re.search(r"^more: --next-token \S+ \(or --all\)$", one.stderr, re.M), one.stderr
    every = cli(env, "invocations", "--tag", f"batch={marker}", "--max-results", "1", "--all")
    assert every.returncode == 0, every.stderr
    assert "more:" not in every.stderr
    rows = every.stdout.strip().splitlines()
    assert rows[0].startswith("InvokeId\tStatus")
    assert sorted(row.split("\t")[0] for row in rows[1:]) == sorted(ids)


def test_activations_and_instances_list_as_json(server: Server, agent: Agent, tmp_path: Path) -> None:
    """`activations --json` and `instances -i ID --json` give the API's items."""
    env = keyed(server, tmp_path)
    tea = tea_client(server.endpoint)
    created = tea.create_activation(ecs.CreateActivationRequest(region_id=REGION, instance_count=3,
                                                                description=f"cli {tag()}")).body
    activations = json.loads(cli(env, "activations", "--activation-id", created.activation_id, "--json").stdout)
    assert [(a["ActivationId"], a["InstanceCount"]) for a in activations] == [(created.activation_id, 3)]
    [instance] = json.loads(cli(env, "instances", "-i", agent.instance_id, "--json").stdout)
    assert (instance["InstanceId"], instance["Connected"]) == (agent.instance_id, True)


# --- credentials and endpoint ----------------------------------------------------------------------------------

def test_a_profile_from_the_config_file_is_used(server: Server, agent: Agent, tmp_path: Path) -> None:
    """An aliyun CLI config in HOME with the key as its current profile and the server in `cloudassist_endpoint`
    works with no variables at all; --profile picks another profile."""
    write_config(tmp_path, "lab", profile("other", "LTAInobody", "x", cloudassist_endpoint=server.endpoint),
                 profile("lab", AK, SECRET, cloudassist_endpoint=server.endpoint))
    done = cli(environment(tmp_path), "instances", "-i", agent.instance_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["InstanceId"] == agent.instance_id
    assert api_error(cli(environment(tmp_path), "instances", "--profile", "other")) == "InvalidAccessKeyId.NotFound"


def test_the_config_file_wins_over_the_environment_and_flags_win_over_both(server: Server, tmp_path: Path) -> None:
    """With a config file naming an unknown key, the key in the variables is not used (the aliyun CLI's order);
    ALIBABA_CLOUD_PROFILE and --profile choose the good profile; --endpoint beats CLOUDASSIST_ENDPOINT."""
    write_config(tmp_path, "stale", profile("stale", "LTAIstale", "x"), profile("good", AK, SECRET))
    env = keyed(server, tmp_path)
    assert api_error(cli(env, "commands")) == "InvalidAccessKeyId.NotFound"
    assert cli({**env, "ALIBABA_CLOUD_PROFILE": "good"}, "commands", "--json").returncode == 0
    dead = f"127.0.0.1:{free_port()}"
    moved = {**env, "CLOUDASSIST_ENDPOINT": dead}
    unreachable = cli(moved, "commands", "--profile", "good")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f"Error: EndpointUnreachable: cannot reach http://{dead}/")
    assert cli(moved, "commands", "--profile", "good", "--endpoint", server.endpoint).returncode == 0


def test_bad_credentials_get_the_apis_error_and_no_secret_is_shown(server: Server, agent: Agent,
                                                                  tmp_path: Path) -> None:
    """An unknown key and a wrong secret: `Code: Message (RequestId)` from the server, exit 1, no traceback and
    never the secret in what is printed."""
    env = keyed(server, tmp_path)
    unknown = {**env, "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIunknown", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sekrit-1"}
    assert api_error(cli(unknown, "run", "-i", agent.instance_id, "--", "true")) == "InvalidAccessKeyId.NotFound"
    wrong = {**env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sekrit-2"}
    done = cli(wrong, "invocations")
    assert api_error(done) == "SignatureDoesNotMatch"
    assert "sekrit" not in done.stdout + done.stderr


def test_an_unsupported_profile_mode_and_missing_credentials_are_one_line(tmp_path: Path) -> None:
    """A RamRoleArn profile is refused by name and mode; no file and no variables say what is missing."""
    write_config(tmp_path, "role", {**profile("role", "LTAIr", "sekrit-3"), "mode": "RamRoleArn",
                                    "ram_role_arn": "acs:ram::1:role/x"})
    done = cli(environment(tmp_path), "invocations")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: profile 'role'")
    assert "mode 'RamRoleArn'" in done.stderr
    assert "sekrit" not in done.stderr
    empty = cli(environment(tmp_path / "nobody"), "invocations")
    assert empty.returncode == 1
    assert "no credentials" in empty.stderr
    assert "Traceback" not in done.stderr + empty.stderr


def test_usage_errors_exit_two(server: Server, tmp_path: Path) -> None:
    """No target, no command, or a malformed --tag: exit status 2 before any call."""
    env = keyed(server, tmp_path)
    assert cli(env, "run", "--", "true").returncode == 2
    assert cli(env, "run", "-i", "mi-x").returncode == 2
    assert cli(env, "run", "--tag", "novalue", "--", "true").returncode == 2
