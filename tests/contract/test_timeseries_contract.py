"""One contract for every registered TimeSeriesStore (`cityos.timeseries` entry points).

To add a store, add a factory to STORE_FACTORIES; a registered store without one fails
`test_every_registered_store_has_a_factory`, so no store can ship untested. A factory yields
an empty store of its own (e.g. a fresh InfluxDB database) and closes it afterwards.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityos.adapters.sqlite_store.store import SqliteTimeSeriesStore
from cityos.platform import plugins
from cityos.platform.config import Settings, TimeSeriesSettings
from cityos.platform.domain.errors import ConfigError, RetryableError
from cityos.platform.domain.model import Observation, Quality
from cityos.platform.ports import TimeSeriesStore
from testkit.influxd import shared_influxd

StoreFactory = Callable[[Path], AbstractContextManager[TimeSeriesStore]]


@contextmanager
def _entry_point_store(name: str, settings: Settings) -> Iterator[TimeSeriesStore]:
    """Create a store through its entry point, as the composition root does."""
    store = plugins.load(plugins.TIMESERIES, name)(settings)
    try:
        yield store
    finally:
        store.close()


def _sqlite_store(tmp_path: Path) -> AbstractContextManager[TimeSeriesStore]:
    settings = Settings(data_dir=tmp_path / "data", timeseries=TimeSeriesSettings(backend="sqlite"))
    return _entry_point_store("sqlite", settings)


@contextmanager
def _influxdb_store(tmp_path: Path) -> Iterator[TimeSeriesStore]:
    server = shared_influxd()  # one influxd per test process, a fresh database per test
    database = server.new_database()
    settings = Settings(
        timeseries=TimeSeriesSettings(backend="influxdb", url=server.url, database=database)
    )
    try:
        with _entry_point_store("influxdb", settings) as opened:
            yield opened
    finally:
        server.drop_database(database)


STORE_FACTORIES: dict[str, StoreFactory] = {
    "sqlite": _sqlite_store,
    "influxdb": _influxdb_store,
}

T0 = datetime(2024, 4, 1, 0, 0, tzinfo=UTC)
FAR_START = datetime(1700, 1, 1, tzinfo=UTC)
FAR_END = datetime(2260, 1, 1, tzinfo=UTC)
HOSTILE_IDS = [
    "plain.tide_level",
    'quote".x',
    "apos'.x",
    "back\\slash.x",
    "trailing\\",
    "new\nline.x",
    "cr\r\n.x",
    "tab\t.x",
    "comma,.x",
    "space .x",
    " leading-space",
    "equals=1.x",
    "k=v,tag=w value=1 1700000000",
    "select * from observations; --",
    "'); DROP TABLE observations; --",
    "御前崎港.潮位",
    "emoji😀.x",
    "nul\x00byte.x",
    "\u2028separator",
    "x" * 5000,
    "plain.tide_level ",  # differs from the first only by a trailing space
]


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    """An empty store of each kind."""
    with STORE_FACTORIES[request.param](tmp_path) as opened:
        yield opened


def obs(sensor_id: str, time: datetime, value: float, **kwargs: object) -> Observation:
    return Observation(sensor_id=sensor_id, time=time, value=value, **kwargs)  # type: ignore[arg-type]


def everything(store: TimeSeriesStore, sensor_id: str, limit: int = 100_000) -> list[Observation]:
    return store.query_range(sensor_id=sensor_id, start=FAR_START, end=FAR_END, limit=limit)


# ---------------------------------------------------------------- registry and protocol


def test_every_registered_store_has_a_factory() -> None:
    registered = set(plugins.available(plugins.TIMESERIES))
    assert "sqlite" in registered
    assert registered <= set(STORE_FACTORIES), "add a factory to STORE_FACTORIES"


def test_store_implements_the_port(store: TimeSeriesStore) -> None:
    assert isinstance(store, TimeSeriesStore)
    assert store.name in plugins.available(plugins.TIMESERIES)
    store.ping()


def test_empty_write_and_empty_reads(store: TimeSeriesStore) -> None:
    store.write([])
    assert everything(store, "a.b") == []
    assert store.count_range(sensor_id="a.b", start=FAR_START, end=FAR_END) == 0
    assert store.latest([]) == {}
    assert store.latest(["a.b"]) == {}


# ---------------------------------------------------------------- writes


def test_same_observation_twice_is_stored_once(store: TimeSeriesStore) -> None:
    one = obs("d.q", T0, 1.5)
    store.write([one])
    store.write([one])
    store.write([one, one])
    assert store.count_range(sensor_id="d.q", start=T0, end=T0 + timedelta(1)) == 1
    assert [o.value for o in everything(store, "d.q")] == [1.5]


def test_later_write_of_the_same_key_wins(store: TimeSeriesStore) -> None:
    store.write([obs("d.q", T0, 1.0)])
    store.write([obs("d.q", T0, 2.0, quality=Quality.SUSPECT)])
    store.write([obs("d.q", T0 + timedelta(seconds=1), 5.0), obs("d.q", T0, 3.0)])
    stored = everything(store, "d.q")
    assert [(o.value, o.quality) for o in stored] == [(3.0, Quality.GOOD), (5.0, Quality.GOOD)]


def test_ingested_at_is_set_when_missing_and_kept_when_given(store: TimeSeriesStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    given_at = datetime(2024, 4, 2, 3, 4, 5, 678000, tzinfo=UTC)
    store.write([obs("d.q", T0, 1.0), obs("d.q", T0 + timedelta(1), 2.0, ingested_at=given_at)])
    first, second = everything(store, "d.q")
    assert first.ingested_at is not None
    assert first.ingested_at.utcoffset() == timedelta(0)
    assert before <= first.ingested_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert second.ingested_at == given_at


def test_quality_round_trips_as_the_enum(store: TimeSeriesStore) -> None:
    store.write(
        [obs("d.q", T0 + timedelta(seconds=i), 1.0, quality=q) for i, q in enumerate(Quality)]
    )
    stored = everything(store, "d.q")
    assert [o.quality for o in stored] == list(Quality)
    assert all(type(o.quality) is Quality for o in stored)


@pytest.mark.parametrize(
    "value", [0.0, 3.0, -3.0, -273.15, 1e-300, 1.7976931348623157e308, -2.5e-7, 123456789.0]
)
def test_values_round_trip_exactly_as_floats(store: TimeSeriesStore, value: float) -> None:
    store.write([obs("d.q", T0, value)])
    (stored,) = everything(store, "d.q")
    assert type(stored.value) is float
    assert stored.value == value
    assert store.latest(["d.q"])["d.q"].value == value


def test_integer_values_come_back_as_float(store: TimeSeriesStore) -> None:
    store.write([obs("d.q", T0, 7)])  # an int where a float is typed: stored as 7.0
    (stored,) = everything(store, "d.q")
    assert type(stored.value) is float
    assert stored.value == 7.0


# ---------------------------------------------------------------- time


def test_times_come_back_as_the_same_instant_in_utc(store: TimeSeriesStore) -> None:
    jst = timezone(timedelta(hours=9))
    local = datetime(2024, 4, 1, 9, 30, 15, 250000, tzinfo=jst)
    store.write([obs("d.q", local, 1.0)])
    (stored,) = everything(store, "d.q")
    assert stored.time == local
    assert stored.time.utcoffset() == timedelta(0)
    assert stored.time.replace(tzinfo=None) == datetime(2024, 4, 1, 0, 30, 15, 250000)


def test_millisecond_times_are_kept_apart_and_exact(store: TimeSeriesStore) -> None:
    times = [T0 + timedelta(milliseconds=ms) for ms in (0, 1, 2, 999, 1000, 1001)]
    store.write([obs("d.q", t, float(i)) for i, t in enumerate(times)])
    assert [o.time for o in everything(store, "d.q")] == times


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1700, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2200, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ],
)
def test_far_past_and_future_times_round_trip(store: TimeSeriesStore, moment: datetime) -> None:
    store.write([obs("d.q", moment, 1.0)])
    (stored,) = everything(store, "d.q")
    assert stored.time == moment
    assert store.latest(["d.q"])["d.q"].time == moment


def test_query_bounds_far_outside_the_storable_range_work(store: TimeSeriesStore) -> None:
    store.write([obs("d.q", T0, 1.0)])
    widest = (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))
    assert len(store.query_range(sensor_id="d.q", start=widest[0], end=widest[1], limit=10)) == 1
    assert store.count_range(sensor_id="d.q", start=widest[0], end=widest[1]) == 1


# ---------------------------------------------------------------- ranges and paging


def test_results_are_oldest_first_whatever_the_write_order(store: TimeSeriesStore) -> None:
    times = [T0 + timedelta(minutes=i) for i in range(200)]
    shuffled = times[:]
    random.Random(7).shuffle(shuffled)
    for start in range(0, 200, 50):
        store.write([obs("d.q", t, 1.0) for t in shuffled[start : start + 50]])
    assert [o.time for o in everything(store, "d.q")] == times


def test_range_is_half_open(store: TimeSeriesStore) -> None:
    times = [T0 + timedelta(seconds=i) for i in range(10)]
    store.write([obs("d.q", t, float(i)) for i, t in enumerate(times)])
    got = store.query_range(sensor_id="d.q", start=times[2], end=times[5], limit=100)
    assert [o.time for o in got] == times[2:5]
    assert store.count_range(sensor_id="d.q", start=times[2], end=times[5]) == 3
    assert store.query_range(sensor_id="d.q", start=times[3], end=times[3], limit=10) == []
    assert store.count_range(sensor_id="d.q", start=times[5], end=times[2]) == 0
    one_ms = timedelta(milliseconds=1)
    assert (
        len(store.query_range(sensor_id="d.q", start=times[2] + one_ms, end=times[5], limit=9)) == 2
    )


def test_limit_and_after(store: TimeSeriesStore) -> None:
    times = [T0 + timedelta(seconds=i) for i in range(10)]
    store.write([obs("d.q", t, float(i)) for i, t in enumerate(times)])
    end = times[-1] + timedelta(1)
    assert [o.time for o in store.query_range(sensor_id="d.q", start=T0, end=end, limit=3)] == (
        times[:3]
    )
    got = store.query_range(sensor_id="d.q", start=T0, end=end, limit=3, after=times[4])
    assert [o.time for o in got] == times[5:8]
    before_start = store.query_range(sensor_id="d.q", start=times[6], end=end, limit=9, after=T0)
    assert [o.time for o in before_start] == times[6:]


def test_after_cursor_pages_a_long_range_without_loss_or_duplicates(
    store: TimeSeriesStore,
) -> None:
    rng = random.Random(42)
    offsets = sorted(rng.sample(range(0, 400 * 86_400_000), 2_500))  # ms over 400 days
    times = [T0 + timedelta(milliseconds=ms) for ms in offsets]
    for start in range(0, len(times), 1_000):
        store.write([obs("d.q", t, float(i)) for i, t in enumerate(times[start : start + 1_000])])
    store.write([obs("other.q", t, 0.0) for t in times[:100]])  # must not leak into the pages
    end = times[-1] + timedelta(milliseconds=1)
    paged: list[datetime] = []
    cursor: datetime | None = None
    while True:
        page = store.query_range(sensor_id="d.q", start=T0, end=end, limit=97, after=cursor)
        if not page:
            break
        assert len(page) <= 97
        paged.extend(o.time for o in page)
        cursor = page[-1].time
    assert paged == times
    assert store.count_range(sensor_id="d.q", start=T0, end=end) == len(times)


def test_a_page_of_ten_thousand_and_one_rows(store: TimeSeriesStore) -> None:
    # GraphQL asks for `first` + 1 rows (first <= 10,000); InfluxDB 1.x answers a non-chunked
    # query of more than 10,000 rows with its series marked "partial" even when it is whole
    times = [T0 + timedelta(seconds=i) for i in range(10_050)]
    store.write([obs("d.q", t, float(i)) for i, t in enumerate(times)])
    end = times[-1] + timedelta(seconds=1)
    page = store.query_range(sensor_id="d.q", start=T0, end=end, limit=10_001)
    assert [o.time for o in page] == times[:10_001]
    assert [o.value for o in page[-2:]] == [9_999.0, 10_000.0]
    rest = store.query_range(sensor_id="d.q", start=T0, end=end, limit=10_001, after=page[-1].time)
    assert [o.time for o in rest] == times[10_001:]


# ---------------------------------------------------------------- latest


def test_latest_of_a_thousand_sensors_some_without_data(store: TimeSeriesStore) -> None:
    ids = [f"dev-{i:04d}.water_level" for i in range(1_000)]
    with_data = ids[::3]
    batch = [
        obs(sid, T0 + timedelta(minutes=k), float(n * 10 + k))
        for n, sid in enumerate(with_data)
        for k in (2, 0, 1)  # the newest is written first
    ]
    store.write(batch)
    found = store.latest(ids)
    assert set(found) == set(with_data)
    for n, sid in enumerate(with_data):
        assert found[sid].sensor_id == sid
        assert found[sid].time == T0 + timedelta(minutes=2)
        assert found[sid].value == float(n * 10 + 2)
    assert store.latest(ids[:1] * 3) == {ids[0]: found[ids[0]]}


def test_latest_for_more_ids_than_one_statement_takes(store: TimeSeriesStore) -> None:
    ids = [f"dev-{i:05d}.q" for i in range(40_000)]
    store.write([obs(ids[0], T0, 1.0), obs(ids[-1], T0, 2.0)])
    assert {sid: o.value for sid, o in store.latest(ids).items()} == {ids[0]: 1.0, ids[-1]: 2.0}


# ---------------------------------------------------------------- hostile ids


def test_hostile_sensor_ids_round_trip_and_stay_apart(store: TimeSeriesStore) -> None:
    store.write(
        [obs(sid, T0 + timedelta(seconds=n), float(n)) for n, sid in enumerate(HOSTILE_IDS)]
    )
    for n, sid in enumerate(HOSTILE_IDS):
        (stored,) = everything(store, sid)
        assert stored.sensor_id == sid
        assert stored.value == float(n)
        assert stored.time == T0 + timedelta(seconds=n)
        assert store.count_range(sensor_id=sid, start=FAR_START, end=FAR_END) == 1
    found = store.latest([*HOSTILE_IDS, "plain", "nul"])
    assert {sid: o.value for sid, o in found.items()} == {
        sid: float(n) for n, sid in enumerate(HOSTILE_IDS)
    }


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sensor_id=st.text(min_size=1, max_size=300),
    value=st.floats(allow_nan=False, allow_infinity=False),
)
def test_any_text_id_and_finite_value_round_trip(
    store: TimeSeriesStore, sensor_id: str, value: float
) -> None:
    store.write([obs(sensor_id, T0, value)])
    assert store.latest([sensor_id])[sensor_id].value == value
    assert [o.value for o in everything(store, sensor_id)] == [value]


# ---------------------------------------------------------------- concurrency and lifecycle


def test_reads_from_several_threads_while_writing(store: TimeSeriesStore) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                got = everything(store, "d.q", limit=100_000)
                assert [o.time for o in got] == sorted(o.time for o in got)
                store.latest(["d.q", "e.q"])
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for batch in range(20):
            store.write(
                [obs("d.q", T0 + timedelta(seconds=batch * 500 + i), 1.0) for i in range(500)]
            )
    finally:
        done.set()
        for thread in readers:
            thread.join()
    assert errors == []
    assert store.count_range(sensor_id="d.q", start=FAR_START, end=FAR_END) == 10_000


def test_a_closed_store_refuses_with_retryable_errors(store: TimeSeriesStore) -> None:
    store.ping()
    store.close()
    with pytest.raises(RetryableError):
        store.ping()
    with pytest.raises(RetryableError):
        store.write([obs("d.q", T0, 1.0)])
    store.close()  # closing twice is harmless (the fixture closes a third time)


# ---------------------------------------------------------------- sqlite only


def _sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "nested" / "data")


def test_sqlite_file_pragmas_and_schema(tmp_path: Path) -> None:
    with _entry_point_store("sqlite", _sqlite_settings(tmp_path)) as opened:
        opened.write([obs("d.q", T0, 1.0)])
        path = tmp_path / "nested" / "data" / "timeseries.db"
        assert path.is_file()
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name='observations'").fetchone()
            assert "WITHOUT ROWID" in sql[0]
        finally:
            conn.close()
        writer = opened._writer  # type: ignore[attr-defined]
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_sqlite_data_survives_reopening(tmp_path: Path) -> None:
    with _entry_point_store("sqlite", _sqlite_settings(tmp_path)) as opened:
        opened.write([obs("d.q", T0, 1.0)])
    with _entry_point_store("sqlite", _sqlite_settings(tmp_path)) as reopened:
        assert reopened.latest(["d.q"])["d.q"].value == 1.0


def test_sqlite_latest_is_one_statement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    with _entry_point_store("sqlite", _sqlite_settings(tmp_path)) as opened:
        ids = [f"dev-{i:04d}.q" for i in range(1_000)]
        opened.write([obs(sid, T0, 1.0) for sid in ids])
        connect = opened._connect  # type: ignore[attr-defined]

        def traced() -> sqlite3.Connection:
            conn: sqlite3.Connection = connect()
            conn.set_trace_callback(statements.append)
            return conn

        monkeypatch.setattr(opened, "_connect", traced)
        assert len(opened.latest(ids)) == 1_000
    assert len([s for s in statements if not s.startswith("PRAGMA")]) == 1


def test_sqlite_refuses_to_open_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "data" / "timeseries.db"
    with _entry_point_store("sqlite", _sqlite_settings(tmp_path)):
        pass
    path.write_bytes(b"this is not a database file" * 1000)
    with pytest.raises(ConfigError, match=r"timeseries\.db"):
        SqliteTimeSeriesStore(path)


def test_sqlite_ping_raises_retryable_when_the_file_is_deleted(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "data" / "timeseries.db"
    with _entry_point_store("sqlite", _sqlite_settings(tmp_path)) as opened:
        opened.ping()
        path.unlink()
        with pytest.raises(RetryableError, match="gone"):
            opened.ping()
        path.write_bytes(b"")  # a new, different file at the same path
        with pytest.raises(RetryableError, match="replaced"):
            opened.ping()
