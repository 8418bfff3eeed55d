"""The wire protocol of the ECS RPC endpoint, in-process: methods, parameter sources and flattening,
the success and error envelopes, RequestIds, content types, XML well-formedness and request limits."""

from __future__ import annotations

import asyncio
import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import httpx
import pytest
from apiwire import FORM, JSON_TYPE, LINUX_1, LINUX_2, REGION, REQUEST_ID, XML_TYPE, Api

from cloudassist.api.app import create_app
from cloudassist.api.rpc import actions
from cloudassist.api.rpc.actions import FAMILY
from cloudassist.services.context import Context

pytestmark = pytest.mark.asyncio

ECHO = base64.b64encode(b"echo hello").decode()


async def create_command(api: Api, name: str = "probe", **extra: str) -> str:
    body = await api.ok("CreateCommand", {"Name": name, "Type": "RunShellScript", "CommandContent": ECHO, **extra})
    return str(body["CommandId"])


async def command_names(api: Api) -> list[str]:
    body = await api.ok("DescribeCommands", {"PageSize": "50"})
    return [c["Name"] for c in body["Commands"]["Command"]]


async def test_post_with_query_parameters_succeeds(api: Api) -> None:
    """A POST whose parameters are all in the query string is authenticated and answered."""
    await create_command(api, "via-post-query")
    assert await command_names(api) == ["via-post-query"]


async def test_get_with_query_parameters_succeeds(api: Api) -> None:
    """A GET, signed with GET as the method in the string to sign, is authenticated and answered."""
    await create_command(api, "via-get")
    body = await api.ok("DescribeCommands", {}, method="GET")
    assert [c["Name"] for c in body["Commands"]["Command"]] == ["via-get"]


async def test_form_only_request_verifies(api: Api) -> None:
    """A POST with an empty query and every parameter (signature included) in a form body verifies."""
    await api.ok("CreateCommand", {"Name": "via-form", "Type": "RunShellScript", "CommandContent": ECHO},
                 where="form")
    assert await command_names(api) == ["via-form"]


async def test_query_and_form_body_are_merged(api: Api) -> None:
    """Parameters are the union of query and form body: the signature covers both halves, and a
    parameter sent only in the body (Name) reaches the action."""
    signed = api.sign({"Action": "CreateCommand", "RegionId": REGION, "Name": "merged", "Type": "RunShellScript",
                       "CommandContent": ECHO})
    in_body = {k: signed[k] for k in ("Name", "CommandContent", "Signature")}
    in_query = {k: v for k, v in signed.items() if k not in in_body}
    reply = api.check(await api.send(in_query, body_params=in_body), "JSON")
    assert reply.status == 200, reply.body
    assert await command_names(api) == ["merged"]


async def test_form_body_without_form_content_type_is_not_read(api: Api) -> None:
    """A body is only read as parameters when it is application/x-www-form-urlencoded: the same body
    sent as text/plain leaves the request without its signature parameters."""
    signed = api.sign({"Action": "DescribeCommands", "RegionId": REGION})
    response = await api.client.post("/", content=json.dumps(signed).encode(),
                                      headers={"content-type": "text/plain"})
    reply = api.check(response, "JSON")
    assert reply.status == 400
    assert reply.code == "MissingParameter.AccessKeyId"


async def test_list_items_are_taken_in_numeric_order_across_gaps(api: Api) -> None:
    """`InstanceId.N` items are ordered by N as a number (2 before 10), whatever order they arrive in
    and however sparse the numbering: the first unknown instance named in the error is the `.2` one."""
    reply = await api.call("RunCommand", {
        "Type": "RunShellScript", "CommandContent": "echo hi",
        "InstanceId.10": "mi-unknownten", "InstanceId.2": "mi-unknowntwo", "InstanceId.7": "mi-unknownseven",
    })
    assert reply.status == 404
    assert reply.code == "InvalidInstance.NotFound"
    assert "mi-unknowntwo" in reply.body["Message"]


async def test_list_with_gaps_keeps_every_item(api: Api) -> None:
    """A list numbered with gaps (`InstanceId.1`, `InstanceId.7`) targets both instances, in order."""
    body = await api.ok("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo hi",
                                       "InstanceId.7": LINUX_2, "InstanceId.1": LINUX_1})
    found = await api.ok("DescribeInvocations", {"InvokeId": body["InvokeId"]})
    (invocation,) = found["Invocations"]["Invocation"]
    ids = [i["InstanceId"] for i in invocation["InvokeInstances"]["InvokeInstance"]]
    assert sorted(ids) == [LINUX_1, LINUX_2]


