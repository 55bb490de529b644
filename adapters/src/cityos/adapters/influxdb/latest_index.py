"""The latest index: one series holding each sensor's newest observation at a fixed slot.

Reading the newest point of 1,000 series costs InfluxDB 1.x a cursor per series (~100 ms);
reading 1,000 points of one series costs a few milliseconds. So every write also stores, in
the measurement `latest` (no tags: one series), one point per sensor at a timestamp derived
from its id; writing the slot again overwrites it. See docs/timeseries-schema.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any

from cityos.adapters.influxdb.influxql import quote_ident, time_literal
from cityos.adapters.influxdb.lineprotocol import (
    CACHE_SIZE,
    QUALITY_FIELDS,
    decode_tag_value,
    encode_tag_value,
    library_point,
    to_ns,
)
from cityos.platform.domain.model import Observation, Quality

INDEX_MEASUREMENT = "latest"
SENSOR_FIELD = "sensor"
SLOT_SPAN = 1 << 40  # ns: slots span ~18.3 minutes, inside one shard of any duration >= 1h
# A Monday 00:00 UTC far in the future: no retention policy ever drops (or refuses) the index,
# and 1h / 1d / 7d shard groups (aligned to Mondays) all hold the whole slot range.
SLOT_BASE_NS = 7_258_550_400 * 10**9  # 2200-01-06T00:00:00Z
SLOT_END_NS = SLOT_BASE_NS + SLOT_SPAN - 1
NARROW_UP_TO = 64  # ids; more are read with one range statement
MAX_RANGES = 16  # statements of one latest() request, each one time range of the index
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUALITY_OF: dict[str, Quality] = {quality.value: quality for quality in Quality}
_FROM = "FROM " + quote_ident(INDEX_MEASUREMENT)


def slot_ns(sensor_id: str) -> int:
    """The index timestamp of a sensor: base + blake2b-64(id) mod 2**40."""
    digest = blake2b(sensor_id.encode(), digest_size=8).digest()
    return SLOT_BASE_NS + int.from_bytes(digest, "big") % SLOT_SPAN


def from_ns(ns: int) -> datetime:
    """The UTC datetime of epoch nanoseconds (sub-microsecond digits are dropped)."""
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def _sensor_field(sensor_id: str) -> str:
    """`sensor="<stored form>"`, escaped by influxdb-client."""
    line: str = (
        library_point("m").field(SENSOR_FIELD, encode_tag_value(sensor_id)).to_line_protocol()
    )
    return line.removeprefix("m ")


def _float_text(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def index_line(
    obs: Observation, time_ns: int, ingested_ns: int, sensor_field: str, slot: int
) -> str:
    """One index line (fields in the library's sorted order)."""
    quality = QUALITY_FIELDS[obs.quality]
    return (
        f"{INDEX_MEASUREMENT} ingested_at={ingested_ns}i,observed_ns={time_ns}i,{quality},"
        f"{sensor_field},value={_float_text(obs.value)} {slot}"
    )


def tombstone(sensor_id: str) -> str:
    """A line that blanks the sensor field of a slot (other fields stay): no id matches it."""
    return f'{INDEX_MEASUREMENT} {SENSOR_FIELD}="" {slot_ns(sensor_id)}'


def reference_index_line(obs: Observation, ingested_ns: int) -> str:
    """The same index line through `Point.to_line_protocol()` (for tests)."""
    point = library_point(INDEX_MEASUREMENT).field(SENSOR_FIELD, encode_tag_value(obs.sensor_id))
    point.field("value", float(obs.value)).field("quality", obs.quality.value)
    point.field("ingested_at", ingested_ns).field("observed_ns", to_ns(obs.time))
    line: str = point.time(slot_ns(obs.sensor_id)).to_line_protocol()
    return line


Claim = tuple[str, int | None, int, int]  # sensor, previous newest, claimed newest, index


class LatestIndex:
    """What this store wrote to the index (sensor -> newest observation time), bounded."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self.lock = threading.Lock()
        self.enabled = True  # False once the server refused an index write
        self.seeded = False
        self._cache_size = cache_size
        self._written: dict[str, int] = {}
        self._fields: dict[str, tuple[str, int]] = {}

    def seed(self, rows: Iterable[tuple[str, int]]) -> None:
        """Start from what the index holds (stored sensor field, observed_ns)."""
        with self.lock:
            for stored, observed in rows:
                sensor_id = decode_tag_value(stored)
                if self._written.get(sensor_id, observed - 1) < observed:
                    self._written[sensor_id] = observed
            self.seeded = True

    def claim(self, newest: Mapping[str, tuple[int, int]]) -> list[Claim]:
        """The sensors whose index row must change (call with `lock` held); marks them written."""
        written = self._written
        if len(written) + len(newest) > self._cache_size:
            written.clear()  # rare: more sensors than the cache holds; re-read the index
            self.seeded = False
        claims: list[Claim] = []
        for sensor_id, (time_ns, index) in newest.items():
            previous = written.get(sensor_id)
            if previous is None or previous <= time_ns:  # equal: a rewrite of that time wins
                written[sensor_id] = time_ns
                claims.append((sensor_id, previous, time_ns, index))
        return claims

    def release(self, claims: Sequence[Claim]) -> None:
        """Undo claims whose index rows were not written."""
        with self.lock:
            for sensor_id, previous, time_ns, _ in claims:
                if self._written.get(sensor_id) == time_ns:
                    if previous is None:
                        del self._written[sensor_id]
                    else:
                        self._written[sensor_id] = previous

    def lines(
        self, claims: Sequence[Claim], observations: Sequence[Observation], now_ns: int
    ) -> list[str]:
        """The index lines of claimed sensors."""
        fields = self._fields
        if len(fields) + len(claims) > self._cache_size:
            fields.clear()
        out = []
        for sensor_id, _, time_ns, index in claims:
            cached = fields.get(sensor_id)
            if cached is None:
                cached = fields[sensor_id] = (_sensor_field(sensor_id), slot_ns(sensor_id))
            obs = observations[index]
            ingested = now_ns if obs.ingested_at is None else to_ns(obs.ingested_at)
            out.append(index_line(obs, time_ns, ingested, *cached))
        return out


def seed_statement() -> str:
    """InfluxQL reading every sensor and observed_ns of the index."""
    return (
        f'SELECT {quote_ident(SENSOR_FIELD)}, "observed_ns" {_FROM} '
        f"WHERE time >= {time_literal(SLOT_BASE_NS)} AND time <= {time_literal(SLOT_END_NS)}"
    )


def read_statements(sensor_ids: Iterable[str]) -> list[str]:
    """Statements covering the slots of the ids: a few narrow ranges for a few ids, else one.

    Each statement costs InfluxDB 1.6 a cursor set-up (measured for 1,000 ids: 16 ranges
    35 ms, 4 ranges 27 ms, one range 26 ms), while a narrow range saves reading rows of
    sensors not asked for; past NARROW_UP_TO ids one range over their slots is cheaper.
    """
    slots = sorted({slot_ns(sensor_id) for sensor_id in sensor_ids})
    if not slots:
        return []
    ranges = MAX_RANGES if len(slots) <= NARROW_UP_TO else 1
    gaps = sorted(range(1, len(slots)), key=lambda i: slots[i] - slots[i - 1], reverse=True)
    cuts = sorted(gaps[: ranges - 1])
    starts, ends = [0, *cuts], [*cuts, len(slots)]
    return [
        f"SELECT * {_FROM} WHERE time >= {time_literal(slots[first])} "
        f"AND time <= {time_literal(slots[last - 1])}"
        for first, last in zip(starts, ends, strict=True)
    ]


def index_rows(
    results: Iterable[Mapping[str, Any]], wanted: Mapping[str, str]
) -> dict[str, Observation]:
    """Observations of index rows whose sensor field is a wanted stored id (stored -> id)."""
    found: dict[str, Observation] = {}
    for result in results:
        for series in result.get("series") or []:
            columns = series.get("columns") or []
            for row in series.get("values") or []:
                record = dict(zip(columns, row, strict=True))
                sensor_id = wanted.get(str(record.get(SENSOR_FIELD)))
                if sensor_id is None or record.get("observed_ns") is None:
                    continue  # another sensor (a slot collision) or a foreign point
                if record.get("value") is None:
                    continue  # a write in flight, its value not visible yet (see store.py)
                ingested = record.get("ingested_at")
                found[sensor_id] = Observation(
                    sensor_id=sensor_id,
                    time=from_ns(int(record["observed_ns"])),
                    value=float(record["value"]),
                    quality=_QUALITY_OF.get(str(record.get("quality")), Quality.SUSPECT),
                    ingested_at=None if ingested is None else from_ns(int(ingested)),
                )
    return found
