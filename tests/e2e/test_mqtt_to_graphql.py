"""End to end: a device publishes over a real mosquitto, the worker stores, GraphQL returns it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from cityos.platform.api.app import create_app
from cityos.platform.config import READ_SCOPES, Settings
from cityos.platform.devices.service import SensorSpec, build_device, register_device
from cityos.platform.domain.model import Domain, GeoPoint
from cityos.platform.ingest.worker import IngestWorker
from cityos.platform.runtime import Runtime
from testkit.services import Mosquitto


@pytest.fixture
def stack(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[Runtime, IngestWorker]]:
    settings = Settings(data_dir=tmp_path / "data")
    runtime = Runtime.open(settings)
    device, sensors = build_device(
        device_id="omaezaki-port",
        name="御前崎港 潮位計",
        domain=Domain.DISASTER,
        payload_format="json",
        sensors=[SensorSpec("tide_level", "m", -3, 5)],
        location=GeoPoint(34.5955, 138.2261),
        known_formats=runtime.decoders.keys(),
    )
    register_device(catalog=runtime.catalog, device=device, sensors=sensors)
    worker = IngestWorker(
        source=runtime.new_message_source(mosquitto.url), pipeline=runtime.new_pipeline()
    )
    worker.start()
    yield runtime, worker
    worker.stop()
    runtime.close()


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"device-{uuid.uuid4().hex[:8]}"
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
    finally:
        client.loop_stop()
        client.disconnect()


def query(client: TestClient, text: str) -> dict[str, Any]:
    body: dict[str, Any] = client.post("/graphql", json={"query": text}).json()
    return body


def test_reading_published_over_mqtt_is_served_by_graphql(
    stack: tuple[Runtime, IngestWorker], mosquitto: Mosquitto
) -> None:
    runtime, worker = stack
    assert worker.protocol == "MQTT 5.0"
    topic = "cityos/v1/devices/omaezaki-port/up"
    publish(
        mosquitto.port,
        [
            ("cityos/v1/devices/stranger/up", b'{"readings": {"tide_level": 1}}'),
            (topic, b"{this is not json"),
            (
                topic,
                json.dumps(
                    {"time": "2026-11-28T10:00:00+09:00", "readings": {"tide_level": 1.37}}
                ).encode(),
            ),
            (
                topic,
                json.dumps(
                    {"time": 1795827660000, "readings": {"tide_level": 1.41, "nonsense": 3}}
                ).encode(),
            ),
        ],
    )
    client = TestClient(create_app(runtime, anonymous_scopes=READ_SCOPES))
    observations = (
        '{ observations(sensorId: "omaezaki-port.tide_level", from: "2026-11-28T00:00:00+09:00",'
        ' to: "2026-11-29T00:00:00+09:00") { nodes { time value quality } totalCount } }'
    )
    deadline = time.monotonic() + 10
    while True:
        data = query(client, observations)["data"]["observations"]
        if data["totalCount"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert data["nodes"] == [
        {"time": "2026-11-28T10:00:00+09:00", "value": 1.37, "quality": "GOOD"},
        {"time": "2026-11-28T10:01:00+09:00", "value": 1.41, "quality": "GOOD"},
    ]
    latest = query(client, '{ sensor(id: "omaezaki-port.tide_level") { latest { value } } }')
    assert latest == {"data": {"sensor": {"latest": {"value": 1.41}}}}
    reasons = sorted(r.reason.split(":")[0] for r in runtime.catalog.list_rejections())
    assert reasons == ["bad_payload", "unknown_device", "unknown_quantity"]
    assert runtime.metrics.value("cityos_ingest_readings_stored_total") == 2
