"""Benchmark of research exports from InfluxDB against a raw chunked InfluxQL read, one run.

    UV_PYTHON_DOWNLOADS=never python3 -m uv run python bench/export.py [--points 200000]

Starts a private influxd (Debian's 1.6.7) in a temp dir, loads `--points` one-minute points of
`--sensors` sensors by raw batched `/write` (not measured), starts `cityos serve` as a real
subprocess on that InfluxDB (catalog in SQLite in the temp dir, the sensors registered, a
client with `export:read disaster:read` made by `cityos clients add --json`) and measures,
for issue 7's targets:

1. the baseline: a raw chunked InfluxQL read of the same sensors and range (`chunked=true`,
   `chunk_size` = the store's block size, epoch ns, no gzip), streamed with httpx, every chunk
   parsed with stdlib `json.loads` and its rows counted, as any reader must (in a fresh
   interpreter, see RAW_READER);
2. `GET /exports/observations?...&format=csv` and `format=parquet` with a token from
   `/oauth/token`, streamed to nowhere counting bytes (and rows: CSV lines, the Parquet
   footer), throughput >= 0.7x the baseline;
3. the peak RSS of the server process (VmHWM, and VmRSS of its process tree sampled every
   20 ms during each export) <= 250 MB.

Each of `--rounds` rounds runs raw, CSV, raw, Parquet (and a last raw closes the run), so
every export sits between two baseline reads under the same machine load; the verdicts take
medians (other processes on a 2-core machine move single reads by +-30 %). The CPU time of
influxd, the server and the client per row is printed too. `--profile csv|parquet` instead
runs that export in-process under cProfile (no HTTP) and prints where the time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cityos.adapters.influxdb.influxql import quote_ident, quote_string
from cityos.adapters.influxdb.lineprotocol import (
    MEASUREMENT,
    QUALITY_FIELDS,
    SENSOR_TAG,
    encode_tag_value,
    series_key,
)
from cityos.platform.config import Settings, TimeSeriesSettings
from cityos.platform.domain.model import Device, Domain, GeoPoint, Quality, Sensor
from cityos.platform.ports import STREAM_BLOCK_SIZE
from cityos.platform.runtime import Runtime
from testkit.influxd import Influxd, running_influxd
from testkit.services import free_port

CITYOS = Path(sys.executable).with_name("cityos")
DATABASE = "cityos"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
MINUTE_NS = 60 * 10**9
LOAD_BATCH = 50_000
SCOPES = "export:read disaster:read"
TARGET_RATIO = 0.7
TARGET_RSS_MB = 250.0
SAMPLE_S = 0.02
MB = 1024 * 1024


@dataclass(frozen=True)
class Dataset:
    """What was loaded: the sensors and the half-open range holding all their points."""

    sensors: tuple[Sensor, ...]
    per_sensor: int
    start: datetime
    end: datetime

    @property
    def points(self) -> int:
        """Points in the range, all sensors."""
        return len(self.sensors) * self.per_sensor

    @property
    def bounds_ns(self) -> tuple[int, int]:
        """The range in epoch ns."""
        return _ns(self.start), _ns(self.end)


def _ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- loading (not measured)


def make_sensors(count: int) -> tuple[Sensor, ...]:
    """Water-level sensors of `count` devices on the coast."""
    return tuple(
        Sensor(
            f"bench-tide-{i:03d}.water_level",
            f"bench-tide-{i:03d}",
            "water_level",
            "m",
            Domain.DISASTER,
            f"bench tide gauge {i}",
        )
        for i in range(count)
    )


def _lines(sensor: Sensor, index: int, first: int, count: int, ingested_ns: int) -> bytes:
    """Line protocol of minutes [first, first + count) of one sensor, as the store writes it:
    its series key and the fields value, quality and ingested_at."""
    key = series_key(sensor.id, sensor)
    good, suspect, bad = (QUALITY_FIELDS[q] for q in (Quality.GOOD, Quality.SUSPECT, Quality.BAD))
    start_ns = _ns(T0)
    out = []
    for k in range(first, first + count):
        # a tide of ~12.4 h plus a slow drift, to the millimetre: many distinct values
        value = round(1.5 * math.sin(k / 118.6 + index) + 0.0007 * (k % 1009) + index, 3)
        quality = bad if k % 997 == 5 else suspect if k % 211 == 7 else good
        out.append(
            f"{key} value={value!r},{quality},ingested_at={ingested_ns}i {start_ns + k * MINUTE_NS}"
        )
    return ("\n".join(out)).encode()


def load(server: Influxd, sensors: tuple[Sensor, ...], per_sensor: int) -> Dataset:
    """Create the database and POST every point by raw batched /write; the loaded range."""
    response = server.query(f"CREATE DATABASE {quote_ident(DATABASE)}")
    response.raise_for_status()
    ingested_ns = time.time_ns()
    started = time.perf_counter()
    with httpx.Client(timeout=300) as client:
        for index, sensor in enumerate(sensors):
            for first in range(0, per_sensor, LOAD_BATCH):
                body = _lines(
                    sensor, index, first, min(LOAD_BATCH, per_sensor - first), ingested_ns
                )
                answer = client.post(
                    f"{server.url}/write",
                    params={"db": DATABASE, "precision": "ns"},
                    content=body,
                )
                if answer.status_code != 204:
                    raise RuntimeError(f"/write failed: {answer.status_code} {answer.text[:300]}")
    seconds = time.perf_counter() - started
    data = Dataset(sensors, per_sensor, T0, T0 + timedelta(minutes=per_sensor))
    print(
        f"loaded  {data.points:,} points ({len(sensors)} sensors x {per_sensor:,} minutes) "
        f"by raw /write in {seconds:.1f} s ({data.points / seconds:,.0f} points/s; not measured)"
    )
    return data


def check_counts(server: Influxd, data: Dataset) -> None:
    """Every sensor holds its points in the range (InfluxDB's own count)."""
    low, high = data.bounds_ns
    statement = (
        f'SELECT count("value") FROM {quote_ident(MEASUREMENT)} WHERE time >= {low} '
        f"AND time < {high} GROUP BY {quote_ident(SENSOR_TAG)}"
    )
    series = server.query(statement, db=DATABASE).json()["results"][0]["series"]
    counts = {s["tags"][SENSOR_TAG]: s["values"][0][1] for s in series}
    expected = {encode_tag_value(s.id): data.per_sensor for s in data.sensors}
    if counts != expected:
        raise RuntimeError(f"loaded counts differ: {counts} != {expected}")


# ---------------------------------------------------------------- the baseline


RAW_READER = """
import json, sys, time, httpx
url, db, chunk_size = sys.argv[1:4]
statements = json.load(sys.stdin)
params = {"db": db, "epoch": "ns", "chunked": "true", "chunk_size": chunk_size}
rows = 0

def parse(line):
    global rows
    for result in json.loads(line)["results"]:
        if "error" in result:
            raise SystemExit("InfluxQL failed: " + result["error"])
        for series in result.get("series", ()):
            rows += len(series["values"])

started, cpu = time.perf_counter(), time.process_time()
with httpx.Client(timeout=300, headers={"Accept-Encoding": "identity"}) as client:
    for statement in statements:
        with client.stream("POST", url + "/query", params=params, data={"q": statement}) as answer:
            answer.raise_for_status()
            rest = b""
            for data in answer.iter_bytes():
                lines = (rest + data).split(b"\\n")
                rest = lines.pop()
                for line in lines:
                    if line.strip():
                        parse(line)
            if rest.strip():
                parse(rest)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rows": rows, "cpu": time.process_time() - cpu}))
"""
"""The baseline reader: httpx streaming, stdlib json.loads per chunk, rows counted. It runs
in a fresh interpreter that imports nothing else, so its parsing is not slowed by the garbage
collector walking a large heap (the strictest baseline)."""


@dataclass(frozen=True)
class RawRun:
    """One baseline read: seconds, rows, CPU seconds of influxd and of the reader."""

    seconds: float
    rows: int
    cpu: dict[str, float]


def raw_read(server: Influxd, data: Dataset) -> RawRun:
    """A chunked InfluxQL read of every sensor's range, JSON parsed, in a fresh interpreter."""
    low, high = data.bounds_ns
    statements = [
        f'SELECT "value", "quality" FROM {quote_ident(MEASUREMENT)} '
        f"WHERE {quote_ident(SENSOR_TAG)} = {quote_string(encode_tag_value(sensor.id))} "
        f"AND time >= {low} AND time < {high} ORDER BY time ASC"
        for sensor in data.sensors
    ]
    assert server.process is not None
    influxd_before = cpu_s(server.process.pid)
    result = subprocess.run(
        [sys.executable, "-c", RAW_READER, server.url, DATABASE, str(STREAM_BLOCK_SIZE)],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    answer = json.loads(result.stdout)
    cpu = {"influxd": cpu_s(server.process.pid) - influxd_before, "reader": float(answer["cpu"])}
    return RawRun(float(answer["seconds"]), int(answer["rows"]), cpu)


def settle(server: Influxd, timeout: float = 300.0) -> float:
    """Wait until influxd has written its cache to TSM files and no compaction runs (reads
    then come from the files they will come from in production); seconds waited."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < timeout:
        busy = 0
        for series in server.query("SHOW STATS").json()["results"][0].get("series", []):
            fields = dict(zip(series["columns"], series["values"][0], strict=True))
            if series["name"] == "tsm1_cache":
                busy += int(fields.get("memBytes", 0))
            elif series["name"] == "tsm1_engine":
                busy += sum(int(v) for k, v in fields.items() if k.endswith("Active"))
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 3:
            break
        time.sleep(1)
    return time.monotonic() - started


# ---------------------------------------------------------------- the server


def register(settings: Settings, sensors: tuple[Sensor, ...]) -> None:
    """Register one device per sensor in the catalog (the store is InfluxDB already)."""
    runtime = Runtime.open(settings)
    try:
        for sensor in sensors:
            device = Device(
                sensor.device_id, sensor.name, sensor.domain, "json", GeoPoint(34.6, 138.2)
            )
            runtime.catalog.add_device(device, [sensor])
    finally:
        runtime.close()


def _cli(env: dict[str, str], cwd: Path, *argv: str) -> str:
    result = subprocess.run(
        [str(CITYOS), *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"cityos {' '.join(argv)} failed: {result.stderr[-2000:]}")
    return result.stdout


def tree_of(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in task.read_text().split()]
    return found


def status_kb(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status (0 if the process is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its descendants."""
    ticks = 0
    for member in tree_of(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    """`cityos serve` on a free port, in its own session, configured through the environment."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "serve.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(CITYOS), "serve", "--port", str(self.port)],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"cityos serve exited: {self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"cityos serve did not answer: {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)

    def rss_mb(self) -> float:
        """VmRSS of the server's process tree, MB."""
        return sum(status_kb(pid, "VmRSS") for pid in tree_of(self.process.pid)) / 1024

    def hwm_mb(self) -> float:
        """VmHWM (peak RSS since start) of the server's processes, MB (summed if several)."""
        return sum(status_kb(pid, "VmHWM") for pid in tree_of(self.process.pid)) / 1024

    def log(self) -> str:
        """What the server printed."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGTERM to its session, SIGKILL after 30 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class RssSampler:
    """Samples the server tree's VmRSS every SAMPLE_S seconds while in a `with` block."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.server.rss_mb())
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def token(url: str, client: dict[str, str]) -> str:
    """An access token by client credentials."""
    response = httpx.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )
    response.raise_for_status()
    access: str = response.json()["access_token"]
    return access


@dataclass(frozen=True)
class ExportRun:
    """One export through HTTP: seconds, bytes, rows in the file, server memory."""

    fmt: str
    seconds: float
    size: int
    rows: int
    sampled_peak_mb: float
    hwm_mb: float
    cpu: dict[str, float]  # CPU seconds by process: influxd, server, client (this script)


def _parquet_rows(tail: bytes) -> int:
    """Rows of a Parquet file from its last bytes (the footer holds the row count)."""
    return int(pq.read_metadata(pa.BufferReader(tail)).num_rows)


def http_export(
    server: Server,
    client: dict[str, str],
    data: Dataset,
    fmt: str,
    influxd: Influxd,
    *,
    end: datetime | None = None,
) -> ExportRun:
    """Stream `GET /exports/observations` of every sensor to nowhere, counting bytes."""
    params = [("sensor", s.id) for s in data.sensors]
    params += [("from", _rfc3339(data.start)), ("to", _rfc3339(end or data.end))]
    params += [("format", fmt)]
    headers = {"Authorization": f"Bearer {token(server.url, client)}"}
    size = newlines = 0
    tail = b""
    assert influxd.process is not None
    influxd_pid = influxd.process.pid
    with RssSampler(server) as sampler, httpx.Client(timeout=300) as http:
        cpu_before = (cpu_s(influxd_pid), cpu_s(server.process.pid), time.process_time())
        started = time.perf_counter()
        with http.stream(
            "GET", f"{server.url}/exports/observations", params=params, headers=headers
        ) as response:
            if response.status_code != 200:
                response.read()
                raise RuntimeError(f"export failed: {response.status_code} {response.text}")
            for chunk in response.iter_raw():
                size += len(chunk)
                if fmt == "csv":
                    newlines += chunk.count(b"\n")
                else:
                    tail = (tail + chunk)[-4 * MB :]
        seconds = time.perf_counter() - started
        cpu_after = (cpu_s(influxd_pid), cpu_s(server.process.pid), time.process_time())
    rows = newlines - 1 if fmt == "csv" else _parquet_rows(tail)
    names = ("influxd", "server", "client")
    cpu = {
        name: after - before
        for name, after, before in zip(names, cpu_after, cpu_before, strict=True)
    }
    return ExportRun(fmt, seconds, size, rows, sampler.peak_mb, server.hwm_mb(), cpu)


# ---------------------------------------------------------------- in-process profile


def profile(settings: Settings, data: Dataset, fmt: str, top: int) -> None:
    """Run one export in-process under cProfile (no HTTP) and print where the time goes."""
    from cityos.platform.audit.trail import AuditTrail
    from cityos.platform.exports.request import parse_export_request
    from cityos.platform.exports.service import export_chunks, plan_export
    from cityos.platform.security import Principal

    runtime = Runtime.open(settings)
    try:
        request = parse_export_request(
            {
                "sensor": [s.id for s in data.sensors],
                "from": [_rfc3339(data.start)],
                "to": [_rfc3339(data.end)],
                "format": [fmt],
            },
            limits=runtime.settings.exports,
        )
        principal = Principal(client_id="bench", scopes=frozenset(SCOPES.split()))
        plan = plan_export(
            catalog=runtime.catalog,
            store=runtime.store,
            principal=principal,
            request=request,
            licence=runtime.settings.exports.licence,
            audit=AuditTrail(client_id="bench", source_ip=None),
        )
        profiler = cProfile.Profile()
        size = 0
        started = time.perf_counter()
        profiler.enable()
        for chunk in export_chunks(plan, store=runtime.store, generated_at=datetime.now(UTC)):
            size += len(chunk)
        profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        runtime.close()
    print(
        f"profile {fmt}: {data.points:,} points, {size / MB:,.1f} MB in {seconds:.2f} s under "
        f"cProfile ({data.points / seconds:,.0f} points/s; cProfile slows Python calls)"
    )
    for key in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(top)
        print(f"--- by {key}")
        print("\n".join(line for line in text.getvalue().splitlines()[6:] if line.strip()))


# ---------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    """Load, measure the baseline and both exports, print figures and PASS/FAIL per target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5_000_000, help="points to load")
    parser.add_argument("--sensors", type=int, default=10, help="sensors sharing the points")
    parser.add_argument(
        "--profile", choices=("csv", "parquet"), help="profile one export in-process instead"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of raw, CSV, raw, Parquet (medians taken)"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of `cityos serve` (e.g. ARROW_DEFAULT_MEMORY_POOL=system)",
    )
    parser.add_argument("--top", type=int, default=25, help="profile lines to print")
    args = parser.parse_args()
    sensors = make_sensors(args.sensors)
    per_sensor = args.points // args.sensors
    with tempfile.TemporaryDirectory(prefix="cityos-bench-export-") as tmp:
        root = Path(tmp)
        with running_influxd(root / "influxd") as influxd:
            print(f"InfluxDB {influxd.url} (private, {root}); {os.cpu_count()} CPUs")
            print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            data = load(influxd, sensors, per_sensor)
            check_counts(influxd, data)
            print(f"influxd settled (cache written, no compaction) after {settle(influxd):.0f} s")
            settings = Settings(
                data_dir=root / "data",
                timeseries=TimeSeriesSettings(
                    backend="influxdb", url=influxd.url, database=DATABASE
                ),
            )
            register(settings, sensors)
            if args.profile:
                raw_read(influxd, data)  # warm InfluxDB's caches like the measured run
                profile(settings, data, args.profile, args.top)
                return
            extra = dict(item.split("=", 1) for item in args.server_env)
            run(influxd, data, root, args.rounds, extra)


def run(
    influxd: Influxd, data: Dataset, root: Path, rounds: int, extra_env: dict[str, str]
) -> None:
    """The measured part: rounds of raw, CSV, raw, Parquet, then raw; the report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS")}
    env |= {
        "CITYOS__DATA_DIR": str(root / "data"),
        "CITYOS__TIMESERIES__BACKEND": "influxdb",
        "CITYOS__TIMESERIES__URL": influxd.url,
        "CITYOS__TIMESERIES__DATABASE": DATABASE,
        "PYTHONUNBUFFERED": "1",
    }
    client = json.loads(
        _cli(
            env, root, "clients", "add", "--name", "bench researcher", "--scopes", SCOPES, "--json"
        )
    )
    raw_read(influxd, data)  # warm-up: InfluxDB's caches and the page cache
    if extra_env:
        print(f"server  extra environment: {extra_env}")
    server = Server(env | extra_env, root)
    raw_runs: list[RawRun] = []
    exports: list[ExportRun] = []

    def measure_raw() -> None:
        raw = raw_read(influxd, data)
        if raw.rows != data.points:
            raise RuntimeError(f"the raw read has {raw.rows:,} rows, not {data.points:,}")
        raw_runs.append(raw)

    try:
        idle_mb = server.rss_mb()
        for fmt in ("csv", "parquet"):  # a warm server: lazy imports and first requests done
            http_export(server, client, data, fmt, influxd, end=data.start + timedelta(days=1))
        measure_raw()
        for _ in range(rounds):
            for fmt in ("csv", "parquet"):
                exported = http_export(server, client, data, fmt, influxd)
                if exported.rows != data.points:
                    raise RuntimeError(
                        f"{fmt} export has {exported.rows:,} rows, not {data.points:,}"
                    )
                exports.append(exported)
                measure_raw()
        load_end = os.getloadavg()
    finally:
        server.stop()
    report(data, raw_runs, exports, idle_mb, load_end)


def _per_row(cpu: dict[str, float], rows: int) -> str:
    """CPU microseconds per row by process."""
    return ", ".join(f"{name} {seconds / rows * 1e6:.2f}" for name, seconds in cpu.items())


def report(
    data: Dataset,
    raw_runs: list[RawRun],
    exports: list[ExportRun],
    idle_mb: float,
    load_end: tuple[float, float, float],
) -> None:
    """Figures and PASS/FAIL per target: median throughputs, peak RSS over all runs."""
    points = data.points
    raw_pps = statistics.median(points / r.seconds for r in raw_runs)
    fastest = min(raw_runs, key=lambda r: r.seconds)
    print(f"raw     chunked InfluxQL read + json.loads per chunk ({points:,} rows each):")
    print("        " + ", ".join(f"{points / r.seconds:,.0f}" for r in raw_runs) + " points/s")
    print(
        f"        median {raw_pps:,.0f} points/s (the baseline), fastest "
        f"{points / fastest.seconds:,.0f}; CPU us/row of the fastest: "
        f"{_per_row(fastest.cpu, points)}"
    )
    print(f"server  RSS idle {idle_mb:.0f} MB")
    ok_all = True
    for fmt in ("csv", "parquet"):
        runs = [run for run in exports if run.fmt == fmt]
        pps = statistics.median(points / run.seconds for run in runs)
        ratio = pps / raw_pps
        peak_mb = max(max(run.hwm_mb, run.sampled_peak_mb) for run in runs)
        ok_speed, ok_rss = ratio >= TARGET_RATIO, peak_mb <= TARGET_RSS_MB
        ok_all = ok_all and ok_speed and ok_rss
        first = runs[0]
        print(
            f"{fmt:<7} "
            + ", ".join(f"{points / run.seconds:,.0f}" for run in runs)
            + f" points/s ({first.size / MB:,.1f} MB, {first.rows:,} rows a file)"
        )
        print(
            f"        median {pps:,.0f} points/s: {ratio:.2f}x the baseline "
            f"(target >= {TARGET_RATIO}x) {verdict(ok_speed)}; "
            f"{pps * fastest.seconds / points:.2f}x the fastest raw read"
        )
        print(f"        CPU us/row of the first: {_per_row(first.cpu, points)}")
        sampled = ", ".join(f"{run.sampled_peak_mb:.0f}" for run in runs)
        print(f"        server RSS peak during each run: {sampled} MB")
        print(
            f"        server peak RSS {peak_mb:.0f} MB (VmHWM, and VmRSS sampled every "
            f"{SAMPLE_S * 1000:.0f} ms; target <= {TARGET_RSS_MB:.0f} MB) {verdict(ok_rss)}"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in load_end)}")
    print(f"overall: {verdict(ok_all)}")


if __name__ == "__main__":
    main()
