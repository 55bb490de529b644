"""Shared paho-mqtt plumbing: building clients and negotiating MQTT 5.0 versus 3.1.1."""

from __future__ import annotations

import enum
import logging
import ssl
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cityos.adapters.mqtt.url import MqttUrl
from cityos.platform.domain.errors import CityosError, ConfigError, RetryableError

MQTT5 = "MQTT 5.0"
MQTT311 = "MQTT 3.1.1"
KEEPALIVE_SECONDS = 30
RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 30

# CONNACK reasons that mean "this broker does not speak MQTT 5"; a 3.1.1 broker answers a v5
# CONNECT with return code 1, which paho reports as 0x84.
_NO_V5_REASONS = frozenset({0x84})
# Refusals the operator must fix (credentials, client id); others are worth retrying later.
_CONFIG_REASONS = frozenset({0x85, 0x86, 0x87, 0x8C})

PAHO_LOGGER = logging.getLogger("cityos.adapters.mqtt.paho")


class _DropShutdownNoise(logging.Filter):
    """paho 2.2 logs ERROR "Client is not connected" when its thread outlives a clean disconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Client is not connected")


PAHO_LOGGER.addFilter(_DropShutdownNoise())


def new_client(
    url: MqttUrl, *, client_id: str, v5: bool, clean: bool, manual_ack: bool = False
) -> paho.Client:
    """A paho client for `url` (credentials, TLS, reconnect backoff) at one protocol level."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else clean,
        manual_ack=manual_ack,
    )
    if url.username is not None or url.password is not None:
        client.username_pw_set(url.username or "", url.password)
    if url.tls:
        client.tls_set_context(ssl.create_default_context())  # the system's CA store
    client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
    client.enable_logger(PAHO_LOGGER)
    return client


def reason_value(reason: ReasonCode | int) -> int:
    """The numeric value of a paho reason code."""
    return int(reason.value) if isinstance(reason, ReasonCode) else int(reason)


class Outcome(enum.Enum):
    """How one connection attempt ended."""

    READY = "ready"
    NO_V5 = "broker does not speak MQTT 5"
    REFUSED = "refused"
    TIMEOUT = "timeout"


class AttemptWatch:
    """What paho's callbacks reported about one connection attempt, waited on by `start()`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._socket_opened_at: float | None = None
        self._answered = False
        self._no_v5 = False
        self._ready = False
        self.refusal: CityosError | None = None

    def socket_opened(self) -> None:
        """The TCP (and TLS) connection is up and CONNECT is about to be sent."""
        with self._cond:
            self._socket_opened_at = time.monotonic()
            self._answered = False
            self._cond.notify_all()

    def connack(self, reason: ReasonCode, url: MqttUrl) -> None:
        """The broker answered CONNECT."""
        with self._cond:
            self._answered = True
            value = reason_value(reason)
            if value in _NO_V5_REASONS:
                self._no_v5 = True
            elif reason.is_failure:
                kind = ConfigError if value in _CONFIG_REASONS else RetryableError
                self.refusal = kind(f"MQTT broker {url.redacted()} refused to connect: {reason}")
            self._cond.notify_all()

    def closed(self) -> None:
        """The connection closed; before any CONNACK that means the broker rejected MQTT 5."""
        with self._cond:
            if self._socket_opened_at is not None and not self._answered:
                self._no_v5 = True
                self._cond.notify_all()

    def ready(self) -> None:
        """Connected and subscribed: the attempt succeeded."""
        with self._cond:
            self._ready = True
            self._cond.notify_all()

    def fail(self, error: CityosError) -> None:
        """The attempt failed for good (e.g. the subscription was refused)."""
        with self._cond:
            self.refusal = error
            self._cond.notify_all()

    def wait(self, *, deadline: float, v5_answer_timeout: float | None) -> Outcome:
        """Block until the attempt is decided or `deadline` (monotonic) passes."""
        with self._cond:
            while True:
                if self._ready:
                    return Outcome.READY
                if self.refusal is not None:
                    return Outcome.REFUSED
                now = time.monotonic()
                if v5_answer_timeout is not None:
                    # amqtt 0.12 neither answers nor closes a v5 CONNECT that carries
                    # properties: it waits for bytes that never come. Silence means "no v5".
                    silent_since = self._socket_opened_at if not self._answered else None
                    if self._no_v5 or (
                        silent_since is not None and now - silent_since >= v5_answer_timeout
                    ):
                        return Outcome.NO_V5
                if now >= deadline:
                    return Outcome.TIMEOUT
                self._cond.wait(min(deadline - now, 0.05))


def shutdown(client: paho.Client) -> None:
    """Disconnect cleanly and stop paho's network thread."""
    client.disconnect()
    client.loop_stop()
