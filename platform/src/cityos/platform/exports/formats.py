"""File encoders: blocks of rows in, bytes out (CSV, NDJSON, Parquet), all built column-wise."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cityos.platform.domain.model import Sensor
from cityos.platform.exports.columns import (
    COLUMNS,
    QUALITIES,
    RowBlock,
    string_data,
    time_strings,
    timestamps,
)

ROW_GROUP_ROWS = 131_072
"""Rows per Parquet row group (readers skip and parallelise by row group; DuckDB writes
122,880): big enough for fast scans, small enough to keep the server's memory low."""
_CSV_STRUCTURAL = (",", '"', "\r", "\n")
_INTEGER_TEXT = r"^-?[0-9]+$"
"""A value Arrow wrote without a fraction or exponent ("0", "-5"): readers would see an int."""
_DICTIONARY_COLUMNS = ("sensor_id", "quantity", "unit", "quality")


class Encoder(Protocol):
    """Turns blocks of rows into a file's bytes: `begin`, `encode` per block, then `end`."""

    def begin(self) -> bytes:
        """The bytes before the first row (e.g. a header)."""
        ...

    def encode(self, block: RowBlock) -> bytes:
        """The bytes of a block's rows (may be empty while an encoder buffers)."""
        ...

    def end(self) -> bytes:
        """The remaining bytes (buffered rows, a footer)."""
        ...


class Sink:
    """A write-only file object whose bytes are taken out as they are written (never seeks)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Keep `data` until the next `take`."""
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        """Bytes written so far."""
        return self._position

    def flush(self) -> None:
        """Nothing is buffered beyond `take`."""

    def close(self) -> None:
        """Mark closed (the bytes stay until taken)."""
        self.closed = True

    def writable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """Never: archives written here use data descriptors."""
        return False

    def take(self) -> bytes:
        """The bytes written since the last `take`."""
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class CsvEncoder:
    """RFC 4180 CSV with a header line; a field is quoted only if it needs to be (a unit)."""

    def __init__(self, sensors: Sequence[Sensor]) -> None:
        self._middles = [
            "," + ",".join(csv_field(text) for text in (s.id, s.quantity, s.unit)) + ","
            for s in sensors
        ]
        self._endings = pa.array([f",{quality}\n" for quality in QUALITIES], pa.string())

    def begin(self) -> bytes:
        """The header line."""
        return (",".join(COLUMNS) + "\n").encode()

    def encode(self, block: RowBlock) -> bytes:
        """The block's rows as CSV lines (values in the shortest form that reads back exactly)."""
        if not len(block):
            return b""
        lines = pc.binary_join_element_wise(
            time_strings(block.times_ns),
            self._middles[block.sensor],
            value_strings(block.values),
            self._endings.take(block.qualities),
            "",
        )
        return string_data(lines)

    def end(self) -> bytes:
        """Nothing: CSV has no footer."""
        return b""


def csv_field(text: str) -> str:
    """A CSV field: as it is, or quoted (quotes doubled) when it holds a comma, quote or EOL."""
    if any(mark in text for mark in _CSV_STRUCTURAL):
        return '"' + text.replace('"', '""') + '"'
    return text


def value_strings(values: pa.DoubleArray) -> pa.StringArray:
    """Values in the shortest form that reads back to the same double, always as a float.

    Whole numbers get ".0" ("0.0", "-5.0", never "0"): pandas reads a CSV column of "0", "1"
    as int64 and JSON parsers give ints, while the value column is float64 everywhere else.
    Exponent forms ("1e+20") and "nan"/"inf" are floats to every reader already.
    """
    text: pa.StringArray = values.cast(pa.string())
    numbers = values.to_numpy(zero_copy_only=False)
    if not (numbers == np.trunc(numbers)).any():  # the common case: no whole number at all
        return text
    whole = pc.match_substring_regex(text, _INTEGER_TEXT)
    joined: pa.StringArray = pc.binary_join_element_wise(text, pc.if_else(whole, ".0", ""), "")
    return joined


