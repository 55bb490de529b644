"""Ingestion speed benchmarks (issue 4), end to end on this machine, everything real and local.

    UV_PYTHON_DOWNLOADS=never python3 -m uv run python bench/ingest.py all
    UV_PYTHON_DOWNLOADS=never python3 -m uv run python bench/ingest.py json --workers 2

devices (`mosquitto_pub -q 1 -l`, one per device, with its own login) -> mosquitto (the queue
settings of deploy/mosquitto/mosquitto.conf) -> `cityos ingest --workers N` (MQTT v5 shared
subscription, QoS 1, persistent sessions, ack after the durable write) -> influxd 1.6.7.

- `json`: single-reading cityos-JSON messages, sustained; first a bare paho subscriber that
  only counts (the ceiling), then cityos, with the same publishers, in the same run. Target:
  >= 8,000 msg/s and >= 0.65x the ceiling.
- `senml`: SenML packs of 100 readings, sustained. Target: >= 100,000 readings/s.
- `latency`: 1,000 msg/s, time from handing a message to its publisher until a query to
  InfluxDB returns it. Target: p99 <= 1 s.

Load is closed-loop: publishers are fed only while fewer than `--window` messages are in the
system (handed to a publisher but not yet acknowledged by a subscriber, from the broker's
`$SYS` counters), so a publisher never has 65,535 messages outstanding, the broker never
drops, and the subscriber side is never starved. Every run ends by checking that every
message sent was stored exactly once (InfluxDB count) and that the broker dropped nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import (
    QUANTITY,
    WORKER_PASSWORD,
    WORKER_USER,
    Broker,
    BrokerMonitor,
    Device,
    Influx,
    Publisher,
    Workers,
    cpu_and_wait,
    register_devices,
)

from testkit.influxd import Influxd, running_influxd

JSON_TARGET, JSON_RATIO_TARGET = 8_000.0, 0.65
SENML_TARGET = 100_000.0
LATENCY_TARGET = 1.0
PACK = 100  # readings per SenML pack
# Each worker's MQTT v5 Receive Maximum, sized to the batch window: a batch is written 100 ms
# after its first message (or at 5,000 readings), then acked; meanwhile the broker may send only
# this many unacked messages. 5,000 covers 100 ms plus a slow write at several thousand msg/s
# per worker (mosquitto 2.0 honours a v5 client's Receive Maximum above max_inflight_messages).
RECEIVE_MAXIMUM = 5_000
UPLINKS = "cityos/v1/devices/+/up"
DAY_MS = 86_400_000


# ---------------------------------------------------------------- the counting subscriber


def count_messages(port: int) -> None:
    """A bare paho subscriber (QoS 1, auto ack) that prints how many messages it got, 10x/s."""
    count = 0
    subscribed = threading.Event()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        nonlocal count
        count += 1

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-bare-counter", protocol=paho.MQTTv5
    )
    client.username_pw_set(WORKER_USER, WORKER_PASSWORD)
    client.on_connect = lambda c, *_: c.subscribe(UPLINKS, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    print("subscribed", flush=True)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        while True:
            print(count, flush=True)
            time.sleep(0.1)


class CountingSubscriber:
    """The counting subscriber as a separate process (its own GIL, like a worker)."""

    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "_count", "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "subscribed":
            raise RuntimeError("the counting subscriber did not subscribe")
        self.count = 0
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.count = int(line)

    def stop(self) -> None:
        """Stop it."""
        self.process.terminate()
        self.process.wait(10)


# ---------------------------------------------------------------- load


@dataclass
class Load:
    """What one device publishes: line `seq` of a device is one message with a unique time."""

    kind: str  # "json" or "senml"
    base_ms: int

    def lines(self, device: Device, first: int, count: int) -> bytes:
        """Messages first .. first+count-1 of a device, one per line."""
        if self.kind == "json":
            return b"".join(
                b'{"time":%d,"readings":{"%s":%d.%02d}}\n'
                % (self.base_ms + seq, QUANTITY.encode(), 1 + seq % 7, seq % 100)
                for seq in range(first, first + count)
            )
        return b"".join(self.pack(device, seq) for seq in range(first, first + count))

    def pack(self, device: Device, seq: int) -> bytes:
        """A SenML pack of PACK readings 1 ms apart (base fields in the first record)."""
        start = (self.base_ms + seq * PACK) / 1000
        head = b'[{"bn":"urn:dev:%s:","bt":%.3f,"bu":"m","n":"%s","v":1.5},' % (
            device.id.encode(),
            start,
            QUANTITY.encode(),
        )
        return head + _TAILS[seq % len(_TAILS)]

    def readings(self, messages: int) -> int:
        """Readings in that many messages."""
        return messages * (PACK if self.kind == "senml" else 1)


_TAILS = [
    b",".join(
        b'{"n":"%s","t":%.3f,"v":%d.%02d}' % (QUANTITY.encode(), k / 1000, 1 + (k + s) % 5, k)
        for k in range(1, PACK)
    )
    + b"]\n"
    for s in range(16)
]


class Feeder:
    """Feeds publishers round-robin, keeping at most `window` messages in the system."""

    def __init__(
        self, publishers: Sequence[Publisher], load: Load, monitor: BrokerMonitor, window: int
    ) -> None:
        self.publishers = list(publishers)
        self.load = load
        self.monitor = monitor
        self.window = window
        self.fed = 0
        self._received0 = monitor.received
        self._held0 = monitor.held

    def consumed(self) -> int:
        """Messages the broker took in and no longer holds: acknowledged by a subscriber."""
        monitor = self.monitor
        return (monitor.received - self._received0) - (monitor.held - self._held0)

    def run(self, seconds: float, chunk: int) -> None:
        """Feed for `seconds`, in chunks of at most `chunk` messages per publisher."""
        deadline = time.monotonic() + seconds
        turn = 0
        while time.monotonic() < deadline:
            room = self.window - (self.fed - self.consumed())
            if room < chunk:
                time.sleep(0.005)
                continue
            publisher = self.publishers[turn % len(self.publishers)]
            turn += 1
            publisher.write(self.load.lines(publisher.device, publisher.sent, chunk), chunk)
            self.fed += chunk

    def finish(self, timeout: float = 120.0) -> None:
        """Wait until the broker took in everything fed (the publishers keep running)."""
        deadline = time.monotonic() + timeout
        while self.monitor.received - self._received0 < self.fed:
            if time.monotonic() > deadline:
                raise TimeoutError("the publishers did not deliver everything to the broker")
            time.sleep(0.1)


# ---------------------------------------------------------------- measuring


class CpuMeter:
    """CPU use of groups of processes over a window: cores used, and cores' worth of waiting."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self._start: dict[str, tuple[float, float]] = {}
        self._pids: dict[str, list[int]] = {}
        self._t0 = 0.0

    def _read(self, pids: list[int]) -> tuple[float, float]:
        both = [cpu_and_wait(pid) for pid in pids]
        return sum(ran for ran, _ in both), sum(waited for _, waited in both)

    def start(self) -> None:
        """Begin the window."""
        self._pids = {name: pids() for name, pids in self.groups.items()}
        self._start = {name: self._read(pids) for name, pids in self._pids.items()}
        self._t0 = time.monotonic()

    def report(self) -> dict[str, tuple[float, float]]:
        """Cores each group ran and waited (runnable, no CPU free) since `start`."""
        wall = time.monotonic() - self._t0
        used = {}
        for name, pids in self._pids.items():
            ran, waited = self._read(pids)
            ran0, waited0 = self._start[name]
            used[name] = ((ran - ran0) / wall, (waited - waited0) / wall)
        return used


