"""The official SDKs pointed at a live server, and the checks the acceptance tests make of their answers.

    Server      a running `cloudassist server`, and its store opened from the test process
    Core        aliyunsdkcore's AcsClient: aliyunsdkecs request classes and CommonRequests (RPC v1)
    tea_client  alibabacloud_ecs20140526's Client, V3 signing by default or `signature_algorithm='v2'`
    fails       a tea call fails with exactly this Code and HTTP status, in a well-formed error body
    round_trips a raw body is exactly what its SDK model reads and writes back
    model_keys  the JSON keys an SDK model reads, asked of the model itself
    create, run, results, invocation
                CreateCommand, RunCommand, DescribeInvocationResults, DescribeInvocations in one line
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import AcsRequest, CommonRequest

from cloudassist.clock import SystemClock
from cloudassist.services.context import Context
from cloudassist.settings import Settings, database_url
from cloudassist.store.store import Store
from cloudassist.testing import LiveServer, pg_database, register_instance

AK, SECRET = "testak", "testsecret"
REGION = "cn-hangzhou"
VERSION = "2014-05-26"
#: The keys of every error body (reference §3.7 and §0 fact 7).
ERROR_KEYS = frozenset({"RequestId", "HostId", "Code", "Message", "Recommend"})
#: The API's time format (seed: `2019-12-20T06:15:55Z`).
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@dataclass
class Server:
    """A running server, and the store it serves opened from the test process."""

    live: LiveServer
    db: str  #: the `--db` value the server was started with ("" = SQLite in its data directory)
    loop: asyncio.AbstractEventLoop
    ctx: Context

    @property
    def endpoint(self) -> str:
        return self.live.endpoint

    def register(self, count: int = 1, *, os_type: str = "linux") -> list[str]:
        """Register `count` new managed instances of `os_type` in the key's account; their ids, in order."""
        return [self.loop.run_until_complete(register_instance(self.ctx, region_id=REGION, os_type=os_type))
                for _ in range(count)]

    def log(self) -> str:
        return self.live.log()