class NdjsonEncoder:
    """One compact JSON object per line with the CSV's keys; non-finite values are null."""

    def __init__(self, sensors: Sequence[Sensor]) -> None:
        self._middles = [
            "".join(
                (
                    '","sensor_id":',
                    json.dumps(s.id),
                    ',"quantity":',
                    json.dumps(s.quantity),
                    ',"unit":',
                    json.dumps(s.unit),
                    ',"value":',
                )
            )
            for s in sensors
        ]
        self._qualities = pa.array([json.dumps(q) for q in QUALITIES], pa.string())

    def begin(self) -> bytes:
        """Nothing: NDJSON has no header."""
        return b""

    def encode(self, block: RowBlock) -> bytes:
        """The block's rows as JSON lines."""
        if not len(block):
            return b""
        values = pc.if_else(pc.is_finite(block.values), value_strings(block.values), "null")
        lines = pc.binary_join_element_wise(
            '{"time":"',
            time_strings(block.times_ns),
            self._middles[block.sensor],
            values,
            ',"quality":',
            self._qualities.take(block.qualities),
            "}\n",
            "",
        )
        return string_data(lines)

    def end(self) -> bytes:
        """Nothing: NDJSON has no footer."""
        return b""


def parquet_schema(sensors: Sequence[Sensor], metadata: Mapping[str, str]) -> pa.Schema:
    """The Parquet schema: aware UTC times, dictionary strings, float64 values, metadata."""
    return pa.schema(
        [
            ("time", pa.timestamp("ns", tz="UTC")),
            ("sensor_id", pa.dictionary(pa.int32(), pa.string())),
            ("quantity", pa.dictionary(pa.int32(), pa.string())),
            ("unit", pa.dictionary(pa.int32(), pa.string())),
            ("value", pa.float64()),
            ("quality", pa.dictionary(pa.int8(), pa.string())),
        ],
        metadata={key.encode(): value.encode() for key, value in metadata.items()},
    )


class ParquetEncoder:
    """Parquet (zstd) in row groups of `row_group_rows`, dictionaries fixed for the whole file.

    Deterministic: the same rows and metadata give the same bytes.
    """

    def __init__(
        self,
        sensors: Sequence[Sensor],
        metadata: Mapping[str, str],
        *,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        self._schema = parquet_schema(sensors, metadata)
        self._row_group_rows = row_group_rows
        quantities = list(dict.fromkeys(s.quantity for s in sensors))
        units = list(dict.fromkeys(s.unit for s in sensors))
        self._sensor_ids = pa.array([s.id for s in sensors], pa.string())
        self._quantities = pa.array(quantities, pa.string())
        self._units = pa.array(units, pa.string())
        self._quality_names = pa.array(QUALITIES, pa.string())
        self._indices = [
            (index, quantities.index(s.quantity), units.index(s.unit))
            for index, s in enumerate(sensors)
        ]
        self._sink = Sink()
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def begin(self) -> bytes:
        """Open the writer (the magic bytes come with the first row group)."""
        self._writer = pq.ParquetWriter(
            self._sink,
            self._schema,
            compression="zstd",
            # Only the repeated strings: a dictionary of times or values costs a big hash
            # table per row group and is dropped for plain encoding anyway.
            use_dictionary=list(_DICTIONARY_COLUMNS),
            write_statistics=True,
        )
        return self._sink.take()

    def encode(self, block: RowBlock) -> bytes:
        """Buffer the block; a full row group's bytes once enough rows are waiting."""
        if not len(block):
            return b""
        self._pending.append(self._batch(block))
        self._pending_rows += len(block)
        if self._pending_rows < self._row_group_rows:
            return b""
        return self._write_pending()

    def end(self) -> bytes:
        """The last row group and the footer."""
        data = self._write_pending()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return data + self._sink.take()

    def _batch(self, block: RowBlock) -> pa.RecordBatch:
        count = len(block)
        sensor, quantity, unit = self._indices[block.sensor]
        return pa.record_batch(
            [
                timestamps(block.times_ns),
                _constant(self._sensor_ids, sensor, count),
                _constant(self._quantities, quantity, count),
                _constant(self._units, unit, count),
                block.values,
                pa.DictionaryArray.from_arrays(block.qualities, self._quality_names),
            ],
            schema=self._schema,
        )

    def _write_pending(self) -> bytes:
        if self._writer is None:
            raise RuntimeError("ParquetEncoder.begin() was not called")
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(table, row_group_size=max(1, self._pending_rows))
            self._pending, self._pending_rows = [], 0
            pa.default_memory_pool().release_unused()  # the row group's buffers, back to the OS
        return self._sink.take()


def _constant(dictionary: pa.StringArray, index: int, count: int) -> pa.DictionaryArray:
    """A dictionary column whose every row is `dictionary[index]`."""
    indices = pa.repeat(pa.scalar(index, pa.int32()), count)
    return pa.DictionaryArray.from_arrays(indices, dictionary)
