"""The official agent, aliyun_assist_client 2.2.3.578, as it was captured on the wire (agent-protocol.md Part 2).

`Agent` replays the agent's requests byte for byte where it matters to a server: the same paths, query
parameters in the same order and with the same spelling (`exitcode` on `task/stopped`), Go's
`url.QueryEscape` for values, `json.Marshal`'s escaping of `<`, `>`, `&`, the same header names and casing,
`User-Agent: linux_<arch>/2.2.3.578`, `Accept-Encoding: gzip`, the Content-Type of each call (JSON on empty
API POSTs, `text/plain; charset=utf-8` on task reports, form-urlencoded on the heart-beat GET), and the
hybrid signature: `X-Acs-Signature` = base64(RSA PKCS#1 v1.5 over MD5(instance id + machine id + timestamp
+ request id)) with an RSA-2048 key the agent made itself and keeps as a PKCS#1 `RSA PRIVATE KEY`.

`Ecs` calls the ECS API of the same server with v1-signed query strings (`cloudassist.testing.signed_query`).
Nothing here imports the server's code besides those testing helpers: these are black-box tests.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from websockets.sync.client import ClientConnection, connect

from cloudassist.testing import LiveServer, signed_query

VERSION = "2.2.3.578"
#: Official Linux packages are GOARCH=386 builds; the amd64 build was captured too (Part 2 intro, §4.1).
UA_386 = f"linux_386/{VERSION}"
UA_AMD64 = f"linux_amd64/{VERSION}"
OS_VERSION = "Linux_#1 SMP PREEMPT_DYNAMIC @0_x86_64"
JSON_UTF8 = "application/json; charset=utf-8"
TEXT_UTF8 = "text/plain; charset=utf-8"
FORM = "application/x-www-form-urlencoded"
REGION = "cn-hangzhou"
AK, SECRET = "testak", "testsecret"
#: Header names exactly as Go's net/http canonicalises them on the wire (§3).
SIGNING_HEADERS = ("X-Acs-Instance-Id", "X-Acs-Timestamp", "X-Acs-Request-Id", "X-Acs-Signature")


def now_ms() -> int:
    return int(time.time() * 1000)


def go_query(*pairs: tuple[str, object]) -> str:
    """`k=v&k=v` in the given order, values escaped like Go's url.QueryEscape (space as `+`, `/` as `%2F`)."""
    return "&".join(f"{key}={quote_plus(str(value), safe='')}" for key, value in pairs)


def go_json(value: object) -> bytes:
    """What Go's json.Marshal writes: compact, with `<`, `>` and `&` escaped as \\u003c, \\u003e, \\u0026."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def trust(server: LiveServer) -> ssl.SSLContext:
    """The trust the agent gets from ALIYUN_ASSIST_CERT_PATH=<data_dir>/ca.pem."""
    return ssl.create_default_context(cafile=str(server.data_dir / "ca.pem"))


def bare_client(**kw: Any) -> httpx.Client:
    """An httpx client that adds no header of its own (no Accept, no Connection, no python-httpx User-Agent),
    so the request carries only what the Go agent sends (httpx still adds Host and Content-Length)."""
    client = httpx.Client(trust_env=False, timeout=30.0, **kw)
    for name in list(client.headers):
        del client.headers[name]
    return client


def parsed(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 200 reply, as the agent needs it (it parses every reply with gjson/encoding/json)."""
    assert response.status_code == 200, f"HTTP {response.status_code}, want 200: {response.text}"
    body = response.json()
    assert isinstance(body, dict), response.text
    return body


def acknowledged(response: httpx.Response) -> dict[str, Any]:
    """A 2xx reply whose body says `"code":200` (an integer): how every agent call must be acknowledged."""
    body = parsed(response)
    assert type(body.get("code")) is int, f"code must be a JSON integer: {response.text}"
    assert body["code"] == 200, response.text
    return body


def refused(response: httpx.Response) -> None:
    """A refusal the agent notices: its http helpers treat only status > 400 as an error (httputil.go)."""
    assert response.status_code > 400, f"HTTP {response.status_code} would count as delivered: {response.text}"


@dataclass
class Execution:
    """One run of a task as the agent reports it: the task's id and version and the run's start (ms)."""

    task_id: str
    invoke_version: int
    start: int
    end: int = 0


