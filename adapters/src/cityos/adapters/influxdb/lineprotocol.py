"""Line protocol for observations: series keys escaped by influxdb-client, cached per sensor.

`Point.to_line_protocol()` costs ~27 µs a point; the measurement and tags of a sensor never
change, so the library escapes them once per sensor and only the fields and the timestamp are
formatted per point (the same text the library would produce; a property test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from math import isfinite
from operator import attrgetter
from typing import Any
from urllib.parse import unquote

from influxdb_client.client.write.point import Point as _LibraryPoint

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import Observation, Quality, Sensor

Point: Any = _LibraryPoint  # influxdb-client has no type hints

MEASUREMENT = "observations"
SENSOR_TAG = "sensor"
CACHE_SIZE = 100_000  # series keys kept; far above any city's sensor count
FLOAT_CACHE_SIZE = 65_536  # formatted values kept

# Epoch nanoseconds in a signed 64-bit integer: InfluxDB's range (1677-09-21 .. 2262-04-11).
MIN_NS = -(2**63) + 2  # InfluxDB reserves the extremes (models.MinNanoTime/MaxNanoTime)
MAX_NS = 2**63 - 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Tag values that InfluxDB 1.x cannot store losslessly: it never unescapes a backslash in a tag
# value (so `\,` in the value and a trailing `\` break), and the client writes a newline or tab
# as the two characters `\n` / `\t`, which the server keeps as such. Those characters (and `%`,
# so the mapping stays reversible) are percent-encoded (UTF-8) before the library escapes the
# value. Contract ids (`[a-z0-9-]+.[a-z0-9_]+`) never contain any of them and are stored as is.
_ENCODED = {"%", "\\"} | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}
_ENCODE_TABLE = str.maketrans({c: "".join(f"%{b:02X}" for b in c.encode()) for c in _ENCODED})


def encode_tag_value(value: str) -> str:
    """The stored form of a tag value: `%`, `\\` and control characters percent-encoded."""
    return value.translate(_ENCODE_TABLE)


def decode_tag_value(stored: str) -> str:
    """The original of a stored tag value (inverse of `encode_tag_value`)."""
    return unquote(stored, errors="strict") if "%" in stored else stored


def to_ns(moment: datetime) -> int:
    """Epoch nanoseconds of an aware datetime (InvalidInput if naive)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"time {moment.isoformat()} has no UTC offset", field="time")
    return (moment - _EPOCH) // _MICROSECOND * 1_000


def series_tags(sensor_id: str, sensor: Sensor | None) -> dict[str, str]:
    """The tags of a sensor's series (stored form): sensor, device, quantity, domain."""
    if sensor is not None:
        device, quantity, domain = sensor.device_id, sensor.quantity, str(sensor.domain.value)
    else:
        device, _, quantity = sensor_id.partition(".")
        domain = ""
    tags = {SENSOR_TAG: sensor_id, "device": device, "quantity": quantity, "domain": domain}
    # empty values are left out (InfluxDB refuses empty tag values), as the library does
    return {key: encode_tag_value(value) for key, value in tags.items() if value}


def series_key(sensor_id: str, sensor: Sensor | None) -> str:
    """Measurement and tags of a sensor's series, escaped by influxdb-client."""
    if not sensor_id:
        raise InvalidInput("an empty sensor id cannot be stored", field="sensor_id")
    try:
        sensor_id.encode()
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"sensor id {sensor_id!r} is not valid Unicode", field="sensor_id"
        ) from exc
    point = Point(MEASUREMENT)
    for key, value in series_tags(sensor_id, sensor).items():
        point.tag(key, value)
    line: str = point.field("_", 0).to_line_protocol()
    return line.removesuffix(" _=0i")


def _quality_field(quality: Quality) -> str:
    line: str = Point("m").field("quality", quality.value).to_line_protocol()
    return line.removeprefix("m ")


QUALITY_FIELDS: dict[str, str] = {quality: _quality_field(quality) for quality in Quality}
_QUALITY_SET = frozenset(Quality)
_TIME = attrgetter("time")
_VALUE = attrgetter("value")
_QUALITY = attrgetter("quality")
_INGESTED = attrgetter("ingested_at")
_SENSOR_ID = attrgetter("sensor_id")


