"""Decoder of SenML packs (RFC 8428, JSON): base fields, relative times, units, lat/lon.

Decisions (see also CONTRACT.md, "MQTT"):
- The quantity is the record's `n` (the part after `bn`); a record without `n` is the sensor
  whose unit equals the record's unit, when exactly one sensor declares it.
- `vs`, `vb`, `vd` records are problems ("non-numeric value"). A record with only a sum `s`
  becomes a reading of the resolved sum `bs + s` (metadata `{"senml": "sum"}`: a meter that
  reports its running total); with both `v` and `s` the reading is `v` and the sum is kept as
  metadata `{"sum": ...}`.
- `lat`/`lon` records (name `lat`/`lon`, unit `lat`/`lon` or none) set the device's location;
  the last of each wins; both are needed and must be in range, else each is a problem.
- Units: a record without a unit is in the sensor's unit; another unit is converted when
  `units.py` knows an exact conversion, else the record is a problem that says why.
- The pre-RFC draft form `{"e": [...], "bn": ..., "bt": ...}` is accepted as a legacy form:
  its top-level base fields (and `ver`) apply to its `e` records.
- An empty resolved name is allowed (the topic identifies the device); others must follow
  RFC 8428 §4.5.1. Times outside 2000..2100 are problems, as in the JSON format.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import accumulate, count
from types import MappingProxyType
from typing import Any

from cityos.adapters.decoders.units import Conversion, conversion
from cityos.platform.config import Settings
from cityos.platform.domain.errors import PayloadError
from cityos.platform.domain.model import GeoPoint, Sensor
from cityos.platform.ports import DecodeContext, DecodedPayload, Reading, ReadingProblem

MAX_RECORDS = 10_000
MAX_DEPTH = 32  # JSON nesting; a SenML pack needs 2 (3 in the legacy form)
MAX_NAME_LENGTH = 128
EXCERPT_CHARS = 200
RELATIVE_LIMIT = 2**28  # RFC 8428 §4.5.3: resolved times below this are relative to "now"
SUPPORTED_VERSIONS = frozenset(range(1, 11)) | {42}  # 42 = 10 + secondary units (RFC 9100)
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)  # as the JSON format: earlier/later is a clock bug
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_MIN_SECONDS = MIN_TIME.timestamp()
_MAX_SECONDS = MAX_TIME.timestamp()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_from_seconds(seconds: float) -> datetime:
    """The UTC time `seconds` after the epoch (in 2000..2100), to the nearest microsecond.

    The same as `_EPOCH + timedelta(seconds=seconds)` (both round the fraction times 10^6
    half to even; a test compares them), at half the cost: it runs once per reading.
    """
    return datetime.fromtimestamp(seconds, UTC)


_EXACT = 2**53  # integers below this add to a float exactly (and never overflow)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
_BASE_FIELDS = frozenset({"bn", "bt", "bu", "bv", "bs", "bver"})
_KNOWN_FIELDS = _BASE_FIELDS | {"n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}
_NON_NUMERIC = ("vs", "vb", "vd")
_OTHER_VALUES = frozenset({*_NON_NUMERIC, "s"})
_FAST_FIELDS = frozenset({"n", "v", "t"})
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})
_LOCATION = {"lat": 90.0, "lon": 180.0}


class SenmlDecoder:
    """The `senml` payload format (pure: no I/O, no state)."""

    format = "senml"

    def decode(self, payload: bytes, ctx: DecodeContext) -> DecodedPayload:
        """Decode one pack; whole-pack faults raise PayloadError, others are problems."""
        prelude, records = _records(load_json(payload), payload)
        state = _Pack(ctx, payload)
        if prelude:
            state.update_base(prelude, "the legacy pack")
        state.decode_records(records)
        return state.finish()


def create_decoder(settings: Settings) -> SenmlDecoder:
    """Entry point of `cityos.decoders: senml`."""
    return SenmlDecoder()


# ---------------------------------------------------------------- JSON (shared with ttn.py)

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: no backtracking
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def load_json(payload: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse UTF-8 JSON (a BOM is tolerated) nested at most `max_depth` deep, or PayloadError."""
    try:
        text = payload.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"payload is not UTF-8: invalid byte 0x{payload[exc.start]:02x} at offset {exc.start}",
            excerpt=payload,
        ) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"broken JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
            excerpt=payload,
        ) from exc
    except RecursionError as exc:
        raise PayloadError(
            f"JSON is nested deeper than {max_depth} levels", excerpt=payload
        ) from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise PayloadError(f"broken JSON: {exc}", excerpt=payload) from exc
    arrays, objects = payload.count(b"["), payload.count(b"{")
    if arrays + objects > max_depth and not _flat_pack(document, arrays, objects):
        steps = _STRINGS.sub(b"", payload).translate(_BRACKET_STEPS, _NOT_BRACKETS)
        # each opening adds 2, each closing 0: depth after k brackets = prefix sum - k
        if max(map(operator.sub, accumulate(steps), count(1)), default=0) > max_depth:
            raise PayloadError(f"JSON is nested deeper than {max_depth} levels", excerpt=payload)
    return document


