"""SendFile's pure rules: parameter limits, content decoding, timeouts, and the agent's codes → ErrorCode/ErrorInfo."""

from __future__ import annotations

import base64
import hashlib

import pytest

from cloudassist.domain.files import (
    INVALID_PARAM,
    MAX_CONTENT_BASE64,
    AgentCode,
    ContentType,
    FileErrorCode,
    FileSpec,
    check_spec,
    decode,
    effective_timeout,
    finish_outcome,
    invalid_outcome,
    parse_content_type,
    signature,
)
from cloudassist.domain.statuses import InvocationStatus
from cloudassist.errors import ApiError

S = InvocationStatus


def spec(**kw: object) -> FileSpec:
    values: dict[str, object] = {"name": "app.conf", "target_dir": "/etc/app", "content": b"x=1\n", **kw}
    return FileSpec(**values)  # type: ignore[arg-type]


def code_of(fn: object, *args: object) -> tuple[str, int]:
    with pytest.raises(ApiError) as caught:
        fn(*args)  # type: ignore[operator]
    return caught.value.code, caught.value.http_status


def test_a_well_formed_spec_passes_and_has_the_documented_defaults() -> None:
    s = spec()
    check_spec(s, 86_400)
    assert (s.file_owner, s.file_group, s.file_mode, s.overwrite, s.timeout) == ("root", "root", "0644", False, 60)
    assert s.content_type is ContentType.PLAIN_TEXT


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": "n" * 256}, ("FileName.ExceedLimit", 403)),
        ({"description": "d" * 513}, ("FileDesc.ExceedLimit", 403)),
        ({"target_dir": "relative/dir"}, ("FileTargetDir.Invalid", 400)),
        ({"target_dir": "/" + "d" * 255}, ("FileTargetDir.Invalid", 400)),
        ({"file_mode": "644x"}, ("FileMode.Invalid", 400)),
        ({"file_mode": "08"}, ("FileMode.Invalid", 400)),
        ({"file_mode": "0o644"}, ("FileMode.Invalid", 400)),
        ({"file_mode": "06440"}, ("FileMode.Invalid", 400)),
        ({"file_owner": "u" * 65}, ("InvalidParameter.FileOwner", 400)),
        ({"file_group": "a:b"}, ("InvalidParameter.FileGroup", 400)),
        ({"timeout": 86_401}, ("InvalidTimeout.ExceedLimit", 403)),
    ],
)
def test_each_limit_answers_its_documented_error(changes: dict[str, object], expected: tuple[str, int]) -> None:
    assert code_of(check_spec, spec(**changes), 86_400) == expected


def test_limits_at_their_edges_pass() -> None:
    check_spec(
        spec(name="n" * 255, description="d" * 512, target_dir="/" + "d" * 254, file_mode="755",
             file_owner="u" * 64, file_group="g" * 64),
        86_400,
    )
    check_spec(spec(target_dir="C:\\Windows\\Temp", file_mode="4755"), 86_400)


def test_plain_text_and_base64_content_decode_to_the_same_bytes() -> None:
    text = "héllo\n"
    assert decode(text, ContentType.PLAIN_TEXT) == text.encode()
    assert decode(base64.b64encode(text.encode()).decode(), ContentType.BASE64) == text.encode()


