"""Frequency expressions of scheduled tasks: `rate(…)`, `at(…)` and Quartz-style cron with an
optional year and time zone (reference §5.2). This module checks them; the agent runs them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloudassist.errors import ApiError

#: The longest Frequency stored (the column's size); longer ones are InvalidParam.Frequency.
MAX_FREQUENCY: Final = 256
MIN_RATE: Final = timedelta(seconds=60)
MAX_RATE: Final = timedelta(days=7)
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^rate\(\s*(\d{1,9})\s*([smhd])\s*\)$")
_AT = re.compile(r"^at\(\s*(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\s+(\S+))?\s*\)$")
_GMT = re.compile(r"^GMT([+-])(\d{1,2}):(\d{2})$")
_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"


def parse_zone(text: str) -> tzinfo:
    """A time zone in one of the three documented forms: IANA name, `GMT+8:00` (no leading zero), `UTC`."""
    if text == "UTC":
        return UTC
    match = _GMT.match(text)
    if match:
        sign, hours, minutes = match.groups()
        if len(hours) > 1 and hours.startswith("0"):
            raise ValueError("GMT offsets have no leading zero")
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        if offset > timedelta(hours=14) or int(minutes) >= 60:
            raise ValueError("offset out of range")
        return timezone(-offset if sign == "-" else offset)
    if "/" not in text:
        raise ValueError("not a time zone")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone") from exc


def rate_seconds(expression: str) -> int | None:
    """The interval of a `rate(…)` expression in seconds, or None if it is not one."""
    match = _RATE.match(expression.strip())
    return None if match is None else int(match.group(1)) * _UNITS[match.group(2)]


def _number(token: str, low: int, high: int, names: str = "") -> bool:
    if names and token.upper() in names.split("|"):
        return True
    return token.isdigit() and low <= int(token) <= high


def _field_ok(
    field: str, low: int, high: int, names: str = "", *, day_of_month: bool = False, day_of_week: bool = False
) -> bool:
    if field == "?":
        return day_of_month or day_of_week
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and 0 < int(step) <= high + 1):
            return False
        if base == "*":
            continue
        if (day_of_month and base in ("L", "LW")) or (day_of_month and re.fullmatch(r"L-\d{1,2}", base)):
            continue
        if day_of_month and base.endswith("W") and _number(base[:-1], low, high):
            continue
        if day_of_week and base.endswith("L") and _number(base[:-1] or "7", low, high, names):
            continue
        if day_of_week and "#" in base:
            day, _, nth = base.partition("#")
            if _number(day, low, high, names) and nth.isdigit() and 1 <= int(nth) <= 5:
                continue
            return False
        first, dash, last = base.partition("-")
        if not _number(first, low, high, names) or (dash and not _number(last, low, high, names)):
            return False
    return True


def _looks_like_zone(token: str) -> bool:
    """A trailing cron token that names a time zone rather than a year (`2022`, `2022/2`, `*`)."""
    if token == "UTC":  # noqa: S105 - a time zone, not a secret
        return True
    return token.startswith("GMT") or ("/" in token and any(ch.isalpha() for ch in token))


def check_cron(expression: str) -> None:
    """A cron expression: `sec min hour day-of-month month day-of-week [year] [tz]` with Quartz syntax."""
    tokens = expression.split()
    if len(tokens) in (7, 8) and _looks_like_zone(tokens[-1]):
        parse_zone(tokens[-1])
        tokens = tokens[:-1]
    if len(tokens) not in (6, 7):
        raise ValueError("a cron expression has 6 or 7 fields")
    second, minute, hour, dom, month, dow, *year = tokens
    checks = [
        _field_ok(second, 0, 59),
        _field_ok(minute, 0, 59),
        _field_ok(hour, 0, 23),
        _field_ok(dom, 1, 31, day_of_month=True),
        _field_ok(month, 1, 12, _MONTHS),
        _field_ok(dow, 1, 7, _DAYS, day_of_week=True),
        not year or _field_ok(year[0], 1970, 2099),
    ]
    if not all(checks):
        raise ValueError("a cron field is out of range")
    if dom == "?" and dow == "?":
        raise ValueError("day-of-month and day-of-week cannot both be '?'")
    if "?" not in (dom, dow) and "*" not in (dom, dow):
        raise ValueError("one of day-of-month and day-of-week must be '?'")


def check_frequency(expression: str, timeout: int, now: datetime) -> None:
    """InvalidParam.Frequency unless `expression` is a valid rate, at or cron schedule for `timeout`."""
    text = expression.strip()
    try:
        seconds = rate_seconds(text)
        if seconds is not None:
            if not MIN_RATE.total_seconds() <= seconds <= MAX_RATE.total_seconds() or seconds <= timeout:
                raise ValueError("rate interval out of range")
            return
        if text.startswith("rate("):
            raise ValueError("malformed rate")
        at = _AT.match(text)
        if at:
            zone = parse_zone(at.group(2)) if at.group(2) else UTC
            datetime.strptime(at.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
            return
        if text.startswith("at("):
            raise ValueError("malformed at")
        check_cron(text)
    except ValueError:
        raise ApiError.of("InvalidParam.Frequency") from None


def agent_schedule(repeat_mode: str, frequency: str) -> tuple[str, str]:
    """(`repeat`, `cron`) of a task list entry, as the official agent reads them (agent-protocol §1.5, §4.4).

    A rate goes as `Rate`; a one-shot `at(…)` as `At` with its time in UTC and no zone
    (`at(2030-01-01T00:00:00)`); a cron expression as `Period`; other modes as themselves.
    """
    text = frequency.strip()
    if repeat_mode != "Period":
        return repeat_mode, ""
    if rate_seconds(text) is not None:
        return "Rate", text
    at = _AT.match(text)
    if at:
        zone = parse_zone(at.group(2)) if at.group(2) else UTC
        when = datetime.strptime(at.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone).astimezone(UTC)
        return "At", f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})"
    return "Period", text
