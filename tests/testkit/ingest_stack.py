"""A real ingest stack for fault tests and benchmarks.

- mosquitto with the queue, in-flight and persistence settings of
  `deploy/mosquitto/mosquitto.conf` (parsed from the file, so they cannot drift), no anonymous
  access, and the password file and ACL that `cityos mosquitto sync` writes;
- devices registered through the platform's device service (each with its own password);
- `cityos ingest` workers as real subprocesses (so SIGKILL is a real crash), one client id each;
- `mosquitto_pub -l` publishers (C clients), one per device, one cityos-JSON message per line,
  at QoS 1 with explicit, distinct times, so every reading can be counted exactly;
- exact per-sensor counts and contents read back from InfluxDB.

`ingest_stack(root, influxd)` builds it for a block; see tests/integration/test_ingest_faults.py.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cityos.platform.config import Settings
from cityos.platform.devices.mosquitto import WorkerAccount, plan_sync, write_atomically
from cityos.platform.devices.service import SensorSpec, build_device, register_device
from cityos.platform.domain.model import Domain, Rejection
from cityos.platform.runtime import Runtime
from testkit.influxd import Influxd
from testkit.services import Mosquitto, require, running_mosquitto

REPO = Path(__file__).resolve().parents[2]
DEPLOY_MOSQUITTO_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
CITYOS = Path(sys.executable).with_name("cityos")
WORKER_USERNAME = "cityos-ingest"
WORKER_PASSWORD = "fault-test-worker-secret"
QUANTITY = "level"
MEASUREMENT = "observations"

# Options of the deploy file that name the container's port, paths and log sink; the test
# broker has its own. Everything else (queues, in-flight window, persistence, auth) is reused.
LOCAL_OPTIONS = frozenset(
    {"listener", "port", "bind_address", "password_file", "acl_file", "persistence_location",
     "pid_file", "log_dest", "user"}
)  # fmt: skip
# Options the fault tests depend on: the file must still set them.
REQUIRED_OPTIONS = ("persistence", "max_queued_messages", "max_inflight_messages")

_SENDING_PUBLISH = re.compile(r"Sending PUBLISH to (\S+) \(d([01]), q(\d), r\d, m\d+, '([^']*)'")


def deploy_broker_options(path: Path = DEPLOY_MOSQUITTO_CONF) -> list[tuple[str, str]]:
    """The options of the deploy mosquitto.conf, in order, except its listener, paths and log."""
    options = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            if key not in LOCAL_OPTIONS:
                options.append((key, value.strip()))
    if missing := sorted(set(REQUIRED_OPTIONS) - {key for key, _ in options}):
        raise ValueError(f"{path} no longer sets {', '.join(missing)}")
    return options


def deploy_queue_limit(path: Path = DEPLOY_MOSQUITTO_CONF) -> int:
    """`max_queued_messages` of the deploy config: what one worker session can hold."""
    return int([v for k, v in deploy_broker_options(path) if k == "max_queued_messages"][-1])


@dataclass(frozen=True)
class DeviceLogin:
    """A registered device: its MQTT credentials and the one sensor it reports."""

    id: str
    password: str

    @property
    def topic(self) -> str:
        """Its uplink topic."""
        return f"cityos/v1/devices/{self.id}/up"

    @property
    def sensor_id(self) -> str:
        """The id of its one sensor."""
        return f"{self.id}.{QUANTITY}"


def register_devices(data_dir: Path, ids: Sequence[str]) -> list[DeviceLogin]:
    """Register devices with one `level` sensor each in the catalog under `data_dir`."""
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        logins = []
        for device_id in ids:
            device, sensors = build_device(
                device_id=device_id,
                name=f"fault test {device_id}",
                domain=Domain.DISASTER,
                payload_format="json",
                sensors=[SensorSpec(quantity=QUANTITY, unit="m")],
                location=None,
                known_formats=runtime.decoders.keys(),
            )
            credentials = register_device(catalog=runtime.catalog, device=device, sensors=sensors)
            logins.append(DeviceLogin(id=device_id, password=credentials.mqtt_password))
        return logins
    finally:
        runtime.close()


def write_broker_credentials(data_dir: Path, directory: Path, worker_password: str) -> None:
    """Write mosquitto's `passwd` and `acl` into `directory`, as `cityos mosquitto sync` does."""
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        plan = plan_sync(
            runtime.catalog.device_credentials(), WorkerAccount(WORKER_USERNAME, worker_password)
        )
    finally:
        runtime.close()
    write_atomically(directory / "passwd", plan.password_file)
    write_atomically(directory / "acl", plan.acl_file)


