"""Windowed aggregates: one contract for every registered TimeSeriesStore.

The store factories come from `test_timeseries_contract.STORE_FACTORIES`, so a store registered
there runs these tests too. They fix the shared semantics of `TimeSeriesStore.aggregate`:
windows start at `epoch + offset + k * every` (UTC; before 1970 too), only observations with
start <= t < end count, only non-empty windows come back, oldest first, `count` is a float,
and first/last are the values of the window's earliest/latest observation. The platform's
calendar windows, fill and downsampling are run over each store as well.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.durations import parse_duration
from cityos.platform.observations.service import aggregate_windows, downsample
from cityos.platform.observations.windows import WindowValue, fixed_offset
from cityos.platform.ports import AGGREGATE_FUNCTIONS, TimeSeriesStore, WindowAggregate
from contract.test_timeseries_contract import HOSTILE_IDS, STORE_FACTORIES, obs

JST = timezone(timedelta(hours=9))
H, D = timedelta(hours=1), timedelta(days=1)
MS = timedelta(milliseconds=1)
ALL = AGGREGATE_FUNCTIONS
SID = "omaezaki-port.tide_level"


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    """An empty store of each registered kind."""
    with STORE_FACTORIES[request.param](tmp_path) as opened:
        yield opened


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)  # type: ignore[misc]


def agg(
    store: TimeSeriesStore,
    start: datetime,
    end: datetime,
    every: timedelta,
    offset: timedelta = timedelta(0),
    functions: frozenset[str] = ALL,
    sensor_id: str = SID,
) -> list[WindowAggregate]:
    return store.aggregate(
        sensor_id=sensor_id,
        start=start,
        end=end,
        every=every,
        offset=offset,
        functions=frozenset(functions),
    )


def brute_force(
    points: list[tuple[datetime, float]],
    start: datetime,
    end: datetime,
    every: timedelta,
    offset: timedelta,
) -> list[tuple[datetime, dict[str, float]]]:
    """The reference: every function per window, straight from the definition."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    windows: dict[datetime, list[tuple[datetime, float]]] = {}
    for t, v in sorted(points):
        if start <= t < end:
            k = (t - epoch - offset) // every
            windows.setdefault(epoch + offset + k * every, []).append((t, v))
    return [
        (
            w,
            {
                "count": float(len(rows)),
                "sum": math.fsum(v for _, v in rows),
                "mean": math.fsum(v for _, v in rows) / len(rows),
                "min": min(v for _, v in rows),
                "max": max(v for _, v in rows),
                "first": rows[0][1],
                "last": rows[-1][1],
            },
        )
        for w, rows in sorted(windows.items())
    ]


def assert_matches(got: list[WindowAggregate], expected: list[tuple[datetime, dict[str, float]]]):
    assert [w.start for w in got] == [w for w, _ in expected]
    for window, (_, values) in zip(got, expected, strict=True):
        assert set(window.values) <= set(values)
        for name, value in window.values.items():
            assert type(value) is float, name
            assert value == pytest.approx(values[name], rel=1e-12, abs=1e-12), name


# ---------------------------------------------------------------- the primitive


def test_no_data_no_windows(store: TimeSeriesStore) -> None:
    assert agg(store, jst(2024, 1, 1), jst(2025, 1, 1), D) == []
    store.write([obs(SID, jst(2024, 6, 1), 1.0)])
    assert agg(store, jst(2024, 7, 1), jst(2025, 1, 1), D) == []
    assert agg(store, jst(2024, 6, 1), jst(2024, 6, 1), D) == []  # empty range
    assert agg(store, jst(2024, 6, 1), jst(2024, 6, 1), D, sensor_id="other.q") == []


def test_all_seven_functions_in_hourly_windows(store: TimeSeriesStore) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    values = [3.0, -1.0, 7.5, 2.0, 0.0, -4.25, 10.0, 1.0]
    times = [t0 + timedelta(minutes=20 * i) for i in range(len(values))]  # 3 per hour
    store.write([obs(SID, t, v) for t, v in zip(times, values, strict=True)])
    got = agg(store, t0, t0 + 3 * H, H)
    assert [w.start for w in got] == [t0, t0 + H, t0 + 2 * H]
    assert got[0].values == {
        "count": 3.0,
        "sum": 9.5,
        "mean": pytest.approx(9.5 / 3),
        "min": -1.0,
        "max": 7.5,
        "first": 3.0,
        "last": 7.5,
    }
    assert got[1].values == {
        "count": 3.0,
        "sum": -2.25,
        "mean": -0.75,
        "min": -4.25,
        "max": 2.0,
        "first": 2.0,
        "last": -4.25,
    }
    assert got[2].values == {
        "count": 2.0,
        "sum": 11.0,
        "mean": 5.5,
        "min": 1.0,
        "max": 10.0,
        "first": 10.0,
        "last": 1.0,
    }
    assert all(type(v) is float for w in got for v in w.values.values())


