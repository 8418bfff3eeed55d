"""Tags on resources, and the documented rules for `Tag.N` and `ResourceTag.N`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cloudassist.errors import ApiError

MAX_TAGS: Final = 20
MAX_KEY: Final = 64
MAX_VALUE: Final = 128


@dataclass(frozen=True, order=True)
class Tag:
    key: str
    value: str


def check_tags(
    raw: list[dict[str, str]], *, resource: bool = False, limit: int = MAX_TAGS, require_value: bool = False
) -> tuple[Tag, ...]:
    """Validate a `Tag.N.Key/Value` (or `ResourceTag.N…`) list and return it as Tags."""
    prefix = "Resource" if resource else ""
    if len(raw) > limit:
        raise ApiError.of("NumberExceed.ResourceTags" if resource else "NumberExceed.Tags")
    seen: set[str] = set()
    tags = []
    for item in raw:
        key, value = item.get("Key"), item.get("Value", "")
        if not key:
            raise ApiError.of(f"MissingParameter.{prefix}TagKey")
        lowered = key.lower()
        if (
            len(key) > MAX_KEY
            or lowered.startswith(("aliyun", "acs:"))
            or "http://" in lowered
            or "https://" in lowered
        ):
            raise ApiError.of(f"Invalid{prefix}TagKey.Malformed")
        if value is None or len(value) > MAX_VALUE or "http://" in value.lower() or "https://" in value.lower():
            raise ApiError.of(f"Invalid{prefix}TagValue.Malformed")
        if key in seen:
            raise ApiError.of(f"Duplicate.{prefix}TagKey")
        seen.add(key)
        tags.append(Tag(key, value))
    return tuple(tags)


#: The ECS tagging operations' ResourceType values this server has resources for (the SDK's docstring
#: spells them in lower case); any other, ECS's own `instance` included, is InvalidResourceType.NotFound.
RESOURCE_TYPES: Final = ("command", "invocation", "activation", "managedinstance")
#: ResourceId.N of TagResources, UntagResources and ListTagResources: 1 to 50.
MAX_RESOURCE_IDS: Final = 50
#: TagFilter.N of ListTagResources: 1 to 5.
MAX_TAG_FILTERS: Final = 5


@dataclass(frozen=True)
class TagQuery:
    """`Tag.N` of ListTagResources: an exact key and, when given, an exact value (None: any value)."""

    key: str
    value: str | None


@dataclass(frozen=True)
class KeyPattern:
    """`TagFilter.N.TagKey` of ListTagResources: `env` (exact), `env*` (prefix) or `*env*` (infix); with
    `TagFilter.N.TagValues.N` the key is exact and the values (any of them, each in the same three forms)."""

    text: str
    values: tuple[str, ...] = ()

    @property
    def value_patterns(self) -> tuple[KeyPattern, ...]:
        return tuple(KeyPattern(v) for v in self.values)

    @property
    def infix(self) -> bool:
        return len(self.text) > 2 and self.text.startswith("*") and self.text.endswith("*")

    @property
    def prefix(self) -> bool:
        return not self.infix and self.text.endswith("*") and len(self.text) > 1

    @property
    def core(self) -> str:
        """The text to look for, without its wildcards."""
        if self.infix:
            return self.text[1:-1]
        return self.text[:-1] if self.prefix else self.text

    def matches(self, key: str) -> bool:
        if self.infix:
            return self.core in key
        return key.startswith(self.core) if self.prefix else key == self.core


def check_resource_type(raw: str | None) -> str:
    """The ResourceType in our spelling (matched case-insensitively, as ECS does)."""
    if not raw:
        raise ApiError.of("MissingParameter.ResourceType")
    lowered = raw.strip().lower()
    if lowered not in RESOURCE_TYPES:
        raise ApiError.of("InvalidResourceType.NotFound")
    return lowered


def check_resource_ids(raw: list[str] | None, *, required: bool = True) -> tuple[str, ...]:
    """`ResourceId.N`: 1 to 50 ids (repeats are taken once)."""
    ids = tuple(dict.fromkeys(i for i in (raw or []) if i))
    if required and not ids:
        raise ApiError.of("MissingParameter.ResourceIds")
    if len(ids) > MAX_RESOURCE_IDS:
        raise ApiError.of("NumberExceed.ResourceIds")
    return ids


def check_tag_keys(raw: list[str] | None) -> tuple[str, ...]:
    """`TagKey.N` of UntagResources: 1 to 20 keys."""
    keys = tuple(dict.fromkeys(k for k in (raw or []) if k))
    if len(keys) > MAX_TAGS:
        raise ApiError.of("NumberExceed.TagKeys")
    if any(len(k) > MAX_KEY for k in keys):
        raise ApiError.of("InvalidTagKey.Malformed")
    return keys


def check_tag_queries(raw: list[dict[str, str]]) -> tuple[TagQuery, ...]:
    """`Tag.N` of ListTagResources: a key alone matches any value; a value without its key is refused."""
    if len(raw) > MAX_TAGS:
        raise ApiError.of("NumberExceed.Tags")
    found = []
    for item in raw:
        key, value = item.get("Key"), item.get("Value")
        if not key:
            raise ApiError.of("InvalidParameter.TagValue" if value else "MissingParameter.TagKey")
        if len(key) > MAX_KEY:
            raise ApiError.of("InvalidTagKey.Malformed")
        if value is not None and len(value) > MAX_VALUE:
            raise ApiError.of("InvalidTagValue.Malformed")
        found.append(TagQuery(key, value))
    return tuple(found)


def check_key_patterns(raw: list[dict[str, str]]) -> tuple[KeyPattern, ...]:
    """`TagFilter.N.TagKey` (and `.TagValues.N`) of ListTagResources: 1 to 5 key patterns, each 1 to 128
    characters, with up to 5 value patterns each for an exact key."""
    if len(raw) > MAX_TAG_FILTERS:
        raise ApiError.of("InvalidParameter.TagFilter")
    patterns = []
    for item in raw:
        text = item.get("TagKey") or ""
        values = tuple(item.get("TagValues") or ())
        if not text.strip("*") or len(text) > 128:
            raise ApiError.of("InvalidParameter.TagFilter")
        if values and (text != KeyPattern(text).core or len(values) > MAX_TAG_FILTERS):
            raise ApiError.of("InvalidParameter.TagFilter")  # values need an exact key; at most 5 of them
        if any(not v.strip("*") or len(v) > 128 for v in values):
            raise ApiError.of("InvalidParameter.TagFilter")
        patterns.append(KeyPattern(text, values))
    return tuple(patterns)


def merged(current: dict[str, str], added: tuple[Tag, ...]) -> dict[str, str]:
    """A resource's tags after TagResources: a key already present takes the new value; at most 20 in all."""
    result = {**current, **{t.key: t.value for t in added}}
    if len(result) > MAX_TAGS:
        raise ApiError.of("OperationDenied.QuotaExceed")
    return result
