"""InfluxDB-specific behaviour of the InfluxDB TimeSeriesStore against a real influxd 1.x."""

from __future__ import annotations

import http.server
import json
import random
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.adapters.influxdb import writer
from cityos.adapters.influxdb.http import InfluxHttp, redact
from cityos.adapters.influxdb.influxql import duration, quote_ident, quote_string, regex_any_of
from cityos.adapters.influxdb.lineprotocol import (
    LineWriter,
    decode_tag_value,
    encode_tag_value,
    reference_line,
)
from cityos.adapters.influxdb.store import InfluxDbTimeSeriesStore, create_store
from cityos.platform.config import Settings, TimeSeriesSettings
from cityos.platform.domain.errors import (
    ConfigError,
    InvalidInput,
    RejectedPoints,
    RetryableError,
)
from cityos.platform.domain.model import Domain, Observation, Quality, Sensor
from testkit.influxd import ADMIN_PASSWORD, ADMIN_USER, Influxd, running_influxd

T0 = datetime(2024, 4, 1, tzinfo=UTC)
FAR = (datetime(1700, 1, 1, tzinfo=UTC), datetime(2260, 1, 1, tzinfo=UTC))
INJECTION = 'x\' OR "sensor" =~ /.*/ --'
HOSTILE = [
    INJECTION,
    'x\') OR 1=1; DROP DATABASE "cityos"; --',
    '"; DROP MEASUREMENT observations; --',
    "/.*/",
    ".*",
    "a|b",
    "back\\slash\\",
    "new\nline\r\n",
    "tab\t,comma=equals space",
    "%41-percent-stays",
    "御前崎港.潮位",
    "\x00\x1f\x7f\x85",
    "y" * 5000,
]


def _settings(server: Influxd, database: str, **extra: Any) -> Settings:
    config = TimeSeriesSettings(backend="influxdb", url=server.url, database=database, **extra)
    return Settings(timeseries=config)


@pytest.fixture
def store(influxd: Influxd) -> Iterator[InfluxDbTimeSeriesStore]:
    database = influxd.new_database()
    opened = create_store(_settings(influxd, database))
    yield opened
    opened.close()
    influxd.drop_database(database)


def obs(sensor_id: str, time: datetime, value: float, **kwargs: Any) -> Observation:
    return Observation(sensor_id=sensor_id, time=time, value=value, **kwargs)


# ---------------------------------------------------------------- safety


def test_an_injection_id_only_ever_sees_its_own_data(store: InfluxDbTimeSeriesStore) -> None:
    store.write([obs("victim.q", T0 + timedelta(seconds=i), 100.0 + i) for i in range(5)])
    store.write([obs(INJECTION, T0, 1.0)])
    assert [
        o.value for o in store.query_range(sensor_id=INJECTION, start=FAR[0], end=FAR[1], limit=99)
    ] == [1.0]
    assert store.count_range(sensor_id=INJECTION, start=FAR[0], end=FAR[1]) == 1
    assert set(store.latest([INJECTION])) == {INJECTION}
    windows = store.aggregate(
        sensor_id=INJECTION,
        start=FAR[0],
        end=FAR[1],
        every=timedelta(days=1),
        offset=timedelta(0),
        functions=frozenset({"count", "sum"}),
    )
    assert [w.values for w in windows] == [{"count": 1.0, "sum": 1.0}]


def test_hostile_ids_and_tags_round_trip_exactly(
    store: InfluxDbTimeSeriesStore, influxd: Influxd
) -> None:
    sensors = {
        sid: Sensor(
            sid, device_id=sid, quantity=sid[::-1], unit="m", domain=Domain.DISASTER, name="n"
        )
        for sid in HOSTILE
    }
    store.write(
        [obs(sid, T0 + timedelta(seconds=n), float(n)) for n, sid in enumerate(HOSTILE)],
        sensors=sensors,
    )
    found = store.latest([*HOSTILE, "x", "y"])
    assert {sid: o.value for sid, o in found.items()} == {
        sid: float(n) for n, sid in enumerate(HOSTILE)
    }
    for n, sid in enumerate(HOSTILE):
        (got,) = store.query_range(sensor_id=sid, start=FAR[0], end=FAR[1], limit=10)
        assert (got.sensor_id, got.value) == (sid, float(n))
    # the tags as InfluxDB holds them decode to exactly what was given
    for key, expected in (("device", set(HOSTILE)), ("quantity", {s[::-1] for s in HOSTILE})):
        response = influxd.query(
            f"SHOW TAG VALUES FROM observations WITH KEY = {quote_ident(key)}", db=store.database
        )
        values = response.json()["results"][0]["series"][0]["values"]
        assert {decode_tag_value(value) for _, value in values} == expected


