"""Change windows and freeze calendars: when a host may receive an update.

A host is *in its window* at an instant when all of these hold, judged on the
host's own wall clock (its IANA ``timezone``):

1. the local date is not an explicit freeze date (:attr:`FreezeCalendar.dates`);
2. the local date is not a public holiday of the host's ``country`` and
   ``subdivision`` (when :attr:`FreezeCalendar.public_holidays` is set; a
   host with no country has no public holidays);
3. some :class:`ChangeWindow` lists the local weekday and the local time of
   day lies in ``[start, end)``.  ``end`` may be :data:`END_OF_DAY` (written
   ``"24:00"``), which keeps the window open until midnight; a window across
   midnight is two windows (``22:00-24:00`` on Monday and ``00:00-02:00`` on
   Tuesday), and windows that touch or overlap are one window.

Rules for the instants reported in :class:`WindowStatus` (all UTC):

* ``next_open`` (only when closed) is the first instant after ``now`` at which
  the rules above hold; the search looks :data:`SEARCH_DAYS` local days ahead
  and gives ``None`` when nothing opens in that time (e.g. a long freeze).
* ``closes_at`` (only when open) is the first instant after ``now`` at which
  they stop holding (same horizon), so adjacent windows and windows across
  midnight close once, at their common end.
* Daylight-saving changes follow the wall clock: on the day clocks go
  forward a window that starts inside the skipped hour opens at the moment
  of the jump; on the day clocks go back a window covering the repeated hour
  is open during both passes.

Public holidays come from the ``holidays`` package (``public`` category only),
with holiday names in the country's own language so that they read as the
local staff know them ("Allerheiligen").  ``country`` is ISO 3166-1 alpha-2
(case-insensitive); ``subdivision`` is the ISO 3166-2 suffix (``"BY"``; also
accepted: ``"DE-BY"`` and the package's aliases such as ``"Bayern"``).  When
the package models no subdivisions for a country (e.g. JP, ZA) the national
calendar applies whatever the subdivision; an unknown country, or a
subdivision unknown for a country that has them, is an :class:`InputError`.
Calendars are cached per (country, subdivision, year) in a bounded cache.

Nothing here reads the clock: ``now`` is a parameter and must be aware.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from ringfence.errors import FieldIssue, InputError, describe, shown

__all__ = [
    "DEFAULT_WINDOWS",
    "END_OF_DAY",
    "SEARCH_DAYS",
    "ChangeWindow",
    "FreezeCalendar",
    "WindowKey",
    "WindowStatus",
    "parse_window",
    "public_holiday",
    "window_status",
    "window_status_many",
]

#: An ``end`` of :data:`END_OF_DAY` keeps a window open until midnight ("24:00").
END_OF_DAY = time.max

#: How many local days ahead ``next_open`` and ``closes_at`` are searched.
SEARCH_DAYS = 60

#: (timezone, country, subdivision): what makes two hosts' windows the same.
WindowKey = tuple[str, str, str]

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_ALIASES: dict[str, int] = {
    **{name.lower(): i for i, name in enumerate(_DAY_NAMES)},
    **{name[:3].lower(): i for i, name in enumerate(_DAY_NAMES)},
    "tues": 1, "thur": 3, "thurs": 3,
}
_DAY_GROUPS = {
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    "daily": frozenset(range(7)),
}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DAYS_EXPECTED = 'day names or ranges such as "mon-thu", "mon,wed,fri", ["mon", "tue"], "weekdays" or "daily"'
_TIME_EXPECTED = 'a time of day "HH:MM" in quotes, such as "09:00" (end may be "24:00")'


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    """Weekly hours during which changes are allowed, in the host's local time.

    ``days`` are weekday numbers, 0 = Monday … 6 = Sunday.  The window is open
    for local times in ``[start, end)``; ``end`` = :data:`END_OF_DAY` means
    until midnight.
    """

    days: frozenset[int]
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.days or any(not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 6 for d in self.days):
            raise InputError.single("days", f"is {shown(sorted(self.days, key=str))}",
                                    expected="a non-empty set of 0 (Monday) … 6 (Sunday)")
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is not None:
                raise InputError.single(name, f"is {value.isoformat()}, with a time zone",
                                        expected="a local time of day without a zone (the host's zone applies)")
        if self.end <= self.start:
            raise InputError.single("end", f"is {_hhmm(self.end)}, not after start {_hhmm(self.start)}",
                                    expected="a later time than start; split a window across midnight in two "
                                    '("22:00-24:00" and "00:00-02:00")')

    def describe(self) -> str:
        """Human form, e.g. ``"Mon-Thu 09:00–16:00"``."""
        return f"{_describe_days(self.days)} {_hhmm(self.start)}–{_hhmm(self.end)}"


@dataclass(frozen=True, slots=True)
class FreezeCalendar:
    """Dates on which nothing changes.

    ``public_holidays`` closes every public holiday of the host's country and
    subdivision; ``dates`` are extra freeze dates in the host's local date
    (year-end freeze, a trading day, a product launch).
    """

    public_holidays: bool = True
    dates: frozenset[date] = frozenset()


#: Monday–Thursday 09:00–16:00 local time: staff are at work to watch the
#: rollout and a bad Thursday leaves Friday to recover before the weekend.
DEFAULT_WINDOWS: tuple[ChangeWindow, ...] = (ChangeWindow(frozenset({0, 1, 2, 3}), time(9, 0), time(16, 0)),)


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """Whether a host's window is open at ``now``, why, and when that changes.

    ``next_open`` is set only when closed and ``closes_at`` only when open;
    both are UTC and ``None`` when the change is beyond :data:`SEARCH_DAYS`.
    """

    open: bool
    reason: str
    next_open: datetime | None = None
    closes_at: datetime | None = None


# --------------------------------------------------------------------------- parsing


def parse_window(spec: Mapping[str, Any], *, location: str = "") -> ChangeWindow:
    """Build a :class:`ChangeWindow` from its YAML form.

    ``{"days": "mon-thu", "start": "09:00", "end": "16:00"}``; ``days`` may
    also be a list (``["mon", "tue"]``), a comma list (``"mon,wed,fri"``), a
    range that wraps (``"fri-mon"``), ``"weekdays"``, ``"weekends"`` or
    ``"daily"``.  Times must be quoted strings: YAML 1.1 reads an unquoted
    ``16:00`` as the number 960, which is refused with that explanation.
    Errors name the field; ``location`` (e.g. ``"plan.yaml windows[0]"``) is
    passed on to them.
    """
    if not isinstance(spec, Mapping):
        raise InputError.single("window", f"is {describe(spec)}", expected="a mapping with days, start and end",
                                location=location)
    unknown = sorted(str(k) for k in spec if k not in ("days", "start", "end"))
    if unknown:
        raise InputError.single(unknown[0], "is not a window field", expected="days, start, end", location=location)
    for name in ("days", "start", "end"):
        if name not in spec or spec[name] is None:
            raise InputError.single(name, "is missing", expected=_DAYS_EXPECTED if name == "days" else _TIME_EXPECTED,
                                    location=location)
    days = _parse_days(spec["days"], location)
    start = _parse_time(spec["start"], "start", location, allow_end_of_day=False)
    end = _parse_time(spec["end"], "end", location, allow_end_of_day=True)
    try:
        return ChangeWindow(days, start, end)
    except InputError as e:
        raise InputError(e.headline, [_with_location(i, location) for i in e.issues]) from None


def _with_location(issue: FieldIssue, location: str) -> FieldIssue:
    return replace(issue, location=location) if location else issue


def _parse_days(value: Any, location: str) -> frozenset[int]:
    items: list[Any]
    if isinstance(value, str):
        items = [p.strip() for p in value.split(",")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise InputError.single("days", f"is {shown(value)}", expected=_DAYS_EXPECTED, location=location)
    out: set[int] = set()
    for item in items:
        if not isinstance(item, str) or not item.strip():
            hint = " (numbers are ambiguous: cron counts Sunday as 0)" if isinstance(item, int) else ""
            raise InputError.single("days", f"has {shown(item)}{hint}", expected=_DAYS_EXPECTED, location=location)
        text = item.strip().lower()
        if text in _DAY_GROUPS:
            out |= _DAY_GROUPS[text]
            continue
        if "-" in text:
            first, _, last = (p.strip() for p in text.partition("-"))
            a, b = _day(first, location), _day(last, location)
            out.update((a + k) % 7 for k in range((b - a) % 7 + 1))
        else:
            out.add(_day(text, location))
    if not out:
        raise InputError.single("days", "is empty", expected=_DAYS_EXPECTED, location=location)
    return frozenset(out)


def _day(text: str, location: str) -> int:
    try:
        return _DAY_ALIASES[text]
    except KeyError:
        raise InputError.single("days", f"has unknown day {shown(text)}", expected=_DAYS_EXPECTED, location=location) from None


def _parse_time(value: Any, field: str, location: str, *, allow_end_of_day: bool) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        hint = f", which is how YAML reads an unquoted {value // 60}:{value % 60:02d}" if 0 <= value <= 1440 else ""
        raise InputError.single(field, f"is the number {value}{hint}", expected=_TIME_EXPECTED, location=location)
    match = _TIME.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InputError.single(field, f"is {shown(value)}", expected=_TIME_EXPECTED, location=location)
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if allow_end_of_day and (hour, minute, second) == (24, 0, 0):
        return END_OF_DAY
    if hour > 23 or minute > 59 or second > 59:
        raise InputError.single(field, f"is {shown(value)}, not a time of day", expected=_TIME_EXPECTED, location=location)
    return time(hour, minute, second)


# --------------------------------------------------------------------------- calendars


def public_holiday(country: str, subdivision: str, day: date) -> str | None:
    """The name of the public holiday on ``day``, or ``None``.

    Uses the same cached calendars and the same country/subdivision rules as
    :func:`window_status`; an empty ``country`` has no holidays.
    """
    if not country:
        return None
    code, sub = _resolve_region(country, subdivision)
    return _calendar(code, sub, day.year).get(day)


@lru_cache(maxsize=256)
def _resolve_region(country: str, subdivision: str) -> tuple[str, str | None]:
    """Normalise (country, subdivision) to the codes the ``holidays`` package knows."""
    code = country.strip().upper()
    try:
        probe = holidays.country_holidays(code)
    except NotImplementedError:
        raise InputError.single("country", f"is {shown(country)}, which has no public-holiday calendar",
                                expected="an ISO 3166-1 alpha-2 code known to the holidays package, such as DE or US") from None
    sub = subdivision.strip()
    known: tuple[str, ...] = tuple(probe.subdivisions)
    if not sub or not known:
        return code, None  # no subdivision given, or the country has one national calendar
    if sub.upper().startswith(code + "-"):
        sub = sub[len(code) + 1:]
    by_fold = {s.casefold(): s for s in known}
    aliases: Mapping[str, str] = getattr(probe, "subdivisions_aliases", {}) or {}
    by_fold.update({alias.casefold(): target for alias, target in aliases.items()})
    try:
        return code, by_fold[sub.casefold()]
    except KeyError:
        raise InputError.single("subdivision", f"is {shown(subdivision)}, unknown in {code}",
                                expected=f"one of {', '.join(known)}, or empty") from None


@lru_cache(maxsize=1024)
def _calendar(country: str, subdivision: str | None, year: int) -> Mapping[date, str]:
    """One year of public holidays, names in the country's own language."""
    probe = holidays.country_holidays(country, subdiv=subdivision)
    cal = holidays.country_holidays(country, subdiv=subdivision, years=year, expand=False,
                                    language=probe.default_language)
    return MappingProxyType(dict(cal.items()))