def cores(used: dict[str, tuple[float, float]], rate: float, group: str) -> str:
    """`name ran/waited` cores per group, and the CPU time of `group` per message."""
    parts = "  ".join(f"{name} {ran:.2f}/{waited:.2f}" for name, (ran, waited) in used.items())
    per = used[group][0] / rate * 1e6 if rate else 0.0
    return f"{group} {per:.0f} us CPU/msg; cores ran/waited: {parts}"


def sample(read: Callable[[], int]) -> tuple[float, int]:
    """(monotonic time, value) of a counter that takes a moment to read (midpoint time)."""
    before = time.monotonic()
    value = read()
    return (before + time.monotonic()) / 2, value


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def uptime() -> str:
    """The load averages, as `uptime` prints them."""
    return "load average: " + ", ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    """Broker, InfluxDB, devices and publishers of one scenario."""

    root: Path
    broker: Broker
    monitor: BrokerMonitor
    server: Influxd
    influx: Influx
    data_dir: Path
    devices: list[Device]
    publishers: list[Publisher]

    def workers(self, args: argparse.Namespace) -> Workers:
        """Start `cityos ingest --workers N` and wait until every worker is subscribed."""
        extra = {}
        if args.receive_maximum:
            extra["CITYOS__MQTT__RECEIVE_MAXIMUM"] = str(args.receive_maximum)
        workers = Workers(
            count=args.workers,
            broker=self.broker,
            influxd=self.server,
            database=self.influx.database,
            data_dir=self.data_dir,
            log_path=self.root / "workers.log",
            extra_env=extra,
        )
        workers.wait_subscribed()
        return workers

    def cpu(self, **more: Callable[[], list[int]]) -> CpuMeter:
        """A CPU meter over the stack's processes (and `more`)."""
        return CpuMeter(
            {
                **more,
                "mosquitto": lambda: [self.broker.process.pid],
                "influxd": lambda: [self.server.process.pid] if self.server.process else [],
                "publishers": lambda: [p.process.pid for p in self.publishers],
                "bench": lambda: [os.getpid()],
            }
        )

    def check_clean(self, workers: Workers | None) -> None:
        """The broker dropped nothing and no worker logged an error."""
        if self.monitor.dropped:
            raise RuntimeError(f"the broker dropped {self.monitor.dropped} messages")
        if workers is not None and ("ERROR" in workers.log() or "CRITICAL" in workers.log()):
            raise RuntimeError(f"a worker logged errors:\n{workers.log()[-3000:]}")


