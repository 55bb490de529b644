"""The TTN integration against a local mosquitto standing in for a The Things Stack server.

TTS publishes uplinks on `v3/<app>@<tenant>/devices/<id>/up` to clients that log in as
`<app>@<tenant>` with an API key. The stand-in broker has exactly that account and ACL.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from cityos.platform.api.app import create_app
from cityos.platform.config import READ_SCOPES, Settings, TtnSettings
from cityos.platform.devices.credentials import hash_password
from cityos.platform.devices.service import SensorSpec, build_device, register_device
from cityos.platform.domain.errors import ConfigError
from cityos.platform.domain.model import Domain
from cityos.platform.ingest.worker import IngestWorker
from cityos.platform.runtime import Runtime
from testkit.services import Mosquitto, running_mosquitto

APPLICATION = "omaezaki-lora@ttn"
API_KEY = "NNSXS.TESTKEY.0123456789ABCDEF"


@pytest.fixture
def tts(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto with TTS's MQTT account and topic layout, no anonymous access."""
    directory = tmp_path / "tts"
    directory.mkdir()
    (directory / "passwd").write_text(f"{APPLICATION}:{hash_password(API_KEY)}\n")
    (directory / "acl").write_text(f"user {APPLICATION}\ntopic readwrite v3/{APPLICATION}/#\n")
    config = "\n".join(
        [
            "allow_anonymous false",
            f"password_file {directory / 'passwd'}",
            f"acl_file {directory / 'acl'}",
        ]
    )
    with running_mosquitto(directory, extra_config=config) as broker:
        yield broker


def uplink(device_id: str, decoded: dict[str, Any], received_at: str) -> bytes:
    """A TTS v3 uplink message as TTS publishes it (trimmed to what matters here)."""
    message = {
        "end_device_ids": {
            "device_id": device_id,
            "application_ids": {"application_id": APPLICATION.split("@")[0]},
            "dev_eui": "0004A30B001C0530",
        },
        "received_at": received_at,
        "uplink_message": {
            "f_port": 1,
            "f_cnt": 42,
            "decoded_payload": copy.deepcopy(decoded),
            "rx_metadata": [{"gateway_ids": {"gateway_id": "omaezaki-gw"}, "rssi": -97, "snr": 7}],
            "received_at": received_at,
        },
    }
    return json.dumps(message).encode()


def publish_as_tts(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"tts-{uuid.uuid4().hex[:6]}")
    client.username_pw_set(APPLICATION, API_KEY)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture
def runtime(tmp_path: Path, tts: Mosquitto) -> Iterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        ttn=TtnSettings(
            url=f"mqtt://127.0.0.1:{tts.port}", application=APPLICATION, api_key=API_KEY
        ),
    )
    runtime = Runtime.open(settings)
    for device_id, payload_format in (("lora-gauge", "ttn"), ("json-gauge", "json")):
        device, sensors = build_device(
            device_id=device_id,
            name=device_id,
            domain=Domain.DISASTER,
            payload_format=payload_format,
            sensors=[SensorSpec("water_level", "m", -1, 10), SensorSpec("temperature", "Cel")],
            location=None,
            known_formats=runtime.decoders.keys(),
        )
        register_device(catalog=runtime.catalog, device=device, sensors=sensors)
    yield runtime
    runtime.close()


def test_uplinks_from_tts_are_stored_and_served(runtime: Runtime, tts: Mosquitto) -> None:
    source = runtime.new_ttn_source()
    assert source is not None
    worker = IngestWorker(source=source, pipeline=runtime.new_pipeline())
    worker.start()
    try:
        topic = f"v3/{APPLICATION}/devices/%s/up"
        publish_as_tts(
            tts,
            [
                (
                    topic % "lora-gauge",
                    uplink(
                        "lora-gauge",
                        {"water_level": 1.25, "temperature": 18.5},
                        "2026-11-28T01:00:00.123456789Z",
                    ),
                ),
                (
                    topic % "lora-gauge",
                    uplink("lora-gauge", {"water_level": 99}, "2026-11-28T01:01:00Z"),
                ),
                (topic % "ghost", uplink("ghost", {"water_level": 1}, "2026-11-28T01:02:00Z")),
                (
                    topic % "json-gauge",
                    uplink("json-gauge", {"water_level": 1}, "2026-11-28T01:03:00Z"),
                ),
                (topic % "lora-gauge", b'{"end_device_ids": '),
            ],
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(runtime.catalog.list_rejections()) < 4:
            time.sleep(0.1)
    finally:
        worker.stop()

    client = TestClient(create_app(runtime, anonymous_scopes=READ_SCOPES))
    body = client.post(
        "/graphql",
        json={
            "query": '{ observations(sensorId: "lora-gauge.water_level", '
            'from: "2026-11-28T00:00:00+09:00", to: "2026-11-29T00:00:00+09:00") '
            "{ nodes { time value } } }"
        },
    ).json()
    assert body["data"]["observations"]["nodes"] == [
        {"time": "2026-11-28T10:00:00.123456+09:00", "value": 1.25}
    ]
    latest = client.post(
        "/graphql", json={"query": '{ sensor(id: "lora-gauge.temperature") { latest { value } } }'}
    ).json()
    assert latest["data"]["sensor"]["latest"] == {"value": 18.5}
    reasons = sorted(r.reason.split(":")[0] for r in runtime.catalog.list_rejections())
    assert reasons == ["bad_payload", "format_mismatch", "out_of_range", "unknown_device"], (
        runtime.catalog.list_rejections()
    )
    topics = {r.topic for r in runtime.catalog.list_rejections()}
    assert f"v3/{APPLICATION}/devices/ghost/up" in topics


def test_wrong_api_key_is_a_clear_failure(tmp_path: Path, tts: Mosquitto) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        ttn=TtnSettings(
            url=f"mqtt://127.0.0.1:{tts.port}", application=APPLICATION, api_key="NNSXS.WRONG"
        ),
    )
    runtime = Runtime.open(settings)
    try:
        source = runtime.new_ttn_source()
        assert source is not None
        with pytest.raises(ConfigError, match="refused to connect"):
            source.start(lambda _message: None)
        source.stop()
    finally:
        runtime.close()


@pytest.mark.slow
def test_cityos_ingest_runs_the_ttn_integration_when_configured(
    runtime: Runtime, tts: Mosquitto, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
    env |= {
        "CITYOS__DATA_DIR": str(runtime.settings.data_dir),
        "CITYOS__MQTT__URL": mosquitto.url,
        "CITYOS__INGEST__METRICS_PORT": "0",
        "CITYOS__TTN__URL": f"mqtt://127.0.0.1:{tts.port}",
        "CITYOS__TTN__APPLICATION": APPLICATION,
        "CITYOS__TTN__API_KEY": API_KEY,
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
        while "also ingesting uplinks" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        assert "omaezaki-lora@ttn" in log.read_text()
        publish_as_tts(
            tts,
            [
                (
                    f"v3/{APPLICATION}/devices/lora-gauge/up",
                    uplink("lora-gauge", {"water_level": 2.5}, "2026-11-28T02:00:00Z"),
                )
            ],
        )
        sensor = "lora-gauge.water_level"
        while time.monotonic() < deadline and sensor not in runtime.store.latest([sensor]):
            time.sleep(0.2)
        assert runtime.store.latest([sensor])[sensor].value == 2.5
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()