def test_quoted_literals_reach_the_server_intact(store: InfluxDbTimeSeriesStore) -> None:
    http = store._http
    for text in [*HOSTILE, "'", '"', "\\", "\\'", "\\\\n", "\n", "\x85\u2028\x0b\x1f\x7f"]:
        if "\r" in text or "\x00" in text:
            with pytest.raises(ValueError, match="carriage return or NUL"):
                quote_string(text)
            with pytest.raises(ValueError, match="carriage return or NUL"):
                quote_ident(text)
            continue
        (result,) = http.query(
            f'SELECT count("value") FROM {quote_ident(text)} WHERE "sensor" = {quote_string(text)}',
            db=store.database,
            context="test",
        )
        assert "error" not in result
    assert quote_string("a'b\\c\nd") == "'a\\'b\\\\c\\nd'"
    assert quote_ident('a"b\\c') == '"a\\"b\\\\c"'


def test_regex_escaping_matches_only_the_exact_ids(store: InfluxDbTimeSeriesStore) -> None:
    ids = ["a.b", "aXb", "a.bc", "ca.b", "a|b", "(a)", "a\\.b", "a/b"]
    store.write([obs(sid, T0, float(n)) for n, sid in enumerate(ids)])
    for sid in ids:
        assert set(store.latest([sid])) == {sid}
    assert regex_any_of(["a.b"]) == "/^(?:a\\x{2E}b)$/"


def test_stored_form_of_contract_ids_is_the_id_itself() -> None:
    assert encode_tag_value("omaezaki-port.tide_level") == "omaezaki-port.tide_level"
    for text in HOSTILE:
        assert decode_tag_value(encode_tag_value(text)) == text


def test_durations_are_exact() -> None:
    assert duration(3_600 * 10**9) == "1h"
    assert duration(7 * 86_400 * 10**9) == "1w"
    assert duration(90 * 10**9) == "90s"
    assert duration(1_500_000) == "1500u"
    assert duration(7) == "7ns"
    with pytest.raises(ValueError, match="positive"):
        duration(0)


# ---------------------------------------------------------------- line protocol


_sensor_ids = st.text(min_size=1, max_size=40).filter(
    lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s)
)


