"""Time as an argument: the Clock protocol, the system clock, and the aware-UTC rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """`value` as aware UTC; naive datetimes are taken to be UTC (databases hand them back so)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    """`utc(value)`, or None for no time (a nullable column)."""
    return None if value is None else utc(value)


def iso(value: datetime | None) -> str:
    """The API's time format, `2019-12-20T06:15:55Z`, or "" for no time."""
    return "" if value is None else utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
