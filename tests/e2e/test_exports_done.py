"""Issue 7's "done means": a researcher client exports a month of one-minute data for several
sensors as Parquet from a real `cityos serve` on InfluxDB with `cityos export --url`, opens it
with pandas, and the row count and values match the store. Also the other formats through the
same path, and the server's refusals as the command line reports them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from cityos.platform.config import Settings, TimeSeriesSettings
from cityos.platform.domain.model import Device, Domain, GeoPoint, Observation, Quality, Sensor
from cityos.platform.runtime import Runtime
from testkit.export_files import Row, expected_rows, read_export
from testkit.influxd import Influxd
from testkit.services import free_port

pytestmark = pytest.mark.slow

CITYOS = Path(sys.executable).with_name("cityos")
START = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # 2026-11-01T00:00+09:00
DAYS = 30
FROM, TO = "2026-11-01T00:00:00+09:00", "2026-12-01T00:00:00+09:00"
SENSORS = {
    "omaezaki-port.tide_level": (Domain.DISASTER, "m"),
    "omaezaki-port.water_temperature": (Domain.DISASTER, "Cel"),
    "omaezaki-cape.wind_speed": (Domain.TOURISM, "m/s"),
    "city-hall.wbgt": (Domain.HEALTH, "Cel"),
}
RESEARCH = list(SENSORS)[:3]
"""What the researcher exports: several sensors of the domains it may read."""
RESEARCHER_SCOPES = "export:read disaster:read tourism:read"
PAGE = 10_000
"""Observations per `query_range` call (the GraphQL page cap; InfluxDB's default row limit)."""
MAX_RANGE_DAYS = 40
"""The server's limit (CITYOS__EXPORTS__MAX_RANGE_DAYS), to see a server-side 400."""


@dataclass
class Server:
    url: str
    env: dict[str, str]
    store_rows: dict[str, list[Row]]
    researcher: dict[str, str]
    no_export: dict[str, str]


def _value(index: int, minute: int) -> float:
    return round(20 * math.sin(minute / 431 + index) + 0.001 * (minute % 997), 4)


def _read_back(runtime: Runtime, sensor_id: str) -> list[Observation]:
    """Every observation of the month, paged through `query_range` as GraphQL pages it."""
    observations: list[Observation] = []
    after = None
    while True:
        page = runtime.store.query_range(
            sensor_id=sensor_id,
            start=START,
            end=START + timedelta(days=DAYS),
            limit=PAGE,
            after=after,
        )
        observations += page
        if len(page) < PAGE:
            return observations
        after = page[-1].time


def _seed(settings: Settings) -> dict[str, list[Row]]:
    """Register the devices, write a month of one-minute data per sensor through the store
    API, and return the rows as the store's own `query_range` reads them back."""
    runtime = Runtime.open(settings)
    try:
        sensors = {}
        for sensor_id, (domain, unit) in SENSORS.items():
            device_id, quantity = sensor_id.split(".")
            sensors[sensor_id] = Sensor(
                sensor_id, device_id, quantity, unit, domain, f"{device_id} {quantity}"
            )
        for device_id in dict.fromkeys(sensor.device_id for sensor in sensors.values()):
            mine = [sensor for sensor in sensors.values() if sensor.device_id == device_id]
            device = Device(
                device_id, device_id.title(), mine[0].domain, "json", GeoPoint(34.6, 138.2)
            )
            runtime.catalog.add_device(device, mine)
        stored: dict[str, list[Row]] = {}
        for index, (sensor_id, sensor) in enumerate(sensors.items()):
            observations = [
                Observation(
                    sensor_id,
                    START + timedelta(minutes=minute),
                    _value(index, minute),
                    Quality.BAD if minute % 1000 == 3 else Quality.GOOD,
                )
                for minute in range(DAYS * 24 * 60)
            ]
            for offset in range(0, len(observations), 20_000):
                runtime.store.write(
                    observations[offset : offset + 20_000], sensors={sensor_id: sensor}
                )
            stored[sensor_id] = expected_rows(sensor, _read_back(runtime, sensor_id))
        return stored
    finally:
        runtime.close()


def _cli(env: dict[str, str], *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CITYOS), *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _add_client(env: dict[str, str], cwd: Path, name: str, scopes: str) -> dict[str, str]:
    result = _cli(env, "clients", "add", "--name", name, "--scopes", scopes, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    document: dict[str, str] = json.loads(result.stdout)
    return document


@pytest.fixture(scope="module")
def server(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("exports-done")
    database = influxd.new_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS")}
    env |= {
        "CITYOS__DATA_DIR": str(root / "data"),
        "CITYOS__TIMESERIES__BACKEND": "influxdb",
        "CITYOS__TIMESERIES__URL": influxd.url,
        "CITYOS__TIMESERIES__DATABASE": database,
        "CITYOS__EXPORTS__MAX_RANGE_DAYS": str(MAX_RANGE_DAYS),
        "PYTHONUNBUFFERED": "1",
    }
    settings = Settings(
        data_dir=root / "data",
        timeseries=TimeSeriesSettings(backend="influxdb", url=influxd.url, database=database),
    )
    store_rows = _seed(settings)
    researcher = _add_client(env, root, "Tokai University coastal lab", RESEARCHER_SCOPES)
    no_export = _add_client(env, root, "Surf app", "tourism:read disaster:read")
    port = free_port()
    log = root / "serve.log"
    process = subprocess.Popen(
        [str(CITYOS), "serve", "--port", str(port)],
        env=env,
        cwd=root,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield Server(url, env, store_rows, researcher, no_export)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _export(
    server: Server, client: dict[str, str], tmp_path: Path, *argv: str, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = server.env | {"CITYOS_CLIENT_SECRET": secret or client["client_secret"]}
    return _cli(
        env, "export", "--url", server.url, "--client-id", client["client_id"], *argv,
        cwd=tmp_path,
    )  # fmt: skip


def _sensors(*sensor_ids: str) -> list[str]:
    return [arg for sensor_id in sensor_ids for arg in ("--sensor", sensor_id)]


def test_researcher_exports_a_month_of_minutes_as_parquet_and_pandas_agrees_with_the_store(
    server: Server, tmp_path: Path
) -> None:
    target = tmp_path / "coast-2026-11.parquet"
    result = _export(
        server, server.researcher, tmp_path, *_sensors(*RESEARCH), "--from", FROM, "--to", TO,
        "--format", "parquet", "-o", str(target), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)

    frame = pd.read_parquet(target)
    expected = [row for sensor_id in RESEARCH for row in server.store_rows[sensor_id]]
    assert len(expected) == len(RESEARCH) * DAYS * 24 * 60
    assert len(frame) == len(expected) == summary["rows"]
    assert list(frame.columns) == ["time", "sensor_id", "quantity", "unit", "value", "quality"]
    assert frame["time"].dt.tz is not None
    times = frame["time"].dt.tz_convert("UTC")
    assert [t.to_pydatetime() for t in times] == [row.time for row in expected]
    assert frame["sensor_id"].tolist() == [row.sensor_id for row in expected]
    assert frame["unit"].tolist() == [row.unit for row in expected]
    assert frame["value"].tolist() == [row.value for row in expected]  # exact, not approx
    assert frame["quality"].tolist() == [str(row.quality) for row in expected]
    assert (frame["quality"] == "bad").sum() == sum(r.quality == "bad" for r in expected) > 0

    data = target.read_bytes()
    assert summary["bytes"] == len(data)
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert summary["format"] == "parquet"
    assert sorted(path.name for path in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize("export_format", ["csv", "ndjson", "zip"])
def test_the_other_formats_over_http_equal_the_store_too(
    server: Server, tmp_path: Path, export_format: str
) -> None:
    sensors = RESEARCH[1:]
    target = tmp_path / f"export.{export_format}"
    result = _export(
        server, server.researcher, tmp_path, *_sensors(*sensors), "--from", FROM, "--to", TO,
        "--format", export_format, "-o", str(target), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = [row for sensor_id in sensors for row in server.store_rows[sensor_id]]
    assert read_export(target, export_format) == expected
    assert json.loads(result.stdout)["rows"] == len(expected)


@pytest.mark.parametrize("export_format", ["parquet", "zip"])
def test_to_stdout_the_rows_are_read_from_the_end_of_the_stream(
    server: Server, tmp_path: Path, export_format: str
) -> None:
    """`-o -`: nothing to read back, so the Parquet footer / the zip's manifest is kept."""
    sensors = RESEARCH[:2]
    env = server.env | {"CITYOS_CLIENT_SECRET": server.researcher["client_secret"]}
    result = subprocess.run(
        [str(CITYOS), "export", "--url", server.url, "--client-id",
         server.researcher["client_id"], *_sensors(*sensors), "--from", FROM, "--to", TO,
         "--format", export_format, "-o", "-", "--json"],
        env=env, cwd=tmp_path, capture_output=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stderr)
    data = result.stdout
    expected = [row for sensor_id in sensors for row in server.store_rows[sensor_id]]
    target = tmp_path / f"copy.{export_format}"
    target.write_bytes(data)
    assert read_export(target, export_format) == expected
    assert summary["rows"] == len(expected)
    assert (summary["file"], summary["bytes"]) == ("-", len(data))
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()


def _refused(result: subprocess.CompletedProcess[str], tmp_path: Path) -> str:
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []
    return lines[0]


def test_a_wrong_secret_is_refused_clearly(server: Server, tmp_path: Path) -> None:
    result = _export(
        server, server.researcher, tmp_path, *_sensors(RESEARCH[0]), "--from", FROM, "--to", TO,
        "--format", "csv", "-o", str(tmp_path / "x.csv"), secret="wrong-secret-123",
    )  # fmt: skip
    assert result.returncode == 1
    line = _refused(result, tmp_path)
    assert line.startswith("error: the server refused the client credentials (HTTP 401")
    assert "invalid_client" in line
    assert "wrong-secret-123" not in result.stderr


@pytest.mark.parametrize(
    ("client", "sensors", "status", "named"),
    [
        # a sensor of a domain the client may not read: 404, exactly like an unknown one
        ("researcher", [RESEARCH[0], "city-hall.wbgt"], "404 NOT_FOUND", "city-hall.wbgt"),
        ("no_export", [RESEARCH[0]], "403 FORBIDDEN", "export:read"),
    ],
)
def test_the_servers_refusals_are_one_clear_line(
    server: Server, tmp_path: Path, client: str, sensors: list[str], status: str, named: str
) -> None:
    result = _export(
        server, getattr(server, client), tmp_path, *_sensors(*sensors), "--from", FROM,
        "--to", TO, "--format", "parquet", "-o", str(tmp_path / "x.parquet"),
    )  # fmt: skip
    assert result.returncode == 1
    line = _refused(result, tmp_path)
    assert line.startswith(f"error: the server refused the export (HTTP {status}): ")
    assert named in line


def test_the_servers_own_limits_are_usage_errors(server: Server, tmp_path: Path) -> None:
    result = _export(
        server, server.researcher, tmp_path, *_sensors(RESEARCH[0]),
        "--from", "2026-09-01T00:00:00+09:00", "--to", TO, "--format", "csv",
        "-o", str(tmp_path / "x.csv"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"maximum of {MAX_RANGE_DAYS} days" in result.stderr
    assert "--to" in result.stderr
    assert list(tmp_path.iterdir()) == []
