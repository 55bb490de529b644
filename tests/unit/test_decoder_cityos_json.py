"""The cityos JSON payload decoder: happy paths, every error class, and properties."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.adapters.decoders.cityos_json import (
    MAX_READINGS,
    CityosJsonDecoder,
    create_decoder,
)
from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.domain.errors import PayloadError
from cityos.platform.domain.model import Device, Domain
from cityos.platform.ports import DecodeContext, DecodedPayload, PayloadDecoder

RECEIVED = datetime(2024, 8, 1, 3, 0, 0, 123000, tzinfo=UTC)
CTX = DecodeContext(
    device=Device(id="omaezaki-port", name="port", domain=Domain.DISASTER, payload_format="json"),
    sensors={},
    topic="cityos/v1/devices/omaezaki-port/up",
    received_at=RECEIVED,
)
DECODER = CityosJsonDecoder()


def decode(payload: bytes | str | Any) -> DecodedPayload:
    if isinstance(payload, str):
        payload = payload.encode()
    elif not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    return DECODER.decode(payload, CTX)


def payload_error(payload: bytes | str | Any) -> str:
    with pytest.raises(PayloadError) as info:
        decode(payload)
    return info.value.reason


def values(result: DecodedPayload) -> dict[str | None, float]:
    return {r.quantity: r.value for r in result.readings}


def problems(result: DecodedPayload) -> dict[str | None, str]:
    return {p.quantity: p.reason for p in result.problems}


# ---------------------------------------------------------------- registration


def test_entry_point_creates_the_decoder() -> None:
    decoder = plugins.load(plugins.DECODERS, "json")(Settings())
    assert isinstance(decoder, CityosJsonDecoder)
    assert isinstance(decoder, PayloadDecoder)
    assert decoder.format == "json"
    assert isinstance(create_decoder(Settings()), CityosJsonDecoder)


# ---------------------------------------------------------------- happy paths


def test_object_with_rfc3339_time() -> None:
    result = decode('{"time": "2024-08-01T12:00:00+09:00", "readings": {"tide_level": 1.25}}')
    assert result.problems == []
    (reading,) = result.readings
    assert reading.quantity == "tide_level"
    assert reading.value == 1.25
    assert type(reading.value) is float
    assert reading.unit is None
    assert reading.time == datetime(2024, 8, 1, 3, 0, tzinfo=UTC)
    assert reading.time.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-08-01T03:00:00Z", datetime(2024, 8, 1, 3, 0, tzinfo=UTC)),
        ("2000-01-01T09:00:00+09:00", datetime(2000, 1, 1, tzinfo=UTC)),
        ("2099-12-31T23:59:59.999999Z", datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2024-08-01t03:00:00z", datetime(2024, 8, 1, 3, 0, tzinfo=UTC)),
        ("2024-08-01 03:00:00+00:00", datetime(2024, 8, 1, 3, 0, tzinfo=UTC)),
        ("2024-08-01T03:00:00.5-02:30", datetime(2024, 8, 1, 5, 30, 0, 500000, tzinfo=UTC)),
        ("2024-08-01T03:00:00.123456789Z", datetime(2024, 8, 1, 3, 0, 0, 123456, tzinfo=UTC)),
        ("2024-08-01T12:00:00.250+09:00", datetime(2024, 8, 1, 3, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_rfc3339_variants(text: str, expected: datetime) -> None:
    (reading,) = decode({"time": text, "readings": {"q": 1}}).readings
    assert reading.time == expected
    assert reading.time.tzinfo is UTC


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (1722481200000, datetime(2024, 8, 1, 3, 0, tzinfo=UTC)),
        (1722481200123, datetime(2024, 8, 1, 3, 0, 0, 123000, tzinfo=UTC)),
        (1722481200123.5, datetime(2024, 8, 1, 3, 0, 0, 123500, tzinfo=UTC)),
    ],
)
def test_epoch_milliseconds(ms: float, expected: datetime) -> None:
    (reading,) = decode({"time": ms, "readings": {"q": 2}}).readings
    assert reading.time == expected


@pytest.mark.parametrize(
    "payload", ['{"readings": {"q": 1}}', '{"time": null, "readings": {"q": 1}}']
)
def test_missing_time_means_receive_time(payload: str) -> None:
    (reading,) = decode(payload).readings
    assert reading.time == RECEIVED


def test_array_of_entries_and_many_quantities() -> None:
    result = decode(
        [
            {"time": "2024-08-01T00:00:00Z", "readings": {"wind_speed": 7, "wind_direction": 270}},
            {"time": "2024-08-01T00:01:00Z", "readings": {"wind_speed": -0.0, "wave_height": 1e-3}},
            {"readings": {"air_temperature": 31.5}},
        ]
    )
    assert result.problems == []
    assert [(r.quantity, r.value, r.time.minute) for r in result.readings] == [
        ("wind_speed", 7.0, 0),
        ("wind_direction", 270.0, 0),
        ("wind_speed", -0.0, 1),
        ("wave_height", 0.001, 1),
        ("air_temperature", 31.5, RECEIVED.minute),
    ]


def test_utf8_bom_unknown_keys_and_odd_quantity_names_pass_through() -> None:
    payload = '\ufeff{"device": "x", "readings": {"Tide Level": 1, "潮位": 2}}'.encode()
    assert values(DECODER.decode(payload, CTX)) == {"Tide Level": 1.0, "潮位": 2.0}


# ---------------------------------------------------------------- whole-payload errors


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"readings": {"q": "\xe9"}}', "offset 20"),
        (b"", "broken JSON"),
        (b'{"readings": {"q": 1}', "line 1 column 22"),
        (b'{"readings": {"q": 1,}}', "broken JSON"),
        (b'{"readings":\n {"q": 01}}', "line 2"),
        (b"42", "not a number"),
        (b'"text"', "not a string"),
        (b"null", "not null"),
        (b"true", "not a boolean"),
        (b"[]", "empty JSON array"),
        (b'{"time": "2024-08-01T00:00:00Z"}', 'no "readings"'),
        (b'{"readings": [1, 2]}', '"readings" must be an object'),
        (b'{"readings": 3}', '"readings" must be an object'),
        (b'{"readings": {}}', "no readings"),
        (b'[{"readings": {"q": 1}}, 5]', "entry 1: expected a JSON object"),
        (b'[{"readings": {"q": 1}}, {"readings": null}]', 'entry 1: "readings" must be'),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"readings": {"q": ' + b"9" * 5000 + b"}}", "broken JSON"),
    ],
)
def test_whole_payload_errors(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        DECODER.decode(payload, CTX)
    assert reason in info.value.reason
    assert info.value.excerpt == payload[:200].decode("utf-8", "replace")


def test_too_many_readings_says_the_cap() -> None:
    many = {"readings": {f"q{i}": i for i in range(MAX_READINGS + 1)}}
    assert f"more than {MAX_READINGS}" in payload_error(many)
    split = [{"readings": {f"q{i}": i for i in range(MAX_READINGS // 2 + 1)}}] * 2
    assert "too many readings" in payload_error(split)
    assert len(decode({"readings": {f"q{i}": i for i in range(MAX_READINGS)}}).readings) == (
        MAX_READINGS
    )


def test_too_many_entries() -> None:
    assert "too many entries" in payload_error([{"readings": {}}] * (MAX_READINGS + 1))


# ---------------------------------------------------------------- per-reading problems


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('"12.5"', "not a string"),
        ("true", "not a boolean"),
        ("false", "not a boolean"),
        ("null", "not null"),
        ("[1]", "not an array"),
        ('{"v": 1}', "not an object"),
        ("NaN", "not finite"),
        ("Infinity", "not finite"),
        ("-Infinity", "not finite"),
        ("1e999", "not finite"),
        ("1" + "0" * 400, "out of range"),
    ],
)
def test_bad_values_are_problems_and_good_neighbours_survive(raw: str, reason: str) -> None:
    result = decode('{"readings": {"good": 1.5, "bad": ' + raw + ', "also_good": -2}}')
    assert values(result) == {"good": 1.5, "also_good": -2.0}
    assert reason in problems(result)["bad"]
    (problem,) = result.problems
    assert problem.excerpt.startswith('{"bad": ')


@pytest.mark.parametrize(
    ("time", "reason"),
    [
        ('"2024-08-01T12:00:00"', "has no offset"),
        ('"2024-08-01 12:00:00.5"', "has no offset"),
        ('"2024-08-01"', "not an RFC 3339 date-time"),
        ('"2024-08-01+09:00"', "not an RFC 3339 date-time"),
        ('"20240801T120000Z"', "not an RFC 3339 date-time"),
        ('"2024-W31-4T12:00:00Z"', "not an RFC 3339 date-time"),
        ('"yesterday"', "not an RFC 3339 date-time"),
        ('""', "not an RFC 3339 date-time"),
        ('"2024-02-30T00:00:00Z"', "not a valid date-time"),
        ('"2024-08-01T25:00:00Z"', "not a valid date-time"),
        ('"2024-08-01T12:00:00+24:00"', "not a valid date-time"),
        ('"２０２４-08-01T12:00:00Z"', "not an RFC 3339 date-time"),
        ('"1999-12-31T23:59:59.999Z"', "outside 2000-01-01..2100-01-01"),
        ('"2100-01-01T09:00:00+09:00"', "outside 2000-01-01..2100-01-01"),
        ('"0001-01-01T00:00:00+09:00"', "outside 2000-01-01..2100-01-01"),
        ('"9999-12-31T23:59:59-09:00"', "outside 2000-01-01..2100-01-01"),
        ("1722481200", "outside 2000-01-01..2100-01-01"),
        ("1722481200000000", "outside 2000-01-01..2100-01-01"),
        ("-1", "outside"),
        ("1e999", "not finite"),
        ("NaN", "not finite"),
        ("true", "not a boolean"),
        ("[2024]", "not an array"),
        ('{"t": 1}', "not an object"),
    ],
)
def test_bad_time_makes_each_reading_of_its_entry_a_problem(time: str, reason: str) -> None:
    payload = (
        '[{"time": ' + time + ', "readings": {"a": 1, "b": 2}},'
        ' {"time": 1722481200000, "readings": {"c": 3}}]'
    )
    result = decode(payload)
    assert values(result) == {"c": 3.0}
    assert set(problems(result)) == {"a", "b"}
    assert all(reason in p.reason for p in result.problems)


def test_quantity_names_of_insane_length_are_problems() -> None:
    long_name = "q" * 129
    result = decode({"readings": {"": 1, long_name: 2, "ok": 3}})
    assert values(result) == {"ok": 3.0}
    assert [p.quantity for p in result.problems] == [None, "q" * 128]
    assert all("1..128 characters" in p.reason for p in result.problems)


def test_excerpts_are_short() -> None:
    result = decode({"readings": {"q": "x" * 10_000}})
    assert len(result.problems[0].excerpt) <= 200


# ---------------------------------------------------------------- properties


def _check(result: DecodedPayload) -> None:
    for reading in result.readings:
        assert type(reading.value) is float
        assert math.isfinite(reading.value)
        assert reading.time.utcoffset() == timedelta(0)
        assert isinstance(reading.quantity, str)
    for problem in result.problems:
        assert problem.reason
        assert len(problem.excerpt) <= 200


def _decode_or_payload_error(payload: bytes) -> None:
    try:
        result = DECODER.decode(payload, CTX)
    except PayloadError as exc:
        reason = exc.reason
        assert reason
        return
    _check(result)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_ever_raise_payload_error(payload: bytes) -> None:
    _decode_or_payload_error(payload)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["2024-08-01T00:00:00Z", "2024-08-01T09:00:00+09:00", "2024-08-01"]),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_only_ever_raises_payload_error(document: Any) -> None:
    _decode_or_payload_error(json.dumps(document, allow_nan=True).encode())


times = st.one_of(
    st.none(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=9))])).map(
        datetime.isoformat
    ),
    st.datetimes().map(datetime.isoformat),
    st.text(max_size=30),
    json_values,
)
entries = st.fixed_dictionaries(
    {"readings": st.dictionaries(st.text(max_size=140), json_values, max_size=6)},
    optional={"time": times},
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(entries, st.lists(entries, max_size=4)))
def test_near_valid_payloads_decode_to_finite_aware_readings(document: Any) -> None:
    payload = json.dumps(document, allow_nan=True).encode()
    try:
        result = DECODER.decode(payload, CTX)
    except PayloadError:
        return
    _check(result)
    entries_list = document if isinstance(document, list) else [document]
    total = sum(len(entry["readings"]) for entry in entries_list)
    assert len(result.readings) + len(result.problems) == total


numbers = st.one_of(
    st.floats(),
    st.integers(min_value=-(2**1100), max_value=2**1100),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
plain_entries = st.fixed_dictionaries(
    {"readings": st.dictionaries(st.text(max_size=140), numbers, max_size=6)},
    optional={"time": times},
)


@settings(max_examples=300, deadline=None)
@given(plain_entries)
def test_one_object_decodes_as_the_same_entry_in_an_array(document: Any) -> None:
    # A single object takes a fast path; as the only entry of an array it takes the careful
    # one. Both must find the same readings and the same problems.
    def outcome(payload: Any) -> Any:
        try:
            result = decode(json.dumps(payload, allow_nan=True).encode())
        except PayloadError:
            return "payload error"
        return (
            [(r.quantity, r.time, r.value, r.unit, dict(r.metadata)) for r in result.readings],
            [(p.reason, p.excerpt, p.quantity) for p in result.problems],
        )

    assert outcome(document) == outcome([document])
