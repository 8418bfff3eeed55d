"""Helpers of the in-process agent-face tests: raw ASGI requests and websocket sessions to
`create_agent_app(ctx, hub)` (so a test sends exactly the bytes it chose: any path, query string, header or
body, as a hostile peer could), an agent registered the way the official one registers, signing with its
key, and the checks every answer of the agent face must pass.

The agent face's shape: a success is HTTP 200 with a JSON object (`{"code": 200, ...}`, or the state
configurations' `{"errCode": "", "errMsg": "", "result": ...}`, or `connection_detect`'s plain `ok`); a
refusal is a 4xx with exactly `{"code": <the status>, "errCode": "...", "errMsg": "..."}`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from apiwire import ServerLog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.types import ASGIApp, Message

from cloudassist.api.agent.app import create_agent_app
from cloudassist.api.agent.hub import KickHub
from cloudassist.services.activations import ActivationService, ActivationSpec
from cloudassist.services.context import Context
from cloudassist.testing import default_scope

REFUSAL_KEYS = frozenset({"code", "errCode", "errMsg"})
USER_AGENT = "linux_amd64/2.2.3.578"
JSON_UTF8 = "application/json; charset=utf-8"
TEXT_UTF8 = "text/plain; charset=utf-8"
_KEY: list[rsa.RSAPrivateKey] = []


def agent_key() -> rsa.RSAPrivateKey:
    """One RSA-2048 key for every test agent of the run (making one takes a while)."""
    if not _KEY:
        _KEY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEY[0]


@dataclass
class Answer:
    """What the app sent back over HTTP; `raised` is an exception that escaped the app (uvicorn would log its
    traceback and answer 500)."""

    status: int
    headers: dict[str, str]
    body: bytes
    raised: BaseException | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Session:
    """What the app sent over a websocket: the messages in order; `raised` as in Answer."""

    sent: list[Message] = field(default_factory=list)
    raised: BaseException | None = None

    @property
    def accepted(self) -> bool:
        return any(m["type"] == "websocket.accept" for m in self.sent)

    @property
    def close_code(self) -> int | None:
        codes = [int(m.get("code", 1000)) for m in self.sent if m["type"] == "websocket.close"]
        return codes[-1] if codes else None


def _scope(kind: str, path: str, query: bytes, headers: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "https" if kind == "http" else "wss",
        "path": path,
        "raw_path": quote(path, safe="/", errors="surrogatepass").encode("ascii"),
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("utf-8")) for k, v in headers],  # raw bytes on the wire
        "client": ("127.0.0.1", 40000),
        "server": ("test", 443),
        "subprotocols": [],
        "extensions": {},
    }


async def http(app: ASGIApp, method: str, path: str, query: bytes = b"", headers: Sequence[tuple[str, str]] = (),
               body: bytes = b"", chunk: int = 65536) -> Answer:
    """One HTTP request as a server would hand it to the app (the body in chunks of `chunk` bytes)."""
    scope = {**_scope("http", path, query, headers), "method": method}
    parts = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    inbox: list[Message] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)
    ]
    status, out_headers, out = 0, {}, bytearray()

    async def receive() -> Message:
        if inbox:
            return inbox.pop(0)
        await asyncio.sleep(3600)  # the client stays connected until the answer is sent
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out.extend(message.get("body", b""))

    try:
        await asyncio.wait_for(app(scope, receive, send), 30)
    except Exception as exc:
        return Answer(500, out_headers, bytes(out), exc)
    return Answer(status, out_headers, bytes(out))


async def websocket(app: ASGIApp, headers: Sequence[tuple[str, str]], frames: Sequence[str | bytes],
                    path: str = "/luban/notify_server", query: bytes = b"") -> Session:
    """A websocket session: connect, send `frames` (text or binary) once accepted, then disconnect."""
    scope = _scope("websocket", path, query, headers)
    session = Session()
    accepted = asyncio.Event()
    closed = asyncio.Event()
    inbox: list[Message] = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        if inbox:
            return inbox.pop(0)
        if not accepted.is_set():
            return {"type": "websocket.disconnect", "code": 1006}
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        session.sent.append(message)
        if message["type"] == "websocket.accept":
            for frame in frames:
                inbox.append({"type": "websocket.receive", "text": frame} if isinstance(frame, str)
                             else {"type": "websocket.receive", "bytes": frame})
            accepted.set()
        elif message["type"] == "websocket.close":
            closed.set()

    try:
        await asyncio.wait_for(app(scope, receive, send), 30)
    except Exception as exc:
        session.raised = exc
    return session


class AgentFace:
    """The agent face of one store, in-process, and an agent registered with it (its key signs)."""

    def __init__(self, ctx: Context, log: ServerLog) -> None:
        self.ctx = ctx
        self.log = log
        self.hub = KickHub()
        self.app = create_agent_app(ctx, self.hub)
        self.key = agent_key()
        self.public_key = base64.b64encode(self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        self.activation_id = ""
        self.code = ""

    async def activate(self, count: int = 1000) -> None:
        """An activation code of the default account for `register`."""
        created = await ActivationService(self.ctx).create_activation(
            await default_scope(self.ctx), ActivationSpec(instance_count=count))
        self.activation_id, self.code = created.activation.activation_id, created.code

    def registration(self, machine_id: str, **fields: Any) -> dict[str, Any]:
        """The official agent's registration body (agent-protocol §3), `fields` changed."""
        return {
            "activationCode": self.code, "machineId": machine_id, "regionId": "cn-hangzhou",
            "instanceName": "fuzz-box", "hostname": "vm", "intranetIp": "<nil>", "osVersion": "Linux_x86_64",
            "osType": "linux", "agentVersion": "2.2.3.578", "publicKey": self.public_key,
            "activationId": self.activation_id, "tag": [{"key": "env", "value": "test"}], **fields,
        }

    async def register(self, **fields: Any) -> tuple[str, str]:
        """A newly registered instance: (instance id, machine id)."""
        machine_id = uuid.uuid4().hex
        answer = await self.post("/luban/api/instance/register",
                                 body=json.dumps(self.registration(machine_id, **fields)).encode())
        body = self.check(answer)
        assert answer.status == 200, body
        return str(body["instanceId"]), machine_id

    def sign(self, instance_id: str, machine_id: str, *, request_id: str | None = None,
             timestamp: int | None = None) -> list[tuple[str, str]]:
        """The four signing headers of `instance_id`, timed by the server's clock."""
        stamp = str(int(self.ctx.clock.now().timestamp() * 1000) if timestamp is None else timestamp)
        rid = str(uuid.uuid4()) if request_id is None else request_id
        signature = self.key.sign((instance_id + machine_id + stamp + rid).encode(), padding.PKCS1v15(),
                                  hashes.MD5())  # noqa: S303 - the agent protocol's
        return [("X-Acs-Instance-Id", instance_id), ("X-Acs-Timestamp", stamp), ("X-Acs-Request-Id", rid),
                ("X-Acs-Signature", base64.b64encode(signature).decode())]

    async def post(self, path: str, query: bytes = b"", *, body: bytes = b"",
                   headers: Sequence[tuple[str, str]] = (), content_type: str = JSON_UTF8) -> Answer:
        base = [("User-Agent", USER_AGENT), ("Content-Type", content_type)]
        return await http(self.app, "POST", path, query, [*base, *headers], body)

    def check(self, answer: Answer, context: str = "") -> dict[str, Any]:
        """Assert what holds for every HTTP answer of the agent face, and return its JSON object ({} for the
        plain `ok` of connection_detect): below 500, nothing raised, no traceback logged, and either a success
        or exactly the refusal shape with `code` equal to the status."""
        where = (f"{context}\n-> {answer.status} {answer.body[:500]!r}\nraised: {answer.raised!r}\n"
                 f"server log:\n{self.log.text()[-3000:]}")
        assert answer.raised is None, where
        assert answer.status < 500, where
        assert "Traceback" not in self.log.text(), where
        if answer.status == 200 and answer.body == b"ok":
            return {}
        assert answer.headers.get("content-type") == "application/json", where
        try:
            body = json.loads(answer.body)
        except ValueError:
            raise AssertionError(f"not JSON: {where}") from None
        assert isinstance(body, dict), where
        if answer.status == 200:
            assert body.get("code") == 200 or set(body) == {"errCode", "errMsg", "result"}, where
        else:
            assert 400 <= answer.status < 500, where
            assert set(body) == REFUSAL_KEYS, where
            assert body["code"] == answer.status, where
            assert isinstance(body["errCode"], str), where
            assert body["errCode"], where
            assert isinstance(body["errMsg"], str), where
        return body

    def check_session(self, session: Session, context: str = "") -> None:
        """A websocket session: nothing raised, no traceback logged, never closed as an internal error (1011)."""
        where = f"{context}\n-> {session.sent!r:.800}\nraised: {session.raised!r}\nlog:\n{self.log.text()[-3000:]}"
        assert session.raised is None, where
        assert "Traceback" not in self.log.text(), where
        assert session.close_code != 1011, where
        if not session.accepted:
            assert session.close_code is not None, where


def query(pairs: Mapping[str, str] | Sequence[tuple[str, str]]) -> bytes:
    """A query string as Go's url.QueryEscape writes one."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in items).encode()
