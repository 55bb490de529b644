"""`TimeSeriesStore.stream_range`: one contract for every registered store, plus the release
of connections and server-side queries that each store promises in its own way.

The store factories come from `test_timeseries_contract.STORE_FACTORIES`. A stream must give
exactly what `query_range` gives for the same half-open range (times, values, qualities),
oldest first, in non-empty blocks of at most `block_size`; closing it (or dropping it) frees
what it held at once: the InfluxDB response is closed and influxd ends the query. The SQLite
store holds no reader or snapshot between blocks at all (one keyed query per block).
"""

from __future__ import annotations

import gc
import itertools
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityos.adapters.influxdb.http import InfluxHttp, InfluxQueryError
from cityos.adapters.influxdb.store import InfluxDbTimeSeriesStore, create_store
from cityos.adapters.sqlite_store.store import SqliteTimeSeriesStore
from cityos.platform.config import Settings, TimeSeriesSettings
from cityos.platform.domain.errors import ConfigError, InvalidInput, RetryableError
from cityos.platform.domain.model import Observation, Quality
from cityos.platform.ports import STREAM_BLOCK_SIZE, ObservationBlock, TimeSeriesStore
from contract.test_timeseries_contract import (
    FAR_END,
    FAR_START,
    HOSTILE_IDS,
    STORE_FACTORIES,
    T0,
    everything,
    obs,
)
from testkit.influxd import Influxd, running_influxd, shared_influxd

MS = timedelta(milliseconds=1)
QUALITIES = list(Quality)
_EXAMPLES = itertools.count()


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    """An empty store of each registered kind."""
    with STORE_FACTORIES[request.param](tmp_path) as opened:
        yield opened


def stream(
    store: TimeSeriesStore,
    sensor_id: str,
    start: datetime = FAR_START,
    end: datetime = FAR_END,
    block_size: int = STREAM_BLOCK_SIZE,
) -> list[ObservationBlock]:
    return list(
        store.stream_range(sensor_id=sensor_id, start=start, end=end, block_size=block_size)
    )


def rows(blocks: Iterable[ObservationBlock]) -> list[tuple[int, float, str]]:
    """(time ns, value, quality) of every observation, checking each block's shape."""
    found: list[tuple[int, float, str]] = []
    for block in blocks:
        assert len(block.times_ns) == len(block.values) == len(block.qualities) > 0
        found.extend(zip(block.times_ns, block.values, block.qualities, strict=True))
    return found


def ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def as_rows(observations: Iterable[Observation]) -> list[tuple[int, float, str]]:
    return [(ns(o.time), o.value, o.quality.value) for o in observations]


def series(sensor_id: str, count: int, *, seed: int = 1) -> list[Observation]:
    """`count` observations a minute apart with varied values (whole ones too) and qualities."""
    rng = random.Random(seed)
    return [
        obs(
            sensor_id,
            T0 + timedelta(minutes=i),
            float(i) if i % 3 == 0 else rng.uniform(-1e6, 1e6),
            quality=QUALITIES[i % len(QUALITIES)],
        )
        for i in range(count)
    ]


# ---------------------------------------------------------------- the contract


def test_a_stream_equals_query_range_in_blocks_of_at_most_block_size(
    store: TimeSeriesStore,
) -> None:
    written = series("d.q", 1_000)
    store.write(written)
    blocks = stream(store, "d.q", block_size=64)
    assert len(blocks) >= 16
    assert all(0 < len(block.times_ns) <= 64 for block in blocks)
    assert {block.sensor_id for block in blocks} == {"d.q"}
    got = rows(blocks)
    assert got == as_rows(everything(store, "d.q")) == as_rows(written)
    assert all(type(t) is int for t, _, _ in got)
    assert all(type(v) is float for _, v, _ in got)
    assert {q for _, _, q in got} == {q.value for q in Quality}


