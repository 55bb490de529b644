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
    for bad in ["2026-11-28", "yesterday", "2026-13-01T00:00:00+09:00", "x" * 100]:
        with pytest.raises(InvalidInput):
            parse_rfc3339(bad)


def test_format_rfc3339_uses_tokyo_offset() -> None:
    assert format_rfc3339(datetime(2026, 11, 28, 0, tzinfo=UTC)) == "2026-11-28T09:00:00+09:00"
    assert (
        format_rfc3339(datetime(2026, 11, 28, 0, 0, 0, 123000, tzinfo=UTC))
        == "2026-11-28T09:00:00.123+09:00"
    )


@given(
    st.datetimes(
        timezones=st.just(UTC), min_value=datetime(1900, 1, 2), max_value=datetime(9999, 1, 1)
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
