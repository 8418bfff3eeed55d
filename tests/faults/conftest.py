"""The fault suite: real `cloudassist server` processes attacked over real sockets.

Each test starts its own server (SQLite), with the settings it needs in its environment and, where the
test is about descriptors, a small open-file limit set in the child. The official agent is played by the
conformance tier's `luban.Agent`. After each test the server must still run and have logged no traceback.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudassist.testing import LiveServer


def _load_luban() -> None:
    """The conformance tier's `luban` (the official agent's wire), loaded by path: putting its directory on
    sys.path would let its conftest shadow other tiers' `from conftest import …`."""
    if "luban" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location("luban", Path(__file__).parent.parent / "conformance" / "luban.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["luban"] = module
    spec.loader.exec_module(module)


_load_luban()

for _name in [n for n in os.environ if n.lower().endswith("_proxy")]:
    del os.environ[_name]  # traffic to 127.0.0.1 must not go through a proxy


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start a server with `CLOUDASSIST_<NAME>=value` for each keyword (and `open_files=N`); each is checked
    on the way out: still running, no traceback in its log."""
    started: list[LiveServer] = []

    def make(open_files: int | None = None, **settings: object) -> LiveServer:
        env = {f"CLOUDASSIST_{name.upper()}": str(value) for name, value in settings.items()}
        live = LiveServer(tmp_path / f"server{len(started)}", extra_env=env, open_files=open_files)
        started.append(live)
        return live.start()

    try:
        yield make
    finally:
        for live in started:
            assert live.process is not None
            alive = live.process.poll() is None
            log = live.log()
            live.stop()
            assert alive, f"the server exited:\n{log[-3000:]}"
            assert "Traceback" not in log, f"the server logged a traceback:\n{log[-5000:]}"
