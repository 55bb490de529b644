"""Export encoders read back by independent readers: pandas, pyarrow.parquet, json, zipfile."""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityos.platform.domain.model import Domain, GeoPoint, Sensor
from cityos.platform.exports.bundle import DATA_NAME, zip_chunks
from cityos.platform.exports.columns import COLUMNS, row_block, string_data, time_strings
from cityos.platform.exports.formats import CsvEncoder, Encoder, NdjsonEncoder, ParquetEncoder
from cityos.platform.timefmt import format_rfc3339
from testkit.memory_store import to_ns

SENSORS = (
    Sensor("omaezaki-port.tide_level", "omaezaki-port", "tide_level", "m", Domain.DISASTER, "T"),
    Sensor("city-hall.wbgt", "city-hall", "wbgt", "Cel", Domain.HEALTH, "W", GeoPoint(34.6, 138.2)),
)
T0 = datetime(2026, 11, 1, tzinfo=UTC)
METADATA = {"cityos.licence": "CC BY 4.0", "cityos.query": '{"sensor": ["x"]}'}


def blocks(rows: int = 5, *, size: int = 2) -> list:  # type: ignore[type-arg]
    """Rows of both sensors in blocks of `size`: minute steps, a quality of each kind."""
    made = []
    for sensor in range(len(SENSORS)):
        times = [to_ns(T0 + timedelta(minutes=i)) for i in range(rows)]
        values = [sensor * 100 + i / 8 for i in range(rows)]
        qualities = [("good", "suspect", "bad")[i % 3] for i in range(rows)]
        for first in range(0, rows, size):
            made.append(
                row_block(
                    sensor,
                    times[first : first + size],
                    values[first : first + size],
                    qualities[first : first + size],
                )
            )
    return made


def encode(encoder: Encoder, parts: list) -> bytes:  # type: ignore[type-arg]
    return b"".join([encoder.begin(), *(encoder.encode(b) for b in parts), encoder.end()])


def expected(rows: int = 5) -> list[tuple[datetime, str, str, str, float, str]]:
    return [
        (
            T0 + timedelta(minutes=i),
            s.id,
            s.quantity,
            s.unit,
            n * 100 + i / 8,
            ("good", "suspect", "bad")[i % 3],
        )
        for n, s in enumerate(SENSORS)
        for i in range(rows)
    ]


# ---------------------------------------------------------------- times


def test_times_read_like_graphql_with_fractions_only_when_needed() -> None:
    moments = [
        T0,
        T0 + timedelta(milliseconds=5),
        T0 + timedelta(microseconds=120),
        T0 + timedelta(seconds=59),
    ]
    times = [to_ns(m) for m in moments] + [to_ns(T0) + 7]
    assert time_strings(pa.array(times, pa.int64())).to_pylist() == [
        "2026-11-01T09:00:00+09:00",
        "2026-11-01T09:00:00.005+09:00",
        "2026-11-01T09:00:00.000120+09:00",
        "2026-11-01T09:00:59+09:00",
        "2026-11-01T09:00:00.000000007+09:00",
    ]
    whole = time_strings(pa.array([to_ns(T0)] * 3, pa.int64())).to_pylist()
    assert whole == ["2026-11-01T09:00:00+09:00"] * 3


