"""Exports on a real influxd: big files (Parquet row groups), GraphQL equality, a client that
goes away mid-stream against a real uvicorn server, and a store that is down at plan time."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from apikit import BASE, fetch_token
from cityos.auth import hashing
from cityos.platform.api.app import create_app
from cityos.platform.config import Settings, TimeSeriesSettings
from cityos.platform.domain.model import Device, Domain, Observation, Quality, Sensor
from cityos.platform.ports import ObservationBlock, TimeSeriesStore
from cityos.platform.runtime import Runtime
from testkit.exports_kit import export_params, graphql_rows, rows_of, seed, sensors
from testkit.influxd import Influxd, running_influxd
from testkit.served import served

START = datetime(2026, 11, 19, 15, tzinfo=UTC)  # 2026-11-20 00:00 JST
FROM, TO = "2026-11-20T00:00:00+09:00", "2026-12-10T00:00:00+09:00"
TIDE, WATER, WIND, WBGT = list(sensors())
BIG = [f"big-buoy.{q}" for q in ("wave_height", "wave_period", "water_temperature")]
BIG_STEP = timedelta(seconds=5)
BIG_POINTS = 7 * 24 * 720  # a week of 5 s readings per sensor: 120,960
BIG_FROM, BIG_TO = "2026-11-20T00:00:00+09:00", "2026-11-27T00:00:00+09:00"


class StreamSpy:
    """The real store, with its streams counted: how many are open, how many were closed."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store
        self.open = 0
        self.closed = 0
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def stream_range(self, **kwargs: Any) -> Generator[ObservationBlock, None, None]:
        inner = self.store.stream_range(**kwargs)
        with self.lock:
            self.open += 1
        try:
            yield from inner
        finally:
            inner.close()  # type: ignore[attr-defined]
            with self.lock:
                self.open -= 1
                self.closed += 1


@dataclass
class Stack:
    runtime: Runtime
    spy: StreamSpy
    http: TestClient
    token: str
    influxd: Influxd
    database: str


def _seed_big(runtime: Runtime) -> None:
    made = [
        Sensor(sid, "big-buoy", sid.split(".")[1], unit, Domain.DISASTER, sid)
        for sid, unit in zip(BIG, ("m", "s", "Cel"), strict=True)
    ]
    runtime.catalog.add_device(Device("big-buoy", "Big buoy", Domain.DISASTER, "json"), made)
    for index, sensor in enumerate(made):
        points = [
            Observation(
                sensor.id,
                START + i * BIG_STEP,
                index + (i % 7919) / 1000 + i * 1e-7,
                Quality.SUSPECT if i % 1013 == 1 else Quality.GOOD,
            )
            for i in range(BIG_POINTS)
        ]
        for first in range(0, len(points), 20_000):
            runtime.store.write(points[first : first + 20_000], sensors={sensor.id: sensor})


@pytest.fixture(scope="module")
def stack(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database = influxd.new_database()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing, "ITERATIONS", 1000)
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("exports-influx") / "data",
            timeseries=TimeSeriesSettings(backend="influxdb", url=influxd.url, database=database),
        )
        runtime = Runtime.open(settings)
        seed(runtime, start=START, minutes=20 * 24 * 60)
        _seed_big(runtime)
        spy = StreamSpy(runtime.store)
        runtime.store = spy  # type: ignore[assignment]
        http = TestClient(create_app(runtime), base_url=BASE)
        scopes = frozenset({"export:read", "disaster:read", "tourism:read", "health:read"})
        secret = runtime.require_auth().add_client(name="lab", scopes=scopes)
        token = fetch_token(http, secret).access_token
        yield Stack(runtime, spy, http, token, influxd, database)
        runtime.close()
        influxd.drop_database(database)


def _get(stack: Stack, params: list[tuple[str, str]], path: str = "") -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.token}"}
    return stack.http.get(f"/exports/observations{path}", params=params, headers=headers)


def _store_columns(stack: Stack, sensor_id: str) -> tuple[list[datetime], list[float], list[str]]:
    """The store's own reading, paged with `query_range` (as GraphQL reads it)."""
    rows: list[Observation] = []
    while True:
        page = stack.spy.store.query_range(
            sensor_id=sensor_id,
            start=START,
            end=START + timedelta(days=7),
            limit=10_000,
            after=rows[-1].time if rows else None,
        )
        rows += page
        if len(page) < 10_000:
            break
    return [o.time for o in rows], [o.value for o in rows], [o.quality.value for o in rows]


# ---------------------------------------------------------------- big files


@pytest.mark.slow
def test_a_big_parquet_export_has_row_groups_and_equals_the_store(stack: Stack) -> None:
    response = _get(stack, export_params(BIG, BIG_FROM, BIG_TO, "parquet"))
    assert response.status_code == 200
    assert response.headers["x-cityos-expected-rows"] == str(3 * BIG_POINTS)
    file = pq.ParquetFile(io.BytesIO(response.content))
    assert file.metadata.num_rows == 3 * BIG_POINTS
    assert file.metadata.num_row_groups > 1
    table = file.read()
    frame = table.to_pandas()
    for sensor_id in BIG:
        mine = frame[frame["sensor_id"] == sensor_id]
        times, values, qualities = _store_columns(stack, sensor_id)
        assert len(mine) == BIG_POINTS
        assert [t.to_pydatetime() for t in mine["time"]] == times
        assert mine["value"].tolist() == values
        assert mine["quality"].astype(str).tolist() == qualities
    assert stack.spy.open == 0


