"""Tables for commands: content decoding and limits, and the `{{name}}` custom parameters (§5.1)."""

from __future__ import annotations

import base64

import pytest

from cloudassist.domain.commands import (
    MAX_CONTENT_BASE64,
    ContentEncoding,
    check_lengths,
    check_parameter_definitions,
    check_passed_parameters,
    check_timeout,
    decode_content,
    encode_content,
    parameter_names,
    parse_encoding,
    render,
)
from cloudassist.errors import ApiError

PLAIN = ContentEncoding.PLAIN_TEXT
B64 = ContentEncoding.BASE64
#: The most raw bytes whose Base64 form fits in 24 KB (24576 Base64 characters).
MAX_RAW = MAX_CONTENT_BASE64 // 4 * 3


def _names(count: int) -> bytes:
    return b" ".join(b"{{p%d}}" % i for i in range(count))


# --- parameter_names -----------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "expected"), [
    pytest.param(b"echo hello", [], id="none"),
    pytest.param(b"echo {{name}}", ["name"], id="one"),
    pytest.param(b"{{a}} {{b}} {{a}}", ["a", "b"], id="first-use-order-no-repeats"),
    pytest.param(b"{{ spaced }} {{\n\tnewlined\n}}", ["spaced", "newlined"], id="whitespace-ignored"),
    pytest.param(b"{{Name}} {{NAME}} {{name}}", ["Name"], id="case-insensitive-first-spelling"),
    pytest.param(b"{{ACS::RegionId}} {{acs::InstanceId}} {{x}}", ["x"], id="built-ins-left-out"),
    pytest.param(b"{{a-b_1}}", ["a-b_1"], id="hyphen-underscore-digit"),
    pytest.param(b"{ {a} } {a}} {{a}", [], id="not-placeholders"),
    pytest.param("{{名前}}".encode(), ["名前"], id="non-ascii-still-reported"),
])
def test_parameter_names(content: bytes, expected: list[str]) -> None:
    """The custom parameter names of a content are its `{{name}}` placeholders, deduplicated
    case-insensitively in order of first use, without the reserved `ACS::` built-ins."""
    assert parameter_names(content) == expected


# --- check_parameter_definitions -----------------------------------------------------------------

@pytest.mark.parametrize("content", [
    pytest.param(b"echo", id="no-parameters"),
    pytest.param(b"{{a}} {{B-c_9}}", id="valid-names"),
    pytest.param(b"{{" + b"x" * 64 + b"}}", id="name-64-bytes"),
    pytest.param(_names(20), id="20-distinct"),
    pytest.param(_names(20) + b" {{P0}} {{p1}}", id="20-distinct-with-case-repeats"),
    pytest.param(_names(20) + b" {{ACS::RegionId}} {{ACS::InstanceId}}", id="built-ins-not-counted"),
    pytest.param(b"{{ACS::ScriptFileName|Ext(\".py\")}}", id="built-in-with-modifier"),
])
def test_parameter_definitions_accepted(content: bytes) -> None:
    """Contents within the placeholder rules (≤20 distinct names of [A-Za-z0-9_-], ≤64 bytes) are accepted."""
    check_parameter_definitions(content)


@pytest.mark.parametrize(("content", "code", "status"), [
    pytest.param(b"echo {{}}", "CmdParam.EmptyKey", 400, id="empty"),
    pytest.param(b"echo {{   }}", "CmdParam.EmptyKey", 400, id="blank"),
    pytest.param(b"{{a b}}", "CmdParam.InvalidParamName", 400, id="space-inside"),
    pytest.param(b"{{a.b}}", "CmdParam.InvalidParamName", 400, id="dot"),
    pytest.param(b"{{a$}}", "CmdParam.InvalidParamName", 400, id="dollar"),
    pytest.param("{{名前}}".encode(), "CmdParam.InvalidParamName", 400, id="non-ascii"),
    pytest.param(b"{{" + b"x" * 65 + b"}}", "CmdParamName.ExceedLimit", 403, id="name-65-bytes"),
    pytest.param(_names(21), "CmdParamCount.ExceedLimit", 403, id="21-distinct"),
])
def test_parameter_definitions_refused(content: bytes, code: str, status: int) -> None:
    """Each broken placeholder rule is refused with its CreateCommand error code and HTTP status."""
    with pytest.raises(ApiError) as info:
        check_parameter_definitions(content)
    assert (info.value.code, info.value.http_status) == (code, status)


