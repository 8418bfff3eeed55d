"""The server process: start-up, the generated key, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cloudassist.testing import LiveServer, free_port, signed_query


def test_sigterm_and_sigint_shut_the_server_down_cleanly(tmp_path: Path) -> None:
    """SIGTERM and SIGINT each end the server with exit status 0 and a log without tracebacks."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = LiveServer(tmp_path / sig.name).start()
        assert server.process is not None
        server.process.send_signal(sig)
        assert server.process.wait(10) == 0
        assert server.stop() == 0
        assert "Traceback" not in server.log()


def test_first_start_without_a_configured_key_creates_one_and_prints_it_once(tmp_path: Path) -> None:
    """With no key configured the server creates one, prints it once, stores it 0600, and it works."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CLOUDASSIST_ACCESS_KEY") and not k.lower().endswith("_proxy")}
    outputs = []
    for _ in range(2):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "cloudassist", "server", "--data-dir", str(tmp_path),
                                 "--listen", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                break
        key_file = tmp_path / "access-key.txt"
        values = dict(line.split("=", 1) for line in key_file.read_text().split())
        query = signed_query({"Action": "DescribeCommands", "RegionId": "cn-hangzhou"},
                             values["CLOUDASSIST_ACCESS_KEY_ID"], values["CLOUDASSIST_ACCESS_KEY_SECRET"])
        response = httpx.post(f"http://127.0.0.1:{port}/?{query}")
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        outputs.append("".join(lines))
        assert response.status_code == 200, response.text
        assert key_file.stat().st_mode & 0o777 == 0o600
    assert "shown once" in outputs[0]
    assert "shown once" not in outputs[1], "the second start must not create or print a key"


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_server_is_ready_quickly_on_an_empty_store(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A server on an empty store accepts connections within a few seconds (measured: under one on an idle box)."""
    db = "" if engine == "sqlite" else str(request.getfixturevalue("pg_url"))
    started = time.monotonic()
    server = LiveServer(tmp_path, db=db).start()
    elapsed = time.monotonic() - started
    server.stop()
    # generous bound for a loaded CI machine; bench/startup.py prints the real figure
    assert elapsed < 5, elapsed
