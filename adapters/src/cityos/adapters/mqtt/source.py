"""The MQTT `MessageSource`: QoS 1, persistent session, manual acks, v5 shared subscription."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

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
from cityos.platform.domain.errors import ConfigError, RetryableError
from cityos.platform.ports import Message, MessageHandler

log = logging.getLogger(__name__)

SESSION_TAKEN_OVER = 0x8E  # MQTT 5 DISCONNECT reason: another client used our client id

DEVICE_UPLINK_FILTER = "cityos/v1/devices/+/up"
SUBSCRIBE_QOS = 1


def _no_ack() -> None:
    """QoS 0 messages have nothing to acknowledge."""


class _Ack:
    """Acknowledges one QoS 1/2 message once; later calls (from any thread) do nothing."""

    __slots__ = ("_done", "_generation", "_mid", "_qos", "_source")

    def __init__(self, source: MqttMessageSource, mid: int, qos: int, generation: int) -> None:
        self._source = source
        self._mid = mid
        self._qos = qos
        self._generation = generation
        self._done = False

    def __call__(self) -> None:
        """Send PUBACK for this message (only the first call does anything)."""
        with self._source._ack_lock:
            if self._done:
                return
            self._done = True
        self._source._send_ack(self._mid, self._qos, self._generation)


class MqttMessageSource:
    """Subscribes to device uplinks and hands each message to a handler with an ack callable."""

    def __init__(
        self,
        *,
        url: MqttUrl,
        client_id: str,
        share_group: str,
        session_expiry_seconds: int,
        receive_maximum: int,
        connect_timeout: float = 10.0,
        v5_answer_timeout: float = 2.0,
        topic_filter: str = DEVICE_UPLINK_FILTER,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.share_group = share_group
        self.topic_filter = topic_filter
        self.session_expiry_seconds = session_expiry_seconds
        self.receive_maximum = receive_maximum
        self.connect_timeout = connect_timeout
        self.v5_answer_timeout = v5_answer_timeout
        self._protocol = ""
        self._shared = False
        self._client: paho.Client | None = None
        self._handler: MessageHandler | None = None
        self._watch = AttemptWatch()
        self._ack_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._generation = 0  # counts successful connections; acks never cross one
        self._connected = False
        self._subscribed = False
        self._stopping = False

    # ------------------------------------------------------------ public API

    @property
    def protocol(self) -> str:
        """'MQTT 5.0' or 'MQTT 3.1.1' once started, '' before."""
        return self._protocol

    @property
    def shared_subscription(self) -> bool:
        """True when subscribed through `$share/<group>/...` (MQTT 5 only)."""
        return self._shared

    @property
    def connected(self) -> bool:
        """True while connected and subscribed (False during reconnect backoff)."""
        with self._state_lock:
            return self._connected and self._subscribed

    @property
    def subscription(self) -> str:
        """The topic filter actually subscribed to."""
        if self._shared:
            return f"$share/{self.share_group}/{self.topic_filter}"
        return self.topic_filter

    def start(self, handler: MessageHandler) -> None:
        """Connect (MQTT 5, else 3.1.1), subscribe, then deliver messages to `handler`."""
        if self._client is not None:
            raise RuntimeError("this MQTT source is already started")
        self._handler = handler
        self._stopping = False
        deadline = time.monotonic() + self.connect_timeout
        for v5 in (True, False):
            outcome = self._attempt(v5=v5, deadline=deadline)
            if outcome is Outcome.READY:
                log.info(
                    "MQTT source connected to %s as client id %r: %s, %s subscription %s (QoS %d)",
                    self.url.redacted(),
                    self.client_id,
                    self._protocol,
                    "shared" if self._shared else "plain",
                    self.subscription,
                    SUBSCRIBE_QOS,
                )
                if not self._shared:
                    log.warning(
                        "no shared subscription: run only ONE ingest worker against %s, or every "
                        "message is processed by each of them",
                        self.url.redacted(),
                    )
                return
            self._abandon()
            if outcome is Outcome.NO_V5 and v5:
                log.info("MQTT broker %s does not speak MQTT 5; trying 3.1.1", self.url.redacted())
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

    def stop(self) -> None:
        """Disconnect; what was not acked stays in the broker's session for the next start."""
        self._stopping = True
        client, self._client = self._client, None
        if client is not None:
            shutdown(client)
        with self._state_lock:
            self._connected = False
            self._subscribed = False

    # ------------------------------------------------------------ connection attempts

    def _attempt(self, *, v5: bool, deadline: float) -> Outcome:
        self._watch = AttemptWatch()
        self._protocol = MQTT5 if v5 else MQTT311
        self._shared = v5
        client = new_client(self.url, client_id=self.client_id, v5=v5, clean=False, manual_ack=True)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self.session_expiry_seconds
            properties.ReceiveMaximum = self.receive_maximum
        self._client = client
        client.connect_async(
            self.url.host,
            self.url.port,
            keepalive=KEEPALIVE_SECONDS,
            clean_start=False,
            properties=properties,
        )
        client.loop_start()
        return self._watch.wait(
            deadline=deadline, v5_answer_timeout=self.v5_answer_timeout if v5 else None
        )

    def _abandon(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            shutdown(client)

    def _subscribe(self, client: paho.Client) -> None:
        if self._protocol == MQTT5:
            client.subscribe(self.subscription, options=SubscribeOptions(qos=SUBSCRIBE_QOS))
        else:
            client.subscribe(self.subscription, qos=SUBSCRIBE_QOS)

    # ------------------------------------------------------------ paho callbacks (its thread)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._watch.socket_opened()

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._watch.connack(reason, self.url)
        if reason.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.url.redacted(), reason)
            return
        with self._state_lock:
            self._generation += 1
            self._connected = True
            generation = self._generation
        if generation > 1:
            log.info(
                "MQTT source reconnected to %s (session present: %s); resubscribing",
                self.url.redacted(),
                bool(flags.session_present),
            )
        self._subscribe(client)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._watch.closed()
        with self._state_lock:
            was_connected, self._connected = self._connected, False
            self._subscribed = False
        if getattr(reason, "value", None) == SESSION_TAKEN_OVER:
            log.error(
                "another client connected to %s with our client id %r and took over the session; "
                "every ingest worker needs its own CITYOS__MQTT__CLIENT_ID",
                self.url.redacted(),
                self.client_id,
            )
        elif was_connected and not self._stopping:
            log.warning(
                "MQTT source lost its connection to %s (%s); reconnecting with backoff",
                self.url.redacted(),
                reason,
            )

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        reason = reasons[0] if reasons else None
        if reason is not None and not reason.is_failure:
            with self._state_lock:
                self._subscribed = True
            self._watch.ready()
            return
        if self._shared:
            log.warning(
                "MQTT broker %s refused the shared subscription %s (%s); "
                "falling back to the plain topic %s (no load sharing between workers)",
                self.url.redacted(),
                self.subscription,
                reason,
                self.topic_filter,
            )
            self._shared = False
            self._subscribe(client)
            return
        error = ConfigError(
            f"MQTT broker {self.url.redacted()} refused the subscription to "
            f"{self.subscription}: {reason}"
        )
        log.error("%s", error)
        self._watch.fail(error)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        received_at = datetime.now(UTC)
        ack = _no_ack if msg.qos == 0 else _Ack(self, msg.mid, msg.qos, self._generation)
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            # Nothing can ever process it; acking keeps it from blocking the session forever.
            log.warning("MQTT message with a non-UTF-8 topic dropped: %r", msg._topic[:200])
            ack()
            return
        handler = self._handler
        if handler is None:
            return
        try:
            message = Message(
                topic=topic, payload=bytes(msg.payload), received_at=received_at, ack=ack
            )
            handler(message)
        except Exception:
            # One bad message must never kill the subscription; it stays unacked.
            log.exception("MQTT message handler failed on %s (message left unacked)", topic)

    # ------------------------------------------------------------ acks (any thread)

    def _send_ack(self, mid: int, qos: int, generation: int) -> None:
        # Checked and sent under one lock: a reconnect in between must not let an old packet
        # id acknowledge a different, not yet written message on the new connection.
        with self._state_lock:
            client = self._client
            if not (self._connected and generation == self._generation) or client is None:
                # The packet id belongs to a connection that is gone; the broker redelivers
                # the message on the new one, where it gets a fresh ack.
                log.debug("ack of mid %d skipped: its connection is gone", mid)
                return
            client.ack(mid, qos)  # only queues the PUBACK; paho's thread sends it


def create_source(
    settings: Settings,
    *,
    url: str,
    connect_timeout: float = 10.0,
    v5_answer_timeout: float = 2.0,
) -> MqttMessageSource:
    """Entry point `cityos.message_sources:mqtt`: the ingest worker's subscription."""
    return MqttMessageSource(
        url=parse_mqtt_url(url),
        client_id=settings.mqtt.client_id,
        share_group=settings.mqtt.share_group,
        session_expiry_seconds=settings.mqtt.session_expiry_seconds,
        receive_maximum=settings.mqtt.receive_maximum,
        connect_timeout=connect_timeout,
        v5_answer_timeout=v5_answer_timeout,
    )
