"""The CLI's API client: its signature against the documented vectors and the server's own verifier, its
parameter flattening, and the credentials it finds (config file, environment, flags)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloudassist.api.rpc.signature import SignatureError, read_signed_request, verify
from cloudassist.cli.client import ApiCallError, Endpoint, flatten, sign_v1
from cloudassist.cli.profile import ProfileError, resolve


def test_the_official_v1_vector_is_reproduced() -> None:
    """The documented DescribeRegions example (GET, XML) signs to OLeaidS1JvxuMvnyHOwuJ+uX5qY=."""
    signed = sign_v1({"Action": "DescribeRegions", "Format": "XML"}, "testid", "testsecret", method="GET",
                     timestamp=datetime(2016, 2, 23, 12, 46, 24, tzinfo=UTC),
                     nonce="3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf")
    assert signed["Signature"] == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_the_captured_aliyunsdkcore_run_command_is_reproduced() -> None:
    """The RunCommand aliyunsdkcore sent in the reference capture (odd characters, JSON parameters, an empty
    SignatureType) gets the very signature the SDK computed."""
    params = {
        "Type": "RunShellScript", "CommandContent": 'echo hello world & "quoted" ~*', "InstanceId.1": "i-abc",
        "InstanceId.2": "i-def", "Timeout": "60", "Parameters": '{"name": "Jack"}', "EnableParameter": "True",
        "Tag.1.Value": "v1", "Tag.1.Key": "k1", "ContentEncoding": "PlainText", "Action": "RunCommand",
        "RegionId": "cn-hangzhou", "SignatureType": "",
    }
    signed = sign_v1(params, "testak", "testsecret", timestamp=datetime(2026, 11, 26, 20, 39, 25, tzinfo=UTC),
                     nonce="4ffb16d80ec4864de43bf9bbda61192a")
    assert signed["Signature"] == "ySgVKt2tsEzyjFq43+GhHfpX6bM="


@pytest.mark.parametrize("content", ["echo hi", "printf '%s\\n' 'a b' && echo ✓ {{x}} +/=&?#", ""])
def test_the_servers_verifier_accepts_the_clients_signature(content: str) -> None:
    """Whatever the parameters hold, the server's own verifier recomputes the client's signature; a wrong
    secret is refused."""
    params = flatten({"Action": "RunCommand", "CommandContent": content, "InstanceId": ["mi-1", "mi-2"],
                      "Parameters": {"x": "ü"}, "EnableParameter": True})
    signed = sign_v1(params, "LTAIkey", "s3cret")
    request = read_signed_request("POST", "/", signed, [], {}, b"")
    verify(request, "s3cret")
    with pytest.raises(SignatureError, match="SignatureDoesNotMatch"):
        verify(request, "other")


def test_flattening_follows_the_rpc_conventions() -> None:
    """Lists become Name.N, lists of objects Name.N.Key, objects a JSON string, booleans true/false; None is
    left out."""
    assert flatten({"InstanceId": ["a", "b"], "ResourceTag": [{"Key": "env", "Value": "prod"}],
                    "Parameters": {"n": "v"}, "KeepCommand": False, "Timeout": 5, "Name": None}) == {
        "InstanceId.1": "a", "InstanceId.2": "b", "ResourceTag.1.Key": "env", "ResourceTag.1.Value": "prod",
        "Parameters": '{"n":"v"}', "KeepCommand": "false", "Timeout": "5"}


def test_an_api_error_reads_as_code_message_and_request_id() -> None:
    """The form the CLI prints an API error in."""
    assert str(ApiCallError("InvalidInvokeId.NotFound", "No such task.", "REQ-1")) == \
        "InvalidInvokeId.NotFound: No such task. (REQ-1)"


@pytest.mark.parametrize(("text", "url"), [("127.0.0.1:8080", "http://127.0.0.1:8080/"),
                                           ("https://ecs.cn-hangzhou.aliyuncs.com", "https://ecs.cn-hangzhou.aliyuncs.com/"),
                                           ("http://[::1]:9000/", "http://[::1]:9000/")])
def test_endpoints_take_a_host_and_port_or_a_url(text: str, url: str) -> None:
    """A bare HOST:PORT is plain HTTP, as the SDKs' set_endpoint."""
    assert Endpoint.parse(text).url == url


@pytest.mark.parametrize("text", ["ftp://x", "http://", "http://host/path"])
def test_a_malformed_endpoint_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an API endpoint"):
        Endpoint.parse(text)


# --- credentials ---------------------------------------------------------------------------------------------

def _config(home: Path, **doc: object) -> None:
    (home / ".aliyun").mkdir(parents=True, exist_ok=True)
    (home / ".aliyun" / "config.json").write_text(json.dumps(doc))


def _ak(name: str, key: str, region: str = "cn-beijing", **extra: object) -> dict[str, object]:
    return {"name": name, "mode": "AK", "access_key_id": key, "access_key_secret": key + "-secret",
            "region_id": region, "output_format": "json", "language": "en", **extra}


def test_the_current_profile_is_used_with_its_region(tmp_path: Path) -> None:
    """Without flags the file's `current` profile gives the key and the region; unknown keys are ignored."""
    _config(tmp_path, current="work", profiles=[_ak("default", "AKd"), _ak("work", "AKw", "cn-shanghai")],
            meta_path="")
    target = resolve({"HOME": str(tmp_path)})
    assert (target.credentials.access_key_id, target.credentials.region_id) == ("AKw", "cn-shanghai")
    assert target.endpoint.url == "http://127.0.0.1:8080/"
    assert "AKw-secret" not in repr(target)