async def test_stop_invocation_list_is_flattened(api: Api) -> None:
    """StopInvocation's `InstanceId.N` list is read 1-based: an instance outside the task, sent as
    `InstanceId.3`, is reported; the task's own instances, as `.1`/`.5`, are accepted."""
    body = await api.ok("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo hi",
                                       "InstanceId.1": LINUX_1, "InstanceId.2": LINUX_2})
    invoke_id = body["InvokeId"]
    bad = await api.call("StopInvocation", {"InvokeId": invoke_id, "InstanceId.1": LINUX_1,
                                            "InstanceId.3": "mi-notinthetask"})
    assert bad.code == "InvalidInstanceId.NotFound"
    await api.ok("StopInvocation", {"InvokeId": invoke_id, "InstanceId.1": LINUX_1, "InstanceId.5": LINUX_2})
    found = await api.ok("DescribeInvocations", {"InvokeId": invoke_id})
    statuses = {i["InvocationStatus"] for i in found["Invocations"]["Invocation"][0]["InvokeInstances"]
                ["InvokeInstance"]}
    assert statuses == {"Cancelled"}


async def test_booleans_are_case_insensitive(api: Api) -> None:
    """A boolean parameter reads true/false in any case: IncludeHistory=True/true/TRUE/tRuE without InvokeId
    asks for the InvokeId that IncludeHistory needs, while False/false/FALSE alone succeeds."""
    for spelling in ("True", "true", "TRUE", "tRuE", " true "):
        reply = await api.call("DescribeInvocationResults", {"IncludeHistory": spelling})
        assert reply.code == "MissingParameter.InvokeId", spelling
    for spelling in ("False", "false", "FALSE"):
        await api.ok("DescribeInvocationResults", {"IncludeHistory": spelling})


async def test_booleans_other_spellings_are_invalid(api: Api) -> None:
    """Only true/false (any case) are booleans: yes, 1, 0, t or blanks are InvalidParameter.<Name>, 400;
    an empty value counts as not sent."""
    for spelling in ("yes", "1", "0", " ", "t", "nan"):
        reply = await api.call("DescribeInvocationResults", {"IncludeHistory": spelling})
        assert (reply.status, reply.code) == (400, "InvalidParameter.IncludeHistory"), spelling
    await api.ok("DescribeInvocationResults", {"IncludeHistory": ""})


async def test_parameters_as_json_or_python_dict_repr(api: Api) -> None:
    """`Parameters` is read as a JSON object or as the Python dict repr aliyunsdkcore sends for a dict;
    either way the value fills the command's `{{name}}` placeholder."""
    content = base64.b64encode(b"echo {{name}}").decode()
    command_id = (await api.ok("CreateCommand", {"Name": "p", "Type": "RunShellScript", "CommandContent": content,
                                                 "EnableParameter": "true"}))["CommandId"]
    for parameters in ('{"name": "world"}', "{'name': 'world'}"):
        invoke_id = (await api.ok("InvokeCommand", {"CommandId": command_id, "InstanceId.1": LINUX_1,
                                                    "Parameters": parameters}))["InvokeId"]
        found = await api.ok("DescribeInvocations", {"InvokeId": invoke_id, "ContentEncoding": "PlainText"})
        (invocation,) = found["Invocations"]["Invocation"]
        assert json.loads(invocation["Parameters"]) == {"name": "world"}
        assert invocation["CommandContent"] == "echo world"


async def test_parameters_that_are_not_an_object(api: Api) -> None:
    """A `Parameters` value that is not a JSON object (or dict repr) is InvalidParameter.Parameters, 400."""
    for parameters in ("[1, 2]", '"text"', "not json", "{'a': ", "1", "null", "{1: 2", "nan"):
        reply = await api.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo",
                                              "InstanceId.1": LINUX_1, "Parameters": parameters})
        assert (reply.status, reply.code) == (400, "InvalidParameter.Parameters"), parameters


async def test_unknown_action(api: Api) -> None:
    """An action outside the API is InvalidAction.NotFound with HTTP 404."""
    reply = await api.call("NoSuchAction")
    assert (reply.status, reply.code) == (404, "InvalidAction.NotFound")


async def test_every_family_action_is_implemented(api: Api) -> None:
    """All 27 Cloud Assistant actions and the 3 tagging actions are registered: none answers UnsupportedOperation."""
    assert [name for name in FAMILY if name not in actions.load()] == []
    reply = await api.call("EndTerminalSession", {"SessionId": "s-none"})
    assert (reply.status, reply.code) == (404, "InvalidSessionId.NotFound")