class LineWriter:
    """Formats observations as line protocol, with a bounded cache of series keys."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._cache_size = cache_size
        self._keys: dict[str, tuple[Sensor | None, str]] = {}
        self._floats: dict[float, str] = {}  # value -> text: readings repeat (quantised)

    def key(self, sensor_id: str, sensor: Sensor | None) -> str:
        """The cached escaped series key of a sensor."""
        cached = self._keys.get(sensor_id)
        if cached is not None and cached[0] is sensor:
            return cached[1]
        if cached is not None and cached[0] == sensor:
            self._keys[sensor_id] = (sensor, cached[1])
            return cached[1]
        key = series_key(sensor_id, sensor)
        if len(self._keys) >= self._cache_size:
            self._keys.clear()  # rare (more sensors than the cache holds): start over
        self._keys[sensor_id] = (sensor, key)
        return key

    def check(
        self, observations: Sequence[Observation], sensors: Mapping[str, Sensor] | None
    ) -> None:
        """InvalidInput unless every observation can be written; caches every series key.

        Cheap whole-batch tests (min/max of times, sum of values, set of qualities) find a
        problem; only then does a per-point pass name the first bad observation.
        """
        try:
            times = list(map(_TIME, observations))
            low, high = to_ns(min(times)), to_ns(max(times))
            total = sum(map(float, map(_VALUE, observations)))
            ingested = [t for t in map(_INGESTED, observations) if t is not None]
            if ingested:
                to_ns(min(ingested)), to_ns(max(ingested))
            fine = (
                low >= MIN_NS
                and high <= MAX_NS
                and isfinite(total)
                and set(map(_QUALITY, observations)) <= _QUALITY_SET
            )
        except (TypeError, ValueError, OverflowError, InvalidInput):
            fine = False  # naive and aware mixed, a huge integer, ...: look point by point
        if not fine:
            for obs in observations:
                _check_one(obs)
        get = sensors.get if sensors else None
        for sensor_id in set(map(_SENSOR_ID, observations)):
            self.key(sensor_id, get(sensor_id) if get is not None else None)

    def lines(
        self,
        observations: Sequence[Observation],
        sensors: Mapping[str, Sensor] | None,
        now_ns: int,
    ) -> list[str]:
        """One line (without newline) per observation, in order; InvalidInput on bad values."""
        self.check(observations, sensors)
        return self.format_checked(observations, sensors, now_ns, {}, 0)

    def format_checked(
        self,
        observations: Sequence[Observation],
        sensors: Mapping[str, Sensor] | None,
        now_ns: int,
        newest: dict[str, tuple[int, int]],
        first_index: int,
    ) -> list[str]:
        """Lines of observations that passed `check`; `newest` gets sensor -> (ns, index)."""
        out: list[str] = []
        append = out.append
        get_sensor = sensors.get if sensors else None
        cached_key = self._keys.get
        floats = self._floats
        float_text = floats.get
        newest_of = newest.get
        quality_fields = QUALITY_FIELDS
        epoch, microsecond = _EPOCH, _MICROSECOND
        last_ingested: datetime | None = None
        ingested = now_ns
        index = first_index
        # The hot loop of ingestion: everything inlined (a call costs as much as a field).
        for obs in observations:
            time_ns = (obs.time - epoch) // microsecond * 1_000
            value = obs.value
            if type(value) is not float:
                value = float(value)
            text = float_text(value)
            if text is None or not value:  # 0.0 == -0.0 share a key but not a text
                text = repr(value)
                if text[-2:] == ".0":  # as the library writes floats: `1`, still a float field
                    text = text[:-2]
                if len(floats) >= FLOAT_CACHE_SIZE:
                    floats.clear()
                floats[value] = text
            moment = obs.ingested_at
            if moment is not last_ingested:
                last_ingested = moment
                ingested = now_ns if moment is None else (moment - epoch) // microsecond * 1_000
            sensor_id = obs.sensor_id
            sensor = get_sensor(sensor_id) if get_sensor is not None else None
            cached = cached_key(sensor_id)
            key = cached[1] if cached is not None and cached[0] is sensor else None
            if key is None:
                key = self.key(sensor_id, sensor)
            seen = newest_of(sensor_id)
            if seen is None or seen[0] <= time_ns:
                newest[sensor_id] = (time_ns, index)
            index += 1
            # fields in the library's (sorted) order
            quality = quality_fields[obs.quality]
            append(f"{key} ingested_at={ingested}i,{quality},value={text} {time_ns}")
        return out


def _check_one(obs: Observation) -> None:
    """InvalidInput if one observation cannot be written."""
    time_ns = to_ns(obs.time)
    if not MIN_NS <= time_ns <= MAX_NS:
        raise InvalidInput(
            f"time {obs.time.isoformat()} is outside 1677-09-21..2262-04-11", field="time"
        )
    value = float(obs.value)
    if not isfinite(value):
        raise InvalidInput(f"value {value} of {obs.sensor_id!r} is not finite")
    if obs.quality not in _QUALITY_SET:
        raise InvalidInput(f"unknown quality {obs.quality!r}", field="quality")
    if obs.ingested_at is not None:
        to_ns(obs.ingested_at)


def reference_line(obs: Observation, sensor: Sensor | None, now_ns: int) -> str:
    """The same line through `Point.to_line_protocol()` (slow; for tests and checks)."""
    point = Point(MEASUREMENT)
    for key, value in series_tags(obs.sensor_id, sensor).items():
        point.tag(key, value)
    ingested = now_ns if obs.ingested_at is None else to_ns(obs.ingested_at)
    point.field("value", float(obs.value)).field("quality", obs.quality.value)
    point.field("ingested_at", ingested).time(to_ns(obs.time))
    line: str = point.to_line_protocol()
    return line
