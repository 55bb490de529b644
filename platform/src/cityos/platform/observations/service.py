"""Observation queries: raw or windowed, cursor-paged, never silently truncated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cityos.platform.domain.errors import InvalidInput, LimitExceeded
from cityos.platform.domain.model import Observation, Sensor
from cityos.platform.durations import Duration
from cityos.platform.observations.windows import (
    DAY,
    FILL_MODES,
    JST_MIDNIGHT_OFFSET,
    PARTIALS,
    WindowValue,
    aligned_to,
    calendar_starts,
    calendar_window_count,
    combine_days,
    downsample_every,
    fill,
    fixed_offset,
    fixed_starts,
    fixed_window_count,
    values_by_start,
)
from cityos.platform.paging import Page, check_first, decode_cursor, encode_cursor
from cityos.platform.ports import AGGREGATE_FUNCTIONS, Catalog, TimeSeriesStore
from cityos.platform.security import Principal
from cityos.platform.sensors.service import find_sensor

MAX_OBSERVATIONS_PER_PAGE = 10000
_CURSOR_KIND = "obs"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time_key(value: datetime) -> str:
    return str((value - _EPOCH) // timedelta(microseconds=1))


def _key_time(key: str) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=int(key))
    except (ValueError, OverflowError):
        raise InvalidInput("malformed cursor in `after`", field="after") from None


def check_range(start: datetime, end: datetime, *, max_days: int) -> None:
    """Validate a half-open time range [start, end)."""
    if end <= start:
        raise InvalidInput("`to` must be after `from`", field="to")
    if end - start > timedelta(days=max_days):
        raise LimitExceeded(
            f"time range of {(end - start).days} days exceeds the maximum of {max_days} days",
            field="to",
        )


@dataclass(slots=True)
class PointBudget:
    """How many observations one request may still return (CITYOS__API__MAX_POINTS in all)."""

    limit: int
    used: int = 0

    def charge(self, count: int) -> None:
        """Spend `count` points; LimitExceeded once the request has asked for more than allowed."""
        self.used += count
        if self.used > self.limit:
            raise LimitExceeded(
                f"this request asks for more than {self.limit} observations in all "
                "(the server maximum per request); split it into several requests",
                field="first",
            )


@dataclass(frozen=True, slots=True)
class Series:
    """A page of a readable sensor's observations (raw) or windows, with the sensor."""

    sensor: Sensor
    page: Page[Observation] | Page[WindowValue]


@dataclass(frozen=True, slots=True)
class SeriesOptions:
    """How to shape a series: `every` windows of `aggregate` (default mean), fill, maxPoints."""

    every: Duration | None = None
    aggregate: str | None = None
    fill: str = "none"
    max_points: int | None = None


def _raw_page(
    *,
    store: TimeSeriesStore,
    sensor_id: str,
    start: datetime,
    end: datetime,
    first: int,
    after: str | None,
) -> Page[Observation]:
    """A page of raw observations after the cursor (an observation time)."""
    after_time = _key_time(decode_cursor(_CURSOR_KIND, after)) if after is not None else None
    rows = store.query_range(
        sensor_id=sensor_id, start=start, end=end, limit=first + 1, after=after_time
    )
    items = rows[:first]
    return Page(
        items=items,
        has_next_page=len(rows) > first,
        end_cursor=encode_cursor(_CURSOR_KIND, _time_key(items[-1].time)) if items else None,
        total_count=store.count_range(sensor_id=sensor_id, start=start, end=end),
    )


def latest_of(*, store: TimeSeriesStore, sensor_ids: Sequence[str]) -> list[Observation | None]:
    """The newest observation of each sensor, in the order asked (one store round trip)."""
    found = store.latest(list(dict.fromkeys(sensor_ids)))
    return [found.get(sensor_id) for sensor_id in sensor_ids]


def series_page(
    *,
    catalog: Catalog,
    store: TimeSeriesStore,
    principal: Principal,
    sensor_id: str,
    start: datetime,
    end: datetime,
    options: SeriesOptions,
    first: int,
    after: str | None,
    max_range_days: int,
    max_points: int,
) -> Series:
    """Observations of one readable sensor in [start, end): raw, windowed or downsampled.

    A sensor the caller may not read is refused exactly like an unknown one.
    """
    check_first(first, cap=MAX_OBSERVATIONS_PER_PAGE)
    check_range(start, end, max_days=max_range_days)
    limit = _check_options(options, max_points=max_points)
    sensor = find_sensor(catalog=catalog, principal=principal, sensor_id=sensor_id)
    if sensor is None:
        raise InvalidInput(f"no sensor {sensor_id!r}", field="sensorId")
    return Series(
        sensor=sensor,
        page=_shaped_page(
            store=store,
            sensor_id=sensor_id,
            start=start,
            end=end,
            options=options,
            first=first,
            after=after,
            limit=limit,
        ),
    )


