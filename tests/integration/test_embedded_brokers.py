"""The embedded brokers (mosquitto child process, amqtt thread) and the MQTT publisher."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cityos.adapters.broker.mosquitto import MosquittoBroker
from cityos.adapters.mqtt.publisher import create_publisher
from cityos.platform import plugins
from cityos.platform.config import Settings
from cityos.platform.domain.errors import ConfigError, RetryableError
from cityos.platform.ports import EmbeddedBroker, MessagePublisher
from testkit.services import free_port, require

BROKERS = ["mosquitto", "amqtt"]
EXPECTED_PROTOCOL = {"mosquitto": "MQTT 5.0", "amqtt": "MQTT 3.1.1"}


def make_broker(name: str, state_dir: Path) -> EmbeddedBroker:
    if name == "mosquitto":
        require(shutil.which("mosquitto") is not None, "mosquitto binary not on PATH")
    factory = plugins.load(plugins.BROKERS, name)
    broker: EmbeddedBroker = factory(
        Settings(), host="127.0.0.1", port=free_port(), state_dir=state_dir
    )
    return broker


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    threads_before = set(threading.enumerate())
    instance = make_broker(request.param, tmp_path / "broker")
    instance.start()
    yield instance
    instance.stop()
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leftover, f"threads left behind: {leftover}"


class Subscriber:
    """A plain paho subscriber that records payloads."""

    def __init__(self, url_port: int, topic: str) -> None:
        self.payloads: list[bytes] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-sub")
        self.client.on_message = lambda c, u, msg: self.payloads.append(msg.payload)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subscribed.set()
        self.client.connect("127.0.0.1", url_port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.payloads) < count:
            assert time.monotonic() < deadline, f"got {self.payloads}"
            time.sleep(0.02)
        return self.payloads

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def port_of(broker: EmbeddedBroker) -> int:
    return int(broker.url.rsplit(":", 1)[1])


def test_broker_round_trip_through_the_publisher(broker: EmbeddedBroker) -> None:
    assert broker.url.startswith("mqtt://127.0.0.1:")
    subscriber = Subscriber(port_of(broker), "cityos/v1/devices/+/up")
    factory = plugins.load(plugins.MESSAGE_PUBLISHERS, "mqtt")
    publisher = factory(Settings(), url=broker.url, client_id="test-publisher")
    try:
        assert isinstance(publisher, MessagePublisher)
        assert publisher.protocol == EXPECTED_PROTOCOL[broker.name]
        publisher.publish("cityos/v1/devices/dev-a/up", b"one")
        publisher.publish("cityos/v1/devices/dev-a/up", b"two", qos=0)
        assert sorted(subscriber.wait_for(2)) == [b"one", b"two"]
    finally:
        publisher.close()
        subscriber.close()


def test_brokers_stop_cleanly_and_free_their_port(tmp_path: Path) -> None:
    for name in BROKERS:
        instance = make_broker(name, tmp_path / name)
        instance.start()
        process = instance._process if isinstance(instance, MosquittoBroker) else None
        instance.stop()
        instance.stop()  # idempotent
        if process is not None:
            assert process.returncode is not None
            with pytest.raises(ProcessLookupError):
                os.kill(process.pid, 0)
        with pytest.raises(RetryableError):
            create_publisher(Settings(), url=instance.url, client_id="late", connect_timeout=0.5)


def test_mosquitto_config_is_private_and_persistent(tmp_path: Path) -> None:
    instance = make_broker("mosquitto", tmp_path / "state")
    assert isinstance(instance, MosquittoBroker)
    config = instance.config_text()
    assert f"listener {instance.port} 127.0.0.1" in config
    assert "allow_anonymous true" in config
    assert "persistence true" in config
    assert str((tmp_path / "state").resolve()) in config
    assert "max_queued_messages" in config
    assert "max_inflight_messages" in config
    assert ("user root" in config) == (os.geteuid() == 0)


def test_mosquitto_failing_to_start_reports_its_log(tmp_path: Path) -> None:
    require(shutil.which("mosquitto") is not None, "mosquitto binary not on PATH")
    instance = MosquittoBroker(
        executable=str(shutil.which("mosquitto")),
        host="203.0.113.7",  # TEST-NET-3: not an address of this machine, bind fails
        port=free_port(),
        state_dir=tmp_path,
    )
    with pytest.raises(ConfigError, match="mosquitto exited") as info:
        instance.start()
    assert "log tail" in str(info.value)


def test_mosquitto_factory_needs_the_binary_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    factory = plugins.load(plugins.BROKERS, "mosquitto")
    with pytest.raises(ConfigError, match="mosquitto binary on PATH"):
        factory(Settings(), host="127.0.0.1", port=free_port(), state_dir=tmp_path)


def test_publisher_to_an_unreachable_broker_is_retryable() -> None:
    began = time.monotonic()
    with pytest.raises(RetryableError, match=r"mqtt://u:\*\*\*@127\.0\.0\.1"):
        create_publisher(
            Settings(),
            url=f"mqtt://u:pw@127.0.0.1:{free_port()}",
            client_id="test-publisher",
            connect_timeout=1.0,
        )
    assert time.monotonic() - began < 5
