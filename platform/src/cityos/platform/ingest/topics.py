"""MQTT topic names of CONTRACT.md."""

from __future__ import annotations

from cityos.platform.domain.ids import is_device_id

UPLINK_FILTER = "cityos/v1/devices/+/up"
_PREFIX = "cityos/v1/devices/"
_SUFFIX = "/up"


def uplink_topic(device_id: str) -> str:
    """The topic a device publishes its readings to."""
    return f"{_PREFIX}{device_id}{_SUFFIX}"


def device_of_topic(topic: str) -> str | None:
    """The device id in an uplink topic, or None if the topic is not a well-formed uplink."""
    if not (topic.startswith(_PREFIX) and topic.endswith(_SUFFIX)):
        return None
    device_id = topic[len(_PREFIX) : -len(_SUFFIX)]
    return device_id if is_device_id(device_id) else None
