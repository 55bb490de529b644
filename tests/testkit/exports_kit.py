"""Helpers for export tests through the real app: data, GraphQL pages, independent readers.

Readers use pandas.read_csv, pyarrow.parquet and json.loads line by line; all return rows as
`(time UTC, sensor_id, quantity, unit, value, quality)` so any format compares with GraphQL.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from cityos.platform.domain.model import Device, Domain, GeoPoint, Observation, Quality, Sensor
from cityos.platform.runtime import Runtime

ExportRow = tuple[datetime, str, str, str, float, str]
COLUMNS = ["time", "sensor_id", "quantity", "unit", "value", "quality"]
SENSORS = {
    "omaezaki-port.tide_level": (Domain.DISASTER, "m", GeoPoint(34.59, 138.22)),
    "omaezaki-port.water_temperature": (Domain.DISASTER, "Cel", GeoPoint(34.59, 138.22)),
    "omaezaki-cape.wind_speed": (Domain.TOURISM, "m/s", None),
    "city-hall.wbgt": (Domain.HEALTH, "Cel", GeoPoint(34.64, 138.13)),
}
GRAPHQL_SERIES = (
    "query($id: ID!, $from: DateTime!, $to: DateTime!, $every: Duration, $aggregate: Aggregate,"
    " $after: String) { observations(sensorId: $id, from: $from, to: $to, every: $every,"
    " aggregate: $aggregate, first: 5000, after: $after) {"
    " nodes { time value quality } pageInfo { hasNextPage endCursor } } }"
)


def sensors() -> dict[str, Sensor]:
    """The test sensors by id."""
    made = {}
    for sensor_id, (domain, unit, location) in SENSORS.items():
        device_id, quantity = sensor_id.split(".")
        made[sensor_id] = Sensor(
            sensor_id, device_id, quantity, unit, domain, f"{device_id} {quantity}", location
        )
    return made


def value_at(index: int, minute: int) -> float:
    """An irregular value (many digits, negative ones too)."""
    return 20 * math.sin(minute / 431 + index) + 0.001 * (minute % 997) - index / 3


def seed(runtime: Runtime, *, start: datetime, minutes: int, batch: int = 20_000) -> None:
    """Register the sensors; write one value a minute per sensor (gaps, other qualities).

    Every 1000 minutes the next 100 are missing; every 97th value is suspect, every 331st bad;
    every 10th minute's time carries 250 ms (times with a fraction).
    """
    made = sensors()
    for device_id in dict.fromkeys(s.device_id for s in made.values()):
        mine = [s for s in made.values() if s.device_id == device_id]
        device = Device(device_id, device_id.title(), mine[0].domain, "json", mine[0].location)
        runtime.catalog.add_device(device, mine)
    for index, (sensor_id, sensor) in enumerate(made.items()):
        observations = [
            Observation(
                sensor_id,
                start + timedelta(minutes=m, milliseconds=250 if m % 10 == 5 else 0),
                value_at(index, m),
                Quality.BAD if m % 331 == 3 else Quality.SUSPECT if m % 97 == 5 else Quality.GOOD,
            )
            for m in range(minutes)
            if m % 1000 < 900
        ]
        for first in range(0, len(observations), batch):
            runtime.store.write(observations[first : first + batch], sensors={sensor_id: sensor})


def graphql_rows(
    http: TestClient | httpx.Client,
    token: str | None,
    sensor: Sensor,
    start: str,
    end: str,
    *,
    every: str | None = None,
    aggregate: str | None = None,
) -> list[ExportRow]:
    """Every observation (or window) GraphQL returns for the range, paged, as export rows."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    rows: list[ExportRow] = []
    after = None
    while True:
        variables: dict[str, Any] = {"id": sensor.id, "from": start, "to": end, "after": after}
        if every is not None:
            variables |= {"every": every, "aggregate": (aggregate or "mean").upper()}
        response = http.post(
            "/graphql", json={"query": GRAPHQL_SERIES, "variables": variables}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        page = body["data"]["observations"]
        rows += [
            (
                datetime.fromisoformat(node["time"]).astimezone(UTC),
                sensor.id,
                sensor.quantity,
                sensor.unit,
                float(node["value"]),
                node["quality"].lower(),
            )
            for node in page["nodes"]
        ]
        if not page["pageInfo"]["hasNextPage"]:
            return rows
        after = page["pageInfo"]["endCursor"]


def rows_of_csv(data: bytes) -> list[ExportRow]:
    """Rows of a CSV export as pandas.read_csv reads it."""
    frame = pd.read_csv(io.BytesIO(data), dtype={c: str for c in COLUMNS if c != "value"})
    assert list(frame.columns) == COLUMNS
    times = pd.to_datetime(frame["time"], format="ISO8601")
    assert str(times.dt.tz) == "UTC+09:00", times.dt.tz
    return [
        (t.to_pydatetime().astimezone(UTC), s, q, u, float(v), k)
        for t, s, q, u, v, k in zip(times, *(frame[c] for c in COLUMNS[1:]), strict=True)
    ]


def rows_of_ndjson(data: bytes) -> list[ExportRow]:
    """Rows of an NDJSON export, json.loads line by line."""
    rows = []
    for line in data.decode().splitlines():
        document = json.loads(line)
        assert list(document) == COLUMNS
        moment = datetime.fromisoformat(document["time"])
        assert moment.utcoffset() == timedelta(hours=9)
        rows.append((moment.astimezone(UTC), *(document[c] for c in COLUMNS[1:])))
    return rows  # type: ignore[return-value]


def rows_of_parquet(data: bytes) -> list[ExportRow]:
    """Rows of a Parquet export as pyarrow reads them (aware times)."""
    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == COLUMNS
    columns = [table.column(c).to_pylist() for c in COLUMNS]
    assert all(t.tzinfo is not None for t in columns[0][:5])
    return [(t.astimezone(UTC), *rest) for t, *rest in zip(*columns, strict=True)]


def unzip(data: bytes) -> tuple[bytes, dict[str, Any], str]:
    """The CSV, the manifest and the README of a zip export (names and order checked)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["observations.csv", "manifest.json", "README.txt"]
        return (
            archive.read("observations.csv"),
            json.loads(archive.read("manifest.json")),
            archive.read("README.txt").decode(),
        )


def rows_of(data: bytes, export_format: str) -> list[ExportRow]:
    """Rows of an export in any format (zip: of its CSV)."""
    if export_format == "zip":
        return rows_of_csv(unzip(data)[0])
    reader = {"csv": rows_of_csv, "ndjson": rows_of_ndjson, "parquet": rows_of_parquet}
    return reader[export_format](data)


def export_params(
    sensor_ids: Sequence[str], start: str, end: str, export_format: str, **extra: str
) -> list[tuple[str, str]]:
    """Query parameters of GET /exports/observations."""
    return [
        *(("sensor", s) for s in sensor_ids),
        ("from", start),
        ("to", end),
        ("format", export_format),
        *extra.items(),
    ]