class Agent:
    """One host running the official agent in hybrid (registered) mode."""

    def __init__(self, server: LiveServer, *, arch: str = "linux_amd64", hostname: str = "vm") -> None:
        self.server = server
        self.user_agent = f"{arch}/{VERSION}"
        self.hostname = hostname
        generated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        #: hybrid/pri-key: a PKCS#1 "RSA PRIVATE KEY"; we sign with what that file holds.
        self.pri_key = generated.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption())
        assert self.pri_key.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
        loaded = serialization.load_pem_private_key(self.pri_key, password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        self.key = loaded
        #: hybrid/pub-key: a PKIX "PUBLIC KEY"; registration sends base64 of this PEM.
        self.pub_key = generated.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
        self.machine_id = uuid.uuid4().hex
        self.instance_id = ""
        self.pid = 20000 + os.getpid() % 10000
        self.process_start = now_ms()
        self.acks = 0  #: heart-beats acknowledged (`index`)
        self.sent = 0  #: heart-beats sent (`seq_no`)
        self.http = bare_client(verify=trust(server))
        self.plain = bare_client()

    def close(self) -> None:
        self.http.close()
        self.plain.close()

    # -- wire ----------------------------------------------------------------------------------------------

    def sign(self, *, instance_id: str | None = None, timestamp: int | None = None, request_id: str | None = None,
             key: rsa.RSAPrivateKey | None = None, machine_id: str | None = None) -> dict[str, str]:
        """The four signing headers; every argument defaults to what the agent would use right now."""
        iid = self.instance_id if instance_id is None else instance_id
        stamp = str(now_ms() if timestamp is None else timestamp)
        rid = str(uuid.uuid4()) if request_id is None else request_id
        data = (iid + (self.machine_id if machine_id is None else machine_id) + stamp + rid).encode()
        signature = (key or self.key).sign(data, padding.PKCS1v15(), hashes.MD5())  # noqa: S303 - the protocol's
        return dict(zip(SIGNING_HEADERS, (iid, stamp, rid, base64.b64encode(signature).decode()), strict=True))

    def send(self, method: str, path: str, query: str = "", *, body: bytes = b"", content_type: str | None = JSON_UTF8,
             signing: Mapping[str, str] | None = None, signed: bool = True, scheme: str = "https") -> httpx.Response:
        """One request as the agent's HttpGet/HttpPost put it on the wire."""
        url = f"{scheme}://{self.server.agent_endpoint}{path}" + (f"?{query}" if query else "")
        headers = {"User-Agent": self.user_agent}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if signed:
            headers.update(signing if signing is not None else self.sign())
        headers["Accept-Encoding"] = "gzip"
        client = self.http if scheme == "https" else self.plain
        return client.request(method, url, headers=headers, content=body if method == "POST" else None)

    # -- registration (§3) ---------------------------------------------------------------------------------

    def registration_body(self, activation_id: str, code: str, *, region: str = REGION,
                          instance_name: str = "selftest-box", agent_version: str = VERSION,
                          tags: Iterable[tuple[str, str]] = (("env", "test"), ("team", "qa"))) -> bytes:
        return go_json({
            "activationCode": code, "machineId": self.machine_id, "regionId": region,
            "instanceName": instance_name, "hostname": self.hostname, "intranetIp": "<nil>",
            "osVersion": OS_VERSION, "osType": "linux", "agentVersion": agent_version,
            "publicKey": base64.b64encode(self.pub_key).decode(), "activationId": activation_id,
            "tag": [{"key": k, "value": v} for k, v in tags],
        })

    def register(self, activation_id: str, code: str, **kw: Any) -> httpx.Response:
        """`aliyun-service --register`: one unsigned POST; the agent keeps its keys only on an integer code 200."""
        body = self.registration_body(activation_id, code, **kw)
        response = self.send("POST", "/luban/api/instance/register", body=body, signed=False)
        try:
            reply = response.json()
        except ValueError:
            return response
        if isinstance(reply, dict) and type(reply.get("code")) is int and reply["code"] == 200:
            self.instance_id = str(reply.get("instanceId", ""))
        return response

    # -- heart-beat (§1.11, §4.1) --------------------------------------------------------------------------

    def heartbeat_query(self, *, cold_start: bool = True) -> str:
        process_uptime = now_ms() - self.process_start
        pairs: list[tuple[str, object]] = [
            ("uptime", 1_785_000 + process_uptime), ("timestamp", now_ms()), ("pid", self.pid),
            ("process_uptime", process_uptime), ("index", self.acks), ("seq_no", self.sent)]
        if self.acks == 0:  # only the first beat carries the extra fields
            pairs += [("virt_type", "kvm"), ("os_version", OS_VERSION), ("az", "unknown"),
                      ("machineid", self.machine_id), ("cold_start", "true" if cold_start else "false")]
        return go_query(*pairs)

    def heartbeat(self, *, scheme: str = "https") -> httpx.Response:
        """`GET /luban/api/heart-beat?…` (with the form Content-Type the agent's HTTP library puts on a GET)."""
        try:
            response = self.send("GET", "/luban/api/heart-beat", self.heartbeat_query(), content_type=FORM,
                                 scheme=scheme)
        finally:
            self.sent += 1
        if response.status_code <= 400:  # the agent's own test for "delivered"
            self.acks += 1
        return response

    # -- tasks (§1.5, §4.1-§4.5) ---------------------------------------------------------------------------

    def task_list(self, reason: str = "startup", *, task_id: str | None = None,
                  cold_start: bool = True) -> httpx.Response:
        """`POST /luban/api/v1/task/list?reason=…` with an empty body."""
        pairs: list[tuple[str, object]] = [("reason", reason)]
        if reason == "startup":
            pairs.append(("cold_start", "true" if cold_start else "false"))
        if task_id:
            pairs.append(("taskId", task_id))
        pairs += [("currentTime", now_ms()), ("offset", 0), ("timeZone", "Etc/UTC")]
        return self.send("POST", "/luban/api/v1/task/list", go_query(*pairs))

    def tasks(self, reason: str = "startup", **kw: Any) -> dict[str, Any]:
        return acknowledged(self.task_list(reason, **kw))

    def report(self, kind: str, *pairs: tuple[str, object], body: bytes = b"") -> httpx.Response:
        """`POST /luban/api/v1/task/<kind>?…`: util.HttpPost(url, output, "text")."""
        return self.send("POST", f"/luban/api/v1/task/{kind}", go_query(*pairs), body=body, content_type=TEXT_UTF8)

    @staticmethod
    def execution(entry: Mapping[str, Any]) -> Execution:
        task = entry["task"]
        return Execution(task["taskID"], task["invokeVersion"], now_ms())

    def running(self, run: Execution, output: bytes = b"") -> httpx.Response:
        """The "started" post (empty body) and every output tick after it."""
        return self.report("running", ("taskId", run.task_id), ("invokeVersion", run.invoke_version),
                           ("start", run.start), body=output)

    def _ended(self, run: Execution) -> int:
        run.end = run.end or max(now_ms(), run.start + 1)
        return run.end

    def finish(self, run: Execution, exit_code: int, output: bytes = b"", dropped: int = 0) -> httpx.Response:
        end = self._ended(run)
        return self.report("finish", ("taskId", run.task_id), ("invokeVersion", run.invoke_version),
                           ("start", run.start), ("end", end), ("exitCode", exit_code), ("dropped", dropped),
                           body=output)

    def timeout(self, run: Execution, output: bytes = b"") -> httpx.Response:
        end = self._ended(run)
        return self.report("timeout", ("taskId", run.task_id), ("invokeVersion", run.invoke_version),
                           ("start", run.start), ("end", end), ("exitCode", 1), ("dropped", 0), body=output)

    def stopped(self, run: Execution, output: bytes = b"", result: str = "killed") -> httpx.Response:
        """Note the lower-case `exitcode`: task/stopped is the one report that spells it so (§4.3, §7)."""
        end = self._ended(run)
        return self.report("stopped", ("taskId", run.task_id), ("invokeVersion", run.invoke_version),
                           ("start", run.start), ("end", end), ("exitcode", 0), ("dropped", 0), ("result", result),
                           body=output)

    def error(self, task_id: str, invoke_version: int, err_code: str, err_desc: str) -> httpx.Response:
        """The redelivery refusal of §4.5: start=0, end=0, the error code and a URL-escaped description."""
        return self.report("error", ("taskId", task_id), ("invokeVersion", invoke_version), ("start", 0), ("end", 0),
                           ("exitCode", 0), ("dropped", 0), ("errCode", err_code), ("errDesc", err_desc))

    def invalid(self, task_id: str, invoke_version: int, param: str, value: str) -> httpx.Response:
        return self.report("invalid", ("taskId", task_id), ("invokeVersion", invoke_version), ("param", param),
                           ("value", value))

    def metrics(self, event_id: str, category: str, keywords: Mapping[str, str], level: str = "INFO") -> httpx.Response:
        """`POST /luban/api/metrics`: one event, its `common` and `keywords` JSON-encoded strings (§4.1)."""
        common = {"arch": "amd64", "instanceId": "unknown", "osVersion": OS_VERSION, "virtualType": "unknown",
                  "distribution": "debian 12", "kernelVersion": "6.1.0-selftest-amd64"}
        return self.send("POST", "/luban/api/metrics", body=go_json({
            "eventId": event_id, "category": category, "subCategory": "", "eventLevel": level, "eventTime": now_ms(),
            "common": json.dumps(common, separators=(",", ":")), "keywords": json.dumps(dict(keywords),
                                                                                       separators=(",", ":"))}))

    # -- kick channel (§1.4) -------------------------------------------------------------------------------

    def websocket(self, *, signing: Mapping[str, str] | None = None, signed: bool = True) -> ClientConnection:
        """`wss://<host>/luban/notify_server`: HTTP/1.1 upgrade, no ALPN, no subprotocol, no extension, the
        agent's User-Agent and (hybrid) the signing headers."""
        headers: dict[str, str] = {}
        if signed:
            headers.update(signing if signing is not None else self.sign())
        return connect(f"wss://{self.server.agent_endpoint}/luban/notify_server", ssl=trust(self.server),
                       additional_headers=headers, user_agent_header=self.user_agent, compression=None, proxy=None,
                       open_timeout=30, ping_interval=None, close_timeout=2)


def wait_for_kick(ws: ClientConnection, timeout: float = 10.0) -> str:
    """The next text frame, which must be a kick; the agent answers `accept:<the kick>`."""
    message = ws.recv(timeout=timeout)
    assert isinstance(message, str), f"a kick is a text frame, got {message!r}"
    assert message.startswith("kick_vm"), message
    ws.send(f"accept:{message}")
    return message


# ---------------------------------------------------------------------------------------------------- ECS API

class Ecs:
    """The ECS API of the server, called with v1-signed query strings over plain HTTP."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.http = httpx.Client(trust_env=False, timeout=30.0)

    def raw(self, action: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        query = signed_query({"Action": action, "RegionId": REGION, **(params or {})}, AK, SECRET)
        return self.http.post(f"http://{self.endpoint}/?{query}")

    def __call__(self, action: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        response = self.raw(action, params)
        assert response.status_code == 200, f"{action} {params}: HTTP {response.status_code} {response.text}"
        body: dict[str, Any] = response.json()
        return body

    def run_command(self, instance_id: str, script: str, **params: str) -> str:
        """RunCommand of a shell script (plain text) on one instance; its InvokeId."""
        return str(self("RunCommand", {"Type": "RunShellScript", "CommandContent": script, "InstanceId.1": instance_id,
                                       "Name": "selftest", **params})["InvokeId"])

    def result(self, invoke_id: str) -> dict[str, Any]:
        """The one InvocationResult of `invoke_id`, Output in plain text."""
        body = self("DescribeInvocationResults", {"InvokeId": invoke_id, "ContentEncoding": "PlainText"})
        results = body["Invocation"]["InvocationResults"]["InvocationResult"]
        assert len(results) == 1, body
        found: dict[str, Any] = results[0]
        return found

    def assistant_status(self, instance_id: str) -> dict[str, Any]:
        body = self("DescribeCloudAssistantStatus", {"InstanceId.1": instance_id})
        statuses = body["InstanceCloudAssistantStatusSet"]["InstanceCloudAssistantStatus"]
        assert len(statuses) == 1, body
        found: dict[str, Any] = statuses[0]
        return found

    def managed_instances(self, **params: str) -> list[dict[str, Any]]:
        instances: list[dict[str, Any]] = self("DescribeManagedInstances", params)["Instances"]
        return instances

    def close(self) -> None:
        self.http.close()


@dataclass(frozen=True)
class Activation:
    activation_id: str
    code: str


def create_activation(api: Ecs, count: int, name: str | None = None) -> Activation:
    """CreateActivation through the API: an activation code good for `count` hosts."""
    params = {"InstanceCount": str(count), "Description": "conformance"}
    if name:
        params["InstanceName"] = name
    created = api("CreateActivation", params)
    return Activation(created["ActivationId"], created["ActivationCode"])


def api_time(text: str) -> datetime:
    """An API timestamp, `2026-01-02T03:04:05Z`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def ms_time(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)
