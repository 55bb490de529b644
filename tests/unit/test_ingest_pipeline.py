"""The ingest pipeline: validation, dead letters, and acks only after a durable write."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from cityos.platform.config import IngestSettings
from cityos.platform.domain.errors import PayloadError, RejectedPoints, RetryableError
from cityos.platform.domain.model import Device, Domain, GeoPoint, Observation, Rejection, Sensor
from cityos.platform.ingest.directory import DeviceDirectory
from cityos.platform.ingest.pipeline import IngestPipeline
from cityos.platform.metrics import Metrics
from cityos.platform.ports import DecodeContext, DecodedPayload, Message, Reading, ReadingProblem

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


class FakeCatalog:
    """Just the lookups the device directory needs; can pretend to be down."""

    def __init__(self) -> None:
        self.down_for = 0
        self.devices = {
            "port": Device("port", "Port", Domain.DISASTER, "test"),
            "gone": Device("gone", "Gone", Domain.DISASTER, "test", revoked=True),
            "odd": Device("odd", "Odd", Domain.DISASTER, "nope"),
        }
        self.sensors = {
            "port": [
                Sensor(
                    "port.tide_level",
                    "port",
                    "tide_level",
                    "m",
                    Domain.DISASTER,
                    "tide",
                    None,
                    -3,
                    5,
                ),
                Sensor("port.old", "port", "old", "m", Domain.DISASTER, "old", retired=True),
            ]
        }
        self.lookups = 0

    def get_device(self, device_id: str) -> Device | None:
        if self.down_for:
            self.down_for -= 1
            raise RetryableError("catalog down", service="fake")
        self.lookups += 1
        return self.devices.get(device_id)

    def sensors_of_device(self, device_id: str) -> list[Sensor]:
        return self.sensors.get(device_id, [])

    def update_device(self, device: Device, sensors: list[Sensor]) -> None:
        self.devices[device.id] = device
        by_id = {s.id: s for s in sensors}
        self.sensors[device.id] = [by_id.get(s.id, s) for s in self.sensors[device.id]]


class TestDecoder:
    """`{"q": value, ...}` with an optional `"t"` epoch-seconds field; `"bad"` is a problem."""

    format = "test"

    def decode(self, payload: bytes, ctx: DecodeContext) -> DecodedPayload:
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise PayloadError(f"broken JSON: {exc}", excerpt=payload) from None
        if data == "boom":
            raise RuntimeError("decoder bug")
        location = None
        if "where" in data:
            lat, lon = data.pop("where")
            location = GeoPoint(lat, lon)
        when = datetime.fromtimestamp(data.pop("t"), UTC) if "t" in data else ctx.received_at
        readings, problems = [], []
        for quantity, value in data.items():
            if value == "bad":
                problems.append(ReadingProblem("value is not a number", '"bad"', quantity))
            else:
                readings.append(Reading(quantity, when, float(value)))
        return DecodedPayload(readings, problems, location)


class FakeStore:
    name = "fake"

    def __init__(self) -> None:
        self.rows: dict[tuple[str, datetime], Observation] = {}
        self.failures_left = 0
        self.writes = 0
        self.poison_value: float | None = None
        self.refuse_value: float | None = None
        self.sensors_seen: dict[str, Sensor] = {}

    def write(
        self, observations: Sequence[Observation], *, sensors: dict[str, Sensor] | None = None
    ) -> None:
        self.sensors_seen = dict(sensors or {})
        if self.refuse_value is not None:
            refused = {
                i: "field type conflict"
                for i, o in enumerate(observations)
                if o.value == self.refuse_value
            }
            for i, obs in enumerate(observations):
                if i not in refused:
                    self.rows[(obs.sensor_id, obs.time)] = obs
            if refused:
                raise RejectedPoints("partial write", rejected=refused)
            return
        if self.failures_left:
            self.failures_left -= 1
            raise RetryableError("store down", service="fake")
        if any(obs.value == self.poison_value for obs in observations):
            raise ValueError("the store cannot hold this value")
        self.writes += 1
        for obs in observations:
            self.rows[(obs.sensor_id, obs.time)] = obs


class Acks:
    def __init__(self) -> None:
        self.order: list[int] = []
        self.lock = threading.Lock()

    def message(self, number: int, topic: str, payload: bytes) -> Message:
        def ack() -> None:
            with self.lock:
                self.order.append(number)

        return Message(topic=topic, payload=payload, received_at=NOW, ack=ack)


def make_pipeline(
    store: FakeStore,
    dead: list[Rejection],
    catalog: FakeCatalog | None = None,
    budget: int = 1 << 20,
    **settings: int,
) -> IngestPipeline:
    return IngestPipeline(
        directory=DeviceDirectory(catalog or FakeCatalog(), ttl_seconds=0),  # type: ignore[arg-type]
        decoders={"test": TestDecoder()},
        store=store,  # type: ignore[arg-type]
        record_rejections=dead.extend,
        settings=IngestSettings(**settings),
        metrics=Metrics(),
        queue_budget_bytes=budget,
    )


TOPIC = "cityos/v1/devices/port/up"


def test_good_reading_becomes_observation() -> None:
    pipeline = make_pipeline(FakeStore(), [])
    outcome = pipeline.process(Acks().message(1, TOPIC, b'{"tide_level": 1.25, "t": 1790000000}'))
    assert outcome.rejections == []
    [obs] = outcome.observations
    assert obs.sensor_id == "port.tide_level"
    assert obs.value == 1.25
    assert obs.time == datetime.fromtimestamp(1790000000, UTC)
    assert obs.ingested_at == NOW


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("cityos/v1/devices/nobody/up", b'{"tide_level": 1}', "unknown_device"),
        ("cityos/v1/devices/gone/up", b'{"tide_level": 1}', "revoked_device"),
        ("cityos/v1/devices/odd/up", b'{"tide_level": 1}', "unsupported_format"),
        ("cityos/v1/devices/Port!/up", b'{"tide_level": 1}', "bad_topic"),
        (TOPIC, b"{not json", "bad_payload"),
        (TOPIC, b'"boom"', "internal_error"),
        (TOPIC, b'{"wave_height": 1}', "unknown_quantity"),
        (TOPIC, b'{"old": 1}', "unknown_quantity"),
        (TOPIC, b'{"tide_level": 9}', "out_of_range"),
        (TOPIC, b'{"tide_level": 1e999}', "non_finite"),
        (TOPIC, b'{"tide_level": "bad"}', "bad_reading"),
        (TOPIC, b'{"tide_level": 1, "t": 1900000000}', "future_time"),
    ],
)
def test_each_rejection_is_recorded_with_reason(topic: str, payload: bytes, code: str) -> None:
    outcome = make_pipeline(FakeStore(), []).process(Acks().message(1, topic, payload))
    assert outcome.observations == []
    [rejection] = outcome.rejections
    assert rejection.reason.startswith(f"{code}: ")
    assert rejection.topic == topic
    assert len(rejection.excerpt) <= 200
    assert rejection.received_at == NOW


def test_one_bad_reading_does_not_spoil_the_pack() -> None:
    outcome = make_pipeline(FakeStore(), []).process(
        Acks().message(1, TOPIC, b'{"tide_level": 1.0, "wave_height": 2, "old": "bad"}')
    )
    assert [o.sensor_id for o in outcome.observations] == ["port.tide_level"]
    assert sorted(r.reason.split(":")[0] for r in outcome.rejections) == [
        "bad_reading",
        "unknown_quantity",
    ]


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_acks_follow_the_write_in_order() -> None:
    store, dead, acks = FakeStore(), [], Acks()
    pipeline = make_pipeline(store, dead, flush_interval_ms=20)
    pipeline.start()
    try:
        for number in range(50):
            payload = json.dumps({"tide_level": number / 10, "t": 1790000000 + number}).encode()
            pipeline.submit(acks.message(number, TOPIC, payload))
        pipeline.submit(acks.message(50, "cityos/v1/devices/nobody/up", b"{}"))
        _wait_for(lambda: len(acks.order) == 51)
    finally:
        pipeline.stop()
    assert acks.order == list(range(51))
    assert len(store.rows) == 50
    assert len(dead) == 1
    assert dead[0].device_id == "nobody"


def test_store_outage_holds_acks_until_the_write_succeeds() -> None:
    store, _acks = FakeStore(), Acks()
    store.failures_left = 3
    pipeline = make_pipeline(store, [], flush_interval_ms=10)
    pipeline.start()
    try:
        writes_seen_at_ack: list[int] = []
        message = Message(
            topic=TOPIC,
            payload=b'{"tide_level": 1, "t": 1790000000}',
            received_at=NOW,
            ack=lambda: writes_seen_at_ack.append(store.writes),
        )
        pipeline.submit(message)
        _wait_for(lambda: writes_seen_at_ack != [])
    finally:
        pipeline.stop()
    assert writes_seen_at_ack == [1]  # acked once, and only after the successful write
    assert store.failures_left == 0
    assert len(store.rows) == 1


def test_stop_while_store_is_down_acks_nothing() -> None:
    store, acks = FakeStore(), Acks()
    store.failures_left = 10**6
    pipeline = make_pipeline(store, [], flush_interval_ms=10)
    pipeline.start()
    pipeline.submit(acks.message(1, TOPIC, b'{"tide_level": 1, "t": 1790000000}'))
    time.sleep(0.1)
    pipeline.stop()
    assert acks.order == []  # the broker will redeliver: nothing acknowledged was lost


def test_batches_flush_by_size() -> None:
    store, acks = FakeStore(), Acks()
    pipeline = make_pipeline(store, [], batch_size=10, flush_interval_ms=60_000)
    pipeline.start()
    try:
        for number in range(30):
            payload = json.dumps({"tide_level": 1, "t": 1790000000 + number}).encode()
            pipeline.submit(acks.message(number, TOPIC, payload))
        _wait_for(lambda: len(acks.order) == 30)
    finally:
        pipeline.stop()
    assert store.writes == 3


def test_device_lookups_are_cached() -> None:
    catalog = FakeCatalog()
    clock = [0.0]
    directory = DeviceDirectory(catalog, ttl_seconds=5, clock=lambda: clock[0])  # type: ignore[arg-type]
    for _ in range(100):
        directory.lookup("port")
        directory.lookup("nobody")
    assert catalog.lookups == 2
    clock[0] += 6
    directory.lookup("port")
    assert catalog.lookups == 3


def _message(number: int, value: float, acks: Acks, topic: str = TOPIC) -> Message:
    payload = json.dumps({"tide_level": value, "t": 1790000000 + number}).encode()
    return acks.message(number, topic, payload)


def test_oversized_payload_is_dead_lettered_without_being_queued_whole() -> None:
    store, dead, acks = FakeStore(), [], Acks()
    pipeline = make_pipeline(store, dead, flush_interval_ms=10)
    pipeline.start()
    try:
        pipeline.submit(acks.message(1, TOPIC, b"x" * 300_000))
        _wait_for(lambda: acks.order == [1])
    finally:
        pipeline.stop()
    [rejection] = dead
    assert (
        rejection.reason == "payload_too_large: payload of 300000 bytes exceeds the limit of 262144"
    )
    assert rejection.excerpt == "x" * 200


def test_a_poison_message_is_dead_lettered_and_the_rest_stored() -> None:
    store, dead, acks = FakeStore(), [], Acks()
    store.poison_value = 4.0
    pipeline = make_pipeline(store, dead, flush_interval_ms=50)
    pipeline.start()
    try:
        for number, value in enumerate([1.0, 2.0, 4.0, 3.0]):
            pipeline.submit(_message(number, value, acks))
        _wait_for(lambda: len(acks.order) == 4)
        assert pipeline.healthy
        pipeline.submit(_message(9, 1.5, acks))
        _wait_for(lambda: len(acks.order) == 5)
    finally:
        pipeline.stop()
    assert sorted(obs.value for obs in store.rows.values()) == [1.0, 1.5, 2.0, 3.0]
    [rejection] = dead
    assert rejection.reason.startswith("store_refused: the store refused it: ValueError")
    assert acks.order == [0, 1, 2, 3, 9]


def test_catalog_outage_during_lookup_is_retried_not_dead_lettered() -> None:
    store, dead, acks = FakeStore(), [], Acks()
    catalog = FakeCatalog()
    pipeline = make_pipeline(store, dead, catalog=catalog, flush_interval_ms=10)
    pipeline.start()
    try:
        pipeline.submit(_message(1, 1.0, acks))
        _wait_for(lambda: acks.order == [1])
        catalog.down_for = 3
        pipeline.submit(_message(2, 2.0, acks))
        _wait_for(lambda: acks.order == [1, 2])
    finally:
        pipeline.stop()
    assert dead == []
    assert sorted(obs.value for obs in store.rows.values()) == [1.0, 2.0]


def test_stopping_during_a_catalog_outage_acks_nothing_more() -> None:
    store, acks = FakeStore(), Acks()
    catalog = FakeCatalog()
    catalog.down_for = 10**6
    pipeline = make_pipeline(store, [], catalog=catalog, flush_interval_ms=10)
    pipeline.start()
    pipeline.submit(_message(1, 1.0, acks))
    time.sleep(0.2)
    pipeline.stop()
    assert acks.order == []
    assert store.rows == {}


def test_nul_characters_never_reach_the_dead_letter_store() -> None:
    outcome = make_pipeline(FakeStore(), []).process(
        Acks().message(1, TOPIC, rb'{"tide\u0000level": 1, "\u0000": 2}')
    )
    assert len(outcome.rejections) == 2
    for rejection in outcome.rejections:
        for text in (
            rejection.reason,
            rejection.excerpt,
            rejection.topic,
            rejection.quantity or "",
        ):
            assert "\x00" not in text
    outcome = make_pipeline(FakeStore(), []).process(Acks().message(1, TOPIC, b"\x00garbage"))
    assert "\x00" not in outcome.rejections[0].excerpt


def test_queue_is_bounded_by_payload_bytes() -> None:
    store, acks = FakeStore(), Acks()
    pipeline = make_pipeline(store, [], budget=40, flush_interval_ms=10)
    first = _message(1, 1.0, acks)
    pipeline.submit(first)  # writer not started: the budget is now used up
    blocked = threading.Thread(target=pipeline.submit, args=(_message(2, 2.0, acks),))
    blocked.start()
    time.sleep(0.3)
    assert blocked.is_alive()  # backpressure: the source thread waits
    pipeline.start()
    blocked.join(5)
    assert not blocked.is_alive()
    _wait_for(lambda: acks.order == [1, 2])
    pipeline.stop()


def test_a_dead_writer_is_reported_unhealthy() -> None:
    class Exploding:
        format = "test"

        def decode(self, payload: bytes, ctx: DecodeContext) -> DecodedPayload:
            raise KeyboardInterrupt  # not an Exception: escapes every handler

    pipeline = make_pipeline(FakeStore(), [], flush_interval_ms=10)
    pipeline._decoders = {"test": Exploding()}  # type: ignore[assignment]
    pipeline.start()
    assert pipeline.healthy
    pipeline.submit(_message(1, 1.0, Acks()))
    _wait_for(lambda: not pipeline.healthy)
    pipeline.stop(timeout=1)


def test_points_refused_by_the_store_are_dead_lettered_exactly() -> None:
    store, dead, acks = FakeStore(), [], Acks()
    store.refuse_value = 2.0
    pipeline = make_pipeline(store, dead, flush_interval_ms=50)
    pipeline.start()
    try:
        for number, value in enumerate([1.0, 2.0, 3.0]):
            pipeline.submit(_message(number, value, acks))
        _wait_for(lambda: len(acks.order) == 3)
    finally:
        pipeline.stop()
    assert sorted(obs.value for obs in store.rows.values()) == [1.0, 3.0]
    [rejection] = dead
    assert rejection.reason.startswith("store_refused: port.tide_level at ")
    assert rejection.reason.endswith(": field type conflict")
    assert '"tide_level": 2.0' in rejection.excerpt
    assert store.sensors_seen["port.tide_level"].domain is Domain.DISASTER


def test_a_reported_location_moves_the_device_and_its_sensors() -> None:
    catalog = FakeCatalog()
    pipeline = make_pipeline(FakeStore(), [], catalog=catalog)
    outcome = pipeline.process(
        Acks().message(1, TOPIC, b'{"tide_level": 1.0, "t": 1790000000, "where": [34.6, 138.2]}')
    )
    assert [o.value for o in outcome.observations] == [1.0]
    assert catalog.devices["port"].location == GeoPoint(34.6, 138.2)
    active = [s for s in catalog.sensors["port"] if not s.retired]
    assert {s.location for s in active} == {GeoPoint(34.6, 138.2)}  # retired ones stay put
    bad = pipeline.process(Acks().message(2, TOPIC, b'{"tide_level": 1.0, "where": [95, 0]}'))
    assert [r.reason.split(":")[0] for r in bad.rejections] == ["bad_location"]
    assert catalog.devices["port"].location == GeoPoint(34.6, 138.2)