def broker_config(directory: Path, *, log_deliveries: bool = False) -> str:
    """Extra mosquitto config: the deploy options plus this broker's credential files."""
    lines = [f"{key} {value}" for key, value in deploy_broker_options()]
    lines += [f"password_file {directory / 'passwd'}", f"acl_file {directory / 'acl'}"]
    if log_deliveries:
        lines.append("log_type debug")  # one "Sending PUBLISH to <client>" line per delivery
    return "\n".join(lines)


@dataclass(frozen=True)
class Readings:
    """Reading `seq` of a device: value `seq` at `base_ms + seq` ms (distinct, countable)."""

    base_ms: int

    def line(self, seq: int) -> bytes:
        """The cityos-JSON payload of reading `seq`, as one stdin line for `mosquitto_pub -l`."""
        return b'{"time":%d,"readings":{"%s":%d}}\n' % (self.base_ms + seq, QUANTITY.encode(), seq)

    def expected(self, count: int) -> dict[int, float]:
        """Readings 0..count-1 as stored: {time in epoch ns: value}."""
        return {(self.base_ms + seq) * 1_000_000: float(seq) for seq in range(count)}


def readings_a_day_ago() -> Readings:
    """Readings starting a day ago, on a whole second (well clear of the future-time limit)."""
    return Readings(base_ms=(int(time.time()) - 86_400) * 1000)