def test_the_default_block_size_and_one_block_of_exactly_block_size(
    store: TimeSeriesStore,
) -> None:
    store.write(series("d.q", 50))
    assert [len(b.times_ns) for b in stream(store, "d.q")] == [50]
    sizes = [len(b.times_ns) for b in stream(store, "d.q", block_size=50)]
    assert sizes == [50]
    assert sum(len(b.times_ns) for b in stream(store, "d.q", block_size=1)) == 50


def test_a_stream_is_half_open(store: TimeSeriesStore) -> None:
    times = [T0 + timedelta(seconds=i) for i in range(10)]
    store.write([obs("d.q", t, float(i)) for i, t in enumerate(times)])
    got = rows(stream(store, "d.q", times[2], times[5], block_size=2))
    assert got == [(ns(t), float(i), "good") for i, t in enumerate(times)][2:5]
    assert len(rows(stream(store, "d.q", times[2] + MS, times[5]))) == 2
    assert len(rows(stream(store, "d.q", times[2], times[5] + MS))) == 4
    assert stream(store, "d.q", times[3], times[3]) == []
    assert stream(store, "d.q", times[5], times[2]) == []


def test_an_empty_range_yields_nothing(store: TimeSeriesStore) -> None:
    assert stream(store, "d.q") == []
    store.write(series("d.q", 10))
    assert stream(store, "d.q", T0 - timedelta(days=1), T0) == []
    assert stream(store, "d.q", T0 + timedelta(days=1), T0 + timedelta(days=2)) == []
    assert stream(store, "other.q") == []


def test_other_sensors_never_leak_into_a_stream(store: TimeSeriesStore) -> None:
    ids = [*HOSTILE_IDS, "d", "d.q.x", "D.Q", "d.q\\", "d.q'", 'd.q"', " d.q", "ｄ.ｑ"]
    if "d.q" not in ids:
        ids.append("d.q")
    store.write(
        [
            obs(sid, T0 + timedelta(seconds=k), n * 10.0 + k)
            for n, sid in enumerate(ids)
            for k in range(5)
        ]
    )
    for n, sid in enumerate(ids):
        got = stream(store, sid, block_size=2)
        assert {block.sensor_id for block in got} == {sid}
        assert [v for _, v, _ in rows(got)] == [n * 10.0 + k for k in range(5)], repr(sid)


def test_the_widest_bounds_work(store: TimeSeriesStore) -> None:
    store.write([obs("d.q", datetime(1700, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), 1.0)])
    store.write([obs("d.q", datetime(2200, 12, 31, tzinfo=UTC), 2.0)])
    widest = (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))
    assert [v for _, v, _ in rows(stream(store, "d.q", *widest))] == [1.0, 2.0]


def test_bad_arguments_fail_at_the_call_not_at_the_first_block(store: TimeSeriesStore) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.stream_range(sensor_id="d.q", start=T0, end=T0 + MS, block_size=0)
    assert caught.value.field == "block_size"
    with pytest.raises(InvalidInput):
        store.stream_range(sensor_id="d.q", start=datetime(2024, 1, 1), end=T0)


def test_closing_after_the_first_block_ends_the_stream_and_the_store_goes_on(
    store: TimeSeriesStore,
) -> None:
    store.write(series("d.q", 500))
    blocks = store.stream_range(sensor_id="d.q", start=FAR_START, end=FAR_END, block_size=10)
    assert len(next(blocks).times_ns) == 10
    blocks.close()  # type: ignore[attr-defined]
    with pytest.raises(StopIteration):
        next(blocks)
    store.write([obs("d.q", T0 - timedelta(days=1), -1.0)])
    assert len(everything(store, "d.q")) == 501
    assert len(rows(stream(store, "d.q", block_size=100))) == 501


def test_streams_interleave(store: TimeSeriesStore) -> None:
    store.write(series("a.q", 300) + series("b.q", 300, seed=2))
    a = store.stream_range(sensor_id="a.q", start=FAR_START, end=FAR_END, block_size=7)
    b = store.stream_range(sensor_id="b.q", start=FAR_START, end=FAR_END, block_size=11)
    got_a: list[ObservationBlock] = []
    got_b: list[ObservationBlock] = []
    for _ in range(20):  # both are open and half read at the same time
        got_a.append(next(a))
        got_b.append(next(b))
    got_a.extend(a)
    got_b.extend(b)
    assert rows(got_a) == as_rows(everything(store, "a.q"))
    assert rows(got_b) == as_rows(everything(store, "b.q"))


