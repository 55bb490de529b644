"""The embedded SQLite time-series store (stdlib `sqlite3`, WAL, durable writes)."""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cityos.adapters.sqlite_store.aggregate import build_query
from cityos.platform.config import Settings
from cityos.platform.domain.errors import ConfigError, InvalidInput, RetryableError
from cityos.platform.domain.model import Observation, Quality, Sensor
from cityos.platform.ports import STREAM_BLOCK_SIZE, ObservationBlock, WindowAggregate

FILENAME = "timeseries.db"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
WRITER_CACHE_SIZE = -65_536  # the cache_size pragma reads a negative number as KiB: 64 MiB

# Epoch nanoseconds in a signed 64-bit integer: the same range as InfluxDB
# (1677-09-21 .. 2262-04-11), so both stores accept the same observations.
MIN_NS = -(2**63)
MAX_NS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUALITY_TEXT: dict[str, str] = {quality: quality.value for quality in Quality}
_QUALITY_OF: dict[str, Quality] = {quality.value: quality for quality in Quality}

# STRICT makes SQLite refuse a value of the wrong type instead of silently keeping it;
# WITHOUT ROWID stores the rows in primary-key order, so a range scan of one sensor reads
# consecutive pages and "newest of a sensor" is one index seek.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    sensor_id   TEXT    NOT NULL,
    time_ns     INTEGER NOT NULL,
    value       REAL    NOT NULL,
    quality     TEXT    NOT NULL,
    ingested_ns INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, time_ns)
) STRICT, WITHOUT ROWID
"""

_UPSERT = """
INSERT INTO observations (sensor_id, time_ns, value, quality, ingested_ns)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (sensor_id, time_ns) DO UPDATE SET
    value = excluded.value, quality = excluded.quality, ingested_ns = excluded.ingested_ns
"""

_RANGE = """
SELECT time_ns, value, quality, ingested_ns FROM observations
WHERE sensor_id = ? AND time_ns >= ? AND time_ns < ?
ORDER BY time_ns LIMIT ?
"""

# One block per statement, keyed on the last time read: no read snapshot (which would hold back
# WAL checkpoints) stays open while the consumer of a stream is slow.
_STREAM_BLOCK = """
SELECT time_ns, value, quality FROM observations
WHERE sensor_id = ? AND time_ns >= ? AND time_ns < ?
ORDER BY time_ns LIMIT ?
"""

_COUNT = "SELECT count(*) FROM observations WHERE sensor_id = ? AND time_ns >= ? AND time_ns < ?"

# The ids travel as bound parameters of a VALUES list (not as a JSON array for json_each:
# SQLite's JSON functions cut strings at U+0000, and the store must keep any id intact).
# The list is padded with NULLs to a power of two so a handful of prepared statements are
# reused; the newest row per sensor is one primary-key seek (min/max optimisation).
_LATEST = """
WITH ids(sid) AS (VALUES {values})
SELECT o.sensor_id, o.time_ns, o.value, o.quality, o.ingested_ns
FROM ids JOIN observations AS o
  ON o.sensor_id = ids.sid
 AND o.time_ns = (SELECT max(m.time_ns) FROM observations AS m WHERE m.sensor_id = ids.sid)