@pytest.mark.parametrize("function", sorted(ALL))
def test_each_function_alone(store: TimeSeriesStore, function: str) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    store.write([obs(SID, t0 + timedelta(minutes=i), float((i * 7) % 11)) for i in range(120)])
    got = agg(store, t0, t0 + 2 * H, H, functions=frozenset({function}))
    expected = brute_force(
        [(t0 + timedelta(minutes=i), float((i * 7) % 11)) for i in range(120)],
        t0,
        t0 + 2 * H,
        H,
        timedelta(0),
    )
    assert [set(w.values) for w in got] == [{function}, {function}]
    assert_matches(got, expected)


def test_only_non_empty_windows_oldest_first_whatever_the_write_order(
    store: TimeSeriesStore,
) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    points = [
        (t0 + h * H + timedelta(minutes=m), float(h * 100 + m))
        for h in (5, 0, 9, 2)
        for m in (59, 0, 30)
    ]
    store.write([obs(SID, t, v) for t, v in points])
    got = agg(store, t0, t0 + D, H)
    assert [w.start for w in got] == [t0, t0 + 2 * H, t0 + 5 * H, t0 + 9 * H]
    assert [(w.values["first"], w.values["last"]) for w in got] == [
        (0.0, 59.0),
        (200.0, 259.0),
        (500.0, 559.0),
        (900.0, 959.0),
    ]


def test_windows_are_half_open_at_millisecond_edges(store: TimeSeriesStore) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    store.write([obs(SID, t0 + H - MS, 1.0), obs(SID, t0 + H, 2.0), obs(SID, t0 + 2 * H - MS, 3.0)])
    got = agg(store, t0, t0 + D, H)
    assert [(w.start, w.values["count"], w.values["first"], w.values["last"]) for w in got] == [
        (t0, 1.0, 1.0, 1.0),
        (t0 + H, 2.0, 2.0, 3.0),
    ]


def test_range_bounds_cut_windows_but_keep_their_labels(store: TimeSeriesStore) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    store.write([obs(SID, t0 + timedelta(minutes=10 * i), float(i)) for i in range(12)])
    # [00:25, 01:35): the first window is labelled 00:00 but holds only 00:30..00:50
    got = agg(store, t0 + timedelta(minutes=25), t0 + timedelta(minutes=95), H)
    assert [w.start for w in got] == [t0, t0 + H]
    assert [(w.values["count"], w.values["first"], w.values["last"]) for w in got] == [
        (3.0, 3.0, 5.0),
        (4.0, 6.0, 9.0),
    ]
    # the end is exclusive: a point exactly at `end` is not counted
    assert agg(store, t0, t0 + timedelta(minutes=10), H)[0].values["count"] == 1.0


def test_jst_days_split_at_midnight_japan_time(store: TimeSeriesStore) -> None:
    store.write(
        [
            obs(SID, jst(2024, 3, 31, 23, 59, 59, 999000), 1.0),
            obs(SID, jst(2024, 4, 1, 0, 0, 0), 2.0),
            obs(SID, jst(2024, 4, 1, 23, 59, 59, 999000), 3.0),
            obs(SID, jst(2024, 4, 2, 0, 0, 0), 4.0),
        ]
    )
    got = agg(store, jst(2024, 3, 1), jst(2024, 5, 1), D, offset=-9 * H)
    assert [w.start for w in got] == [jst(2024, 3, 31), jst(2024, 4, 1), jst(2024, 4, 2)]
    assert [w.start.utcoffset() for w in got] == [timedelta(0)] * 3
    assert [w.values["sum"] for w in got] == [1.0, 5.0, 4.0]
    # the same alignment written as a positive offset, or one past `every`
    for offset in (15 * H, 15 * H + 3 * D, -9 * H - 5 * D):
        assert agg(store, jst(2024, 3, 1), jst(2024, 5, 1), D, offset=offset) == got