def _zone(name: str) -> tzinfo:
    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError.single("timezone", f"is {shown(name)}",
                                expected="an IANA time-zone name such as Europe/Berlin") from None


# --------------------------------------------------------------------------- evaluation

_Interval = tuple[time, time]


def _schedule(windows: Iterable[ChangeWindow]) -> tuple[tuple[_Interval, ...], ...]:
    """Per weekday, the merged, sorted ``[start, end)`` intervals of the windows."""
    per_day: list[list[_Interval]] = [[] for _ in range(7)]
    for w in windows:
        if not isinstance(w, ChangeWindow):
            raise InputError.single("windows", f"has {shown(w)}", expected="ChangeWindow values")
        for d in w.days:
            per_day[d].append((w.start, w.end))
    out: list[tuple[_Interval, ...]] = []
    for spans in per_day:
        merged: list[_Interval] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        out.append(tuple(merged))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Day:
    """What one local date looks like: its open intervals and why it is closed."""

    intervals: tuple[_Interval, ...]
    closed_because: str  # empty when some interval applies


class _Evaluator:
    """Window rules for one (zone, country, subdivision), memoising local dates."""

    def __init__(self, schedule: tuple[tuple[_Interval, ...], ...], freeze: FreezeCalendar, key: WindowKey) -> None:
        timezone, country, subdivision = key
        self.schedule = schedule
        self.freeze = freeze
        self.zone_name = timezone
        self.zone = _zone(timezone)
        self.region: tuple[str, str | None] | None = None
        if freeze.public_holidays and country.strip():
            self.region = _resolve_region(country, subdivision)
        self._days: dict[date, _Day] = {}

    def day(self, d: date) -> _Day:
        found = self._days.get(d)
        if found is None:
            found = self._days[d] = self._classify(d)
        return found

    def _classify(self, d: date) -> _Day:
        if d in self.freeze.dates:
            return _Day((), f"freeze date {d.isoformat()} in {self.zone_name}")
        if self.region is not None:
            name = _calendar(self.region[0], self.region[1], d.year).get(d)
            if name is not None:
                where = self.region[0] + (f"-{self.region[1]}" if self.region[1] else "")
                return _Day((), f"public holiday in {where} ({name})")
        intervals = self.schedule[d.weekday()]
        if not intervals:
            return _Day((), f"{_DAY_NAMES[d.weekday()]} in {self.zone_name}")
        return _Day(intervals, "")

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)

    def is_open(self, instant: datetime) -> bool:
        local = self.local(instant)
        t = local.time()
        return any(start <= t and (t < end or end == END_OF_DAY) for start, end in self.day(local.date()).intervals)

    def candidates(self, now: datetime) -> list[datetime]:
        """Every instant after ``now`` (within the horizon) at which the status can change.

        Between two consecutive candidates the local date is fixed and the
        wall clock moves continuously, so the status is constant there.
        """
        first = self.local(now).date()
        out: set[datetime] = set()
        for k in range(SEARCH_DAYS + 1):
            d = first + timedelta(days=k)
            walls = {time(0)}
            for start, end in self.day(d).intervals:
                walls.add(start)
                if end != END_OF_DAY:
                    walls.add(end)
            for wall in walls:
                out.update(self._instants(d, wall))
        out.update(self._transitions(now))
        return sorted(u for u in out if u > now)

    def _instants(self, d: date, wall: time) -> list[datetime]:
        """The UTC instants whose local wall time is exactly ``d wall`` (none in a gap, two in an overlap)."""
        naive = datetime.combine(d, wall)
        found = []
        for fold in (0, 1):
            u = naive.replace(tzinfo=self.zone, fold=fold).astimezone(UTC)
            if u.astimezone(self.zone).replace(tzinfo=None) == naive:
                found.append(u)
        return found

    def _transitions(self, now: datetime) -> list[datetime]:
        """UTC instants in the horizon at which the zone's UTC offset changes (found to the second)."""
        out: list[datetime] = []
        step = 12 * 3600  # real zones never change their offset twice within 12 hours
        lo = math.floor(now.timestamp())
        lo_off = self._offset(lo)
        for _ in range(2 * (SEARCH_DAYS + 2)):
            hi = lo + step
            hi_off = self._offset(hi)
            if hi_off != lo_off:
                a, b = lo, hi  # offset(a) == lo_off != offset(b)
                while b - a > 1:
                    mid = (a + b) // 2
                    if self._offset(mid) == lo_off:
                        a = mid
                    else:
                        b = mid
                out.append(datetime.fromtimestamp(b, UTC))
            lo, lo_off = hi, hi_off
        return out

    def _offset(self, timestamp: int) -> timedelta | None:
        return datetime.fromtimestamp(timestamp, UTC).astimezone(self.zone).utcoffset()

    def status(self, now: datetime) -> WindowStatus:
        local = self.local(now)
        today = self.day(local.date())
        is_open = self.is_open(now)
        flip = next((c for c in self.candidates(now) if self.is_open(c) != is_open), None)
        if is_open:
            if flip is None:
                return WindowStatus(True, f"open, not closing within {SEARCH_DAYS} days")
            return WindowStatus(True, f"open until {self._clock(flip, local.date())} {self.zone_name}", closes_at=flip)
        if today.closed_because:
            reason = f"closed: {today.closed_because}"
        else:
            spans = ", ".join(f"{_hhmm(s)}–{_hhmm(e)}" for s, e in today.intervals)
            reason = f"closed: {local:%H:%M} in {self.zone_name} is outside {spans}"
        return WindowStatus(False, reason, next_open=flip)

    def _clock(self, instant: datetime, today: date) -> str:
        local = self.local(instant)
        if local.date() == today:
            return f"{local:%H:%M}"
        return f"{_DAY_NAMES[local.weekday()][:3]} {local:%Y-%m-%d %H:%M}"


