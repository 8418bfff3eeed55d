"""When a signed request may be used: the clock-skew window and single-use nonces, across server processes.

The window is the default 15 minutes (CLOUDASSIST_SIGNATURE_WINDOW_SECONDS=900): 14 minutes either way
must pass, 16 minutes either way must not.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from datetime import timedelta

import pytest
from secwire import HTTP, REGION, accepted, acs_call, acs_client, now, refused, send_params, v1_signed, v3_signed

from conftest import Deployment

LIST = {"RegionId": REGION}
SKEWS = {"16 min in the past": -16, "16 min in the future": 16, "14 min in the past": -14, "14 min in the future": 14}


@pytest.mark.parametrize("skew", list(SKEWS))
def test_v1_timestamp_window(deployment: Deployment, skew: str) -> None:
    """A v1 request whose Timestamp is 16 minutes off the server's clock (past or future) is refused 400
    InvalidTimeStamp.Expired; 14 minutes off (past or future) is accepted; a current one always is."""
    minutes = SKEWS[skew]
    response = send_params(deployment.endpoint, v1_signed("DescribeCommands", LIST,
                                                          timestamp=now() + timedelta(minutes=minutes)))
    if abs(minutes) > 15:
        refused(response, "InvalidTimeStamp.Expired", 400)
    else:
        accepted(response)
    accepted(send_params(deployment.endpoint, v1_signed("DescribeCommands", LIST)))


@pytest.mark.parametrize("skew", list(SKEWS))
def test_v3_date_window(deployment: Deployment, skew: str) -> None:
    """A V3 request whose x-acs-date is 16 minutes off the server's clock (past or future) is refused 400
    InvalidTimeStamp.Expired; 14 minutes off (past or future) is accepted; a current one always is."""
    minutes = SKEWS[skew]
    endpoint = deployment.endpoint
    response = v3_signed(endpoint, "DescribeCommands", LIST, date=now() + timedelta(minutes=minutes)).send(endpoint)
    if abs(minutes) > 15:
        refused(response, "InvalidTimeStamp.Expired", 400)
    else:
        accepted(response)
    accepted(v3_signed(endpoint, "DescribeCommands", LIST).send(endpoint))


# ------------------------------------------------------------------------------------------------ replay

def test_v1_replay_to_the_same_server(deployment: Deployment) -> None:
    """The exact same v1-signed request sent twice to one server: the first is accepted, the second is
    refused 400 SignatureNonceUsed; a fresh request (new nonce) is accepted after that."""
    signed = v1_signed("DescribeCommands", LIST)
    accepted(send_params(deployment.endpoint, signed))
    refused(send_params(deployment.endpoint, signed), "SignatureNonceUsed", 400)
    accepted(send_params(deployment.endpoint, v1_signed("DescribeCommands", LIST)))


def test_v3_replay_to_the_same_server(deployment: Deployment) -> None:
    """The exact same V3-signed request sent twice to one server: the first is accepted, the second is
    refused 400 SignatureNonceUsed; a fresh request is accepted after that."""
    endpoint = deployment.endpoint
    signed = v3_signed(endpoint, "DescribeCommands", LIST)
    accepted(signed.send(endpoint))
    refused(signed.send(endpoint), "SignatureNonceUsed", 400)
    accepted(v3_signed(endpoint, "DescribeCommands", LIST).send(endpoint))


@pytest.mark.parametrize("direction", ["primary->secondary", "secondary->primary"])
def test_v1_replay_across_two_server_processes(deployment: Deployment, direction: str) -> None:
    """Two server processes share one store: a v1 request accepted by one is refused 400 SignatureNonceUsed
    when replayed to the other (and each accepts fresh requests)."""
    first, second = deployment.servers if direction == "primary->secondary" else deployment.servers[::-1]
    signed = v1_signed("DescribeCommands", LIST)
    accepted(send_params(first.endpoint, signed))
    refused(send_params(second.endpoint, signed), "SignatureNonceUsed", 400)
    accepted(send_params(second.endpoint, v1_signed("DescribeCommands", LIST)))
    accepted(send_params(first.endpoint, v1_signed("DescribeCommands", LIST)))


def test_v3_replay_across_two_server_processes(deployment: Deployment) -> None:
    """Two server processes share one store: a V3 request accepted by server A is refused 400
    SignatureNonceUsed when replayed to server B. The replay carries A's Host header, which is signed
    (a client cannot know in advance which process will answer it)."""
    a, b = deployment.primary, deployment.secondary
    signed = v3_signed(a.endpoint, "DescribeCommands", LIST)
    accepted(signed.send(a.endpoint))
    refused(signed.send(b.endpoint), "SignatureNonceUsed", 400)
    accepted(v3_signed(b.endpoint, "DescribeCommands", LIST).send(b.endpoint))


def test_replayed_create_command_creates_nothing(deployment: Deployment) -> None:
    """Replaying a state-changing request (CreateCommand) to the other server process is refused 400
    SignatureNonceUsed and creates no second command: exactly one command with that name exists."""
    name = f"replay-{uuid.uuid4().hex[:8]}"
    signed = v1_signed("CreateCommand", {**LIST, "Name": name, "Type": "RunShellScript",
                                         "CommandContent": "ZWNobyBoaQ=="})
    created = accepted(send_params(deployment.primary.endpoint, signed))
    refused(send_params(deployment.secondary.endpoint, signed), "SignatureNonceUsed", 400)
    refused(send_params(deployment.primary.endpoint, signed), "SignatureNonceUsed", 400)
    found = acs_call(acs_client(), deployment.endpoint, "DescribeCommands", {**LIST, "Name": name})
    assert [c["CommandId"] for c in found["Commands"]["Command"]] == [created["CommandId"]]


def test_nonce_is_single_use_even_with_a_new_signature(deployment: Deployment) -> None:
    """A nonce is spent once used: a different, correctly signed request reusing it (other parameters,
    other timestamp) is refused 400 SignatureNonceUsed, on either server process."""
    nonce = uuid.uuid4().hex
    accepted(send_params(deployment.primary.endpoint, v1_signed("DescribeCommands", LIST, nonce=nonce)))
    again = v1_signed("DescribeInvocations", LIST, nonce=nonce, timestamp=now() - timedelta(seconds=30))
    refused(send_params(deployment.primary.endpoint, again), "SignatureNonceUsed", 400)
    again = v1_signed("DescribeInvocations", LIST, nonce=nonce, timestamp=now() - timedelta(seconds=40))
    refused(send_params(deployment.secondary.endpoint, again), "SignatureNonceUsed", 400)
    v3 = v3_signed(deployment.secondary.endpoint, "DescribeCommands", LIST, nonce=nonce)
    refused(v3.send(deployment.secondary.endpoint), "SignatureNonceUsed", 400)


def test_forged_request_does_not_use_up_the_nonce(deployment: Deployment) -> None:
    """A request with a bad signature does not spend its nonce (nonces are recorded only after the
    signature verifies): after a forgery carrying nonce N is refused SignatureDoesNotMatch, the genuine
    request with nonce N is accepted. Otherwise anyone could burn other clients' nonces."""
    nonce = uuid.uuid4().hex
    forged = v1_signed("DescribeCommands", LIST, "testak", "guessed-secret", nonce=nonce)
    refused(send_params(deployment.primary.endpoint, forged), "SignatureDoesNotMatch", 400)
    accepted(send_params(deployment.secondary.endpoint, v1_signed("DescribeCommands", LIST, nonce=nonce)))


