"""Response shapes shared by several actions; key names and nesting follow the SDK models exactly."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cloudassist.api.rpc.params import Param
from cloudassist.domain.paging import Page, parse_page
from cloudassist.domain.tags import Tag, check_tags

#: The paging parameters of every Describe* action.
PAGING = (
    Param("PageNumber", "int", error="InvalidParam.PageNumber"),
    Param("PageSize", "int", error="InvalidParam.PageSize"),
    Param("NextToken"),
    Param("MaxResults", "int", error="InvalidParameter.MaxResults"),
)
TAGS = Param("Tag", "objects")


def page_of(params: dict[str, Any], paging_status: int) -> Page:
    return parse_page(
        params["PageNumber"], params["PageSize"], params["NextToken"], params["MaxResults"], paging_status=paging_status
    )


def tag_filter(params: dict[str, Any]) -> tuple[Tag, ...]:
    return check_tags(params.get("Tag") or [])


def wrapped_tags(tags: Iterable[Tag]) -> dict[str, Any]:
    """`{"Tag": [{"TagKey": …, "TagValue": …}]}`: the wrapped tag list of most models."""
    return {"Tag": bare_tags(tags)}


def bare_tags(tags: Iterable[Tag]) -> list[dict[str, str]]:
    return [{"TagKey": t.key, "TagValue": t.value} for t in tags]


def paging_fields(page: Page, total: int, next_token: str | None) -> dict[str, Any]:
    """PageNumber, PageSize, TotalCount and NextToken as every Describe* returns them."""
    return {
        "PageNumber": page.number,
        "PageSize": page.size,
        "TotalCount": max(total, 0),
        "NextToken": next_token or "",
    }
