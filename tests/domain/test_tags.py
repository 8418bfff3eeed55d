"""Tables for the documented rules of `Tag.N` and `ResourceTag.N` (§5.2, CreateCommand Tag.N)."""

from __future__ import annotations

import pytest

from cloudassist.domain.tags import MAX_KEY, MAX_TAGS, MAX_VALUE, Tag, check_tags
from cloudassist.errors import ApiError


def _tags(count: int) -> list[dict[str, str]]:
    return [{"Key": f"k{i}", "Value": f"v{i}"} for i in range(count)]


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param([], (), id="none"),
    pytest.param([{"Key": "env", "Value": "prod"}], (Tag("env", "prod"),), id="one"),
    pytest.param([{"Key": "env"}], (Tag("env", ""),), id="value-absent-is-empty"),
    pytest.param([{"Key": "env", "Value": ""}], (Tag("env", ""),), id="value-empty"),
    pytest.param([{"Key": "k" * MAX_KEY, "Value": "v" * MAX_VALUE}], (Tag("k" * 64, "v" * 128),), id="longest"),
    pytest.param([{"Key": "Env", "Value": "1"}, {"Key": "env", "Value": "2"}], (Tag("Env", "1"), Tag("env", "2")),
                 id="keys-differing-in-case"),
    pytest.param([{"Key": "my-aliyun", "Value": "x"}], (Tag("my-aliyun", "x"),), id="aliyun-not-as-prefix"),
    pytest.param([{"Key": "acs", "Value": "x"}], (Tag("acs", "x"),), id="acs-without-colon"),
    pytest.param([{"Key": "k", "Value": "aliyun acs:"}], (Tag("k", "aliyun acs:"),), id="reserved-words-in-value"),
    pytest.param([{"Key": "url", "Value": "ftp://x"}], (Tag("url", "ftp://x"),), id="other-scheme-in-value"),
    pytest.param(_tags(MAX_TAGS), tuple(Tag(f"k{i}", f"v{i}") for i in range(20)), id="twenty"),
])
def test_tags_accepted(raw: list[dict[str, str]], expected: tuple[Tag, ...]) -> None:
    """Up to 20 tags with non-empty keys ≤64 chars and values ≤128 chars are accepted, in request order."""
    assert check_tags(raw) == expected


@pytest.mark.parametrize(("raw", "code"), [
    pytest.param(_tags(MAX_TAGS + 1), "NumberExceed.Tags", id="twenty-one"),
    pytest.param([{"Value": "v"}], "MissingParameter.TagKey", id="key-absent"),
    pytest.param([{"Key": "", "Value": "v"}], "MissingParameter.TagKey", id="key-empty"),
    pytest.param([{"Key": "k" * (MAX_KEY + 1)}], "InvalidTagKey.Malformed", id="key-65"),
    pytest.param([{"Key": "aliyun"}], "InvalidTagKey.Malformed", id="key-aliyun"),
    pytest.param([{"Key": "aliyunTeam"}], "InvalidTagKey.Malformed", id="key-aliyun-prefix"),
    pytest.param([{"Key": "ALIYUN-x"}], "InvalidTagKey.Malformed", id="key-aliyun-uppercase"),
    pytest.param([{"Key": "acs:env"}], "InvalidTagKey.Malformed", id="key-acs-colon"),
    pytest.param([{"Key": "ACS:env"}], "InvalidTagKey.Malformed", id="key-acs-uppercase"),
    pytest.param([{"Key": "see http://x"}], "InvalidTagKey.Malformed", id="key-http"),
    pytest.param([{"Key": "https://x"}], "InvalidTagKey.Malformed", id="key-https"),
    pytest.param([{"Key": "HTTP://X"}], "InvalidTagKey.Malformed", id="key-http-uppercase"),
    pytest.param([{"Key": "k", "Value": "v" * (MAX_VALUE + 1)}], "InvalidTagValue.Malformed", id="value-129"),
    pytest.param([{"Key": "k", "Value": "http://x"}], "InvalidTagValue.Malformed", id="value-http"),
    pytest.param([{"Key": "k", "Value": "go to HTTPS://x"}], "InvalidTagValue.Malformed", id="value-https"),
    pytest.param([{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}], "Duplicate.TagKey", id="duplicate"),
])
def test_tags_refused(raw: list[dict[str, str]], code: str) -> None:
    """Each broken Tag.N rule is refused with its documented error code, all HTTP 400."""
    with pytest.raises(ApiError) as info:
        check_tags(raw)
    assert (info.value.code, info.value.http_status) == (code, 400)


@pytest.mark.parametrize(("raw", "code"), [
    pytest.param(_tags(MAX_TAGS + 1), "NumberExceed.ResourceTags", id="twenty-one"),
    pytest.param([{"Key": ""}], "MissingParameter.ResourceTagKey", id="key-empty"),
    pytest.param([{"Key": "acs:x"}], "InvalidResourceTagKey.Malformed", id="key-acs"),
    pytest.param([{"Key": "k", "Value": "https://x"}], "InvalidResourceTagValue.Malformed", id="value-https"),
    pytest.param([{"Key": "k"}, {"Key": "k"}], "Duplicate.ResourceTagKey", id="duplicate"),
])
def test_resource_tags_use_their_own_codes(raw: list[dict[str, str]], code: str) -> None:
    """ResourceTag.N breaks the same rules under the ResourceTag variants of the error codes."""
    with pytest.raises(ApiError) as info:
        check_tags(raw, resource=True)
    assert (info.value.code, info.value.http_status) == (code, 400)


def test_tag_limit_can_be_lowered() -> None:
    """A smaller limit (InvokeCommand's ResourceTag.N allows 10) accepts that many and refuses one more."""
    assert len(check_tags(_tags(10), resource=True, limit=10)) == 10
    with pytest.raises(ApiError) as info:
        check_tags(_tags(11), resource=True, limit=10)
    assert info.value.code == "NumberExceed.ResourceTags"


def test_count_is_checked_before_the_tags_themselves() -> None:
    """Too many tags is reported as such even when the tags are also malformed."""
    with pytest.raises(ApiError) as info:
        check_tags([{"Key": ""}] * 21)
    assert info.value.code == "NumberExceed.Tags"


def test_tags_sort_by_key_then_value() -> None:
    """Tags order by key, then value (how the store returns a resource's tags)."""
    assert sorted([Tag("b", "1"), Tag("a", "2"), Tag("a", "1")]) == [Tag("a", "1"), Tag("a", "2"), Tag("b", "1")]
