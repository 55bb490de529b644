"""The ingest benchmark's stack, all real and local: mosquitto, influxd, devices, workers, load.

- mosquitto on a free port with the queue, in-flight and persistence settings of
  `deploy/mosquitto/mosquitto.conf` (parsed from the file), no anonymous access, the password
  file and ACL of `cityos mosquitto sync` (one login per device), `$SYS` every second;
- influxd 1.6.7 in a temp dir (tests/testkit/influxd.py);
- devices registered through the platform's device service;
- `cityos ingest --workers N` as a real subprocess, configured through the environment;
- `mosquitto_pub -q 1 -l` publishers (C clients), one per device, fed lines on stdin;
- a `$SYS` monitor telling how many messages the broker took in and still holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cityos.platform.config import Settings
from cityos.platform.devices.credentials import hash_password
from cityos.platform.devices.mosquitto import WorkerAccount, plan_sync, write_atomically
from cityos.platform.devices.service import SensorSpec, build_device, register_device
from cityos.platform.domain.model import Domain
from cityos.platform.runtime import Runtime
from testkit.influxd import Influxd
from testkit.services import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
DEPLOY_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
CITYOS = Path(sys.executable).with_name("cityos")
QUANTITY = "water_level"
WORKER_USER, WORKER_PASSWORD = "cityos-ingest", "bench-worker-secret"
MONITOR_USER, MONITOR_PASSWORD = "bench-monitor", "bench-monitor-secret"
# deploy options naming the container's port, paths and log sink: this broker has its own
_LOCAL_OPTIONS = frozenset(
    {"listener", "port", "bind_address", "password_file", "acl_file", "persistence_location",
     "pid_file", "log_dest", "log_type", "log_timestamp", "log_timestamp_format", "user",
     "connection_messages"}
)  # fmt: skip
_STORE = "$SYS/broker/store/messages/count"
_RECEIVED = "$SYS/broker/publish/messages/received"
_DROPPED = "$SYS/broker/publish/messages/dropped"


def deploy_options(path: Path = DEPLOY_CONF) -> list[str]:
    """The lines of the deploy mosquitto.conf except its listener, paths and logging."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and line.split()[0] not in _LOCAL_OPTIONS:
            lines.append(line)
    return lines


def cpu_and_wait(pid: int) -> tuple[float, float]:
    """Seconds a process's live threads ran on a CPU and waited for one (runnable, not running)."""
    ran = waited = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError):
            fields = task.read_text().split()
            ran, waited = ran + int(fields[0]), waited + int(fields[1])
    return ran / 1e9, waited / 1e9


def children_of(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text().split()]
    return found


@dataclass(frozen=True)
class Device:
    """A registered device: its MQTT login and payload format (one `water_level` sensor)."""

    id: str
    password: str
    payload_format: str

    @property
    def topic(self) -> str:
        """Its uplink topic."""
        return f"cityos/v1/devices/{self.id}/up"


def register_devices(data_dir: Path, ids: Sequence[str], payload_format: str) -> list[Device]:
    """Register devices with one `water_level` sensor (m, -50..150) each."""
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        devices = []
        for device_id in ids:
            device, sensors = build_device(
                device_id=device_id,
                name=f"bench {device_id}",
                domain=Domain.DISASTER,
                payload_format=payload_format,
                sensors=[SensorSpec(QUANTITY, "m", -50.0, 150.0)],
                location=None,
                known_formats=runtime.decoders.keys(),
            )
            login = register_device(catalog=runtime.catalog, device=device, sensors=sensors)
            devices.append(Device(device_id, login.mqtt_password, payload_format))
        return devices
    finally:
        runtime.close()


