"""Fixtures of the acceptance tier: a live `cloudassist server` process per engine for the whole session,
and the official SDKs pointed at it in their three flavours.

    server      a LiveServer on SQLite (its data directory) or on a PostgreSQL database made for it,
                with its store opened from the test process to register managed instances
    core        aliyunsdkcore's AcsClient with aliyunsdkecs request classes (RPC v1, HMAC-SHA1)
    tea         alibabacloud_ecs20140526's Client, parametrized: "v3" (ACS3-HMAC-SHA256, the default)
                and "v2" (`Config.signature_algorithm='v2'`, legacy RPC HMAC-SHA1)
    tea_v3      the same Client with V3 signing only, where one tea flavour is enough

Every test also checks, on its way out, that the server process is alive and logged no traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from alibabacloud_ecs20140526.client import Client as EcsClient

from acceptance.sdk import Core, Server, running_server, tea_client


@pytest.fixture(scope="session", autouse=True)
def _no_proxy() -> Iterator[None]:
    """aliyunsdkcore sends through HTTP(S)_PROXY and ignores NO_PROXY: no proxy variable may be set."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.lower().endswith("_proxy"):
                patch.delenv(name)
        yield


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One live server per engine, shared by every test (each works on instances, commands and tasks of
    its own): SQLite in its data directory, or a PostgreSQL database `acc_<random>` created for it and
    dropped, after the server stopped, at teardown."""
    with running_server(request.param, tmp_path_factory.mktemp(f"server-{request.param}")) as server:
        yield server


@pytest.fixture(autouse=True)
def _server_healthy(server: Server) -> Iterator[None]:
    """After each test: the server process still runs and logged no traceback while the test ran."""
    before = len(server.log())
    yield
    assert server.live.process is not None
    assert server.live.process.poll() is None, f"the server exited:\n{server.log()[before:]}"
    new = server.log()[before:]
    assert "Traceback" not in new, f"the server logged a traceback:\n{new}"


@pytest.fixture
def core(server: Server) -> Core:
    """aliyunsdkcore (RPC signature v1, HMAC-SHA1), pointed at the server with `set_endpoint`."""
    return Core(server.endpoint)


@pytest.fixture(params=["v3", "v2"])
def tea(server: Server, request: pytest.FixtureRequest) -> EcsClient:
    """alibabacloud_ecs20140526's Client: default V3 signing (ACS3-HMAC-SHA256), or `signature_algorithm='v2'`."""
    return tea_client(server.endpoint, None if request.param == "v3" else "v2")


@pytest.fixture
def tea_v3(server: Server) -> EcsClient:
    """The tea Client with its default V3 signing, where one flavour is enough."""
    return tea_client(server.endpoint)
