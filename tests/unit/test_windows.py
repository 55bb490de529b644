"""Window arithmetic, calendar grouping, fill and downsampling (pure, with an in-memory store)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.platform.domain.errors import InvalidInput, LimitExceeded
from cityos.platform.durations import Duration, parse_duration
from cityos.platform.observations.service import aggregate_windows, downsample
from cityos.platform.observations.windows import (
    WindowValue,
    aligned_to,
    calendar_starts,
    calendar_window_count,
    downsample_every,
    fill,
    fixed_offset,
    fixed_starts,
    fixed_window_count,
    window_floor,
)
from cityos.platform.ports import WindowAggregate
from cityos.platform.timefmt import format_rfc3339

JST = timezone(timedelta(hours=9))
H, D = timedelta(hours=1), timedelta(days=1)
MOMENTS = st.datetimes(
    min_value=datetime(1700, 1, 1), max_value=datetime(2250, 1, 1), timezones=st.just(UTC)
)


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)  # type: ignore[misc]


class MemoryStore:
    """Just enough of a TimeSeriesStore: `aggregate` by the definition, calls recorded."""

    name = "memory"

    def __init__(self, points: Sequence[tuple[datetime, float]]) -> None:
        self.points = sorted(points)
        self.calls: list[dict[str, object]] = []

    def aggregate(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        every: timedelta,
        offset: timedelta,
        functions: frozenset[str],
    ) -> list[WindowAggregate]:
        self.calls.append({"every": every, "offset": offset, "functions": functions})
        groups: dict[datetime, list[float]] = {}
        for t, v in self.points:
            if start <= t < end:
                groups.setdefault(window_floor(t, every=every, offset=offset), []).append(v)
        every_value = {
            "mean": lambda vs: math.fsum(vs) / len(vs),
            "sum": math.fsum,
            "count": lambda vs: float(len(vs)),
            "min": min,
            "max": max,
            "first": lambda vs: vs[0],
            "last": lambda vs: vs[-1],
        }
        return [
            WindowAggregate(w, {f: every_value[f](vs) for f in functions})
            for w, vs in sorted(groups.items())
        ]


def run(
    store: MemoryStore,
    start: datetime,
    end: datetime,
    every: str,
    function: str = "sum",
    fill_mode: str = "none",
    limit: int = 100_000,
) -> list[tuple[datetime, float | None]]:
    got = aggregate_windows(
        store=store,  # type: ignore[arg-type]
        sensor_id="d.q",
        start=start,
        end=end,
        every=parse_duration(every),
        function=function,
        fill_mode=fill_mode,
        limit=limit,
    )
    return [(w.start, w.value) for w in got]


# ---------------------------------------------------------------- fixed windows


@pytest.mark.parametrize(
    ("every", "offset"),
    [
        ("30s", timedelta(0)),
        ("15m", timedelta(0)),
        ("1h", timedelta(0)),
        ("6h", 3 * H),  # 00:00, 06:00, 12:00, 18:00 JST
        ("7h", 5 * H),  # steps on from 1970-01-01 00:00 JST
        ("1d", 15 * H),
        ("3d", 2 * D + 15 * H),  # 1970-01-01 00:00 JST is 63 h before a multiple of 3 days
        ("1w", 3 * D + 15 * H),
        ("2w", 3 * D + 15 * H),
    ],
)
def test_fixed_offsets_align_in_japan(every: str, offset: timedelta) -> None:
    assert fixed_offset(parse_duration(every)) == offset


@settings(max_examples=300)
@given(moment=MOMENTS)
def test_days_and_weeks_start_at_jst_midnight_and_monday(moment: datetime) -> None:
    day = window_floor(moment, every=D, offset=fixed_offset(parse_duration("1d"))).astimezone(JST)
    assert (day.hour, day.minute, day.second, day.microsecond) == (0, 0, 0, 0)
    assert day.date() == moment.astimezone(JST).date()
    week = window_floor(moment, every=7 * D, offset=fixed_offset(parse_duration("1w")))
    local = week.astimezone(JST)
    assert local.weekday() == 0
    assert (local.hour, local.minute) == (0, 0)
    assert week <= moment < week + 7 * D
    hour = window_floor(moment, every=H, offset=fixed_offset(parse_duration("1h")))
    assert hour == moment.replace(minute=0, second=0, microsecond=0)


def test_day_boundaries_at_the_last_millisecond() -> None:
    offset = fixed_offset(parse_duration("1d"))
    last_ms = jst(2024, 3, 31, 23, 59, 59, 999000)
    assert window_floor(last_ms, every=D, offset=offset) == jst(2024, 3, 31)
    assert window_floor(jst(2024, 4, 1), every=D, offset=offset) == jst(2024, 4, 1)


@settings(max_examples=200)
@given(
    start=MOMENTS,
    span_s=st.integers(1, 50_000),
    every_s=st.sampled_from([1, 7, 60, 3600, 7 * 3600, 86_400, 604_800]),
)
def test_fixed_starts_cover_the_range(start: datetime, span_s: int, every_s: int) -> None:
    end, every = start + timedelta(seconds=span_s), timedelta(seconds=every_s)
    offset = timedelta(hours=-9) % every
    starts = fixed_starts(start, end, every=every, offset=offset)
    assert len(starts) == fixed_window_count(start, end, every=every, offset=offset)
    assert starts[0] <= start < starts[0] + every
    assert starts[-1] < end <= starts[-1] + every
    assert all(b - a == every for a, b in pairs(starts))


def pairs(items: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    return list(itertools.pairwise(items))


# ---------------------------------------------------------------- calendar windows


@pytest.mark.parametrize(
    ("every", "start", "end", "expected"),
    [
        (
            "1mo",
            jst(2024, 1, 15),
            jst(2024, 4, 1),
            [jst(2024, 1, 1), jst(2024, 2, 1), jst(2024, 3, 1)],
        ),
        ("1mo", jst(2024, 2, 29, 23), jst(2024, 3, 1, 0, 0, 1), [jst(2024, 2, 1), jst(2024, 3, 1)]),
        (
            "3mo",
            jst(2024, 2, 1),
            jst(2024, 10, 1),
            [jst(2024, 1, 1), jst(2024, 4, 1), jst(2024, 7, 1)],
        ),
        ("6mo", jst(2024, 8, 1), jst(2025, 1, 2), [jst(2024, 7, 1), jst(2025, 1, 1)]),
        (
            "1y",
            jst(2024, 12, 31, 23, 59),
            jst(2025, 1, 1, 0, 0, 1),
            [jst(2024, 1, 1), jst(2025, 1, 1)],
        ),
        ("2y", jst(2025, 6, 1), jst(2027, 1, 1), [jst(2024, 1, 1), jst(2026, 1, 1)]),
        ("1fy", jst(2026, 3, 31), jst(2026, 4, 2), [jst(2025, 4, 1), jst(2026, 4, 1)]),
        ("1fy", jst(2026, 4, 1), jst(2026, 4, 2), [jst(2026, 4, 1)]),
        ("1fy", jst(2026, 1, 1), jst(2026, 4, 1), [jst(2025, 4, 1)]),
        ("2fy", jst(2027, 5, 1), jst(2028, 4, 2), [jst(2026, 4, 1), jst(2028, 4, 1)]),
    ],
)
def test_calendar_window_starts(
    every: str, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    duration = parse_duration(every)
    assert calendar_starts(start, end, duration) == expected
    assert calendar_window_count(start, end, duration) == len(expected)


def test_fiscal_year_is_labelled_with_its_start_in_japan_time() -> None:
    (start,) = calendar_starts(jst(2026, 4, 1), jst(2026, 5, 1), parse_duration("1fy"))
    assert format_rfc3339(start) == "2026-04-01T00:00:00+09:00"


@settings(max_examples=200)
@given(
    start=MOMENTS,
    span_days=st.integers(0, 800),
    unit=st.sampled_from(["1mo", "3mo", "5mo", "1y", "1fy", "2fy"]),
)
def test_calendar_window_count_matches_the_listing(
    start: datetime, span_days: int, unit: str
) -> None:
    end = start + timedelta(days=span_days, seconds=1)
    duration = parse_duration(unit)
    starts = calendar_starts(start, end, duration)
    assert calendar_window_count(start, end, duration) == len(starts)
    assert starts[0] <= start
    assert all(a < b for a, b in pairs(starts))
    for moment in starts:
        local = moment.astimezone(JST)
        assert (local.day, local.hour, local.minute) == (1, 0, 0)


def test_calendar_units_are_not_fixed() -> None:
    with pytest.raises(InvalidInput):
        fixed_offset(Duration(1, "mo"))


# ---------------------------------------------------------------- calendar combination


def brute_calendar(
    points: Sequence[tuple[datetime, float]], start: datetime, end: datetime, unit: str, fn: str
) -> list[tuple[datetime, float]]:
    """Group raw points by their JST month / year / fiscal year and aggregate directly."""

    def label(t: datetime) -> datetime:
        local = t.astimezone(JST)
        if unit == "1mo":
            return jst(local.year, local.month, 1)
        if unit == "3mo":
            return jst(local.year, (local.month - 1) // 3 * 3 + 1, 1)
        if unit == "1y":
            return jst(local.year, 1, 1)
        year = local.year if local.month >= 4 else local.year - 1
        return jst(year, 4, 1)

    groups: dict[datetime, list[float]] = {}
    for t, v in sorted(points):
        if start <= t < end:
            groups.setdefault(label(t), []).append(v)
    reduce = {
        "mean": lambda vs: math.fsum(vs) / len(vs),
        "sum": math.fsum,
        "count": lambda vs: float(len(vs)),
        "min": min,
        "max": max,
        "first": lambda vs: vs[0],
        "last": lambda vs: vs[-1],
    }[fn]
    return [(w, reduce(vs)) for w, vs in sorted(groups.items())]


@settings(max_examples=300, deadline=None)
@given(
    offsets=st.lists(
        st.tuples(st.integers(0, 800 * 86_400_000), st.integers(-1000, 1000)),
        min_size=0,
        max_size=80,
        unique_by=lambda p: p[0],
    ),
    unit=st.sampled_from(["1mo", "3mo", "1y", "1fy"]),
    fn=st.sampled_from(["mean", "min", "max", "sum", "count", "first", "last"]),
    cut=st.tuples(st.integers(-86_400_000, 100 * 86_400_000), st.integers(0, 900 * 86_400_000)),
)
def test_calendar_combination_equals_brute_force(
    offsets: list[tuple[int, int]], unit: str, fn: str, cut: tuple[int, int]
) -> None:
    base = jst(2023, 12, 31, 23, 0)  # spans year ends, a leap day and fiscal-year starts
    points = [(base + timedelta(milliseconds=ms), v / 4) for ms, v in offsets]
    # boundary readings at the last millisecond of a month and at midnight after it
    points += [(jst(2024, 3, 31, 23, 59, 59, 999000), 1.25), (jst(2024, 4, 1), -2.5)]
    start = base + timedelta(milliseconds=cut[0])
    end = start + timedelta(milliseconds=max(cut[1], 1))
    store = MemoryStore(points)
    got = run(store, start, end, unit, fn)
    expected = brute_calendar(points, start, end, unit, fn)
    assert [w for w, _ in got] == [w for w, _ in expected]
    for (_, value), (_, want) in zip(got, expected, strict=True):
        assert value == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert len(store.calls) == 1
    assert store.calls[0]["every"] == D
    assert store.calls[0]["offset"] == -9 * H


def test_calendar_mean_asks_only_for_sums_and_counts() -> None:
    store = MemoryStore([(jst(2024, 2, 29, 12), 3.0), (jst(2024, 3, 1), 5.0)])
    assert run(store, jst(2024, 1, 1), jst(2024, 4, 1), "1mo", "mean") == [
        (jst(2024, 2, 1), 3.0),
        (jst(2024, 3, 1), 5.0),
    ]
    assert store.calls == [{"every": D, "offset": -9 * H, "functions": {"sum", "count"}}]


def test_fixed_windows_ask_the_store_once_for_the_one_function() -> None:
    store = MemoryStore([(jst(2024, 4, 8, 0), 1.0), (jst(2024, 4, 7, 23), 2.0)])
    assert run(store, jst(2024, 4, 1), jst(2024, 4, 15), "1w", "max") == [
        (jst(2024, 4, 1), 2.0),
        (jst(2024, 4, 8), 1.0),
    ]
    assert store.calls == [{"every": 7 * D, "offset": 3 * D + 15 * H, "functions": {"max"}}]


def test_too_many_windows_is_a_limit_error_before_the_store_is_asked() -> None:
    store = MemoryStore([])
    with pytest.raises(LimitExceeded, match="1441 windows"):
        run(store, jst(2024, 4, 1), jst(2024, 4, 2, 0, 0, 1), "1m", limit=1440)
    assert (
        len(run(store, jst(2024, 4, 1), jst(2024, 4, 2), "1m", fill_mode="null", limit=1440))
        == 1440
    )
    with pytest.raises(LimitExceeded, match="13 windows"):
        run(store, jst(2024, 4, 15), jst(2025, 4, 1, 0, 0, 1), "1mo", limit=12)
    assert len(store.calls) == 1


# ---------------------------------------------------------------- fill


T = [jst(2024, 4, 1, h) for h in range(7)]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("none", [(T[1], 10.0), (T[4], 40.0), (T[5], 0.0)]),
        (
            "null",
            [
                (T[0], None),
                (T[1], 10.0),
                (T[2], None),
                (T[3], None),
                (T[4], 40.0),
                (T[5], 0.0),
                (T[6], None),
            ],
        ),
        (
            "previous",
            [
                (T[0], None),
                (T[1], 10.0),
                (T[2], 10.0),
                (T[3], 10.0),
                (T[4], 40.0),
                (T[5], 0.0),
                (T[6], 0.0),
            ],
        ),
        (
            "linear",
            [
                (T[0], None),
                (T[1], 10.0),
                (T[2], 20.0),
                (T[3], 30.0),
                (T[4], 40.0),
                (T[5], 0.0),
                (T[6], None),
            ],
        ),
    ],
)
def test_fill_modes(mode: str, expected: list[tuple[datetime, float | None]]) -> None:
    got = fill(T, {T[1]: 10.0, T[4]: 40.0, T[5]: 0.0}, mode=mode)
    assert [(w.start, w.value) for w in got] == expected


def test_linear_fill_interpolates_in_time_over_uneven_windows() -> None:
    starts = [jst(2024, 2, 1), jst(2024, 3, 1), jst(2024, 4, 1)]  # 29 and 31 days apart
    got = fill(starts, {starts[0]: 0.0, starts[2]: 60.0}, mode="linear")
    assert got[1] == WindowValue(starts[1], pytest.approx(60.0 * 29 / 60))


def test_fill_with_no_data_and_unknown_mode() -> None:
    assert fill(T, {}, mode="none") == []
    assert [w.value for w in fill(T, {}, mode="linear")] == [None] * 7
    assert [w.value for w in fill(T, {}, mode="previous")] == [None] * 7
    with pytest.raises(InvalidInput, match="fill"):
        fill(T, {}, mode="zero")


# ---------------------------------------------------------------- downsampling


@pytest.mark.parametrize(
    ("span", "max_points", "every"),
    [
        (timedelta(seconds=10_000), 7, timedelta(seconds=1429)),
        (timedelta(days=30), 720, H),
        (timedelta(days=30), 721, timedelta(seconds=3596)),  # 3595.0069 s, rounded up
        (timedelta(seconds=10), 100, timedelta(seconds=1)),
        (timedelta(milliseconds=1500), 1, timedelta(seconds=2)),
    ],
)
def test_downsample_every(span: timedelta, max_points: int, every: timedelta) -> None:
    assert downsample_every(jst(2024, 4, 1), jst(2024, 4, 1) + span, max_points=max_points) == every


@settings(max_examples=300)
@given(start=MOMENTS, span_ms=st.integers(1, 400 * 86_400_000), max_points=st.integers(1, 100_000))
def test_downsampling_never_exceeds_max_points(
    start: datetime, span_ms: int, max_points: int
) -> None:
    end = start + timedelta(milliseconds=span_ms)
    every = downsample_every(start, end, max_points=max_points)
    assert every % timedelta(seconds=1) == timedelta(0)
    offset = aligned_to(start, every)
    assert window_floor(start, every=every, offset=offset) == start
    assert fixed_window_count(start, end, every=every, offset=offset) <= max_points


def test_downsample_asks_once_and_starts_at_from() -> None:
    start = jst(1969, 12, 31, 23, 59, 58, 500000)  # before the epoch, off the second
    store = MemoryStore([(start + timedelta(seconds=i), float(i)) for i in range(100)])
    got = downsample(
        store=store,  # type: ignore[arg-type]
        sensor_id="d.q",
        start=start,
        end=start + timedelta(seconds=100),
        max_points=10,
        function="mean",
        fill_mode="none",
    )
    assert [w.start for w in got] == [start + timedelta(seconds=10 * k) for k in range(10)]
    assert [w.value for w in got] == [10 * k + 4.5 for k in range(10)]
    assert len(store.calls) == 1
    with pytest.raises(InvalidInput):
        downsample_every(start, start + D, max_points=0)
