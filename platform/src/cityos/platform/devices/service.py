"""Registering devices and their sensors, changing them, rotating and revoking credentials."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cityos.platform.devices.credentials import generate_password, hash_password
from cityos.platform.domain.errors import CityosError, InvalidInput, NotFound
from cityos.platform.domain.ids import check_device_id, check_quantity, make_sensor_id
from cityos.platform.domain.model import Device, Domain, GeoPoint, Sensor
from cityos.platform.ports import Catalog

MAX_NAME_LENGTH = 200
MAX_UNIT_LENGTH = 32
FORMULA_STARTS = ("=", "+", "-", "@")
"""What a unit may not start with: spreadsheets run such a CSV cell as a formula (exports).
(Tab, CR and every other control character fail the unit's `isprintable` check already.)"""


class DeviceRevoked(CityosError):
    """The device is revoked: it gets no new credentials."""


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """A sensor as declared on the command line: `QUANTITY:UNIT[:MIN:MAX]`."""

    quantity: str
    unit: str
    valid_min: float | None = None
    valid_max: float | None = None


@dataclass(frozen=True, slots=True)
class NewDeviceCredentials:
    """What `devices add` prints once: the MQTT username and the plain password."""

    device_id: str
    mqtt_username: str
    mqtt_password: str


def _bound(text: str, what: str, spec: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"sensor {spec!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInput(f"sensor {spec!r}: {what} must be finite")
    return value


def sensor_spec(
    quantity: str, unit: str, valid_min: float | None = None, valid_max: float | None = None
) -> SensorSpec:
    """A validated sensor declaration (quantity and unit syntax, finite ordered bounds)."""
    label = f"{quantity}:{unit}"
    check_quantity(quantity)
    if not unit or len(unit) > MAX_UNIT_LENGTH or not unit.isprintable() or " " in unit:
        raise InvalidInput(f"sensor {label!r}: unit must be a SenML unit symbol such as m or Cel")
    if unit.startswith(FORMULA_STARTS):
        raise InvalidInput(
            f"sensor {label!r}: unit may not start with =, +, - or @ "
            "(a spreadsheet opening an export would run it as a formula)"
        )
    for what, bound in (("MIN", valid_min), ("MAX", valid_max)):
        if bound is not None and not math.isfinite(bound):
            raise InvalidInput(f"sensor {label!r}: {what} must be finite")
    if valid_min is not None and valid_max is not None and valid_min > valid_max:
        raise InvalidInput(f"sensor {label!r}: MIN is greater than MAX")
    return SensorSpec(quantity=quantity, unit=unit, valid_min=valid_min, valid_max=valid_max)


def parse_sensor_spec(spec: str) -> SensorSpec:
    """Parse `QUANTITY:UNIT[:MIN:MAX]` (MIN or MAX may be empty)."""
    parts = spec.split(":")
    if len(parts) not in (2, 4):
        raise InvalidInput(f"sensor {spec!r}: expected QUANTITY:UNIT or QUANTITY:UNIT:MIN:MAX")
    low = _bound(parts[2], "MIN", spec) if len(parts) == 4 else None
    high = _bound(parts[3], "MAX", spec) if len(parts) == 4 else None
    return sensor_spec(parts[0], parts[1], low, high)


def build_device(
    *,
    device_id: str,
    name: str,
    domain: Domain,
    payload_format: str,
    sensors: Sequence[SensorSpec],
    location: GeoPoint | None,
    known_formats: Collection[str],
) -> tuple[Device, list[Sensor]]:
    """Validate a device registration and build its domain values."""
    check_device_id(device_id)
    if not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"device name must be 1..{MAX_NAME_LENGTH} characters")
    if payload_format not in known_formats:
        known = ", ".join(sorted(known_formats)) or "none"
        raise InvalidInput(
            f"payload format {payload_format!r} is not available (installed: {known})"
        )
    if not sensors:
        raise InvalidInput("a device needs at least one --sensor QUANTITY:UNIT")
    quantities = [spec.quantity for spec in sensors]
    if len(set(quantities)) != len(quantities):
        raise InvalidInput("each quantity may be declared once per device")
    if location is not None and not (-90 <= location.lat <= 90 and -180 <= location.lon <= 180):
        raise InvalidInput("location out of range: lat must be in [-90, 90], lon in [-180, 180]")
    device = Device(
        id=device_id,
        name=name,
        domain=domain,
        payload_format=payload_format,
        location=location,
        created_at=datetime.now(UTC),
    )
    return device, [
        Sensor(
            id=make_sensor_id(device_id, spec.quantity),
            device_id=device_id,
            quantity=spec.quantity,
            unit=spec.unit,
            domain=domain,
            name=f"{name} {spec.quantity}",
            location=location,
            valid_min=spec.valid_min,
            valid_max=spec.valid_max,
        )
        for spec in sensors
    ]


def register_device(
    *, catalog: Catalog, device: Device, sensors: Sequence[Sensor]
) -> NewDeviceCredentials:
    """Store a new device with a fresh MQTT password (kept only as a hash)."""
    password = generate_password()
    catalog.add_device(device, sensors, credential_hash=hash_password(password))
    return NewDeviceCredentials(
        device_id=device.id, mqtt_username=device.id, mqtt_password=password
    )


@dataclass(frozen=True, slots=True)
class DeviceChanges:
    """What `devices update` changes; `sensors` declare sensors in full (added or changed)."""

    name: str | None = None
    location: GeoPoint | None = None
    sensors: Sequence[SensorSpec] = ()
    retire: Sequence[str] = ()


def _check_changes(changes: DeviceChanges) -> None:
    if (
        changes.name is None
        and changes.location is None
        and not (changes.sensors or changes.retire)
    ):
        raise InvalidInput("nothing to change: give --name, --lat/--lon, --sensor or --retire")
    if changes.name is not None and (
        not changes.name.strip() or len(changes.name) > MAX_NAME_LENGTH
    ):
        raise InvalidInput(f"device name must be 1..{MAX_NAME_LENGTH} characters")
    point = changes.location
    if point is not None and not (-90 <= point.lat <= 90 and -180 <= point.lon <= 180):
        raise InvalidInput("location out of range: lat must be in [-90, 90], lon in [-180, 180]")
    declared = [spec.quantity for spec in changes.sensors]
    retired = [check_quantity(quantity) for quantity in changes.retire]
    if len(set(declared)) != len(declared) or len(set(retired)) != len(retired):
        raise InvalidInput("each quantity may be given once per option")
    if both := sorted(set(declared) & set(retired)):
        raise InvalidInput(f"{', '.join(both)}: given to both --sensor and --retire")


def _require_device(catalog: Catalog, device_id: str) -> Device:
    device = catalog.get_device(device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r} (see `cityos devices list`)")
    return device


def update_device(
    *, catalog: Catalog, device_id: str, changes: DeviceChanges
) -> tuple[Device, list[Sensor]]:
    """Change a device's name, location or sensors; return the device and all its sensors."""
    _check_changes(changes)
    old = _require_device(catalog, device_id)
    device = replace(
        old,
        name=old.name if changes.name is None else changes.name,
        location=old.location if changes.location is None else changes.location,
    )
    current = {sensor.quantity: sensor for sensor in catalog.sensors_of_device(device_id)}
    if unknown := sorted(set(changes.retire) - set(current)):
        raise InvalidInput(f"device {device_id!r} has no sensor {', '.join(unknown)} to retire")
    changed: dict[str, Sensor] = {}
    if device.name != old.name or device.location != old.location:
        for quantity, sensor in current.items():  # sensors follow their device
            renamed = sensor.name == f"{old.name} {quantity}"
            changed[quantity] = replace(
                sensor,
                name=f"{device.name} {quantity}" if renamed else sensor.name,
                location=device.location if device.location != old.location else sensor.location,
            )
    for spec in changes.sensors:
        existing = changed.get(spec.quantity, current.get(spec.quantity))
        if existing is None:
            changed[spec.quantity] = Sensor(
                id=make_sensor_id(device_id, spec.quantity),
                device_id=device_id,
                quantity=spec.quantity,
                unit=spec.unit,
                domain=device.domain,
                name=f"{device.name} {spec.quantity}",
                location=device.location,
                valid_min=spec.valid_min,
                valid_max=spec.valid_max,
            )
            continue
        if existing.unit != spec.unit:
            raise InvalidInput(
                f"sensor {existing.id!r} measures in {existing.unit!r}; its unit cannot change "
                "(stored readings use it)"
            )
        changed[spec.quantity] = replace(
            existing, valid_min=spec.valid_min, valid_max=spec.valid_max, retired=False
        )
    for quantity in changes.retire:
        changed[quantity] = replace(changed.get(quantity, current[quantity]), retired=True)
    catalog.update_device(device, list(changed.values()))
    return device, catalog.sensors_of_device(device_id)


def rotate_credentials(*, catalog: Catalog, device_id: str) -> NewDeviceCredentials:
    """Give a device a new MQTT password (the old one stops working at the next sync)."""
    device = _require_device(catalog, device_id)
    if device.revoked:
        raise DeviceRevoked(f"device {device_id!r} is revoked; a revoked device gets no password")
    password = generate_password()
    catalog.set_credential_hash(device_id, hash_password(password))
    return NewDeviceCredentials(
        device_id=device_id, mqtt_username=device_id, mqtt_password=password
    )


def revoke_device(*, catalog: Catalog, device_id: str) -> bool:
    """Revoke a device (ingestion refuses it; sync drops it); False if it already was."""
    device = _require_device(catalog, device_id)
    catalog.revoke_device(device_id)
    return not device.revoked