def test_weeks_start_on_monday_in_japan(store: TimeSeriesStore) -> None:
    # 2024-04-07 is a Sunday, 2024-04-08 a Monday
    store.write(
        [
            obs(SID, jst(2024, 4, 7, 23, 59, 59, 999000), 1.0),
            obs(SID, jst(2024, 4, 8, 0, 0), 2.0),
            obs(SID, jst(2024, 4, 14, 23, 59, 59, 999000), 3.0),
        ]
    )
    week = parse_duration("1w")
    got = agg(store, jst(2024, 4, 1), jst(2024, 5, 1), 7 * D, offset=fixed_offset(week))
    assert [w.start for w in got] == [jst(2024, 4, 1), jst(2024, 4, 8)]
    assert [w.values["count"] for w in got] == [1.0, 2.0]


def test_leap_day_is_its_own_jst_day(store: TimeSeriesStore) -> None:
    store.write(
        [
            obs(SID, jst(2024, 2, 28, 23, 59, 59, 999000), 1.0),
            obs(SID, jst(2024, 2, 29, 0, 0), 2.0),
            obs(SID, jst(2024, 2, 29, 12, 0), 3.0),
            obs(SID, jst(2024, 3, 1, 0, 0), 4.0),
        ]
    )
    got = agg(store, jst(2024, 2, 1), jst(2024, 4, 1), D, offset=-9 * H)
    assert [(w.start, w.values["count"]) for w in got] == [
        (jst(2024, 2, 28), 1.0),
        (jst(2024, 2, 29), 2.0),
        (jst(2024, 3, 1), 1.0),
    ]


@pytest.mark.parametrize(
    ("center", "every", "offset"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), H, -9 * H),
        (datetime(1970, 1, 1, tzinfo=UTC), D, -9 * H),
        (datetime(1969, 12, 29, tzinfo=UTC), 7 * D, 3 * D + 15 * H),
        (datetime(1900, 6, 15, 12, tzinfo=UTC), 7 * H, timedelta(minutes=13)),
        (datetime(1700, 3, 1, tzinfo=UTC), 90 * timedelta(seconds=1), timedelta(seconds=45)),
        (datetime(2261, 6, 1, tzinfo=UTC), D, -9 * H),
    ],
)
def test_windows_before_1970_and_far_away_follow_the_same_arithmetic(
    store: TimeSeriesStore, center: datetime, every: timedelta, offset: timedelta
) -> None:
    rng = random.Random(center.year)
    points = [
        (center + timedelta(milliseconds=rng.randrange(-3 * 86_400_000, 3 * 86_400_000)), float(i))
        for i in range(300)
    ]
    store.write([obs(SID, t, v) for t, v in points])
    start, end = center - 2 * D, center + 2 * D + timedelta(seconds=1)
    assert_matches(
        agg(store, start, end, every, offset), brute_force(points, start, end, every, offset)
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(
        st.tuples(st.integers(-(10**6), 10**6), st.integers(-50, 50)), min_size=1, max_size=60
    ),
    every_s=st.sampled_from([1, 7, 60, 90, 3600, 7 * 3600, 86_400, 7 * 86_400]),
    offset_s=st.integers(-10 * 86_400, 10 * 86_400),
    base=st.sampled_from(
        [datetime(1969, 12, 31, 20, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)]
    ),
    cut=st.tuples(st.integers(-(10**6), 0), st.integers(0, 10**6)),
)
def test_any_windows_match_the_definition(
    store: TimeSeriesStore,
    data: list[tuple[int, int]],
    every_s: int,
    offset_s: int,
    base: datetime,
    cut: tuple[int, int],
) -> None:
    sensor_id = f"prop-{next(_COUNTER)}.q"  # a fresh series per example
    points = {base + timedelta(seconds=s): float(v) for s, v in data}
    store.write([obs(sensor_id, t, v) for t, v in points.items()])
    start, end = base + timedelta(seconds=cut[0]), base + timedelta(seconds=cut[1])
    every, offset = timedelta(seconds=every_s), timedelta(seconds=offset_s)
    got = agg(store, start, end, every, offset, sensor_id=sensor_id)
    assert_matches(got, brute_force(list(points.items()), start, end, every, offset))


_COUNTER = itertools.count()


