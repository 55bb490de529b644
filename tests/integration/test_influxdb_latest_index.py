"""The latest index of the InfluxDB store (measurement `latest`) against a real influxd 1.x."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityos.adapters.influxdb import latest_index
from cityos.adapters.influxdb.latest_index import (
    SLOT_BASE_NS,
    SLOT_END_NS,
    index_line,
    reference_index_line,
    slot_ns,
)
from cityos.adapters.influxdb.lineprotocol import LineWriter, encode_tag_value
from cityos.adapters.influxdb.store import InfluxDbTimeSeriesStore, create_store
from cityos.platform.config import Settings, TimeSeriesSettings
from cityos.platform.domain.errors import RejectedPoints
from cityos.platform.domain.model import Observation, Quality
from testkit.influxd import Influxd

T0 = datetime(2024, 4, 1, tzinfo=UTC)
HOSTILE = ['x\' OR "sensor" =~ /.*/ --', "back\\slash\\", 'q"uote', "new\nline\r\n", "御前崎.潮位"]


def _open(server: Influxd, database: str) -> InfluxDbTimeSeriesStore:
    config = TimeSeriesSettings(backend="influxdb", url=server.url, database=database)
    return create_store(Settings(timeseries=config))


@pytest.fixture
def database(influxd: Influxd) -> Iterator[str]:
    name = influxd.new_database()
    yield name
    influxd.drop_database(name)


@pytest.fixture
def store(influxd: Influxd, database: str) -> Iterator[InfluxDbTimeSeriesStore]:
    opened = _open(influxd, database)
    yield opened
    opened.close()


def obs(sensor_id: str, minutes: int, value: float, **kwargs: Any) -> Observation:
    return Observation(sensor_id, T0 + timedelta(minutes=minutes), value, **kwargs)


def index_sensors(server: Influxd, database: str) -> list[str]:
    body = server.query('SELECT "sensor" FROM "latest"', db=database).json()
    return [row[1] for row in body["results"][0]["series"][0]["values"]]


def count_queries(store: InfluxDbTimeSeriesStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = store._query

    def recording(statement: str, context: str) -> list[dict[str, Any]]:
        seen.append(statement)
        return original(statement, context)

    monkeypatch.setattr(store, "_query", recording)
    return seen


def test_slots_are_stable_and_in_range() -> None:
    assert slot_ns("a.b") == slot_ns("a.b") != slot_ns("a.c")
    assert all(SLOT_BASE_NS <= slot_ns(f"s{i}") <= SLOT_END_NS for i in range(1000))


def test_index_lines_equal_the_library() -> None:
    for n, sensor_id in enumerate([*HOSTILE, "d.q"]):
        one = obs(sensor_id, n, 1.5 + n, quality=Quality.SUSPECT)
        time_ns = (
            (T0 + timedelta(minutes=n) - datetime(1970, 1, 1, tzinfo=UTC))
            // timedelta(microseconds=1)
            * 1000
        )
        field = latest_index._sensor_field(sensor_id)
        assert index_line(one, time_ns, 77, field, slot_ns(sensor_id)) == reference_index_line(
            one, 77
        )


def test_latest_is_one_query_when_every_id_is_indexed(
    store: InfluxDbTimeSeriesStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"dev-{i:03d}.q" for i in range(300)]
    store.write([obs(sid, k, float(k)) for k in range(3) for sid in ids])
    seen = count_queries(store, monkeypatch)
    found = store.latest(ids)
    assert {o.value for o in found.values()} == {2.0}
    assert len(seen) == 1
    assert '"latest"' in seen[0]


def test_data_without_index_rows_falls_back_to_the_series(
    store: InfluxDbTimeSeriesStore, influxd: Influxd, database: str
) -> None:
    store.write([obs("indexed.q", 0, 1.0)])
    lines = LineWriter().lines([obs("raw.q", 5, 2.0), obs("raw.q", 9, 3.0)], None, 1)
    assert influxd.write(database, "\n".join(lines)).status_code == 204
    found = store.latest(["indexed.q", "raw.q", "nothing.q"])
    assert {sid: o.value for sid, o in found.items()} == {"indexed.q": 1.0, "raw.q": 3.0}
    assert found["raw.q"].time == T0 + timedelta(minutes=9)


def test_a_slot_collision_never_returns_another_sensors_value(
    influxd: Influxd, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(latest_index, "slot_ns", lambda sensor_id: SLOT_BASE_NS + 42)
    store = _open(influxd, database)
    try:
        store.write([obs("a.q", 0, 1.0), obs("b.q", 1, 2.0)])
        store.write([obs("a.q", 2, 3.0)])
        assert index_sensors(influxd, database) == ["a.q"]  # one slot, the last writer's
        found = store.latest(["a.q", "b.q"])
        assert {sid: (o.value, o.sensor_id) for sid, o in found.items()} == {
            "a.q": (3.0, "a.q"),
            "b.q": (2.0, "b.q"),
        }
    finally:
        store.close()


def test_an_older_observation_written_later_does_not_move_latest_back(
    store: InfluxDbTimeSeriesStore, influxd: Influxd, database: str
) -> None:
    store.write([obs("d.q", 10, 10.0)])
    store.write([obs("d.q", 5, 5.0), obs("e.q", 1, 1.0)])
    assert store.latest(["d.q"])["d.q"].value == 10.0
    store.write([obs("d.q", 10, 11.0)])  # the same time again: the later write wins
    assert store.latest(["d.q"])["d.q"].value == 11.0
    # a new store (a restart) reads the index first, so a replay of old data cannot regress it
    reopened = _open(influxd, database)
    try:
        reopened.write([obs("d.q", 1, 1.0)])
        assert reopened.latest(["d.q"])["d.q"].value == 11.0
    finally:
        reopened.close()


def test_hostile_ids_round_trip_through_the_index(
    store: InfluxDbTimeSeriesStore, influxd: Influxd, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write([obs(sid, n, float(n)) for n, sid in enumerate(HOSTILE)])
    assert sorted(index_sensors(influxd, database)) == sorted(map(encode_tag_value, HOSTILE))
    seen = count_queries(store, monkeypatch)
    found = store.latest([*HOSTILE, ".*", "x"])
    assert {sid: o.value for sid, o in found.items()} == {
        sid: float(n) for n, sid in enumerate(HOSTILE)
    }
    assert len(seen) == 2  # the index, then the series of the two ids without data


def test_refused_newest_points_never_reach_the_index(influxd: Influxd, database: str) -> None:
    influxd.query(f'ALTER RETENTION POLICY "autogen" ON "{database}" SHARD DURATION 1h')
    poisoned = T0 + timedelta(hours=3)  # `value` is an integer field in this hour's shard
    raw = f"observations,sensor=poison value=7i {int(poisoned.timestamp()) * 10**9}"
    assert influxd.write(database, raw).status_code == 204
    store = _open(influxd, database)
    try:
        store.write([obs("d.q", 0, 0.5)])
        batch = [obs("d.q", 7 * i, float(i)) for i in range(30)] + [obs("e.q", 185, 9.0)]
        with pytest.raises(RejectedPoints) as caught:
            store.write(batch)
        assert 30 in caught.value.rejected  # e.q's only point
        newest_stored = max(i for i in range(30) if i not in caught.value.rejected)
        found = store.latest(["d.q", "e.q"])
        assert {sid: o.value for sid, o in found.items()} == {"d.q": float(newest_stored)}
    finally:
        store.close()
