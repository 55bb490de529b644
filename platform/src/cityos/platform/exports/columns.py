"""Export rows as Arrow columns, one block at a time (no Python object per row)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
# "YYYY-MM-DDTHH:MM:SS" is 19 characters; a fraction adds 4, 7 or 10 (".123", ".123456", ...).
_SECONDS, _MILLIS, _MICROS, _NANOS = 19, 23, 26, 29


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
    indices = pc.index_in(pa.array(qualities, pa.string()), value_set=_QUALITY_SET)
    if indices.null_count:
        unknown = pc.filter(pa.array(qualities, pa.string()), pc.is_null(indices))[0]
        raise ValueError(f"unknown quality {unknown.as_py()!r} from the store")
    return RowBlock(
        sensor=sensor,
        times_ns=pa.array(times_ns, pa.int64()),
        values=pa.array(values, pa.float64()),
        qualities=indices.cast(pa.int8()),
    )


def good_block(sensor: int, times_ns: Sequence[int], values: Sequence[float]) -> RowBlock:
    """A block whose rows are all of good quality (aggregated windows)."""
    return RowBlock(
        sensor=sensor,
        times_ns=pa.array(times_ns, pa.int64()),
        values=pa.array(values, pa.float64()),
        qualities=pa.array(np.zeros(len(times_ns), np.int8)),
    )


def time_strings(times_ns: pa.Int64Array) -> pa.StringArray:
    """RFC 3339 in +09:00, fractions only when needed (ms, µs, ns digits), like GraphQL's.

    Times must be at or after 1970 (the exports' earliest time).
    """
    local = pc.add(times_ns, _OFFSET_NS)
    text = local.cast(pa.timestamp("ns")).cast(pa.string())  # "YYYY-MM-DD HH:MM:SS.fffffffff"
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    fraction = np.asarray(local.to_numpy(zero_copy_only=False)) % _NS
    if not fraction.any():
        trimmed = pc.utf8_slice_codeunits(text, 0, _SECONDS)
    else:
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
            pc.utf8_slice_codeunits(text, 0, _SECONDS),
            pc.utf8_slice_codeunits(text, 0, _MILLIS),
            pc.utf8_slice_codeunits(text, 0, _MICROS),
            pc.utf8_slice_codeunits(text, 0, _NANOS),
        )
    joined: pa.StringArray = pc.binary_join_element_wise(trimmed, OUTPUT_OFFSET, "")
    return joined


def repeated(value: str, count: int) -> pa.StringArray:
    """A string column holding one value `count` times."""
    column: pa.StringArray = pa.repeat(pa.scalar(value, pa.string()), count)
    return column


def quality_strings(qualities: pa.Int8Array) -> pa.StringArray:
    """The quality names of a block's quality indices."""
    names: pa.StringArray = _QUALITY_SET.take(qualities)
    return names


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
