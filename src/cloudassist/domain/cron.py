"""Quartz-style cron expressions: parsing and the next fire time (reference §5.2).

`sec min hour day-of-month month day-of-week [year] [tz]`, each field a list of parts:

    *  */s  n  n-m  n/s  n-m/s       every field (n-m with m < n wraps around: `FRI-MON`, `22-2`)
    ?                                 day-of-month or day-of-week: "no value" (the other one decides)
    L  L-n  LW  nW                    day-of-month: last day, n days before it, last weekday, nearest weekday
    nL  n#k                           day-of-week (1-7 = SUN-SAT): last n-day of the month, k-th n-day
    JAN-DEC, SUN-SAT                  names, in any case
    year 1970-2099                    `2022`, `2022/2`, `2022-2025`, … (no year: every year up to 2099)
    tz                                IANA name, `GMT+8:00` or `UTC`; without one the caller's local zone

Day matching: when one of day-of-month/day-of-week is `?` (or `*` while the other is restricted) the
other one alone decides; both `*` is every day.

Wall-clock semantics in a zone with daylight saving time (what Quartz's lenient calendar does):
* a local time that does not exist (the spring-forward gap) fires the gap's length later, at the same
  instant as the wall clock's time that far after it (02:30 → 03:30 when 02:00 jumps to 03:00); an
  instant is never fired twice, so `*/15` minutes in the gap collapse into 03:00, 03:15, …;
* a local time that exists twice (the fall-back hour) fires once, at its first occurrence: the
  repeated hour's wall-clock times have all fired already.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIN_YEAR: Final = 1970
MAX_YEAR: Final = 2099
MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_ONE: Final = timedelta(seconds=1)
_NUMBER = re.compile(r"^\d{1,4}$")
_GMT = re.compile(r"^GMT([+-])(\d{1,2}):(\d{2})$")


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


def _value(token: str, low: int, high: int, names: tuple[str, ...] = ()) -> int:
    upper = token.upper()
    if names and upper in names:
        return names.index(upper) + low
    if not _NUMBER.match(token):
        raise ValueError(f"not a number: {token!r}")
    number = int(token)
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range {low}-{high}")
    return number


def _range(part: str, low: int, high: int, names: tuple[str, ...] = ()) -> frozenset[int]:
    """The values of one plain part: `*`, `*/s`, `n`, `n-m`, `n/s`, `n-m/s`."""
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        step = _value(step_text, 1, high + 1) if step_text.isdigit() else 0
        if step < 1:
            raise ValueError(f"bad step in {part!r}")
    if base == "*":
        first, last = low, high
    else:
        start, dash, end = base.partition("-")
        first = _value(start, low, high, names)
        last = _value(end, low, high, names) if dash else (high if slash else first)
    span = last - first if last >= first else last - first + (high - low + 1)  # a wrapping range
    return frozenset(low + (first - low + i) % (high - low + 1) for i in range(0, span + 1, step))


def _field(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> tuple[int, ...]:
    values: set[int] = set()
    for part in text.split(","):
        values |= _range(part, low, high, names)
    return tuple(sorted(values))


@dataclass(frozen=True)
class _DayRule:
    """One part of the day-of-month or day-of-week field, resolved per month."""

    kind: str  # "dom" (plain days) | "last" (L-n) | "lastweekday" | "weekday" (nW) | "dow" | "lastdow" | "nth"
    values: frozenset[int] = frozenset()
    number: int = 0
    nth: int = 0


def _dom_rules(text: str) -> tuple[_DayRule, ...]:
    rules = []
    for part in text.split(","):
        upper = part.upper()
        if upper == "L":
            rules.append(_DayRule("last", number=0))
        elif upper == "LW":
            rules.append(_DayRule("lastweekday"))
        elif re.fullmatch(r"L-\d{1,2}", upper):
            rules.append(_DayRule("last", number=_value(upper[2:], 0, 30)))
        elif re.fullmatch(r"\d{1,2}W", upper):
            rules.append(_DayRule("weekday", number=_value(upper[:-1], 1, 31)))
        else:
            rules.append(_DayRule("dom", _range(part, 1, 31)))
    return tuple(rules)


def _dow_rules(text: str) -> tuple[_DayRule, ...]:
    rules = []
    for part in text.split(","):
        upper = part.upper()
        if upper == "L":  # a bare L is 7, Saturday (Quartz): every Saturday, not the month's last one
            rules.append(_DayRule("dow", frozenset({7})))
        elif upper.endswith("L") and "/" not in upper and "-" not in upper:
            rules.append(_DayRule("lastdow", number=_value(upper[:-1], 1, 7, DAYS)))
        elif "#" in upper:
            day, _, nth = upper.partition("#")
            rules.append(_DayRule("nth", number=_value(day, 1, 7, DAYS), nth=_value(nth, 1, 5)))
        else:
            rules.append(_DayRule("dow", _range(part, 1, 7, DAYS)))
    return tuple(rules)


def _weekday(year: int, month: int, day: int) -> int:
    """Quartz's day of the week: 1 = Sunday … 7 = Saturday."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _rule_days(rule: _DayRule, year: int, month: int) -> set[int]:
    length = calendar.monthrange(year, month)[1]
    if rule.kind == "dom":
        return {d for d in rule.values if d <= length}
    if rule.kind == "last":
        return {length - rule.number} if length - rule.number >= 1 else set()
    if rule.kind in ("lastweekday", "weekday"):
        day = length if rule.kind == "lastweekday" else rule.number
        if day > length:
            return set()
        weekday = _weekday(year, month, day)
        if weekday == 7:  # Saturday: the Friday before, or the Monday after when that leaves the month
            day = day - 1 if day > 1 else day + 2
        elif weekday == 1:  # Sunday: the Monday after, or the Friday before when that leaves the month
            day = day + 1 if day < length else day - 2
        return {day}
    if rule.kind == "dow":
        return {d for d in range(1, length + 1) if _weekday(year, month, d) in rule.values}
    same = [d for d in range(1, length + 1) if _weekday(year, month, d) == rule.number]
    if rule.kind == "lastdow":
        return {same[-1]}
    return {same[rule.nth - 1]} if rule.nth <= len(same) else set()


