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
