"""The Omaezaki sensor simulator: cityos JSON payloads per device, published on a thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cityos.platform.demo import models
from cityos.platform.demo.catalogue import DEVICES, SimulatedDevice, device_by_id
from cityos.platform.demo.models import JST

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]
Clock = Callable[[], datetime]
DEFAULT_INTERVAL_SECONDS = 2.0

_WBGT_OFFSETS = {"omaezaki-city-hall": 0.3, "hamaoka-kita-school": 0.6, "omaezaki-park": -0.5}
_DECIMALS = {
    "tide_level": 3,
    "wave_height": 2,
    "wind_speed": 1,
    "wind_direction": 0,
    "water_level": 3,
    "rainfall": 1,
    "wbgt": 1,
    "visitors": 0,
    "occupancy": 1,
}


def topic_for(device_id: str) -> str:
    """The MQTT topic a device publishes its uplinks to."""
    return f"cityos/v1/devices/{device_id}/up"


def _raw_readings(device: SimulatedDevice, when: datetime, seed: int) -> dict[str, float]:
    if device.id == "omaezaki-port":
        return {"tide_level": models.tide_level(when, seed)}
    if device.id == "omaezaki-cape-marine":
        wind = models.wind(when, seed)
        return {
            "wave_height": models.wave_height(when, seed),
            "wind_speed": wind.speed,
            "wind_direction": wind.direction,
        }
    if device.id == "niino-river":
        return {
            "water_level": models.water_level(when, seed),
            "rainfall": models.rainfall(when, seed),
        }
    if device.id in _WBGT_OFFSETS:
        return {
            "wbgt": models.wbgt(when, seed, site_offset=_WBGT_OFFSETS[device.id], site=device.id)
        }
    if device.id == "omaezaki-lighthouse":
        return {"visitors": models.visitors(when, seed)}
    if device.id == "omaezaki-cape-parking":
        return {"occupancy": models.parking_occupancy(when, seed)}
    raise KeyError(device.id)


def readings_at(device_id: str, when: datetime, *, seed: int = 0) -> dict[str, float]:
    """The simulated readings of one device at `when`, rounded and within the valid ranges."""
    device = device_by_id(device_id)
    raw = _raw_readings(device, when, seed)
    readings: dict[str, float] = {}
    for spec in device.sensors:
        value = round(raw[spec.quantity], _DECIMALS.get(spec.quantity, 2))
        if spec.quantity == "wind_direction" and value >= 360.0:
            value = 0.0
        readings[spec.quantity] = min(spec.valid_max, max(spec.valid_min, value))
    return readings


def format_time(when: datetime) -> str:
    """RFC 3339 in Japan time, e.g. `2025-08-01T14:00:00+09:00`."""
    return when.astimezone(JST).isoformat(timespec="seconds")


def payload_for(device_id: str, when: datetime, *, seed: int = 0) -> bytes:
    """The cityos JSON payload `{"time": ..., "readings": {...}}` of one device at `when`."""
    readings = {
        quantity: int(value) if quantity in ("visitors", "wind_direction") else value
        for quantity, value in readings_at(device_id, when, seed=seed).items()
    }
    document = {"time": format_time(when), "readings": readings}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def messages_at(when: datetime, *, seed: int = 0) -> list[tuple[str, bytes]]:
    """(topic, payload) of every simulated device at `when`."""
    return [(topic_for(device.id), payload_for(device.id, when, seed=seed)) for device in DEVICES]


def _now() -> datetime:
    return datetime.now(UTC)


class Simulator:
    """Publishes every simulated device's payload every `interval` seconds on a daemon thread."""

    def __init__(
        self,
        publish: Publish,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        seed: int = 0,
        clock: Clock = _now,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._publish = publish
        self._interval = interval
        self._seed = seed
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        """Whether the publishing thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start publishing (the first round goes out at once); a second call does nothing."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cityos-simulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop publishing and wait for the thread to end."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def tick(self) -> int:
        """Publish one round now; return how many messages went out (failures are logged)."""
        sent = 0
        for topic, payload in messages_at(self._clock(), seed=self._seed):
            if self._stop.is_set():
                break
            try:
                self._publish(topic, payload)
            except Exception:  # the broker may be down; try again on the next tick
                self.failures += 1
                log.exception("simulator could not publish to %s; retrying next tick", topic)
            else:
                sent += 1
        self.ticks += 1
        return sent

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug in a model must not end the demo
                log.exception("simulator tick failed")
            next_at += self._interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (slow broker): skip, do not burst
                next_at = time.monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