# --- render --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "values", "expected"), [
    pytest.param(b"echo {{name}}", {"name": "Jack"}, b"echo Jack", id="simple"),
    pytest.param(b"echo {{ Name }}!", {"name": "Jack"}, b"echo Jack!", id="spaced-and-case-insensitive"),
    pytest.param(b"{{a}}{{a}}", {"a": "x"}, b"xx", id="every-occurrence"),
    pytest.param(b"echo [{{name}}]", {}, b"echo []", id="missing-value-is-empty"),
    pytest.param(b"echo {{name}}", {"name": ""}, b"echo ", id="empty-value"),
    pytest.param(b"{{ACS::InstanceId}} {{a}}", {"a": "1", "acs::instanceid": "no"}, b"{{ACS::InstanceId}} 1",
                 id="built-ins-left-for-the-agent"),
    pytest.param(b"{{a}}", {"a": "{{b}}", "b": "no"}, b"{{b}}", id="values-not-substituted-again"),
    pytest.param(b"{{a}}", {"a": "你好"}, "你好".encode(), id="utf8-value"),
    pytest.param(b"\xff{{a}}\x00", {"a": "v"}, b"\xffv\x00", id="binary-content-kept"),
])
def test_render(content: bytes, values: dict[str, str], expected: bytes) -> None:
    """Custom placeholders are replaced once by their (lower-cased key) values; built-ins stay as written."""
    assert render(content, values) == expected


# --- check_passed_parameters ---------------------------------------------------------------------

@pytest.mark.parametrize(("parameters", "defined", "enabled", "expected"), [
    pytest.param({}, [], False, {}, id="none-while-disabled"),
    pytest.param({}, ["a"], True, {}, id="none-while-enabled"),
    pytest.param({"a": "1"}, ["a", "b"], True, {"a": "1"}, id="subset"),
    pytest.param({"A": "1", "b": ""}, ["a", "B"], True, {"a": "1", "b": ""}, id="case-insensitive-lowered"),
    pytest.param({f"p{i}": "v" for i in range(10)}, [f"p{i}" for i in range(10)], True,
                 {f"p{i}": "v" for i in range(10)}, id="ten-keys"),
    pytest.param({"k" * 64: "v"}, ["k" * 64], True, {"k" * 64: "v"}, id="key-64-chars"),
])
def test_passed_parameters_accepted(parameters: dict[str, object], defined: list[str], enabled: bool,
                                    expected: dict[str, str]) -> None:
    """Parameters that are a subset of the defined names, 0-10 string values, come back with lower-cased keys."""
    assert check_passed_parameters(parameters, defined, enabled) == expected


@pytest.mark.parametrize(("parameters", "defined", "enabled", "code", "status"), [
    pytest.param({"a": "1"}, ["a"], False, "Parameter.Disabled", 400, id="disabled"),
    pytest.param({f"p{i}": "v" for i in range(11)}, [f"p{i}" for i in range(11)], True,
                 "ParameterCount.ExceedLimit", 403, id="eleven-keys"),
    pytest.param({"": "v"}, ["a"], True, "InvalidParameter.Parameters", 400, id="empty-key"),
    pytest.param({"k" * 65: "v"}, ["k" * 65], True, "ParameterKey.ExceedLimit", 403, id="key-65-chars"),
    pytest.param({"a": 1}, ["a"], True, "ParameterType.NotSupported", 403, id="int-value"),
    pytest.param({"a": None}, ["a"], True, "ParameterType.NotSupported", 403, id="null-value"),
    pytest.param({"a": True}, ["a"], True, "ParameterType.NotSupported", 403, id="bool-value"),
    pytest.param({"a": ["x"]}, ["a"], True, "ParameterType.NotSupported", 403, id="list-value"),
    pytest.param({"a": {"x": "y"}}, ["a"], True, "ParameterType.NotSupported", 403, id="object-value"),
    pytest.param({"a": "1", "A": "2"}, ["a"], True, "ParameterKey.Duplicate", 403, id="duplicate-by-case"),
    pytest.param({"c": "1"}, ["a", "b"], True, "Parameter.NotMatched", 403, id="undefined-name"),
    pytest.param({"a": "1"}, [], True, "Parameter.NotMatched", 403, id="nothing-defined"),
])
def test_passed_parameters_refused(parameters: dict[str, object], defined: list[str], enabled: bool, code: str,
                                   status: int) -> None:
    """Each broken run-time parameter rule is refused with its documented error code and HTTP status."""
    with pytest.raises(ApiError) as info:
        check_passed_parameters(parameters, defined, enabled)
    assert (info.value.code, info.value.http_status) == (code, status)


# --- decode_content ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "encoding", "expected"), [
    pytest.param("echo hello", PLAIN, b"echo hello", id="plain"),
    pytest.param("echo 你好", PLAIN, "echo 你好".encode(), id="plain-utf8"),
    pytest.param("", PLAIN, b"", id="plain-empty"),
    pytest.param("ZWNobyBoaQ==", B64, b"echo hi", id="base64"),
    pytest.param(" ZWNobyBoaQ==\n", B64, b"echo hi", id="base64-surrounding-whitespace"),
    pytest.param(base64.b64encode(bytes(range(256))).decode(), B64, bytes(range(256)), id="base64-every-byte"),
    pytest.param("", B64, b"", id="base64-empty"),
    pytest.param("x" * MAX_RAW, PLAIN, b"x" * MAX_RAW, id="plain-at-limit"),
    pytest.param(base64.b64encode(b"\0" * MAX_RAW).decode(), B64, b"\0" * MAX_RAW, id="base64-at-limit"),
])
def test_decode_content(value: str, encoding: ContentEncoding, expected: bytes) -> None:
    """CommandContent decodes to its raw bytes: PlainText as UTF-8, Base64 decoded, up to 24 KB once encoded."""
    assert decode_content(value, encoding) == expected