@contextlib.contextmanager
def stack(kind: str, devices: int, keep: bool, payload_format: str = "json") -> Iterator[Stack]:
    """Everything but the subscribers, in a temp dir (removed afterwards unless `keep`)."""
    root = Path(tempfile.mkdtemp(prefix=f"cityos-bench-{kind}-"))
    try:
        with _services(root, kind, devices, payload_format) as running:
            yield running
    finally:
        if keep:
            print(f"(kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _services(root: Path, kind: str, devices: int, payload_format: str) -> Iterator[Stack]:
    """Registered devices, the broker and its monitor, influxd and the publishers."""
    data_dir = root / "data"
    ids = [f"bench-{kind}-{n:02d}" for n in range(devices)]
    registered = register_devices(data_dir, ids, payload_format)
    broker = Broker(root / "mosquitto", data_dir)
    publishers: list[Publisher] = []
    monitor: BrokerMonitor | None = None
    try:
        monitor = BrokerMonitor(broker)
        with running_influxd(root / "influxd") as server:
            influx = Influx(server, server.new_database())
            publishers = [
                Publisher(broker.port, device, root / f"pub-{device.id}.log")
                for device in registered
            ]
            try:
                yield Stack(root, broker, monitor, server, influx, data_dir, registered, publishers)
            finally:
                for publisher in publishers:
                    publisher.kill()
                influx.close()
    finally:
        if monitor is not None:
            monitor.close()
        broker.stop()


# ---------------------------------------------------------------- scenarios


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


def sustained(
    s: Stack,
    feeder: Feeder,
    args: argparse.Namespace,
    read: Callable[[], int],
    meter: CpuMeter,
    chunk: int,
) -> tuple[float, dict[str, tuple[float, float]]]:
    """Feed for warm-up + duration; the rate of `read()` over the duration, and CPU use."""
    feeder.run(args.warmup, chunk)
    t0, n0 = sample(read)
    meter.start()
    feeder.run(args.duration, chunk)
    t1, n1 = sample(read)
    return (n1 - n0) / (t1 - t0), meter.report()


def scenario_json(args: argparse.Namespace) -> dict[str, float]:
    """Bare counting subscriber, then cityos, on the same publishers."""
    load = Load("json", now_ms() - 2 * DAY_MS)
    with stack("json", args.publishers, args.keep) as s:
        print(f"json: {args.publishers} publishers, window {args.window}, {uptime()}")
        counter = CountingSubscriber(s.broker.port)
        feeder = Feeder(s.publishers, load, s.monitor, args.window)
        meter = s.cpu(counter=lambda: [counter.process.pid])
        bare, cpu = sustained(s, feeder, args, lambda: counter.count, meter, args.chunk)
        usage = cores(cpu, bare, "counter")
        print(f"  bare paho counting subscriber  {bare:>9,.0f} msg/s   ({usage})")
        feeder.finish()
        wait_until(lambda: counter.count >= feeder.fed, 60, "the counter to drain")
        counter.stop()

        workers = s.workers(args)
        try:
            feeder = Feeder(s.publishers, load, s.monitor, args.window)
            meter = s.cpu(workers=workers.pids)
            rate, cpu = sustained(s, feeder, args, s.influx.count, meter, args.chunk)
            print(
                f"  cityos ingest --workers {args.workers}      {rate:>9,.0f} msg/s   "
                f"({cores(cpu, rate, 'workers')})"
            )
            feeder.finish()
            wait_until(lambda: s.influx.count() >= feeder.fed, 120, "every reading stored")
            stored = s.influx.count()
            s.check_clean(workers)
        finally:
            code = workers.stop()
        if stored != feeder.fed or code != 0:
            raise RuntimeError(f"stored {stored} of {feeder.fed}; workers exited {code}")
        print(f"  checked: all {stored:,} messages stored once, nothing dropped, clean exit")
        ratio = rate / bare
        print(
            f"  => {rate:,.0f} msg/s = {rate / JSON_TARGET:.2f}x the 8,000 target; "
            f"{ratio:.2f}x the bare subscriber (target >= {JSON_RATIO_TARGET:.2f}x)  {uptime()}"
        )
        return {"json_rate": rate, "json_bare": bare, "json_ratio": ratio}


def scenario_senml(args: argparse.Namespace) -> dict[str, float]:
    """SenML packs of 100 readings, sustained."""
    load = Load("senml", now_ms() - 2 * DAY_MS)
    with stack("senml", args.publishers, args.keep, "senml") as s:
        window = args.window_packs
        print(f"senml: {args.publishers} publishers, window {window} packs, {uptime()}")
        workers = s.workers(args)
        try:
            feeder = Feeder(s.publishers, load, s.monitor, window)
            meter = s.cpu(workers=workers.pids)
            chunk = max(1, args.chunk // PACK)
            rate, cpu = sustained(s, feeder, args, s.influx.count, meter, chunk)
            print(
                f"  cityos ingest --workers {args.workers}  {rate:>9,.0f} readings/s "
                f"({rate / PACK:,.0f} packs/s)   ({cores(cpu, rate / PACK, 'workers')})"
            )
            feeder.finish()
            expected = load.readings(feeder.fed)
            wait_until(lambda: s.influx.count() >= expected, 120, "every reading stored")
            stored = s.influx.count()
            s.check_clean(workers)
        finally:
            code = workers.stop()
        if stored != expected or code != 0:
            raise RuntimeError(f"stored {stored} of {expected}; workers exited {code}")
        print(f"  checked: all {stored:,} readings stored once, nothing dropped, clean exit")
        print(
            f"  => {rate:,.0f} readings/s = {rate / SENML_TARGET:.2f}x the 100,000 target  "
            f"{uptime()}"
        )
        return {"senml_rate": rate}


class LatencyProbe:
    """Polls InfluxDB for what was published and records when each message became queryable."""

    def __init__(self, influx: Influx, interval: float) -> None:
        self.influx = influx
        self.interval = interval
        self.pending: dict[tuple[str, int], float] = {}  # (sensor, time ns) -> handed at
        self.order: deque[tuple[str, int]] = deque()
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def published(self, sensor: str, time_ns: int, at: float) -> None:
        """A message was handed to its publisher at wall time `at`."""
        with self.lock:
            self.pending[(sensor, time_ns)] = at
            self.order.append((sensor, time_ns))

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """One query for everything from the oldest unseen message on."""
        with self.lock:
            while self.order and self.order[0] not in self.pending:
                self.order.popleft()
            if not self.order:
                return
            oldest = min(t for _, t in self.order)
        series = self.influx.query(
            f'SELECT "value", "sensor" FROM "observations" WHERE time >= {oldest}'
        )
        seen_at = time.time()
        with self.lock:
            for one in series:
                for row in one["values"]:  # type: ignore[union-attr]
                    handed = self.pending.pop((str(row[2]), int(row[0])), None)
                    if handed is not None:
                        self.latencies.append(seen_at - handed)


def scenario_latency(args: argparse.Namespace) -> dict[str, float]:
    """1,000 msg/s over many devices; publish-to-queryable latency of every message."""
    devices = max(args.publishers, 10)
    with stack("latency", devices, args.keep) as s:
        print(f"latency: {args.rate:,.0f} msg/s over {devices} publishers, {uptime()}")
        workers = s.workers(args)
        probe = LatencyProbe(s.influx, args.poll)
        probe.thread.start()
        sent = 0
        last: dict[str, int] = {}
        try:
            meter = s.cpu(workers=workers.pids)
            meter.start()
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < args.duration:
                due = int(elapsed * args.rate)
                while sent < due:
                    publisher = s.publishers[sent % devices]
                    device = publisher.device
                    handed = time.time()
                    ms = max(int(handed * 1000), last.get(device.id, 0) + 1)
                    last[device.id] = ms
                    probe.published(f"{device.id}.{QUANTITY}", ms * 1_000_000, handed)
                    line = b'{"time":%d,"readings":{"%s":1.25}}\n' % (ms, QUANTITY.encode())
                    publisher.write(line, 1)
                    sent += 1
                time.sleep(0.001)
            cpu = cores(meter.report(), sent / args.duration, "workers")
            wait_until(lambda: not probe.pending, 30, "every message to be queryable")
            probe.stop.set()
            probe.thread.join()
            stored = s.influx.count()
            s.check_clean(workers)
        finally:
            probe.stop.set()
            code = workers.stop()
        if stored != sent or code != 0:
            raise RuntimeError(f"stored {stored} of {sent}; workers exited {code}")
        lat = sorted(probe.latencies)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))]

        p99 = pct(0.99)
        print(f"  {len(lat):,} messages, {sent / args.duration:,.0f} msg/s   ({cpu})")
        print(
            f"  publish-to-queryable: p50 {pct(0.5) * 1000:.0f} ms  p90 {pct(0.9) * 1000:.0f} ms  "
            f"p99 {p99 * 1000:.0f} ms  max {lat[-1] * 1000:.0f} ms  "
            f"mean {statistics.fmean(lat) * 1000:.0f} ms (polled every {args.poll * 1000:.0f} ms)"
        )
        print(
            f"  => p99 {p99 * 1000:.0f} ms = {p99 / LATENCY_TARGET:.2f}x the 1 s limit  {uptime()}"
        )
        return {"latency_p99": p99}