def test_concurrent_replays_across_servers_exactly_one_wins(deployment: Deployment) -> None:
    """Twelve copies of one signed CreateCommand sent at the same moment, alternating between the two
    server processes: exactly one is accepted, every other is 400 SignatureNonceUsed (no 5xx), and exactly
    one command exists afterwards."""
    name = f"race-{uuid.uuid4().hex[:8]}"
    signed = v1_signed("CreateCommand", {**LIST, "Name": name, "Type": "RunShellScript",
                                         "CommandContent": "ZWNobyBoaQ=="})
    endpoints = [deployment.servers[i % 2].endpoint for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(len(endpoints)) as pool:
        responses = list(pool.map(lambda e: send_params(e, signed), endpoints))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 11, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response.status_code == 400:
            refused(response, "SignatureNonceUsed", 400)
    found = acs_call(acs_client(), deployment.endpoint, "DescribeCommands", {**LIST, "Name": name})
    assert len(found["Commands"]["Command"]) == 1


def test_replay_after_the_window_is_expired_not_accepted(deployment: Deployment) -> None:
    """A request signed 16 minutes ago with a never-used nonce is refused (InvalidTimeStamp.Expired), so
    forgetting nonces older than the window can never re-open a replay."""
    stale = v1_signed("DescribeCommands", LIST, timestamp=now() - timedelta(minutes=16))
    for server in deployment.servers:
        refused(send_params(server.endpoint, stale), "InvalidTimeStamp.Expired", 400)
    accepted(HTTP.post(f"http://{deployment.endpoint}/", params=v1_signed("DescribeCommands", LIST)))