def _check_now(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise InputError.single("now", f"is {shown(now)}", expected="an aware datetime (UTC)")
    return now.astimezone(UTC)


def window_status(
    windows: Iterable[ChangeWindow],
    freeze: FreezeCalendar,
    *,
    timezone: str,
    country: str,
    subdivision: str,
    now: datetime,
) -> WindowStatus:
    """Whether a host in ``timezone``/``country``/``subdivision`` may change at ``now`` (see the module rules)."""
    now = _check_now(now)
    return _Evaluator(_schedule(windows), freeze, (timezone, country, subdivision)).status(now)


def window_status_many(
    windows: Iterable[ChangeWindow],
    freeze: FreezeCalendar,
    keys: Iterable[WindowKey],
    now: datetime,
) -> dict[WindowKey, WindowStatus]:
    """:func:`window_status` for many (timezone, country, subdivision) keys, each distinct key evaluated once.

    A fleet has few distinct keys, so callers group hosts by key and look
    their status up in the result.
    """
    now = _check_now(now)
    schedule = _schedule(windows)
    out: dict[WindowKey, WindowStatus] = {}
    for key in keys:
        if key not in out:
            out[key] = _Evaluator(schedule, freeze, key).status(now)
    return out


# --------------------------------------------------------------------------- formatting


def _hhmm(t: time) -> str:
    if t == END_OF_DAY:
        return "24:00"
    return f"{t:%H:%M}" if not t.second and not t.microsecond else f"{t:%H:%M:%S}"


def _describe_days(days: frozenset[int]) -> str:
    ordered = sorted(days)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{_DAY_NAMES[ordered[0]][:3]}-{_DAY_NAMES[ordered[-1]][:3]}"
    return ",".join(_DAY_NAMES[d][:3] for d in ordered)
