"""The two ways Describe* calls page: PageNumber/PageSize and NextToken/MaxResults."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from cloudassist.errors import ApiError

MAX_PAGE_SIZE: Final = 50
DEFAULT_PAGE_SIZE: Final = 10
#: Far beyond any row count, and within the 64-bit integers both databases take for OFFSET.
MAX_OFFSET: Final = 2**62


@dataclass(frozen=True)
class Page:
    """Which slice of a listing to return.

    With a token (`token_mode`), `after` is the sort key of the last row already returned and
    TotalCount is meaningless (the docs say so); otherwise `offset` rows are skipped.
    """

    number: int
    size: int
    token_mode: bool
    after: str | None

    @property
    def offset(self) -> int:
        """Rows to skip; a page past any possible row count asks for an empty page, not an overflow."""
        return 0 if self.token_mode else min((self.number - 1) * self.size, MAX_OFFSET)

    @property
    def start(self) -> int:
        """The row a row-offset listing starts at: the offset inside a NextToken, else PageNumber's."""
        position = self.position if self.token_mode else None
        return min(self.offset if position is None else position, MAX_OFFSET)

    @property
    def position(self) -> int | None:
        """The number inside a NextToken (a sequence number or an offset), None on the first page."""
        if self.after is None:
            return None
        if not (self.after.isascii() and self.after.isdigit()) or len(self.after) > 18:  # not "²", "①", "٣"
            raise ApiError.of("InvalidParameter.NextToken")
        return int(self.after)


def parse_page(
    page_number: int | None,
    page_size: int | None,
    next_token: str | None,
    max_results: int | None,
    *,
    paging_status: int,
    max_size: int = MAX_PAGE_SIZE,
) -> Page:
    """Validate paging parameters as the seed says (InvalidParam.* with `paging_status`)."""
    if next_token is not None or max_results is not None:
        if max_results is not None and not 1 <= max_results <= max_size:
            raise ApiError.of("InvalidParameter.MaxResults")
        after = decode_token(next_token) if next_token else None
        return Page(1, max_results or DEFAULT_PAGE_SIZE, True, after)
    if page_number is not None and page_number < 1:
        raise ApiError.of("InvalidParam.PageNumber", http_status=paging_status)
    if page_size is not None and not 1 <= page_size <= max_size:
        raise ApiError.of("InvalidParam.PageSize", http_status=paging_status)
    return Page(page_number or 1, page_size or DEFAULT_PAGE_SIZE, False, None)


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The sort key inside a NextToken; anything that is not one of ours is InvalidParameter.NextToken."""
    try:
        key = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError.of("InvalidParameter.NextToken") from None
    return key


T = TypeVar("T")


@dataclass(frozen=True)
class Slice(Generic[T]):
    """One page of a row-offset listing: its rows, TotalCount (-1 with tokens) and the next page's start."""

    rows: list[T]
    total: int
    next_start: int | None


async def offset_slice(
    page: Page, fetch: Callable[[int, int], Awaitable[list[T]]], count: Callable[[], Awaitable[int]]
) -> Slice[T]:
    """Fetch one page plus one row (to know whether another page follows) and, without tokens, the count."""
    found = await fetch(page.start, page.size + 1)
    total = -1 if page.token_mode else await count()
    more = len(found) > page.size
    return Slice(found[: page.size], total, page.start + page.size if more else None)
