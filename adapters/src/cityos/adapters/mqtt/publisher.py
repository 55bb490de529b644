"""The MQTT `MessagePublisher` (demo simulator, tests, tools): QoS 0/1 publishes with paho."""

from __future__ import annotations

import logging
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from cityos.adapters.mqtt.connection import (
    KEEPALIVE_SECONDS,
    MQTT5,
    MQTT311,
    AttemptWatch,
    Outcome,
    new_client,
    shutdown,
)
from cityos.adapters.mqtt.url import MqttUrl, parse_mqtt_url
from cityos.platform.config import Settings
from cityos.platform.domain.errors import RetryableError

log = logging.getLogger(__name__)


class MqttPublisher:
    """A connected paho client that publishes and, for QoS 1, waits for the broker's PUBACK."""

    def __init__(
        self,
        *,
        url: MqttUrl,
        client_id: str,
        connect_timeout: float = 10.0,
        publish_timeout: float = 10.0,
        v5_answer_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.v5_answer_timeout = v5_answer_timeout
        self._protocol = ""
        self._client: paho.Client | None = None
        self._watch = AttemptWatch()

    @property
    def protocol(self) -> str:
        """'MQTT 5.0' or 'MQTT 3.1.1' once connected."""
        return self._protocol

    def connect(self) -> None:
        """Connect with MQTT 5 if the broker speaks it, else 3.1.1; RetryableError on timeout."""
        deadline = time.monotonic() + self.connect_timeout
        for v5 in (True, False):
            outcome = self._attempt(v5=v5, deadline=deadline)
            if outcome is Outcome.READY:
                log.debug("MQTT publisher %r connected to %s", self.client_id, self.url)
                return
            self._abandon()
            if outcome is Outcome.NO_V5 and v5:
                continue
            if outcome is Outcome.REFUSED and self._watch.refusal is not None:
                raise self._watch.refusal
            break
        raise RetryableError(
            f"MQTT broker {self.url.redacted()} not reachable or not answering "
            f"within {self.connect_timeout:g}s",
            service="mqtt",
            attempt_context=self.url.redacted(),
        )

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Send one message; with QoS 1 return once the broker acknowledged it."""
        client = self._client
        if client is None:
            raise RuntimeError("this MQTT publisher is closed")
        info = client.publish(topic, payload, qos=qos)
        if qos == 0:
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise RetryableError(
                    f"MQTT publish to {topic} via {self.url} failed: {paho.error_string(info.rc)}",
                    service="mqtt",
                )
            return
        try:
            info.wait_for_publish(timeout=self.publish_timeout)
        except (ValueError, RuntimeError) as exc:
            raise RetryableError(
                f"MQTT publish to {topic} via {self.url} failed: {exc}", service="mqtt"
            ) from exc
        if not info.is_published():
            raise RetryableError(
                f"MQTT publish to {topic} via {self.url} not acknowledged "
                f"within {self.publish_timeout:g}s",
                service="mqtt",
            )

    def close(self) -> None:
        """Disconnect (QoS 1 publishes have already been acknowledged)."""
        self._abandon()

    def _attempt(self, *, v5: bool, deadline: float) -> Outcome:
        self._watch = watch = AttemptWatch()
        self._protocol = MQTT5 if v5 else MQTT311
        client = new_client(self.url, client_id=self.client_id, v5=v5, clean=True)

        def on_connect(
            client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
        ) -> None:
            watch.connack(reason, self.url)
            if not reason.is_failure:
                watch.ready()

        def on_disconnect(
            client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
        ) -> None:
            watch.closed()

        client.on_socket_open = lambda client, userdata, sock: watch.socket_opened()
        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        self._client = client
        client.connect_async(
            self.url.host,
            self.url.port,
            keepalive=KEEPALIVE_SECONDS,
            clean_start=True,  # no properties: amqtt answers such a v5 CONNECT at once
        )
        client.loop_start()
        return watch.wait(
            deadline=deadline, v5_answer_timeout=self.v5_answer_timeout if v5 else None
        )

    def _abandon(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            shutdown(client)


def create_publisher(
    settings: Settings,
    *,
    url: str,
    client_id: str,
    connect_timeout: float = 10.0,
    publish_timeout: float = 10.0,
) -> MqttPublisher:
    """Entry point `cityos.message_publishers:mqtt`: a connected publisher."""
    publisher = MqttPublisher(
        url=parse_mqtt_url(url),
        client_id=client_id,
        connect_timeout=connect_timeout,
        publish_timeout=publish_timeout,
    )
    publisher.connect()
    return publisher