@contextlib.contextmanager
def running_server(engine: str, data_dir: Path, **settings: str) -> Iterator[Server]:
    """A live `cloudassist server` with the test key on `engine` ("sqlite": in `data_dir`; "postgresql": in a
    database made for it and dropped after the server stopped), started with `settings` as extra environment
    (`CLOUDASSIST_…=value`), and its store opened from the test process."""
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(pg_database("acc")) if engine == "postgresql" else ""
        live = LiveServer(data_dir, db=db, access_key_id=AK, secret=SECRET, extra_env=settings)
        stack.callback(live.stop)
        live.start()
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        store = loop.run_until_complete(Store.open(database_url(db, data_dir)))
        stack.callback(lambda: loop.run_until_complete(store.close()))
        yield Server(live, db, loop, Context(store, SystemClock(), Settings(data_dir=data_dir, db=db)))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Core:
    """aliyunsdkcore's AcsClient on the server: typed aliyunsdkecs requests and CommonRequests."""

    def __init__(self, endpoint: str, access_key_id: str = AK, secret: str = SECRET) -> None:
        self.endpoint = endpoint
        self.client = AcsClient(access_key_id, secret, REGION, auto_retry=False)

    def _point(self, request: AcsRequest) -> AcsRequest:
        request.set_endpoint(self.endpoint)
        request.set_protocol_type("http")
        return request

    def send(self, request: AcsRequest) -> dict[str, Any]:
        """The JSON body of a request that must succeed."""
        body = json.loads(self.client.do_action_with_exception(self._point(request)))
        assert isinstance(body, dict)
        return body

    def error(self, request: AcsRequest) -> ServerException:
        """The ServerException a request that must fail raises."""
        with pytest.raises(ServerException) as info:
            self.send(request)
        return info.value

    @staticmethod
    def common(action: str, params: Mapping[str, str] | None = None) -> CommonRequest:
        """A CommonRequest for `action` with `params` in the query (RegionId comes from the client)."""
        request = CommonRequest(version=VERSION, action_name=action)
        request.set_method("POST")
        for key, value in (params or {}).items():
            request.add_query_param(key, value)
        return request

    def call(self, action: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The raw JSON body of a CommonRequest that must succeed, exactly as the server sent it."""
        return self.send(self.common(action, params))

    def call_error(self, action: str, params: Mapping[str, str] | None = None) -> ServerException:
        return self.error(self.common(action, params))

    def raw(self, action: str, params: Mapping[str, str] | None = None, *,
            fmt: str = "JSON") -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body bytes of a CommonRequest asking for `fmt`, whatever the status.

        `do_action_with_exception` forces Format=JSON, so this goes through `get_response`, the SDK's
        call that keeps the requested format."""
        request = self._point(self.common(action, params))
        request.set_accept_format(fmt)
        status, headers, body = self.client.get_response(request)
        return int(status), {k.lower(): v for k, v in headers.items()}, bytes(body)


def parse_xml(body: bytes) -> ET.Element:
    """The root of an XML answer, which must be well-formed."""
    return ET.fromstring(body)  # noqa: S314 - our own server's answer


def tea_client(endpoint: str, signature_algorithm: str | None = None, *, access_key_id: str = AK,
               secret: str = SECRET) -> EcsClient:
    """The tea Client over plain HTTP at `endpoint` (reference §2.2)."""
    config = open_api_models.Config(access_key_id=access_key_id, access_key_secret=secret, endpoint=endpoint,
                                    protocol="http", region_id=REGION)
    if signature_algorithm is not None:
        config.signature_algorithm = signature_algorithm
    return EcsClient(config)


def tea_error(call: Callable[[], object]) -> AlibabaCloudException:
    """The exception the tea SDK raises for a call that must fail."""
    with pytest.raises(AlibabaCloudException) as info:
        call()
    return info.value


def fails(call: Callable[[], object], code: str, status: int) -> dict[str, Any]:
    """Assert a tea call fails with exactly `code` and HTTP `status` in a well-formed error body; the body."""
    error = tea_error(call)
    assert (error.code, error.status_code) == (code, status), error.data
    body = {k: v for k, v in (error.data or {}).items() if k != "statusCode"}
    assert set(body) == ERROR_KEYS, body
    assert body["Code"] == code
    assert isinstance(body["Message"], str)
    assert body["Message"]
    return body


def core_fails(error: ServerException, code: str, status: int) -> None:
    """Assert an aliyunsdkcore ServerException carries exactly `code` and HTTP `status`, and a RequestId."""
    assert (error.get_error_code(), error.get_http_status()) == (code, status), error.get_error_msg()
    assert error.get_request_id()


def round_trips(model: type, body: dict[str, Any]) -> None:
    """Assert `body` is exactly what the SDK model reads and writes back: no key it does not know, none
    misspelt, every nested list wrapped as the model wraps it."""
    assert model().from_map(body).to_map() == body


class _KeyRecorder(dict[str, Any]):
    """An empty mapping that notes every key a model's `from_map` asks it for (and is truthy, since
    `from_map` replaces a falsy mapping with a fresh dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def __bool__(self) -> bool:
        return True

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default


def model_keys(model: type) -> set[str]:
    """The JSON keys an SDK model reads at its top level, as its own `from_map` asks for them."""
    recorder = _KeyRecorder()
    model().from_map(recorder)
    return recorder.asked


def create(tea: EcsClient, **fields: Any) -> str:
    """CreateCommand of a short shell script with a fresh name, unless `fields` say otherwise; its CommandId."""
    wanted: dict[str, Any] = {"name": unique("cmd"), "type": "RunShellScript", "command_content": b64(b"echo hello"),
                              **fields}
    response = tea.create_command(ecs.CreateCommandRequest(region_id=REGION, **wanted))
    assert response.status_code == 200
    return str(response.body.command_id)


def run(tea: EcsClient, instance_ids: list[str], **fields: Any) -> str:
    """RunCommand of a short shell script on `instance_ids` (PlainText, the RunCommand default); its InvokeId."""
    wanted: dict[str, Any] = {"type": "RunShellScript", "command_content": "echo hello", **fields}
    request = ecs.RunCommandRequest(region_id=REGION, instance_id=instance_ids, **wanted)
    response = tea.run_command(request)
    assert response.status_code == 200
    return str(response.body.invoke_id)


def results(tea: EcsClient, **fields: Any) -> ecs.DescribeInvocationResultsResponseBodyInvocation:
    """DescribeInvocationResults with `fields` (RegionId added); the typed `Invocation` of its answer."""
    response = tea.describe_invocation_results(ecs.DescribeInvocationResultsRequest(region_id=REGION, **fields))
    assert response.status_code == 200
    return response.body.invocation


def invocation(tea: EcsClient, invoke_id: str,
               **fields: Any) -> ecs.DescribeInvocationsResponseBodyInvocationsInvocation:
    """The one task DescribeInvocations finds for `invoke_id`, typed."""
    body = tea.describe_invocations(ecs.DescribeInvocationsRequest(region_id=REGION, invoke_id=invoke_id,
                                                                   **fields)).body
    assert body.total_count == 1
    assert len(body.invocations.invocation) == 1
    return body.invocations.invocation[0]
