"""`cityos mosquitto sync` against a real mosquitto: per-device credentials, ACL and reload."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from cityos.platform.cli import app
from testkit.services import Mosquitto, running_mosquitto

pytestmark = pytest.mark.mosquitto

WORKER = "cityos-ingest"
WORKER_PASSWORD = "worker-secret-in-config"
SHARED = "$share/cityos/cityos/v1/devices/+/up"
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
TIMEOUT = 5.0


@dataclass
class Client:
    """A paho MQTT 5 client that records what the broker answered."""

    raw: paho.Client
    connack: ReasonCode | None = None
    connected: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1; return the PUBACK's reason code value."""
        codes: list[int] = []
        done = threading.Event()

        def on_publish(
            client: paho.Client, userdata: object, mid: int, rc: ReasonCode, props: Properties
        ) -> None:
            codes.append(rc.value)
            done.set()

        self.raw.on_publish = on_publish
        self.raw.publish(topic, payload, qos=1)
        assert done.wait(TIMEOUT), f"no PUBACK for {topic}"
        return codes[0]

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1; return the SUBACK's reason code value."""
        codes: list[int] = []
        done = threading.Event()

        def on_subscribe(
            client: paho.Client,
            userdata: object,
            mid: int,
            rcs: list[ReasonCode],
            props: Properties,
        ) -> None:
            codes.extend(rc.value for rc in rcs)
            done.set()

        self.raw.on_subscribe = on_subscribe
        self.raw.subscribe(topic, qos=1)
        assert done.wait(TIMEOUT), f"no SUBACK for {topic}"
        return codes[0]

    def wait_for(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Wait until a message with `payload` arrived; return everything received so far."""
        deadline = time.monotonic() + TIMEOUT
        with self.arrived:
            while payload not in [p for _, p in self.messages]:
                left = deadline - time.monotonic()
                assert left > 0, f"{payload!r} never arrived; got {self.messages}"
                self.arrived.wait(left)
            return list(self.messages)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients opened by a test, disconnected at its end."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.raw.disconnect()
        client.raw.loop_stop()


def connect(
    broker: Mosquitto, opened: list[Client], username: str | None, password: str | None
) -> Client:
    """Connect with MQTT 5 and wait for the CONNACK (or the broker closing the socket)."""
    raw = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"t-{username}-{time.monotonic_ns()}",
        protocol=paho.MQTTv5,
    )
    raw.reconnect_delay_set(30, 60)  # a refused client must not retry during the test
    client = Client(raw=raw)
    if username is not None:
        raw.username_pw_set(username, password)

    def on_connect(c: paho.Client, u: object, flags: object, rc: ReasonCode, p: object) -> None:
        client.connack = rc
        if not rc.is_failure:
            client.connected.set()
        client.answered.set()

    def on_message(c: paho.Client, u: object, message: paho.MQTTMessage) -> None:
        with client.arrived:
            client.messages.append((message.topic, message.payload))
            client.arrived.notify_all()

    raw.on_connect = on_connect
    raw.on_disconnect = lambda *args: client.answered.set()
    raw.on_message = on_message
    raw.connect("127.0.0.1", broker.port)
    raw.loop_start()
    opened.append(client)
    assert client.answered.wait(TIMEOUT), f"no answer to {username}'s CONNECT"
    return client


def cli(*argv: str) -> str:
    result = CliRunner().invoke(app, list(argv))
    assert result.exit_code == 0, result.output
    return result.stdout


def add_device(device_id: str) -> str:
    """Register a device with the CLI; return its MQTT password."""
    document = json.loads(
        cli(
            "devices",
            "add",
            "--id",
            device_id,
            "--name",
            device_id,
            "--domain",
            "disaster",
            "--format",
            "json",
            "--sensor",
            "tide_level:m",
            "--json",
        )
    )
    return str(document["mqtt_password"])


@pytest.fixture
def env(no_cityos_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data dir, the worker's password in config; returns the broker's directory."""
    monkeypatch.setenv("CITYOS__DATA_DIR", str(no_cityos_env / "data"))
    monkeypatch.setenv("CITYOS__MQTT__WORKER_PASSWORD", WORKER_PASSWORD)
    return no_cityos_env / "mosquitto"


def sync(directory: Path, *more: str) -> dict[str, object]:
    document: dict[str, object] = json.loads(
        cli(
            "mosquitto",
            "sync",
            "--password-file",
            str(directory / "passwd"),
            "--acl-file",
            str(directory / "acl"),
            "--worker-username",
            WORKER,
            "--json",
            *more,
        )
    )
    return document


def broker_config(directory: Path) -> str:
    return "\n".join(
        [
            "allow_anonymous false",
            f"password_file {directory / 'passwd'}",
            f"acl_file {directory / 'acl'}",
            f"pid_file {directory / 'mosquitto.pid'}",
        ]
    )


def test_devices_publish_only_to_their_own_topic(env: Path, clients: list[Client]) -> None:
    passwords = {device: add_device(device) for device in ("tide-a", "tide-b")}
    summary = sync(env)
    assert summary["devices"] == ["tide-a", "tide-b"]
    assert (env / "passwd").stat().st_mode & 0o777 == 0o640
    with running_mosquitto(env, extra_config=broker_config(env)) as broker:
        worker = connect(broker, clients, WORKER, WORKER_PASSWORD)
        assert worker.connected.is_set(), (worker.connack, broker.log())
        # mosquitto 2.0 checks the shared subscription against the filter after $share/<group>/
        assert worker.subscribe(SHARED) == 1  # granted QoS 1
        device = connect(broker, clients, "tide-a", passwords["tide-a"])
        assert device.connected.is_set(), broker.log()

        assert device.publish("cityos/v1/devices/tide-a/up", b"own-1") == 0
        worker.wait_for(b"own-1")

        # another device's topic: MQTT 5 PUBACK "Not authorized", and it is never delivered
        assert device.publish("cityos/v1/devices/tide-b/up", b"forged") == NOT_AUTHORIZED
        assert device.publish("cityos/v1/devices/tide-a/other", b"off-topic") == NOT_AUTHORIZED
        assert device.publish("cityos/v1/devices/tide-a/up", b"own-2") == 0
        received = worker.wait_for(b"own-2")
        assert [p for _, p in received] == [b"own-1", b"own-2"]

        # A device reads nothing, not even its own topic. mosquitto 2.0.11 grants the
        # SUBSCRIBE itself (its acl_file is checked per message, on delivery) but delivers
        # nothing the ACL does not let the user read.
        assert device.subscribe("cityos/v1/devices/+/up") in (1, NOT_AUTHORIZED)
        assert device.publish("cityos/v1/devices/tide-a/up", b"own-3") == 0
        worker.wait_for(b"own-3")
        time.sleep(0.2)
        assert device.messages == []


def test_wrong_and_missing_credentials_cannot_connect(env: Path, clients: list[Client]) -> None:
    add_device("tide-a")
    sync(env)
    with running_mosquitto(env, extra_config=broker_config(env)) as broker:
        for username, password in [("tide-a", "wrong"), (WORKER, "wrong"), (None, None)]:
            client = connect(broker, clients, username, password)
            assert not client.connected.is_set(), f"{username} connected"
            assert client.connack is not None
            assert client.connack.is_failure


def test_revoked_device_cannot_connect_after_sync_and_reload(
    env: Path, clients: list[Client]
) -> None:
    passwords = {device: add_device(device) for device in ("tide-a", "tide-b")}
    sync(env)
    with running_mosquitto(env, extra_config=broker_config(env)) as broker:
        worker = connect(broker, clients, WORKER, WORKER_PASSWORD)
        assert worker.subscribe(SHARED) == 1
        connected = connect(broker, clients, "tide-a", passwords["tide-a"])
        still = connect(broker, clients, "tide-b", passwords["tide-b"])
        assert connected.connected.is_set()
        assert still.connected.is_set()

        revoked = json.loads(cli("devices", "revoke", "tide-a", "--json"))
        assert revoked == {"device_id": "tide-a", "revoked": True, "already_revoked": False}
        summary = sync(env, "--pid-file", str(env / "mosquitto.pid"))
        assert summary["devices"] == ["tide-b"]
        assert summary["revoked_left_out"] == ["tide-a"]
        assert broker.process is not None
        assert summary["reloaded_pid"] == broker.process.pid
        deadline = time.monotonic() + TIMEOUT
        while "Reloading config" not in broker.log():
            assert time.monotonic() < deadline, broker.log()
            time.sleep(0.05)

        again = connect(broker, clients, "tide-a", passwords["tide-a"])
        assert not again.connected.is_set(), "a revoked device connected after the reload"
        other = connect(broker, clients, "tide-b", passwords["tide-b"])
        assert other.connected.is_set()
        assert other.publish("cityos/v1/devices/tide-b/up", b"still-here") == 0
        worker.wait_for(b"still-here")

        # mosquitto 2.0.11 re-checks connected clients' credentials at a reload: the revoked
        # device's open connection is cut; the worker's and other devices' stay (the worker's
        # password is hashed with a new salt at every sync and still matches).
        assert not connected.raw.is_connected()
        assert worker.raw.is_connected()
        assert still.raw.is_connected()
        assert still.publish("cityos/v1/devices/tide-b/up", b"same-connection") == 0
        worker.wait_for(b"same-connection")


def test_rotated_password_replaces_the_old_one(env: Path, clients: list[Client]) -> None:
    old = add_device("tide-a")
    sync(env)
    with running_mosquitto(env, extra_config=broker_config(env)) as broker:
        before = connect(broker, clients, "tide-a", old)
        assert before.connected.is_set()
        new = json.loads(cli("devices", "rotate", "tide-a", "--json"))["mqtt_password"]
        sync(env, "--pid-file", str(env / "mosquitto.pid"))
        time.sleep(0.3)  # SIGHUP is handled on the broker's next loop iteration
        assert not connect(broker, clients, "tide-a", old).connected.is_set()
        assert connect(broker, clients, "tide-a", new).connected.is_set()
        # mosquitto 2.0.11 re-checks connected clients at a reload: the old password's is cut
        assert not before.raw.is_connected()


def test_reload_of_a_process_that_is_gone_fails_clearly(env: Path) -> None:
    add_device("tide-a")
    (env).mkdir(parents=True)
    (env / "mosquitto.pid").write_text("999999999\n")
    result = CliRunner().invoke(
        app,
        [
            "mosquitto",
            "sync",
            "--password-file",
            str(env / "passwd"),
            "--acl-file",
            str(env / "acl"),
            "--pid-file",
            str(env / "mosquitto.pid"),
        ],
    )
    assert result.exit_code == 1
    assert "no process 999999999" in result.output
