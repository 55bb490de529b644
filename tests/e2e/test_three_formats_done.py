"""Issue 4's "done means": devices registered with the CLI publish cityos JSON, SenML and TTN
uplinks to a real mosquitto with their own credentials, `cityos ingest` stores them, and the
readings appear in GraphQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from cityos.platform.api.app import create_app
from cityos.platform.cli import app
from cityos.platform.config import READ_SCOPES, load_settings
from cityos.platform.runtime import Runtime
from testkit.services import running_mosquitto

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

WORKER, WORKER_PASSWORD = "cityos-ingest", "worker-secret-for-the-test"
DAY = ("2026-11-28T00:00:00+09:00", "2026-11-29T00:00:00+09:00")


def cli(*argv: str) -> Any:
    result = CliRunner().invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def publish_as(port: int, username: str, password: str, topic: str, payload: bytes) -> None:
    """Publish one QoS 1 message with the device's own login; fail unless the broker took it."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


def test_json_senml_and_ttn_devices_reach_graphql(
    no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = no_cityos_env / "data"
    monkeypatch.setenv("CITYOS__DATA_DIR", str(data))
    monkeypatch.setenv("CITYOS__MQTT__WORKER_PASSWORD", WORKER_PASSWORD)
    passwords = {}
    for device_id, payload_format, sensor in (
        ("port-gauge", "json", "tide_level:m:-3:5"),
        ("river-gauge", "senml", "water_level:m:-1:10"),
        ("lora-wbgt", "ttn", "wbgt:Cel"),
    ):
        credentials = cli(
            "devices", "add", "--id", device_id, "--name", device_id, "--domain", "disaster",
            "--format", payload_format, "--sensor", sensor,
        )  # fmt: skip
        passwords[device_id] = credentials["mqtt_password"]
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    cli(
        "mosquitto", "sync", "--password-file", str(broker_dir / "passwd"),
        "--acl-file", str(broker_dir / "acl"), "--worker-username", WORKER,
    )  # fmt: skip
    config = "\n".join(
        [
            "allow_anonymous false",
            f"password_file {broker_dir / 'passwd'}",
            f"acl_file {broker_dir / 'acl'}",
        ]
    )
    with running_mosquitto(broker_dir, extra_config=config) as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
        env |= {
            "CITYOS__DATA_DIR": str(data),
            "CITYOS__MQTT__URL": f"mqtt://{WORKER}:{WORKER_PASSWORD}@127.0.0.1:{broker.port}",
            "CITYOS__INGEST__METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / "ingest.log"
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("cityos")), "ingest"],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "ingesting from" not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.2)
            topic = "cityos/v1/devices/{}/up"
            publish_as(
                broker.port, "port-gauge", passwords["port-gauge"], topic.format("port-gauge"),
                json.dumps({"time": "2026-11-28T10:00:00+09:00",
                            "readings": {"tide_level": 1.25}}).encode(),
            )  # fmt: skip
            senml = [
                {"bn": "urn:dev:river-gauge:", "bt": 1795827600, "n": "water_level", "v": 2.5},
                {"n": "water_level", "t": 60, "v": 2.75},
            ]
            publish_as(
                broker.port, "river-gauge", passwords["river-gauge"],
                topic.format("river-gauge"), json.dumps(senml).encode(),
            )  # fmt: skip
            uplink = {
                "end_device_ids": {"device_id": "lora-wbgt"},
                "received_at": "2026-11-28T01:05:00Z",
                "uplink_message": {
                    "decoded_payload": {"wbgt": 24.5},
                    "received_at": "2026-11-28T01:05:00Z",
                    "rx_metadata": [{"gateway_ids": {"gateway_id": "gw-1"}, "rssi": -90}],
                },
            }
            publish_as(
                broker.port, "lora-wbgt", passwords["lora-wbgt"], topic.format("lora-wbgt"),
                json.dumps(uplink).encode(),
            )  # fmt: skip

            runtime = Runtime.open(load_settings())
            try:
                client = TestClient(create_app(runtime, anonymous_scopes=READ_SCOPES))
                expected = {
                    "port-gauge.tide_level": [("2026-11-28T10:00:00+09:00", 1.25)],
                    "river-gauge.water_level": [
                        ("2026-11-28T10:00:00+09:00", 2.5),
                        ("2026-11-28T10:01:00+09:00", 2.75),
                    ],
                    "lora-wbgt.wbgt": [("2026-11-28T10:05:00+09:00", 24.5)],
                }
                seen: dict[str, list[tuple[str, float]]] = {}
                while time.monotonic() < deadline:
                    for sensor in expected:
                        body = client.post(
                            "/graphql",
                            json={
                                "query": "query($id: ID!, $from: DateTime!, $to: DateTime!) {"
                                " observations(sensorId: $id, from: $from, to: $to)"
                                " { nodes { time value } } }",
                                "variables": {"id": sensor, "from": DAY[0], "to": DAY[1]},
                            },
                        ).json()
                        nodes = body["data"]["observations"]["nodes"]
                        seen[sensor] = [(node["time"], node["value"]) for node in nodes]
                    if seen == expected:
                        break
                    time.sleep(0.3)
                assert seen == expected, (seen, runtime.catalog.list_rejections())
                assert runtime.catalog.list_rejections() == []
            finally:
                runtime.close()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()
