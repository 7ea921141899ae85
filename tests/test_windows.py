"""Change windows and freeze calendars: scenarios, DST days, parsing and a wall-clock property."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringfence.domain.windows import (
    DEFAULT_WINDOWS,
    END_OF_DAY,
    ChangeWindow,
    FreezeCalendar,
    WindowStatus,
    parse_window,
    public_holiday,
    window_status,
    window_status_many,
)
from ringfence.errors import InputError

MON_FRI = (ChangeWindow(frozenset(range(5)), time(9), time(16)),)
NO_HOLIDAYS = FreezeCalendar(public_holidays=False)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    name: str
    now: datetime
    timezone: str
    country: str = ""
    subdivision: str = ""
    windows: tuple[ChangeWindow, ...] = DEFAULT_WINDOWS
    freeze: FreezeCalendar = FreezeCalendar()  # noqa: RUF009 - frozen, immutable default
    open: bool = False
    reason: str = ""
    next_open: datetime | None = None
    closes_at: datetime | None = None


CASES = [
    Case("friday in Berlin is closed", utc(2026, 3, 6, 10), "Europe/Berlin", "DE", "BE",
         reason="closed: Friday in Europe/Berlin", next_open=utc(2026, 3, 9, 8)),
    Case("monday 10:00 in Berlin is open", utc(2026, 3, 9, 9), "Europe/Berlin", "DE", "BE",
         open=True, reason="open until 16:00 Europe/Berlin", closes_at=utc(2026, 3, 9, 15)),
    Case("monday 10:00 UTC is 19:00 in Tokyo, closed", utc(2026, 3, 9, 10), "Asia/Tokyo", "JP", "13",
         reason="closed: 19:00 in Asia/Tokyo is outside 09:00–16:00", next_open=utc(2026, 3, 10, 0)),
    Case("christmas 2026 in the US is a holiday", utc(2026, 12, 25, 15), "America/New_York", "US", "NY", MON_FRI,
         reason="closed: public holiday in US-NY (Christmas Day)", next_open=utc(2026, 12, 28, 14)),
    Case("no holidays when the calendar is off", utc(2026, 12, 25, 15), "America/New_York", "US", "NY", MON_FRI,
         NO_HOLIDAYS, open=True, reason="open until 16:00 America/New_York", closes_at=utc(2026, 12, 25, 21)),
    Case("a host with no country has no holidays", utc(2026, 12, 25, 15), "America/New_York", "", "", MON_FRI,
         open=True, reason="open until 16:00 America/New_York", closes_at=utc(2026, 12, 25, 21)),
    Case("epiphany is a holiday in Munich (BY)", utc(2026, 1, 6, 10), "Europe/Berlin", "DE", "BY",
         reason="closed: public holiday in DE-BY (Heilige Drei Könige)", next_open=utc(2026, 1, 7, 8)),
    Case("epiphany is a working day in Berlin (BE)", utc(2026, 1, 6, 10), "Europe/Berlin", "DE", "BE",
         open=True, reason="open until 16:00 Europe/Berlin", closes_at=utc(2026, 1, 6, 15)),
    Case("corpus christi closes Munich", utc(2026, 6, 4, 10), "Europe/Berlin", "DE", "by",
         reason="closed: public holiday in DE-BY (Fronleichnam)", next_open=utc(2026, 6, 8, 7)),
    Case("corpus christi is a working day in Berlin", utc(2026, 6, 4, 10), "Europe/Berlin", "DE", "BE",
         open=True, reason="open until 16:00 Europe/Berlin", closes_at=utc(2026, 6, 4, 14)),
    Case("explicit freeze date", utc(2026, 3, 10, 10), "Europe/Berlin", "DE", "BE",
         freeze=FreezeCalendar(dates=frozenset({date(2026, 3, 10), date(2026, 3, 11)})),
         reason="closed: freeze date 2026-03-10 in Europe/Berlin", next_open=utc(2026, 3, 12, 8)),
    Case("freeze dates are the host's local date", utc(2026, 3, 9, 23, 30), "Asia/Tokyo", "", "",
         freeze=FreezeCalendar(dates=frozenset({date(2026, 3, 10)})),
         reason="closed: freeze date 2026-03-10 in Asia/Tokyo", next_open=utc(2026, 3, 11, 0)),
    Case("next open skips a weekend and Easter Monday", utc(2026, 4, 2, 15), "Europe/London", "GB", "ENG",
         reason="closed: 16:00 in Europe/London is outside 09:00–16:00", next_open=utc(2026, 4, 7, 8)),
    Case("next open skips Good Friday, the weekend and Easter Monday", utc(2026, 4, 2, 15), "Europe/Berlin", "DE", "HE",
         MON_FRI, reason="closed: 17:00 in Europe/Berlin is outside 09:00–16:00", next_open=utc(2026, 4, 7, 7)),
    Case("country without subdivisions ignores the subdivision", utc(2026, 1, 1, 3), "Asia/Tokyo", "JP", "13",
         reason="closed: public holiday in JP (元日)", next_open=utc(2026, 1, 5, 0)),
    Case("subdivision may carry the country prefix", utc(2026, 1, 6, 10), "Europe/Berlin", "DE", "DE-BY",
         reason="closed: public holiday in DE-BY (Heilige Drei Könige)", next_open=utc(2026, 1, 7, 8)),
    # DST in the EU: clocks go forward on Sun 29 March 2026 and back on Sun 25 October 2026.
    Case("next open across spring-forward moves one hour earlier in UTC", utc(2026, 3, 27, 17), "Europe/Berlin", "DE", "BE",
         reason="closed: Friday in Europe/Berlin", next_open=utc(2026, 3, 30, 7)),
    Case("next open across fall-back moves one hour later in UTC", utc(2026, 10, 23, 17), "Europe/Berlin", "DE", "BE",
         reason="closed: Friday in Europe/Berlin", next_open=utc(2026, 10, 26, 8)),
    Case("a window starting in the skipped hour opens at the jump", utc(2026, 3, 29, 0, 30), "Europe/Berlin",
         windows=(ChangeWindow(frozenset(range(7)), time(2, 30), time(4)),),
         reason="closed: 01:30 in Europe/Berlin is outside 02:30–04:00", next_open=utc(2026, 3, 29, 1)),
    Case("the repeated hour is open in both passes (first pass over)", utc(2026, 10, 25, 0, 45), "Europe/Berlin",
         windows=(ChangeWindow(frozenset(range(7)), time(2), time(2, 30)),),
         reason="closed: 02:45 in Europe/Berlin is outside 02:00–02:30", next_open=utc(2026, 10, 25, 1)),
    Case("the repeated hour is open in both passes (second pass)", utc(2026, 10, 25, 1, 5), "Europe/Berlin",
         windows=(ChangeWindow(frozenset(range(7)), time(2), time(2, 30)),),
         open=True, reason="open until 02:30 Europe/Berlin", closes_at=utc(2026, 10, 25, 1, 30)),
    Case("US DST: Monday after spring-forward opens at 13:00 UTC", utc(2026, 3, 6, 22), "America/Chicago", "US", "IL",
         reason="closed: Friday in America/Chicago", next_open=utc(2026, 3, 9, 14)),
    Case("windows across midnight close once, at their common end", utc(2026, 3, 9, 22), "Europe/Berlin",
         windows=(ChangeWindow(frozenset({0}), time(22), END_OF_DAY), ChangeWindow(frozenset({1}), time(0), time(2))),
         open=True, reason="open until Tue 2026-03-10 02:00 Europe/Berlin", closes_at=utc(2026, 3, 10, 1)),
    Case("touching windows are one window", utc(2026, 3, 9, 10), "Europe/Berlin",
         windows=(ChangeWindow(frozenset({0}), time(9), time(12)), ChangeWindow(frozenset({0}), time(12), time(18))),
         open=True, reason="open until 18:00 Europe/Berlin", closes_at=utc(2026, 3, 9, 17)),
    Case("a long freeze has no next open within the horizon", utc(2026, 3, 9, 10), "Europe/Berlin",
         freeze=FreezeCalendar(dates=frozenset(date(2026, 3, 1) + timedelta(days=k) for k in range(90))),
         reason="closed: freeze date 2026-03-09 in Europe/Berlin", next_open=None),
    Case("no windows: never open", utc(2026, 3, 9, 10), "UTC", windows=(),
         reason="closed: Monday in UTC", next_open=None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scenarios(case: Case) -> None:
    got = window_status(case.windows, case.freeze, timezone=case.timezone, country=case.country,
                        subdivision=case.subdivision, now=case.now)
    assert got == WindowStatus(case.open, case.reason, case.next_open, case.closes_at)


def test_many_matches_one_by_one_and_dedupes() -> None:
    now = utc(2026, 1, 6, 10)
    keys = [("Europe/Berlin", "DE", "BY"), ("Europe/Berlin", "DE", "BE"), ("Europe/Berlin", "DE", "BY"), ("Asia/Tokyo", "JP", "")]
    got = window_status_many(DEFAULT_WINDOWS, FreezeCalendar(), keys, now)
    assert list(got) == [keys[0], keys[1], keys[3]]
    for (tz, country, sub), status in got.items():
        assert status == window_status(DEFAULT_WINDOWS, FreezeCalendar(), timezone=tz, country=country, subdivision=sub, now=now)
    assert not got[keys[0]].open
    assert got[keys[1]].open


def test_public_holiday_helper() -> None:
    assert public_holiday("DE", "BY", date(2026, 11, 1)) == "Allerheiligen"
    assert public_holiday("DE", "BE", date(2026, 11, 1)) is None
    assert public_holiday("de", "Bayern", date(2026, 1, 6)) == "Heilige Drei Könige"
    assert public_holiday("", "", date(2026, 12, 25)) is None
    assert public_holiday("ZA", "GP", date(2026, 12, 25)) is not None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"timezone": "Nowhere/City", "country": "", "subdivision": ""}, "timezone"),
    ({"timezone": "../etc/passwd", "country": "", "subdivision": ""}, "timezone"),
    ({"timezone": "UTC", "country": "XX", "subdivision": ""}, "country"),
    ({"timezone": "UTC", "country": "DE", "subdivision": "ZZ"}, "subdivision"),
])
def test_bad_host_settings_name_the_field(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InputError) as err:
        window_status(DEFAULT_WINDOWS, FreezeCalendar(), now=utc(2026, 3, 9, 10), **kwargs)
    assert [i.field for i in err.value.issues] == [field]


def test_naive_now_is_refused() -> None:
    with pytest.raises(InputError, match="now"):
        window_status(DEFAULT_WINDOWS, FreezeCalendar(), timezone="UTC", country="", subdivision="",
                      now=datetime(2026, 3, 9, 10))


def test_unknown_country_does_not_matter_when_holidays_are_off() -> None:
    status = window_status(DEFAULT_WINDOWS, NO_HOLIDAYS, timezone="UTC", country="XX", subdivision="", now=utc(2026, 3, 9, 10))
    assert status.open


# --------------------------------------------------------------------------- parsing

PARSE_CASES = [
    ("range", {"days": "mon-thu", "start": "09:00", "end": "16:00"}, ChangeWindow(frozenset({0, 1, 2, 3}), time(9), time(16))),
    ("list", {"days": ["Mon", "tue"], "start": "9:00", "end": "16:30"}, ChangeWindow(frozenset({0, 1}), time(9), time(16, 30))),
    ("comma list", {"days": "mon, wed,friday", "start": "09:00", "end": "10:00"},
     ChangeWindow(frozenset({0, 2, 4}), time(9), time(10))),
    ("wrapping range", {"days": "fri-mon", "start": "22:00", "end": "24:00"},
     ChangeWindow(frozenset({4, 5, 6, 0}), time(22), END_OF_DAY)),
    ("weekdays", {"days": "weekdays", "start": "00:00", "end": "06:00:30"},
     ChangeWindow(frozenset(range(5)), time(0), time(6, 0, 30))),
    ("daily", {"days": "daily", "start": time(1), "end": time(2)}, ChangeWindow(frozenset(range(7)), time(1), time(2))),
]


@pytest.mark.parametrize(("name", "spec", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_window(name: str, spec: dict[str, object], expected: ChangeWindow) -> None:
    assert parse_window(spec) == expected


PARSE_ERRORS = [
    ("unknown day", {"days": "mon-frx", "start": "09:00", "end": "16:00"}, "days", "frx"),
    ("numeric day", {"days": [1, 2], "start": "09:00", "end": "16:00"}, "days", "cron"),
    ("empty days", {"days": [], "start": "09:00", "end": "16:00"}, "days", "empty"),
    ("missing end", {"days": "mon", "start": "09:00"}, "end", "missing"),
    ("unquoted YAML time", {"days": "mon", "start": "09:00", "end": 960}, "end", "unquoted 16:00"),
    ("bad time", {"days": "mon", "start": "25:00", "end": "26:00"}, "start", "25:00"),
    ("24:00 start", {"days": "mon", "start": "24:00", "end": "24:00"}, "start", "24:00"),
    ("end before start", {"days": "mon", "start": "16:00", "end": "09:00"}, "end", "not after start"),
    ("typo in a field", {"days": "mon", "stat": "09:00", "end": "16:00"}, "stat", "not a window field"),
]


@pytest.mark.parametrize(("name", "spec", "field", "fragment"), PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_window_errors_name_the_field(name: str, spec: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        parse_window(spec, location="plan.yaml windows[0]")
    (issue,) = err.value.issues
    assert issue.field == field
    assert issue.location == "plan.yaml windows[0]"
    assert fragment in issue.message
    assert issue.expected


def test_change_window_validates_itself() -> None:
    with pytest.raises(InputError, match="days"):
        ChangeWindow(frozenset({7}), time(9), time(10))
    with pytest.raises(InputError, match="end"):
        ChangeWindow(frozenset({0}), time(10), time(10))


# --------------------------------------------------------------------------- property

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe", "Asia/Kathmandu",
         "America/Santiago", "Pacific/Chatham", "America/St_Johns", "Europe/London"]
REGIONS = [("", ""), ("DE", "BY"), ("DE", "BE"), ("US", "CA"), ("GB", "SCT"), ("JP", ""), ("AU", "NSW"), ("IN", "KA")]


@st.composite
def windows_strategy(draw: st.DrawFn) -> tuple[ChangeWindow, ...]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        days = frozenset(draw(st.sets(st.integers(0, 6), min_size=1)))
        start = draw(st.integers(0, 24 * 60 - 1))
        end = draw(st.integers(start + 1, 24 * 60))
        out.append(ChangeWindow(days, time(start // 60, start % 60),
                                END_OF_DAY if end == 24 * 60 else time(end // 60, end % 60)))
    return tuple(out)


def _independently_open(windows: tuple[ChangeWindow, ...], freeze: FreezeCalendar, tz: str, country: str, sub: str,
                        instant: datetime) -> bool:
    local = instant.astimezone(ZoneInfo(tz))
    if local.date() in freeze.dates:
        return False
    if freeze.public_holidays and country and local.date() in holidays.country_holidays(country, subdiv=sub or None,
                                                                                         years=local.year):
        return False
    t = local.time()
    return any(local.weekday() in w.days and w.start <= t and (t < w.end or w.end == END_OF_DAY) for w in windows)


@settings(max_examples=150, deadline=None)
@given(
    windows=windows_strategy(),
    zone=st.sampled_from(ZONES),
    region=st.sampled_from(REGIONS),
    public=st.booleans(),
    instant=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
    freeze_offsets=st.sets(st.integers(-3, 10), max_size=4),
)
def test_open_means_inside_a_window_and_not_frozen(windows, zone, region, public, instant, freeze_offsets) -> None:
    country, sub = region
    base = instant.astimezone(ZoneInfo(zone)).date()
    freeze = FreezeCalendar(public_holidays=public, dates=frozenset(base + timedelta(days=k) for k in freeze_offsets))
    status = window_status(windows, freeze, timezone=zone, country=country, subdivision=sub, now=instant)

    assert status.open == _independently_open(windows, freeze, zone, country, sub, instant)
    if status.open:
        assert status.next_open is None
        assert status.reason.startswith("open")
        if status.closes_at is not None:
            assert status.closes_at > instant
            assert not _independently_open(windows, freeze, zone, country, sub, status.closes_at)
            # open all the way up to the close
            mid = instant + (status.closes_at - instant) / 2
            assert _independently_open(windows, freeze, zone, country, sub, mid)
    else:
        assert status.closes_at is None
        assert status.reason.startswith("closed: ")
        if status.next_open is not None:
            assert status.next_open > instant
            assert _independently_open(windows, freeze, zone, country, sub, status.next_open)
            assert not _independently_open(windows, freeze, zone, country, sub, status.next_open - timedelta(microseconds=1))
            mid = instant + (status.next_open - instant) / 2
            assert not _independently_open(windows, freeze, zone, country, sub, mid)
