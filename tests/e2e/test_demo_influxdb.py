"""`cityos demo` on InfluxDB: readings land in InfluxDB and GraphQL serves them aggregated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cityos.platform.timefmt import JST
from testkit.influxd import Influxd
from testkit.services import free_port

CITYOS = Path(sys.executable).with_name("cityos")


def _graphql(port: int, query: str) -> dict[str, Any]:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _influxql(influxd: Influxd, database: str, query: str) -> list[dict[str, Any]]:
    response = influxd.query(query, db=database)
    response.raise_for_status()
    series: list[dict[str, Any]] = response.json()["results"][0].get("series", [])
    return series


@pytest.mark.slow
def test_demo_stores_in_influxdb_and_serves_aggregates(tmp_path: Path, influxd: Influxd) -> None:
    database = influxd.new_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
    env.update(
        CITYOS__TIMESERIES__BACKEND="influxdb",
        CITYOS__TIMESERIES__URL=influxd.url,
        CITYOS__TIMESERIES__DATABASE=database,
    )
    port = free_port()
    process = subprocess.Popen(
        [str(CITYOS), "demo", "--port", str(port), "--mqtt-port", str(free_port())],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "demo.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        counts: dict[str, int] = {}
        while time.monotonic() < deadline and len([c for c in counts.values() if c >= 3]) < 11:
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            time.sleep(1)
            # A plain InfluxQL query, as an operator would run it.
            series = _influxql(
                influxd, database, 'SELECT count("value") FROM "observations" GROUP BY "sensor"'
            )
            counts = {s["tags"]["sensor"]: s["values"][0][1] for s in series}
        assert len(counts) == 11, counts
        assert min(counts.values()) >= 3, counts
        now = datetime.now(JST)
        start = (now - timedelta(hours=1)).isoformat(timespec="seconds")
        end = (now + timedelta(minutes=1)).isoformat(timespec="seconds")
        result = _graphql(
            port,
            f'{{ observations(sensorId: "omaezaki-port.tide_level", from: "{start}", '
            f'to: "{end}", every: "1m", aggregate: COUNT) {{ nodes {{ time value }} }} }}',
        )
        nodes = result["data"]["observations"]["nodes"]
        assert sum(node["value"] for node in nodes) >= 3
        assert all(node["time"].endswith(":00+09:00") for node in nodes)  # minute windows
        mean = _graphql(
            port,
            f'{{ observations(sensorId: "omaezaki-city-hall.wbgt", from: "{start}", '
            f'to: "{end}", every: "1h", aggregate: MEAN) {{ nodes {{ value }} }} }}',
        )
        assert all(-10 < node["value"] < 45 for node in mean["data"]["observations"]["nodes"])
    finally:
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0, (tmp_path / "demo.log").read_text()
