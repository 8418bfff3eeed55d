"""Fuzzing every registered action through the wire: whatever the parameters, the server answers with
its own envelope (never a 5xx), in the format asked for.

Parameter sets are generated from each action's declared `Param`s: every parameter is absent, a
well-typed value (ids that exist in the store among them, so requests get past validation and reach
the database), or an edge value (empty, numbers at and past int64, unicode, lengths just past the
documented limits, 100 KB strings, invalid Base64, JSON that is not an object or nests deeply, lists of
0/1/101/1000 items or with gaps, object lists with missing or unknown fields). How many parameters get
an edge value varies per example, so a single bad value among good ones is tried as often as many.
Requests are signed (v1) with the server's clock and sent as GET or POST, in the query or as a form
body, asking for JSON or XML.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from apiwire import LINUX_1, LINUX_2, REGION, WINDOWS, Api
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cloudassist.api.rpc import actions
from cloudassist.api.rpc.params import Param
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.domain.paging import encode_token
from cloudassist.domain.statuses import InvocationStatus, LegacyStatus, TaskStatus

pytestmark = pytest.mark.asyncio

ACTIONS = actions.load()
NAMES = sorted(ACTIONS)
#: Examples per engine: about 15 per registered action, bounded so the file stays under a minute on
#: 2 cores with both engines (the example database replays any failure found before, so runs add up).
EXAMPLES = max(100, min(15 * len(NAMES), 250))
#: httpx refuses URLs longer than 64 KiB; longer requests go as a form body.
URL_LIMIT = 60_000

Draw = Callable[[st.SearchStrategy[Any]], Any]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def deep_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def lengths(char: str) -> tuple[str, ...]:
    """Strings just at and just past the lengths the API documents or the schema stores."""
    return tuple(char * n for n in (64, 65, 100, 101, 128, 129, 200, 201, 255, 256, 257, 512, 513, 1024, 1025))


INT64 = 2**63
#: Values for any parameter: empty, spellings of numbers, booleans and floats, unicode, markup,
#: control characters, NUL (refused early), lengths at the limits, 100 KB, invalid Base64, JSON that is
#: not an object or nests too deep for a recursive decoder, and strings that mean something elsewhere.
EDGE_STRINGS: tuple[str, ...] = (
    "", " ", "0", "-1", "1", str(INT64), str(INT64 - 1), str(-INT64), str(-INT64 - 1), "9" * 40, "9" * 5000,
    "TRUE", "True", "false", "nan", "NaN", "-inf", "Infinity", "1e3", "0x10", "1_000", " 7 ", "１２", "٣",
    "null", "None", "[]", "{}", "[1, 2]", '"text"', "[{}]", '{"a": [1, {"b": null}]}', "{'a': 1e999}",
    "é", "日本語テキスト", "🚀🔥👩‍👩‍👧", "\u202eevil\ufeff\u2028", "ℌ𝔢𝔩𝔩𝔬", "<a>&amp;</a>]]>", "\x01\x08\x0b\x1f\x7f",
    "\ufffe\uffff", "a\x00b", "x" * 100_000, "é" * 20_000, "🚀" * 10_000, "!!!not base64!!!", "QQ=", "====",
    "A" * 40_000, "AAAA" * 6145, "[" * 5000, "[" * 3000 + "]" * 3000, deep_json(3000), "{'a': " * 3000,
    "(" * 3000 + ")" * 3000, "c-", "t-", "mi-", "%00", "%ZZ", "+", "a&b=c", "../../etc/passwd",
    "' OR 1=1 --", "\\", "$(reboot)", "{{name}}", "{{acs::instanceId}}", "{{ }}", "{{" + "x" * 100 + "}}",
    *lengths("x"), *lengths("é"), *lengths("🚀"),
)
INT_EDGES: tuple[str, ...] = (
    "", " ", "0", "-1", "1", "9", "10", "51", "101", "1001", str(INT64 - 1), str(INT64), str(-INT64),
    str(-INT64 - 1), str(2**62), str(2**53 + 1), str(2**31), str(2**32 + 1), "9" * 19, "9" * 40, "9" * 5000,
    "1e3", "1.0", "nan", "TRUE", "0x10", "+5", " 7 ", "1_000", "１２", "٣", "007", "-0",
)
BOOL_EDGES: tuple[str, ...] = ("", " ", "TRUE", "True", "tRuE", "FALSE", " true ", "yes", "1", "0", "t", "nan", "null")
JSON_EDGES: tuple[str, ...] = (
    "", "null", "[]", "[1, 2]", '"text"', "1", "{}", "nan", "{'a': 1e999}", "{1: 'x'}", "{(1, 2): 'x'}",
    "{1: 'x', 'a': 'y'}", "{None: 'x'}", "{'a': b'x'}", "{'a': {1, 2}}", "{'a': ('x',)}", '{"": "x"}',
    '{"a": null}', '{"a": 1}', '{"a": ["x"]}', '{"a": {"b": "c"}}', '{"A": "x", "a": "y"}', '{"a": "x", "a": "y"}',
    json.dumps({f"k{i}": "v" for i in range(11)}), json.dumps({"k" * 65: "v"}), json.dumps({"name": "v" * 100_000}),
    "[" * 3000, deep_json(3000), "{'a': " + "[" * 3000 + "]" * 3000 + "}", "{'a': " + "(" * 300 + ")" * 300 + "}",
    "{'a': 9**9**9}", "{" + "'a': 1, " * 5000 + "}", "{'a': 1",
)
TOKEN_EDGES: tuple[str, ...] = (
    *(encode_token(v) for v in ("abc", "-5", "0", "1.5", " 7", "9" * 19, "9" * 30, str(INT64), str(INT64 - 1),
                                str(-INT64 - 1), "", "²", "①", "١٢", "𝟗")),
    "!!!", "YQ", "=", "%%%", "_-_-", "x" * 5000,
)
NONCE_EDGES: tuple[str, ...] = ("n" * 128, "n" * 129, "n" * 5000, "é" * 128, "é" * 129, "🚀" * 129, " ", "k" * 65)
ID_EDGES: tuple[str, ...] = (
    "", " ", "c-", "t-", "mi-", "i-", "*", "%", "_", "c-%", "' OR '1'='1", "x" * 65, "x" * 100_000, "é" * 64,
    "é" * 65, "🚀" * 64, f"{LINUX_1} ", LINUX_1.upper(), f"{LINUX_1},{LINUX_2}",
)

COMMAND_TYPES = ("RunShellScript", "RunBatScript", "RunPowerShellScript")
STATUSES = sorted({s.value for s in (*InvocationStatus, *TaskStatus, *LegacyStatus)})
CONTENTS = (b64("echo hello"), "echo hello", b64("echo {{name}}"), "echo {{name}}", b64("{{acs::instanceId}}"),
            b64("echo {{a}} {{b}}"), "")
ID_NAMES = frozenset({"CommandId", "InvokeId", "InstanceId", "ActivationId"})

safe_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=24)
ascii_token = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=64)


class Seeds:
    """Ids that exist in the store, so well-typed values find something."""

    def __init__(self, command_ids: list[str], invoke_ids: list[str], activation_ids: list[str]) -> None:
        self.command_ids = command_ids
        self.invoke_ids = invoke_ids
        self.activation_ids = activation_ids


def typed_str(name: str, seeds: Seeds) -> st.SearchStrategy[str]:
    """A plausible value of the string parameter `name`."""
    known: dict[str, st.SearchStrategy[str]] = {
        "RegionId": st.sampled_from((REGION, REGION, REGION, "cn-beijing")),
        "Type": st.sampled_from(COMMAND_TYPES),
        "CommandType": st.sampled_from(COMMAND_TYPES),
        "ContentEncoding": st.sampled_from(("PlainText", "Base64", "plaintext", "BASE64")),
        "CommandContent": st.sampled_from(CONTENTS),
        "CommandId": st.sampled_from([*seeds.command_ids, "c-hz00000000000000000000"]),
        "InvokeId": st.sampled_from([*seeds.invoke_ids, "t-hz00000000000000000000"]),
        "ActivationId": st.sampled_from([*seeds.activation_ids, "4A2B8C1D-0000-0000-0000-000000000000"]),
        "InstanceId": st.sampled_from((LINUX_1, LINUX_2, WINDOWS, "mi-hz00000000000000000000")),
        "RepeatMode": st.sampled_from([m.value for m in RepeatMode]),
        "Frequency": st.sampled_from(("0 */10 * * * *", "rate(5m)", "at(2026-12-01 10:00:00 Asia/Shanghai)", "x")),
        "TerminationMode": st.sampled_from([m.value for m in TerminationMode]),
        "InvokeStatus": st.sampled_from(STATUSES),
        "InvokeRecordStatus": st.sampled_from(STATUSES),
        "NextToken": st.integers(0, 100).map(lambda n: encode_token(str(n))),
        "ClientToken": ascii_token,
        "Provider": st.just("AlibabaCloud"),
        "InstanceName": st.sampled_from(("web-1", "db", "a.b_c-d", "测试")),
        "IpAddressRange": st.sampled_from(("0.0.0.0/0", "192.168.1.0/24", "10.0.0.1-10.0.0.9", "::/0", "1.2.3.4")),
        "OsType": st.sampled_from(("Linux", "Windows", "linux", "FreeBSD")),
        "OSType": st.sampled_from(("Linux", "Windows", "all", "FreeBSD")),
        "Connected": st.sampled_from(("true", "false")),
        "InstanceIp": st.sampled_from(("10.0.0.1", "::1", "")),
    }
    return known.get(name, safe_text)


def scalar(param: Param, seeds: Seeds) -> st.SearchStrategy[str]:
    """A well-typed value of a str, int, bool or json parameter."""
    if param.kind == "int":
        return st.one_of(st.integers(-5, 120), st.sampled_from((1, 10, 50, 51, 60, 1000, 86_400, 86_401))).map(str)
    if param.kind == "bool":
        return st.sampled_from(("true", "false", "True", "FALSE"))
    if param.kind == "json":
        return st.one_of(
            st.sampled_from(('{"name": "v"}', "{'name': 'v'}", "{}", '{"a": "1", "b": "2"}', '{"name": 1}')),
            st.dictionaries(safe_text, st.one_of(safe_text, st.integers(), st.none()), max_size=12).map(json.dumps))
    return typed_str(param.name, seeds)


def edge_scalar(param: Param) -> st.SearchStrategy[str]:
    """An edge value for a scalar parameter: mostly one aimed at its kind, sometimes any."""
    aimed = {"int": INT_EDGES, "bool": BOOL_EDGES, "json": JSON_EDGES}.get(param.kind)
    if aimed is None and param.name == "NextToken":
        aimed = TOKEN_EDGES
    elif aimed is None and param.name in ID_NAMES:
        aimed = ID_EDGES
    anything = st.sampled_from(EDGE_STRINGS)
    return anything if aimed is None else st.one_of(st.sampled_from(aimed), st.sampled_from(aimed), anything)


def numbered(name: str, values: list[str], indices: list[int] | None = None) -> dict[str, str]:
    """`Name.N=value` for each value, numbered 1.. or by `indices`."""
    numbers = indices if indices is not None else list(range(1, len(values) + 1))
    return {f"{name}.{n}": v for n, v in zip(numbers, values, strict=False)}


def list_param(draw: Draw, param: Param, seeds: Seeds, edge: bool) -> dict[str, str]:
    """A flattened `Name.N` list: a few plausible items, or an edge case of size, numbering or form."""
    name = param.name
    item_strategy = typed_str(name, seeds) if name in ID_NAMES else safe_text
    if not edge:
        items = draw(st.lists(item_strategy, min_size=1, max_size=3))
        gaps = draw(st.booleans())
        indices = sorted(draw(st.sets(st.integers(1, 20), min_size=len(items), max_size=len(items)))) if gaps else None
        return numbered(name, items, indices)
    case = draw(st.sampled_from(("empty-item", "one", "51", "101", "1000", "gaps", "zero", "huge-index",
                                 "seven-digits", "bare-json", "bare-json-objects", "bare-not-list", "bare-not-json",
                                 "bare-deep", "bare-and-numbered", "with-field", "edge-item", "duplicates")))
    item = draw(item_strategy)
    if case == "empty-item":
        return {f"{name}.1": ""}
    if case == "one":
        return {f"{name}.1": item}
    if case in ("51", "101", "1000"):
        return numbered(name, [f"{item}{i}" if i % 2 else item for i in range(int(case))])
    if case == "duplicates":
        return numbered(name, [LINUX_1] * 101)
    if case == "gaps":
        return {f"{name}.1": item, f"{name}.7": LINUX_2, f"{name}.3": ""}
    if case == "zero":
        return {f"{name}.0": item, f"{name}.1": LINUX_1}
    if case == "huge-index":
        return {f"{name}.999999": item, f"{name}.000001": LINUX_2}
    if case == "seven-digits":
        return {f"{name}.1234567": item}
    if case == "bare-json":
        return {name: json.dumps([item, LINUX_1])}
    if case == "bare-json-objects":
        return {name: json.dumps([{"Key": item, "Value": {"nested": [1]}}, 5, None])}
    if case == "bare-not-list":
        return {name: draw(st.sampled_from(('{"a": 1}', '"x"', "7", "null")))}
    if case == "bare-not-json":
        return {name: item or "not json"}
    if case == "bare-deep":
        return {name: draw(st.sampled_from(("[" * 3000 + "]" * 3000, "[" * 3000, "[" + deep_json(3000) + "]")))}
    if case == "bare-and-numbered":
        return {name: json.dumps([LINUX_1]), f"{name}.2": item}
    if case == "with-field":
        return {f"{name}.1.Key": item, f"{name}.2": LINUX_1}
    return {f"{name}.1": draw(st.sampled_from(ID_EDGES + EDGE_STRINGS))}


def objects_param(draw: Draw, param: Param, edge: bool) -> dict[str, str]:
    """A flattened `Name.N.Field` list of objects, plausible or broken in one of several ways."""
    name, (key_field, value_field) = param.name, (*param.fields, "Value")[:2]

    def entry(n: int, key: str | None, value: str | None) -> dict[str, str]:
        out = {}
        if key is not None:
            out[f"{name}.{n}.{key_field}"] = key
        if value is not None:
            out[f"{name}.{n}.{value_field}"] = value
        return out

    if not edge:
        pairs = draw(st.lists(st.tuples(st.sampled_from(("env", "team", "owner")) | safe_text,
                                        st.sampled_from(("fuzz", "a", "")) | safe_text), min_size=1, max_size=3))
        out: dict[str, str] = {}
        for n, (key, value) in enumerate(pairs, start=1):
            out.update(entry(n, key, value))
        return out
    case = draw(st.sampled_from(("missing-key", "missing-value", "empty-key", "unknown-field", "no-field", "20",
                                 "21", "101", "1000", "duplicate", "case-duplicate", "reserved", "long", "longest",
                                 "gaps", "bare-json", "bare-not-objects", "bare-deep", "edge-key", "edge-value")))
    if case == "missing-key":
        return entry(1, None, "v")
    if case == "missing-value":
        return entry(1, "k", None)
    if case == "empty-key":
        return entry(1, "", "v")
    if case == "unknown-field":
        return {**entry(1, "k", "v"), f"{name}.1.Foo": "x"}
    if case == "no-field":
        return {f"{name}.1": "x"}
    if case in ("20", "21", "101", "1000"):
        out = {}
        for n in range(1, int(case) + 1):
            out.update(entry(n, f"k{n}", "v"))
        return out
    if case == "duplicate":
        return {**entry(1, "env", "a"), **entry(2, "env", "b")}
    if case == "case-duplicate":
        return {**entry(1, "env", "a"), **entry(2, "ENV", "b")}
    if case == "reserved":
        return entry(1, draw(st.sampled_from(("aliyun:x", "acs:y", "http://k", "ALIYUNz"))), "https://v")
    if case == "long":
        return entry(1, "k" * 65, "v" * 129)
    if case == "longest":
        return entry(1, draw(st.sampled_from(("k" * 64, "é" * 64, "🚀" * 64))),
                     draw(st.sampled_from(("v" * 128, "é" * 128, "🚀" * 128))))
    if case == "gaps":
        return {**entry(1, "env", "fuzz"), **entry(7, "team", "x"), **entry(3, None, None)}
    if case == "bare-json":
        return {name: json.dumps([{key_field: "env", value_field: "fuzz"}, {key_field: "a"}])}
    if case == "bare-not-objects":
        return {name: draw(st.sampled_from(("[1, 2]", '["a"]', "[[]]", '{"Key": "a"}')))}
    if case == "bare-deep":
        return {name: "[" * 3000 + "]" * 3000}
    if case == "edge-key":
        return entry(1, draw(st.sampled_from(EDGE_STRINGS)), "v")
    return entry(1, "env", draw(st.sampled_from(EDGE_STRINGS)))


class Request:
    """An action and its parameters, shown briefly (long values and long lists abridged) when
    Hypothesis reports a failing example."""

    def __init__(self, action: str, params: dict[str, str]) -> None:
        self.action = action
        self.params = params

    def __repr__(self) -> str:
        def short(value: str) -> str:
            return repr(value) if len(value) <= 60 else f"{value[:40]!r} + <{len(value) - 40} more chars>"

        items = [f"{k!r}: {short(v)}" for k, v in self.params.items()]
        if len(items) > 25:
            items = [*items[:20], f"<{len(items) - 20} more parameters>"]
        return f"Request({self.action!r}, {{{', '.join(items)}}})"


@st.composite
def parameter_sets(draw: Draw, seeds: Seeds) -> Request:
    """An action, and for each of its declared parameters: absent, well-typed, or an edge value, with
    a per-example share of edge values (none, a few, or many)."""
    name = draw(st.sampled_from(NAMES))
    edge_percent = draw(st.sampled_from((0, 8, 8, 20, 50)))
    params: dict[str, str] = {}
    for param in ACTIONS[name].params:
        roll = draw(st.integers(0, 99))
        if roll < edge_percent:
            choice = "edge"
        elif roll < edge_percent + (100 - edge_percent) // (8 if param.required else 3):
            choice = "absent"  # mostly send what is required, so the action gets past that check
        else:
            choice = "typed"
        if choice == "absent":
            continue
        edge = choice == "edge"
        if param.kind == "list":
            params.update(list_param(draw, param, seeds, edge))
        elif param.kind == "objects":
            params.update(objects_param(draw, param, edge))
        else:
            params[param.name] = draw(edge_scalar(param) if edge else scalar(param, seeds))
    if draw(st.integers(0, 9)) == 0:
        extra = draw(st.sampled_from(("OwnerId", "ResourceOwnerAccount", "Unknown", "RegionId.1", "Tag.1.Key.2")))
        params[extra] = draw(st.sampled_from(EDGE_STRINGS[:20]))
    if draw(st.integers(0, 9)) == 0:  # a nonce or key id of any length or text (signed with them all the same)
        params[draw(st.sampled_from(("SignatureNonce", "AccessKeyId")))] = draw(st.sampled_from(NONCE_EDGES))
    return Request(name, params)


async def try_create(api: Api, action: str, params: dict[str, str], field: str) -> list[str]:
    """The id `field` of a successful `action`, or nothing (a seed the server refuses is not our test)."""
    reply = await api.call(action, params)
    value = reply.body.get(field) if reply.status == 200 else None
    return [value] if isinstance(value, str) else []


@pytest.fixture
async def seeds(api: Api) -> Seeds:
    """A command with a parameter, a task on two Linux instances and an activation, so well-typed ids
    have something to find."""
    commands = await try_create(api, "CreateCommand", {"Name": "seed", "Type": "RunShellScript",
                                                       "CommandContent": b64("echo {{name}}"),
                                                       "EnableParameter": "true"}, "CommandId")
    task = {"Type": "RunShellScript", "CommandContent": "echo seed", "InstanceId.1": LINUX_1, "InstanceId.2": LINUX_2}
    invocations = await try_create(api, "RunCommand", task, "InvokeId")
    activations = []
    if "CreateActivation" in ACTIONS:
        activations = await try_create(api, "CreateActivation", {"InstanceCount": "5"}, "ActivationId")
    return Seeds(commands, invocations, activations)


async def send(api: Api, request: Request, method: str, where: str, fmt: str) -> None:
    """Sign and send `request` as told (as a form body if the URL would be too long for a client), and
    check the answer's envelope."""
    signed = api.sign({"Format": fmt, "Action": request.action, **request.params}, method=method)
    if where == "query" and len(urlencode(signed, quote_via=quote)) > URL_LIMIT:
        method, where = "POST", "form"
        signed = api.sign({"Format": fmt, "Action": request.action, **request.params}, method=method)
    response = await api.send(signed, method=method, where=where)
    api.check(response, "XML" if fmt.upper() == "XML" else "JSON")


