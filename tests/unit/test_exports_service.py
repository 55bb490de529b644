"""plan_export decides everything before a byte; export_chunks streams, closes, describes."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from cityos.platform.audit.trail import AuditTrail, AuditUnavailable
from cityos.platform.config import ExportsSettings
from cityos.platform.domain.errors import NotFound, PermissionDenied, RetryableError
from cityos.platform.domain.model import (
    EXPORT_READ,
    AuditEvent,
    Domain,
    GeoPoint,
    Observation,
    Quality,
    Sensor,
)
from cityos.platform.durations import parse_duration
from cityos.platform.exports import rows as export_rows
from cityos.platform.exports.request import ExportFormat, ExportRequest, parse_export_request
from cityos.platform.exports.rows import SensorReadFailed, time_slices
from cityos.platform.exports.service import (
    ExportPlan,
    export_chunks,
    export_filename,
    export_manifest,
    plan_export,
)
from cityos.platform.observations.service import aggregate_windows
from cityos.platform.security import Principal
from testkit.memory_store import MemoryStore, ScriptedStore

T0 = datetime(2026, 10, 31, 15, tzinfo=UTC)  # 2026-11-01 00:00 JST
TIDE = Sensor(
    "omaezaki-port.tide_level", "omaezaki-port", "tide_level", "m", Domain.DISASTER, "Tide",
    GeoPoint(34.6, 138.2),
)  # fmt: skip
WBGT = Sensor("city-hall.wbgt", "city-hall", "wbgt", "Cel", Domain.HEALTH, "WBGT")
RESEARCHER = Principal("lab", frozenset({EXPORT_READ, "disaster:read", "health:read"}))


class Catalog:
    """The two catalog calls plan_export makes."""

    def __init__(self, *, audit_fails: bool = False) -> None:
        self.sensors = {s.id: s for s in (TIDE, WBGT)}
        self.audit: list[AuditEvent] = []
        self.audit_fails = audit_fails

    def get_sensor(self, sensor_id: str) -> Sensor | None:
        return self.sensors.get(sensor_id)

    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        if self.audit_fails:
            raise OSError("disk full")
        self.audit.extend(events)


def store_with_data(minutes: int = 3000) -> MemoryStore:
    return MemoryStore(
        [
            Observation(
                s.id,
                T0 + timedelta(minutes=i),
                n * 10 + (i % 97) / 4,
                Quality.SUSPECT if i % 50 == 7 else Quality.GOOD,
            )
            for n, s in enumerate((TIDE, WBGT))
            for i in range(minutes)
        ]
    )


def request(
    *sensors: str, fmt: str = "csv", days: int = 3, every: str | None = None, agg: str = "mean"
) -> ExportRequest:
    params = {
        "sensor": list(sensors or (TIDE.id,)),
        "from": [T0.isoformat()],
        "to": [(T0 + timedelta(days=days)).isoformat()],
        "format": [fmt],
    }
    if every is not None:
        params |= {"every": [every], "aggregate": [agg]}
    return parse_export_request(params, limits=ExportsSettings())


def plan(
    req: ExportRequest,
    *,
    store: MemoryStore,
    catalog: Catalog | None = None,
    principal: Principal = RESEARCHER,
) -> ExportPlan:
    return plan_export(
        catalog=catalog or Catalog(),  # type: ignore[arg-type]
        store=store,
        principal=principal,
        request=req,
        licence="CC BY 4.0 (test)",
        audit=AuditTrail(client_id=principal.client_id, source_ip="192.0.2.1"),
    )


# ---------------------------------------------------------------- planning


def test_a_plan_has_the_sensors_in_order_the_exact_row_count_and_a_file_name() -> None:
    store = store_with_data()
    made = plan(request(WBGT.id, TIDE.id, fmt="parquet"), store=store)
    assert made.sensors == (WBGT, TIDE)
    assert made.expected_rows == 6000
    assert made.filename == (
        "cityos-observations-city-hall.wbgt-and-1-more-20261031T150000Z-20261103T150000Z.parquet"
    )
    assert made.media_type == "application/vnd.apache.parquet"
    assert store.open_streams == 0


def test_an_aggregated_plan_bounds_the_rows_by_windows_and_data() -> None:
    made = plan(request(TIDE.id, every="1d", agg="max", fmt="zip"), store=store_with_data())
    assert made.expected_rows == 3  # 3 days (and 3000 observations)
    assert made.filename.endswith("-1d-max.zip")
    assert made.data_format is ExportFormat.CSV
    assert made.data_name == "observations.csv"


def test_file_names_name_the_sensors_so_exports_of_one_range_do_not_collide() -> None:
    one = export_filename(request(TIDE.id))
    other = export_filename(request(WBGT.id))
    both = export_filename(request(TIDE.id, WBGT.id, every="1mo", agg="max", fmt="zip"))
    assert (
        one == "cityos-observations-omaezaki-port.tide_level-20261031T150000Z-20261103T150000Z.csv"
    )
    assert other == "cityos-observations-city-hall.wbgt-20261031T150000Z-20261103T150000Z.csv"
    assert both == (
        "cityos-observations-omaezaki-port.tide_level-and-1-more-"
        "20261031T150000Z-20261103T150000Z-1mo-max.zip"
    )
    many = [f"buoy-{n}.wave_height" for n in range(12)]
    assert export_filename(request(*many)).startswith(
        "cityos-observations-buoy-0.wave_height-and-11-more-"
    )


def test_file_names_are_safe_ascii_of_bounded_length() -> None:
    odd = ExportRequest(
        ('we"ird/..\\name;x=1\r\n潮位.' + "q" * 200, TIDE.id),
        T0,
        T0 + timedelta(days=1),
        None,
        None,
        ExportFormat.CSV,
    )
    name = export_filename(odd)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
    assert name.startswith("cityos-observations-we_ird_.._name_x_1___")
    assert "-and-1-more-20261031T150000Z-20261101T150000Z.csv" in name
    assert len(name) < 150


def test_without_export_read_the_plan_is_forbidden() -> None:
    reader = Principal("app", frozenset({"disaster:read"}))
    with pytest.raises(PermissionDenied, match="export:read"):
        plan(request(), store=store_with_data(), principal=reader)


def test_hidden_and_unknown_sensors_are_not_found_alike() -> None:
    no_health = Principal("lab", frozenset({EXPORT_READ, "disaster:read"}))
    messages = []
    for sensor_id in (WBGT.id, "city-hall.nothing"):
        with pytest.raises(NotFound) as caught:
            plan(request(TIDE.id, sensor_id), store=store_with_data(), principal=no_health)
        messages.append(str(caught.value).replace("wbgt", "X").replace("nothing", "X"))
    assert messages[0] == messages[1]


def test_health_sensors_are_audited_when_planned() -> None:
    catalog = Catalog()
    plan(request(TIDE.id, WBGT.id), store=store_with_data(), catalog=catalog)
    assert [(e.operation, e.resources, e.details["kind"]) for e in catalog.audit] == [
        ("export", (WBGT.id,), "health-read")
    ]
    assert catalog.audit[0].client_id == "lab"
    assert catalog.audit[0].source_ip == "192.0.2.1"


def test_exports_without_health_data_leave_no_audit_event() -> None:
    catalog = Catalog()
    plan(request(TIDE.id), store=store_with_data(), catalog=catalog)
    assert catalog.audit == []


def test_an_audit_failure_withholds_a_health_export() -> None:
    with pytest.raises(AuditUnavailable):
        plan(request(WBGT.id), store=store_with_data(), catalog=Catalog(audit_fails=True))
    plan(request(TIDE.id), store=store_with_data(), catalog=Catalog(audit_fails=True))


def test_a_store_that_is_down_fails_the_plan() -> None:
    store = store_with_data()
    store.down = True
    with pytest.raises(RetryableError):
        plan(request(), store=store)


# ---------------------------------------------------------------- streaming


def test_rows_are_reported_as_they_are_written_and_match_the_file() -> None:
    store = store_with_data(25_000)
    made = plan(request(TIDE.id, WBGT.id, days=30), store=store)
    counted: list[int] = []
    data = b"".join(
        export_chunks(made, store=store, generated_at=datetime.now(UTC), on_rows=counted.append)
    )
    frame = pd.read_csv(io.BytesIO(data))
    assert sum(counted) == len(frame) == made.expected_rows == 50_000
    assert frame["sensor_id"].tolist() == [TIDE.id] * 25_000 + [WBGT.id] * 25_000
    assert (frame["quality"] == "suspect").sum() == 2 * 500
    assert store.open_streams == 0
    assert store.closed_streams == 2


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ndjson", "zip"])
def test_closing_the_export_mid_stream_closes_the_store_read(fmt: str) -> None:
    store = store_with_data(40_000)
    made = plan(request(TIDE.id, WBGT.id, days=30, fmt=fmt), store=store)
    chunks = export_chunks(made, store=store, generated_at=datetime.now(UTC))
    while store.open_streams == 0:
        next(chunks)
    assert store.open_streams == 1
    chunks.close()
    assert store.open_streams == 0
    assert store.closed_streams == 1  # the second sensor was never read


@pytest.mark.parametrize("every", [None, "1h"])
def test_a_store_failure_mid_stream_names_the_sensor_being_read(every: str | None) -> None:
    store = ScriptedStore(store_with_data(5000), block_size=1000)
    made = plan(request(WBGT.id, TIDE.id, days=5, every=every), store=store)  # type: ignore[arg-type]
    store.fail_after = 2
    if every is not None:  # windows: the store's aggregate fails while the second sensor is read
        calls = iter([False, True])
        original = store.store.aggregate

        def aggregate(**kwargs: object) -> object:
            if next(calls, True):
                raise RetryableError("the store went away mid-stream", service="test")
            return original(**kwargs)

        store.store.aggregate = aggregate
    with pytest.raises(SensorReadFailed, match="went away mid-stream") as caught:
        b"".join(export_chunks(made, store=store, generated_at=datetime.now(UTC)))  # type: ignore[arg-type]
    assert isinstance(caught.value, RetryableError)  # handled like any store failure
    assert caught.value.sensor_id == (WBGT.id if every is None else TIDE.id)
    assert store.open_streams == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ndjson"])
def test_the_manifest_hash_is_the_hash_of_the_download(fmt: str) -> None:
    store = store_with_data()
    made = plan(request(TIDE.id, WBGT.id, fmt=fmt), store=store)
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    data = b"".join(export_chunks(made, store=store, generated_at=now))
    manifest = export_manifest(made, store=store, generated_at=now)
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["row_count"] == 6000
    assert manifest["generated_at"] == "2026-11-28T21:00:00+09:00"
    assert manifest["licence"] == "CC BY 4.0 (test)"
    assert manifest["data_file"] == {
        "name": made.filename,
        "format": fmt,
        "media_type": ExportFormat(fmt).media_type,
        "columns": ["time", "sensor_id", "quantity", "unit", "value", "quality"],
    }


def test_the_zip_manifest_describes_its_csv() -> None:
    store = store_with_data()
    made = plan(request(TIDE.id, WBGT.id, fmt="zip"), store=store)
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    data = b"".join(export_chunks(made, store=store, generated_at=now))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        csv = archive.read("observations.csv")
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest == export_manifest(made, store=store, generated_at=now)
    assert manifest["sha256"] == hashlib.sha256(csv).hexdigest()
    assert manifest["row_count"] == len(pd.read_csv(io.BytesIO(csv))) == 6000
    assert manifest["query"] == {
        "sensor": [TIDE.id, WBGT.id],
        "from": "2026-11-01T00:00:00+09:00",
        "to": "2026-11-04T00:00:00+09:00",
        "every": None,
        "aggregate": None,
        "format": "zip",
    }
    assert manifest["sensors"][0] == {
        "id": TIDE.id,
        "name": "Tide",
        "device_id": "omaezaki-port",
        "quantity": "tide_level",
        "unit": "m",
        "domain": "disaster",
        "location": {"lat": 34.6, "lon": 138.2},
    }
    assert manifest["sensors"][1]["location"] is None
    assert isinstance(manifest["cityos_version"], str)
    assert manifest["cityos_version"]


# ---------------------------------------------------------------- aggregated


@pytest.mark.parametrize(
    ("every", "function", "slice_windows"),
    [
        ("1h", "mean", 100),
        ("7m", "last", 500),
        ("1d", "max", 7),
        ("1w", "sum", 3),
        ("1mo", "mean", 2),
        ("1fy", "count", 1),
    ],
)
def test_aggregated_exports_in_slices_equal_one_graphql_computation(
    every: str, function: str, slice_windows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_rows, "SLICE_WINDOWS", slice_windows)
    start = T0 + timedelta(minutes=17)  # inside a window: the first one starts before `from`
    store = MemoryStore(
        [
            Observation(TIDE.id, start + timedelta(minutes=13 * i), (i * 7919 % 1000) / 8)
            for i in range(12_000)
            if i % 1000 < 700  # gaps: some windows have no data
        ]
    )
    end = start + timedelta(days=400)
    req = ExportRequest(
        (TIDE.id,), start, end, parse_duration(every), function, ExportFormat.NDJSON
    )
    made = plan(req, store=store)
    data = b"".join(export_chunks(made, store=store, generated_at=datetime.now(UTC)))
    got = [json.loads(line) for line in data.splitlines()]
    whole = aggregate_windows(
        store=store,  # type: ignore[arg-type]
        sensor_id=TIDE.id,
        start=start,
        end=end,
        every=parse_duration(every),
        function=function,
        fill_mode="none",
        limit=10**7,
    )
    assert [(datetime.fromisoformat(d["time"]), d["value"], d["quality"]) for d in got] == [
        (w.start, w.value, "good") for w in whole
    ]
    assert len(got) <= made.expected_rows
    assert store.aggregate_calls > 2  # sliced (whole: one call more, above)


@pytest.mark.parametrize("every", ["1s", "45m", "1d", "3d", "1w", "1mo", "3mo", "1y", "1fy"])
def test_time_slices_cover_the_range_on_window_boundaries(every: str) -> None:
    duration = parse_duration(every)
    start = datetime(2025, 2, 17, 3, 21, 5, 7, tzinfo=UTC)
    end = start + timedelta(days=900) if duration.unit != "s" else start + timedelta(hours=3)
    slices = list(time_slices(start, end, duration, windows=5))
    assert slices[0][0] == start
    assert slices[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    boundaries = [low for low, _ in slices[1:]]
    for boundary in boundaries:  # each boundary starts a window: one more window follows it
        assert aggregate_windows_count(start, boundary, every) + aggregate_windows_count(
            boundary, end, every
        ) == aggregate_windows_count(start, end, every)


def aggregate_windows_count(start: datetime, end: datetime, every: str) -> int:
    from cityos.platform.exports.request import window_count

    return window_count(start, end, parse_duration(every))
