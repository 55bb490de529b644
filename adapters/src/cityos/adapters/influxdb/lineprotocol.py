"""Line protocol for observations: series keys escaped by influxdb-client, cached per sensor.

`Point.to_line_protocol()` costs ~27 µs a point; the measurement and tags of a sensor never
change, so the library escapes them once per sensor and only the fields and the timestamp are
formatted per point (the same text the library would produce; property tests check it).
Formatting is also the validation: a batch is formatted in C-level passes (map, list
comprehensions, dict lookups) whose whole-batch tests find any bad point, and only then is the
batch checked point by point to name the first bad one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import count
from math import isfinite
from operator import attrgetter, le
from typing import Any
from urllib.parse import unquote

from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import Observation, Quality, Sensor


@cache
def _library_point_class() -> Any:
    # imported on first use: influxdb-client costs ~10 MB of memory, and a process that only
    # reads (the API server) never needs it
    from influxdb_client.client.write.point import Point

    return Point


def library_point(measurement: str) -> Any:
    """influxdb-client's `Point(measurement)` (the library has no type hints)."""
    return _library_point_class()(measurement)


MEASUREMENT = "observations"
SENSOR_TAG = "sensor"
CACHE_SIZE = 100_000  # series keys kept; far above any city's sensor count
FLOAT_CACHE_SIZE = 65_536  # formatted values kept

# Epoch nanoseconds in a signed 64-bit integer: InfluxDB's range (1677-09-21 .. 2262-04-11).
MIN_NS = -(2**63) + 2  # InfluxDB reserves the extremes (models.MinNanoTime/MaxNanoTime)
MAX_NS = 2**63 - 2
_MIN_US = -(-MIN_NS // 1_000)  # the same range in whole microseconds (datetime's resolution)
_MAX_US = MAX_NS // 1_000
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
    """Epoch nanoseconds of an aware datetime (InvalidInput if naive or not a datetime)."""
    if not isinstance(moment, datetime):
        raise InvalidInput(f"time {moment!r} is not a datetime", field="time")
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


def check_sensor_id(sensor_id: str) -> None:
    """InvalidInput unless the id is a non-empty string that UTF-8 can encode."""
    if not isinstance(sensor_id, str) or not sensor_id:
        raise InvalidInput(f"sensor id {sensor_id!r} cannot be stored", field="sensor_id")
    try:
        sensor_id.encode()
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"sensor id {sensor_id!r} is not valid Unicode", field="sensor_id"
        ) from exc


def series_key(sensor_id: str, sensor: Sensor | None) -> str:
    """Measurement and tags of a sensor's series, escaped by influxdb-client."""
    check_sensor_id(sensor_id)
    point = library_point(MEASUREMENT)
    for key, value in series_tags(sensor_id, sensor).items():
        point.tag(key, value)
    line: str = point.field("_", 0).to_line_protocol()
    return line.removesuffix(" _=0i")


# The quality field of each Quality as influxdb-client writes a string field: the values are
# plain lower-case ASCII words, which need no escaping (tests compare it with the library's).
QUALITY_FIELDS: dict[str, str] = {quality: f'quality="{quality.value}"' for quality in Quality}
_TIME = attrgetter("time")
_VALUE = attrgetter("value")
_QUALITY = attrgetter("quality")
_INGESTED = attrgetter("ingested_at")
_SENSOR_ID = attrgetter("sensor_id")


class _Unfit(Exception):
    """A whole-batch test failed: look for the bad observation point by point."""


