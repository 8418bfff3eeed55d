"""Issue 8, point 5: failed registrations and authentications are limited per source address.

An address that failed too often is refused in its face's own error shape (the agent face: 429 with
errCode Throttling and Retry-After; the API: Throttling.User with x-acs-retry-after) before anything is
checked, so it never waits for the database's write lock; other addresses are served as before; and the
log says it in a few lines with counts. Loopback is exempt by default (a proxy on the host makes every
client 127.0.0.1), so these servers exempt nothing and a second address, 127.0.0.2, plays the bystander.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from luban import Agent, Ecs, create_activation

from cloudassist.api.agent.app import create_agent_app
from cloudassist.api.agent.hub import KickHub
from cloudassist.services.context import Context
from cloudassist.testing import LiveServer, signed_query

LIMIT = 10
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
#: Well-formed, so the server looks its activation up (in a write transaction) before refusing it.
WRONG = json.dumps({"activationId": "act-0000000000000000", "activationCode": "a-wrong", "regionId": "cn-hangzhou",
                    "machineId": "m", "hostname": "h", "osType": "linux",
                    "publicKey": base64.b64encode(_KEY).decode()}).encode()


def client(source: str, *, tls: bool = True) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source, verify=False) if tls else \
        httpx.HTTPTransport(local_address=source)
    return httpx.Client(transport=transport, timeout=10, trust_env=False)


def test_an_address_that_fails_to_register_too_often_is_refused_and_others_are_not(
    start: Callable[..., LiveServer],
) -> None:
    """After LIMIT refused registrations, 127.0.0.1 gets 429 Throttling with Retry-After, even for a valid
    activation code, while 127.0.0.2 registers with it; the log counts the failures in a line or two."""
    server = start(auth_failures_per_minute=LIMIT, auth_throttle_exempt="")
    url = f"https://{server.agent_endpoint}/luban/api/instance/register"
    ecs = Ecs(server.endpoint)
    activation = create_activation(ecs, 2)
    good = Agent(server).registration_body(activation.activation_id, activation.code)
    with client("127.0.0.1") as attacker, client("127.0.0.2") as bystander:
        for _ in range(LIMIT):
            assert 400 <= attacker.post(url, content=WRONG).status_code < 500
        refused = attacker.post(url, content=good)
        assert refused.status_code == 429
        assert refused.json()["errCode"] == "Throttling"
        assert int(refused.headers["retry-after"]) >= 1
        for _ in range(50):
            assert attacker.post(url, content=WRONG).status_code == 429
        assert bystander.post(url, content=good).json()["code"] == 200
    ecs.close()
    failures = [line for line in server.log().splitlines() if "agent face: authentication failures" in line]
    refusals = [line for line in server.log().splitlines() if "refused after too many" in line]
    assert 1 <= len(failures) <= 2, failures
    assert 1 <= len(refusals) <= 2, refusals
    assert "127.0.0.1" in failures[0]


def test_an_address_that_fails_api_signatures_too_often_is_throttled_and_others_are_not(
    start: Callable[..., LiveServer],
) -> None:
    """After LIMIT calls with a wrong secret, 127.0.0.1 gets Throttling.User (400, x-acs-retry-after) even when
    it signs correctly; 127.0.0.2 is answered."""
    server = start(auth_failures_per_minute=LIMIT, auth_throttle_exempt="")
    params = {"Action": "DescribeCommands", "RegionId": "cn-hangzhou", "Version": "2014-05-26"}
    base = f"http://{server.endpoint}/"
    with client("127.0.0.1", tls=False) as attacker, client("127.0.0.2", tls=False) as bystander:
        for _ in range(LIMIT):
            wrong = attacker.post(f"{base}?{signed_query(params, server.access_key_id, 'not-the-secret')}")
            assert wrong.json()["Code"] == "SignatureDoesNotMatch"
        refused = attacker.post(f"{base}?{signed_query(params, server.access_key_id, server.secret)}")
        assert (refused.status_code, refused.json()["Code"]) == (400, "Throttling.User")
        assert int(refused.headers["x-acs-retry-after"]) >= 1
        answered = bystander.post(f"{base}?{signed_query(params, server.access_key_id, server.secret)}")
        assert answered.status_code == 200
    assert "API face: authentication failures" in server.log()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_refused_registrations_never_wait_for_the_write_lock(ctx: Context) -> None:
    """While another writer holds the store's write lock, 200 registrations from an address past its limit
    are all answered 429 within two seconds: refusing them touches no database."""
    ctx = replace(ctx, settings=ctx.settings.replace(auth_failures_per_minute=LIMIT, auth_throttle_exempt=()))
    app = create_agent_app(ctx, KickHub())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://agent") as agent:
        for _ in range(LIMIT):
            assert (await agent.post("/luban/api/instance/register", content=WRONG)).status_code == 404
        async with ctx.store.write(), asyncio.timeout(2):
            answers = await asyncio.gather(
                *(agent.post("/luban/api/instance/register", content=WRONG) for _ in range(200))
            )
    assert {answer.status_code for answer in answers} == {429}
