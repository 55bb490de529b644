"""parse_export_request: every export parameter checked once, with the field that is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityos.platform.config import ExportsSettings
from cityos.platform.domain.errors import InvalidInput, LimitExceeded
from cityos.platform.durations import Duration, parse_duration
from cityos.platform.exports.request import (
    ExportFormat,
    ExportRequest,
    parse_export_request,
    window_count,
)

LIMITS = ExportsSettings(max_sensors=3, max_range_days=400)
FROM, TO = "2026-11-01T00:00:00+09:00", "2026-12-01T00:00:00+09:00"


def params(**given: str | list[str]) -> dict[str, list[str]]:
    base: dict[str, list[str]] = {
        "sensor": ["omaezaki-port.tide_level"],
        "from": [FROM],
        "to": [TO],
    }
    for name, value in given.items():
        base[name.rstrip("_")] = value if isinstance(value, list) else [value]
    return base


def test_a_full_request_is_parsed_in_utc_with_sensors_in_order() -> None:
    request = parse_export_request(
        params(
            sensor=["b-dev.wind_speed", "a-dev.tide_level"],
            every="1mo",
            aggregate="MEAN",
            format="Parquet",
        ),
        limits=LIMITS,
    )
    assert request == ExportRequest(
        sensor_ids=("b-dev.wind_speed", "a-dev.tide_level"),
        start=datetime(2026, 10, 31, 15, tzinfo=UTC),
        end=datetime(2026, 11, 30, 15, tzinfo=UTC),
        every=Duration(1, "mo"),
        aggregate="mean",
        format=ExportFormat.PARQUET,
    )
    assert request.start.tzinfo is UTC


def test_format_defaults_to_csv_and_empty_values_count_as_absent() -> None:
    request = parse_export_request(params(every="", aggregate=""), limits=LIMITS)
    assert request.format is ExportFormat.CSV
    assert request.every is None
    assert request.aggregate is None
    assert request.windows is None


def test_every_and_aggregate_go_together_in_a_request() -> None:
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    hourly = ExportRequest(("a-dev.x",), start, end, Duration(1, "h"), "max", ExportFormat.CSV)
    assert hourly.windows == (Duration(1, "h"), "max")
    for every, aggregate in ((Duration(1, "h"), None), (None, "mean")):
        with pytest.raises(ValueError, match="both given or neither"):
            ExportRequest(("a-dev.x",), start, end, every, aggregate, ExportFormat.CSV)


def test_query_params_are_canonical() -> None:
    request = parse_export_request(
        params(
            sensor=["b-dev.wind_speed", "a-dev.tide_level"],
            from_="2026-10-31T15:00:00.5Z",
            every="1h",
            aggregate="max",
            format="zip",
        ),
        limits=LIMITS,
    )
    assert request.query_params() == [
        ("sensor", "b-dev.wind_speed"),
        ("sensor", "a-dev.tide_level"),
        ("from", "2026-11-01T00:00:00.500+09:00"),
        ("to", "2026-12-01T00:00:00+09:00"),
        ("every", "1h"),
        ("aggregate", "max"),
        ("format", "zip"),
    ]


moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 1), timezones=st.just(UTC)
)


@given(
    start=moments,
    span=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=399)),
    every=st.sampled_from([None, "30s", "1h", "1d", "1w", "1mo", "1y", "1fy"]),
    fmt=st.sampled_from(list(ExportFormat)),
)
def test_query_params_parse_back_to_the_same_request(
    start: datetime, span: timedelta, every: str | None, fmt: ExportFormat
) -> None:
    end = min(start + span, datetime(2099, 12, 31, tzinfo=UTC))
    if every == "30s" and span > timedelta(days=100):
        every = "1h"
    request = ExportRequest(
        sensor_ids=("a-dev.x", "b-dev.y"),
        start=start,
        end=end,
        every=None if every is None else parse_duration(every),
        aggregate=None if every is None else "last",
        format=fmt,
    )
    query: dict[str, list[str]] = {}
    for name, value in request.query_params():
        query.setdefault(name, []).append(value)
    assert parse_export_request(query, limits=LIMITS) == request


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        (params(from_=TO, to=FROM), "to", "`to` must be after `from`"),
        (params(to=FROM), "to", "`to` must be after `from`"),
        (params(to="2028-01-01T00:00:00+09:00"), "to", "maximum of 400 days"),
        (params(from_="yesterday"), "from", "not an RFC 3339 date-time"),
        (params(from_="2026-11-01"), "from", "not an RFC 3339 date-time"),
        (params(from_="2026-11-01T00:00:00"), "from", "has no offset"),
        (params(to="2026-13-01T00:00:00Z"), "to", "not a valid date-time"),
        (params(from_="1969-12-31T23:59:59Z"), "from", "outside 1970-01-01..2100-01-01"),
        (params(to="2100-01-01T00:00:00Z"), "to", "outside 1970-01-01..2100-01-01"),
        (params(from_=[FROM, FROM]), "from", "given 2 times"),
        ({"from": [FROM], "to": [TO]}, "sensor", "at least one `sensor`"),
        (params(sensor=[f"d{i}-x.q" for i in range(4)]), "sensor", "at most 3 per export"),
        (params(sensor=["a-dev.x", "b-dev.y", "a-dev.x"]), "sensor", "given twice"),
        (params(sensor="not-a-sensor"), "sensor", "malformed sensor id"),
        (params(sensor="Bad.Id"), "sensor", "malformed sensor id"),
        (params(format="xlsx"), "format", "unknown format 'xlsx'"),
        (params(every="1h"), "aggregate", "`every` needs `aggregate`"),
        (params(aggregate="mean"), "every", "`aggregate` needs `every`"),
        (params(every="1h", aggregate="median"), "aggregate", "unknown aggregate 'median'"),
        (params(every="90", aggregate="mean"), "every", "malformed duration"),
        (params(every="0s", aggregate="mean"), "every", "malformed duration"),
        (params(every="101y", aggregate="mean"), "every", "longer than 100 years"),
        (params(every="40000d", aggregate="mean"), "every", "longer than 100 years"),
        (
            params(to="2027-12-01T00:00:00+09:00", every="1s", aggregate="mean"),
            "every",
            "more than 10000000 per sensor",
        ),
        ({**params(), "sensors": ["a-dev.x"]}, "sensors", "unknown parameter 'sensors'"),
    ],
)
def test_bad_input_is_refused_with_its_field(
    query: dict[str, list[str]], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_export_request(query, limits=LIMITS)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_limits_are_limit_errors() -> None:
    for too_much in (
        params(to="2028-01-01T00:00:00+09:00"),
        params(sensor=[f"d{i}-x.q" for i in range(4)]),
    ):
        with pytest.raises(LimitExceeded):
            parse_export_request(too_much, limits=LIMITS)


def test_the_configured_limits_apply() -> None:
    wide = ExportsSettings(max_sensors=10, max_range_days=4000)
    request = parse_export_request(
        params(sensor=[f"d{i}-x.q" for i in range(10)], from_="2016-01-01T00:00:00Z"),
        limits=wide,
    )
    assert len(request.sensor_ids) == 10


def test_window_count_counts_partial_windows_at_both_ends() -> None:
    start = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
    assert window_count(start, start + timedelta(hours=2), Duration(1, "h")) == 3
    assert window_count(start, start + timedelta(days=40), Duration(1, "mo")) == 2


def test_formats_know_their_media_types_and_extensions() -> None:
    assert {f.value: (f.media_type, f.extension) for f in ExportFormat} == {
        "csv": ("text/csv; charset=utf-8", "csv"),
        "parquet": ("application/vnd.apache.parquet", "parquet"),
        "ndjson": ("application/x-ndjson", "ndjson"),
        "zip": ("application/zip", "zip"),
    }
