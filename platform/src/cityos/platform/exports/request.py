"""What an export asks for: parsed and checked once, for the HTTP route and the CLI alike."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cityos.platform.config import ExportsSettings
from cityos.platform.domain.errors import InvalidInput, LimitExceeded
from cityos.platform.domain.ids import split_sensor_id
from cityos.platform.durations import Duration, parse_duration
from cityos.platform.observations.windows import (
    calendar_window_count,
    fixed_offset,
    fixed_window_count,
)
from cityos.platform.ports import AGGREGATE_FUNCTIONS
from cityos.platform.timefmt import format_rfc3339, parse_rfc3339

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""No export reaches before this (times are epoch nanoseconds in every store)."""
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Nor after this: a `to` further out is a typo, not a plan."""
MAX_WINDOWS_PER_SENSOR = 10_000_000
"""Most `every` windows one sensor's aggregated export may span (1 s windows: ~115 days)."""
PARAMETERS = ("sensor", "from", "to", "every", "aggregate", "format")
"""The query parameters of `GET /exports/observations`, in canonical order."""


class ExportFormat(enum.StrEnum):
    """The file formats an export is written in (`zip`: CSV with manifest and README)."""

    CSV = "csv"
    PARQUET = "parquet"
    NDJSON = "ndjson"
    ZIP = "zip"

    @property
    def media_type(self) -> str:
        """The Content-Type of a file in this format."""
        return _MEDIA_TYPES[self]

    @property
    def extension(self) -> str:
        """The file-name extension (without the dot)."""
        return self.value


_MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
    ExportFormat.NDJSON: "application/x-ndjson",
    ExportFormat.ZIP: "application/zip",
}


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """One export: sensors (in order), [start, end) in UTC, optional windows, file format."""

    sensor_ids: tuple[str, ...]
    start: datetime
    end: datetime
    every: Duration | None
    aggregate: str | None
    format: ExportFormat

    def __post_init__(self) -> None:
        if (self.every is None) != (self.aggregate is None):
            raise ValueError("an export's `every` and `aggregate` are both given or neither")

    @property
    def windows(self) -> tuple[Duration, str] | None:
        """(every, aggregate) when rows are windows; None when they are raw observations."""
        if self.every is None or self.aggregate is None:
            return None
        return self.every, self.aggregate

    def query_params(self) -> list[tuple[str, str]]:
        """The canonical HTTP query parameters (`sensor` repeated), times in +09:00."""
        params = [("sensor", sensor_id) for sensor_id in self.sensor_ids]
        params += [("from", format_rfc3339(self.start)), ("to", format_rfc3339(self.end))]
        if self.windows is not None:
            every, aggregate = self.windows
            params += [("every", str(every)), ("aggregate", aggregate)]
        params.append(("format", self.format.value))
        return params


def parse_export_request(
    params: Mapping[str, Sequence[str]], *, limits: ExportsSettings
) -> ExportRequest:
    """Validate an export's query parameters; InvalidInput (with `field`) says what is wrong."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise InvalidInput(
            f"unknown parameter {unknown[0][:40]!r}; expected {', '.join(PARAMETERS)}",
            field=unknown[0][:40],
        )
    sensor_ids = _sensor_ids(params.get("sensor", ()), max_sensors=limits.max_sensors)
    start = _time(params, "from")
    end = _time(params, "to")
    if end <= start:
        raise InvalidInput("`to` must be after `from`", field="to")
    if end - start > timedelta(days=limits.max_range_days):
        raise LimitExceeded(
            f"time range of {(end - start).days} days exceeds the maximum of "
            f"{limits.max_range_days} days; split the export",
            field="to",
        )
    every_text, aggregate_text = _single(params, "every"), _single(params, "aggregate")
    if every_text is not None and aggregate_text is None:
        raise InvalidInput("`every` needs `aggregate` (mean, min, max, ...)", field="aggregate")
    if aggregate_text is not None and every_text is None:
        raise InvalidInput("`aggregate` needs `every` (e.g. 1h, 1d, 1mo)", field="every")
    every = None if every_text is None else parse_duration(every_text)
    aggregate = None if aggregate_text is None else _aggregate(aggregate_text)
    if every is not None:
        _check_windows(start, end, every)
    return ExportRequest(
        sensor_ids=sensor_ids,
        start=start,
        end=end,
        every=every,
        aggregate=aggregate,
        format=_format(_single(params, "format")),
    )


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The one value of a parameter given at most once; None when absent or empty."""
    values = [value for value in params.get(name, ()) if value != ""]
    if len(values) > 1:
        raise InvalidInput(f"`{name}` given {len(values)} times; give it once", field=name)
    return values[0] if values else None


def _sensor_ids(values: Sequence[str], *, max_sensors: int) -> tuple[str, ...]:
    if not values:
        raise InvalidInput("give at least one `sensor`", field="sensor")
    if len(values) > max_sensors:
        raise LimitExceeded(
            f"{len(values)} sensors asked for; at most {max_sensors} per export", field="sensor"
        )
    seen: set[str] = set()
    for sensor_id in values:
        try:
            split_sensor_id(sensor_id)
        except InvalidInput as exc:
            raise InvalidInput(str(exc), field="sensor") from None
        if sensor_id in seen:
            raise InvalidInput(f"sensor {sensor_id!r} given twice", field="sensor")
        seen.add(sensor_id)
    return tuple(values)


def _time(params: Mapping[str, Sequence[str]], name: str) -> datetime:
    text = _single(params, name)
    if text is None:
        raise InvalidInput(f"`{name}` is required (RFC 3339 with an offset)", field=name)
    return parse_rfc3339(text, field=name, earliest=EARLIEST, latest=LATEST)


def _aggregate(text: str) -> str:
    function = text.strip().lower()
    if function not in AGGREGATE_FUNCTIONS:
        raise InvalidInput(
            f"unknown aggregate {text[:40]!r}; expected one of "
            f"{', '.join(sorted(AGGREGATE_FUNCTIONS))}",
            field="aggregate",
        )
    return function


def _format(text: str | None) -> ExportFormat:
    if text is None:
        return ExportFormat.CSV
    try:
        return ExportFormat(text.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"unknown format {text[:40]!r}; expected one of "
            f"{', '.join(f.value for f in ExportFormat)}",
            field="format",
        ) from None


def window_count(start: datetime, end: datetime, every: Duration) -> int:
    """How many `every` windows (aligned in Asia/Tokyo) [start, end) touches."""
    if every.is_calendar:
        return calendar_window_count(start, end, every)
    length = every.as_timedelta()
    return fixed_window_count(start, end, every=length, offset=fixed_offset(every))


def _check_windows(start: datetime, end: datetime, every: Duration) -> None:
    count = window_count(start, end, every)  # parse_duration refused every > 100 years
    if count > MAX_WINDOWS_PER_SENSOR:
        raise LimitExceeded(
            f"every={every} gives {count} windows in this range, more than "
            f"{MAX_WINDOWS_PER_SENSOR} per sensor; use a longer `every` or a shorter range",
            field="every",
        )
