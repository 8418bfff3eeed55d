"""Frequency expressions of scheduled tasks: `rate(…)`, `at(…)` and Quartz-style cron with an
optional year and time zone (reference §5.2). This module checks them and computes their next run
(`next_run`, used by the agent's scheduler); cron.py evaluates the cron ones.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from cloudassist.domain.cron import parse_cron, parse_zone
from cloudassist.errors import ApiError

__all__ = [
    "agent_schedule", "check_cron", "check_frequency", "cron_interval", "next_run", "parse_at", "parse_zone",
    "rate_seconds",
]

#: The longest Frequency stored (the column's size); longer ones are InvalidParam.Frequency.
MAX_FREQUENCY: Final = 256
MIN_RATE: Final = timedelta(seconds=60)
MAX_RATE: Final = timedelta(days=7)
#: The longest rate the agent schedules (the official agent's cap, agent-protocol §1.8).
MAX_AGENT_RATE: Final = timedelta(days=1000)
#: A cron schedule's runs are at least this far apart (and at least Timeout apart): reference §5.2, §6.
MIN_CRON_INTERVAL: Final = timedelta(seconds=10)
#: How many upcoming runs of a cron expression `cron_interval` compares.
INTERVAL_SAMPLES: Final = 60
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^rate\(\s*(\d{1,9})\s*([smhd])\s*\)$")
_AT = re.compile(r"^at\(\s*(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\s+(\S+))?\s*\)$")
_AT_WIRE = re.compile(r"^at\(\s*(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\s*\)$")


def rate_seconds(expression: str) -> int | None:
    """The interval of a `rate(…)` expression in seconds, or None if it is not one."""
    match = _RATE.match(expression.strip())
    return None if match is None else int(match.group(1)) * _UNITS[match.group(2)]


def check_cron(expression: str) -> None:
    """A cron expression: `sec min hour day-of-month month day-of-week [year] [tz]` with Quartz syntax;
    ValueError if it is not one (the agent's evaluator, cron.py, is the single definition)."""
    parse_cron(expression)


def cron_interval(expression: str, now: datetime) -> timedelta | None:
    """The shortest gap between consecutive runs among a cron expression's next `INTERVAL_SAMPLES` runs after
    `now` (read in UTC when it names no zone), or None when it has fewer than two; ValueError if invalid.

    A sample, not a proof: a short gap that first occurs more than 60 runs ahead is not seen (no such
    expression is plausible: cron's periodic fields repeat their pattern within a few runs)."""
    cron = parse_cron(expression)
    runs: list[datetime] = []
    after = now
    while len(runs) < INTERVAL_SAMPLES and (found := cron.next_after(after, UTC)) is not None:
        runs.append(found)
        after = found
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    return min(gaps) if gaps else None


def parse_at(expression: str) -> datetime | None:
    """The instant of an `at(…)` expression, or None if it is not one; ValueError if it is malformed.

    Two forms: the API's `at(2030-01-01 08:00:00[ <tz>])` (default zone UTC) and the task list's
    `at(2030-01-01T00:00:00)` (UTC), which the server sends to agents."""
    text = expression.strip()
    at = _AT.match(text)
    if at:
        zone = parse_zone(at.group(2)) if at.group(2) else UTC
        return datetime.strptime(at.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone).astimezone(UTC)
    wire = _AT_WIRE.match(text)
    if wire:
        return datetime.strptime(wire.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    if text.startswith("at("):
        raise ValueError("malformed at")
    return None


def next_run(frequency: str, *, after: datetime, created: datetime, local_zone: tzinfo) -> datetime | None:
    """The first run of a schedule strictly after `after`, in UTC; None when it has no more runs.

    * `rate(n<s|m|h|d>)`: anchored at `created`: runs at created + k·interval, k >= 1;
    * `at(…)`: its instant while it is still ahead, then None;
    * cron (cron.py): its next fire time in its zone, or `local_zone` when it names none; None beyond
      its last year.
    ValueError if `frequency` is none of these, a rate beyond `MAX_AGENT_RATE`, a time beyond what a
    datetime holds (or `after`/`created` is naive).
    """
    if after.tzinfo is None or created.tzinfo is None:
        raise ValueError("after and created must be aware datetimes")
    try:
        return _next_run(frequency, after=after, created=created, local_zone=local_zone)
    except OverflowError as exc:
        raise ValueError(f"a run beyond the representable dates ({exc})") from None


def _next_run(frequency: str, *, after: datetime, created: datetime, local_zone: tzinfo) -> datetime | None:
    text = frequency.strip()
    seconds = rate_seconds(text)
    if seconds is not None:
        if seconds <= 0:
            raise ValueError("a rate of zero")
        if seconds > MAX_AGENT_RATE.total_seconds():
            raise ValueError("a rate beyond 1000 days")
        interval = timedelta(seconds=seconds)
        runs = max(1, (after - created) // interval + 1)
        return (created + runs * interval).astimezone(UTC)
    if text.startswith("rate("):
        raise ValueError("malformed rate")
    when = parse_at(text)
    if when is not None:
        return when if when > after else None
    return parse_cron(text).next_after(after, local_zone)


def check_frequency(expression: str, timeout: int, now: datetime) -> None:
    """InvalidParam.Frequency unless `expression` is a valid rate, at or cron schedule for `timeout`: a rate
    of 60 s to 7 days and longer than the timeout; a cron whose runs are at least 10 s and at least the
    timeout apart (`cron_interval`, from `now`). The error's message names the rule that failed and the value."""
    text = expression.strip()
    try:
        _check_frequency(text, timeout, now)
    except ValueError as exc:
        raise ApiError.of("InvalidParam.Frequency").because(f"Frequency {text!r}: {exc}") from None


def _check_frequency(text: str, timeout: int, now: datetime) -> None:
    seconds = rate_seconds(text)
    if seconds is not None:
        if not MIN_RATE.total_seconds() <= seconds <= MAX_RATE.total_seconds():
            raise ValueError(f"a rate runs every {seconds} s; it must be from 60 s to 7 days (604800 s).")
        if seconds <= timeout:
            raise ValueError(f"a rate runs every {seconds} s, which must be longer than {_timeout(timeout)}; give a "
                             f"longer rate or a shorter Timeout.")
        return
    if text.startswith("rate("):
        raise ValueError("a rate is rate(N) with N followed by s, m, h or d, e.g. rate(5m).")
    if _AT.match(text):
        try:
            parse_at(text)
        except ValueError as exc:
            raise ValueError(f"not a time of at(YYYY-MM-DD HH:MM:SS [time zone]): {exc}") from None
        return
    if text.startswith("at("):
        raise ValueError("a one-time schedule is at(YYYY-MM-DD HH:MM:SS [time zone]).")
    try:
        interval = cron_interval(text, now)
    except ValueError as exc:
        raise ValueError(f"not a cron expression (seconds minutes hours day month weekday [year] [zone]): {exc}") \
            from None
    if interval is not None and interval < MIN_CRON_INTERVAL:
        raise ValueError(f"its runs come {interval.total_seconds():g} s apart; they must be at least 10 s apart.")
    if interval is not None and interval.total_seconds() < timeout:
        raise ValueError(f"its runs come {interval.total_seconds():g} s apart, which must be at least "
                         f"{_timeout(timeout)}; space the runs further or give a shorter Timeout.")


def _timeout(timeout: int) -> str:
    from cloudassist.domain.commands import DEFAULT_TIMEOUT  # only on this error path

    return f"the task's Timeout of {timeout} s" + (" (the default when Timeout is not given)"
                                                   if timeout == DEFAULT_TIMEOUT else "")


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
