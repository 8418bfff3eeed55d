"""Fuzzing the agent face (`/luban/api/...` and `/luban/notify_server`) as a hostile peer could: whatever the
method, path, query string, headers, body or websocket frames, signed with a registered instance's real key
or not, the answer is below 500 in the agent face's shape (agentwire.AgentFace.check), no traceback is
logged, and what is stored stays sound: another instance's executions are untouched, and this instance's
records still read back through the API with values in range.

Signed requests name this instance's real tasks (a one-time command, a scheduled one, a file) among their
`taskId`s, so reports get past authentication and validation and reach the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from agentwire import JSON_UTF8, TEXT_UTF8, USER_AGENT, AgentFace, http, query, websocket
from apiwire import Api, ServerLog
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cloudassist.services.context import Context

pytestmark = pytest.mark.asyncio

#: Examples per engine and test; CLOUDASSIST_FUZZ_EXAMPLES raises it for a longer hunt.
EXAMPLES = int(os.environ.get("CLOUDASSIST_FUZZ_EXAMPLES", "120"))
INT64 = 2**63
Draw = Callable[[st.SearchStrategy[Any]], Any]

KINDS = ("running", "finish", "timeout", "error", "stopped", "invalid")
#: Every path the agent protocol names (agent-protocol §1.3), and some it does not.
PATHS = (
    "instance/register", "connection_detect", "heart-beat", "v1/task/list", *(f"v1/task/{k}" for k in KINDS),
    "v1/task/verified", "metrics", "v1/update/update_check", "gshell", "v1/session/list", "v1/plugin/list",
    "v2/plugin/update_check", "v1/plugin/report_status", "instance/list_instance_state_configurations",
    "client_report", "v1/task/",
    "v1/task/unknown", "v1/task/finish/", "v1/task/finish/x", "", "../../etc/passwd", "heart-beat%00",
    "instance/deregister",
)
INT_EDGES = (
    "", " ", "0", "-1", "1", "7", str(INT64 - 1), str(INT64), str(-INT64), str(-INT64 - 1), str(2**31),
    str(2**32 + 1), "9" * 19, "9" * 40, "9" * 5000, "1e3", "1.5", "nan", "inf", "0x10", "+5", " 7 ", "1_000",
    "１２", "٣", "007", "-0", "true", str(10**14), str(10**14 + 1), str(-(10**14)),
)
TEXT_EDGES = (
    "", " ", "a", "é", "日本語", "🚀" * 100, "\x00", "a\x00b", "\x01\x7f", "\ufffe", "x" * 64, "x" * 65, "x" * 129,
    "x" * 256, "x" * 100_000, "%", "%ZZ", "+", "&", "=", "<nil>", "null", "completed", "killed", "-9", "workingDir",
    "username", "windowsPasswordName", "sendfile", "startup", "true",
)
QUERY_KEYS = (
    "taskId", "invokeVersion", "start", "end", "exitCode", "exitcode", "dropped", "outputOffset", "errCode",
    "errDesc", "param", "value", "result", "taskType", "status", "errorcode", "errorCode", "reason", "cold_start",
    "currentTime", "offset", "timeZone", "uptime", "timestamp", "pid", "index", "seq_no", "machineid", "os_version",
)
INT_KEYS = frozenset({"invokeVersion", "start", "end", "exitCode", "exitcode", "dropped", "outputOffset",
                      "errorcode", "errorCode", "currentTime", "offset", "uptime", "timestamp", "pid", "index",
                      "seq_no"})
USER_AGENTS = (
    USER_AGENT, "", "/", "x/", "x/ ", "x/  y", "linux_amd64/", "/2.2.3.578", "linux_amd64/" + "9" * 100,
    "linux_amd64/2.2.3.578 extra", "linux_amd64/\x00", "linux_amd64/\t", "linux_amd64/é" * 50, "curl/8.0",
    "a/b/c", "linux_amd64/2.2.3.578" + " " * 10,
)
CONTENT_TYPES = (JSON_UTF8, TEXT_UTF8, "application/x-www-form-urlencoded", "", "multipart/form-data; boundary=x",
                 "application/json; charset=latin-1", "é/é")


def deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


JSON_VALUES: tuple[Any, ...] = (
    None, True, False, 0, 1, -1, INT64, 1.5, 1e308, "", "x", "x" * 300, "\x00", [], {}, [1], ["x"], [None],
    [{}], [{"key": 1, "value": True}], [{"key": None}], [{"key": ["x"]}], [{"key": "k" * 65, "value": "v"}],
    {"key": "a"}, [{"key": "a", "value": "b"}] * 25, [{"key": {"a": 1}, "value": [1]}],
)


@dataclass
class World:
    """The fuzzing instance (signed requests come from it), its tasks, and a bystander's task."""

    face: AgentFace
    api: Api
    instance_id: str
    machine_id: str
    task_ids: list[str]
    bystander: str
    bystander_task: str

    async def snapshot(self, invoke_id: str, instance_id: str) -> Any:
        """What the API says of one instance's execution of a task (RequestId left out)."""
        action = "DescribeSendFileResults" if invoke_id.startswith("f-") else "DescribeInvocationResults"
        params = {"InvokeId": invoke_id, "InstanceId": instance_id}
        if action == "DescribeInvocationResults":
            params["IncludeHistory"] = "true"
        body = await self.api.ok(action, params)
        body.pop("RequestId", None)
        return body


