"""Cached device and sensor lookups for the ingestion hot path."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from cityos.platform.domain.model import Device, GeoPoint, Sensor
from cityos.platform.ports import Catalog


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A device and its active sensors by quantity."""

    device: Device
    sensors: Mapping[str, Sensor]


class DeviceDirectory:
    """Looks devices up in the catalog, caching answers (misses too) for a short time."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, DeviceEntry | None]] = {}

    def lookup(self, device_id: str) -> DeviceEntry | None:
        """The device with its active sensors, or None if it is not registered."""
        now = self._clock()
        cached = self._cache.get(device_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        entry = self._load(device_id)
        if len(self._cache) > 100_000:  # bounded: a flood of unknown ids must not grow memory
            self._cache.clear()
        self._cache[device_id] = (now, entry)
        return entry

    def move(self, entry: DeviceEntry, location: GeoPoint) -> DeviceEntry:
        """Store a device's reported new location (and its sensors'); return the new entry."""
        device = replace(entry.device, location=location)
        sensors = {q: replace(s, location=location) for q, s in entry.sensors.items()}
        self._catalog.update_device(device, list(sensors.values()))
        moved = DeviceEntry(device=device, sensors=sensors)
        self._cache[device.id] = (self._clock(), moved)
        return moved

    def _load(self, device_id: str) -> DeviceEntry | None:
        device = self._catalog.get_device(device_id)
        if device is None:
            return None
        sensors = {
            sensor.quantity: sensor
            for sensor in self._catalog.sensors_of_device(device_id)
            if not sensor.retired
        }
        return DeviceEntry(device=device, sensors=sensors)
