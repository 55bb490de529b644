"""Decoder of the cityos JSON payload: `{"time": ..., "readings": {quantity: number}}` or a list."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from cityos.platform.config import Settings
from cityos.platform.domain.errors import InvalidInput, PayloadError
from cityos.platform.ports import DecodeContext, DecodedPayload, Reading, ReadingProblem
from cityos.platform.timefmt import parse_rfc3339

MAX_READINGS = 10_000  # per payload, over all entries of an array
MAX_ENTRIES = MAX_READINGS
MAX_QUANTITY_LENGTH = 128  # the id rules allow 63; longer keys are garbage, not quantities
EXCERPT_CHARS = 200
# Times outside these years are a device bug (seconds or microseconds sent instead of
# milliseconds, an unset clock), not a real observation; they would also be outside what the
# time-series stores can hold (InfluxDB: 1677..2262).
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
MIN_EPOCH_MS = 946_684_800_000  # MIN_TIME
MAX_EPOCH_MS = 4_102_444_800_000  # MAX_TIME
_SANE_RANGE = "2000-01-01..2100-01-01"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


class CityosJsonDecoder:
    """The `json` payload format of CONTRACT.md (pure: no I/O, no state)."""

    format = "json"

    def decode(self, payload: bytes, ctx: DecodeContext) -> DecodedPayload:
        """Decode one payload; whole-payload faults raise PayloadError, others are problems."""
        document = _parse(payload)
        if type(document) is dict:
            fast = _plain_object(document, ctx.received_at)
            if fast is not None:
                return DecodedPayload(fast)
        entries = _entries(document, payload)
        readings: list[Reading] = []
        problems: list[ReadingProblem] = []
        for entry, values in entries:
            _decode_entry(entry, values, ctx.received_at, readings, problems)
        return DecodedPayload(readings=readings, problems=problems)


def create_decoder(settings: Settings) -> CityosJsonDecoder:
    """Entry point of `cityos.decoders: json`."""
    return CityosJsonDecoder()


# ---------------------------------------------------------------- whole payload


def _parse(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"payload is not UTF-8: invalid byte 0x{payload[exc.start]:02x} at offset {exc.start}",
            excerpt=payload,
        ) from exc
    text = text.removeprefix("\ufeff")  # a byte-order mark is harmless; json refuses it
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"broken JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
            excerpt=payload,
        ) from exc
    except RecursionError as exc:
        raise PayloadError("JSON is nested too deeply", excerpt=payload) from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise PayloadError(f"broken JSON: {exc}", excerpt=payload) from exc


def _entries(document: Any, payload: bytes) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (entry, readings) pairs of the document, its structure checked."""
    if isinstance(document, dict):
        objects: list[Any] = [document]
    elif isinstance(document, list):
        if not document:
            raise PayloadError("empty JSON array: no readings", excerpt=payload)
        if len(document) > MAX_ENTRIES:
            raise PayloadError(
                f"too many entries: {len(document)} (at most {MAX_ENTRIES} per payload)",
                excerpt=payload,
            )
        objects = document
    else:
        raise PayloadError(
            f"top level must be a JSON object or array, not {_json_type(document)}",
            excerpt=payload,
        )
    entries: list[tuple[dict[str, Any], dict[str, Any]]] = []
    total = 0
    for index, entry in enumerate(objects):
        where = "" if isinstance(document, dict) else f"entry {index}: "
        if not isinstance(entry, dict):
            raise PayloadError(
                f"{where}expected a JSON object, got {_json_type(entry)}", excerpt=payload
            )
        if "readings" not in entry:
            raise PayloadError(f'{where}object has no "readings"', excerpt=payload)
        values = entry["readings"]
        if not isinstance(values, dict):
            raise PayloadError(
                f'{where}"readings" must be an object of quantity: number, '
                f"not {_json_type(values)}",
                excerpt=payload,
            )
        total += len(values)
        if total > MAX_READINGS:
            raise PayloadError(
                f"too many readings: more than {MAX_READINGS} per payload", excerpt=payload
            )
        entries.append((entry, values))
    if total == 0:
        raise PayloadError('payload holds no readings ("readings" is empty)', excerpt=payload)
    return entries


# ---------------------------------------------------------------- one entry