def _shaped_page(
    *,
    store: TimeSeriesStore,
    sensor_id: str,
    start: datetime,
    end: datetime,
    options: SeriesOptions,
    first: int,
    after: str | None,
    limit: int,
) -> Page[Observation] | Page[WindowValue]:
    """Raw observations, `every` windows or a downsampled series of at most `limit` windows."""
    if options.every is None and options.max_points is None:
        return _raw_page(
            store=store, sensor_id=sensor_id, start=start, end=end, first=first, after=after
        )
    function = options.aggregate or "mean"
    if options.every is not None:
        windows = aggregate_windows(
            store=store,
            sensor_id=sensor_id,
            start=start,
            end=end,
            every=options.every,
            function=function,
            fill_mode=options.fill,
            limit=limit,
            limit_name="maxPoints" if options.max_points is not None else "the server maximum",
        )
    else:
        if store.count_range(sensor_id=sensor_id, start=start, end=end) <= limit:
            return _raw_page(
                store=store, sensor_id=sensor_id, start=start, end=end, first=first, after=after
            )
        windows = downsample(
            store=store,
            sensor_id=sensor_id,
            start=start,
            end=end,
            max_points=limit,
            function=function,
            fill_mode=options.fill,
        )
    return _window_page(windows, first=first, after=after)


def _check_options(options: SeriesOptions, *, max_points: int) -> int:
    """Validate the shaping options; the most windows allowed (maxPoints or the server cap)."""
    if options.aggregate is not None and options.aggregate not in AGGREGATE_FUNCTIONS:
        raise InvalidInput(f"unknown aggregate {options.aggregate!r}", field="aggregate")
    if options.fill not in FILL_MODES:
        raise InvalidInput(f"unknown fill {options.fill!r}", field="fill")
    if options.every is None and options.max_points is None:
        if options.aggregate is not None:
            raise InvalidInput("`aggregate` needs `every` (or `maxPoints`)", field="aggregate")
        if options.fill != "none":
            raise InvalidInput("`fill` needs `every` (or `maxPoints`)", field="fill")
    if options.max_points is None:
        return max_points
    if options.max_points < 1:
        raise InvalidInput(
            f"`maxPoints` must be at least 1 (got {options.max_points})", field="maxPoints"
        )
    if options.max_points > max_points:
        raise LimitExceeded(
            f"`maxPoints` may be at most {max_points} (got {options.max_points})",
            field="maxPoints",
        )
    return options.max_points


def aggregate_windows(
    *,
    store: TimeSeriesStore,
    sensor_id: str,
    start: datetime,
    end: datetime,
    every: Duration,
    function: str,
    fill_mode: str,
    limit: int,
    limit_name: str = "the maximum",
) -> list[WindowValue]:
    """`function` per `every` window of [start, end) (Asia/Tokyo), filled; one store call."""
    if every.is_calendar:
        count = calendar_window_count(start, end, every)
        _check_window_count(count, every=every, limit=limit, limit_name=limit_name)
        days = store.aggregate(
            sensor_id=sensor_id,
            start=start,
            end=end,
            every=DAY,
            offset=JST_MIDNIGHT_OFFSET,
            functions=PARTIALS[function],
        )
        windows = combine_days(days, duration=every, function=function)
        starts = calendar_starts(start, end, every)
    else:
        length, offset = every.as_timedelta(), fixed_offset(every)
        count = fixed_window_count(start, end, every=length, offset=offset)
        _check_window_count(count, every=every, limit=limit, limit_name=limit_name)
        windows = store.aggregate(
            sensor_id=sensor_id,
            start=start,
            end=end,
            every=length,
            offset=offset,
            functions=frozenset({function}),
        )
        starts = fixed_starts(start, end, every=length, offset=offset)
    return fill(starts, values_by_start(windows, function), mode=fill_mode)


def downsample(
    *,
    store: TimeSeriesStore,
    sensor_id: str,
    start: datetime,
    end: datetime,
    max_points: int,
    function: str,
    fill_mode: str,
) -> list[WindowValue]:
    """At most `max_points` windows of whole seconds starting exactly at `start`; one store call."""
    every = downsample_every(start, end, max_points=max_points)
    offset = aligned_to(start, every)
    windows = store.aggregate(
        sensor_id=sensor_id,
        start=start,
        end=end,
        every=every,
        offset=offset,
        functions=frozenset({function}),
    )
    starts = fixed_starts(start, end, every=every, offset=offset)
    return fill(starts, values_by_start(windows, function), mode=fill_mode)


def _check_window_count(count: int, *, every: Duration, limit: int, limit_name: str) -> None:
    if count > limit:
        raise LimitExceeded(
            f"every={every} gives {count} windows in this range, more than {limit_name} "
            f"({limit}); use a longer `every` or a shorter range",
            field="every",
        )


def _window_page(windows: list[WindowValue], *, first: int, after: str | None) -> Page[WindowValue]:
    """A page of windows after the cursor (a window start)."""
    if after is not None:
        after_time = _key_time(decode_cursor(_CURSOR_KIND, after))
        rest = [w for w in windows if w.start > after_time]
    else:
        rest = windows
    items = rest[:first]
    return Page(
        items=items,
        has_next_page=len(rest) > first,
        end_cursor=encode_cursor(_CURSOR_KIND, _time_key(items[-1].start)) if items else None,
        total_count=len(windows),
    )
