"""Pure window arithmetic: JST alignment, calendar windows from daily partials, fill, downsampling.

Every store computes fixed windows (`TimeSeriesStore.aggregate`); everything here is plain
Python over its output, so calendar grouping, fill and downsampling are identical on every
store.

Alignment (all in Asia/Tokyo, UTC+9 without summer time since 1951):
- `Nd`, and `Ns`/`Nm`/`Nh` windows: counted from 1970-01-01 00:00 JST, so days start at
  midnight JST and any length dividing a day (`1h`, `15m`, `6h`, `30s`) falls on its natural
  boundaries; lengths that do not divide a day (`7h`, `7s`) step on from that midnight.
- `Nw`: counted from Monday 1970-01-05 00:00 JST, so weeks start on Monday at midnight.
- `Nmo`: months whose index since January of year 0 is a multiple of N, so `1mo` starts on the
  1st, `3mo` on Jan/Apr/Jul/Oct 1st, `6mo` on Jan/Jul 1st (any N dividing 12 starts in January).
- `Ny`: January 1st of years divisible by N; `Nfy`: April 1st of fiscal years (named by the
  year they start in) divisible by N.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.durations import Duration
from cityos.platform.ports import WindowAggregate
from cityos.platform.timefmt import JST

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
JST_MIDNIGHT_OFFSET = timedelta(hours=-9)  # 1970-01-01 00:00 JST, relative to the epoch
MONDAY_OFFSET = timedelta(days=3, hours=15)  # 1970-01-05 (a Monday) 00:00 JST

FILL_MODES = ("none", "null", "previous", "linear")

# Partial aggregates of whole days needed to compute each function over calendar windows.
PARTIALS: Mapping[str, frozenset[str]] = {
    "mean": frozenset({"sum", "count"}),
    "sum": frozenset({"sum"}),
    "count": frozenset({"count"}),
    "min": frozenset({"min"}),
    "max": frozenset({"max"}),
    "first": frozenset({"first"}),
    "last": frozenset({"last"}),
}
# Calendar units as (months per unit, first month of the year they are aligned to, 0-based).
_CALENDAR_UNITS = {"mo": (1, 0), "y": (12, 0), "fy": (12, 3)}


@dataclass(frozen=True, slots=True)
class WindowValue:
    """One window of an aggregated series: its start and value (None when filled with null)."""

    start: datetime
    value: float | None


# ---------------------------------------------------------------- fixed windows


def fixed_offset(duration: Duration) -> timedelta:
    """The `offset` that aligns fixed windows of this duration in Asia/Tokyo (see module doc)."""
    every = duration.as_timedelta()
    anchor = MONDAY_OFFSET if duration.unit == "w" else JST_MIDNIGHT_OFFSET
    return anchor % every


def window_floor(moment: datetime, *, every: timedelta, offset: timedelta) -> datetime:
    """The start of the `offset + k * every` window containing `moment`."""
    return moment - ((moment - EPOCH - offset) % every)


def fixed_window_count(
    start: datetime, end: datetime, *, every: timedelta, offset: timedelta
) -> int:
    """How many windows from the one containing `start` start before `end`."""
    first = window_floor(start, every=every, offset=offset)
    return math.ceil((end - first) / every)


def fixed_starts(
    start: datetime, end: datetime, *, every: timedelta, offset: timedelta
) -> list[datetime]:
    """Starts of every window from the one containing `start` up to (not including) `end`."""
    first = window_floor(start, every=every, offset=offset)
    count = fixed_window_count(start, end, every=every, offset=offset)
    return [first + k * every for k in range(count)]


# ---------------------------------------------------------------- calendar windows


def _calendar_shape(duration: Duration) -> tuple[int, int]:
    """(months per window, alignment month) of a calendar duration."""
    try:
        months, shift = _CALENDAR_UNITS[duration.unit]
    except KeyError:
        raise InvalidInput(f"{duration} is not a calendar duration", field="every") from None
    return months * duration.count, shift


def _month_index(moment: datetime) -> int:
    local = moment.astimezone(JST)
    return local.year * 12 + local.month - 1


def _month_start(index: int) -> datetime:
    year, month0 = divmod(index, 12)
    return datetime(year, month0 + 1, 1, tzinfo=JST).astimezone(UTC)


def calendar_key(moment: datetime, duration: Duration) -> int:
    """The number of the calendar window containing `moment` (consecutive windows differ by 1)."""
    months, shift = _calendar_shape(duration)
    return (_month_index(moment) - shift) // months


def calendar_start(key: int, duration: Duration) -> datetime:
    """The start (UTC) of calendar window number `key`."""
    months, shift = _calendar_shape(duration)
    return _month_start(key * months + shift)


def calendar_starts(start: datetime, end: datetime, duration: Duration) -> list[datetime]:
    """Starts of the calendar windows from the one containing `start` up to `end` (exclusive)."""
    starts: list[datetime] = []
    key = calendar_key(start, duration)
    while (moment := calendar_start(key, duration)) < end:
        starts.append(moment)
        key += 1
    return starts


def calendar_window_count(start: datetime, end: datetime, duration: Duration) -> int:
    """How many calendar windows `calendar_starts` would list (without listing them)."""
    if end <= start:
        return 0
    last = calendar_key(end - timedelta(microseconds=1), duration)
    return last - calendar_key(start, duration) + 1


def combine_days(
    days: Sequence[WindowAggregate], *, duration: Duration, function: str
) -> list[WindowAggregate]:
    """Combine the partials of whole JST days (oldest first) into calendar windows."""
    groups: dict[int, list[Mapping[str, float]]] = {}
    for day in days:
        groups.setdefault(calendar_key(day.start, duration), []).append(day.values)
    combined: list[WindowAggregate] = []
    for key, parts in groups.items():
        combined.append(
            WindowAggregate(
                start=calendar_start(key, duration),
                values={function: _combine(parts, function)},
            )
        )
    return combined


def _combine(parts: Sequence[Mapping[str, float]], function: str) -> float:
    """One function's value over several days' partials (oldest first)."""
    if function == "mean":
        return math.fsum(p["sum"] for p in parts) / math.fsum(p["count"] for p in parts)
    if function in ("sum", "count"):
        return math.fsum(p[function] for p in parts)
    if function == "min":
        return min(p["min"] for p in parts)
    if function == "max":
        return max(p["max"] for p in parts)
    if function == "first":
        return parts[0]["first"]
    if function == "last":
        return parts[-1]["last"]
    raise InvalidInput(f"unknown aggregate function {function!r}", field="aggregate")


# ---------------------------------------------------------------- fill


def fill(
    starts: Sequence[datetime], values: Mapping[datetime, float], *, mode: str
) -> list[WindowValue]:
    """Windows at `starts` with their values; empty ones skipped or filled as `mode` says.

    none: skip; null: value None; previous: the last non-empty value before it (None before the
    first); linear: interpolated in time between the neighbouring non-empty windows (None
    outside them).
    """
    if mode == "none":
        return [WindowValue(t, values[t]) for t in starts if t in values]
    if mode == "null":
        return [WindowValue(t, values.get(t)) for t in starts]
    if mode == "previous":
        filled: list[WindowValue] = []
        carried: float | None = None
        for t in starts:
            carried = values.get(t, carried)
            filled.append(WindowValue(t, carried))
        return filled
    if mode == "linear":
        return _linear(starts, values)
    raise InvalidInput(f"unknown fill mode {mode!r}; expected one of {FILL_MODES}", field="fill")


def _linear(starts: Sequence[datetime], values: Mapping[datetime, float]) -> list[WindowValue]:
    known = [t for t in starts if t in values]
    filled: list[WindowValue] = []
    before: datetime | None = None
    position = 0  # index into `known` of the next non-empty window at or after t
    for t in starts:
        if t in values:
            filled.append(WindowValue(t, values[t]))
            before = t
            position += 1
            continue
        after = known[position] if position < len(known) else None
        if before is None or after is None:
            filled.append(WindowValue(t, None))
            continue
        share = (t - before) / (after - before)
        low, high = values[before], values[after]
        filled.append(WindowValue(t, low + (high - low) * share))
    return filled


# ---------------------------------------------------------------- downsampling


def downsample_every(start: datetime, end: datetime, *, max_points: int) -> timedelta:
    """Window length for at most `max_points` windows over [start, end): whole seconds, ≥ 1 s."""
    if max_points < 1:
        raise InvalidInput(f"`maxPoints` must be at least 1 (got {max_points})", field="maxPoints")
    span_us = (end - start) // timedelta(microseconds=1)
    seconds = max(1, -(-span_us // (max_points * 1_000_000)))  # ceiling, in whole seconds
    return timedelta(seconds=seconds)


def aligned_to(moment: datetime, every: timedelta) -> timedelta:
    """The `offset` that makes a window of length `every` start exactly at `moment`."""
    return (moment - EPOCH) % every


def values_by_start(windows: Iterable[WindowAggregate], function: str) -> dict[datetime, float]:
    """Map window start → the value of one function (windows without it are left out)."""
    return {w.start: w.values[function] for w in windows if function in w.values}
