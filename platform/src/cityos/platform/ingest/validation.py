"""Per-reading validation against what the device declared."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cityos.platform.domain.model import Observation, Quality, Sensor
from cityos.platform.ports import Reading


@dataclass(frozen=True, slots=True)
class ReadingRejected:
    """Why one reading was refused (`code` is a short, stable label for metrics)."""

    code: str
    detail: str
    quantity: str | None


def accept_readings(
    readings: Sequence[Reading],
    *,
    sensors: Mapping[str, Sensor],
    received_at: datetime,
    max_future: timedelta,
    into: list[Observation],
    used: dict[str, Sensor],
) -> list[Reading]:
    """Append the observations of the readings that pass; return the others, in order.

    The hot path of ingestion: the same checks as `validate_reading`, which then tells why
    each returned reading is refused. `used` gets every sensor looked up, by id.
    """
    refused: list[Reading] = []
    latest = received_at + max_future  # reading.time - received_at > max_future: refused
    good = Quality.GOOD
    append = into.append
    last: str | None = None
    sensor: Sensor | None = None
    sensor_id, unit, low, high = "", "", None, None
    for reading in readings:
        quantity = reading.quantity
        if quantity != last or sensor is None:  # packs repeat one quantity: look it up once
            last = quantity
            sensor = sensors.get(quantity) if quantity is not None else None
            if sensor is None:
                refused.append(reading)
                continue
            sensor_id, unit, low, high = sensor.id, sensor.unit, sensor.valid_min, sensor.valid_max
            used[sensor_id] = sensor
        value = reading.value
        if (
            value - value != 0.0  # not finite (x - x is 0.0 only for finite x)
            or (unit and reading.unit is not None and reading.unit != unit)
            or (low is not None and value < low)
            or (high is not None and value > high)
            or reading.time > latest
        ):
            refused.append(reading)
            continue
        append(Observation(sensor_id, reading.time, float(value), good, received_at))
    return refused


def validate_reading(
    reading: Reading,
    *,
    sensors: Mapping[str, Sensor],
    received_at: datetime,
    max_future: timedelta,
) -> Observation | ReadingRejected:
    """Turn a decoded reading into an observation, or say why it is refused."""
    quantity = reading.quantity
    sensor = sensors.get(quantity) if quantity is not None else None
    if sensor is None:
        known = ", ".join(sorted(sensors)) or "none"
        return ReadingRejected(
            "unknown_quantity", f"quantity {quantity!r} is not declared (known: {known})", quantity
        )
    value = reading.value
    if not math.isfinite(value):
        return ReadingRejected("non_finite", f"value {value!r} is not a finite number", quantity)
    if sensor.unit and reading.unit is not None and reading.unit != sensor.unit:
        return ReadingRejected(
            "unit_mismatch",
            f"unit {reading.unit!r} but the sensor declares {sensor.unit!r}",
            quantity,
        )
    if (sensor.valid_min is not None and value < sensor.valid_min) or (
        sensor.valid_max is not None and value > sensor.valid_max
    ):
        return ReadingRejected(
            "out_of_range",
            f"value {value} outside the valid range [{sensor.valid_min}, {sensor.valid_max}]",
            quantity,
        )
    if reading.time - received_at > max_future:
        return ReadingRejected(
            "future_time",
            f"time {reading.time.isoformat()} is more than {max_future} ahead of receipt",
            quantity,
        )
    return Observation(
        sensor_id=sensor.id,
        time=reading.time,
        value=float(value),
        quality=Quality.GOOD,
        ingested_at=received_at,
    )