async def test_missing_action(api: Api) -> None:
    """A signed request without Action is a 400 MissingParameter error that names Action."""
    reply = await api.call(None)
    assert reply.status == 400
    assert str(reply.code).startswith("MissingParameter")
    assert "Action" in reply.body["Message"]


async def test_wrong_version(api: Api) -> None:
    """Any Version other than 2014-05-26 (an older one, an empty one, one with a space) is InvalidVersion,
    400."""
    for version in ("2016-03-14", "", "2014-05-26 "):
        reply = await api.call("DescribeCommands", {"Version": version})
        assert (reply.status, reply.code) == (400, "InvalidVersion"), version


async def test_unsupported_method(api: Api) -> None:
    """A method other than GET and POST (PUT, DELETE, PATCH) gets the JSON error envelope
    UnsupportedHTTPMethod, not a bare 405 page."""
    for method in ("PUT", "DELETE", "PATCH"):
        signed = api.sign({"Action": "DescribeCommands", "RegionId": REGION}, method=method)
        reply = api.check(await api.send(signed, method=method), "JSON")
        assert (reply.status, reply.code) == (403, "UnsupportedHTTPMethod"), method


async def test_unsupported_method_answers_in_requested_format(api: Api) -> None:
    """Whatever the method, the error envelope is well-formed (here PUT with Format=XML)."""
    signed = api.sign({"Action": "DescribeCommands", "RegionId": REGION, "Format": "XML"}, method="PUT")
    response = await api.send(signed, method="PUT")
    fmt = "XML" if response.headers.get("content-type") == XML_TYPE else "JSON"
    reply = api.check(response, fmt)
    assert reply.code == "UnsupportedHTTPMethod"


async def test_unknown_path(api: Api) -> None:
    """A path other than `/`, with any method, gets the JSON error envelope InvalidAction.NotFound, 404."""
    for path in ("/nope", "/api/v1/commands", "/favicon.ico", "/x/"):
        for method in ("GET", "POST", "PUT"):
            reply = api.check(await api.client.request(method, path), "JSON")
            assert (reply.status, reply.code) == (404, "InvalidAction.NotFound"), (method, path)


async def test_request_id_is_fresh_uppercase_uuid_echoed_in_header(api: Api) -> None:
    """Every response, success or error, JSON or XML, carries a new upper-case UUID RequestId, the same
    one as in its x-acs-request-id header."""
    replies = [await api.call("DescribeCommands"), await api.call("DescribeCommands"),
               await api.call("NoSuchAction"), await api.call("DescribeCommands", fmt="XML"),
               await api.call("NoSuchAction", fmt="XML"), api.check(await api.client.get("/nope"), "JSON")]
    ids = [r.body["RequestId"] for r in replies]
    assert len(set(ids)) == len(ids)
    for reply in replies:
        assert REQUEST_ID.match(reply.body["RequestId"])
        assert reply.response.headers["x-acs-request-id"] == reply.body["RequestId"]


async def test_content_type_json(api: Api) -> None:
    """JSON answers, success and error, are application/json;charset=utf-8."""
    for reply in (await api.call("DescribeCommands"), await api.call("NoSuchAction")):
        assert reply.response.headers["content-type"] == JSON_TYPE


async def test_content_type_xml(api: Api) -> None:
    """Format=XML (any case) answers text/xml;charset=utf-8 with an XML declaration, both on success
    (root <ActionResponse>) and for errors (root <Error>)."""
    for fmt in ("XML", "xml", "Xml"):
        ok = await api.call("DescribeCommands", fmt=fmt)
        assert (ok.status, ok.root) == (200, "DescribeCommandsResponse")
        bad = await api.call("NoSuchAction", fmt=fmt)
        assert (bad.status, bad.root) == (404, "Error")
        for reply in (ok, bad):
            assert reply.response.headers["content-type"] == XML_TYPE
            assert reply.response.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')


async def test_xml_error_escapes_markup_and_control_characters(api: Api) -> None:
    """An error message quoting client input with <, &, quotes and control characters is still
    well-formed XML, and the markup characters come back as text."""
    reply = await api.call("DescribeCommands", {"Version": 'a<b>&c"\'\x01\x08\x0b\x1f\x7fz'}, fmt="XML")
    assert reply.code == "InvalidVersion"
    assert 'a<b>&c"\'' in reply.body["Message"]


