"""Exports: a plan that does every check before any byte, then the file streamed; manifests."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from cityos.platform.audit.trail import AuditTrail
from cityos.platform.domain.errors import NotFound
from cityos.platform.domain.model import EXPORT_READ, Sensor
from cityos.platform.exports.bundle import DATA_NAME, zip_chunks
from cityos.platform.exports.columns import COLUMNS
from cityos.platform.exports.formats import CsvEncoder, Encoder, NdjsonEncoder, ParquetEncoder
from cityos.platform.exports.request import ExportFormat, ExportRequest, window_count
from cityos.platform.exports.rows import row_blocks
from cityos.platform.ports import Catalog, TimeSeriesStore
from cityos.platform.security import Principal
from cityos.platform.sensors.service import find_sensor
from cityos.platform.timefmt import format_rfc3339

EXPORT_PATH = "/exports/observations"
"""Where the HTTP API serves exports (the manifest: this + `/manifest`)."""
MAX_SENSOR_IN_NAME = 64
"""Characters of the first sensor id kept in a download's file name."""
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")
AUDIT_OPERATION = "export"
"""The audit log's operation for an export that includes health-domain sensors."""


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """A checked export: its sensors (request order), licence, rows expected, file name."""

    request: ExportRequest
    sensors: tuple[Sensor, ...]
    licence: str
    expected_rows: int  # exact for raw exports (at plan time); an upper bound for windows
    filename: str
    media_type: str

    @property
    def data_format(self) -> ExportFormat:
        """The format of the data file (CSV inside a zip)."""
        fmt = self.request.format
        return ExportFormat.CSV if fmt is ExportFormat.ZIP else fmt

    @property
    def data_name(self) -> str:
        """The data file's name (inside a zip, or the download itself)."""
        return DATA_NAME if self.request.format is ExportFormat.ZIP else self.filename


def plan_export(
    *,
    catalog: Catalog,
    store: TimeSeriesStore,
    principal: Principal,
    request: ExportRequest,
    licence: str,
    audit: AuditTrail,
) -> ExportPlan:
    """Check scopes and sensors, count rows, record the audit: everything that can fail.

    PermissionDenied without `export:read`; NotFound for an unknown sensor or one the
    caller may not read (alike); RetryableError when the store does not answer;
    AuditUnavailable when the reading of health data cannot be recorded.
    """
    principal.require(EXPORT_READ)
    sensors: list[Sensor] = []
    for sensor_id in request.sensor_ids:
        sensor = find_sensor(catalog=catalog, principal=principal, sensor_id=sensor_id)
        if sensor is None:
            raise NotFound(f"no sensor {sensor_id!r}")
        sensors.append(sensor)
    expected = _expected_rows(request, sensors, store)
    audit.read(AUDIT_OPERATION, sensors)
    audit.flush(catalog)
    return ExportPlan(
        request=request,
        sensors=tuple(sensors),
        licence=licence,
        expected_rows=expected,
        filename=export_filename(request),
        media_type=request.format.media_type,
    )


def _expected_rows(
    request: ExportRequest, sensors: Sequence[Sensor], store: TimeSeriesStore
) -> int:
    """Raw: the observations in range; aggregated: at most one row per window with data."""
    total = 0
    windows = (
        None if request.every is None else window_count(request.start, request.end, request.every)
    )
    for sensor in sensors:
        count = store.count_range(sensor_id=sensor.id, start=request.start, end=request.end)
        total += count if windows is None else min(count, windows)
    return total


def export_filename(request: ExportRequest) -> str:
    """The download's file name: sensor, range (UTC), windows, extension; only [A-Za-z0-9._-].

    `cityos-observations-<first sensor>[-and-<n>-more]-<from>-<to>[-<every>-<aggregate>].<ext>`,
    so that exports of different sensors over one range do not overwrite each other.
    """
    first = _UNSAFE_IN_NAME.sub("_", request.sensor_ids[0])[:MAX_SENSOR_IN_NAME]
    more = len(request.sensor_ids) - 1
    sensor = first if more == 0 else f"{first}-and-{more}-more"
    start, end = (
        t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") for t in (request.start, request.end)
    )
    shape = "" if request.every is None else f"-{request.every}-{request.aggregate}"
    name = f"cityos-observations-{sensor}-{start}-{end}{shape}.{request.format.extension}"
    return _UNSAFE_IN_NAME.sub("_", name)


def export_chunks(
    plan: ExportPlan,
    *,
    store: TimeSeriesStore,
    generated_at: datetime,
    on_rows: Callable[[int], None] | None = None,
) -> Generator[bytes, None, None]:
    """The export file's bytes (for zip, the whole archive), read from the store as it goes.

    Chunks may be empty (one per store block at least), so closing is possible at any block.

    `on_rows(n)` is called as rows are written. Closing the generator stops the store read
    at once. A store failure mid-stream raises (the file is then incomplete, never passed
    off as whole).
    """
    if plan.request.format is not ExportFormat.ZIP:
        yield from data_chunks(plan, store=store, on_rows=on_rows)
        return
    data = DescribedData(plan, store=store, generated_at=generated_at, on_rows=on_rows)
    try:
        yield from zip_chunks(data.chunks, generated_at=generated_at, manifest=data.manifest)
    finally:
        data.chunks.close()