def test_content_over_32_kb_after_base64_is_refused_and_exactly_32_kb_is_taken() -> None:
    fits = b"a" * (MAX_CONTENT_BASE64 // 4 * 3)  # encodes to exactly 32 KB
    assert len(base64.b64encode(fits)) == MAX_CONTENT_BASE64
    assert decode(fits.decode(), ContentType.PLAIN_TEXT) == fits
    assert code_of(decode, fits.decode() + "a", ContentType.PLAIN_TEXT) == ("FileSize.ExceedLimit", 403)
    assert code_of(decode, "QQ==" * (MAX_CONTENT_BASE64 // 4 + 1), ContentType.BASE64) == ("FileSize.ExceedLimit", 403)


def test_undecodable_base64_is_file_content_decode_error() -> None:
    assert code_of(decode, "not base64!", ContentType.BASE64) == ("FileContent.DecodeError", 400)


def test_content_type_is_plain_text_by_default_and_anything_unknown_is_refused() -> None:
    assert parse_content_type(None) is ContentType.PLAIN_TEXT
    assert parse_content_type("base64") is ContentType.BASE64
    assert code_of(parse_content_type, "Gzip") == ("FileContentType.Invalid", 400)


def test_timeout_defaults_to_60_and_is_raised_silently_to_10() -> None:
    assert effective_timeout(None) == 60
    assert effective_timeout(3) == 10
    assert effective_timeout(0) == 10
    assert effective_timeout(120) == 120


def test_the_signature_is_the_md5_of_the_base64_text() -> None:
    encoded = base64.b64encode(b"data").decode()
    assert signature(encoded) == hashlib.md5(encoded.encode(), usedforsecurity=False).hexdigest()


def test_agent_codes_have_the_official_values() -> None:
    assert [int(c) for c in AgentCode] == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    assert AgentCode.CREATE_DIR_FAILED.finished
    assert not AgentCode.INVALID_FILE_PATH.finished
    assert INVALID_PARAM[AgentCode.FILE_ALREADY_EXIST] == "FileExist"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("Success", 0, (S.SUCCESS, FileErrorCode.NONE, "")),
        ("Failed", 1, (S.FAILED, FileErrorCode.FILE_CREATE_FAIL, "the file creation is failed due to unknown error")),
        ("Failed", 2, (S.FAILED, FileErrorCode.FILE_AUTHORITY_INVALID, "the authority of file is invalid")),
        ("Failed", 3, (S.FAILED, FileErrorCode.FILE_AUTHORITY_INVALID, "the authority of file is invalid")),
        ("Failed", 4, (S.FAILED, FileErrorCode.FILE_PATH_INVALID, "File path is invalid")),
        ("Failed", None, (S.FAILED, FileErrorCode.FILE_CREATE_FAIL,
                          "the file creation is failed due to unknown error")),
    ],
)
def test_finish_reports_map_to_status_code_and_info(status: str, code: int | None, expected: tuple) -> None:
    outcome = finish_outcome(status, code)
    assert (outcome.status, outcome.code, outcome.info) == expected


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("FileExist", (FileErrorCode.FILE_ALREADY_EXISTS, "File already exists")),
        ("FileNameInvalid", (FileErrorCode.FILE_NAME_INVALID, "File name is invalid")),
        ("EmptyFile", (FileErrorCode.FILE_CONTENT_INVALID, "File content is empty")),
        ("InvalidFileContent", (FileErrorCode.FILE_CONTENT_INVALID, "the content of file is invalid")),
        ("InvalidSignature", (FileErrorCode.FILE_CONTENT_INVALID, "the content of file is invalid")),
        ("InvalidFileMode", (FileErrorCode.FILE_AUTHORITY_INVALID, "Mode is invalid")),
        ("FileGroupNotExist", (FileErrorCode.USER_GROUP_NOT_EXISTS, "Group not exists")),
        ("FileOwnerNotExist", (FileErrorCode.ACCOUNT_NOT_EXISTS, "Owner not exists")),
    ],
)
def test_invalid_reports_map_to_invalid_with_the_documented_texts(param: str, expected: tuple) -> None:
    outcome = invalid_outcome(param)
    assert (outcome.status, outcome.code, outcome.info) == (S.INVALID, *expected)


def test_file_mode_with_a_trailing_newline_is_refused() -> None:
    """FileMode must be 3 or 4 octal digits and nothing else: a trailing newline is not let through."""
    for mode in ("0644\n", "644\n", "0644\r\n", "\n0644"):
        assert code_of(check_spec, spec(file_mode=mode), 86_400) == ("FileMode.Invalid", 400), repr(mode)
    check_spec(spec(file_mode="644"), 86_400)


def test_base64_content_that_decodes_to_nothing_is_refused() -> None:
    """Base64 Content that holds no bytes (empty or blank) is FileContent.DecodeError, not an empty file."""
    for content in ("", "   ", "\n", "\t \n"):
        assert code_of(decode, content, ContentType.BASE64) == ("FileContent.DecodeError", 400), repr(content)
    assert decode("QQ==", ContentType.BASE64) == b"A"
