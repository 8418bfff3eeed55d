"""The API behind nginx terminating TLS, configured as docs/deploy.md says (the configuration is read from the
document itself): the official SDK's V3-signed calls, with a 24 KB command in the query string, pass through;
the client address nginx forwards is the one the failed-authentication throttle counts."""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import models as open_api_models

from acceptance.sdk import AK, REGION, SECRET
from cloudassist import tls
from cloudassist.testing import LiveServer, free_port, signed_query, wait_for

pytestmark = pytest.mark.acceptance

GUIDE = Path(__file__).parent.parent.parent / "docs" / "deploy.md"
LIMIT = 3
PARAMS = {"Action": "DescribeCommands", "RegionId": REGION, "Version": "2014-05-26"}


def _guide_server_block() -> str:
    """The `server { … }` block of the guide's nginx example."""
    found = re.search(r"```nginx\n(server \{.*?\n\})\n```", GUIDE.read_text(), re.DOTALL)
    assert found, "docs/deploy.md has no nginx example"
    return found.group(1)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[LiveServer, int, Path]]:
    """A server on loopback whose throttle exempts only the proxy's address, nginx in front of it with the guide's
    configuration (its certificate, port and upstream put in); (server, nginx's port, the CA to trust)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is needed (Debian: apt-get install nginx-light)"
    live = LiveServer(tmp_path / "data", extra_env={"CLOUDASSIST_AUTH_FAILURES_PER_MINUTE": str(LIMIT),
                                                    "CLOUDASSIST_AUTH_THROTTLE_EXEMPT": "127.0.0.1,::1"})
    live.start(timeout=60)
    certs = tmp_path / "certs"
    certs.mkdir()
    own = tls.ensure(certs, ["127.0.0.1"])
    assert own.ca is not None
    port = free_port()
    block = (_guide_server_block()
             .replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
             .replace("/etc/ssl/cloudassist.pem", str(own.cert))
             .replace("/etc/ssl/cloudassist.key", str(own.key))
             .replace("http://127.0.0.1:8080", f"http://{live.endpoint}"))
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(
        f"daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {prefix}/body;\nproxy_temp_path {prefix}/proxy;\n"
        f"{block}\n}}\n")
    with open(prefix / "stderr.log", "wb") as err:
        process = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                                   stdout=err, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert process.poll() is None, (prefix / "stderr.log").read_text()
            try:
                httpx.get(f"https://127.0.0.1:{port}/healthz", verify=ssl.create_default_context(cafile=own.ca),
                          timeout=2, trust_env=False)
            except httpx.TransportError:
                return False
            return True
        wait_for(up, 30, "nginx to listen")
        yield live, port, own.ca
    finally:
        process.terminate()
        process.wait(30)
        assert live.stop() == 0
        assert "Traceback" not in live.log()


def test_the_sdk_through_nginx_and_the_throttle_counting_each_client(proxied: tuple[LiveServer, int, Path]) -> None:
    live, port, ca = proxied
    tea = EcsClient(open_api_models.Config(access_key_id=AK, access_key_secret=SECRET, endpoint=f"127.0.0.1:{port}",
                                           protocol="https", region_id=REGION, ca=str(ca)))
    content = base64.b64encode(b"echo " + b"x" * (18 * 1024 - 5)).decode()  # 24 KB in Base64, the largest allowed
    made = tea.create_command(ecs.CreateCommandRequest(region_id=REGION, name="through-nginx", type="RunShellScript",
                                                       command_content=content))
    found = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id=made.body.command_id))
    assert found.body.commands.command[0].command_content == content

    context = ssl.create_default_context(cafile=ca)

    def client(source: str) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(local_address=source, verify=context), timeout=10,
                            trust_env=False)

    url = f"https://127.0.0.1:{port}/"
    with client("127.0.0.2") as attacker, client("127.0.0.3") as bystander:
        for _ in range(LIMIT):
            wrong = attacker.post(f"{url}?{signed_query(PARAMS, AK, 'not-the-secret')}")
            assert wrong.json()["Code"] == "SignatureDoesNotMatch"
        refused = attacker.post(f"{url}?{signed_query(PARAMS, AK, SECRET)}")
        assert (refused.status_code, refused.json()["Code"]) == (400, "Throttling.User")
        assert bystander.post(f"{url}?{signed_query(PARAMS, AK, SECRET)}").status_code == 200
    assert "127.0.0.2" in live.log()