def test_a_closed_store_streams_nothing_but_retryable_errors(store: TimeSeriesStore) -> None:
    store.write(series("d.q", 3))
    store.close()
    with pytest.raises(RetryableError):
        stream(store, "d.q")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(0, 10_000), max_size=200, unique=True),
    low=st.integers(-10, 10_010),
    length=st.integers(0, 10_020),
    block_size=st.integers(1, 40),
)
def test_any_points_bounds_and_block_size(
    store: TimeSeriesStore, offsets: list[int], low: int, length: int, block_size: int
) -> None:
    sensor_id = f"p.{next(_EXAMPLES)}"  # examples share the store
    store.write([obs(sensor_id, T0 + k * MS, float(k)) for k in offsets])
    start, end = T0 + low * MS, T0 + (low + length) * MS
    blocks = stream(store, sensor_id, start, end, block_size=block_size)
    assert all(len(block.times_ns) <= block_size for block in blocks)
    expected = sorted(k for k in offsets if low <= k < low + length)
    assert [v for _, v, _ in rows(blocks)] == [float(k) for k in expected]


# ---------------------------------------------------------------- sqlite: the reader


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteTimeSeriesStore]:
    opened = SqliteTimeSeriesStore(tmp_path / "timeseries.db")
    yield opened
    opened.close()


def _idle_readers(store: SqliteTimeSeriesStore) -> list[object]:
    return list(store._idle)


def test_sqlite_a_paused_stream_holds_no_reader_and_no_snapshot(
    sqlite_store: SqliteTimeSeriesStore,
) -> None:
    sqlite_store.write(series("d.q", 100))
    sqlite_store.count_range(sensor_id="d.q", start=FAR_START, end=FAR_END)  # one idle reader
    blocks = sqlite_store.stream_range(sensor_id="d.q", start=FAR_START, end=FAR_END, block_size=5)
    first = next(blocks)  # the consumer pauses here (a slow HTTP client)
    (reader,) = _idle_readers(sqlite_store)
    assert not reader.in_transaction  # type: ignore[attr-defined]
    # a checkpoint can empty the WAL while the stream waits: nothing holds it back
    sqlite_store.write([obs("d.q", T0 + timedelta(days=30), 1.0)])
    with sqlite3.connect(sqlite_store.path) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    # rows after the last time read appear in later blocks; none is read twice or lost
    rest = list(blocks)
    assert len(rows([first, *rest])) == 101


def test_sqlite_rows_written_behind_the_stream_are_not_read(
    sqlite_store: SqliteTimeSeriesStore,
) -> None:
    sqlite_store.write(series("d.q", 100))
    blocks = sqlite_store.stream_range(sensor_id="d.q", start=FAR_START, end=FAR_END, block_size=5)
    first = next(blocks)
    sqlite_store.write([obs("d.q", T0 - timedelta(days=1), -1.0)])  # before the first block
    got = rows([first, *blocks])
    assert len(got) == 100
    assert len({row[0] for row in got}) == 100  # oldest first, no time twice


# ---------------------------------------------------------------- influxdb: the response


class _TrackedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, owner: TrackingTransport) -> None:
        self._inner = inner
        self._owner = owner
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner.open_responses -= 1
        self._inner.close()