class LineWriter:
    """Formats observations as validated line protocol, with bounded caches of series keys."""

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

    def lines(
        self,
        observations: Sequence[Observation],
        sensors: Mapping[str, Sensor] | None,
        now_ns: int,
    ) -> list[str]:
        """One line (without newline) per observation, in order; InvalidInput on bad values."""
        return self.format(observations, sensors, now_ns, {}, 0)

    def check(
        self, observations: Sequence[Observation], sensors: Mapping[str, Sensor] | None
    ) -> None:
        """InvalidInput unless every observation can be written (formats and drops the lines)."""
        self.format(observations, sensors, 0, {}, 0)

    def format(
        self,
        observations: Sequence[Observation],
        sensors: Mapping[str, Sensor] | None,
        now_ns: int,
        newest: dict[str, tuple[int, int]],
        first_index: int,
    ) -> list[str]:
        """Validated lines, in order; `newest` gets sensor -> (ns, index) of its newest point.

        InvalidInput names the first observation that cannot be written; nothing is changed then.
        """
        try:
            return self._format(observations, sensors, now_ns, newest, first_index)
        except (_Unfit, TypeError, ValueError, OverflowError, AttributeError, InvalidInput):
            self._check_each(observations, sensors)  # raises for the first bad observation
            raise  # not a bad observation: a bug, let it show

    def _format(
        self,
        observations: Sequence[Observation],
        sensors: Mapping[str, Sensor] | None,
        now_ns: int,
        newest: dict[str, tuple[int, int]],
        first_index: int,
    ) -> list[str]:
        """The hot path of ingestion: whole-batch tests and C-level passes, no per-point calls.

        Validation is folded in: times must subtract from the epoch (aware) and lie in range,
        values are finite (the float cache holds only finite texts, misses are tested), and
        qualities, ingestion times and sensor ids are looked up or tested once per distinct one.
        """
        if not observations:
            return []
        sensor_ids = list(map(_SENSOR_ID, observations))
        keys = self._keys_of(sensor_ids, sensors)
        epoch, microsecond = _EPOCH, _MICROSECOND
        last: datetime | None = None
        us = 0
        # points in a row often share a time (one message, one poll): convert it once
        micros = [
            us if moment == last else (us := ((last := moment) - epoch) // microsecond)
            for moment in map(_TIME, observations)
        ]
        ordered = micros == sorted(micros)  # usual: cheap (timsort finds one run)
        low, high = (micros[0], micros[-1]) if ordered else (min(micros), max(micros))
        if low < _MIN_US or high > _MAX_US:
            raise _Unfit
        texts = list(map(self._floats.get, map(_VALUE, observations)))
        misses = texts.count(None)
        if misses:
            self._fill(observations, texts, misses)
        qualities = list(map(_QUALITY, observations))
        moments = list(map(_INGESTED, observations))
        seen_us: object = None
        stamp = ""
        # the time in ns as text: `{us}000`, once per run of one time (the same int object)
        stamps = [stamp if us is seen_us else (stamp := f"{(seen_us := us)}000") for us in micros]
        if low <= 0 <= high:
            stamps = ["0" if us == 0 else stamp for us, stamp in zip(micros, stamps, strict=True)]
        # fields in the library's (sorted) order
        if _same(qualities) and _same(moments):  # e.g. a batch of one message: one prefix a sensor
            shared = (
                f" ingested_at={_ingested_text(moments[0], now_ns)}i,"
                f"{_quality_field_of(qualities[0])},value="
            )
            prefixes = {sensor_id: key + shared for sensor_id, key in keys.items()}
            lines = [
                f"{prefix}{text} {stamp}"
                for prefix, text, stamp in zip(
                    map(prefixes.__getitem__, sensor_ids), texts, stamps, strict=True
                )
            ]
        else:
            quality_fields = list(map(QUALITY_FIELDS.get, qualities))
            if None in quality_fields:
                raise _Unfit
            seen: object = _Unfit  # no ingestion time is this
            ingested = ""
            # the readings of one message share its receipt time, one object: convert it once
            ingested_texts = [
                ingested if moment is seen else (ingested := _ingested_text(seen := moment, now_ns))
                for moment in moments
            ]
            lines = [
                f"{key} ingested_at={ingested_at}i,{quality},value={text} {stamp}"
                for key, ingested_at, quality, text, stamp in zip(
                    map(keys.__getitem__, sensor_ids),
                    ingested_texts,
                    quality_fields,
                    texts,
                    stamps,
                    strict=True,
                )
            ]
        _track_newest(sensor_ids, micros, ordered, newest, first_index)
        return lines

    def _keys_of(
        self, sensor_ids: list[str], sensors: Mapping[str, Sensor] | None
    ) -> dict[str, str]:
        """Series key of each distinct sensor id."""
        get = sensors.get if sensors else None
        cached = self._keys.get
        keys = {}
        for sensor_id in set(sensor_ids):
            sensor = get(sensor_id) if get is not None else None
            known = cached(sensor_id)
            keys[sensor_id] = (
                known[1]
                if known is not None and known[0] is sensor
                else self.key(sensor_id, sensor)
            )
        return keys

    def _fill(
        self, observations: Sequence[Observation], texts: list[str | None], misses: int
    ) -> None:
        """Texts of the values not in the float cache (only finite ones are cached)."""
        floats = self._floats
        find = texts.index
        position = -1
        for _ in range(misses):
            position = find(None, position + 1)
            value = observations[position].value
            number = value if type(value) is float else float(value)
            if not isfinite(number):
                raise _Unfit
            text = repr(number)
            if text[-2:] == ".0":  # as the library writes floats: `1`, still a float field
                text = text[:-2]
            texts[position] = text
            if number:  # 0.0 == -0.0 share a key but not a text: zeros are never cached
                if len(floats) >= FLOAT_CACHE_SIZE:
                    floats.clear()
                floats[number] = text

    def _check_each(
        self, observations: Sequence[Observation], sensors: Mapping[str, Sensor] | None
    ) -> None:
        """InvalidInput naming the first observation that cannot be written, if any."""
        get = sensors.get if sensors else None
        for obs in observations:
            _check_one(obs)
            sensor_id = obs.sensor_id
            self.key(sensor_id, get(sensor_id) if get is not None else None)


def _same(items: list[Any]) -> bool:
    """Whether every item equals the first (one C-level pass; the same object is quickest)."""
    return items.count(items[0]) == len(items)


def _quality_field_of(quality: Quality) -> str:
    """The quality field of a known quality (else _Unfit)."""
    field = QUALITY_FIELDS.get(quality)
    if field is None:
        raise _Unfit
    return field


def _ingested_text(moment: datetime | None, now_ns: int) -> str:
    """The ingested_at value in ns: the write's time if None (else _Unfit or TypeError)."""
    if moment is None:
        return str(now_ns)
    ns = (moment - _EPOCH) // _MICROSECOND * 1_000
    if not MIN_NS <= ns <= MAX_NS:
        raise _Unfit
    return str(ns)


def _track_newest(
    sensor_ids: list[str],
    micros: list[int],
    ordered: bool,
    newest: dict[str, tuple[int, int]],
    first: int,
) -> None:
    """Record each sensor's newest point (a later index wins a tie) as (ns, index)."""
    last = dict(zip(sensor_ids, count(), strict=False))  # sensor -> position of its last point
    if ordered or all(
        map(le, micros, map(micros.__getitem__, map(last.__getitem__, sensor_ids)))
    ):  # each sensor's last point is its newest (the usual case): no per-point loop
        candidates = [(sensor_id, micros[at], first + at) for sensor_id, at in last.items()]
    else:
        best: dict[str, tuple[int, int]] = {}
        for index, sensor_id, us in zip(count(first), sensor_ids, micros):
            seen = best.get(sensor_id)
            if seen is None or seen[0] <= us:
                best[sensor_id] = (us, index)
        candidates = [(sensor_id, us, index) for sensor_id, (us, index) in best.items()]
    for sensor_id, us, index in candidates:
        time_ns = us * 1_000
        seen = newest.get(sensor_id)
        if seen is None or seen[0] <= time_ns:
            newest[sensor_id] = (time_ns, index)


def _ingested_ns(moment: datetime) -> int:
    """Epoch ns of an ingestion time (InvalidInput if naive or out of InfluxDB's range)."""
    ingested = to_ns(moment)
    if not MIN_NS <= ingested <= MAX_NS:
        raise InvalidInput(
            f"ingested_at {moment.isoformat()} is outside 1677-09-21..2262-04-11",
            field="ingested_at",
        )
    return ingested


def _check_one(obs: Observation) -> None:
    """InvalidInput if one observation cannot be written."""
    check_sensor_id(obs.sensor_id)
    time_ns = to_ns(obs.time)
    if not MIN_NS <= time_ns <= MAX_NS:
        raise InvalidInput(
            f"time {obs.time.isoformat()} is outside 1677-09-21..2262-04-11", field="time"
        )
    try:
        value = float(obs.value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"value {obs.value!r} of {obs.sensor_id!r} is not a number") from exc
    if not isfinite(value):
        raise InvalidInput(f"value {value} of {obs.sensor_id!r} is not finite")
    try:
        known = obs.quality in QUALITY_FIELDS
    except TypeError:  # unhashable
        known = False
    if not known:
        raise InvalidInput(f"unknown quality {obs.quality!r}", field="quality")
    if obs.ingested_at is not None:
        _ingested_ns(obs.ingested_at)


def reference_line(obs: Observation, sensor: Sensor | None, now_ns: int) -> str:
    """The same line through `Point.to_line_protocol()` (slow; for tests and checks)."""
    point = library_point(MEASUREMENT)
    for key, value in series_tags(obs.sensor_id, sensor).items():
        point.tag(key, value)
    ingested = now_ns if obs.ingested_at is None else to_ns(obs.ingested_at)
    point.field("value", float(obs.value)).field("quality", obs.quality.value)
    point.field("ingested_at", ingested).time(to_ns(obs.time))
    line: str = point.to_line_protocol()
    return line