def _plain_object(document: dict[str, Any], received_at: datetime) -> list[Reading] | None:
    """The readings of the common case, or None when anything needs the careful path.

    The common case: one object, `time` absent, null, in-range epoch milliseconds or a valid
    RFC 3339 string, and
    1..MAX_READINGS readings that are all finite numbers under names of a sane length.
    """
    values = document.get("readings")
    if type(values) is not dict or not 0 < len(values) <= MAX_READINGS:
        return None
    raw_time = document.get("time")
    if raw_time is None:
        time = received_at
    elif type(raw_time) is int and MIN_EPOCH_MS <= raw_time < MAX_EPOCH_MS:
        time = _EPOCH + timedelta(milliseconds=raw_time)
    elif type(raw_time) is str:
        try:
            time = parse_rfc3339(raw_time, field="time", earliest=MIN_TIME, latest=MAX_TIME)
        except InvalidInput:
            return None
    else:
        return None
    readings = []
    for quantity, raw in values.items():
        kind = type(raw)
        if kind is int:
            raw = float(raw) if -(2**53) <= raw <= 2**53 else None
        elif kind is not float or raw - raw != 0.0:  # x - x is 0.0 only for finite x
            raw = None
        if raw is None or not 0 < len(quantity) <= MAX_QUANTITY_LENGTH:
            return None
        readings.append(Reading(quantity, time, raw, None, _NO_METADATA))
    return readings


def _decode_entry(
    entry: dict[str, Any],
    values: dict[str, Any],
    received_at: datetime,
    readings: list[Reading],
    problems: list[ReadingProblem],
) -> None:
    """Append the entry's readings, or a problem per reading that cannot be one."""
    time_problem: str | None = None
    time = received_at
    raw_time = entry.get("time")
    if raw_time is not None:  # absent or null: the receive time (CONTRACT.md)
        parsed = _parse_time(raw_time)
        if isinstance(parsed, str):
            time_problem = parsed
        else:
            time = parsed
    for quantity, raw in values.items():
        if not 0 < len(quantity) <= MAX_QUANTITY_LENGTH:
            problems.append(
                ReadingProblem(
                    f"quantity name must be 1..{MAX_QUANTITY_LENGTH} characters, "
                    f"got {len(quantity)}",
                    _reading_excerpt(quantity, raw, time_problem, raw_time),
                    quantity[:MAX_QUANTITY_LENGTH] or None,
                )
            )
            continue
        if time_problem is not None:
            problems.append(
                ReadingProblem(
                    time_problem, _reading_excerpt(quantity, raw, time_problem, raw_time), quantity
                )
            )
            continue
        value = _number(raw)
        if isinstance(value, str):
            problems.append(
                ReadingProblem(
                    value, _reading_excerpt(quantity, raw, time_problem, raw_time), quantity
                )
            )
            continue
        readings.append(Reading(quantity, time, value, None, _NO_METADATA))


def _reading_excerpt(quantity: str, raw: Any, time_problem: str | None, raw_time: Any) -> str:
    """The offending part of an entry: the reading, or the time when the time is bad."""
    return _excerpt({quantity: raw} if time_problem is None else {"time": raw_time})


def _number(raw: Any) -> float | str:
    """The reading's value as a finite float, or the reason it is not one."""
    if isinstance(raw, bool):  # bool is an int in Python, but true is not a measurement
        return "value must be a number, not a boolean"
    if isinstance(raw, int):
        try:
            return float(raw)
        except OverflowError:
            return "value is out of range for a float"
    if isinstance(raw, float):
        if not math.isfinite(raw):  # json reads NaN, Infinity and 1e999 without complaint
            return f"value is not finite ({raw})"
        return raw
    return f"value must be a number, not {_json_type(raw)}"


def _parse_time(raw: Any) -> datetime | str:
    """The entry's time as an aware UTC datetime, or the reason it cannot be one."""
    if isinstance(raw, bool):
        return "time must be an RFC 3339 string or epoch milliseconds, not a boolean"
    if isinstance(raw, int | float):
        if not (isinstance(raw, int) or math.isfinite(raw)):
            return f"time is not finite ({raw})"
        if not MIN_EPOCH_MS <= raw < MAX_EPOCH_MS:
            return (
                f"epoch milliseconds {raw} are outside {_SANE_RANGE} "
                "(seconds or microseconds sent instead of milliseconds?)"
            )
        return _EPOCH + timedelta(milliseconds=raw)
    if not isinstance(raw, str):
        return f"time must be an RFC 3339 string or epoch milliseconds, not {_json_type(raw)}"
    try:
        parsed = parse_rfc3339(raw, field="time", earliest=MIN_TIME, latest=MAX_TIME)
    except InvalidInput as exc:
        return str(exc)
    return parsed


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _excerpt(value: Any) -> str:
    """A short JSON rendering of the offending part."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):  # pragma: no cover - decoded JSON re-encodes
        text = repr(value)
    return text[:EXCERPT_CHARS]
