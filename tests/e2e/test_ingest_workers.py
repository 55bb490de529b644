"""`cityos ingest --workers N`: worker processes on one shared subscription, run for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from cityos.platform.config import Settings
from cityos.platform.devices.service import SensorSpec, build_device, register_device
from cityos.platform.domain.model import Domain
from cityos.platform.runtime import Runtime
from testkit.influxd import Influxd
from testkit.services import Mosquitto

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]

CITYOS = Path(sys.executable).with_name("cityos")
DEVICES = [f"share-{n}" for n in range(4)]
T0_MS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)


def _wait(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"condition not met in time:\n{log.read_text()}"
        time.sleep(0.2)


def _publish(port: int, first: int, count: int) -> None:
    """`count` readings at distinct times, spread over the devices, QoS 1."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-pub-{first}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for seq in range(first, first + count):
            payload = {"time": T0_MS + seq, "readings": {"level": seq % 10}}
            device = DEVICES[seq % len(DEVICES)]
            client.publish(
                f"cityos/v1/devices/{device}/up", json.dumps(payload), qos=1
            ).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def test_workers_share_the_load_survive_a_crash_and_stop_cleanly(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    data = tmp_path / "data"
    runtime = Runtime.open(Settings(data_dir=data))
    try:
        for device_id in DEVICES:
            device, sensors = build_device(
                device_id=device_id,
                name=device_id,
                domain=Domain.DISASTER,
                payload_format="json",
                sensors=[SensorSpec("level", "m")],
                location=None,
                known_formats=runtime.decoders.keys(),
            )
            register_device(catalog=runtime.catalog, device=device, sensors=sensors)
    finally:
        runtime.close()
    database = influxd.new_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
    env |= {
        "CITYOS__DATA_DIR": str(data),
        "CITYOS__MQTT__URL": mosquitto.url,
        "CITYOS__MQTT__CLIENT_ID": "e2e-ingest",
        "CITYOS__INGEST__METRICS_PORT": "0",  # several workers at once
        "CITYOS__TIMESERIES__BACKEND": "influxdb",
        "CITYOS__TIMESERIES__URL": influxd.url,
        "CITYOS__TIMESERIES__DATABASE": database,
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "ingest.log"

    def stored() -> int:
        response = influxd.query('SELECT count("value") FROM "observations"', db=database)
        series = response.json()["results"][0].get("series") or []
        return int(series[0]["values"][0][1]) if series else 0

    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(CITYOS), "ingest", "--workers", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(lambda: "all 2 workers subscribed" in log.read_text(), process, log)
        text = log.read_text()
        assert "client ids e2e-ingest-1, e2e-ingest-2" in text
        assert "worker 1: ingesting from" in text
        assert "worker 2: ingesting from" in text
        assert text.count("shared subscription $share/cityos/cityos/v1/devices/+/up") == 2

        _publish(mosquitto.port, 0, 200)
        _wait(lambda: stored() == 200, process, log)

        workers = _children(process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)  # a crash: no flush, no ack, no disconnect
        _wait(lambda: "restarting ingest worker e2e-ingest-" in log.read_text(), process, log)
        _wait(lambda: log.read_text().count("ingesting from") == 3, process, log)
        assert len(_children(process.pid)) == 2

        _publish(mosquitto.port, 200, 200)  # the restarted worker gets its share again
        _wait(lambda: stored() == 400, process, log)
        workers = _children(process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the supervisor only: it stops its workers
        code = process.wait(60)
    children_left = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert code == 0, log.read_text()
    assert children_left == []
    assert stored() == 400