@settings(max_examples=300, deadline=None)
@given(
    sensor_id=_sensor_ids,
    device=st.text(max_size=20),
    quantity=st.text(max_size=20),
    tagged=st.booleans(),
    value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
    quality=st.sampled_from(list(Quality)),
    offset_us=st.integers(-(2**62) // 1000, (2**62) // 1000),
    ingested_us=st.none() | st.integers(0, 2**62 // 1000),
)
def test_cached_key_lines_equal_the_library(
    sensor_id: str,
    device: str,
    quantity: str,
    tagged: bool,
    value: float,
    quality: Quality,
    offset_us: int,
    ingested_us: int | None,
) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ingested = None if ingested_us is None else epoch + timedelta(microseconds=ingested_us)
    one = obs(
        sensor_id,
        epoch + timedelta(microseconds=offset_us),
        value,
        quality=quality,
        ingested_at=ingested,
    )
    sensor = Sensor(sensor_id, device, quantity, "m", Domain.HEALTH, "n") if tagged else None
    sensors = {sensor_id: sensor} if sensor is not None else None
    writer = LineWriter()
    (line,) = writer.lines([one], sensors, 123)
    assert line == reference_line(one, sensor, 123)
    assert writer.lines([one], sensors, 123) == [line]  # from the cache, the same


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INGESTED = [None, T0, T0 + timedelta(0), T0 + timedelta(microseconds=1)]  # T0 twice: 2 objects
_point = st.tuples(
    st.sampled_from(["a.q", "b.q", "c\\,d=e f.q"]),
    st.sampled_from([0, 1, -1, 10**6]) | st.integers(-(2**62) // 1000, (2**62) // 1000),
    st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1.5, 7]),
    st.sampled_from(list(Quality)),
    st.integers(0, len(_INGESTED) - 1),
)


@settings(max_examples=300, deadline=None)
@given(points=st.lists(_point, min_size=1, max_size=12), first=st.integers(0, 10))
def test_batches_equal_the_library_line_by_line_and_track_the_newest(
    points: list[tuple[str, int, float, Quality, int]], first: int
) -> None:
    batch = [
        obs(sid, _EPOCH + timedelta(microseconds=us), value, quality=q, ingested_at=_INGESTED[i])
        for sid, us, value, q, i in points
    ]
    sensors = {"a.q": Sensor("a.q", "a", "q", "m", Domain.TOURISM, "a")}
    newest: dict[str, tuple[int, int]] = {"b.q": (2**62, 0)}  # from an earlier chunk: kept
    lines = LineWriter().format(batch, sensors, 42, newest, first)
    assert lines == [reference_line(one, sensors.get(one.sensor_id), 42) for one in batch]
    expected: dict[str, tuple[int, int]] = {"b.q": (2**62, 0)}
    for index, one in enumerate(batch, start=first):
        time_ns = (one.time - _EPOCH) // timedelta(microseconds=1) * 1000
        if one.sensor_id not in expected or expected[one.sensor_id][0] <= time_ns:
            expected[one.sensor_id] = (time_ns, index)
    assert newest == expected


def test_the_first_bad_observation_is_named() -> None:
    good = obs("d.q", T0, 1.0)
    cases: list[tuple[Observation, str]] = [
        (obs("d.q", T0, float("nan")), "not finite"),
        (obs("d.q", T0, "x"), "not a number"),  # type: ignore[arg-type]
        (obs("d.q", "2024-04-01", 1.0), "not a datetime"),  # type: ignore[arg-type]
        (obs("d.q", datetime(2300, 1, 1, tzinfo=UTC), 1.0), "outside"),
        (obs("d.q", T0, 1.0, ingested_at=datetime(2300, 1, 1, tzinfo=UTC)), "ingested_at"),
        (obs("d.q", T0, 1.0, ingested_at=datetime(2024, 1, 1)), "no UTC offset"),
        (obs("d.q", T0, 1.0, quality="great"), "unknown quality"),
        (obs(7, T0, 1.0), "sensor id 7"),  # type: ignore[arg-type]
    ]
    writer = LineWriter()
    for bad, message in cases:
        with pytest.raises(InvalidInput, match=message):
            writer.lines([good, good, bad, obs("d.q", T0, float("inf"))], None, 1)
    assert writer.lines([good], None, 1)  # the writer is still usable


def test_value_is_always_a_float_field_and_quality_a_string() -> None:
    (line,) = LineWriter().lines([obs("d.q", T0, 1, quality=Quality.BAD)], None, 5)
    assert (
        line == "observations,device=d,quantity=q,sensor=d.q "
        f'ingested_at=5i,quality="bad",value=1 {1711929600 * 10**9}'
    )


def test_invalid_observations_are_refused_before_writing(store: InfluxDbTimeSeriesStore) -> None:
    for bad in (
        obs("d.q", datetime(2024, 1, 1), 1.0),  # naive
        obs("d.q", T0, float("nan")),
        obs("d.q", T0, float("inf")),
        obs("", T0, 1.0),
    ):
        with pytest.raises(InvalidInput):
            store.write([bad])
    assert store.latest(["d.q"]) == {}
    # a bad point in a later chunk: not even the first chunk is sent
    points = [obs("d.q", T0 + timedelta(seconds=i), float(i)) for i in range(12_000)]
    with pytest.raises(InvalidInput, match="not finite"):
        store.write([*points, obs("d.q", T0, float("nan"))])
    assert store.count_range(sensor_id="d.q", start=FAR[0], end=FAR[1]) == 0


def test_large_writes_are_chunked_and_complete(store: InfluxDbTimeSeriesStore) -> None:
    points = [obs("d.q", T0 + timedelta(seconds=i), float(i)) for i in range(12_345)]
    store.write(points)
    assert store.count_range(sensor_id="d.q", start=FAR[0], end=FAR[1]) == 12_345


@pytest.mark.parametrize("count", [1, 4_999, 5_000, 5_003, 5_499, 5_500, 5_600, 12_345, 15_400])
def test_chunks_cover_a_write_and_a_small_rest_rides_with_the_last(count: int) -> None:
    chunks = list(writer._chunks(count))
    assert [first for first, _ in chunks] == [0, *(last for _, last in chunks[:-1])]
    assert chunks[-1][1] == count
    assert all(last - first <= 5_000 + writer.CHUNK_SLACK - 1 for first, last in chunks)
    assert len(chunks) == max(1, -(-(count - writer.CHUNK_SLACK + 1) // 5_000))


def test_bodies_over_the_size_limit_are_split_at_line_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer, "WRITE_CHUNK_BYTES", 100)
    lines = [f"m,t=御前崎{'x' * (i % 13)} v={i}" for i in range(40)]
    rows = ["latest a=1", "latest b=2"]
    pieces = list(writer._pieces(lines, 10, rows))
    assert len(pieces) > 5
    assert [line for part, *_ in pieces for line in part] == lines
    assert [first for _, first, *_ in pieces] == [
        10 + sum(len(part) for part, *_ in pieces[:n]) for n in range(len(pieces))
    ]
    for n, (part, _, body, extra) in enumerate(pieces):
        assert extra == (rows if n == len(pieces) - 1 else [])  # index rows in the last only
        assert body == "\n".join([*part, *extra]).encode()
        assert len("\n".join(part).encode()) <= 100 or len(part) == 1


def test_concurrent_writes_leave_the_newest_point_in_the_index(influxd: Influxd) -> None:
    """Writes run inline or through the sender: the index rows still go out in claim order."""
    database = influxd.new_database()
    store = create_store(_settings(influxd, database))
    ids = [f"d{i}.q" for i in range(20)]
    rng = random.Random(7)
    # batches of one request (inline when the sender is idle) and of several (queued)
    batches = [
        [
            obs(rng.choice(ids), T0 + timedelta(seconds=rng.randrange(10_000)), float(n))
            for _ in range(rng.choice([1, 50, 6_000]))
        ]
        for n in range(24)
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(store.write, batches))
    store.close()
    newest: dict[str, Observation] = {}
    for batch in batches:
        for one in batch:
            if one.sensor_id not in newest or newest[one.sensor_id].time < one.time:
                newest[one.sensor_id] = one
    fresh = create_store(_settings(influxd, database))
    try:
        found = fresh.latest(ids)
        assert {sid: o.time for sid, o in found.items()} == {
            sid: o.time for sid, o in newest.items()
        }
        assert fresh._index.enabled
    finally:
        fresh.close()
        influxd.drop_database(database)


# ---------------------------------------------------------------- rejected points


def test_a_field_type_conflict_rejects_exactly_the_offending_points(influxd: Influxd) -> None:
    database = influxd.new_database()
    influxd.query(f'ALTER RETENTION POLICY "autogen" ON "{database}" SHARD DURATION 1h')
    # field types are per shard: make `value` an integer in the shard of hour 1 only
    poisoned = T0 + timedelta(hours=1)
    raw = f"observations,sensor=poison value=7i {int(poisoned.timestamp()) * 10**9}"
    assert influxd.write(database, raw).status_code == 204
    batch = [obs("d.q", T0 + timedelta(minutes=7 * i), float(i)) for i in range(30)]
    bad = {i for i, o in enumerate(batch) if poisoned <= o.time < poisoned + timedelta(hours=1)}
    assert 0 < len(bad) < len(batch)
    store = create_store(_settings(influxd, database))
    try:
        with pytest.raises(RejectedPoints) as caught:
            store.write(batch)
        assert set(caught.value.rejected) == bad
        assert all("field type conflict" in reason for reason in caught.value.rejected.values())
        stored = store.query_range(sensor_id="d.q", start=FAR[0], end=FAR[1], limit=100)
        assert [o.value for o in stored] == [float(i) for i in range(30) if i not in bad]
    finally:
        store.close()
        influxd.drop_database(database)


def test_points_beyond_the_retention_policy_are_rejected(influxd: Influxd) -> None:
    database = influxd.new_database()
    influxd.query(f'ALTER RETENTION POLICY "autogen" ON "{database}" DURATION 1h SHARD DURATION 1h')
    now = datetime.now(UTC).replace(microsecond=0)
    batch = [
        obs("d.q", now - timedelta(days=3), 1.0),
        obs("d.q", now, 2.0),
        obs("d.q", now - timedelta(days=9), 3.0),
    ]
    store = create_store(_settings(influxd, database))
    try:
        with pytest.raises(RejectedPoints) as caught:
            store.write(batch)
        assert set(caught.value.rejected) == {0, 2}
        assert [o.value for o in store.latest(["d.q"]).values()] == [2.0]
    finally:
        store.close()
        influxd.drop_database(database)


# ---------------------------------------------------------------- availability


def test_server_down_is_retryable(tmp_path: Path) -> None:
    with running_influxd(tmp_path / "down") as server:
        database = server.new_database()
        store = create_store(_settings(server, database))
        store.write([obs("d.q", T0, 1.0)])
        server.stop()
        for call in (
            lambda: store.write([obs("d.q", T0, 2.0)]),
            store.ping,
            lambda: store.latest(["d.q"]),
        ):
            with pytest.raises(RetryableError, match="unreachable") as caught:
                call()
            assert caught.value.service == "influxdb"
        server.start()
        store.write([obs("d.q", T0, 2.0)])  # the pooled client recovers
        assert store.latest(["d.q"])["d.q"].value == 2.0
        store.close()


def test_nothing_listening_is_retryable_on_creation() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(
        timeseries=TimeSeriesSettings(backend="influxdb", url=f"http://127.0.0.1:{port}")
    )
    with pytest.raises(RetryableError, match=f"127.0.0.1:{port}"):
        create_store(settings)


def test_a_server_that_never_answers_times_out_as_retryable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (backlog) but never answers
        url = f"http://user:secret@127.0.0.1:{listener.getsockname()[1]}"
        store = InfluxDbTimeSeriesStore(InfluxHttp(url, timeout=0.3), "db")
        with pytest.raises(RetryableError, match="timed out") as caught:
            store.write([obs("d.q", T0, 1.0)])
        assert "secret" not in str(caught.value)
        assert "1 points" in str(caught.value)
        store.close()


def test_a_closed_store_raises_retryable(store: InfluxDbTimeSeriesStore) -> None:
    store.close()
    with pytest.raises(RetryableError, match="closed"):
        store.latest(["d.q"])


def test_redact_drops_credentials() -> None:
    assert (
        redact("https://u:p@influx.example:8086/base?u=x&p=y") == "https://influx.example:8086/base"
    )


# ---------------------------------------------------------------- configuration and auth


def test_missing_url_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="CITYOS__TIMESERIES__URL"):
        create_store(Settings(timeseries=TimeSeriesSettings(backend="influxdb")))


def test_the_database_is_created_when_missing(influxd: Influxd) -> None:
    name = "cityos_created_" + str(id(influxd))
    store = create_store(_settings(influxd, name))
    try:
        listed = influxd.query("SHOW DATABASES").json()["results"][0]["series"][0]["values"]
        assert [name] in listed
        store.write([obs("d.q", T0, 1.0)])
    finally:
        store.close()
        influxd.drop_database(name)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    with running_influxd(tmp_path_factory.mktemp("influxd-auth"), auth=True) as server:
        server.query("CREATE USER \"plain\" WITH PASSWORD 'plain-pw'")
        yield server


def test_username_and_password_against_an_auth_enabled_server(secured: Influxd) -> None:
    store = create_store(_settings(secured, "authed", username=ADMIN_USER, password=ADMIN_PASSWORD))
    try:
        store.write([obs("d.q", T0, 4.0)])
        assert store.latest(["d.q"])["d.q"].value == 4.0
    finally:
        store.close()


def test_wrong_or_missing_credentials_are_config_errors(secured: Influxd) -> None:
    with pytest.raises(ConfigError, match="refused the credentials") as caught:
        create_store(_settings(secured, "authed", username=ADMIN_USER, password="wrong"))
    assert "wrong" not in str(caught.value)
    with pytest.raises(ConfigError, match="CREATE DATABASE"):
        create_store(_settings(secured, "authed"))


def test_a_user_who_may_not_create_the_database_is_told_what_to_create(secured: Influxd) -> None:
    with pytest.raises(ConfigError) as caught:
        create_store(_settings(secured, "not_there", username="plain", password="plain-pw"))
    message = str(caught.value)
    assert 'CREATE DATABASE "not_there"' in message
    assert "bucket" in message
    assert "dbrp" in message


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str | None]] = []  # noqa: RUF012 - shared on purpose by the handler class

    def _answer(self, status: int, body: bytes = b"") -> None:
        _Recorder.seen.append(
            {"path": self.path, "authorization": self.headers.get("Authorization")}
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(204)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"results": [{"statement_id": 0}]}).encode()
        self._answer(204 if self.path.startswith("/write") else 200, body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"token": "tok-123"}, "Token tok-123"),
        ({"username": "u", "password": "p"}, "Basic dTpw"),
        ({}, None),
    ],
)
def test_auth_headers_sent(extra: dict[str, str], expected: str | None) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = Settings(timeseries=TimeSeriesSettings(backend="influxdb", url=url, **extra))
        store = create_store(settings)
        store.write([obs("d.q", T0, 1.0)])
        store.close()
    finally:
        server.shutdown()
        server.server_close()
    assert [str(seen["path"]).split("?")[0] for seen in _Recorder.seen] == [
        "/ping",
        "/query",  # the database exists
        "/query",  # the latest index, read once before the first write
        "/write",  # the observations and their latest-index rows, one request
    ]
    assert {seen.get("authorization") for seen in _Recorder.seen} == {expected}