@dataclass
class Worker:
    """One `cityos ingest` process with its own MQTT client id; restartable under the same id."""

    client_id: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_offset: int = 0

    def start(self) -> None:
        """Start the worker process (its output is appended to `log_path`)."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(CITYOS), "ingest"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_subscribed(self, timeout: float = 60.0) -> None:
        """Block until this run of the worker says it is subscribed."""
        deadline = time.monotonic() + timeout
        while "ingesting from" not in self.log()[self._log_offset :]:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"worker {self.client_id} exited:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.client_id} not subscribed after {timeout}s")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no flush, no ack, no disconnect — a crash."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful: write and ack what it holds), SIGKILL after `timeout`."""
        return self._signal(signal.SIGTERM, timeout)

    def _signal(self, signum: int, timeout: float = 30.0) -> int | None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()

    def log(self) -> str:
        """Everything the worker printed, across restarts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Publisher:
    """One `mosquitto_pub -q 1 -l` process publishing one device's lines to its own topic."""

    def __init__(self, port: int, device: DeviceLogin, log_path: Path) -> None:
        self.device = device
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [shutil.which("mosquitto_pub") or "mosquitto_pub", "-h", "127.0.0.1",
                 "-p", str(port), "-q", "1", "-l", "-t", device.topic, "-i", f"pub-{device.id}",
                 "-u", device.id, "-P", device.password],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def stdin(self) -> IO[bytes]:
        """The pipe its lines are written to."""
        assert self.process.stdin is not None
        return self.process.stdin

    def finish(self, timeout: float = 120.0) -> None:
        """Close stdin and wait until every line is PUBACKed and the client has exited."""
        with contextlib.suppress(BrokenPipeError):
            self.stdin.close()
        code = self.process.wait(timeout)
        if code != 0:
            raise AssertionError(
                f"mosquitto_pub for {self.device.id} exited with {code}: "
                f"{self.log_path.read_text(errors='replace')[-2000:]}"
            )

    def kill(self) -> None:
        """Stop it at once (cleanup)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def publish_burst(publishers: Sequence[Publisher], readings: Readings, per_device: int) -> None:
    """Feed every publisher `per_device` readings as fast as it takes them; wait for all PUBACKs."""

    def feed(publisher: Publisher) -> None:
        with contextlib.suppress(BrokenPipeError):
            publisher.stdin.write(b"".join(readings.line(seq) for seq in range(per_device)))
            publisher.stdin.flush()

    threads = [threading.Thread(target=feed, args=(p,), daemon=True) for p in publishers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for publisher in publishers:
        publisher.finish()


class PacedStream:
    """Publishes `total` readings at a steady total rate, round-robin over the publishers."""

    def __init__(
        self,
        publishers: Sequence[Publisher],
        readings: Readings,
        *,
        rate_per_second: float,
        total: int,
    ) -> None:
        self.publishers = list(publishers)
        self.readings = readings
        self.rate = rate_per_second
        self.total = total
        self._sent = [0] * len(self.publishers)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="paced-stream", daemon=True)
        self.error: BaseException | None = None

    @property
    def sent(self) -> int:
        """Readings handed to the publishers so far (all devices)."""
        with self._lock:
            return sum(self._sent)

    def start(self) -> None:
        """Start streaming in a background thread."""
        self._thread.start()

    def wait_sent(self, count: int, timeout: float) -> None:
        """Block until at least `count` readings were handed to the publishers."""
        deadline = time.monotonic() + timeout
        while self.sent < count and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.sent} of {count} readings sent in {timeout}s")
            time.sleep(0.05)

    def finish(self, timeout: float = 300.0) -> list[int]:
        """Wait until all are handed out and PUBACKed; return how many each device sent."""
        self._thread.join(timeout)
        for publisher in self.publishers:
            publisher.finish()
        if self.error is not None or self._thread.is_alive():
            raise AssertionError(f"the paced stream failed: {self.error!r}")
        with self._lock:
            return list(self._sent)

    def _run(self) -> None:
        try:
            started = time.monotonic()
            devices = len(self.publishers)
            done = 0
            while done < self.total:
                time.sleep(0.01)
                due = min(self.total, int((time.monotonic() - started) * self.rate))
                for k in range(done, due):
                    index = k % devices
                    with self._lock:
                        seq = self._sent[index]
                        self._sent[index] += 1
                    self.publishers[index].stdin.write(self.readings.line(seq))
                for publisher in self.publishers:
                    publisher.stdin.flush()
                done = due
        except BaseException as exc:
            self.error = exc


@dataclass
class IngestStack:
    """mosquitto (deploy settings, credentials), InfluxDB, registered devices, ingest workers."""

    root: Path
    broker: Mosquitto
    influxd: Influxd
    database: str
    data_dir: Path
    devices: list[DeviceLogin]
    workers: list[Worker] = field(default_factory=list)
    publishers: list[Publisher] = field(default_factory=list)

    def worker_env(self, client_id: str) -> dict[str, str]:
        """The environment of one `cityos ingest` worker (everything else left at defaults)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS__")}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "CITYOS__DATA_DIR": str(self.data_dir),
                "CITYOS__TIMESERIES__BACKEND": "influxdb",
                "CITYOS__TIMESERIES__URL": self.influxd.url,
                "CITYOS__TIMESERIES__DATABASE": self.database,
                "CITYOS__MQTT__URL": (
                    f"mqtt://{WORKER_USERNAME}:{WORKER_PASSWORD}@127.0.0.1:{self.broker.port}"
                ),
                "CITYOS__MQTT__CLIENT_ID": client_id,
                "CITYOS__INGEST__METRICS_PORT": "0",  # several workers at once
            }
        )
        return env

    def start_worker(self, client_id: str, *, timeout: float = 60.0) -> Worker:
        """Start a worker and wait until it is subscribed (its session then queues messages)."""
        worker = Worker(
            client_id=client_id,
            env=self.worker_env(client_id),
            log_path=self.root / f"worker-{client_id}.log",
        )
        self.workers.append(worker)
        worker.start()
        worker.wait_subscribed(timeout)
        return worker

    def new_publishers(self) -> list[Publisher]:
        """One connected-on-start `mosquitto_pub -l` per device."""
        fresh = [
            Publisher(self.broker.port, device, self.root / f"pub-{device.id}.log")
            for device in self.devices
        ]
        self.publishers += fresh
        return fresh

    # ---------------------------------------------------------------- InfluxDB

    def _query(self, statement: str) -> list[Any]:
        """The `series` of one InfluxQL statement's result (times in epoch ns)."""
        response = self.influxd.query(statement, db=self.database, epoch="ns")
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise AssertionError(f"InfluxQL failed: {result['error']}: {statement}")
        return list(result.get("series", []))

    def counts(self) -> dict[str, int]:
        """Stored readings per sensor id."""
        series = self._query(f'SELECT count("value") FROM "{MEASUREMENT}" GROUP BY "sensor"')
        return {str(s["tags"]["sensor"]): int(s["values"][0][1]) for s in series}

    def stored(self, sensor_id: str) -> list[tuple[int, float]]:
        """Every stored (time ns, value) of one sensor, oldest first."""
        quoted = sensor_id.replace("\\", "\\\\").replace("'", "\\'")
        series = self._query(f'SELECT "value" FROM "{MEASUREMENT}" WHERE "sensor" = \'{quoted}\'')
        rows = series[0]["values"] if series else []
        return [(int(t), float(v)) for t, v in rows]

    def wait_for_total(
        self,
        total: int,
        *,
        timeout: float,
        stall: float = 60.0,
        context: Callable[[], str] = lambda: "",
    ) -> float:
        """Poll InfluxDB until `total` readings are stored; return the seconds it took.

        Fails after `timeout`, or sooner when the count has not moved for `stall` seconds.
        """
        started = progressed = time.monotonic()
        counts: dict[str, int] = {}
        last = -1
        while (now := time.monotonic()) - started < timeout and now - progressed < stall:
            with contextlib.suppress(Exception):  # influxd may be restarting
                counts = self.counts()
            stored = sum(counts.values())
            if stored >= total:
                return time.monotonic() - started
            if stored != last:
                last, progressed = stored, now
            time.sleep(0.5)
        raise AssertionError(
            f"only {sum(counts.values())} of {total} readings stored after "
            f"{time.monotonic() - started:.0f}s (per sensor: {counts}){context()}\n"
            f"{self.diagnostics()}"
        )

    def assert_stored_exactly(self, expected: dict[str, dict[int, float]]) -> None:
        """Each sensor holds exactly the expected {time ns: value}: all present, none extra."""
        problems = []
        for sensor_id, points in expected.items():
            rows = self.stored(sensor_id)
            got = dict(rows)
            missing = sorted(set(points) - set(got))
            extra = sorted(set(got) - set(points))
            wrong = sorted(t for t in set(points) & set(got) if got[t] != points[t])
            if len(rows) != len(points) or missing or extra or wrong:
                problems.append(
                    f"{sensor_id}: {len(rows)} stored, {len(points)} expected; "
                    f"missing {len(missing)} (first {missing[:5]}), extra {len(extra)}, "
                    f"wrong value {len(wrong)}"
                )
        if unexpected := sorted(set(self.counts()) - set(expected)):
            problems.append(f"readings of unexpected sensors: {unexpected}")
        assert not problems, "\n".join(problems) + "\n" + self.diagnostics()

    # ---------------------------------------------------------------- catalog and broker

    def dead_letters(self) -> list[Rejection]:
        """Dead-letter records in the catalog (what `cityos rejected list` shows)."""
        runtime = Runtime.open(Settings(data_dir=self.data_dir))
        try:
            return runtime.catalog.list_rejections(limit=100)
        finally:
            runtime.close()

    def deliveries(self) -> collections.Counter[tuple[str, bool]]:
        """PUBLISH packets the broker sent, per (client id, redelivery flag); needs debug log."""
        counter: collections.Counter[tuple[str, bool]] = collections.Counter()
        path = self.broker.directory / "mosquitto.log"
        with path.open(errors="replace") as log:
            for line in log:
                if match := _SENDING_PUBLISH.search(line):
                    counter[(match.group(1), match.group(2) == "1")] += 1
        return counter

    def broker_dropped(self) -> list[str]:
        """The broker's log lines about messages it dropped (full queues), if any."""
        path = self.broker.directory / "mosquitto.log"
        with path.open(errors="replace") as log:
            return [line.rstrip() for line in log if "dropped" in line.lower()]

    def diagnostics(self) -> str:
        """Tails of the workers' and broker's logs, for assertion messages."""
        parts = [f"--- {w.client_id} ---\n{w.log()[-3000:]}" for w in self.workers]
        parts.append(f"--- broker drops ---\n{self.broker_dropped()[:5]}")
        return "\n".join(parts)


