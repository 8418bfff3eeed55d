"""ClientToken across server processes: two `cloudassist server` processes share one store (SQLite file or
PostgreSQL database), and concurrent duplicates of one request, sent to both at once, do the work once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from secwire import REGION, acs_call, acs_client, send_params, v1_signed

from conftest import Deployment

LIST = {"RegionId": REGION}


def test_concurrent_duplicates_on_two_servers_create_one_command(deployment: Deployment) -> None:
    """Sixteen CreateCommand requests with one ClientToken and the same parameters, half to each server process,
    all at once: every one answers the same CommandId, and exactly one command exists. The same token with other
    parameters is IdempotentParameterMismatch on either process."""
    name = f"idem-{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex
    params = {**LIST, "Name": name, "Type": "RunShellScript", "CommandContent": "ZWNobyBoaQ==", "ClientToken": token}

    def create(i: int) -> httpx.Response:
        server = deployment.servers[i % 2]
        return send_params(server.endpoint, v1_signed("CreateCommand", params))

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(create, range(16)))
    assert [r.status_code for r in responses] == [200] * 16, [r.text for r in responses if r.status_code != 200]
    assert len({r.json()["CommandId"] for r in responses}) == 1
    found = acs_call(acs_client(), deployment.endpoint, "DescribeCommands", {**LIST, "Name": name})
    assert len(found["Commands"]["Command"]) == 1
    for server in deployment.servers:
        other = send_params(server.endpoint, v1_signed("CreateCommand", {**params, "CommandContent": "ZGF0ZQ=="}))
        assert (other.status_code, other.json()["Code"]) == (403, "IdempotentParameterMismatch")
