"""Export rows as Arrow columns, one block at a time (no Python object per row)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cityos.platform.domain.model import Quality

COLUMNS = ("time", "sensor_id", "quantity", "unit", "value", "quality")
"""The columns of every export (CSV header, NDJSON keys, Parquet columns), in order."""
QUALITIES = tuple(quality.value for quality in Quality)
"""Quality values by index: `RowBlock.qualities` holds indices into this."""
OUTPUT_OFFSET = "+09:00"
"""Times out are RFC 3339 in +09:00 (CONTRACT.md), like GraphQL's."""
_OFFSET_NS = 9 * 3600 * 1_000_000_000
_NS = 1_000_000_000
_QUALITY_SET = pa.array(QUALITIES, pa.string())
_GOOD = Quality.GOOD.value
_OFFSET_BYTES = np.frombuffer(OUTPUT_OFFSET.encode(), np.uint8)
# "YYYY-MM-DDTHH:MM:SS" is 19 characters; a fraction adds 4, 7 or 10 (".123", ".123456", ...).
_SECONDS = 19
_WIDTHS = (_SECONDS, 23, 26, 29)  # in the order of the case_when conditions, the last: else


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Consecutive export rows of one sensor: its index in the plan, and three columns."""

    sensor: int
    times_ns: pa.Int64Array
    values: pa.DoubleArray
    qualities: pa.Int8Array  # indices into QUALITIES

    def __len__(self) -> int:
        return len(self.times_ns)


def row_block(
    sensor: int, times_ns: Sequence[int], values: Sequence[float], qualities: Sequence[str]
) -> RowBlock:
    """A block from plain columns (lists or arrays); ValueError on an unknown quality."""
    count = len(qualities)
    if qualities.count(_GOOD) == count:  # the common case, at a fraction of index_in's cost
        indices = pa.array(np.zeros(count, np.int8))
    else:
        names = pa.array(qualities, pa.string())
        found = pc.index_in(names, value_set=_QUALITY_SET)
        if found.null_count:
            unknown = pc.filter(names, pc.is_null(found))[0]
            raise ValueError(f"unknown quality {unknown.as_py()!r} from the store")
        indices = found.cast(pa.int8())
    return RowBlock(
        sensor=sensor,
        times_ns=pa.array(_numbers(times_ns, np.int64)),
        values=pa.array(_numbers(values, np.float64)),
        qualities=indices,
    )


def good_block(sensor: int, times_ns: Sequence[int], values: Sequence[float]) -> RowBlock:
    """A block whose rows are all of good quality (aggregated windows)."""
    return RowBlock(
        sensor=sensor,
        times_ns=pa.array(_numbers(times_ns, np.int64)),
        values=pa.array(_numbers(values, np.float64)),
        qualities=pa.array(np.zeros(len(times_ns), np.int8)),
    )


def _numbers(
    column: Sequence[Any] | np.ndarray[Any, Any], dtype: type[np.generic]
) -> np.ndarray[Any, Any]:
    """A column as a numpy array (no copy if it is one already)."""
    if isinstance(column, np.ndarray):
        return np.asarray(column, dtype=dtype)
    return np.fromiter(column, dtype=dtype, count=len(column))


def time_strings(times_ns: pa.Int64Array) -> pa.StringArray:
    """RFC 3339 in +09:00, fractions only when needed (ms, µs, ns digits), like GraphQL's.

    Times must be in 1970..9999 (exports: 1970..2100).
    """
    local = np.asarray(times_ns.to_numpy(zero_copy_only=False)) + _OFFSET_NS
    seconds, fraction = np.divmod(local, _NS)
    if not fraction.any():
        fixed = _whole_seconds(seconds)
        if fixed is not None:
            return fixed
    text = pa.array(local).cast(pa.timestamp("ns")).cast(pa.string())  # "... HH:MM:SS.fffffffff"
    text = pc.binary_replace_slice(text, 10, 11, "T")
    conditions = pa.StructArray.from_arrays(
        [
            pa.array(fraction == 0),
            pa.array(fraction % 1_000_000 == 0),
            pa.array(fraction % 1_000 == 0),
        ],
        names=["s", "ms", "us"],
    )
    trimmed = pc.case_when(
        conditions,
        *(pc.utf8_slice_codeunits(text, 0, width) for width in _WIDTHS),
    )
    return pc.binary_join_element_wise(trimmed, OUTPUT_OFFSET, "")


def _whole_seconds(seconds: np.ndarray[Any, Any]) -> pa.StringArray | None:
    """Fixed-width times of whole seconds, built in one buffer; None if not fixed width."""
    count = len(seconds)
    text = pa.array(seconds).cast(pa.timestamp("s")).cast(pa.string())  # "YYYY-MM-DD HH:MM:SS"
    _validity, offsets, data = text.buffers()
    if text.offset or data is None or data.size < _SECONDS * count:
        return None
    if np.frombuffer(offsets, np.int32)[count] != _SECONDS * count:
        return None  # a year of more than four digits
    width = _SECONDS + len(_OFFSET_BYTES)
    out = np.empty((count, width), np.uint8)
    out[:, :_SECONDS] = np.frombuffer(data, np.uint8, _SECONDS * count).reshape(count, _SECONDS)
    out[:, 10] = ord("T")
    out[:, _SECONDS:] = _OFFSET_BYTES
    starts = np.arange(0, width * (count + 1), width, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(starts), pa.py_buffer(out))


def timestamps(times_ns: pa.Int64Array) -> pa.TimestampArray:
    """Epoch nanoseconds as timezone-aware (UTC) Arrow timestamps."""
    stamps: pa.TimestampArray = times_ns.cast(pa.timestamp("ns", tz="UTC"))
    return stamps


def string_data(column: pa.StringArray) -> bytes:
    """All strings of a column (no nulls) concatenated, straight from its data buffer."""
    if len(column) == 0:
        return b""
    _validity, offsets_buffer, data = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)
    first, last = offsets[column.offset], offsets[column.offset + len(column)]
    return data.slice(int(first), int(last - first)).to_pybytes() if data is not None else b""