@given(
    st.lists(
        st.datetimes(
            min_value=datetime(1970, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
        ),
        min_size=1,
        max_size=20,
    )
)
def test_times_equal_format_rfc3339_for_any_microsecond_time(moments: list[datetime]) -> None:
    texts = time_strings(pa.array([to_ns(m) for m in moments], pa.int64())).to_pylist()
    assert texts == [format_rfc3339(m) for m in moments]


@given(st.lists(st.integers(min_value=0, max_value=4_102_444_799), min_size=1, max_size=20))
def test_whole_second_times_take_the_fixed_width_path_and_agree(seconds: list[int]) -> None:
    moments = [datetime.fromtimestamp(s, UTC) for s in seconds]
    texts = time_strings(pa.array([s * 1_000_000_000 for s in seconds], pa.int64())).to_pylist()
    assert texts == [format_rfc3339(m) for m in moments]


def test_string_data_is_the_concatenated_strings_of_a_slice() -> None:
    column = pa.array(["ab", "c", "", "def"])
    assert string_data(column) == b"abcdef"
    assert string_data(column.slice(1, 3)) == b"cdef"
    assert string_data(column.slice(0, 0)) == b""


def test_unknown_quality_from_a_store_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown quality 'great'"):
        row_block(0, [1], [1.0], ["great"])


# ---------------------------------------------------------------- CSV


def test_csv_reads_back_with_pandas() -> None:
    data = encode(CsvEncoder(SENSORS), blocks())
    lines = data.decode().splitlines()
    assert lines[0] == "time,sensor_id,quantity,unit,value,quality"
    assert lines[1] == "2026-11-01T09:00:00+09:00,omaezaki-port.tide_level,tide_level,m,0.0,good"
    assert '"' not in data.decode()
    frame = pd.read_csv(io.BytesIO(data))
    assert list(frame.columns) == list(COLUMNS)
    times = pd.to_datetime(frame["time"], format="ISO8601")
    got = [
        (t.to_pydatetime().astimezone(UTC), s, q, u, v, k)
        for t, s, q, u, v, k in zip(times, *(frame[c] for c in COLUMNS[1:]), strict=True)
    ]
    assert got == expected()


WHOLE = [0.0, -0.0, 1.0, -5.0, 42.0, 123456789012.0, 1e20, 2.0**53]


def test_a_csv_column_of_whole_numbers_reads_back_as_float64() -> None:
    block = row_block(0, [to_ns(T0)] * len(WHOLE), WHOLE, ["good"] * len(WHOLE))
    data = encode(CsvEncoder(SENSORS), [block])
    values = [line.split(",")[4] for line in data.decode().splitlines()[1:4]]
    assert values == ["0.0", "-0.0", "1.0"]
    frame = pd.read_csv(io.BytesIO(data))
    assert frame["value"].dtype == "float64"
    assert frame["value"].tolist() == WHOLE
    assert math.copysign(1, frame["value"][1]) == -1


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=50))
def test_csv_values_read_back_as_the_same_doubles(values: list[float]) -> None:
    block = row_block(0, [to_ns(T0)] * len(values), values, ["good"] * len(values))
    frame = pd.read_csv(io.BytesIO(encode(CsvEncoder(SENSORS), [block])))
    assert frame["value"].dtype == "float64"
    assert frame["value"].tolist() == values


def test_csv_quotes_when_a_unit_needs_it() -> None:
    odd = (Sensor("lab-1.odd", "lab-1", "odd", 'p,"q"', Domain.TOURISM, "odd"),)
    data = encode(CsvEncoder(odd), [row_block(0, [to_ns(T0)], [1.5], ["good"])])
    assert (
        data.decode().splitlines()[1]
        == '2026-11-01T09:00:00+09:00,lab-1.odd,odd,"p,""q""",1.5,good'
    )
    frame = pd.read_csv(io.BytesIO(data))
    assert frame["unit"].tolist() == ['p,"q"']
    assert frame["value"].tolist() == [1.5]


def test_an_empty_csv_is_the_header_alone() -> None:
    assert encode(CsvEncoder(SENSORS), []) == b"time,sensor_id,quantity,unit,value,quality\n"


# ---------------------------------------------------------------- NDJSON


def test_ndjson_lines_are_json_objects_with_the_columns_as_keys() -> None:
    data = encode(NdjsonEncoder(SENSORS), blocks())
    documents = [json.loads(line) for line in data.decode().splitlines()]
    assert all(list(d) == list(COLUMNS) for d in documents)
    got = [
        (datetime.fromisoformat(d["time"]).astimezone(UTC), *(d[c] for c in COLUMNS[1:]))
        for d in documents
    ]
    assert got == expected()
    assert data.endswith(b"}\n")


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_ndjson_values_round_trip_exactly_and_non_finite_ones_are_null(
    values: list[float],
) -> None:
    block = row_block(0, [to_ns(T0)] * len(values), values, ["good"] * len(values))
    data = encode(NdjsonEncoder(SENSORS), [block])
    got = [json.loads(line)["value"] for line in data.splitlines()]
    assert got == [v if math.isfinite(v) else None for v in values]
    assert all(isinstance(v, float) for v in got if v is not None)