def _flat_pack(document: Any, arrays: int, objects: int) -> bool:
    """True if the document is one array of objects holding no other brackets (depth 2).

    Every `[` and `{` of the payload is then accounted for by the document's own array and
    objects, so none hides a deeper structure (brackets inside strings only add to the
    counts, which then sends the payload to the exact check).
    """
    return (
        arrays == 1
        and type(document) is list
        and objects == len(document)
        and all(type(item) is dict for item in document)
    )


_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number"}
_JSON_TYPES |= {str: "a string", list: "an array", dict: "an object"}


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    return _JSON_TYPES.get(type(value), "an object")


def excerpt(value: Any) -> str:
    """A short JSON rendering of the offending part."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):  # pragma: no cover - parsed JSON re-encodes
        text = repr(value)
    return text[:EXCERPT_CHARS]


def finite(raw: Any) -> float | None:
    """A JSON number as a finite float, or None (booleans are not numbers)."""
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else None
    if isinstance(raw, int) and not isinstance(raw, bool):
        try:
            return float(raw)
        except OverflowError:
            return None
    return None


# ---------------------------------------------------------------- the pack


def _records(document: Any, payload: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The legacy prelude of base fields (or {}) and the records, the structure checked."""
    prelude: dict[str, Any] = {}
    if isinstance(document, dict):
        entries = document.get("e")
        if not isinstance(entries, list):
            raise PayloadError(
                "a SenML pack is a JSON array of records; an object is accepted only in the "
                'pre-RFC draft form {"e": [...]}',
                excerpt=payload,
            )
        for key, value in document.items():
            if key in _BASE_FIELDS:
                prelude[key] = value
            elif key == "ver":
                prelude["bver"] = value
            elif key.endswith("_"):
                raise _must_understand(key, payload)
        document = entries
    if not isinstance(document, list):
        raise PayloadError(
            f"a SenML pack is a JSON array of records, not {json_type(document)}", excerpt=payload
        )
    if not document:
        raise PayloadError("empty SenML pack: no records", excerpt=payload)
    if len(document) > MAX_RECORDS:
        raise PayloadError(
            f"too many records: {len(document)} (at most {MAX_RECORDS} per pack)", excerpt=payload
        )
    for index, record in enumerate(document):
        if not isinstance(record, dict):
            raise PayloadError(
                f"record {index}: expected a JSON object, got {json_type(record)}",
                excerpt=payload,
            )
    return prelude, document


def _must_understand(key: str, payload: bytes) -> PayloadError:
    return PayloadError(
        f"unsupported must-understand field {key[:40]!r} (RFC 8428 §4.4: a field ending in '_' "
        "must be understood, so the whole pack is refused)",
        excerpt=payload,
    )