def data_chunks(
    plan: ExportPlan, *, store: TimeSeriesStore, on_rows: Callable[[int], None] | None = None
) -> Generator[bytes, None, None]:
    """The data file's bytes in `plan.data_format` (deterministic for the same rows).

    One chunk per block read from the store, empty while an encoder buffers, so that the
    consumer can close the generator between any two store reads.
    """
    encoder = _encoder(plan)
    blocks = row_blocks(plan.request, plan.sensors, store=store)
    try:
        if first := encoder.begin():
            yield first
        for block in blocks:
            chunk = encoder.encode(block)
            if on_rows is not None:
                on_rows(len(block))
            yield chunk  # also when empty (Parquet buffers): a consumer may stop here
        if last := encoder.end():
            yield last
    finally:
        blocks.close()


def _encoder(plan: ExportPlan) -> Encoder:
    fmt = plan.data_format
    if fmt is ExportFormat.PARQUET:
        return ParquetEncoder(plan.sensors, file_metadata(plan))
    if fmt is ExportFormat.NDJSON:
        return NdjsonEncoder(plan.sensors)
    return CsvEncoder(plan.sensors)


class DescribedData:
    """The data file's chunks, hashed and counted as they stream past; then its manifest.

    Iterate (or step) `chunks` to the end, then `manifest()` has the row count and SHA-256.
    """

    def __init__(
        self,
        plan: ExportPlan,
        *,
        store: TimeSeriesStore,
        generated_at: datetime,
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        self._plan = plan
        self._generated_at = generated_at
        self._on_rows = on_rows
        self._hash = hashlib.sha256()
        self.rows = 0
        self.chunks = self._hashed(data_chunks(plan, store=store, on_rows=self._count))

    def _count(self, rows: int) -> None:
        self.rows += rows
        if self._on_rows is not None:
            self._on_rows(rows)

    def _hashed(self, chunks: Generator[bytes, None, None]) -> Generator[bytes, None, None]:
        try:
            for chunk in chunks:
                self._hash.update(chunk)
                yield chunk
        finally:
            chunks.close()

    def manifest(self) -> dict[str, object]:
        """The manifest of the data streamed so far (all of it, once `chunks` is exhausted)."""
        return build_manifest(
            self._plan,
            generated_at=self._generated_at,
            row_count=self.rows,
            sha256=self._hash.hexdigest(),
        )


def export_manifest(
    plan: ExportPlan, *, store: TimeSeriesStore, generated_at: datetime
) -> dict[str, object]:
    """The manifest of an export, its row count and SHA-256 from one pass over the data file."""
    data = DescribedData(plan, store=store, generated_at=generated_at)
    for _chunk in data.chunks:
        pass
    return data.manifest()


def build_manifest(
    plan: ExportPlan, *, generated_at: datetime, row_count: int, sha256: str
) -> dict[str, object]:
    """What an export is and where it came from (manifest.json)."""
    return {
        "generator": "cityos",
        "cityos_version": cityos_version(),
        "generated_at": format_rfc3339(generated_at),
        "query": query_dict(plan.request),
        "url": export_url(plan.request),
        "rows": rows_description(plan.request),
        "data_file": {
            "name": plan.data_name,
            "format": plan.data_format.value,
            "media_type": plan.data_format.media_type,
            "columns": list(COLUMNS),
        },
        "row_count": row_count,
        "sha256": sha256,
        "sensors": [sensor_dict(sensor) for sensor in plan.sensors],
        "licence": plan.licence,
    }


def file_metadata(plan: ExportPlan) -> dict[str, str]:
    """Key-value metadata stored in the file itself (Parquet); no time, so bytes repeat."""
    return {
        "cityos.query": json.dumps(query_dict(plan.request), ensure_ascii=False),
        "cityos.url": export_url(plan.request),
        "cityos.rows": rows_description(plan.request),
        "cityos.sensors": json.dumps([sensor_dict(s) for s in plan.sensors], ensure_ascii=False),
        "cityos.licence": plan.licence,
        "cityos.version": cityos_version(),
    }


def query_dict(request: ExportRequest) -> dict[str, object]:
    """The export's query parameters (`sensor` as a list; absent ones null)."""
    params = request.query_params()
    single = dict(params)
    return {
        "sensor": [value for name, value in params if name == "sensor"],
        "from": single["from"],
        "to": single["to"],
        "every": single.get("every"),
        "aggregate": single.get("aggregate"),
        "format": single["format"],
    }


def export_url(request: ExportRequest, *, path: str = EXPORT_PATH) -> str:
    """The path and query that fetch this export over HTTP."""
    return f"{path}?{urlencode(request.query_params())}"


def rows_description(request: ExportRequest) -> str:
    """What one row of this export is."""
    if request.every is None:
        return "raw observations as stored"
    return (
        f"{request.aggregate} of the observations (any quality) in each {request.every} window "
        "aligned in Asia/Tokyo; time = window start; windows without data are left out; "
        "quality good"
    )


def sensor_dict(sensor: Sensor) -> dict[str, object]:
    """A sensor's description in a manifest."""
    location = sensor.location
    return {
        "id": sensor.id,
        "name": sensor.name,
        "device_id": sensor.device_id,
        "quantity": sensor.quantity,
        "unit": sensor.unit,
        "domain": sensor.domain.value,
        "location": None if location is None else {"lat": location.lat, "lon": location.lon},
    }


def cityos_version() -> str:
    """The installed cityos-platform version."""
    try:
        return importlib.metadata.version("cityos-platform")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
