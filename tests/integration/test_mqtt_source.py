"""The MQTT message source against real brokers: mosquitto (MQTT 5) and embedded amqtt (3.1.1)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cityos.adapters.broker.amqtt_broker import AmqttBroker
from cityos.adapters.mqtt.source import MqttMessageSource, create_source
from cityos.platform.config import Settings
from cityos.platform.domain.errors import RetryableError
from cityos.platform.ports import Message, MessageSource
from testkit.services import Mosquitto, free_port

TOPIC = "cityos/v1/devices/{}/up"


class Inbox:
    """Collects delivered messages from paho's thread; tests wait on it."""

    def __init__(self, fail_on: Callable[[Message], bool] = lambda m: False) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._fail_on = fail_on

    def __call__(self, message: Message) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()
        if self._fail_on(message):
            raise ValueError(f"handler blew up on {message.payload!r}")

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"got {len(self.messages)} messages, expected {count}"
                self._cond.wait(left)
            return list(self.messages)

    def payloads(self) -> list[bytes]:
        with self._cond:
            return [m.payload for m in self.messages]


def publish(url_port: int, *items: tuple[str, bytes], qos: int = 1) -> None:
    """Publish with a plain paho client (MQTT 3.1.1) and wait for each PUBACK."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    try:
        for topic, payload in items:
            client.publish(topic, payload, qos=qos).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def settings(**mqtt: object) -> Settings:
    return Settings(mqtt={"client_id": "test-ingest", **mqtt})


@pytest.fixture
def sources() -> Iterator[list[MqttMessageSource]]:
    """Started sources are stopped at the end even when a test fails."""
    started: list[MqttMessageSource] = []
    yield started
    for source in started:
        source.stop()


def start(
    sources: list[MqttMessageSource], url: str, inbox: Inbox, **mqtt: object
) -> MqttMessageSource:
    source = create_source(settings(**mqtt), url=url, v5_answer_timeout=0.5)
    sources.append(source)
    source.start(inbox)
    return source


# ---------------------------------------------------------------- mosquitto (MQTT 5)


def test_negotiates_mqtt5_with_a_shared_subscription_and_delivers(
    mosquitto: Mosquitto, sources: list[MqttMessageSource], caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()
    with caplog.at_level(logging.INFO, logger="cityos.adapters.mqtt"):
        source = start(sources, mosquitto.url, inbox)
    assert isinstance(source, MessageSource)
    assert source.protocol == "MQTT 5.0"
    assert source.shared_subscription
    assert source.subscription == "$share/cityos/cityos/v1/devices/+/up"
    assert "MQTT 5.0, shared subscription $share/cityos/" in caplog.text

    publish(mosquitto.port, (TOPIC.format("omaezaki-port"), b'{"readings": {"tide_level": 1.2}}'))
    publish(mosquitto.port, (TOPIC.format("cape-wind"), b"qos0"), qos=0)
    publish(mosquitto.port, ("cityos/v1/other/topic", b"not for us"))
    first, second = inbox.wait_for(2)
    assert first.topic == "cityos/v1/devices/omaezaki-port/up"
    assert first.payload == b'{"readings": {"tide_level": 1.2}}'
    assert first.received_at.tzinfo is not None
    assert abs(datetime.now(UTC) - first.received_at) < timedelta(seconds=5)
    assert second.payload == b"qos0"
    # acks are idempotent and may come from another thread
    workers = [threading.Thread(target=first.ack) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    second.ack()  # QoS 0: nothing to acknowledge, must not fail
    time.sleep(0.2)
    assert len(inbox.messages) == 2


def test_unacked_message_is_redelivered_to_the_next_session_and_acked_one_is_not(
    mosquitto: Mosquitto, sources: list[MqttMessageSource]
) -> None:
    inbox = Inbox()
    source = start(sources, mosquitto.url, inbox)
    publish(mosquitto.port, (TOPIC.format("dev-a"), b"acked"), (TOPIC.format("dev-b"), b"unacked"))
    acked, _ = sorted(inbox.wait_for(2), key=lambda m: m.payload)
    assert acked.payload == b"acked"
    acked.ack()
    time.sleep(0.2)  # let paho's thread send the PUBACK before we disconnect
    source.stop()

    publish(mosquitto.port, (TOPIC.format("dev-c"), b"while away"))
    again = Inbox()
    start(sources, mosquitto.url, again)
    redelivered = again.wait_for(2)
    time.sleep(0.3)
    assert sorted(again.payloads()) == [b"unacked", b"while away"]
    for message in redelivered:
        message.ack()


def test_a_failing_handler_does_not_stop_later_messages(
    mosquitto: Mosquitto, sources: list[MqttMessageSource], caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox(fail_on=lambda m: m.payload == b"boom")
    start(sources, mosquitto.url, inbox)
    publish(mosquitto.port, (TOPIC.format("dev-a"), b"boom"), (TOPIC.format("dev-a"), b"fine"))
    assert [m.payload for m in inbox.wait_for(2)] == [b"boom", b"fine"]
    assert "handler failed" in caplog.text
    assert "handler blew up" in caplog.text


def test_receive_maximum_bounds_unacked_messages_in_flight(
    mosquitto: Mosquitto, sources: list[MqttMessageSource]
) -> None:
    inbox = Inbox()
    start(sources, mosquitto.url, inbox, receive_maximum=3)
    publish(mosquitto.port, *[(TOPIC.format("dev-a"), b"%d" % i) for i in range(6)])
    inbox.wait_for(3)
    time.sleep(0.3)
    assert len(inbox.messages) == 3  # the broker holds the rest until we ack
    for message in list(inbox.messages):
        message.ack()
    inbox.wait_for(6)


def test_reconnects_and_keeps_delivering_after_a_broker_restart(
    mosquitto: Mosquitto, sources: list[MqttMessageSource]
) -> None:
    inbox = Inbox()
    source = start(sources, mosquitto.url, inbox)
    publish(mosquitto.port, (TOPIC.format("dev-a"), b"acked"), (TOPIC.format("dev-a"), b"unacked"))
    inbox.wait_for(2)[0].ack()
    time.sleep(0.2)

    mosquitto.stop()
    mosquitto.start()
    # mosquitto 2.0.11 restores the session but not its shared subscription, so publish only
    # once the source has reconnected and resubscribed.
    deadline = time.monotonic() + 10
    while not source.connected:
        assert time.monotonic() < deadline, "the source did not reconnect"
        time.sleep(0.05)
    publish(mosquitto.port, (TOPIC.format("dev-a"), b"after"))
    inbox.wait_for(4)
    time.sleep(0.2)
    assert sorted(inbox.payloads()) == [b"acked", b"after", b"unacked", b"unacked"]
    assert source.protocol == "MQTT 5.0"
    assert source.shared_subscription


def test_unreachable_broker_is_a_retryable_error_naming_the_redacted_url() -> None:
    port = free_port()
    source = create_source(
        settings(), url=f"mqtt://ingest:s3cret@127.0.0.1:{port}", connect_timeout=1.5
    )
    began = time.monotonic()
    with pytest.raises(RetryableError) as info:
        source.start(Inbox())
    assert time.monotonic() - began < 5
    assert f"mqtt://ingest:***@127.0.0.1:{port}" in str(info.value)
    assert "s3cret" not in str(info.value)
    source.stop()


# ---------------------------------------------------------------- amqtt (MQTT 3.1.1 only)


@pytest.fixture
def amqtt(tmp_path: Path) -> Iterator[AmqttBroker]:
    broker = AmqttBroker(host="127.0.0.1", port=free_port(), state_dir=tmp_path)
    broker.start()
    yield broker
    broker.stop()


def test_amqtt_falls_back_to_mqtt311_with_a_plain_subscription(
    amqtt: AmqttBroker, sources: list[MqttMessageSource]
) -> None:
    inbox = Inbox(fail_on=lambda m: m.payload == b"boom")
    source = start(sources, amqtt.url, inbox)
    assert source.protocol == "MQTT 3.1.1"
    assert not source.shared_subscription
    assert source.subscription == "cityos/v1/devices/+/up"

    publish(amqtt.port, (TOPIC.format("dev-a"), b"boom"), (TOPIC.format("dev-a"), b"hello"))
    first, second = inbox.wait_for(2)
    assert (first.topic, first.payload) == ("cityos/v1/devices/dev-a/up", b"boom")
    assert second.payload == b"hello"
    first.ack()
    second.ack()
    second.ack()
    time.sleep(0.2)
    assert len(inbox.messages) == 2


def test_a_refused_shared_subscription_falls_back_to_the_plain_topic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No broker at hand refuses `$share/...` (mosquitto even checks ACLs without the prefix),
    # so feed the SUBACK outcome to the callback of an unconnected client.
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from cityos.adapters.mqtt.connection import MQTT5

    source = create_source(settings(), url="mqtt://127.0.0.1:1")
    source._protocol, source._shared = MQTT5, True
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    refused = ReasonCode(PacketTypes.SUBACK, "Shared subscription not supported")
    with caplog.at_level(logging.WARNING):
        source._on_subscribe(client, None, 1, [refused], None)
    assert not source.shared_subscription
    assert source.subscription == "cityos/v1/devices/+/up"
    assert "refused the shared subscription" in caplog.text
