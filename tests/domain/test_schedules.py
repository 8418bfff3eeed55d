"""next_run: rate, at and Quartz cron schedules, against a table of hand-checked fire times; and the check that
every Frequency the API accepts has a next run (or none) while every cron it refuses is refused here too."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudassist.domain.cron import parse_cron
from cloudassist.domain.schedules import check_cron, check_frequency, cron_interval, next_run
from cloudassist.errors import ApiError

NY = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    """`2026-03-01T00:00:02Z` (or with an offset) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# (expression, now, expected next run or None, the instance's local zone)
TABLE: list[tuple[str, str, str | None, tzinfo]] = [
    # seconds, minutes, hours; strictly after `now`
    ("*/5 * * * * ?", "2026-03-01T00:00:02Z", "2026-03-01T00:00:05Z", UTC),
    ("*/5 * * * * ?", "2026-03-01T00:00:05Z", "2026-03-01T00:00:10Z", UTC),
    ("*/5 * * * * ?", "2026-03-01T00:00:05.999Z", "2026-03-01T00:00:10Z", UTC),
    ("5,10,50 * * * * ?", "2026-03-01T00:00:11Z", "2026-03-01T00:00:50Z", UTC),
    ("0 * * * * ?", "2026-03-01T00:00:00.5Z", "2026-03-01T00:01:00Z", UTC),
    ("0 0 9-17/4 * * ?", "2026-01-01T10:00:00Z", "2026-01-01T13:00:00Z", UTC),
    ("0 0 22-2 * * ?", "2026-01-01T03:00:00Z", "2026-01-01T22:00:00Z", UTC),
    ("0 0 22-2 * * ?", "2026-01-01T23:30:00Z", "2026-01-02T00:00:00Z", UTC),
    ("0 0 12 * * ?", "2026-12-31T12:00:00Z", "2027-01-01T12:00:00Z", UTC),
    ("0 0 0 ? * *", "2026-12-31T12:00:00Z", "2027-01-01T00:00:00Z", UTC),
    ("59 59 23 31 12 ? *", "2026-12-31T23:59:59Z", "2027-12-31T23:59:59Z", UTC),
    # leap years and month ends
    ("0 0 0 29 2 ?", "2025-03-01T00:00:00Z", "2028-02-29T00:00:00Z", UTC),
    ("0 0 0 L 2 ?", "2023-03-01T00:00:00Z", "2024-02-29T00:00:00Z", UTC),
    ("0 0 0 L * ?", "2026-04-15T00:00:00Z", "2026-04-30T00:00:00Z", UTC),
    ("0 0 0 31 * ?", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z", UTC),
    ("0 0 0 30 2 ?", "2026-01-01T00:00:00Z", None, UTC),
    ("0 0 0 L-2 * ?", "2026-02-01T00:00:00Z", "2026-02-26T00:00:00Z", UTC),
    ("0 0 0 L-30 * ?", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", UTC),
    # W: the nearest weekday, never leaving the month
    ("0 0 0 LW * ?", "2026-05-01T00:00:00Z", "2026-05-29T00:00:00Z", UTC),
    ("0 0 0 LW * ?", "2026-02-01T00:00:00Z", "2026-02-27T00:00:00Z", UTC),
    ("0 0 0 15W * ?", "2026-11-01T00:00:00Z", "2026-11-16T00:00:00Z", UTC),
    ("0 0 0 1W * ?", "2026-08-01T00:00:00Z", "2026-08-03T00:00:00Z", UTC),
    ("0 0 0 31W * ?", "2026-05-01T00:00:00Z", "2026-05-29T00:00:00Z", UTC),
    # day of week: 1-7 = SUN-SAT, names, ranges (wrapping), steps, nL, n#k
    ("0 0 0 ? * 6#3", "2026-11-01T00:00:00Z", "2026-11-20T00:00:00Z", UTC),
    ("0 0 0 ? * 2#5", "2026-11-01T00:00:00Z", "2026-11-30T00:00:00Z", UTC),
    ("0 0 0 ? * MON#5", "2026-12-01T00:00:00Z", "2027-03-29T00:00:00Z", UTC),
    ("0 0 0 ? * 6L", "2026-11-01T00:00:00Z", "2026-11-27T00:00:00Z", UTC),
    ("0 0 0 ? * L", "2026-11-01T00:00:00Z", "2026-11-07T00:00:00Z", UTC),  # a bare L is 7, SAT: every Saturday
    ("0 0 0 ? * MON-FRI", "2026-11-28T12:00:00Z", "2026-11-30T00:00:00Z", UTC),
    ("0 0 0 ? * FRI-MON", "2026-11-24T00:00:00Z", "2026-11-27T00:00:00Z", UTC),
    ("0 0 0 ? * sun", "2026-11-24T00:00:00Z", "2026-11-29T00:00:00Z", UTC),
    ("0 0 0 ? * 1,7", "2026-11-24T00:00:00Z", "2026-11-28T00:00:00Z", UTC),
    ("0 0 0 ? * 2/3", "2026-11-24T00:00:00Z", "2026-11-26T00:00:00Z", UTC),
    ("0 0 0 * * MON", "2026-11-24T00:00:00Z", "2026-11-30T00:00:00Z", UTC),
    # months
    ("0 0 0 1 JAN,jul ?", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z", UTC),
    ("0 0 0 1 */4 ?", "2026-02-01T00:00:00Z", "2026-05-01T00:00:00Z", UTC),
    ("0 0 0 1 NOV-FEB ?", "2026-03-05T00:00:00Z", "2026-11-01T00:00:00Z", UTC),
    # years
    ("0 0 0 1 1 ? 2030", "2026-01-01T00:00:00Z", "2030-01-01T00:00:00Z", UTC),
    ("0 0 0 1 1 ? 2022", "2026-01-01T00:00:00Z", None, UTC),
    ("0 0 0 1 1 ? 2025-2027", "2027-01-01T00:00:00Z", None, UTC),
    ("* * * ? * * 2099", "2099-12-31T23:59:59Z", None, UTC),
    ("0 0/5 14 * 10 ? 2022/2 UTC", "2026-01-01T00:00:00Z", "2026-10-01T14:00:00Z", UTC),
    ("0 0/5 14 * 10 ? 2022/2 UTC", "2026-10-31T14:55:00Z", "2028-10-01T14:00:00Z", UTC),
    # time zones: IANA, GMT±h:mm, UTC, and the instance's own zone when none is given
    ("0 15 10 ? * * 2027 Asia/Shanghai", "2026-06-01T00:00:00Z", "2027-01-01T02:15:00Z", UTC),
    ("0 0/30 10-11 * * ? 2026 GMT+8:00", "2026-06-01T02:40:00Z", "2026-06-01T03:00:00Z", UTC),
    ("0 0 0 * * ? GMT-3:30", "2026-06-01T00:00:00Z", "2026-06-01T03:30:00Z", UTC),
    ("0 0 0 * * ? UTC", "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z", TOKYO),
    ("0 0 9 * * ?", "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z", TOKYO),
    ("0 0 9 * * ?", "2026-05-31T23:59:59Z", "2026-06-01T00:00:00Z", TOKYO),
    # DST, spring forward (02:00 EST -> 03:00 EDT): a time in the gap fires the gap's length later, once
    ("0 30 2 * * ?", "2026-03-08T05:00:00Z", "2026-03-08T07:30:00Z", NY),
    ("0 30 2 * * ?", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z", NY),
    ("0 */30 * * * ?", "2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", NY),
    ("0 */30 * * * ?", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z", NY),
    ("0 0 3 * * ?", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", NY),
    # DST, fall back (02:00 EDT -> 01:00 EST): a repeated wall-clock time fires once, the first time
    ("0 30 1 * * ?", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z", NY),
    ("0 30 1 * * ?", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", NY),
    ("0 */30 * * * ?", "2026-11-01T05:45:00Z", "2026-11-01T07:00:00Z", NY),
    ("0 */30 * * * ?", "2026-11-01T06:10:00Z", "2026-11-01T07:00:00Z", NY),
    ("0 0 0 * * ? Europe/London", "2026-03-29T00:30:00Z", "2026-03-29T23:00:00Z", UTC),
]


@pytest.mark.parametrize(("expression", "now", "expected", "zone"), TABLE)
def test_cron_next_run(expression: str, now: str, expected: str | None, zone: tzinfo) -> None:
    found = next_run(expression, after=at(now), created=CREATED, local_zone=zone)
    assert found == (at(expected) if expected else None)
    if found is not None:
        assert found.tzinfo is UTC


@pytest.mark.parametrize(
    ("frequency", "created", "now", "expected"),
    [
        ("rate(5m)", "2026-01-01T00:00:00Z", "2025-12-31T00:00:00Z", "2026-01-01T00:05:00Z"),
        ("rate(5m)", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"),
        ("rate(5m)", "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"),
        ("rate(5m)", "2026-01-01T00:00:00Z", "2026-01-01T00:07:30Z", "2026-01-01T00:10:00Z"),
        ("rate(90s)", "2026-01-01T00:00:00.250Z", "2026-01-01T00:01:31Z", "2026-01-01T00:03:00.250Z"),
        ("rate(1d)", "2026-01-01T10:00:00Z", "2026-03-10T09:00:00Z", "2026-03-10T10:00:00Z"),
        ("rate(2h)", "2026-03-08T05:00:00Z", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"),  # DST: no effect
        (" rate( 7s ) ", "2026-01-01T00:00:00Z", "2026-01-01T00:00:14Z", "2026-01-01T00:00:21Z"),
        ("at(2030-01-01 08:00:00 Asia/Shanghai)", CREATED.isoformat(), "2026-01-01T00:00:00Z",
         "2030-01-01T00:00:00Z"),
        ("at(2030-01-01 08:00:00 GMT+8:00)", CREATED.isoformat(), "2026-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        ("at(2030-01-01 00:00:00)", CREATED.isoformat(), "2029-12-31T23:59:59Z", "2030-01-01T00:00:00Z"),
        ("at(2030-01-01T00:00:00)", CREATED.isoformat(), "2026-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
        ("at(2030-01-01T00:00:00)", CREATED.isoformat(), "2030-01-01T00:00:00Z", None),
        ("at(2020-01-01 00:00:00)", CREATED.isoformat(), "2026-01-01T00:00:00Z", None),
    ],
)
def test_rate_and_at_next_run(frequency: str, created: str, now: str, expected: str | None) -> None:
    found = next_run(frequency, after=at(now), created=at(created), local_zone=TOKYO)
    assert found == (at(expected) if expected else None)


def test_a_rate_counts_from_creation_between_starts() -> None:
    """Ten consecutive runs of rate(7m) are exactly 7 minutes apart, the first 7 minutes after creation."""
    created = at("2026-05-05T10:00:03Z")
    runs, now = [], created
    for _ in range(10):
        found = next_run("rate(7m)", after=now, created=created, local_zone=UTC)
        assert found is not None
        runs.append(found)
        now = found + timedelta(seconds=40)  # a run that took 40 s
    assert runs[0] == created + timedelta(minutes=7)
    assert all(b - a == timedelta(minutes=7) for a, b in itertools.pairwise(runs))


@pytest.mark.parametrize(
    "bad",
    [
        "garbage", "", "* * * * *", "* * * * * * * * *", "* * * ? * ?", "0 0 0 1 * MON", "60 * * * * ?",
        "* 60 * * * ?", "* * 24 * * ?", "* * * 0 * ?", "* * * 32 * ?", "* * * * 13 ?", "* * * ? * 8",
        "* * * ? * 0", "? * * * * ?", "* * * L-31 * ?", "* * * 32W * ?", "* * * ? * 2#6", "* * * ? * 8L",
        "* * * * * ? 1969", "* * * * * ? 2100", "*/0 * * * * ?", "1-x * * * * ?", "* * * * FOO ?",
        "* * * * * ? 2022 Mars/Olympus", "* * * * * ? GMT+08:00", "* * * * * ? GMT+15:00", "rate(5)",
        "rate(5w)", "rate(0s)", "at(2030-01-01)", "at(2030-13-01 00:00:00)", "at(2030-01-01 00:00:00 Nowhere)",
    ],
)
def test_invalid_expressions_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message does not matter
        next_run(bad, after=CREATED, created=CREATED, local_zone=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run("rate(5m)", after=datetime(2026, 1, 1), created=CREATED, local_zone=UTC)


# Expressions built from the field grammar: mostly valid ones, with a noisy token now and then.
def _part(low: int, high: int, names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    value = st.one_of(st.integers(low, high).map(str), *([st.sampled_from(names)] if names else []))
    return st.one_of(
        st.just("*"), value, st.tuples(value, value).map("-".join),
        st.tuples(st.one_of(st.just("*"), value), st.integers(1, high)).map(lambda t: f"{t[0]}/{t[1]}"),
    )


def _list(part: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(part, min_size=1, max_size=3).map(",".join)


_NOISE = st.sampled_from(["60", "0", "32", "13", "8", "?", "L-", "W", "#", "1#", "7#6", "*/0", "XYZ", "2100", "1-x"])
_DOM = _list(st.one_of(_part(1, 31), st.sampled_from(["L", "LW", "L-3", "L-30", "15W", "1W", "31W"])))
_DOW = _list(st.one_of(_part(1, 7, ("MON", "sun", "FRI", "SAT")), st.sampled_from(["L", "6L", "2#5", "MON#1"])))
_YEAR = st.one_of(st.none(), st.sampled_from(["*", "2026", "2022/2", "2025-2030", "2030/50", "2099"]))
_ZONE = st.one_of(st.none(), st.sampled_from(["UTC", "Asia/Shanghai", "GMT+8:00", "GMT-3:30", "GMT+08:00",
                                              "America/New_York", "Nowhere/Land"]))


@st.composite
def cron_expressions(draw: st.DrawFn) -> str:
    days = draw(st.sampled_from(["dom", "dow", "both*", "both?"]))
    dom = {"dom": draw(_DOM), "dow": "?", "both*": "*", "both?": "?"}[days]
    dow = {"dom": "?", "dow": draw(_DOW), "both*": draw(st.sampled_from(["?", "*"])), "both?": "?"}[days]
    fields = [draw(_list(_part(0, 59))), draw(_list(_part(0, 59))), draw(_list(_part(0, 23))), dom,
              draw(_list(_part(1, 12, ("JAN", "jul", "DEC")))), dow]
    if draw(st.integers(0, 3)) == 0:  # a noisy token in some field
        fields[draw(st.integers(0, 5))] = draw(_NOISE)
    year, zone = draw(_YEAR), draw(_ZONE)
    return " ".join([*fields, *([year] if year else []), *([zone] if zone else [])])


@settings(max_examples=400, deadline=None)
@given(expression=cron_expressions(), zone=st.sampled_from([UTC, NY, TOKYO]),
       now=st.datetimes(datetime(2020, 1, 1), datetime(2099, 12, 31), timezones=st.just(UTC)))
def test_what_the_api_accepts_has_a_next_run_and_what_it_refuses_raises(
    expression: str, now: datetime, zone: tzinfo
) -> None:
    try:
        check_cron(expression)
    except ValueError:
        with pytest.raises(ValueError):  # noqa: PT011
            next_run(expression, after=now, created=now, local_zone=zone)
        with pytest.raises(ApiError):
            check_frequency(expression, 10, now)
        return
    found = next_run(expression, after=now, created=now, local_zone=zone)
    assert found is None or found > now
    if found is not None:  # the run found matches the expression: nothing fires in between is checked above
        again = next_run(expression, after=found - timedelta(microseconds=1), created=now, local_zone=zone)
        assert again == found


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40), now=st.datetimes(datetime(2020, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)))
def test_any_text_is_a_schedule_or_a_value_error(text: str, now: datetime) -> None:
    try:
        check_frequency(text, 10, now)
        accepted = True
    except ApiError:
        accepted = False
    try:
        next_run(text, after=now, created=now, local_zone=UTC)
    except ValueError:
        assert not accepted, text


@settings(max_examples=200, deadline=None)
@given(expression=cron_expressions(), start=st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1),
                                                          timezones=st.just(UTC)))
def test_no_fire_time_is_skipped(expression: str, start: datetime) -> None:
    """Brute force over a day: every second that matches the fields, seen in UTC, is found by next_run."""
    try:
        cron = parse_cron(expression)
    except ValueError:
        return
    if cron.zone is not None and cron.zone is not UTC:
        return  # the oracle below reads fields in UTC only
    start = start.replace(microsecond=0)
    expected = None
    probe = start + timedelta(seconds=1)
    for _ in range(2 * 3600):
        if (probe.second in cron.seconds and probe.minute in cron.minutes and probe.hour in cron.hours
                and probe.month in cron.months and probe.year in cron.years
                and probe.day in cron.days(probe.year, probe.month)):
            expected = probe
            break
        probe += timedelta(seconds=1)
    found = next_run(expression, after=start, created=start, local_zone=UTC)
    if expected is not None:
        assert found == expected
    else:
        assert found is None or found > start + timedelta(hours=2)


@pytest.mark.parametrize(
    ("expression", "timeout", "accepted"),
    [
        ("*/10 * * * * ?", 10, True),
        ("*/10 * * * * ?", 11, False),  # runs must be at least Timeout apart
        ("*/5 * * * * ?", 5, False),  # and at least 10 s apart
        ("* * * * * ?", 1, False),
        ("0,5 * * * * ?", 1, False),
        ("0,30 * * * * ?", 30, True),
        ("0 * * * * ?", 60, True),
        ("0 */5 * * * ?", 60, True),
        ("0 0 3 * * ?", 86_400, True),
        ("0,5 0 0 1 1 ? 2030", 1, False),  # the short gap is once a year, but there
        ("0 0 0 1 1 ? 2030", 3600, True),  # a single run has no interval
        ("0 0 0 1 1 ? 2020", 3600, True),  # no run at all: the agent reports it completed
        ("rate(60s)", 59, True),
        ("rate(60s)", 60, False),
        ("rate(59s)", 10, False),
        ("rate(7d)", 60, True),
        ("rate(169h)", 60, False),
    ],
)
def test_frequency_limits(expression: str, timeout: int, accepted: bool) -> None:
    now = at("2026-06-01T00:00:00Z")
    if accepted:
        check_frequency(expression, timeout, now)
    else:
        with pytest.raises(ApiError) as caught:
            check_frequency(expression, timeout, now)
        assert caught.value.code == "InvalidParam.Frequency"


def test_cron_interval() -> None:
    now = at("2026-06-01T00:00:00Z")
    assert cron_interval("*/10 * * * * ?", now) == timedelta(seconds=10)
    assert cron_interval("0 0 12 ? * MON-FRI", now) == timedelta(days=1)
    assert cron_interval("0 0 0 1 1 ? 2030", now) is None


def test_check_cron_is_the_evaluator() -> None:
    check_cron("0 15 10 ? * * 2022 Asia/Shanghai")
    with pytest.raises(ValueError):  # noqa: PT011
        check_cron("0 15 10 ? * * 2022 Asia/Nowhere")


def test_a_year_of_hourly_runs_in_a_zone_with_dst() -> None:
    """`0 0 * * * ?` in New York for 2026: every UTC hour fires once, in order, except the repeated 01:00
    (EST) of the fall-back day, whose wall-clock time has fired already; the missing 02:00 of the spring day
    is the same instant as 03:00 and fires once."""
    now, runs = at("2025-12-31T23:59:59Z"), []
    end = at("2027-01-01T00:00:00Z")
    while True:
        found = next_run("0 0 * * * ?", after=now, created=CREATED, local_zone=NY)
        assert found is not None
        if found >= end:
            break
        runs.append(found)
        now = found
    assert len(runs) == 365 * 24 - 1
    assert at("2026-11-01T06:00:00Z") not in runs  # 01:00 EST, the second time
    assert {at("2026-11-01T05:00:00Z"), at("2026-03-08T06:00:00Z"), at("2026-03-08T07:00:00Z")} <= set(runs)


def test_a_rate_beyond_1000_days_or_beyond_the_calendar_is_a_value_error_not_an_overflow() -> None:
    for text in ("rate(99999999d)", "rate(999999999s)", "rate(1001d)"):
        with pytest.raises(ValueError, match=r"rate|representable"):
            next_run(text, after=CREATED, created=CREATED, local_zone=UTC)
    assert next_run("rate(1000d)", after=CREATED, created=CREATED, local_zone=UTC) == CREATED + timedelta(days=1000)
    with pytest.raises(ApiError):
        check_frequency("rate(99999999d)", 60, CREATED)


def test_a_bare_l_in_the_day_of_week_is_every_saturday() -> None:
    now = at("2026-03-01T00:00:00Z")  # a Sunday
    found = next_run("0 0 0 ? * L", after=now, created=CREATED, local_zone=UTC)
    assert found == at("2026-03-07T00:00:00Z")  # the first Saturday, not the last one (the 28th)
    again = next_run("0 0 0 ? * L", after=found, created=CREATED, local_zone=UTC)
    assert again == at("2026-03-14T00:00:00Z")
    assert next_run("0 0 0 ? * 6L", after=now, created=CREATED, local_zone=UTC) == at("2026-03-27T00:00:00Z")
