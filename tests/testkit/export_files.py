"""Read export files back with independent readers (pandas, pyarrow, json, zipfile) for tests.

Every reader returns the same normalized rows, so a test compares any format with the store.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow.parquet as pq

from cityos.platform.domain.model import Observation, Sensor

COLUMNS = ["time", "sensor_id", "quantity", "unit", "value", "quality"]
"""The export's columns, in order (CONTRACT)."""


class Row(NamedTuple):
    """One exported row; time in UTC, value None for an empty window."""

    time: datetime
    sensor_id: str
    quantity: str
    unit: str
    value: float | None
    quality: str


def expected_rows(sensor: Sensor, observations: list[Observation]) -> list[Row]:
    """The rows an export of these stored observations must hold."""
    return [
        Row(o.time.astimezone(UTC), sensor.id, sensor.quantity, sensor.unit, o.value, o.quality)
        for o in observations
    ]


def _value(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return float(value)


def _rows_of_frame(frame: pd.DataFrame) -> list[Row]:
    assert list(frame.columns) == COLUMNS, list(frame.columns)
    times = pd.to_datetime(frame["time"], format="ISO8601")
    assert times.dt.tz is not None, "times must carry an offset"
    return [
        Row(
            time.to_pydatetime().astimezone(UTC),
            str(sensor_id),
            str(quantity),
            str(unit),
            _value(value),
            str(quality),
        )
        for time, sensor_id, quantity, unit, value, quality in zip(
            times,
            frame["sensor_id"],
            frame["quantity"],
            frame["unit"],
            frame["value"],
            frame["quality"],
            strict=True,
        )
    ]


def read_csv(data: bytes) -> list[Row]:
    """Rows of a CSV export, read with pandas.read_csv (times must have an offset)."""
    frame = pd.read_csv(io.BytesIO(data), dtype={"sensor_id": str, "unit": str, "quality": str})
    for text in frame["time"].head(3):
        assert text[-6:-5] in ("+", "-"), f"time without an offset: {text}"
        assert text[-3] == ":", f"time without an offset: {text}"
    return _rows_of_frame(frame)


def read_ndjson(data: bytes) -> list[Row]:
    """Rows of an NDJSON export, one json.loads per line."""
    rows = []
    for line in data.decode("utf-8").splitlines():
        document = json.loads(line)
        assert list(document) == COLUMNS, list(document)
        rows.append(
            Row(
                datetime.fromisoformat(document["time"]).astimezone(UTC),
                document["sensor_id"],
                document["quantity"],
                document["unit"],
                _value(document["value"]),
                document["quality"],
            )
        )
    return rows


def read_parquet(data: bytes) -> list[Row]:
    """Rows of a Parquet export, read with pyarrow (timestamps must be timezone-aware)."""
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == COLUMNS, table.column_names
    assert getattr(table.schema.field("time").type, "tz", None), "time must be tz-aware"
    columns = [table.column(name).to_pylist() for name in COLUMNS]
    return [
        Row(time.astimezone(UTC), sensor_id, quantity, unit, _value(value), quality)
        for time, sensor_id, quantity, unit, value, quality in zip(*columns, strict=True)
    ]


READERS = {"csv": read_csv, "ndjson": read_ndjson, "parquet": read_parquet}


def read_zip(data: bytes) -> tuple[list[Row], dict[str, Any]]:
    """Rows of the data file in a zip export, and its manifest (whose sha256 is checked)."""
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = bundle.namelist()
        manifest_name = next(name for name in names if name.endswith("manifest.json"))
        manifest: dict[str, Any] = json.loads(bundle.read(manifest_name))
        data_names = [
            name for name in names if name.rsplit(".", 1)[-1] in READERS and "README" not in name
        ]
        assert len(data_names) == 1, names
        content = bundle.read(data_names[0])
    assert manifest["sha256"] == hashlib.sha256(content).hexdigest()
    rows = READERS[data_names[0].rsplit(".", 1)[-1]](content)
    assert manifest["row_count"] == len(rows)
    return rows, manifest


def read_export(path: Path, export_format: str) -> list[Row]:
    """Rows of an export file of any format."""
    data = path.read_bytes()
    if export_format == "zip":
        return read_zip(data)[0]
    return READERS[export_format](data)