"""
MAX_IDS_PER_STATEMENT = 16_384  # one statement up to here; SQLite's default limit is 32,766


def to_ns(moment: datetime) -> int:
    """Epoch nanoseconds of an aware datetime (InvalidInput if naive)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"time {moment.isoformat()} has no UTC offset", field="time")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def from_ns(ns: int) -> datetime:
    """The UTC datetime of epoch nanoseconds (sub-microsecond digits are dropped)."""
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def _identity(path: Path) -> tuple[int, int]:
    """(device, inode) of a file, to notice it being deleted or replaced."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _duration_ns(length: timedelta) -> int:
    """Nanoseconds of a timedelta, exactly."""
    return (length.days * 86_400 + length.seconds) * 1_000_000_000 + length.microseconds * 1_000


def _bound_ns(moment: datetime) -> int:
    """A query bound in epoch ns, clamped to the storable range (so datetime.min works)."""
    return min(max(to_ns(moment), MIN_NS), MAX_NS)


class SqliteTimeSeriesStore:
    """TimeSeriesStore on one SQLite file: one writer connection, a pool of readers."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = threading.Event()
        # Writes are serialised in-process by a lock (SQLite allows one writer anyway, and
        # waiting on a Python lock is cheaper and fairer than spinning on SQLITE_BUSY).
        self._write_lock = threading.Lock()
        # Readers come from a pool instead of threading.local: API worker threads come and
        # go, and a pool neither leaks a connection per dead thread nor opens one per read.
        # In WAL mode readers see the last commit and never wait for a running write.
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        try:
            self._writer = self._connect()
            mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ConfigError(f"{path}: SQLite refused WAL mode (got {mode!r})")
            # Durability promise: the ingest worker acks MQTT messages as soon as write()
            # returns, so every commit must be on disk by then. synchronous=NORMAL in WAL
            # mode may lose the last commits on power loss; FULL fsyncs the WAL per commit.
            self._writer.execute("PRAGMA synchronous=FULL")
            # Sensors report interleaved, so a batch touches one leaf page per sensor; the
            # default 2 MiB page cache thrashes past ~1,000 sensors (measured: +40 % rows/s).
            self._writer.execute(f"PRAGMA cache_size={WRITER_CACHE_SIZE}")
            self._writer.execute(_SCHEMA)
            self._writer.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._identity = _identity(path)
        except sqlite3.Error as exc:
            self.close()
            raise ConfigError(f"cannot open the SQLite time-series store {path}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
            check_same_thread=False,  # the pool hands a connection to one thread at a time
            cached_statements=32,
        )

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if self._closed.is_set():
            raise RetryableError("the SQLite time-series store is closed", service="sqlite")
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            try:
                conn = self._connect()
                conn.execute("PRAGMA query_only=ON")
            except sqlite3.Error as exc:
                raise RetryableError(f"cannot open {self.path}: {exc}", service="sqlite") from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            raise RetryableError(f"reading {self.path} failed: {exc}", service="sqlite") from exc
        finally:
            with self._pool_lock:
                if self._closed.is_set():
                    with suppress(sqlite3.Error):
                        conn.close()
                else:
                    self._idle.append(conn)

    # ------------------------------------------------------------ writes

    def write(
        self,
        observations: Sequence[Observation],
        *,
        sensors: Mapping[str, Sensor] | None = None,
    ) -> None:
        """Upsert observations in one durable transaction (later write of a key wins).

        `sensors` is accepted for the port's sake: rows are keyed by sensor id alone here.
        """
        if not observations:
            return
        now_ns = to_ns(datetime.now(UTC))
        rows: list[tuple[str, int, float, str, int]] = []
        append = rows.append
        for obs in observations:
            time_ns = to_ns(obs.time)
            if not MIN_NS <= time_ns <= MAX_NS:
                raise InvalidInput(
                    f"time {obs.time.isoformat()} is outside 1677-09-21..2262-04-11", field="time"
                )
            value = float(obs.value)
            if not math.isfinite(value):
                raise InvalidInput(f"value {value} of {obs.sensor_id!r} is not finite")
            quality = _QUALITY_TEXT.get(obs.quality)
            if quality is None:
                raise InvalidInput(f"unknown quality {obs.quality!r}", field="quality")
            ingested = now_ns if obs.ingested_at is None else to_ns(obs.ingested_at)
            append((obs.sensor_id, time_ns, value, quality, ingested))
        with self._write_lock:
            if self._closed.is_set():
                raise RetryableError("the SQLite time-series store is closed", service="sqlite")
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_UPSERT, rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise RetryableError(
                    f"writing {len(rows)} observations to {self.path} failed: {exc}",
                    service="sqlite",
                ) from exc

    # ------------------------------------------------------------ reads

    def query_range(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        after: datetime | None = None,
    ) -> list[Observation]:
        """Raw observations with start <= time < end (and time > after), oldest first."""
        if limit <= 0:
            return []  # SQLite reads a negative LIMIT as "no limit"
        low = _bound_ns(start)
        if after is not None:
            low = max(low, _bound_ns(after) + 1)
        with self._reader() as conn:
            rows = conn.execute(_RANGE, (sensor_id, low, _bound_ns(end), limit)).fetchall()
        return [
            Observation(sensor_id, from_ns(time_ns), value, _QUALITY_OF[quality], from_ns(ingested))
            for time_ns, value, quality, ingested in rows
        ]

    def count_range(self, *, sensor_id: str, start: datetime, end: datetime) -> int:
        """Number of observations with start <= time < end."""
        with self._reader() as conn:
            row = conn.execute(_COUNT, (sensor_id, _bound_ns(start), _bound_ns(end))).fetchone()
        return int(row[0])

    def stream_range(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        block_size: int = STREAM_BLOCK_SIZE,
    ) -> Generator[ObservationBlock, None, None]:
        """Observations with start <= time < end, oldest first, one keyed query per block.

        No reader or snapshot is held between blocks: rows written meanwhile after the last
        time read appear in later blocks, rows written behind it do not.
        """
        if block_size <= 0:
            raise InvalidInput(f"block size must be positive, got {block_size}", field="block_size")
        low, high = _bound_ns(start), _bound_ns(end)  # bad bounds fail now, not at next()
        return self._stream(sensor_id, low, high, block_size)

    def _stream(
        self, sensor_id: str, low: int, high: int, block_size: int
    ) -> Generator[ObservationBlock, None, None]:
        while low < high:
            with self._reader() as conn:
                rows = conn.execute(_STREAM_BLOCK, (sensor_id, low, high, block_size)).fetchall()
            if not rows:
                return
            times_ns, values, qualities = zip(*rows, strict=True)
            yield ObservationBlock(sensor_id, times_ns, values, qualities)
            if len(rows) < block_size:
                return
            low = times_ns[-1] + 1  # the next block starts after the last time read

    def latest(self, sensor_ids: Sequence[str]) -> dict[str, Observation]:
        """The newest observation of each sensor that has one, in one SQL statement."""
        unique = list(dict.fromkeys(sensor_ids))
        found: dict[str, Observation] = {}
        with self._reader() as conn:
            per_statement = min(
                MAX_IDS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            )
            for first in range(0, len(unique), per_statement):
                chunk: list[str | None] = list(unique[first : first + per_statement])
                size = min(per_statement, 1 << max(4, (len(chunk) - 1).bit_length()))
                chunk.extend([None] * (size - len(chunk)))
                sql = _LATEST.format(values=",".join(["(?)"] * size))
                for sensor_id, time_ns, value, quality, ingested in conn.execute(sql, chunk):
                    found[sensor_id] = Observation(
                        sensor_id, from_ns(time_ns), value, _QUALITY_OF[quality], from_ns(ingested)
                    )
        return found

    def aggregate(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        every: timedelta,
        offset: timedelta,
        functions: frozenset[str],
    ) -> list[WindowAggregate]:
        """Aggregates per `offset + k * every` window of [start, end), in one SQL statement."""
        query = build_query(
            sensor_id=sensor_id,
            start_ns=_bound_ns(start),
            end_ns=_bound_ns(end),
            every_ns=_duration_ns(every),
            offset_ns=_duration_ns(offset),
            functions=functions,
        )
        with self._reader() as conn:
            rows = conn.execute(query.sql, query.params).fetchall()
        names = query.functions
        return [
            WindowAggregate(
                start=from_ns(query.window_start_ns(row[0])),
                values={name: float(value) for name, value in zip(names, row[1:], strict=True)},
            )
            for row in rows
        ]

    # ------------------------------------------------------------ lifecycle

    def ping(self) -> None:
        """Raise RetryableError unless the database file can be read."""
        # Open connections keep working on a deleted or replaced file (and would then write
        # into a file nobody will ever read), so check that the path is still our file.
        try:
            identity = _identity(self.path)
        except OSError as exc:
            raise RetryableError(f"{self.path} is gone: {exc}", service="sqlite") from exc
        if identity != self._identity:
            raise RetryableError(f"{self.path} was replaced by another file", service="sqlite")
        with self._reader() as conn:
            conn.execute("SELECT 1 FROM observations LIMIT 1").fetchall()

    def close(self) -> None:
        """Close every connection (idempotent); readers in use are closed when returned."""
        with self._pool_lock:
            self._closed.set()
            idle, self._idle = self._idle, []
        with self._write_lock, self._pool_lock:
            for conn in idle:
                with suppress(sqlite3.Error):
                    conn.close()
            writer = getattr(self, "_writer", None)
            if writer is not None:
                with suppress(sqlite3.Error):
                    writer.close()


def create_store(settings: Settings) -> SqliteTimeSeriesStore:
    """Open (creating if needed) `timeseries.db` in the data dir."""
    directory = Path(settings.data_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the data dir {directory}: {exc}") from exc
    return SqliteTimeSeriesStore(directory / FILENAME)