def test_ndjson_writes_whole_numbers_as_floats() -> None:
    block = row_block(0, [to_ns(T0)] * len(WHOLE), WHOLE, ["good"] * len(WHOLE))
    lines = encode(NdjsonEncoder(SENSORS), [block]).decode().splitlines()
    assert '"value":0.0,' in lines[0]
    assert '"value":-5.0,' in lines[3]
    got = [json.loads(line)["value"] for line in lines]
    assert got == WHOLE
    assert all(type(v) is float for v in got)
    frame = pd.read_json(io.StringIO("\n".join(lines)), lines=True)
    assert frame["value"].dtype == "float64"


def test_ndjson_escapes_what_json_must() -> None:
    odd = (Sensor("lab-1.odd", "lab-1", "odd", 'p"\\q', Domain.TOURISM, "odd"),)
    data = encode(NdjsonEncoder(odd), [row_block(0, [to_ns(T0)], [2.0], ["bad"])])
    assert json.loads(data)["unit"] == 'p"\\q'


# ---------------------------------------------------------------- Parquet


def test_parquet_schema_metadata_row_groups_and_values() -> None:
    encoder = ParquetEncoder(SENSORS, METADATA, row_group_rows=4)
    data = encode(encoder, blocks(9, size=3))
    file = pq.ParquetFile(io.BytesIO(data))
    assert file.metadata.num_row_groups > 1
    assert file.metadata.num_rows == 18
    schema = file.schema_arrow
    assert schema.names == list(COLUMNS)
    assert schema.field("time").type == pa.timestamp("ns", tz="UTC")
    assert schema.field("value").type == pa.float64()
    for name in ("sensor_id", "quantity", "unit", "quality"):
        assert pa.types.is_dictionary(schema.field(name).type), name
    kv = file.metadata.metadata
    assert kv[b"cityos.licence"] == b"CC BY 4.0"
    assert json.loads(kv[b"cityos.query"]) == {"sensor": ["x"]}
    table = pq.read_table(io.BytesIO(data))
    got = list(zip(*(table.column(c).to_pylist() for c in COLUMNS), strict=True))
    assert got == expected(9)


def test_parquet_bytes_are_the_same_every_time() -> None:
    first = encode(ParquetEncoder(SENSORS, METADATA, row_group_rows=4), blocks(9, size=3))
    second = encode(ParquetEncoder(SENSORS, METADATA, row_group_rows=4), blocks(9, size=3))
    assert first == second


def test_parquet_streams_row_groups_as_they_fill() -> None:
    encoder = ParquetEncoder(SENSORS, METADATA, row_group_rows=4)
    begun = encoder.begin()
    sizes = [len(encoder.encode(b)) for b in blocks(9, size=3)]
    assert sizes[0] == 0  # 3 rows wait for a row group
    assert sizes[1] > 0  # 6 rows: one row group is out
    rest = encoder.end()
    assert rest.endswith(b"PAR1")
    assert begun == b"" or begun == b"PAR1"


def test_an_empty_parquet_file_still_has_the_schema() -> None:
    data = encode(ParquetEncoder(SENSORS, METADATA), [])
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 0
    assert table.column_names == list(COLUMNS)


# ---------------------------------------------------------------- zip


def test_zip_holds_the_csv_then_manifest_and_readme() -> None:
    csv = encode(CsvEncoder(SENSORS), blocks())
    generated = datetime(2026, 11, 28, 3, 4, 6, tzinfo=UTC)
    manifest = {"sha256": hashlib.sha256(csv).hexdigest(), "row_count": 10, "licence": "CC BY"}
    pieces = list(
        zip_chunks(iter([csv[:50], csv[50:]]), generated_at=generated, manifest=lambda: manifest)
    )
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [DATA_NAME, "manifest.json", "README.txt"]
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
        assert archive.getinfo(DATA_NAME).date_time == (2026, 11, 28, 12, 4, 6)  # Japan time
        assert archive.read(DATA_NAME) == csv
        assert json.loads(archive.read("manifest.json")) == manifest
        readme = archive.read("README.txt").decode()
    assert "as CSV" in readme
    assert "CC BY" in readme
    assert "sha256" in readme
