"""Identifier rules of CONTRACT.md: device ids, quantities and sensor ids."""

from __future__ import annotations

import re

from cityos.platform.domain.errors import InvalidInput

DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
QUANTITY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def is_device_id(value: str) -> bool:
    """Tell whether `value` is a well-formed device id."""
    return _DEVICE_ID_RE.fullmatch(value) is not None


def is_quantity(value: str) -> bool:
    """Tell whether `value` is a well-formed quantity name."""
    return _QUANTITY_RE.fullmatch(value) is not None


def check_device_id(value: str) -> str:
    """Return `value` if it is a well-formed device id, else raise InvalidInput."""
    if not is_device_id(value):
        raise InvalidInput(
            f"malformed device id {value[:80]!r}: expected {DEVICE_ID_PATTERN}", field="deviceId"
        )
    return value


def check_quantity(value: str) -> str:
    """Return `value` if it is a well-formed quantity, else raise InvalidInput."""
    if not is_quantity(value):
        raise InvalidInput(
            f"malformed quantity {value[:80]!r}: expected {QUANTITY_PATTERN}", field="quantity"
        )
    return value


def make_sensor_id(device_id: str, quantity: str) -> str:
    """Build the sensor id `<device_id>.<quantity>`."""
    return f"{device_id}.{quantity}"


def split_sensor_id(sensor_id: str) -> tuple[str, str]:
    """Split and check a sensor id into (device_id, quantity); raise InvalidInput if malformed."""
    device_id, dot, quantity = sensor_id.partition(".")
    if not dot or not is_device_id(device_id) or not is_quantity(quantity):
        raise InvalidInput(
            f"malformed sensor id {sensor_id[:80]!r}: expected <device_id>.<quantity>",
            field="sensorId",
        )
    return device_id, quantity
