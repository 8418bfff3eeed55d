"""The API behind a reverse proxy on the same host (docs/deploy.md): the proxy's X-Forwarded-For reaches the
failed-authentication throttle, so one client that fails too often is refused and the others, through the same
proxy, are not; the proxy's own address (loopback, exempt by default) is never refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cloudassist.testing import LiveServer, signed_query

pytestmark = pytest.mark.acceptance

LIMIT = 3
PARAMS = {"Action": "DescribeCommands", "RegionId": "cn-hangzhou", "Version": "2014-05-26"}


def test_the_forwarded_client_address_is_the_one_throttled(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", extra_env={"CLOUDASSIST_AUTH_FAILURES_PER_MINUTE": str(LIMIT)})
    try:
        live.start(timeout=60)
        url = f"http://{live.endpoint}/"

        def good() -> str:  # a fresh nonce each time
            return signed_query(PARAMS, live.access_key_id, live.secret)

        def call(query: str, client: str | None) -> httpx.Response:
            # what nginx sends with `proxy_set_header X-Forwarded-For $remote_addr`
            headers = {"X-Forwarded-For": client} if client else {}
            return httpx.post(f"{url}?{query}", headers=headers, timeout=10, trust_env=False)

        for _ in range(LIMIT):
            wrong = call(signed_query(PARAMS, live.access_key_id, "not-the-secret"), "203.0.113.7")
            assert wrong.json()["Code"] == "SignatureDoesNotMatch"
        refused = call(good(), "203.0.113.7")
        assert (refused.status_code, refused.json()["Code"]) == (400, "Throttling.User")
        assert call(good(), "203.0.113.8").status_code == 200  # another client behind the same proxy
        assert call(good(), None).status_code == 200  # the proxy's own address, 127.0.0.1
        assert "203.0.113.7" in live.log()  # the throttle's warning names the client, not the proxy
    finally:
        assert live.stop() == 0