#: No shrinking: a request of 20 parameters with 100 KB values takes minutes to shrink, and the report
#: (abridged values, plus the server's exception in the assertion message) already says what broke.
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
async def test_every_action_answers_any_parameters_with_an_envelope(api: Api, seeds: Seeds,
                                                                   data: st.DataObject) -> None:
    """For any action and any parameter set, however malformed, sent any supported way: the status is
    below 500 and the body parses in the asked format as a success (200, with RequestId) or as exactly
    the error envelope {RequestId, HostId, Code, Message, Recommend} with a 4xx status."""
    request = data.draw(parameter_sets(seeds), label="request")
    method, where = data.draw(st.sampled_from((("POST", "query"), ("POST", "form"), ("GET", "query"))),
                              label="method, where")
    fmt = data.draw(st.sampled_from(("JSON", "XML", "xml", "json", "YAML")), label="Format")
    api.log.clear()
    await send(api, request, method, where, fmt)


#: Minimal requests that once answered 500, each found by the fuzzer above; kept so they are tried on
#: every run, not only when Hypothesis happens to draw them.
RUN_ON_LINUX = {"Type": "RunShellScript", "CommandContent": "echo", "InstanceId.1": LINUX_1}
WITH_PARAMETER = {**RUN_ON_LINUX, "CommandContent": "echo {{a}}", "EnableParameter": "true"}
KNOWN_CRASHERS: tuple[Request, ...] = (
    # JSON nested deeper than the decoder's recursion limit
    Request("StopInvocation", {"InvokeId": "t-x", "InstanceId": "[" * 3000}),
    Request("RunCommand", {**RUN_ON_LINUX, "Parameters": "[" * 3000}),
    Request("RunCommand", {**RUN_ON_LINUX, "Parameters": deep_json(3000)}),
    # a NextToken that decodes to something other than a number
    Request("DescribeCommands", {"NextToken": encode_token("abc")}),
    Request("DescribeInvocations", {"NextToken": encode_token("abc")}),
    Request("DescribeInvocationResults", {"NextToken": encode_token("abc")}),
    # a NextToken that decodes to characters str.isdigit() takes for digits but int() does not
    Request("DescribeCommands", {"NextToken": encode_token("²")}),
    Request("DescribeInvocations", {"NextToken": encode_token("①")}),
    Request("DescribeInvocationResults", {"NextToken": encode_token("²")}),
    Request("DescribeManagedInstances", {"NextToken": encode_token("①")}),
    Request("DescribeSendFileResults", {"NextToken": encode_token("²")}),
    # a SignatureNonce longer than the nonce column (PostgreSQL enforces VARCHAR(128)), an AccessKeyId longer
    # than any key's
    Request("DescribeCommands", {"SignatureNonce": "n" * 129}),
    Request("DescribeCommands", {"SignatureNonce": "🚀" * 5000}),
    Request("DescribeCommands", {"AccessKeyId": "k" * 65}),
    # paging positions beyond a 64-bit integer
    Request("DescribeInvocations", {"PageNumber": str(INT64 - 1)}),
    Request("DescribeInvocationResults", {"PageNumber": str(INT64 - 1)}),
    Request("DescribeInvocations", {"NextToken": encode_token("9" * 30)}),
    Request("DescribeInvocationResults", {"NextToken": encode_token("9" * 30)}),
    # text longer than its column (PostgreSQL enforces VARCHAR(n); SQLite does not)
    Request("CreateCommand", {"Name": "n", "Type": "RunShellScript", "CommandContent": b64("echo"),
                              "ResourceGroupId": "r" * 65}),
    Request("RunCommand", {**RUN_ON_LINUX, "ResourceGroupId": "r" * 65}),
    Request("RunCommand", {**RUN_ON_LINUX, "ContainerId": "c" * 129}),
    Request("RunCommand", {**RUN_ON_LINUX, "ContainerName": "c" * 256}),
    Request("RunCommand", {**RUN_ON_LINUX, "Frequency": "f" * 257}),
    # Parameters given as a Python dict repr whose keys are not strings
    Request("RunCommand", {**WITH_PARAMETER, "Parameters": "{1: 'x'}"}),
    Request("RunCommand", {**WITH_PARAMETER, "Parameters": "{(1, 2): 'x'}"}),
    Request("RunCommand", {**RUN_ON_LINUX, "Parameters": "{1: 'x', 'a': 'y'}", "ClientToken": "t1"}),
    Request("RunCommand", {**RUN_ON_LINUX, "Parameters": "{(1, 2): 'x'}", "ClientToken": "t2"}),
)


async def test_known_crashers_answer_with_an_envelope(api: Api) -> None:
    """Each request that the fuzzer once found answering 500 now gets a 4xx error envelope or a success;
    every one is tried (a failure lists all that still crash, with the server's last log line)."""
    crashed = []
    for request in KNOWN_CRASHERS:
        api.log.clear()
        try:
            await send(api, Request(request.action, {"RegionId": REGION, **request.params}), "POST", "form", "JSON")
        except AssertionError as exc:
            crashed.append(f"{request!r}: {api.log.exception() or str(exc).splitlines()[0]}")
    assert not crashed, f"{len(crashed)} of {len(KNOWN_CRASHERS)} still crash:\n" + "\n".join(crashed)
