"""Device registration rules and MQTT credentials."""

from __future__ import annotations

import pytest

from cityos.platform.devices.credentials import hash_password, verify_password
from cityos.platform.devices.service import (
    SensorSpec,
    build_device,
    parse_sensor_spec,
    sensor_spec,
)
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import Domain, GeoPoint


def test_sensor_spec_forms() -> None:
    assert parse_sensor_spec("tide_level:m") == SensorSpec("tide_level", "m")
    assert parse_sensor_spec("wbgt:Cel:-10:45") == SensorSpec("wbgt", "Cel", -10.0, 45.0)
    assert parse_sensor_spec("wind_speed:m/s::80") == SensorSpec("wind_speed", "m/s", None, 80.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tide_level", "expected QUANTITY:UNIT"),
        ("Tide:m", "malformed quantity"),
        ("tide:", "unit must be"),
        ("tide:m:1", "expected QUANTITY:UNIT"),
        ("tide:m:x:1", "not a number"),
        ("tide:m:5:1", "MIN is greater"),
        ("tide:m:nan:1", "finite"),
    ],
)
def test_bad_sensor_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_sensor_spec(spec)


@pytest.mark.parametrize("unit", ["=1+1", "+cmd", "-2", "@SUM(A1)", "=HYPERLINK(x)"])
def test_units_that_a_spreadsheet_would_run_as_a_formula_are_refused(unit: str) -> None:
    with pytest.raises(InvalidInput, match="may not start with =, \\+, - or @"):
        sensor_spec("tide_level", unit)
    with pytest.raises(InvalidInput, match="formula"):
        parse_sensor_spec(f"tide_level:{unit}:0:1")


@pytest.mark.parametrize("unit", ["\tm", "\rm", "m\t"])
def test_units_with_tabs_or_carriage_returns_are_refused(unit: str) -> None:
    with pytest.raises(InvalidInput, match="unit must be"):
        sensor_spec("tide_level", unit)


@pytest.mark.parametrize("unit", ["m", "Cel", "m/s", "%", "1/min", "mm/h", "%RH", "dB"])
def test_ordinary_units_are_accepted(unit: str) -> None:
    assert sensor_spec("tide_level", unit).unit == unit


def _build(**overrides: object) -> object:
    arguments: dict[str, object] = {
        "device_id": "omaezaki-port",
        "name": "御前崎港 潮位計",
        "domain": Domain.DISASTER,
        "payload_format": "json",
        "sensors": [SensorSpec("tide_level", "m", -3, 5)],
        "location": GeoPoint(34.5955, 138.2261),
        "known_formats": {"json"},
    }
    arguments.update(overrides)
    return build_device(**arguments)  # type: ignore[arg-type]


def test_build_device_makes_sensor_ids_and_inherits_domain() -> None:
    device, sensors = _build()  # type: ignore[misc]
    assert device.id == "omaezaki-port"
    assert [s.id for s in sensors] == ["omaezaki-port.tide_level"]
    assert sensors[0].domain is Domain.DISASTER
    assert sensors[0].location == GeoPoint(34.5955, 138.2261)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device_id": "Bad_Id"}, "malformed device id"),
        ({"payload_format": "senml"}, "not available"),
        ({"sensors": []}, "at least one"),
        ({"sensors": [SensorSpec("a", "m"), SensorSpec("a", "m")]}, "once per device"),
        ({"location": GeoPoint(95, 0)}, "location out of range"),
        ({"name": " "}, "device name"),
    ],
)
def test_build_device_rejects(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _build(**overrides)


def test_password_hash_is_mosquitto_pbkdf2_format() -> None:
    stored = hash_password("correct horse")
    kind, iterations = stored.split("$")[1:3]
    assert (kind, iterations) == ("7", "20000")
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("correct horse", "$6$garbage")
    assert not verify_password("x", "not a hash")
