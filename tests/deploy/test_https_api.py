"""The API over HTTPS with the operator's own certificate (`--api-cert/--api-key`, docs/deploy.md): both
official SDKs, trusting the certificate's CA, run a command on a real agent through it; a client that does not
trust it, or speaks plain HTTP to it, gets nothing."""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import models as open_api_models
from aliyunsdkcore.client import AcsClient
from aliyunsdkecs.request.v20140526.DescribeCommandsRequest import DescribeCommandsRequest

from acceptance.agents import agents, final
from acceptance.sdk import AK, REGION, SECRET
from cloudassist import tls
from cloudassist.testing import LiveServer, wait_for

pytestmark = pytest.mark.acceptance


def _tea(endpoint: str, ca: Path) -> EcsClient:
    return EcsClient(open_api_models.Config(access_key_id=AK, access_key_secret=SECRET, endpoint=endpoint,
                                            protocol="https", region_id=REGION, ca=str(ca)))


def test_both_sdks_run_a_command_over_https_with_the_operators_certificate(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    own = tls.ensure(certs, ["localhost", "127.0.0.1"])  # stands for a certificate from the operator's own CA
    assert own.ca is not None
    live = LiveServer(tmp_path / "data", extra_env={"CLOUDASSIST_API_CERT": str(own.cert),
                                                    "CLOUDASSIST_API_KEY": str(own.key)})
    try:
        live.start(timeout=60)
        wait_for(lambda: f"cloudassist API listening on https://{live.endpoint}/" in live.log(), 30, "the banner")
        tea = _tea(live.endpoint, own.ca)
        with agents(tmp_path / "agents") as made:
            body = tea.create_activation(ecs.CreateActivationRequest(region_id=REGION, instance_count=1)).body
            agent = made.new("a").register(live, str(body.activation_id), str(body.activation_code)).start()
            wait_for(agent.connected, 60, "the agent to connect")
            invoke_id = tea.run_command(ecs.RunCommandRequest(
                region_id=REGION, type="RunShellScript", command_content="echo over-https", name="https-run",
                instance_id=[agent.instance_id], keep_command=True)).body.invoke_id
            result = final(tea, str(invoke_id))
            assert (result.invocation_status, result.output) == ("Success", "over-https\n")

            core = AcsClient(AK, SECRET, REGION, auto_retry=False, verify=str(own.ca))
            request = DescribeCommandsRequest()
            request.set_endpoint(live.endpoint)
            request.set_protocol_type("https")
            request.set_Name("https-run")
            assert b'"Name":"https-run"' in core.do_action_with_exception(request)
            assert made.close() == [0]

        host, port = live.endpoint.split(":")
        untrusting = http.client.HTTPSConnection(host, int(port), timeout=10, context=ssl.create_default_context())
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusting.request("GET", "/healthz")
        plain = http.client.HTTPConnection(host, int(port), timeout=10)
        plain.request("GET", "/healthz")  # sent: the server reads it as a broken TLS hello and closes
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)):
            plain.getresponse()
        assert live.process is not None
        assert live.process.poll() is None
        assert "Traceback" not in live.log()
    finally:
        assert live.stop() == 0, live.log()


def test_a_certificate_that_does_not_load_is_one_line_naming_it(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", extra_env={"CLOUDASSIST_API_CERT": str(tmp_path / "missing.pem"),
                                                    "CLOUDASSIST_API_KEY": str(tmp_path / "missing-key.pem")})
    with pytest.raises(RuntimeError, match="server exited"):
        live.start(timeout=60)
    live.stop()
    assert "Error: cannot load --api-cert/--api-key" in live.log()
    assert "Traceback" not in live.log()
    assert not (tmp_path / "data" / "cloudassist.db").exists()  # refused before anything was made