class _Pack:
    """The resolution state of one pack: base fields so far, readings, problems, location."""

    def __init__(self, ctx: DecodeContext, payload: bytes) -> None:
        self.ctx = ctx
        self.payload = payload
        self.bn = ""
        self.bt = 0.0
        self.bu: str | None = None
        self.bv = 0.0
        self.bs = 0.0
        self.version: int | None = None
        self.readings: list[Reading] = []
        self.problems: list[ReadingProblem] = []
        self.location: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.times: dict[float, datetime | str] = {}
        self.by_unit: dict[str, list[Sensor]] | None = None
        self.valid_names: set[str] = set()
        # quantity -> (unit, conversion) of records named so under the current bn and bu
        self.fast: dict[Any, tuple[str | None, Conversion | None]] = {}
        self.received = ctx.received_at.astimezone(UTC)
        self.received_seconds = ctx.received_at.timestamp()

    def fail(self, where: str, message: str) -> PayloadError:
        return PayloadError(f"{where}: {message}", excerpt=self.payload)

    def update_base(self, record: Mapping[str, Any], where: str) -> None:
        """Apply the base fields of a record to it and to every later record."""
        for key in _BASE_FIELDS.intersection(record):
            raw = record[key]
            if key in ("bn", "bu"):
                if not isinstance(raw, str):
                    raise self.fail(where, f"{key} must be a string, not {json_type(raw)}")
                if key == "bn":
                    self.bn, self.valid_names = raw, set()
                else:
                    self.bu = raw
                self.fast = {}
            elif key == "bver":
                if type(raw) is not int or raw not in SUPPORTED_VERSIONS:
                    raise self.fail(
                        where, f"bver {str(raw)[:20]} is not a version this decoder understands"
                    )
                if self.version is not None and raw != self.version:
                    raise self.fail(where, "all records of a pack must have the same bver")
                self.version = raw
            else:
                number = finite(raw)
                if number is None:
                    raise self.fail(where, f"{key} must be a finite number, not {excerpt(raw)}")
                setattr(self, key, number)

    def decode_records(self, records: list[dict[str, Any]]) -> None:
        """Resolve every record: the common ones here, the others by `decode_record`.

        The hot path: only `n`, `v` and `t`, a name seen before under the current base name
        and unit (its sensor and conversion cached in `fast`), a finite float value, no `bv`,
        and an absolute time in range.
        """
        append = self.readings.append
        times = self.times
        fast, bt, bv = self.fast, self.bt, self.bv
        for index, record in enumerate(records):
            if _FAST_FIELDS.issuperset(record):
                name = record.get("n")
                target = fast.get(name) if type(name) is str else None
                raw = record.get("v")
                if target is not None and type(raw) is float and raw - raw == 0.0 and not bv:
                    offset = record.get("t", 0)
                    kind = type(offset)
                    if kind is float or (kind is int and -_EXACT < offset < _EXACT):
                        seconds = bt + offset
                        time = times.get(seconds)
                        if time is None and _MIN_SECONDS <= seconds < _MAX_SECONDS:
                            time = times[seconds] = utc_from_seconds(seconds)
                        unit, conv = target
                        value = raw if conv is None else conv.apply(raw)
                        if type(time) is datetime and value - value == 0.0:
                            append(Reading(name, time, value, unit, _NO_METADATA))
                            continue
            self.decode_record(index, record)
            fast, bt, bv = self.fast, self.bt, self.bv  # a record may change the base fields

    def decode_record(self, index: int, record: dict[str, Any]) -> None:
        """Resolve one record into a reading, a location part or a problem."""
        if not _KNOWN_FIELDS.issuperset(record):
            for key in record:
                if key not in _KNOWN_FIELDS and key.endswith("_"):
                    raise _must_understand(key, self.payload)
        if not _BASE_FIELDS.isdisjoint(record):
            self.update_base(record, f"record {index}")
        name = record.get("n")
        quantity = name if isinstance(name, str) else None
        problem = self._resolve(record, quantity)
        if problem is not None:
            self.problems.append(ReadingProblem(problem, excerpt(record), quantity))

    def _resolve(self, record: dict[str, Any], quantity: str | None) -> str | None:
        """Append the record's reading or location part; return a problem's reason instead."""
        unit = record.get("u", self.bu)
        if "n" in record and quantity is None:
            return f"n must be a string, not {json_type(record['n'])}"
        if quantity is not None:
            if not 0 < len(quantity) <= MAX_NAME_LENGTH:
                return f"n must be 1..{MAX_NAME_LENGTH} characters, got {len(quantity)}"
            if quantity not in self.valid_names:  # cached: packs repeat their names
                full = self.bn + quantity
                if not _NAME.fullmatch(full):
                    return f"name {full[:60]!r} is not a valid SenML name (RFC 8428 §4.5.1)"
                self.valid_names.add(quantity)
        if "u" in record and not isinstance(unit, str):
            return f"u must be a string, not {json_type(unit)}"
        time = self._time(record.get("t", 0))
        if isinstance(time, str):
            return time
        value, metadata = self._value(record)
        if isinstance(value, str):
            return value
        part = quantity if quantity in _LOCATION else unit if quantity is None else None
        if part in _LOCATION:
            if unit is not None and unit != part:
                return f"a {part} record must be in unit {part!r} (degrees), not {unit!r}"
            self.location.setdefault(part, []).append((value, record))
            return None
        cache = quantity is not None and "u" not in record and metadata is _NO_METADATA
        return self._reading(quantity, unit, value, time, metadata, cache=cache)

    def _reading(
        self,
        quantity: str | None,
        unit: str | None,
        value: float,
        time: datetime,
        metadata: Mapping[str, Any],
        *,
        cache: bool = False,
    ) -> str | None:
        """Map the record to its sensor, convert its unit, append the reading."""
        sensor = self.ctx.sensors.get(quantity) if quantity is not None else None
        if quantity is None:
            if unit is None:
                return "record has no name (n) and no unit (u or bu): no sensor can be chosen"
            candidates = self._sensors_with_unit(unit)
            if len(candidates) != 1:
                if candidates:
                    names = ", ".join(sorted(s.quantity for s in candidates))
                    return f"record has no name (n) and several sensors have unit {unit!r}: {names}"
                return f"record has no name (n) and no sensor of the device has unit {unit!r}"
            sensor = candidates[0]
            quantity = sensor.quantity
        conv: Conversion | None = None
        if sensor is not None and sensor.unit:
            if unit is not None and unit != sensor.unit:
                conv = conversion(unit, sensor.unit)
                if conv is None:
                    return f"unit {unit!r} cannot be converted to the sensor's unit {sensor.unit!r}"
                value = conv.apply(value)
                if not math.isfinite(value):
                    return f"value is not finite after conversion to {sensor.unit!r}"
            unit = sensor.unit
        if cache:
            self.fast[quantity] = (unit, conv)
        self.readings.append(Reading(quantity, time, value, unit, metadata))
        return None

    def _sensors_with_unit(self, unit: str) -> list[Sensor]:
        if self.by_unit is None:
            self.by_unit = {}
            for sensor in self.ctx.sensors.values():
                self.by_unit.setdefault(sensor.unit, []).append(sensor)
        return self.by_unit.get(unit, [])

    def _time(self, raw: Any) -> datetime | str:
        """The record's resolved time as aware UTC, or the reason it cannot be one."""
        offset = finite(raw)
        if offset is None:
            return f"t must be a finite number, not {excerpt(raw)}"
        seconds = self.bt + offset
        cached = self.times.get(seconds)
        if cached is not None:
            return cached
        result: datetime | str
        if not math.isfinite(seconds):
            result = "time is not finite (bt + t)"
        elif seconds >= RELATIVE_LIMIT:
            if _MIN_SECONDS <= seconds < _MAX_SECONDS:
                result = utc_from_seconds(seconds)
            else:
                result = f"time {seconds} is outside 2000-01-01..2100-01-01"
        else:
            if _MIN_SECONDS <= self.received_seconds + seconds < _MAX_SECONDS:
                result = self.received + timedelta(seconds=seconds)
            else:
                result = f"relative time {seconds} s puts the reading outside 2000..2100"
        self.times[seconds] = result
        return result

    def _value(self, record: dict[str, Any]) -> tuple[float | str, Mapping[str, Any]]:
        """The record's numeric value (with bv/bs) and metadata, or the reason there is none."""
        raw = record.get("v")
        # fast path: a finite float `v` alone (x - x is 0.0 only for finite x)
        if type(raw) is float and raw - raw == 0.0 and _OTHER_VALUES.isdisjoint(record):
            if not self.bv:
                return raw, _NO_METADATA
            if math.isfinite(value := self.bv + raw):
                return value, _NO_METADATA
        present = [key for key in ("v", *_NON_NUMERIC) if key in record]
        has_sum = "s" in record
        if len(present) > 1:
            return f"more than one value field ({', '.join(present)})", {}
        if present and present[0] != "v":
            return f"non-numeric value ({present[0]}: values are numbers)", {}
        if not present and not has_sum:
            return "record has no value (v, vs, vb, vd or s)", {}
        total: float | None = None
        if has_sum:
            raw_sum = finite(record["s"])
            total = None if raw_sum is None else self.bs + raw_sum
            if total is None or not math.isfinite(total):
                return f"s must be a finite number, not {excerpt(record['s'])}", {}
            if not present:
                return total, {"senml": "sum"}
        raw = record["v"]
        number = finite(raw)
        if number is None:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return f"value is not finite ({excerpt(raw)})", {}
            return f"non-numeric value (v is {json_type(raw)})", {}
        value = self.bv + number if self.bv else number
        if not math.isfinite(value):
            return "value is not finite (bv + v)", {}
        return value, ({"sum": total} if total is not None else _NO_METADATA)

    def finish(self) -> DecodedPayload:
        """The decoded pack, the location parts paired and range-checked."""
        parts = {part: records[-1][0] for part, records in self.location.items()}  # last wins
        reasons: dict[str, str] = {}
        for part, value in parts.items():
            limit = _LOCATION[part]
            other = "lon" if part == "lat" else "lat"
            if not -limit <= value <= limit:
                reasons[part] = f"{part} {value} is outside -{limit:g}..{limit:g}"
            elif other not in parts:
                reasons[part] = f"{part} without {other}: a location needs both"
        if reasons:  # a location is both parts or nothing: every location record is a problem
            first = next(iter(reasons.values()))
            for part, records in self.location.items():
                reason = reasons.get(part) or f"{part} ignored: {first}"
                for _value, record in records:
                    self.problems.append(ReadingProblem(reason, excerpt(record), part))
        location = None
        if len(parts) == 2 and not reasons:
            location = GeoPoint(lat=parts["lat"], lon=parts["lon"])
        return DecodedPayload(readings=self.readings, problems=self.problems, location=location)