async def run_on(api: Api, instance_id: str, **extra: str) -> str:
    body = await api.ok("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo fuzz",
                                       "InstanceId.1": instance_id, **extra})
    return str(body["InvokeId"])


@pytest.fixture
async def world(ctx: Context, api: Api, server_log: ServerLog) -> World:
    face = AgentFace(ctx, server_log)
    await face.activate()
    instance_id, machine_id = await face.register()
    bystander, bystander_machine = await face.register(instanceName="bystander")
    for iid, mid in ((instance_id, machine_id), (bystander, bystander_machine)):
        face.check(await http(face.app, "GET", "/luban/api/heart-beat", b"", face.sign(iid, mid)))
    tasks = [
        await run_on(api, instance_id),
        await run_on(api, instance_id, RepeatMode="Period", Frequency="rate(5m)"),
        str((await api.ok("SendFile", {"Name": "f.txt", "Content": "aGk=", "ContentType": "Base64",
                                       "TargetDir": "/tmp", "InstanceId.1": instance_id}))["InvokeId"]),
    ]
    bystander_task = await run_on(api, bystander)
    answer = await http(face.app, "POST", "/luban/api/v1/task/list", b"reason=startup&cold_start=true",
                        face.sign(instance_id, machine_id))
    face.check(answer)
    server_log.clear()
    return World(face, api, instance_id, machine_id, tasks, bystander, bystander_task)


# ------------------------------------------------------------------------------------------------ strategies

safe_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def query_value(draw: Draw, key: str, world: World) -> str:
    if key == "taskId":
        return str(draw(st.sampled_from([*world.task_ids, world.bystander_task, "t-none", "f-none", "",
                                         "x" * 100_000, "\x00", "é" * 65])))
    if key == "taskType":
        return str(draw(st.sampled_from(("sendfile", "", "SENDFILE", "x"))))
    if key in INT_KEYS:
        return str(draw(st.one_of(st.sampled_from(INT_EDGES), st.integers(-(2**70), 2**70).map(str))))
    return str(draw(st.one_of(st.sampled_from(TEXT_EDGES), safe_text)))


