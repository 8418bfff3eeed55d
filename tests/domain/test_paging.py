"""Tables for the two paging styles: PageNumber/PageSize and NextToken/MaxResults (§5.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudassist.domain.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, decode_token, encode_token, parse_page
from cloudassist.errors import ApiError


@pytest.mark.parametrize(("number", "size", "expected"), [
    pytest.param(None, None, Page(1, DEFAULT_PAGE_SIZE, False, None), id="defaults"),
    pytest.param(1, 1, Page(1, 1, False, None), id="smallest"),
    pytest.param(3, 50, Page(3, 50, False, None), id="largest-size"),
    pytest.param(2, None, Page(2, 10, False, None), id="number-only"),
    pytest.param(None, 25, Page(1, 25, False, None), id="size-only"),
])
def test_page_number_paging(number: int | None, size: int | None, expected: Page) -> None:
    """PageNumber (≥1, default 1) and PageSize (1..50, default 10) are read as given."""
    assert parse_page(number, size, None, None, paging_status=403) == expected


@pytest.mark.parametrize(("number", "size", "offset"), [(1, 10, 0), (2, 10, 10), (5, 7, 28), (1, 50, 0)])
def test_page_offset(number: int, size: int, offset: int) -> None:
    """Page N of size S starts after (N-1)·S rows."""
    assert parse_page(number, size, None, None, paging_status=403).offset == offset


@pytest.mark.parametrize("status", [403, 400])
@pytest.mark.parametrize(("number", "size", "code"), [
    pytest.param(0, None, "InvalidParam.PageNumber", id="number-0"),
    pytest.param(-1, 10, "InvalidParam.PageNumber", id="number-negative"),
    pytest.param(None, 0, "InvalidParam.PageSize", id="size-0"),
    pytest.param(1, MAX_PAGE_SIZE + 1, "InvalidParam.PageSize", id="size-51"),
    pytest.param(1, -5, "InvalidParam.PageSize", id="size-negative"),
])
def test_page_number_errors_carry_the_given_status(number: int | None, size: int | None, code: str,
                                                   status: int) -> None:
    """Invalid PageNumber/PageSize are InvalidParam.* with the HTTP status the server is configured for."""
    with pytest.raises(ApiError) as info:
        parse_page(number, size, None, None, paging_status=status)
    assert (info.value.code, info.value.http_status) == (code, status)
    assert info.value.message == "The specified parameter is invalid."


def test_page_size_maximum_can_be_raised() -> None:
    """A listing that allows more than 50 per page accepts up to its own maximum, and no more."""
    assert parse_page(1, 100, None, None, paging_status=403, max_size=100).size == 100
    with pytest.raises(ApiError) as info:
        parse_page(1, 101, None, None, paging_status=403, max_size=100)
    assert info.value.code == "InvalidParam.PageSize"


@pytest.mark.parametrize(("token", "max_results", "expected"), [
    pytest.param(None, 5, Page(1, 5, True, None), id="max-results-only"),
    pytest.param("", None, Page(1, DEFAULT_PAGE_SIZE, True, None), id="empty-token"),
    pytest.param(encode_token("42"), None, Page(1, DEFAULT_PAGE_SIZE, True, "42"), id="token-only"),
    pytest.param(encode_token("42"), 50, Page(1, 50, True, "42"), id="both"),
    pytest.param(encode_token("7"), 1, Page(1, 1, True, "7"), id="smallest"),
])
def test_token_paging(token: str | None, max_results: int | None, expected: Page) -> None:
    """NextToken/MaxResults select token paging: offset 0, MaxResults rows (default 10) after the token's key."""
    page = parse_page(None, None, token, max_results, paging_status=403)
    assert page == expected
    assert page.offset == 0


def test_token_paging_ignores_page_number_and_size() -> None:
    """With token paging, PageNumber/PageSize are ignored, even when they would be invalid."""
    assert parse_page(0, 500, None, 5, paging_status=403) == Page(1, 5, True, None)


@pytest.mark.parametrize("paging_status", [403, 400])
@pytest.mark.parametrize(("token", "max_results", "code"), [
    pytest.param(None, 0, "InvalidParameter.MaxResults", id="max-results-0"),
    pytest.param(None, 51, "InvalidParameter.MaxResults", id="max-results-51"),
    pytest.param(None, -1, "InvalidParameter.MaxResults", id="max-results-negative"),
    pytest.param("gA", None, "InvalidParameter.NextToken", id="not-utf8"),
    pytest.param("a", None, "InvalidParameter.NextToken", id="bad-length"),
    pytest.param("abc=d", None, "InvalidParameter.NextToken", id="padding-inside"),
])
def test_token_errors_are_400(token: str | None, max_results: int | None, code: str, paging_status: int) -> None:
    """Bad MaxResults/NextToken are InvalidParameter.* with HTTP 400, whatever the PageNumber status is."""
    with pytest.raises(ApiError) as info:
        parse_page(None, None, token, max_results, paging_status=paging_status)
    assert (info.value.code, info.value.http_status) == (code, 400)


@pytest.mark.parametrize("token", [
    pytest.param("!!!!", id="punctuation"),
    pytest.param("@", id="at-sign"),
    pytest.param("a.b?", id="dots-and-question-marks"),
    pytest.param("NDI=!", id="valid-then-junk"),
])
def test_token_outside_the_alphabet_is_refused(token: str) -> None:
    """A NextToken with characters outside URL-safe Base64 was never issued by the server: it is
    InvalidParameter.NextToken, not silently read as another key (or as "start from the top")."""
    with pytest.raises(ApiError) as info:
        decode_token(token)
    assert (info.value.code, info.value.http_status) == ("InvalidParameter.NextToken", 400)


@given(st.text())
def test_token_round_trip(key: str) -> None:
    """Any key survives encode_token/decode_token, and the token is URL-safe without padding."""
    token = encode_token(key)
    assert decode_token(token) == key
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