def _restricted(field: str) -> bool:
    return field not in ("*", "?")


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression (see the module docstring); `zone` None = the caller's local zone."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    day_rules: tuple[_DayRule, ...] | None  # None: every day
    years: tuple[int, ...]
    zone: tzinfo | None

    def days(self, year: int, month: int) -> tuple[int, ...]:
        """The matching days of a month, sorted."""
        return _days(self, year, month)

    def _next_local(self, t: datetime) -> datetime | None:
        """The first naive local time >= `t` that matches every field, or None (beyond the years)."""
        y, mo, d, h, mi, s = t.year, t.month, t.day, t.hour, t.minute, t.second
        while y <= MAX_YEAR:
            year = _first(self.years, y)
            if year is None:
                return None
            if year != y:
                y, mo, d, h, mi, s = year, 1, 1, 0, 0, 0
            month = _first(self.months, mo)
            if month is None:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if month != mo:
                mo, d, h, mi, s = month, 1, 0, 0, 0
            day = _first(self.days(y, mo), d)
            if day is None:
                y, mo, d, h, mi, s = (y, mo + 1, 1, 0, 0, 0) if mo < 12 else (y + 1, 1, 1, 0, 0, 0)
                continue
            if day != d:
                d, h, mi, s = day, 0, 0, 0
            hour = _first(self.hours, h)
            if hour is None:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if hour != h:
                h, mi, s = hour, 0, 0
            minute = _first(self.minutes, mi)
            if minute is None:
                h, mi, s = h + 1, 0, 0
                continue
            if minute != mi:
                mi, s = minute, 0
            second = _first(self.seconds, s)
            if second is None:
                mi, s = mi + 1, 0
                continue
            return datetime(y, mo, d, h, mi, second)  # a naive local wall-clock time
        return None

    def next_after(self, after: datetime, local_zone: tzinfo) -> datetime | None:
        """The first fire time strictly after `after` (aware), in UTC; None when there is none."""
        zone = self.zone or local_zone
        naive = after.astimezone(zone).replace(tzinfo=None, microsecond=0) + _ONE
        while True:
            found = self._next_local(naive)
            if found is None:
                return None
            instant = found.replace(tzinfo=zone, fold=0).astimezone(UTC)
            if instant > after:
                return instant
            naive = found + _ONE  # a gap time mapped onto an instant already passed, or the repeated hour


def _first(values: tuple[int, ...], at_least: int) -> int | None:
    index = bisect_left(values, at_least)
    return values[index] if index < len(values) else None


@lru_cache(maxsize=4096)
def _days(cron: Cron, year: int, month: int) -> tuple[int, ...]:
    if cron.day_rules is None:
        return tuple(range(1, calendar.monthrange(year, month)[1] + 1))
    found: set[int] = set()
    for rule in cron.day_rules:
        found |= _rule_days(rule, year, month)
    return tuple(sorted(found))


def looks_like_zone(token: str) -> bool:
    """A trailing cron token that names a time zone rather than a year (`2022`, `2022/2`, `*`)."""
    if token == "UTC":  # noqa: S105 - a time zone, not a secret
        return True
    return token.startswith("GMT") or ("/" in token and any(ch.isalpha() for ch in token))


def parse_cron(expression: str) -> Cron:
    """Parse a cron expression; ValueError if it is not a valid one."""
    tokens = expression.split()
    zone: tzinfo | None = None
    if len(tokens) in (7, 8) and looks_like_zone(tokens[-1]):
        zone = parse_zone(tokens[-1])
        tokens = tokens[:-1]
    if len(tokens) not in (6, 7):
        raise ValueError("a cron expression has 6 or 7 fields")
    second, minute, hour, dom, month, dow, *year = tokens
    if dom == "?" and dow == "?":
        raise ValueError("day-of-month and day-of-week cannot both be '?'")
    if "?" not in (dom, dow) and "*" not in (dom, dow):
        raise ValueError("one of day-of-month and day-of-week must be '?'")
    for name, text in (("second", second), ("minute", minute), ("hour", hour), ("month", month)):
        if text == "?":
            raise ValueError(f"'?' is not allowed in the {name} field")
    day_rules: tuple[_DayRule, ...] | None
    if _restricted(dow):
        day_rules = _dow_rules(dow)
        if _restricted(dom):
            raise ValueError("one of day-of-month and day-of-week must be '?'")
    elif _restricted(dom):
        day_rules = _dom_rules(dom)
    else:
        day_rules = None
    return Cron(
        expression=expression,
        seconds=_field(second, 0, 59),
        minutes=_field(minute, 0, 59),
        hours=_field(hour, 0, 23),
        months=_field(month, 1, 12, MONTHS),
        day_rules=day_rules,
        years=_field(year[0], MIN_YEAR, MAX_YEAR) if year else tuple(range(MIN_YEAR, MAX_YEAR + 1)),
        zone=zone,
    )