@st.composite
def query_strings(draw: Draw, world: World) -> bytes:
    """Mostly well-formed `k=v` pairs of the protocol's keys, sometimes raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return bytes(draw(st.sampled_from((b"%ff%fe=1", b"taskId=%ff", b"&&&==&", b"a=%00", b"%", b"=" * 1000,
                                           b"taskId=" + b"t" * 300_000, b"exitCode=1&exitCode=2&" * 2000))))
    keys = draw(st.lists(st.sampled_from(QUERY_KEYS), max_size=12))
    if draw(st.booleans()):
        keys = ["taskId", *keys]
    return query([(k, query_value(draw, k, world)) for k in keys])


def json_value(depth: int = 0) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.sampled_from(JSON_VALUES), safe_text, st.integers(-(2**70), 2**70))
    if depth >= 2:
        return leaves
    return st.one_of(leaves, st.lists(json_value(depth + 1), max_size=3),
                     st.dictionaries(safe_text, json_value(depth + 1), max_size=3))


@st.composite
def registration_bodies(draw: Draw, world: World) -> bytes:
    """The official agent's registration body with some fields changed, dropped or given another JSON type;
    or a body that is not that at all."""
    case = draw(st.integers(0, 9))
    if case == 0:
        return bytes(draw(st.sampled_from((
            b"", b"null", b"[]", b"1", b'"x"', b"{", b"\xff\xfe", deep(5000).encode(),
            deep(5000, "{\"a\":", "}").encode(),
            b'{"tag":' + deep(3000).encode() + b"}", b'{"tag": ' + b"[" * 100_000 + b"}", b"{}" * 10,
            json.dumps({"x": "y" * 2_000_000}).encode(), b'{"a": NaN}', b'{"a": 1e999}', b'\xef\xbb\xbf{}'))))
    body: dict[str, Any] = world.face.registration(draw(st.sampled_from(("m" * 32, "", "m" * 129, "\x00"))))
    for name in draw(st.lists(st.sampled_from(sorted(body)), max_size=4, unique=True)):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            del body[name]
        else:
            body[name] = draw(json_value())
    if draw(st.booleans()):
        body["tag"] = draw(st.sampled_from(JSON_VALUES))
    return json.dumps(body).encode()


@st.composite
def report_bodies(draw: Draw) -> bytes:
    return bytes(draw(st.one_of(st.binary(max_size=64), st.sampled_from(
        (b"", b"\x00" * 10, "é🚀".encode() * 10, b"\xff" * 100, b"x" * 30_000, b"y" * 1_100_000)))))


class Http:
    """One request, shown abridged when Hypothesis reports a failing example."""

    def __init__(self, method: str, path: str, query: bytes, headers: list[tuple[str, str]], body: bytes,
                 chunk: int) -> None:
        self.method, self.path, self.query, self.headers, self.body, self.chunk = (
            method, path, query, headers, body, chunk)

    def __repr__(self) -> str:
        return (f"Http({self.method} {self.path[:120]!r}?{self.query[:200]!r} headers={self.headers!r:.600} "
                f"body[{len(self.body)}]={self.body[:200]!r})")


@st.composite
def requests(draw: Draw, world: World) -> Http:
    face = world.face
    signing = draw(st.sampled_from(("signed", "signed", "signed", "unsigned", "bad", "other", "replayed")))
    path = draw(st.one_of(st.sampled_from(PATHS).map(lambda p: "/luban/api/" + p),
                          st.sampled_from(("/", "/luban", "/luban/api", "/luban/notify_server", "/LUBAN/api/heart-beat",
                                           "/luban/api/heart-beat/", "/luban/api//heart-beat")),
                          safe_text.map(lambda t: "/luban/api/" + t.replace("\x00", "")),
                          safe_text.map(lambda t: "/" + t)))
    if path.endswith("instance/register") and signing != "unsigned" and draw(st.booleans()):
        signing = "unsigned"
    if path.endswith("instance/deregister") and signing in ("signed", "replayed"):
        signing = "bad"  # a signed deregistration would end the fuzzing instance for the examples after it
    method = draw(st.sampled_from(("POST", "POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")))
    headers: list[tuple[str, str]] = [("User-Agent", draw(st.sampled_from(USER_AGENTS)))]
    if draw(st.integers(0, 4)):
        headers.append(("Content-Type", draw(st.sampled_from(CONTENT_TYPES))))
    if signing == "signed":
        headers += face.sign(world.instance_id, world.machine_id)
    elif signing == "replayed":
        headers += face.sign(world.instance_id, world.machine_id, request_id="replayed-request-id")
    elif signing == "other":
        headers += face.sign(world.bystander, world.machine_id)  # the bystander's id, this instance's key
    elif signing == "bad":
        names = ("X-Acs-Instance-Id", "X-Acs-Timestamp", "X-Acs-Request-Id", "X-Acs-Signature")
        good = dict(face.sign(world.instance_id, world.machine_id))
        broken = draw(st.sampled_from(names))
        good[broken] = draw(st.one_of(st.sampled_from(("", " ", "x" * 129, "9" * 40, "-1", "\x00", "é", "=",
                                                       str(INT64), "1e3", "AAAA", "mi-" + "x" * 70)), safe_text))
        headers += list(good.items())
    if draw(st.integers(0, 5)) == 0:
        headers.append(draw(st.sampled_from((("Content-Length", "-1"), ("Content-Length", "9" * 30),
                                             ("Transfer-Encoding", "chunked"), ("Accept-Encoding", "gzip"),
                                             ("X-Acs-Instance-Id", world.bystander), ("Host", "é" * 300)))))
    body = (draw(registration_bodies(world)) if path.endswith("instance/register")
            else draw(report_bodies()))
    return Http(method, path, draw(query_strings(world)), headers, body, draw(st.sampled_from((65536, 7, 1 << 20))))


@st.composite
def frame_lists(draw: Draw) -> list[str | bytes]:
    return list(draw(st.lists(st.one_of(
        st.sampled_from(("accept:kick_vm", "unknow:x", "keepalive", "", "x" * 2_000_000, "\x00", "é")),
        st.binary(max_size=32), st.just(b"\xff" * 100_000), safe_text), max_size=4)))


# ------------------------------------------------------------------------------------------------ checks

async def still_sound(world: World, before: Any) -> None:
    """The bystander's execution is as it was, and this instance's records read back in range."""
    assert await world.snapshot(world.bystander_task, world.bystander) == before, "the bystander's record changed"
    for task_id in world.task_ids:
        body = await world.snapshot(task_id, world.instance_id)
        text = json.dumps(body)
        for number in _numbers(body):
            assert -INT64 <= number < INT64, text[:2000]


def _numbers(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


FUZZ = settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])


@FUZZ
@given(data=st.data())
async def test_any_request_is_answered_below_500_in_the_agent_shape(world: World, data: st.DataObject) -> None:
    """Any method, path, query string, headers and body, signed by the instance's real key or not: the answer
    is a success or a 4xx refusal `{code, errCode, errMsg}`, nothing is logged as a traceback, and the stored
    records stay sound."""
    before = await world.snapshot(world.bystander_task, world.bystander)
    request = data.draw(requests(world), label="request")
    world.face.log.clear()
    answer = await http(world.face.app, request.method, request.path, request.query, request.headers,
                        request.body, request.chunk)
    world.face.check(answer, repr(request))
    await still_sound(world, before)


@FUZZ
@given(data=st.data())
async def test_any_websocket_session_ends_without_an_internal_error(world: World, data: st.DataObject) -> None:
    """A websocket upgrade signed or not, with any frames (text, binary, empty, huge): no exception escapes,
    nothing is logged as a traceback, the socket is never closed as an internal error (1011), and a refused
    upgrade is closed (1008) before it is accepted."""
    face = world.face
    signing = data.draw(st.sampled_from(("signed", "unsigned", "bad")), label="signing")
    headers: list[tuple[str, str]] = [("User-Agent", data.draw(st.sampled_from(USER_AGENTS), label="ua"))]
    if signing == "signed":
        headers += face.sign(world.instance_id, world.machine_id)
    elif signing == "bad":
        headers += face.sign(world.instance_id, world.machine_id, timestamp=data.draw(
            st.sampled_from((0, -1, 2**70, 10**14)), label="timestamp"))
    frames = data.draw(frame_lists(), label="frames")
    query_string = data.draw(st.sampled_from((b"", b"a=%ff", b"x" * 10_000)), label="query")
    face.log.clear()
    session = await websocket(face.app, headers, frames, query=query_string)
    face.check_session(session, f"{signing} {headers!r:.300} frames={[f[:40] for f in frames]!r}")
    if signing == "signed":
        assert session.accepted, session.sent
    else:
        assert not session.accepted, session.sent
        assert session.close_code == 1008, session.sent


# ------------------------------------------------------------------------------------------------ known crashers

def _report(kind: str, task: str, **pairs: str) -> bytes:
    return query({"taskId": task, "invokeVersion": "1", "start": "1700000000000", **pairs})


async def test_known_crashers_are_refused_or_taken(world: World) -> None:
    """Each request that once answered 500 (or raised out of the app) now gets a 4xx refusal or a success,
    and leaves the records sound; every one is tried (a failure lists all that still crash)."""
    face, once, period, file_task = world.face, *world.task_ids
    register = "/luban/api/instance/register"
    unsigned: list[tuple[str, bytes, bytes, str]] = [
        (register, b"", json.dumps(face.registration("m" * 32, tag=7)).encode(), USER_AGENT),
        (register, b"", json.dumps(face.registration("m" * 32, tag=True)).encode(), USER_AGENT),
        (register, b"", json.dumps(face.registration("m" * 32, tag=1.5)).encode(), USER_AGENT),
        (register, b"", json.dumps(face.registration("m" * 32, tag=[{"key": "k", "value": "v"}] * 25)).encode(),
         USER_AGENT),
        (register, b"", deep(5000).encode(), USER_AGENT),
        (register, b"", ('{"tag":' + deep(3000) + "}").encode(), USER_AGENT),
        (register, b"", deep(5000, '{"a":', "}").encode(), USER_AGENT),
    ]
    signed: list[tuple[str, bytes, bytes, str]] = [
        ("/luban/api/heart-beat", b"", b"", "x/ "),
        ("/luban/api/heart-beat", b"", b"", "linux_amd64/\t"),
        ("/luban/api/v1/task/finish", _report("finish", once, exitCode=str(INT64)), b"", USER_AGENT),
        ("/luban/api/v1/task/finish", _report("finish", once, exitCode=str(-INT64 - 1)), b"", USER_AGENT),
        ("/luban/api/v1/task/stopped", _report("stopped", period, exitcode="9" * 30), b"", USER_AGENT),
        ("/luban/api/v1/task/running", _report("running", once, dropped=str(INT64)), b"out", USER_AGENT),
        ("/luban/api/v1/task/running", _report("running", once, outputOffset=str(-INT64 * 4)), b"out", USER_AGENT),
        ("/luban/api/v1/task/running", _report("running", once, invokeVersion=str(INT64 * 2)), b"", USER_AGENT),
        ("/luban/api/v1/task/finish", _report("finish", file_task, taskType="sendfile", errorcode=str(INT64),
                                              status="failed"), b"", USER_AGENT),
        ("/luban/api/v1/task/finish", _report("finish", once, exitCode="0"), b"", USER_AGENT),
    ]
    crashed = []
    for path, query_string, body, agent in [*unsigned, *signed]:
        headers = [("User-Agent", agent), ("Content-Type", JSON_UTF8)]
        if (path, query_string, body, agent) in signed:
            headers += face.sign(world.instance_id, world.machine_id)
        face.log.clear()
        answer = await http(face.app, "POST" if "heart-beat" not in path else "GET", path, query_string,
                            headers, body)
        try:
            face.check(answer)
        except AssertionError as exc:
            crashed.append(f"{path}?{query_string[:120]!r} {body[:60]!r} UA={agent!r}: {str(exc).splitlines()[1]} "
                           f"{answer.raised!r}")
    binary = await websocket(face.app, face.sign(world.instance_id, world.machine_id), [b"\x00\x01"])
    try:
        face.check_session(binary)
    except AssertionError as exc:
        crashed.append(f"websocket binary frame: {str(exc).splitlines()[0:2]} {binary.raised!r}")
    assert not crashed, f"{len(crashed)} still crash:\n" + "\n".join(crashed)
    await still_sound(world, await world.snapshot(world.bystander_task, world.bystander))


