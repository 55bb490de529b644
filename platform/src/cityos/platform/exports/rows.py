"""Where an export's rows come from: the store's raw stream, or windows over time slices."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from datetime import datetime, timedelta
from typing import cast

from cityos.platform.domain.errors import RetryableError
from cityos.platform.domain.model import Sensor
from cityos.platform.durations import Duration
from cityos.platform.exports.columns import RowBlock, good_block, row_block
from cityos.platform.exports.request import ExportRequest, window_count
from cityos.platform.observations.service import aggregate_windows
from cityos.platform.observations.windows import (
    EPOCH,
    calendar_key,
    calendar_start,
    fixed_offset,
    window_floor,
)
from cityos.platform.ports import TimeSeriesStore

SLICE_WINDOWS = 10_000
"""Windows asked of the store at a time in an aggregated export (memory stays flat)."""
_MICROSECOND = timedelta(microseconds=1)


class SensorReadFailed(RetryableError):
    """The store failed while an export read one sensor's rows (the store's message kept)."""

    def __init__(self, cause: RetryableError, *, sensor_id: str) -> None:
        super().__init__(str(cause), service=cause.service, attempt_context=cause.attempt_context)
        self.sensor_id = sensor_id


def row_blocks(
    request: ExportRequest, sensors: Sequence[Sensor], *, store: TimeSeriesStore
) -> Generator[RowBlock, None, None]:
    """Every row of the export, sensor by sensor (request order), oldest first, in blocks.

    Closing this generator closes the store read in progress at once. A store failure is
    raised as SensorReadFailed (a RetryableError naming the sensor).
    """
    windows = request.windows
    for index, sensor in enumerate(sensors):
        try:
            if windows is None:
                yield from _raw(index, sensor, request, store)
            else:
                yield from _windows(index, sensor, request, *windows, store=store)
        except RetryableError as exc:
            raise SensorReadFailed(exc, sensor_id=sensor.id) from exc


def _raw(
    index: int, sensor: Sensor, request: ExportRequest, store: TimeSeriesStore
) -> Iterator[RowBlock]:
    stream = store.stream_range(sensor_id=sensor.id, start=request.start, end=request.end)
    try:
        for block in stream:
            yield row_block(index, block.times_ns, block.values, block.qualities)
    finally:
        close_stream(stream)


def _windows(
    index: int,
    sensor: Sensor,
    request: ExportRequest,
    every: Duration,
    function: str,
    *,
    store: TimeSeriesStore,
) -> Iterator[RowBlock]:
    """`function` per window, computed by GraphQL's own code, a slice of windows at a time.

    Slices end on window boundaries, so each window is computed from exactly the same
    observations (and days) as over the whole range; empty windows are left out (fill none).
    """
    size = SLICE_WINDOWS
    for start, end in time_slices(request.start, request.end, every, windows=size):
        windows = aggregate_windows(
            store=store,
            sensor_id=sensor.id,
            start=start,
            end=end,
            every=every,
            function=function,
            fill_mode="none",
            limit=size,
        )
        yield good_block(  # also when empty: one block per store call
            index,
            [(w.start - EPOCH) // _MICROSECOND * 1000 for w in windows],
            # fill "none" leaves empty windows out, so every window here has a value
            cast("list[float]", [w.value for w in windows]),
        )


def close_stream(stream: Iterator[object]) -> None:
    """Close a store stream (a generator, says the port) so its read stops at once."""
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def time_slices(
    start: datetime, end: datetime, every: Duration, *, windows: int
) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive ranges of at most `windows` windows, on boundaries."""
    total = window_count(start, end, every)
    for first in range(0, total, windows):
        low = start if first == 0 else _window_start(start, every, first)
        high = end if first + windows >= total else _window_start(start, every, first + windows)
        yield low, high


def _window_start(start: datetime, every: Duration, number: int) -> datetime:
    """The start of the `number`-th window counted from the one containing `start`."""
    if every.is_calendar:
        return calendar_start(calendar_key(start, every) + number, every)
    length = every.as_timedelta()
    return window_floor(start, every=length, offset=fixed_offset(every)) + number * length
