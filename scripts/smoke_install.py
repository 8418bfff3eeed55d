"""The plain installs, proven end to end (run by scripts/smoke-install, which makes the two venvs).

Run by the python of a venv holding a plain `pip install .` of cloudassist (no extras), with the path of a
second venv holding only `pip install ./agent-package`: the server starts, serves /healthz, an activation is
made through the API, the agent-only venv's `cloudassist-agent` registers and runs, and a RunCommand comes
back Success with its output, and so does `cloudassist run` (the CLI's API client). Uses nothing but the
standard library and cloudassist itself.

    python scripts/smoke_install.py AGENT_VENV
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from cloudassist.testing import LiveServer, wait_for

REGION = "cn-hangzhou"


def main(agent_venv: Path) -> None:
    agent_bin = agent_venv / "bin"
    for command in (["cloudassist", "--help"], ["cloudassist", "keys", "--help"], ["cloudassist", "up", "--help"],
                    ["cloudassist", "run", "--help"]):
        subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], check=True,
                       stdout=subprocess.DEVNULL)
    server_only = subprocess.run(
        [str(agent_bin / "python"), "-c",
         "import importlib.util as u; print([m for m in ('starlette', 'uvicorn', 'sqlalchemy', 'cryptography', "
         "'cloudassist.server') if u.find_spec(m.split('.')[0]) and (m != 'cloudassist.server' or u.find_spec(m))])"],
        check=True, capture_output=True, text=True).stdout.strip()
    assert server_only == "[]", f"the agent-only install holds server libraries: {server_only}"
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp) / "server").start()
        agent: subprocess.Popen[bytes] | None = None
        try:
            with urllib.request.urlopen(f"http://{server.endpoint}/healthz", timeout=5) as answer:
                assert answer.status == 200
            made = server.api(REGION, Action="CreateActivation", InstanceCount="1")
            state = Path(tmp) / "agent"
            subprocess.run(
                [str(agent_bin / "cloudassist-agent"), "register", "--server", server.agent_endpoint,
                 "--ca-file", str(server.data_dir / "ca.pem"), "--region", REGION,
                 "--activation-id", made["ActivationId"], "--activation-code", made["ActivationCode"],
                 "--state-dir", str(state), "--name", "smoke"],
                check=True,
            )
            agent = subprocess.Popen([str(agent_bin / "cloudassist-agent"), "run", "--state-dir", str(state)])
            instance = wait_for(
                lambda: next(iter(_items(server.api(REGION, Action="DescribeManagedInstances")["Instances"])), None),
                20, "the registered instance")
            wait_for(lambda: _items(server.api(REGION, Action="DescribeCloudAssistantStatus",
                                               **{"InstanceId.1": instance["InstanceId"]})
                                    ["InstanceCloudAssistantStatusSet"])[0]["CloudAssistantStatus"] == "true",
                     30, "the agent online")
            run = server.api(REGION, Action="RunCommand", Type="RunShellScript", CommandContent="echo smoke-$((6*7))",
                             **{"InstanceId.1": instance["InstanceId"]})
            result = wait_for(lambda: _finished(server, run["InvokeId"]), 30, "the command's result")
            assert result["InvocationStatus"] == "Success", result
            assert result["Output"].strip() == "smoke-42", result
            cli = subprocess.run(
                [str(Path(sys.executable).parent / "cloudassist"), "run", "-i", instance["InstanceId"], "-o", "json",
                 "--endpoint", server.endpoint, "--", "echo cli-$((6*7))"],
                env={"PATH": "/usr/bin:/bin", "HOME": tmp, "ALIBABA_CLOUD_ACCESS_KEY_ID": server.access_key_id,
                     "ALIBABA_CLOUD_ACCESS_KEY_SECRET": server.secret},
                check=True, capture_output=True, text=True, timeout=60)
            assert json.loads(cli.stdout)["InvocationResults"][0]["Output"] == "cli-42\n", cli.stdout
            print(f"plain install: server, agent-only install, RunCommand and `cloudassist run` on "
                  f"{instance['InstanceId']}: ok")
            _console(server)
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(15)
            server.stop()


def _console(server: LiveServer) -> None:
    """The web console's sign-in page, script and stylesheet come from the plain install (templates and static
    files are in the wheel)."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for path, needle in (("signin", b"AccessKeySecret"), ("static/console.js", b"EventSource"),
                         ("static/console.css", b"--accent"), ("static/terminal.js", b"encodeFrame"),
                         ("static/xterm/xterm.js", b"Terminal"), ("static/xterm/addon-fit.js", b"FitAddon"),
                         ("static/xterm/xterm.css", b".xterm")):
        with opener.open(f"http://{server.endpoint}/console/{path}", timeout=10) as answer:
            assert needle in answer.read(), path
    print("plain install: the web console's pages and files: ok")


def _items(value: Any) -> list[Any]:
    """A JSON list as the API wraps it (`{"Instance": [...]}`) or not (`[...]`)."""
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    return list(value)


def _finished(server: LiveServer, invoke_id: str) -> dict[str, str] | None:
    results = _items(server.api(REGION, Action="DescribeInvocationResults", InvokeId=invoke_id,
                                ContentEncoding="PlainText")["Invocation"]["InvocationResults"])
    if results and results[0]["InvocationStatus"] not in ("Pending", "Running"):
        return dict(results[0])
    time.sleep(0.1)
    return None


if __name__ == "__main__":
    main(Path(sys.argv[1]))