class TrackingTransport(httpx.BaseTransport):
    """The real HTTP transport, counting the responses not closed yet."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.open_responses = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        self.open_responses += 1
        response.stream = _TrackedStream(response.stream, self)
        return response

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def tracked() -> Iterator[tuple[InfluxDbTimeSeriesStore, TrackingTransport, Influxd]]:
    server = shared_influxd()
    database = server.new_database()
    transport = TrackingTransport()
    opened = InfluxDbTimeSeriesStore(InfluxHttp(server.url, transport=transport), database)
    yield opened, transport, server
    opened.close()
    server.drop_database(database)


def _running_selects(server: Influxd, database: str) -> list[str]:
    answer = server.query("SHOW QUERIES").json()["results"][0]
    return [
        row[1]
        for row in answer["series"][0]["values"]
        if row[2] == database and row[1].startswith("SELECT")
    ]


def _big_series(store: InfluxDbTimeSeriesStore, sensor_id: str, count: int) -> None:
    """`count` points, many megabytes of answer: more than socket buffers hold."""
    for first in range(0, count, 50_000):
        store.write(
            [
                obs(sensor_id, T0 + timedelta(seconds=i), i + 0.25)
                for i in range(first, min(count, first + 50_000))
            ]
        )


def test_influxdb_closing_a_stream_closes_the_response_and_ends_the_query(
    tracked: tuple[InfluxDbTimeSeriesStore, TrackingTransport, Influxd],
) -> None:
    store, transport, server = tracked
    _big_series(store, "big.q", 300_000)
    assert transport.open_responses == 0
    blocks = store.stream_range(sensor_id="big.q", start=FAR_START, end=FAR_END, block_size=1_000)
    assert len(next(blocks).times_ns) == 1_000
    assert transport.open_responses == 1
    assert len(_running_selects(server, store.database)) == 1  # blocked on a full socket
    blocks.close()
    assert transport.open_responses == 0
    deadline = time.monotonic() + 10
    while _running_selects(server, store.database) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running_selects(server, store.database) == []
    assert store.count_range(sensor_id="big.q", start=FAR_START, end=FAR_END) == 300_000
    assert transport.open_responses == 0


def test_influxdb_a_dropped_stream_closes_the_response(
    tracked: tuple[InfluxDbTimeSeriesStore, TrackingTransport, Influxd],
) -> None:
    store, transport, _ = tracked
    store.write(series("d.q", 100))
    blocks = store.stream_range(sensor_id="d.q", start=FAR_START, end=FAR_END, block_size=10)
    next(blocks)
    assert transport.open_responses == 1
    del blocks
    gc.collect()
    assert transport.open_responses == 0
    assert len(rows(stream(store, "d.q", block_size=30))) == 100
    assert transport.open_responses == 0


def test_influxdb_stopped_mid_stream_is_retryable(tmp_path: Path) -> None:
    with running_influxd(tmp_path / "influxd") as server:
        database = server.new_database()
        settings_ = Settings(
            timeseries=TimeSeriesSettings(backend="influxdb", url=server.url, database=database)
        )
        store = create_store(settings_)
        try:
            _big_series(store, "big.q", 300_000)
            blocks = store.stream_range(
                sensor_id="big.q", start=FAR_START, end=FAR_END, block_size=1_000
            )
            next(blocks)
            server.stop()
            # a cut connection, or "query engine shutdown" when influxd ends the query first
            with pytest.raises(RetryableError) as caught:
                for _ in blocks:
                    pass
            assert caught.value.service == "influxdb"
            with pytest.raises(RetryableError):  # and before the first block too
                next(store.stream_range(sensor_id="big.q", start=FAR_START, end=FAR_END))
            server.start()
            assert len(rows(stream(store, "big.q", T0, T0 + timedelta(seconds=10)))) == 10
        finally:
            store.close()


def test_influxdb_a_refused_statement_is_a_query_error(
    tracked: tuple[InfluxDbTimeSeriesStore, TrackingTransport, Influxd],
) -> None:
    _, _, server = tracked
    missing = InfluxDbTimeSeriesStore(InfluxHttp(server.url), "no_such_database")
    try:
        with pytest.raises(InfluxQueryError, match="database not found"):
            stream(missing, "d.q")
    finally:
        missing.close()


def test_influxdb_refused_credentials_are_a_config_error(tmp_path: Path) -> None:
    with running_influxd(tmp_path / "auth", auth=True) as server:
        store = InfluxDbTimeSeriesStore(InfluxHttp(server.url, username="x", password="y"), "db")
        try:
            with pytest.raises(ConfigError, match="refused the credentials"):
                stream(store, "d.q")
        finally:
            store.close()
