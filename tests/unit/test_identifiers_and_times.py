"""Identifier rules, time parsing/formatting and cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityos.platform.domain.errors import InvalidInput, LimitExceeded
from cityos.platform.domain.ids import (
    is_device_id,
    is_quantity,
    make_sensor_id,
    split_sensor_id,
)
from cityos.platform.ingest.topics import device_of_topic, uplink_topic
from cityos.platform.paging import check_first, decode_cursor, encode_cursor
from cityos.platform.timefmt import format_rfc3339, parse_rfc3339


@pytest.mark.parametrize("good", ["omaezaki-port", "ab", "a" * 63, "0-0"])
def test_device_ids_accepted(good: str) -> None:
    assert is_device_id(good)


@pytest.mark.parametrize(
    "bad", ["a", "-ab", "Omaezaki", "a_b", "a" * 64, "a.b", "a/b", "a+", "ａｂ", "ab\n", ""]
)
def test_device_ids_rejected(bad: str) -> None:
    assert not is_device_id(bad)


@pytest.mark.parametrize("bad", ["", "1a", "Tide", "tide-level", "a" * 64, "tide level"])
def test_quantities_rejected(bad: str) -> None:
    assert not is_quantity(bad)


def test_sensor_id_round_trip() -> None:
    sensor_id = make_sensor_id("omaezaki-port", "tide_level")
    assert sensor_id == "omaezaki-port.tide_level"
    assert split_sensor_id(sensor_id) == ("omaezaki-port", "tide_level")


@pytest.mark.parametrize("bad", ["omaezaki-port", "x.tide", "omaezaki-port.Tide", "a.b.c", ""])
def test_malformed_sensor_ids_raise(bad: str) -> None:
    with pytest.raises(InvalidInput, match="malformed sensor id"):
        split_sensor_id(bad)


def test_topics() -> None:
    assert uplink_topic("omaezaki-port") == "cityos/v1/devices/omaezaki-port/up"
    assert device_of_topic("cityos/v1/devices/omaezaki-port/up") == "omaezaki-port"
    for bad in [
        "cityos/v1/devices//up",
        "cityos/v1/devices/a/b/up",
        "cityos/v1/devices/Bad/up",
        "cityos/v2/devices/abc/up",
        "cityos/v1/devices/abc/down",
        "cityos/v1/devices/+/up",
    ]:
        assert device_of_topic(bad) is None


def test_parse_rfc3339_requires_offset() -> None:
    assert parse_rfc3339("2026-11-28T09:00:00+09:00") == datetime(2026, 11, 28, 0, tzinfo=UTC)
    assert parse_rfc3339("2026-11-28T00:00:00Z") == datetime(2026, 11, 28, 0, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="without an offset"):
        parse_rfc3339("2026-11-28T09:00:00")
    for bad in [
        "2026-11-28",
        "yesterday",
        "x" * 100,
        "2026-11-28T16+09:00",
        "20261129T00+0900",
        "2026-W48-6T00:00:00Z",
        "2026-11-28T00:00:00+0900",
        "2026-11-28T00:00:00\x00+09:00",
    ]:
        with pytest.raises(InvalidInput, match="not an RFC 3339 date-time"):
            parse_rfc3339(bad)
    with pytest.raises(InvalidInput, match="not a valid date-time"):
        parse_rfc3339("2026-13-01T00:00:00+09:00")
    for out_of_range in ["0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-09:00"]:
        with pytest.raises(InvalidInput, match=r"outside 1678-01-01\.\.2262-01-01"):
            parse_rfc3339(out_of_range)


def test_parse_rfc3339_cuts_digits_beyond_microseconds() -> None:
    assert parse_rfc3339("2026-11-28t00:00:00.123456789z") == datetime(
        2026, 11, 28, 0, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_rfc3339("2026-11-28 09:00:00.5+09:00") == datetime(
        2026, 11, 28, 0, 0, 0, 500000, tzinfo=UTC
    )


def test_format_rfc3339_always_uses_plus_nine() -> None:
    # Asia/Tokyo had summer time in 1948-51 and local mean time before 1888.
    assert format_rfc3339(datetime(1950, 7, 1, tzinfo=UTC)) == "1950-07-01T09:00:00+09:00"
    assert format_rfc3339(datetime(1880, 1, 1, tzinfo=UTC)) == "1880-01-01T09:00:00+09:00"


def test_format_rfc3339_uses_tokyo_offset() -> None:
    assert format_rfc3339(datetime(2026, 11, 28, 0, tzinfo=UTC)) == "2026-11-28T09:00:00+09:00"
    assert (
        format_rfc3339(datetime(2026, 11, 28, 0, 0, 0, 123000, tzinfo=UTC))
        == "2026-11-28T09:00:00.123+09:00"
    )


@given(
    st.datetimes(
        timezones=st.just(UTC), min_value=datetime(1678, 1, 1), max_value=datetime(2261, 12, 31)
    )
)
def test_time_format_round_trips(value: datetime) -> None:
    assert parse_rfc3339(format_rfc3339(value)) == value


def test_cursor_round_trip_and_errors() -> None:
    cursor = encode_cursor("sensor", "omaezaki-port.tide_level")
    assert decode_cursor("sensor", cursor) == "omaezaki-port.tide_level"
    with pytest.raises(InvalidInput, match="does not belong"):
        decode_cursor("obs", cursor)
    with pytest.raises(InvalidInput, match="malformed cursor"):
        decode_cursor("sensor", "!!!not base64!!!")


def test_first_is_capped_loudly() -> None:
    assert check_first(1000, cap=1000) == 1000
    with pytest.raises(LimitExceeded, match="at most 1000"):
        check_first(1001, cap=1000)
    with pytest.raises(InvalidInput, match="negative"):
        check_first(-1, cap=1000)