@contextlib.contextmanager
def ingest_stack(
    root: Path,
    influxd: Influxd,
    *,
    device_count: int = 4,
    log_deliveries: bool = False,
) -> Iterator[IngestStack]:
    """Registered devices, mosquitto with the deploy queue settings, a fresh InfluxDB database."""
    require(shutil.which("mosquitto_pub") is not None, "mosquitto_pub not on PATH")
    require(CITYOS.exists(), f"the cityos command is not installed next to {sys.executable}")
    data_dir = root / "data"
    broker_dir = root / "mosquitto"
    broker_dir.mkdir(parents=True, exist_ok=True)
    devices = register_devices(data_dir, [f"dev-{n:02d}" for n in range(device_count)])
    write_broker_credentials(data_dir, broker_dir, WORKER_PASSWORD)
    database = influxd.new_database()
    with running_mosquitto(
        broker_dir, extra_config=broker_config(broker_dir, log_deliveries=log_deliveries)
    ) as broker:
        stack = IngestStack(
            root=root,
            broker=broker,
            influxd=influxd,
            database=database,
            data_dir=data_dir,
            devices=devices,
        )
        try:
            yield stack
        finally:
            for publisher in stack.publishers:
                publisher.kill()
            for worker in stack.workers:
                worker.stop(timeout=15)
            influxd.drop_database(database)