async def test_xml_success_escapes_markup_and_control_characters(api: Api) -> None:
    """A stored name with <, & and control characters is listed as well-formed XML; the markup reads
    back verbatim and the characters XML cannot carry are dropped."""
    await create_command(api, "x<y>&z\x01\x1ftab\tend]]>")
    reply = await api.call("DescribeCommands", fmt="XML")
    assert reply.status == 200
    assert reply.body["Commands"]["Command"]["Name"] == "x<y>&ztab\tend]]>"
    json_reply = await api.ok("DescribeCommands")
    assert json_reply["Commands"]["Command"][0]["Name"] == "x<y>&z\x01\x1ftab\tend]]>"


async def test_xml_request_id_root_and_fields(api: Api) -> None:
    """An XML success has the action's Response root with RequestId as a child element."""
    reply = await api.call("DescribeCommands", fmt="XML")
    element = ET.fromstring(reply.response.content)  # noqa: S314 - our own server's answer
    assert element.tag == "DescribeCommandsResponse"
    assert element.findtext("RequestId") == reply.body["RequestId"]


async def test_body_larger_than_limit_is_refused(api: Api) -> None:
    """A form body larger than settings.max_request_bytes is answered promptly with a 4xx error
    envelope (RequestTooLarge), not a hang and not a 5xx."""
    limit = api.ctx.settings.max_request_bytes
    signed = api.sign({"Action": "CreateCommand", "RegionId": REGION, "Name": "n", "Type": "RunShellScript",
                       "CommandContent": "A" * (limit + 1024)})
    response = await asyncio.wait_for(api.send(signed, where="form"), timeout=10)
    reply = api.check(response, "JSON")
    assert (reply.status, reply.code) == (413, "RequestTooLarge")


async def test_streamed_body_larger_than_limit_is_refused(api: Api) -> None:
    """A body streamed in chunks, far larger than the limit (8 MiB), is refused with RequestTooLarge
    without the server waiting for all of it."""
    async def chunks() -> AsyncIterator[bytes]:
        yield b"Action=DescribeCommands&Padding="
        for _ in range(128):
            yield b"a" * 65536

    response = await asyncio.wait_for(
        api.client.post("/", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}),
        timeout=10)
    reply = api.check(response, "JSON")
    assert (reply.status, reply.code) == (413, "RequestTooLarge")


async def test_query_larger_than_limit_is_refused(api: Api) -> None:
    """A query string larger than settings.max_request_bytes (here set to 4 KiB) is refused with
    RequestTooLarge (413), whatever the method."""
    small = Context(api.ctx.store, api.ctx.clock, api.ctx.settings.replace(max_request_bytes=4096))
    transport = httpx.ASGITransport(app=create_app(small))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        limited = Api(small, client, api.log)
        for method in ("GET", "POST"):
            signed = limited.sign({"Action": "DescribeCommands", "RegionId": REGION, "Name": "n" * 5000},
                                  method=method)
            response = await asyncio.wait_for(limited.send(signed, method=method), timeout=10)
            reply = limited.check(response, "JSON")
            assert (reply.status, reply.code) == (413, "RequestTooLarge")
        reply = await limited.call("DescribeCommands", {"Padding": "n" * 3000})
        assert reply.status == 200


async def test_body_just_under_limit_is_read(api: Api) -> None:
    """A request just under the limit is read whole: a 200 KB Description is accepted as far as size goes
    and judged by the action's own rule (CmdDesc.ExceedLimit), not RequestTooLarge."""
    signed = api.sign({"Action": "CreateCommand", "RegionId": REGION, "Name": "n", "Type": "RunShellScript",
                       "CommandContent": ECHO, "Description": "d" * 200_000})
    reply = api.check(await api.send(signed, where="form"), "JSON")
    assert reply.code == "CmdDesc.ExceedLimit"


async def test_nul_in_parameter_is_refused(api: Api) -> None:
    """A NUL character in a parameter value is refused with a 400 InvalidParameter error."""
    reply = await api.call("DescribeCommands", {"Name": "a\x00b"})
    assert reply.status == 400
    assert str(reply.code).startswith("InvalidParameter")


