"""The SenML (RFC 8428) decoder: the RFC's examples as oracles, base fields, units, properties."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.adapters.decoders.senml import (
    MAX_DEPTH,
    MAX_RECORDS,
    SenmlDecoder,
    create_decoder,
    utc_from_seconds,
)
from cityos.adapters.decoders.units import CONVERTIBLE_UNITS, conversion
from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.domain.errors import PayloadError
from cityos.platform.domain.model import Device, Domain, GeoPoint, Sensor
from cityos.platform.ports import DecodeContext, DecodedPayload, PayloadDecoder

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "payloads" / "senml"
RECEIVED = datetime(2024, 8, 1, 3, 0, 0, 250000, tzinfo=UTC)
DECODER = SenmlDecoder()
EX1_NAME = "urn:dev:ow:10e2073a01080063"


def sensor(quantity: str, unit: str) -> Sensor:
    return Sensor(f"dev.{quantity}", "dev", quantity, unit, Domain.DISASTER, quantity)


def context(*sensors: Sensor) -> DecodeContext:
    return DecodeContext(
        device=Device(id="dev", name="dev", domain=Domain.DISASTER, payload_format="senml"),
        sensors={s.quantity: s for s in sensors},
        topic="cityos/v1/devices/dev/up",
        received_at=RECEIVED,
    )


CTX = context(
    sensor("voltage", "V"),
    sensor("current", "A"),
    sensor("humidity", "%RH"),
    sensor("tide_level", "m"),
    sensor("air_temperature", "Cel"),
)


def decode(payload: Any, ctx: DecodeContext = CTX) -> DecodedPayload:
    if isinstance(payload, str):
        payload = payload.encode()
    elif not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    return DECODER.decode(payload, ctx)


def payload_error(payload: Any, ctx: DecodeContext = CTX) -> str:
    with pytest.raises(PayloadError) as info:
        decode(payload, ctx)
    return info.value.reason


def epoch(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def rows(result: DecodedPayload) -> list[tuple[str | None, datetime, float, str | None]]:
    return [(r.quantity, r.time, r.value, r.unit) for r in result.readings]


def reasons(result: DecodedPayload) -> list[str]:
    return [p.reason for p in result.problems]


# ---------------------------------------------------------------- registration


def test_entry_point_creates_the_decoder() -> None:
    decoder = plugins.load(plugins.DECODERS, "senml")(Settings())
    assert isinstance(decoder, SenmlDecoder)
    assert isinstance(decoder, PayloadDecoder)
    assert decoder.format == "senml"
    assert isinstance(create_decoder(Settings()), SenmlDecoder)


# ---------------------------------------------------------------- the RFC's examples


def test_ex3_resolves_to_the_generated_oracle() -> None:
    oracle = json.loads((SAMPLES / "rfc8428_ex3.gen.resolved.json").read_bytes())
    result = DECODER.decode((SAMPLES / "rfc8428_ex3.json").read_bytes(), CTX)
    assert result.problems == []
    bn = "urn:dev:ow:10e2073a0108006:"
    assert [(bn + str(r.quantity), r.unit, r.time, r.value) for r in result.readings] == [
        (o["n"], o["u"], epoch(o["t"]), o["v"]) for o in oracle
    ]
    assert result.readings[1].time == datetime(2010, 6, 8, 18, 1, 11, 1000, tzinfo=UTC)


def test_the_resolved_oracle_itself_decodes_to_the_same_values() -> None:
    oracle = json.loads((SAMPLES / "rfc8428_ex3.gen.resolved.json").read_bytes())
    ctx = context(*(sensor(o["n"], o["u"]) for o in oracle))
    result = DECODER.decode((SAMPLES / "rfc8428_ex3.gen.resolved.json").read_bytes(), ctx)
    assert rows(result) == [(o["n"], epoch(o["t"]), o["v"], o["u"]) for o in oracle]


def test_ex1_single_datapoint_without_time_is_now() -> None:
    # no bn: the quantity is the whole name (CONTRACT.md), so the sensor is named like that
    ctx = context(sensor(EX1_NAME, "Cel"))
    result = DECODER.decode((SAMPLES / "rfc8428_ex1.json").read_bytes(), ctx)
    assert rows(result) == [(EX1_NAME, RECEIVED, 23.1, "Cel")]


def test_ex2_relative_time_zero_is_the_receive_time() -> None:
    result = DECODER.decode((SAMPLES / "rfc8428_ex2.json").read_bytes(), CTX)
    assert rows(result) == [("voltage", RECEIVED, 120.1, "V"), ("current", RECEIVED, 1.2, "A")]


def test_ex4_records_without_a_name_map_to_the_sensor_with_their_unit() -> None:
    result = DECODER.decode((SAMPLES / "rfc8428_ex4.json").read_bytes(), CTX)
    offsets = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 91, 92]
    values = [21.2, 21.3, 21.4, 21.4, 21.5, 21.5, 21.5, 21.6, 21.7, 21.5, 21.5, 21.5]
    assert rows(result) == [
        ("humidity", epoch(1320067464 + t), v, "%RH") for t, v in zip(offsets, values, strict=True)
    ]


def test_ex10_absolute_times() -> None:
    ctx = context(sensor(EX1_NAME, "Cel"))
    result = DECODER.decode((SAMPLES / "rfc8428_ex10.json").read_bytes(), ctx)
    assert rows(result) == [
        (EX1_NAME, epoch(1276020076), 23.5, "Cel"),
        (EX1_NAME, epoch(1276020091), 23.6, "Cel"),
    ]


def test_pre_rfc_draft_form_is_accepted_as_legacy() -> None:
    result = DECODER.decode((SAMPLES / "senml-spec_example_senml.json").read_bytes(), CTX)
    assert result.problems == []
    assert rows(result) == [("voltage", epoch(1276020076), 120.1, "V")] + [
        ("current", epoch(1276020076 - 5 + i), v, "A")
        for i, v in enumerate([1.2, 1.3, 1.4, 1.5, 1.6, 1.7])
    ]


# ---------------------------------------------------------------- base fields and times


def test_base_fields_apply_until_overridden() -> None:
    result = decode(
        [
            {"bn": "x:", "bt": 1722470400, "bv": 10, "bu": "m", "n": "tide_level", "v": 1},
            {"n": "tide_level", "t": 60, "v": -2},
            {"bv": 0, "n": "tide_level", "t": 120, "v": 3},
        ]
    )
    assert rows(result) == [
        ("tide_level", epoch(1722470400), 11.0, "m"),
        ("tide_level", epoch(1722470460), 8.0, "m"),
        ("tide_level", epoch(1722470520), 3.0, "m"),
    ]


def test_repeated_names_follow_base_field_changes() -> None:
    # records after the first of a name take a fast path; base changes in records of other
    # names must still apply to them
    result = decode(
        [
            {"bu": "mm", "n": "tide_level", "v": 1000.0},
            {"n": "tide_level", "v": 2000.0},
            {"bu": "m", "n": "rainfall", "v": 0.0},
            {"n": "tide_level", "v": 4.0},
            {"bv": 1, "n": "rainfall", "v": 0.0},
            {"n": "tide_level", "v": 5.0},
            {"bn": "a b", "bv": 0, "n": "rainfall", "v": 0.0},
            {"n": "tide_level", "v": 7.0},
        ]
    )
    assert [(r.quantity, r.value, r.unit) for r in result.readings] == [
        ("tide_level", 1.0, "m"),
        ("tide_level", 2.0, "m"),
        ("rainfall", 0.0, "m"),
        ("tide_level", 4.0, "m"),
        ("rainfall", 1.0, "m"),
        ("tide_level", 6.0, "m"),
    ]
    assert [(p.quantity, "not a valid SenML name" in p.reason) for p in result.problems] == [
        ("rainfall", True),
        ("tide_level", True),
    ]


def test_relative_times_are_relative_to_the_receive_time() -> None:
    result = decode([{"n": "tide_level", "t": -30.5, "v": 1}, {"n": "tide_level", "v": 2}])
    assert [r.time for r in result.readings] == [RECEIVED - timedelta(seconds=30.5), RECEIVED]
    assert all(r.time.tzinfo is UTC for r in result.readings)


def test_relative_limit_is_on_the_resolved_time() -> None:
    # bt absolute + negative t: absolute; 2**28 - 1 is relative (years ahead: a problem later)
    assert decode([{"bt": 2**28, "n": "tide_level", "t": -1, "v": 1}]).readings[0].time == (
        RECEIVED + timedelta(seconds=2**28 - 1)
    )


def test_sum_only_is_a_reading_of_the_sum_and_v_with_s_keeps_the_sum() -> None:
    ctx = context(sensor("energy", "Wh"))
    result = decode([{"bs": 100, "n": "energy", "s": 5}, {"n": "energy", "v": 2, "s": 7}], ctx)
    assert [(r.value, dict(r.metadata)) for r in result.readings] == [
        (105.0, {"senml": "sum"}),
        (2.0, {"sum": 107.0}),
    ]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"n": "tide_level", "vs": "high"}, "non-numeric value"),
        ({"n": "tide_level", "vb": True}, "non-numeric value"),
        ({"n": "tide_level", "vd": "AAE="}, "non-numeric value"),
        ({"n": "tide_level", "v": "1.5"}, "non-numeric value"),
        ({"n": "tide_level", "v": True}, "non-numeric value"),
        ({"n": "tide_level", "v": 1, "vs": "x"}, "more than one value field"),
        ({"n": "tide_level"}, "has no value"),
        ({"n": "tide_level", "s": "x"}, "s must be a finite number"),
        ({"n": "tide_level", "v": 1e308, "bv": 1e308}, "not finite"),
        ({"n": "tide_level", "t": "now", "v": 1}, "t must be a finite number"),
        ({"n": "tide_level", "t": 946684799, "v": 1}, "outside 2000-01-01..2100-01-01"),
        ({"n": "tide_level", "t": 4102444800, "v": 1}, "outside"),
        ({"n": "tide_level", "t": -(2**40), "v": 1}, "outside 2000..2100"),
        ({"n": 5, "v": 1}, "n must be a string"),
        ({"n": None, "v": 1}, "n must be a string"),
        ({"n": "", "v": 1}, "1..128 characters"),
        ({"n": "q" * 129, "v": 1}, "1..128 characters"),
        ({"n": "tide level", "v": 1}, "not a valid SenML name"),
        ({"n": "tide_level", "u": 3, "v": 1}, "u must be a string"),
        ({"v": 1}, "no name (n) and no unit"),
        ({"u": "lx", "v": 1}, "no sensor of the device has unit 'lx'"),
        ({"n": "tide_level", "u": "s", "v": 1}, "unit 's' cannot be converted to the sensor's"),
        ({"n": "tide_level", "u": "furlong", "v": 1}, "cannot be converted"),
    ],
)
def test_record_problems_spare_their_neighbours(record: dict[str, Any], reason: str) -> None:
    result = decode([{"n": "voltage", "v": 230}, record, {"n": "current", "v": 0.5}])
    assert [r.quantity for r in result.readings] == ["voltage", "current"]
    (problem,) = result.problems
    assert reason in problem.reason
    assert problem.excerpt.startswith("{")


def test_non_numeric_records_carry_the_contract_reason() -> None:
    (problem,) = decode([{"n": "tide_level", "vs": "high"}]).problems
    assert problem.reason.startswith("non-numeric value")
    assert problem.quantity == "tide_level"


def test_nameless_record_with_a_unit_shared_by_two_sensors_says_which() -> None:
    ctx = context(sensor("tide_level", "m"), sensor("wave_height", "m"))
    (problem,) = decode([{"u": "m", "v": 1}], ctx).problems
    assert "several sensors have unit 'm': tide_level, wave_height" in problem.reason


def test_unknown_quantity_is_left_to_the_pipeline() -> None:
    assert rows(decode([{"n": "rainfall", "u": "mm", "v": 3}])) == [
        ("rainfall", RECEIVED, 3.0, "mm")
    ]


# ---------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("unit", "value", "sensor_unit", "expected"),
    [
        ("K", 300.0, "Cel", 26.850000000000023),
        ("Cel", 23.1, "K", 296.25),
        ("mm", 1250, "m", 1.25),
        ("cm", 125, "m", 1.25),
        ("km", 1.5, "m", 1500.0),
        ("hPa", 1013.25, "Pa", 101325.0),
        ("Pa", 101325, "hPa", 1013.25),
        ("kWh", 1.5, "J", 5_400_000.0),
        ("km/h", 36, "m/s", 10.0),
        ("mA", 500, "A", 0.5),
        ("min", 2, "s", 120.0),
    ],
)
def test_exact_unit_conversions(unit: str, value: float, sensor_unit: str, expected: float) -> None:
    ctx = context(sensor("q", sensor_unit))
    (reading,) = decode([{"n": "q", "u": unit, "v": value}], ctx).readings
    assert reading.value == pytest.approx(expected, rel=1e-15)
    assert reading.unit == sensor_unit


def test_record_without_unit_is_in_the_sensor_unit() -> None:
    (reading,) = decode([{"n": "air_temperature", "v": 31.5}]).readings
    assert (reading.value, reading.unit) == (31.5, "Cel")


def test_conversion_table_is_consistent() -> None:
    for a in CONVERTIBLE_UNITS:
        for b in CONVERTIBLE_UNITS:
            there = conversion(a, b)
            if there is None:
                assert conversion(b, a) is None
                continue
            back = conversion(b, a)
            assert back is not None
            assert back.apply(there.apply(12.5)) == pytest.approx(12.5, rel=1e-12)
    assert conversion("m", "s") is None
    assert conversion("Cel", "Cel") is not None


# ---------------------------------------------------------------- location


def test_lat_lon_records_set_the_location_and_are_not_readings() -> None:
    result = decode(
        [
            {"bn": "urn:dev:x:", "n": "lat", "u": "lat", "v": 34.638},
            {"n": "lon", "u": "lon", "v": 138.128},
            {"n": "tide_level", "v": 0.4},
        ]
    )
    assert result.location == GeoPoint(lat=34.638, lon=138.128)
    assert [r.quantity for r in result.readings] == ["tide_level"]
    assert result.problems == []


def test_nameless_lat_lon_by_unit_and_last_one_wins() -> None:
    result = decode([{"u": "lat", "v": 1}, {"u": "lon", "v": 2}, {"u": "lat", "v": 3}])
    assert result.location == GeoPoint(lat=3, lon=2)


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([{"n": "lat", "v": 34.6}], "lat without lon"),
        ([{"n": "lat", "v": 91}, {"n": "lon", "v": 138}], "lat 91.0 is outside -90..90"),
        ([{"n": "lat", "v": 34}, {"n": "lon", "v": -180.5}], "outside -180..180"),
        ([{"n": "lat", "v": 34}, {"n": "lon", "u": "Cel", "v": 1}], "must be in unit 'lon'"),
        ([{"n": "lat", "vs": "34N"}, {"n": "lon", "v": 1}], "non-numeric value"),
    ],
)
def test_bad_location_is_a_problem_and_no_location(records: list[Any], reason: str) -> None:
    result = decode(records)
    assert result.location is None
    assert result.readings == []
    assert any(reason in r for r in reasons(result))
    assert len(result.problems) == len(records)


# ---------------------------------------------------------------- whole-pack errors


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff[]", "not UTF-8"),
        (b"[{", "broken JSON"),
        (b"", "broken JSON"),
        (b"42", "not a number"),
        (b'{"bn": "x"}', 'pre-RFC draft form {"e": [...]}'),
        (b"[]", "empty SenML pack"),
        (b'[{"n": "q", "v": 1}, 3]', "record 1: expected a JSON object"),
        (b'[{"n": "q", "v": 1, "ct_": "x"}]', "must-understand field 'ct_'"),
        (b'{"e": [{"v": 1}], "x_": 1}', "must-understand field 'x_'"),
        (b'[{"bn": 5, "v": 1}]', "record 0: bn must be a string"),
        (b'[{"bu": null, "v": 1}]', "bu must be a string"),
        (b'[{"v": 1}, {"bt": "now", "v": 1}]', "record 1: bt must be a finite number"),
        (b'[{"bt": NaN, "v": 1}]', "bt must be a finite number"),
        (b'[{"bv": Infinity, "v": 1}]', "bv must be a finite number"),
        (b'[{"bver": 11, "v": 1}]', "bver 11 is not a version"),
        (b'[{"bver": 10, "v": 1}, {"bver": 5, "v": 1}]', "same bver"),
        (b'[{"bver": true, "v": 1}]', "not a version"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'[{"n": "q", "v": 1, "x": ' + b"[" * 40 + b"]" * 40 + b"}]", "nested deeper than 32"),
    ],
)
def test_whole_pack_errors(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        DECODER.decode(payload, CTX)
    assert reason in info.value.reason
    assert info.value.excerpt == payload[:200].decode("utf-8", "replace")


def test_depth_cap_is_not_fooled_by_bracket_counts_that_match_a_flat_pack() -> None:
    # One `[` and as many `{` as array items, as in a flat pack of records, yet 41 deep.
    nested = '{"a": ' * 40 + "1" + "}" * 40
    payload = "[" + ", ".join([nested] + ["1"] * 39) + "]"
    assert "nested deeper than 32" in payload_error(payload.encode())
    flat = [{"n": "tide_level", "v": 1, "t": -k} for k in range(MAX_DEPTH + 5)]
    assert len(decode(flat).readings) == MAX_DEPTH + 5


def test_depth_cap_ignores_brackets_in_strings_and_allows_the_cap() -> None:
    deep = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    ok = '[{"n": "tide_level", "v": 1, "x": ' + deep + ', "y": "' + "[" * 99 + '"}]'
    assert len(decode(ok).readings) == 1


def test_record_cap() -> None:
    assert f"at most {MAX_RECORDS}" in payload_error([{"v": 1}] * (MAX_RECORDS + 1))
    assert len(decode([{"n": "tide_level", "v": 1}] * MAX_RECORDS).readings) == MAX_RECORDS


def test_unknown_fields_without_underscore_are_ignored() -> None:
    assert len(decode([{"n": "tide_level", "v": 1, "anExtension": {"a": [1]}}]).readings) == 1


# ---------------------------------------------------------------- properties


def _check(result: DecodedPayload, records: int | None = None) -> None:
    for reading in result.readings:
        assert type(reading.value) is float
        assert math.isfinite(reading.value)
        assert reading.time.utcoffset() == timedelta(0)
    for problem in result.problems:
        assert problem.reason
        assert len(problem.excerpt) <= 200
    if result.location is not None:
        assert -90 <= result.location.lat <= 90
        assert -180 <= result.location.lon <= 180


def _location_records(records: list[Any]) -> int:
    return sum(
        1
        for r in records
        if isinstance(r, dict)
        and (r.get("n") in ("lat", "lon") or ("n" not in r and r.get("u") in ("lat", "lon")))
    )


def _decode_or_payload_error(payload: bytes) -> DecodedPayload | None:
    try:
        result = DECODER.decode(payload, CTX)
    except PayloadError as exc:
        reason = exc.reason
        assert reason
        return None
    _check(result)
    return result


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_ever_raise_payload_error(payload: bytes) -> None:
    _decode_or_payload_error(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_only_ever_raises_payload_error(document: Any) -> None:
    _decode_or_payload_error(json.dumps(document, allow_nan=True).encode())


numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
records = st.fixed_dictionaries(
    {},
    optional={
        "bn": st.sampled_from(["", "urn:dev:x:", "a b"]) | st.text(max_size=5),
        "bt": numbers | st.sampled_from([1722470400, 1722470400.5]),
        "bu": st.sampled_from(["m", "mm", "Cel", "K", "lat", "lon", "%RH", "V"]),
        "bv": numbers,
        "bs": numbers,
        "n": st.sampled_from(["tide_level", "voltage", "lat", "lon", "air_temperature", ""])
        | st.text(max_size=6)
        | json_values,
        "u": st.sampled_from(["m", "mm", "Cel", "K", "lat", "lon", "A", "x"]) | json_values,
        "t": numbers | json_values,
        "v": numbers | json_values,
        "vs": st.text(max_size=5),
        "vb": st.booleans(),
        "s": numbers,
        "ut": numbers,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.lists(records, min_size=1, max_size=8))
def test_every_record_is_a_reading_a_problem_or_a_location(pack: list[Any]) -> None:
    result = _decode_or_payload_error(json.dumps(pack, allow_nan=True).encode())
    if result is None:
        return
    accounted = len(result.readings) + len(result.problems)
    located = _location_records(pack)
    # every location record is either a problem or part of the location (the last of each
    # coordinate wins, so earlier ones are superseded, not lost silently)
    assert len(pack) - located <= accounted <= len(pack)
    if result.location is None:
        assert accounted == len(pack)


hot_records = st.fixed_dictionaries(
    {"n": st.sampled_from(["tide_level", "voltage", "air_temperature"]), "v": st.floats()},
    optional={
        "t": st.floats()
        | st.integers(min_value=-(2**60), max_value=2**60)
        | st.sampled_from([0, 1, -1, 0.001, 2**28, 2**53, -(2**53), 4102444800, 946684799.5]),
    },
)
hot_packs = st.tuples(
    st.sampled_from([{}, {"bt": 1722470400}, {"bt": 1722470400.25}, {"bt": -1722470400.0}])
    | st.fixed_dictionaries({"bt": st.floats(allow_nan=False, allow_infinity=False)}),
    st.lists(hot_records, min_size=1, max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(hot_packs)
def test_the_hot_path_resolves_records_as_the_careful_path_does(pack: Any) -> None:
    # Records of only n, v and t take the hot path once their name was seen; with an extra
    # (ignored) "ut" field every record takes the careful path. Both must agree.
    base, records = pack
    hot = [{**base, **records[0]}, *records[1:]]
    careful = [{**record, "ut": 0} for record in hot]

    def outcome(records: list[Any]) -> Any:
        try:
            result = decode(json.dumps(records, allow_nan=True).encode())
        except PayloadError as exc:
            return exc.reason
        return (
            [(r.quantity, r.time, r.value, r.unit) for r in result.readings],
            [(p.reason, p.quantity) for p in result.problems],
        )

    assert outcome(hot) == outcome(careful)


@settings(max_examples=2000, deadline=None)
@given(
    st.floats(min_value=946684800, max_value=4102444799.999999)
    | st.integers(min_value=946684800_000_000, max_value=4102444799_999_999).map(
        lambda us: us / 1e6
    )
    | st.integers(min_value=946684800_000_000, max_value=4102444799_999_998).map(
        lambda us: (us * 2 + 1) / 2e6  # half a microsecond past, as nearly as a float can be
    )
)
def test_times_resolve_as_epoch_plus_timedelta(seconds: float) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    assert utc_from_seconds(seconds) == expected
    assert decode([{"bt": seconds, "n": "tide_level", "v": 1.0}]).readings[0].time == expected