class Broker:
    """mosquitto with the deploy queue settings and per-device logins (`cityos mosquitto sync`)."""

    def __init__(self, directory: Path, data_dir: Path) -> None:
        self.directory = directory
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        runtime = Runtime.open(Settings(data_dir=data_dir))
        try:
            plan = plan_sync(
                runtime.catalog.device_credentials(), WorkerAccount(WORKER_USER, WORKER_PASSWORD)
            )
        finally:
            runtime.close()
        monitor_hash = hash_password(MONITOR_PASSWORD)
        write_atomically(
            directory / "passwd", plan.password_file + f"{MONITOR_USER}:{monitor_hash}\n"
        )
        write_atomically(
            directory / "acl", plan.acl_file + f"\nuser {MONITOR_USER}\ntopic read $SYS/#\n"
        )
        config = [
            *(["user root"] if os.geteuid() == 0 else []),
            f"listener {self.port} 127.0.0.1",
            *deploy_options(),
            f"password_file {directory / 'passwd'}",
            f"acl_file {directory / 'acl'}",
            f"persistence_location {directory}/",
            f"log_dest file {directory / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "sys_interval 1",
        ]
        (directory / "mosquitto.conf").write_text("\n".join(config) + "\n")
        self.process = subprocess.Popen(
            [shutil.which("mosquitto") or "mosquitto", "-c", str(directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port)

    def url(self, username: str, password: str) -> str:
        """mqtt:// URL with a login."""
        return f"mqtt://{username}:{password}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        """The broker's log (errors and warnings)."""
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


class BrokerMonitor:
    """Follows `$SYS`: PUBLISHes the broker received, messages it holds, messages it dropped."""

    def __init__(self, broker: Broker) -> None:
        self.values: dict[str, int] = {}
        self.updated = threading.Condition()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-monitor")
        client.username_pw_set(MONITOR_USER, MONITOR_PASSWORD)
        client.on_connect = lambda c, *_: c.subscribe([(_STORE, 0), (_RECEIVED, 0), (_DROPPED, 0)])
        client.on_message = self._on_message
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        self.client = client
        deadline = time.monotonic() + 10
        with self.updated:
            while not {_STORE, _RECEIVED} <= set(self.values):
                if time.monotonic() > deadline:
                    raise TimeoutError("no $SYS values from the broker")
                self.updated.wait(0.5)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self.updated:
            self.values[msg.topic] = int(msg.payload)
            self.updated.notify_all()

    @property
    def received(self) -> int:
        """PUBLISH packets the broker received (all clients), at the last `$SYS` update."""
        return self.values.get(_RECEIVED, 0)

    @property
    def held(self) -> int:
        """Messages in the broker's store (queued or in flight, plus retained `$SYS`)."""
        return self.values.get(_STORE, 0)

    @property
    def dropped(self) -> int:
        """Messages the broker dropped (full queues)."""
        return self.values.get(_DROPPED, 0)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """One `mosquitto_pub -q 1 -l` process publishing a device's stdin lines to its topic."""

    def __init__(self, port: int, device: Device, log_path: Path) -> None:
        self.device = device
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [shutil.which("mosquitto_pub") or "mosquitto_pub", "-h", "127.0.0.1",
                 "-p", str(port), "-q", "1", "-l", "-t", device.topic,
                 "-i", f"bench-pub-{device.id}", "-u", device.id, "-P", device.password],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.sent = 0

    def write(self, lines: bytes, count: int) -> None:
        """Hand `count` newline-terminated messages to the publisher."""
        assert self.process.stdin is not None
        self.process.stdin.write(lines)
        self.process.stdin.flush()
        self.sent += count

    def finish(self, timeout: float = 120.0) -> None:
        """Close stdin and wait until every line is PUBACKed and the client has exited."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        code = self.process.wait(timeout)
        if code != 0:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mosquitto_pub of {self.device.id} exited with {code}: {tail}")

    def kill(self) -> None:
        """Stop it at once (cleanup)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Workers:
    """`cityos ingest --workers N`, configured through the environment, in its own session."""

    def __init__(
        self, *, count: int, broker: Broker, influxd: Influxd, database: str, data_dir: Path,
        log_path: Path, extra_env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.count = count
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "CITYOS__DATA_DIR": str(data_dir),
                "CITYOS__TIMESERIES__BACKEND": "influxdb",
                "CITYOS__TIMESERIES__URL": influxd.url,
                "CITYOS__TIMESERIES__DATABASE": database,
                "CITYOS__MQTT__URL": broker.url(WORKER_USER, WORKER_PASSWORD),
                "CITYOS__MQTT__CLIENT_ID": "bench-ingest",
                "CITYOS__INGEST__METRICS_PORT": "0",  # several workers at once
                **(extra_env or {}),
            }
        )
        self.env = env
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(CITYOS), "ingest", "--workers", str(count)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_subscribed(self, timeout: float = 60.0) -> None:
        """Block until every worker says it is subscribed."""
        deadline = time.monotonic() + timeout
        while self.log().count("ingesting from") < self.count:
            if self.process.poll() is not None:
                raise RuntimeError(f"cityos ingest exited:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"workers not subscribed after {timeout}s:\n{self.log()[-4000:]}"
                )
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """The supervisor and its worker processes."""
        return [self.process.pid, *children_of(self.process.pid)]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM to the supervisor (it stops its workers cleanly); SIGKILL after `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def log(self) -> str:
        """What the workers printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Influx:
    """Reads what the workers stored, with plain InfluxQL."""

    def __init__(self, server: Influxd, database: str) -> None:
        self.url = server.url
        self.database = database
        self.client = httpx.Client(timeout=30)

    def query(self, statement: str) -> list[dict[str, object]]:
        """The series of one statement's result (epoch-ns times)."""
        response = self.client.post(
            f"{self.url}/query", data={"q": statement, "db": self.database, "epoch": "ns"}
        )
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise RuntimeError(f"InfluxQL failed: {result['error']}: {statement}")
        series: list[dict[str, object]] = result.get("series", [])
        return series

    def count(self) -> int:
        """Readings stored in `observations`."""
        series = self.query('SELECT count("value") FROM "observations"')
        return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
