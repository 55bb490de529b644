"""`cityos serve` and `cityos ingest` as an operator runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from cityos.platform.config import Settings
from cityos.platform.runtime import Runtime
from testkit.services import Mosquitto, free_port

CITYOS = Path(sys.executable).with_name("cityos")
GSI = Path(__file__).resolve().parents[1] / "fixtures" / "gsi-hinanbasho"


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
    env["CITYOS__DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def _stop(process: subprocess.Popen[str]) -> str:
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    return output


def _wait(predicate: object, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            if callable(predicate) and predicate():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.mark.slow
def test_serve_runs_scheduled_imports_and_grants_anonymous_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Runtime.open(Settings(data_dir=data)).close()  # migrate first, so serve and the test agree
    runtime = Runtime.open(Settings(data_dir=data))
    from cityos.platform.demo import devices_and_sensors

    for device, sensors in devices_and_sensors():
        runtime.catalog.add_device(device, sensors)
    port = free_port()
    schedule = json.dumps([{"connector": "gsi-evacuation", "source": str(GSI), "every": "1d"}])
    process = subprocess.Popen(
        [str(CITYOS), "serve", "--port", str(port)],
        env=_env(data, CITYOS__CONNECTORS__SCHEDULE=schedule),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, process)
        _wait(lambda: len(runtime.catalog.list_facilities()) == 36, process)
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": "{ sensors { totalCount } }"}
        )
        assert response.json() == {"data": {"sensors": {"totalCount": 0}}}
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        output = _stop(process)
        runtime.close()
    assert "scheduler started with 1 import job(s)" in output
    assert "import gsi-evacuation" in output


@pytest.mark.slow
def test_ingest_stores_what_devices_publish(tmp_path: Path, mosquitto: Mosquitto) -> None:
    data = tmp_path / "data"
    runtime = Runtime.open(Settings(data_dir=data))
    from cityos.platform.demo import devices_and_sensors

    for device, sensors in devices_and_sensors():
        runtime.catalog.add_device(device, sensors)
    log = tmp_path / "ingest.log"
    metrics_port = free_port()
    process = subprocess.Popen(
        [str(CITYOS), "ingest"],
        env=_env(
            data,
            CITYOS__MQTT__URL=mosquitto.url,
            CITYOS__INGEST__METRICS_PORT=str(metrics_port),
        ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # Publish only once the worker is subscribed: before that, the broker has no session
        # to keep the message for.
        _wait(lambda: "ingesting from" in log.read_text(), process)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-device")
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        payload = {"time": "2026-11-28T12:00:00+09:00", "readings": {"tide_level": 0.93}}
        client.publish(
            "cityos/v1/devices/omaezaki-port/up", json.dumps(payload), qos=1
        ).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        expected = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
        _wait(
            lambda: (
                runtime.store.latest(["omaezaki-port.tide_level"]).get("omaezaki-port.tide_level")
                is not None
            ),
            process,
        )
        observation = runtime.store.latest(["omaezaki-port.tide_level"])["omaezaki-port.tide_level"]
        assert (observation.time, observation.value) == (expected, 0.93)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # the worker's own metrics
            metrics = response.read().decode()
        assert "cityos_ingest_readings_stored_total 1.0" in metrics
    finally:
        _stop(process)
        runtime.close()
    assert "using MQTT 5.0" in log.read_text()
