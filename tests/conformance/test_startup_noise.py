"""§4.1 and §5: the calls the agent makes from its first second on, which need cheap, parseable 200s."""

from __future__ import annotations

from datetime import datetime

import pytest
from luban import JSON_UTF8, OS_VERSION, VERSION, Agent, acknowledged, go_json, parsed


@pytest.mark.parametrize(("event_id", "category", "level", "keywords"), [
    ("agent.startup", "AGENT", "INFO", {"osName": "debian", "type": "cold start"}),
    ("agent.update.failed", "UPDATE", "ERROR",
     {"errmsg": "Updator is required but not found: /usr/local/share/aliyun-assist/aliyun_assist_update"}),
    ("agent.kdump", "AGENT", "INFO", {"status": "OFF"}),
    ("agent.channel.failed", "CHANNEL", "ERROR", {"errormsg": "open gshell failed"}),
    ("agent.task.failed", "TASK", "ERROR", {"InvokeVersion": "1", "reason": "0", "taskid": "t-selftest0006",
                                             "errormsg": "WorkingDirectoryNotExist: /nonexistent/dir"}),
])
def test_metrics_events_get_a_cheap_200(agent: Agent, event_id: str, category: str, level: str,
                                        keywords: dict[str, str]) -> None:
    """`POST /luban/api/metrics` with a captured event (its `common` and `keywords` JSON-encoded strings) gets
    200 with a JSON body: these arrive from the agent's first second and must never fail."""
    parsed(agent.metrics(event_id, category, keywords, level))


def test_client_report_gets_a_cheap_200(agent: Agent) -> None:
    """`POST /luban/api/v1/exception/client_report` with `{"type","info"}` (the agent posts one after a panic)
    gets 200 with a JSON body."""
    body = go_json({"type": "AgentPanic", "info": "panic: runtime error: invalid memory address <nil>"})
    parsed(agent.send("POST", "/luban/api/v1/exception/client_report", body=body, content_type=JSON_UTF8))


def test_update_check_says_no_update_with_integer_fields(agent: Agent) -> None:
    """`POST /luban/api/v1/update/update_check` with the agent's report is answered `code` 200 and
    `need_update` 0 as integers (UpdateCheckResp has int64 fields; a string would fail to unmarshal), with
    next_interval an integer and update_info an object when present."""
    body = go_json({"os": "linux", "arch": "amd64", "os_version": OS_VERSION, "app_id": "aliyun assistant",
                    "app_version": VERSION, "kernel_version": "6.1.0-selftest-amd64"})
    reply = acknowledged(agent.send("POST", "/luban/api/v1/update/update_check", body=body))
    assert type(reply.get("need_update")) is int, reply
    assert reply["need_update"] == 0, reply
    if "next_interval" in reply:
        assert type(reply["next_interval"]) is int, reply
    if "update_info" in reply:
        assert isinstance(reply["update_info"], dict), reply
        for name in ("file_name", "md5", "url"):
            assert isinstance(reply["update_info"].get(name, ""), str), reply
    if "instanceId" in reply:
        assert isinstance(reply["instanceId"], str), reply


def test_state_configurations_answer_changed_true_with_a_full_result(agent: Agent) -> None:
    """`POST /luban/api/instance/list_instance_state_configurations` with the agent's body is answered with an
    empty errCode and `result.Changed` true with RequestId, Interval, Checkpoint and a StateConfigurations list:
    `"Changed":false` with no local cache makes the agent dereference nil (§5.1)."""
    body = go_json({"agentName": "aliyunAssist", "agentVersion": VERSION, "computerName": "vm", "ipAddress": "",
                    "platformName": "debian", "platformType": "linux", "platformVersion": "12", "ramRole": ""})
    reply = parsed(agent.send("POST", "/luban/api/instance/list_instance_state_configurations", body=body))
    assert reply.get("errCode", "") == "", reply
    result = reply.get("result")
    assert isinstance(result, dict), reply
    assert result.get("Changed") is True, reply
    assert isinstance(result.get("RequestId"), str), reply
    assert type(result.get("Interval")) is int, reply
    assert result["Interval"] > 0, reply
    assert isinstance(result.get("Checkpoint"), str), reply
    datetime.strptime(result["Checkpoint"], "%Y-%m-%dT%H:%M:%SZ")
    assert isinstance(result.get("StateConfigurations"), list), reply


def test_gshell_check_gets_a_parseable_answer(agent: Agent) -> None:
    """`POST /luban/api/gshell` gets 200 with `code` 200 and, when present, `gshellSupport` as the string the
    agent's gshellStatus struct expects."""
    reply = acknowledged(agent.send("POST", "/luban/api/gshell"))
    if "gshellSupport" in reply:
        assert isinstance(reply["gshellSupport"], str), reply


def test_plugin_list_gets_an_empty_plugin_list(agent: Agent) -> None:
    """`POST /luban/api/v1/plugin/list` with `{"osType","pluginName","version","arch"}` gets 200 with `code` 200
    and `pluginList` a JSON list (PluginListResponse)."""
    body = go_json({"osType": "linux", "pluginName": "ACS-ECS-selftest", "version": "", "arch": ""})
    reply = acknowledged(agent.send("POST", "/luban/api/v1/plugin/list", body=body))
    assert isinstance(reply.get("pluginList"), list), reply