async def test_invalid_utf8_is_refused(api: Api) -> None:
    """Parameters that are not UTF-8 (percent-encoded in the query or the form body, or raw bytes in the
    body) are a 400 InvalidParameter error, not a crash."""
    responses = [
        await api.client.post("/?Action=DescribeCommands&Name=%FF%FE"),
        await api.client.post("/", content=b"Action=DescribeCommands&Name=%FF%FE", headers={"content-type": FORM}),
        await api.client.post("/", content=b"Action=DescribeCommands&Name=\xff\xfe", headers={"content-type": FORM}),
    ]
    for response in responses:
        reply = api.check(response, "JSON")
        assert reply.status == 400, reply.body
        assert str(reply.code).startswith("InvalidParameter")


async def test_json_decoded_surrogate_or_nul_is_refused(api: Api) -> None:
    """A lone UTF-16 surrogate or a NUL that only appears once a JSON value is decoded (a JSON-array list, a
    Tag object, a Parameters object) is refused with the parameter's own 400 error, as a NUL sent directly
    is; neither database ever sees it."""
    command_id = await create_command(api, "tagged")
    content = base64.b64encode(b"echo {{name}}").decode()
    param_command = (await api.ok("CreateCommand", {"Name": "p", "Type": "RunShellScript",
                                                    "CommandContent": content, "EnableParameter": "true"}))
    invoke_id = (await api.ok("InvokeCommand", {"CommandId": param_command["CommandId"], "InstanceId.1": LINUX_1,
                                                "Parameters": '{"name": "x"}', "Frequency": "0 0 1 * * ?",
                                                "RepeatMode": "Period"}))["InvokeId"]
    run = {"Type": "RunShellScript", "CommandContent": "echo {{name}}", "EnableParameter": "true"}
    cases = [
        ("RunCommand", {**run, "InstanceId": '["\\ud800"]'}, "InvalidParameter.InstanceId"),
        ("RunCommand", {**run, "InstanceId": '["i-\\u0000"]'}, "InvalidParameter.InstanceId"),
        ("TagResources", {"ResourceType": "command", "ResourceId": f'["{command_id}"]',
                          "Tag": '[{"Key": "\\ud800", "Value": "v"}]'}, "InvalidParameter.Tag"),
        ("TagResources", {"ResourceType": "command", "ResourceId.1": command_id,
                          "Tag": '[{"Key": "k", "Value": "\\udfff"}]'}, "InvalidParameter.Tag"),
        ("ListTagResources", {"ResourceType": "command", "Tag": '[{"Key": "a\\u0000b"}]'}, "InvalidParameter.Tag"),
        ("RunCommand", {**run, "InstanceId.1": LINUX_1, "Parameters": '{"name": "\\ud800"}'},
         "InvalidParameter.Parameters"),
        ("RunCommand", {**run, "InstanceId.1": LINUX_1, "Parameters": '{"name": ["a\\u0000"]}'},
         "InvalidParameter.Parameters"),
        ("RunCommand", {**run, "InstanceId.1": LINUX_1, "Parameters": "{'name': '\\x00'}"},
         "InvalidParameter.Parameters"),
        ("ModifyInvocationAttribute", {"InvokeId": invoke_id, "Parameters": '{"\\ud800": "x"}'},
         "InvalidParameter.Parameters"),
        ("ModifyInvocationAttribute", {"InvokeId": invoke_id, "Parameters": '{"name": "a\\u0000b"}'},
         "InvalidParameter.Parameters"),
    ]
    for action, params, code in cases:
        reply = await api.call(action, params)
        assert (reply.status, reply.code) == (400, code), (action, params, reply.body)


async def test_next_token_with_nul_is_refused(api: Api) -> None:
    """A ListTagResources NextToken that decodes to a NUL-carrying key is InvalidParameter.NextToken, not a
    database error."""
    command_id = await create_command(api, "tagged")
    for raw in (b"\x00\nk", b"c-1\nk\x00"):
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        reply = await api.call("ListTagResources", {"ResourceType": "command", "ResourceId.1": command_id,
                                                    "NextToken": token})
        assert (reply.status, reply.code) == (400, "InvalidParameter.NextToken"), raw


async def test_json_null_in_an_object_item_is_absent(api: Api) -> None:
    """`null` for a field of a JSON-array object item is an absent (empty) value, not the text "None"."""
    command_id = await create_command(api, "tagged")
    await api.ok("TagResources", {"ResourceType": "command", "ResourceId.1": command_id,
                                  "Tag": '[{"Key": "a", "Value": null}]'})
    body = await api.ok("ListTagResources", {"ResourceType": "command", "ResourceId.1": command_id})
    rows = body["TagResources"]["TagResource"]
    assert [(r["TagKey"], r["TagValue"]) for r in rows] == [("a", "")]