def main() -> None:
    """Run the chosen scenario(s) and print figures with ratios to their targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["json", "senml", "latency", "all", "_count"])
    parser.add_argument("--workers", type=int, default=2, help="cityos ingest --workers N")
    parser.add_argument("--publishers", type=int, default=4, help="mosquitto_pub processes")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--window", type=int, default=30_000, help="json: messages in flight")
    parser.add_argument("--window-packs", type=int, default=3_000, help="senml: packs in flight")
    parser.add_argument("--chunk", type=int, default=500, help="lines per publisher write")
    parser.add_argument("--rate", type=float, default=1_000.0, help="latency: messages/s")
    parser.add_argument("--poll", type=float, default=0.02, help="latency: query interval, s")
    parser.add_argument(
        "--receive-maximum",
        type=int,
        default=RECEIVE_MAXIMUM,
        help="CITYOS__MQTT__RECEIVE_MAXIMUM of each worker (0: the default)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario == "_count":
        count_messages(args.port)
        return
    print(
        f"{os.cpu_count()} cores, {uptime()}; cityos ingest --workers {args.workers}, "
        f"Receive Maximum {args.receive_maximum or 'default'}, batches of 5,000 / 100 ms"
    )
    chosen = ["json", "senml", "latency"] if args.scenario == "all" else [args.scenario]
    runs = {"json": scenario_json, "senml": scenario_senml, "latency": scenario_latency}
    results: dict[str, float] = {}
    for name in chosen:
        results |= runs[name](args)
    missed = [what for what, met in verdicts(results) if not met]
    for what, met in verdicts(results):
        print(f"{'met   ' if met else 'MISSED'} {what}")
    if missed and args.strict:
        sys.exit(1)


def verdicts(results: dict[str, float]) -> list[tuple[str, bool]]:
    """(target, met) for each figure measured."""
    checks = []
    if "json_rate" in results:
        rate, ratio = results["json_rate"], results["json_ratio"]
        checks.append((f"json {rate:,.0f} msg/s >= 8,000", rate >= JSON_TARGET))
        checks.append(
            (f"json {ratio:.2f}x the bare subscriber >= 0.65x", ratio >= JSON_RATIO_TARGET)
        )
    if "senml_rate" in results:
        rate = results["senml_rate"]
        checks.append((f"senml {rate:,.0f} readings/s >= 100,000", rate >= SENML_TARGET))
    if "latency_p99" in results:
        p99 = results["latency_p99"]
        checks.append((f"latency p99 {p99 * 1000:.0f} ms <= 1,000 ms", p99 <= LATENCY_TARGET))
    return checks


if __name__ == "__main__":
    main()