@pytest.mark.parametrize(("value", "encoding", "code", "status"), [
    pytest.param("not base64!", B64, "CmdContent.DecodeError", 400, id="bad-alphabet"),
    pytest.param("ZWNobyBoaQ", B64, "CmdContent.DecodeError", 400, id="missing-padding"),
    pytest.param("ZWNob", B64, "CmdContent.DecodeError", 400, id="bad-length"),
    pytest.param("ZWNo byBoaQ==", B64, "CmdContent.DecodeError", 400, id="space-inside"),
    pytest.param("5L2g5aW9é", B64, "CmdContent.DecodeError", 400, id="non-ascii"),
    pytest.param("x" * (MAX_RAW + 1), PLAIN, "CmdContent.ExceedLimit", 403, id="plain-over-limit"),
    pytest.param("é" * (MAX_RAW // 2 + 1), PLAIN, "CmdContent.ExceedLimit", 403, id="plain-over-limit-in-bytes"),
    pytest.param(base64.b64encode(b"\0" * (MAX_RAW + 1)).decode(), B64, "CmdContent.ExceedLimit", 403,
                 id="base64-over-limit"),
])
def test_decode_content_refused(value: str, encoding: ContentEncoding, code: str, status: int) -> None:
    """Invalid Base64 is CmdContent.DecodeError (400); content over 24 KB once Base64-encoded is
    CmdContent.ExceedLimit (403)."""
    with pytest.raises(ApiError) as info:
        decode_content(value, encoding)
    assert (info.value.code, info.value.http_status) == (code, status)


def test_content_limit_is_24_kb_of_base64() -> None:
    """The content limit is 24 KB of Base64: 18432 raw bytes fit, one more byte does not."""
    assert MAX_CONTENT_BASE64 == 24 * 1024
    assert MAX_RAW == 18432


@pytest.mark.parametrize(("value", "default", "expected"), [
    ("PlainText", B64, PLAIN),
    ("plaintext", B64, PLAIN),
    (" BASE64 ", PLAIN, B64),
    ("Hex", PLAIN, PLAIN),
    ("Hex", B64, B64),
    ("", B64, B64),
    (None, PLAIN, PLAIN),
])
def test_parse_encoding(value: str | None, default: ContentEncoding, expected: ContentEncoding) -> None:
    """ContentEncoding is read case-insensitively; an absent or unknown value falls back to the default."""
    assert parse_encoding(value, default) is expected


@pytest.mark.parametrize(("raw", "encoding", "expected"), [
    (b"echo hi", B64, "ZWNobyBoaQ=="),
    (b"echo hi", PLAIN, "echo hi"),
    (b"\xff ok", PLAIN, "\ufffd ok"),
])
def test_encode_content(raw: bytes, encoding: ContentEncoding, expected: str) -> None:
    """Content is returned as Base64, or as text with invalid UTF-8 replaced."""
    assert encode_content(raw, encoding) == expected


# --- other limits --------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "ok", "too_long", "code"), [
    ("name", "n" * 128, "n" * 129, "CmdName.ExceedLimit"),
    ("description", "d" * 512, "d" * 513, "CmdDesc.ExceedLimit"),
    ("working_dir", "/" * 200, "/" * 201, "InvalidParameter.WorkingDir"),
    ("launcher", "l" * 1024, "é" * 513, "InvalidLauncher.LengthLimitExceeded"),
    ("username", "u" * 255, "u" * 256, "Username.ExceedLimit"),
])
def test_check_lengths(field: str, ok: str, too_long: str, code: str) -> None:
    """Each text attribute is accepted at its documented maximum and refused one past it."""
    check_lengths(**{field: ok})
    with pytest.raises(ApiError) as info:
        check_lengths(**{field: too_long})
    assert info.value.code == code


def test_working_dir_with_nul_refused() -> None:
    """A WorkingDir containing a NUL character is InvalidParameter.WorkingDir."""
    with pytest.raises(ApiError) as info:
        check_lengths(working_dir="/tmp\x00x")
    assert info.value.code == "InvalidParameter.WorkingDir"


@pytest.mark.parametrize(("timeout", "code"), [
    (9, "InvalidParameter.Timeout"),
    (10, None),
    (86_400, None),
    (86_401, "InvalidTimeout.ExceedLimit"),
])
def test_check_timeout(timeout: int, code: str | None) -> None:
    """Timeout must be at least 10 s and at most the configured maximum."""
    if code is None:
        check_timeout(timeout, 86_400)
        return
    with pytest.raises(ApiError) as info:
        check_timeout(timeout, 86_400)
    assert info.value.code == code
