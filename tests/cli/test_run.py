"""`cloudassist run` interrupted (SIGINT, as Ctrl-C sends) while an API call is still unanswered: it exits 130 at
once with what became of the task, rather than after the client's 30 s timeout or with click's `Aborted!`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

#: Well under the CLI's HTTP timeout (30 s): an exit within it was not the held call timing out.
PROMPT = 10.0


class FakeApi:
    """An endpoint that answers RunCommand with an InvokeId and DescribeInvocationResults with one Running
    execution, except `held`: that call is read, `arrived` is set, and its answer never comes."""

    def __init__(self, held: str) -> None:
        self.held = held
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.http.daemon_threads = True

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.http.server_port}"

    def answer(self, action: str) -> dict[str, object]:
        if action == "RunCommand":
            return {"RequestId": "r-1", "InvokeId": "t-held", "CommandId": "c-held"}
        running = {"InvokeId": "t-held", "InstanceId": "mi-held", "InvocationStatus": "Running"}
        return {"RequestId": "r-2", "Invocation": {"InvocationResults": {"InvocationResult": [running]}}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                action = form["Action"][0]
                if action == api.held:
                    api.arrived.set()
                    api.release.wait(60)
                    return
                body = json.dumps(api.answer(action)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        return Handler


@pytest.fixture
def fake_api(request: pytest.FixtureRequest) -> Iterator[FakeApi]:
    api = FakeApi(request.param)
    thread = threading.Thread(target=api.http.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.release.set()
        api.http.shutdown()
        api.http.server_close()


def interrupted_run(api: FakeApi, home: Path, *args: str) -> tuple[int, str]:
    """Start `cloudassist run` (or the command `args` give) against `api`, SIGINT it once the held call has
    arrived; its exit status (within PROMPT s of the signal) and its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(HOME=str(home), ALIBABA_CLOUD_ACCESS_KEY_ID="AKfake", ALIBABA_CLOUD_ACCESS_KEY_SECRET="secret",
               CLOUDASSIST_ENDPOINT=api.endpoint)
    command = args or ("run", "-i", "mi-held", "--", "sleep 1000")
    process = subprocess.Popen([sys.executable, "-m", "cloudassist", *command],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert api.arrived.wait(60), f"{api.held} never called"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=PROMPT)
        return process.returncode, stderr
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("fake_api", ["DescribeInvocationResults"], indirect=True)
def test_ctrl_c_during_an_unanswered_poll_says_the_task_goes_on(fake_api: FakeApi, tmp_path: Path) -> None:
    status, stderr = interrupted_run(fake_api, tmp_path)
    assert status == 130, stderr
    assert "interrupted; t-held goes on (`cloudassist stop t-held` stops it)" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("fake_api", ["RunCommand"], indirect=True)
def test_ctrl_c_before_run_command_answered_says_the_task_may_have_started(fake_api: FakeApi, tmp_path: Path) -> None:
    status, stderr = interrupted_run(fake_api, tmp_path)
    assert status == 130, stderr
    assert "interrupted before RunCommand answered; the task may have started" in stderr
    assert "Traceback" not in stderr
    assert "Aborted!" not in stderr


@pytest.mark.parametrize("fake_api", ["DescribeInvocationResults"], indirect=True)
def test_ctrl_c_while_results_waits_says_the_task_goes_on(fake_api: FakeApi, tmp_path: Path) -> None:
    """`results T --wait` is `run`'s waiting alone: Ctrl-C there is 130 and the same words, not `Aborted!` and 1."""
    status, stderr = interrupted_run(fake_api, tmp_path, "results", "t-held", "--wait")
    assert status == 130, stderr
    assert "interrupted; t-held goes on (`cloudassist stop t-held` stops it)" in stderr
    assert "Aborted!" not in stderr