def test_hostile_sensor_ids_aggregate_apart(store: TimeSeriesStore) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    store.write(
        [
            obs(sid, t0 + timedelta(minutes=k), float(n + k))
            for n, sid in enumerate(HOSTILE_IDS)
            for k in range(3)
        ]
    )
    for n, sid in enumerate(HOSTILE_IDS):
        (window,) = agg(store, t0, t0 + D, D, sensor_id=sid)
        assert window.start == t0
        assert window.values["count"] == 3.0
        assert (window.values["first"], window.values["last"]) == (float(n), float(n + 2))
    assert agg(store, t0, t0 + D, D, sensor_id="plain") == []


def test_query_bounds_far_outside_the_storable_range(store: TimeSeriesStore) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    store.write([obs(SID, t0, 1.0), obs(SID, t0 + D, 2.0)])
    got = agg(
        store, datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC), 365 * D, -9 * H
    )
    assert len(got) == 1
    assert got[0].values["count"] == 2.0


def test_unknown_function_and_bad_every_are_refused(store: TimeSeriesStore) -> None:
    t0 = datetime(2024, 4, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        agg(store, t0, t0 + D, H, functions=frozenset({"median"}))
    with pytest.raises(InvalidInput):
        agg(store, t0, t0 + D, timedelta(0))
    with pytest.raises(InvalidInput):
        agg(store, t0, t0 + D, -H)


# ---------------------------------------------------------------- the platform over each store


def windows(
    store: TimeSeriesStore,
    start: datetime,
    end: datetime,
    every: str,
    function: str = "sum",
    fill: str = "none",
) -> list[tuple[datetime, float | None]]:
    got = aggregate_windows(
        store=store,
        sensor_id=SID,
        start=start,
        end=end,
        every=parse_duration(every),
        function=function,
        fill_mode=fill,
        limit=100_000,
    )
    return [(w.start, w.value) for w in got]


def test_months_split_at_month_ends_in_japan(store: TimeSeriesStore) -> None:
    ends = [
        jst(2023, 1, 31),
        jst(2023, 2, 28),
        jst(2024, 2, 29),
        jst(2024, 4, 30),
        jst(2024, 12, 31),
    ]
    points = []
    for n, day in enumerate(ends):
        points += [(day + timedelta(hours=23, minutes=59, seconds=59, milliseconds=999), 1.0 + n)]
        points += [(day + D, 100.0 + n)]  # 00:00 JST on the 1st
    store.write([obs(SID, t, v) for t, v in points])
    got = windows(store, jst(2023, 1, 1), jst(2025, 2, 1), "1mo")
    assert got == [
        (jst(2023, 1, 1), 1.0),
        (jst(2023, 2, 1), 100.0 + 2.0),  # 1st 00:00 and 28th 23:59:59.999
        (jst(2023, 3, 1), 101.0),
        (jst(2024, 2, 1), 3.0),  # the leap day's last millisecond
        (jst(2024, 3, 1), 102.0),
        (jst(2024, 4, 1), 4.0),
        (jst(2024, 5, 1), 103.0),
        (jst(2024, 12, 1), 5.0),
        (jst(2025, 1, 1), 104.0),
    ]


def test_fiscal_years_quarters_and_years(store: TimeSeriesStore) -> None:
    store.write(
        [
            obs(SID, jst(2025, 3, 31, 23, 59, 59, 999000), 1.0),
            obs(SID, jst(2025, 4, 1), 2.0),
            obs(SID, jst(2025, 12, 31, 23, 59, 59, 999000), 4.0),
            obs(SID, jst(2026, 1, 1), 8.0),
            obs(SID, jst(2026, 3, 31, 12), 16.0),
            obs(SID, jst(2026, 4, 1), 32.0),
        ]
    )
    start, end = jst(2025, 2, 10), jst(2026, 4, 2)
    assert windows(store, start, end, "1fy") == [
        (jst(2024, 4, 1), 1.0),
        (jst(2025, 4, 1), 2.0 + 4.0 + 8.0 + 16.0),
        (jst(2026, 4, 1), 32.0),
    ]
    assert windows(store, start, end, "1y") == [(jst(2025, 1, 1), 7.0), (jst(2026, 1, 1), 56.0)]
    assert windows(store, start, end, "3mo") == [
        (jst(2025, 1, 1), 1.0),
        (jst(2025, 4, 1), 2.0),
        (jst(2025, 10, 1), 4.0),
        (jst(2026, 1, 1), 24.0),
        (jst(2026, 4, 1), 32.0),
    ]
    assert windows(store, start, end, "1fy", "first") == [
        (jst(2024, 4, 1), 1.0),
        (jst(2025, 4, 1), 2.0),
        (jst(2026, 4, 1), 32.0),
    ]
    assert windows(store, start, end, "1fy", "last")[1] == (jst(2025, 4, 1), 16.0)
    assert windows(store, start, end, "1fy", "mean")[1] == (jst(2025, 4, 1), 7.5)
    assert windows(store, start, end, "1fy", "count")[1] == (jst(2025, 4, 1), 4.0)
    assert windows(store, start, end, "1fy", "max")[1] == (jst(2025, 4, 1), 16.0)
    assert windows(store, start, end, "1fy", "min")[1] == (jst(2025, 4, 1), 2.0)


def test_range_starting_mid_month_counts_only_data_inside(store: TimeSeriesStore) -> None:
    store.write([obs(SID, jst(2024, 5, d), float(d)) for d in range(1, 32)])
    # [10th 12:00, 20th 00:00) holds the readings of the 11th..19th; the window keeps its label
    assert windows(store, jst(2024, 5, 10, 12), jst(2024, 5, 20), "1mo", "count") == [
        (jst(2024, 5, 1), 9.0)
    ]
    assert windows(store, jst(2024, 5, 10, 12), jst(2024, 5, 20), "1mo", "first") == [
        (jst(2024, 5, 1), 11.0)
    ]


def test_fill_modes_over_the_store(store: TimeSeriesStore) -> None:
    store.write([obs(SID, jst(2024, 4, 1, 1), 10.0), obs(SID, jst(2024, 4, 1, 4), 40.0)])
    start, end = jst(2024, 4, 1), jst(2024, 4, 1, 6)
    hours = [jst(2024, 4, 1, h) for h in range(6)]
    assert windows(store, start, end, "1h", "mean", "none") == [(hours[1], 10.0), (hours[4], 40.0)]
    assert windows(store, start, end, "1h", "mean", "null") == list(
        zip(hours, [None, 10.0, None, None, 40.0, None], strict=True)
    )
    assert windows(store, start, end, "1h", "mean", "previous") == list(
        zip(hours, [None, 10.0, 10.0, 10.0, 40.0, 40.0], strict=True)
    )
    assert windows(store, start, end, "1h", "mean", "linear") == list(
        zip(hours, [None, 10.0, 20.0, 30.0, 40.0, None], strict=True)
    )


def test_downsampling_gives_at_most_max_points_windows_from_the_range_start(
    store: TimeSeriesStore,
) -> None:
    t0 = jst(2024, 4, 1, 0, 0, 17)
    store.write([obs(SID, t0 + timedelta(seconds=10 * i), float(i)) for i in range(1000)])
    end = t0 + timedelta(seconds=10_000)
    got = downsample(
        store=store,
        sensor_id=SID,
        start=t0,
        end=end,
        max_points=7,
        function="mean",
        fill_mode="none",
    )
    assert 1 <= len(got) <= 7
    assert got[0].start == t0
    width = got[1].start - got[0].start
    assert width == timedelta(seconds=1429)  # ceil(10000 / 7) whole seconds
    assert all(isinstance(w, WindowValue) and w.value is not None for w in got)
    assert got[0].value == pytest.approx(sum(range(143)) / 143)


# ---------------------------------------------------------------- sqlite only


def test_sqlite_aggregate_is_one_statement_and_refuses_huge_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []
    with STORE_FACTORIES["sqlite"](tmp_path) as opened:
        t0 = datetime(2024, 4, 1, tzinfo=UTC)
        opened.write([obs(SID, t0 + timedelta(minutes=i), float(i)) for i in range(3000)])
        connect = opened._connect  # type: ignore[attr-defined]

        def traced() -> object:
            conn = connect()
            conn.set_trace_callback(statements.append)
            return conn

        monkeypatch.setattr(opened, "_connect", traced)
        got = agg(opened, t0, t0 + 3 * D, H, -9 * H)
        assert len(got) == 50
        assert [s for s in statements if not s.startswith("PRAGMA")] == [statements[-1]]
        with pytest.raises(InvalidInput, match="2\\*\\*62"):
            agg(opened, t0, t0 + D, timedelta(days=200 * 366))
