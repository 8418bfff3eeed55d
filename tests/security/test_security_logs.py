"""Secrets stay secret: nothing the servers write (their log file, which receives their stdout and stderr)
and nothing `cloudassist keys list` prints contains an AccessKey secret.

conftest.py runs this module after every other test, so the logs checked hold the whole suite's traffic:
wrong secrets, disabled keys, replays, tampering, malformed requests and both accounts' work. The test
also makes that traffic itself, so it proves something when run alone.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

from secwire import (
    AK,
    REGION,
    SECRET,
    accepted,
    acs_call,
    acs_client,
    acs_error,
    refused,
    send_params,
    v1_signed,
    v3_signed,
)

from conftest import Backend, Deployment, ServerProcess, child_env

LIST = {"RegionId": REGION}


def forms_of(secret: str) -> list[str]:
    """The secret as it could end up in a log: raw, percent-encoded, base64, and as the v1 HMAC key."""
    return [secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode(), secret + "&"]


def exercise(deployment: Deployment) -> list[str]:
    """Drive every authentication path with A's, B's and a throwaway key; the secrets involved."""
    b_id, b_secret = deployment.b_key
    c_id, c_secret = deployment.create_key("logcheck")
    for server in deployment.servers:
        e = server.endpoint
        accepted(send_params(e, v1_signed("DescribeCommands", LIST)))
        accepted(send_params(e, v1_signed("DescribeCommands", LIST, b_id, b_secret)))
        accepted(v3_signed(e, "DescribeCommands", LIST, c_id, c_secret).send(e))
        refused(send_params(e, v1_signed("DescribeCommands", LIST, AK, SECRET + "x")), "SignatureDoesNotMatch", 400)
        refused(v3_signed(e, "DescribeCommands", LIST, b_id, b_secret[::-1]).send(e), "SignatureDoesNotMatch", 400)
        replay = v1_signed("DescribeCommands", LIST, b_id, b_secret)
        accepted(send_params(e, replay))
        refused(send_params(e, replay), "SignatureNonceUsed", 400)
        # a secret sent where an id belongs, and as a parameter value, must not be echoed into the log
        refused(send_params(e, v1_signed("DescribeCommands", LIST, c_secret, c_secret)),
                "InvalidAccessKeyId.NotFound", 404)
        accepted(send_params(e, v1_signed("DescribeCommands", {**LIST, "Name": "x"}, c_id, c_secret)))
        acs_call(acs_client(b_id, b_secret), e, "CreateCommand", {
            **LIST, "Name": "logcheck", "Type": "RunShellScript", "CommandContent": "ZWNobyBoaQ=="})
    deployment.cli("keys", "disable", c_id)
    refused(send_params(deployment.endpoint, v1_signed("DescribeCommands", LIST, c_id, c_secret)),
            "Forbidden.AccessKeyDisabled", 403)
    exc = acs_error(acs_client(c_id, c_secret), deployment.endpoint, "DescribeCommands", LIST)
    assert exc.get_error_code() == "Forbidden.AccessKeyDisabled"
    return [SECRET, b_secret, c_secret]


def test_server_logs_never_contain_a_secret(deployment: Deployment) -> None:
    """After the whole suite (and a fresh round of accepted, forged, replayed and disabled-key requests by
    three keys on both server processes), the servers' log file, which holds their stdout and stderr,
    contains none of the three secrets in any form (raw, percent-encoded, base64, HMAC key)."""
    secrets = exercise(deployment)
    log = deployment.log()
    assert "cloudassist API listening on" in log  # it is the servers' output we are reading
    for secret in secrets:
        for form in forms_of(secret):
            assert form not in log, f"a secret ({form[:3]}…) appears in {deployment.data_dir / 'server.log'}"


def test_no_request_of_the_suite_caused_an_internal_error(deployment: Deployment) -> None:
    """No request of the whole suite made a server log an internal error: the log has no traceback and no
    'internal error answering request' line."""
    log = deployment.log()
    assert "cloudassist API listening on" in log
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    assert not re.search(r"internal error answering request", log), log


def test_keys_list_shows_ids_but_no_secret(deployment: Deployment) -> None:
    """`cloudassist keys list` (all accounts, and --account B) shows the AccessKeyIds of accounts A and B
    but none of their secrets."""
    b_id, b_secret = deployment.b_key
    everything = deployment.cli("keys", "list").stdout
    assert AK in everything
    assert b_id in everything
    only_b = deployment.cli("keys", "list", "--account", "B").stdout
    assert b_id in only_b
    assert AK not in only_b
    for output in (everything, only_b):
        assert SECRET not in output
        assert b_secret not in output


def test_debug_logging_never_contains_a_secret(backend: Backend) -> None:
    """A server run at CLOUDASSIST_LOG_LEVEL=debug from its first start (generating its key), then serving
    accepted and forged requests of that key and of a key made with `cloudassist keys create`, writes no
    secret to its logs (stderr), nor to its stdout, which is a file here: a log too (a terminal is shown the
    generated secret once: tests/test_server.py)."""
    server = ServerProcess(backend, child_env(CLOUDASSIST_LOG_LEVEL="debug")).start("debug")
    try:
        text = (backend.data_dir / "access-key.txt").read_text()
        key_id = text.split("CLOUDASSIST_ACCESS_KEY_ID=")[1].split()[0]
        secret = text.split("CLOUDASSIST_ACCESS_KEY_SECRET=")[1].split()[0]
        other_id, other_secret = backend.create_key("debug-b")
        e = server.endpoint
        accepted(send_params(e, v1_signed("DescribeCommands", LIST, key_id, secret)))
        accepted(v3_signed(e, "DescribeCommands", LIST, other_id, other_secret).send(e))
        refused(send_params(e, v1_signed("DescribeCommands", LIST, key_id, secret[::-1])), "SignatureDoesNotMatch",
                400)
        acs_call(acs_client(other_id, other_secret), e, "CreateCommand", {
            **LIST, "Name": "debug", "Type": "RunShellScript", "CommandContent": "ZWNobyBoaQ=="})
    finally:
        server.stop()
    assert "DEBUG" in server.stderr()  # the level took effect
    assert secret not in server.stdout()
    assert "access-key.txt" in server.stdout()
    assert other_secret not in server.stdout()
    leaks = [line[:300] for line in server.stderr().splitlines()
             if any(form in line for s in (secret, other_secret) for form in forms_of(s))]
    assert not leaks, "secrets in the debug log:\n" + "\n".join(leaks)