@pytest.mark.slow
def test_a_big_csv_export_reads_back_with_pandas(stack: Stack) -> None:
    response = _get(stack, export_params(BIG[:2], BIG_FROM, BIG_TO, "csv"))
    frame = pd.read_csv(io.BytesIO(response.content))
    assert len(frame) == 2 * BIG_POINTS
    times, values, _ = _store_columns(stack, BIG[1])
    second = frame[frame["sensor_id"] == BIG[1]]
    assert second["value"].tolist() == values
    parsed = pd.to_datetime(second["time"], format="ISO8601").dt.tz_convert("UTC")
    assert [t.to_pydatetime() for t in parsed] == times
    manifest = _get(stack, export_params(BIG[:2], BIG_FROM, BIG_TO, "csv"), "/manifest").json()
    assert manifest["sha256"] == hashlib.sha256(response.content).hexdigest()
    assert manifest["row_count"] == 2 * BIG_POINTS


# ---------------------------------------------------------------- GraphQL equality


@pytest.mark.parametrize(
    ("every", "aggregate", "export_format"),
    [
        (None, None, "ndjson"),
        (None, None, "parquet"),
        ("1h", "mean", "parquet"),
        ("1d", "last", "csv"),
        ("1mo", "mean", "zip"),
        ("1w", "count", "ndjson"),
    ],
)
def test_exports_on_influxdb_equal_graphql(
    stack: Stack, every: str | None, aggregate: str | None, export_format: str
) -> None:
    chosen = [TIDE, WBGT]
    extra = {} if every is None else {"every": every, "aggregate": aggregate or "mean"}
    response = _get(stack, export_params(chosen, FROM, TO, export_format, **extra))
    assert response.status_code == 200, response.text
    made = sensors()
    expected = [
        row
        for s in chosen
        for row in graphql_rows(
            stack.http, stack.token, made[s], FROM, TO, every=every, aggregate=aggregate
        )
    ]
    assert expected
    assert rows_of(response.content, export_format) == expected


@pytest.mark.parametrize("export_format", ["csv", "parquet"])
def test_the_manifest_hash_equals_the_download_on_influxdb(
    stack: Stack, export_format: str
) -> None:
    params = export_params([TIDE, WIND], FROM, TO, export_format)
    data = _get(stack, params).content
    manifest = _get(stack, params, "/manifest").json()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- disconnects


@pytest.fixture
def server(stack: Stack) -> Iterator[str]:
    """The app on a real uvicorn (in a thread), on a free port."""
    with served(create_app(stack.runtime)) as url:
        yield url


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"http://{url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _running_selects(stack: Stack) -> list[str]:
    body = stack.influxd.query("SHOW QUERIES").json()
    rows = [row for r in body["results"] for s in r.get("series", []) for row in s["values"]]
    return [row[1] for row in rows if row[2] == stack.database and "SELECT" in row[1]]


@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["csv", "parquet", "zip"])
def test_a_client_that_goes_away_mid_stream_leaves_nothing_running(
    stack: Stack, server: str, export_format: str
) -> None:
    aborted = f'cityos_exports_total{{format="{export_format}",outcome="aborted"}}'
    before_rows = _metric(server, "cityos_export_rows_total")
    closed_before = stack.spy.closed
    query = urlencode(export_params(BIG, BIG_FROM, BIG_TO, export_format))
    host, port = server.split(":")
    client = socket.create_connection((host, int(port)))
    client.sendall(
        f"GET /exports/observations?{query} HTTP/1.1\r\nHost: {server}\r\n"
        f"Authorization: Bearer {stack.token}\r\n\r\n".encode()
    )
    received = b""
    while len(received) < 200_000:
        chunk = client.recv(65536)
        assert chunk, received[:500]
        received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert _metric(server, "cityos_exports_in_progress") == 1
    assert stack.spy.open == 1
    client.close()

    assert _eventually(lambda: _metric(server, "cityos_exports_in_progress") == 0)
    assert _eventually(lambda: stack.spy.open == 0)
    assert stack.spy.closed - closed_before <= len(BIG)  # every stream opened was closed
    assert _eventually(lambda: _running_selects(stack) == []), _running_selects(stack)
    assert _metric(server, aborted) == 1
    exported = _metric(server, "cityos_export_rows_total") - before_rows
    assert exported < 3 * BIG_POINTS
    time.sleep(0.5)  # nothing goes on in the background
    assert _metric(server, "cityos_export_rows_total") - before_rows == exported


# ---------------------------------------------------------------- a store that is down


def test_a_store_that_is_down_at_plan_time_is_503_before_any_byte(tmp_path: Path) -> None:
    with running_influxd(tmp_path / "influxd") as own:
        settings = Settings(
            data_dir=tmp_path / "data",
            timeseries=TimeSeriesSettings(backend="influxdb", url=own.url, database="down"),
        )
        runtime = Runtime.open(settings)
        try:
            tide = sensors()[TIDE]
            runtime.catalog.add_device(Device(tide.device_id, "Port", tide.domain, "json"), [tide])
            http = TestClient(
                create_app(runtime, anonymous_scopes=frozenset({"export:read", "disaster:read"})),
                base_url=BASE,
            )
            own.stop()
            params = export_params([TIDE], FROM, TO, "csv")
            response = http.get("/exports/observations", params=params)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "UNAVAILABLE"
            assert "unreachable" in response.json()["error"]["message"]
            assert response.headers["retry-after"]
            manifest = http.get("/exports/observations/manifest", params=params)
            assert manifest.status_code == 503
        finally:
            runtime.close()
