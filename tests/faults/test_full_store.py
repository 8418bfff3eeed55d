"""A server whose store cannot write (its disk is full) answers ServiceUnavailable, and counts none of it
against its callers (found by the chaos run, bench/chaos.py, disk-full).

A full disk is the kernel's own refusal: the server process's file-size limit is set to 0 from outside
(`prlimit`), so every write to a regular file fails (EFBIG, as ENOSPC would) and SQLite cannot commit, until
the limit is lifted again ("space came back"). Loopback is not exempt from the throttle here, as a client
behind no proxy would not be.
"""

from __future__ import annotations

import resource
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from luban import Agent, Ecs, create_activation

from cloudassist.testing import LiveServer, signed_query

LIMIT = 5
PARAMS = {"Action": "DescribeCommands", "RegionId": "cn-hangzhou", "Version": "2014-05-26"}


@contextmanager
def disk_full(server: LiveServer) -> Iterator[None]:
    """Every write of the server process to a file fails while inside."""
    assert server.process is not None
    pid = server.process.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


def test_callers_are_not_throttled_for_a_store_that_could_not_write(start: Callable[..., LiveServer]) -> None:
    """While the disk is full, twice the failure limit of correctly signed API calls and of registrations with
    a valid activation code get ServiceUnavailable (503, each face's shape); once space is back, the same
    address is served at once (it is not refused as Throttling for failures that were the server's), and the
    log counts no authentication failures."""
    server = start(auth_failures_per_minute=LIMIT, auth_throttle_exempt="")
    ecs = Ecs(server.endpoint)
    activation = create_activation(ecs, 2)
    ecs.close()
    register = f"https://{server.agent_endpoint}/luban/api/instance/register"
    body = Agent(server).registration_body(activation.activation_id, activation.code)

    def api_call(http: httpx.Client) -> httpx.Response:
        return http.post(f"http://{server.endpoint}/?{signed_query(PARAMS, server.access_key_id, server.secret)}")

    def registration(http: httpx.Client) -> httpx.Response:
        return http.post(register, content=body)

    tls = ssl.create_default_context(cafile=str(server.data_dir / "ca.pem"))
    with httpx.Client(timeout=30, trust_env=False, verify=tls) as http:
        with disk_full(server):
            api_answers = [api_call(http) for _ in range(2 * LIMIT)]
            agent_answers = [registration(http) for _ in range(2 * LIMIT)]
        assert {(a.status_code, a.json()["Code"]) for a in api_answers} == {(503, "ServiceUnavailable")}
        assert {(a.status_code, a.json()["errCode"]) for a in agent_answers} == {(503, "ServiceUnavailable")}
        answered = api_call(http)
        assert answered.status_code == 200, answered.text
        registered = registration(http)
        assert (registered.status_code, registered.json()["code"]) == (200, 200), registered.text
    assert "authentication failures" not in server.log()
