"""Messages the documents leave free say what failed: the rule and the value (issue 9, item 5), after the
documented text, while Code and HTTP status stay exactly as documented."""

from __future__ import annotations

import base64

import pytest
from apiwire import LINUX_1, Api

pytestmark = pytest.mark.asyncio
ECHO = base64.b64encode(b"echo hello").decode()


def run(frequency: str, **extra: str) -> dict[str, str]:
    return {"Type": "RunShellScript", "CommandContent": ECHO, "InstanceId.1": LINUX_1, "RepeatMode": "Period",
            "Frequency": frequency, **extra}


async def test_a_rate_no_longer_than_the_default_timeout_names_the_timeout(api: Api) -> None:
    """rate(1m) with no Timeout is refused because the default Timeout is 60 s, and the message says so."""
    reply = await api.call("RunCommand", run("rate(1m)"))
    assert (reply.status, reply.body["Code"]) == (400, "InvalidParam.Frequency")
    message = reply.body["Message"]
    assert message.startswith("The specified frequency is invalid. Frequency 'rate(1m)': ")
    assert "every 60 s" in message
    assert "Timeout of 60 s (the default when Timeout is not given)" in message
    assert (await api.call("RunCommand", run("rate(1m)", Timeout="30"))).status == 200


@pytest.mark.parametrize(("frequency", "says"), [
    ("rate(30s)", "from 60 s to 7 days"),
    ("rate(8d)", "from 60 s to 7 days"),
    ("rate(5x)", "rate(N) with N followed by s, m, h or d"),
    ("0/5 * * * * ?", "at least 10 s apart"),
    ("not a cron", "not a cron expression"),
])
async def test_a_refused_frequency_names_the_rule(api: Api, frequency: str, says: str) -> None:
    """Each way a Frequency can fail is named, with the expression."""
    reply = await api.call("RunCommand", run(frequency, Timeout="10"))
    assert (reply.status, reply.body["Code"]) == (400, "InvalidParam.Frequency")
    assert says in reply.body["Message"]
    assert repr(frequency) in reply.body["Message"]


async def test_modify_invocation_attribute_keeps_its_code_and_the_reason(api: Api) -> None:
    """ModifyInvocationAttribute answers InvalidParameter.Frequency (its own code) with the same reason."""
    invoke_id = (await api.ok("RunCommand", run("rate(5m)")))["InvokeId"]
    reply = await api.call("ModifyInvocationAttribute", {"InvokeId": invoke_id, "Frequency": "rate(30s)"})
    assert (reply.status, reply.body["Code"]) == (400, "InvalidParameter.Frequency")
    assert reply.body["Message"].startswith("The specified parameter Frequency is not valid. Frequency 'rate(30s)'")


async def test_limits_name_the_value_and_the_limit(api: Api) -> None:
    """Timeout above the maximum, too many instances and a long Name: code and status as documented, then the
    value and the limit."""
    reply = await api.call("RunCommand", {"Type": "RunShellScript", "CommandContent": ECHO,
                                          "InstanceId.1": LINUX_1, "Timeout": "86401"})
    assert (reply.status, reply.body["Code"]) == (403, "InvalidTimeout.ExceedLimit")
    assert reply.body["Message"] == ("The specified parameter Timeout exceeds the upper limit. "
                                     "Timeout 86401 s; at most 86400 s.")
    many = {f"InstanceId.{n}": f"mi-{n:024d}" for n in range(1, 102)}
    reply = await api.call("RunCommand", {"Type": "RunShellScript", "CommandContent": ECHO, **many})
    assert (reply.status, reply.body["Code"]) == (403, "InstanceIds.ExceedLimit")
    assert reply.body["Message"].endswith("101 instances given; at most 100 per call.")
    reply = await api.call("CreateCommand", {"Name": "n" * 129, "Type": "RunShellScript", "CommandContent": ECHO})
    assert (reply.status, reply.body["Code"]) == (403, "CmdName.ExceedLimit")
    assert reply.body["Message"].endswith("Name is 129 characters; at most 128.")
