"""MQTT topic names of CONTRACT.md."""

from __future__ import annotations

from cityos.platform.domain.ids import is_device_id

UPLINK_FILTER = "cityos/v1/devices/+/up"
TTN_FORMAT = "ttn"
"""The payload format of devices whose uplinks come through The Things Stack."""
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


def ttn_uplink_filter(application: str) -> str:
    """The topic filter of a The Things Stack application's uplinks (`<app>@<tenant>`)."""
    return f"v3/{application}/devices/+/up"


def device_of_ttn_topic(topic: str) -> str | None:
    """The device id in a TTS uplink topic `v3/<app>@<tenant>/devices/<id>/up`, or None."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "v3" or parts[2] != "devices" or parts[4] != "up":
        return None
    if "@" not in parts[1]:
        return None
    return parts[3] if is_device_id(parts[3]) else None