def test_flags_beat_the_file_and_the_file_beats_the_environment(tmp_path: Path) -> None:
    """--profile picks a profile over `current` and ALIBABA_CLOUD_PROFILE; a config file wins over the AccessKey
    variables; --region and --endpoint win over the profile and CLOUDASSIST_ENDPOINT."""
    _config(tmp_path, current="default",
            profiles=[_ak("default", "AKd"), _ak("ops", "AKo", cloudassist_endpoint="10.0.0.1:8080")])
    env = {"HOME": str(tmp_path), "ALIBABA_CLOUD_ACCESS_KEY_ID": "AKenv", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "x",
           "ALIBABA_CLOUD_REGION_ID": "cn-qingdao"}
    assert resolve(env).credentials.access_key_id == "AKd"
    assert resolve(env).credentials.region_id == "cn-beijing"
    assert resolve({**env, "ALIBABA_CLOUD_PROFILE": "ops"}).credentials.access_key_id == "AKo"
    assert resolve({**env, "ALIBABA_CLOUD_PROFILE": "ops"}).endpoint.netloc == "10.0.0.1:8080"
    chosen = resolve({**env, "ALIBABA_CLOUD_PROFILE": "ops", "CLOUDASSIST_ENDPOINT": "10.0.0.2:1"},
                     profile="default", region="cn-wulanchabu", endpoint="https://api.example:8443")
    assert chosen.credentials.access_key_id == "AKd"
    assert chosen.credentials.region_id == "cn-wulanchabu"
    assert chosen.endpoint.url == "https://api.example:8443/"
    assert resolve({**env, "CLOUDASSIST_ENDPOINT": "10.0.0.2:1"}).endpoint.netloc == "10.0.0.2:1"


@pytest.mark.parametrize("prefix", ["ALIBABA_CLOUD_", "ALIBABACLOUD_", "ALICLOUD_"])
def test_without_a_config_file_the_environment_gives_the_key(tmp_path: Path, prefix: str) -> None:
    """Each of the variable families the aliyun tools honour, with its region."""
    target = resolve({"HOME": str(tmp_path), f"{prefix}ACCESS_KEY_ID": "AKe", f"{prefix}ACCESS_KEY_SECRET": "se",
                      f"{prefix}REGION_ID": "ap-southeast-1"})
    assert (target.credentials.access_key_id, target.credentials.region_id) == ("AKe", "ap-southeast-1")
    assert resolve({"HOME": str(tmp_path), f"{prefix}ACCESS_KEY_ID": "AKe",
                    f"{prefix}ACCESS_KEY_SECRET": "se"}).credentials.region_id == "cn-hangzhou"


@pytest.mark.parametrize("mode", ["StsToken", "RamRoleArn", "EcsRamRole", "OIDC"])
def test_a_profile_of_another_mode_is_refused_by_name(tmp_path: Path, mode: str) -> None:
    """Only AK profiles work; the message names the profile and its mode, and never a secret."""
    _config(tmp_path, current="p", profiles=[{**_ak("p", "AKp"), "mode": mode, "sts_token": "tok"}])
    with pytest.raises(ProfileError, match=f"profile 'p' .* uses mode '{mode}'") as caught:
        resolve({"HOME": str(tmp_path)})
    assert "AKp-secret" not in str(caught.value)


def test_missing_profiles_and_credentials_say_what_to_do(tmp_path: Path) -> None:
    """An unknown profile lists the known ones; no file and no variables say where credentials come from."""
    _config(tmp_path, current="default", profiles=[_ak("default", "AKd")])
    with pytest.raises(ProfileError, match=r"no profile 'nope' .*profiles: default"):
        resolve({"HOME": str(tmp_path)}, profile="nope")
    with pytest.raises(ProfileError, match="no credentials"):
        resolve({"HOME": str(tmp_path / "empty")})
    with pytest.raises(ProfileError, match="there is no"):
        resolve({"HOME": str(tmp_path / "empty")}, profile="x")


# --- what the API commands load ------------------------------------------------------------------------------

_LOAD = """
import json, sys
from cloudassist.cli.main import main
for name in ("run", "stop", "results", "invocations", "commands", "instances", "activations", "send-file"):
    main.get_command(None, name)
print(json.dumps(sorted(sys.modules)))
"""
SERVER = ("sqlalchemy", "starlette", "uvicorn", "alembic", "asyncpg", "aiosqlite", "cryptography", "prometheus_client",
          "cloudassist.api", "cloudassist.services", "cloudassist.store", "cloudassist.server", "cloudassist.agent")


def test_the_api_commands_load_nothing_of_the_server() -> None:
    """Resolving every API command of the CLI imports none of the server's code or libraries (nor the agent):
    the client is the standard library, click and rich."""
    done = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True, check=True, timeout=120)
    loaded = json.loads(done.stdout)
    assert "cloudassist.cli.client" in loaded
    assert [m for m in loaded if m.startswith(SERVER)] == []


@pytest.mark.parametrize(("text", "loopback"), [("127.0.0.1:8080", True), ("localhost:1", True),
                                                ("http://[::1]:80", True), ("10.0.0.1:8080", False),
                                                ("https://ecs.aliyuncs.com", False)])
def test_a_server_on_this_machine_is_called_without_a_proxy(text: str, loopback: bool) -> None:
    """HTTP(S)_PROXY is honoured (with NO_PROXY) except for a loopback endpoint, which a proxy cannot reach."""
    assert Endpoint.parse(text).loopback is loopback
