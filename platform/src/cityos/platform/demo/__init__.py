"""The `cityos demo` kit: simulated Omaezaki sensors and packaged open data."""

from __future__ import annotations

from pathlib import Path

from cityos.platform.demo.catalogue import (
    DEVICES,
    SensorSpec,
    SimulatedDevice,
    device_by_id,
    devices_and_sensors,
)
from cityos.platform.demo.simulator import (
    DEFAULT_INTERVAL_SECONDS,
    Simulator,
    messages_at,
    payload_for,
    readings_at,
    topic_for,
)

__all__ = [
    "DEFAULT_INTERVAL_SECONDS",
    "DEVICES",
    "SensorSpec",
    "SimulatedDevice",
    "Simulator",
    "demo_data_dir",
    "device_by_id",
    "devices_and_sensors",
    "messages_at",
    "payload_for",
    "readings_at",
    "topic_for",
]


def demo_data_dir() -> Path:
    """The packaged folder of demo open data (GSI evacuation sites and shelters of Omaezaki)."""
    return Path(__file__).resolve().parent / "data"
