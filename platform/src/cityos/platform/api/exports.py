"""`GET /exports/observations` and its manifest: every check first, then the file streamed.

Every refusal is decided before the first byte (400, 401, 403, 404, 429, 503), also the one
for a process already streaming `exports.max_concurrent` exports or manifests. The file is
produced by a generator stepped in a worker thread; when the client goes away the generator
is closed at once, which stops the store read. A store failure mid-stream cuts the response
off (no final chunk: the client sees an incomplete transfer) with one WARNING line.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import NoReturn
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from cityos.platform.audit.trail import AuditTrail, AuditUnavailable
from cityos.platform.domain.errors import (
    InvalidInput,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    RetryableError,
)
from cityos.platform.domain.model import EXPORT_READ
from cityos.platform.exports.request import parse_export_request
from cityos.platform.exports.rows import SensorReadFailed
from cityos.platform.exports.service import (
    EXPORT_PATH,
    DescribedData,
    ExportPlan,
    export_chunks,
    plan_export,
)
from cityos.platform.exports.slots import Slot, Slots
from cityos.platform.metrics import Metrics
from cityos.platform.ports import TimeSeriesStore
from cityos.platform.runtime import Runtime
from cityos.platform.security import Principal

log = logging.getLogger(__name__)

MANIFEST_PATH = f"{EXPORT_PATH}/manifest"
EXPECTED_ROWS_HEADER = "X-Cityos-Expected-Rows"
EXPOSED_HEADERS = ("Content-Disposition", "Link", EXPECTED_ROWS_HEADER)
"""Headers of an export that browsers' scripts may read (CORS)."""
RETRY_AFTER_SECONDS = 30
BUSY_RETRY_AFTER_SECONDS = 10
"""Retry-After of the 503 for a process already streaming its most exports at once."""

UNFINISHED_RESPONSE = "ASGI callable returned without completing response."
"""What uvicorn logs (as an error) when an app ends a response without its last chunk."""

Admit = Callable[[Request], Awaitable[Principal]]
SourceIp = Callable[[Request], str | None]
_cut_off: ContextVar[bool] = ContextVar("cityos_export_cut_off", default=False)


class _CutOffOnPurpose(logging.Filter):
    """Drops uvicorn's line about an unfinished response when this module cut it off on purpose.

    The export has logged its own WARNING (sensor, format, rows, reason) by then. The flag
    lives in the request's context, so any other unfinished response is still reported.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_cut_off.get() and record.getMessage() == UNFINISHED_RESPONSE)


_CUT_OFF_FILTER = _CutOffOnPurpose()


def _quiet_cut_offs() -> None:
    """Install the filter on uvicorn's error logger (once per process)."""
    logger = logging.getLogger("uvicorn.error")
    if _CUT_OFF_FILTER not in logger.filters:
        logger.addFilter(_CUT_OFF_FILTER)


class ExportRefused(Exception):
    """An export refused before its first byte: the status and the JSON error to answer."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retry_after: int = RETRY_AFTER_SECONDS,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        """`{"error": {"code", "message", "field"}}` with the status (503: Retry-After)."""
        headers = {"Retry-After": str(self.retry_after)} if self.status == 503 else None
        return JSONResponse(
            {"error": {"code": self.code, "message": str(self), "field": self.field}},
            status_code=self.status,
            headers=headers,
        )


def _refusal(exc: Exception) -> ExportRefused | None:
    """The HTTP answer to an error raised while planning an export (None: not a refusal)."""
    if isinstance(exc, LimitExceeded):
        return ExportRefused(400, "LIMIT_EXCEEDED", str(exc), exc.field)
    if isinstance(exc, InvalidInput):
        return ExportRefused(400, "BAD_USER_INPUT", str(exc), exc.field)
    if isinstance(exc, PermissionDenied):
        return ExportRefused(403, "FORBIDDEN", str(exc))
    if isinstance(exc, NotFound):
        return ExportRefused(404, "NOT_FOUND", str(exc), "sensor")
    if isinstance(exc, AuditUnavailable):
        message = "the audit log cannot be written, so health data is withheld; try again later"
        return ExportRefused(503, "AUDIT_UNAVAILABLE", message)
    if isinstance(exc, RetryableError):
        return _unavailable(exc)
    return None


def _refuse_or_raise(exc: BaseException) -> NoReturn:
    """Raise the ExportRefused that answers `exc`, or `exc` itself when it is no refusal."""
    refused = _refusal(exc) if isinstance(exc, Exception) else None
    if refused is None:
        raise exc
    raise refused from exc


def _unavailable(exc: RetryableError) -> ExportRefused:
    """503 UNAVAILABLE: the store did not answer (Retry-After)."""
    return ExportRefused(503, "UNAVAILABLE", f"the time-series store is unavailable: {exc}")


class ExportResponse(StreamingResponse):
    """Streams an export (its generator stepped in a worker thread) and always closes it.

    Starlette leaves a sync iterator suspended when the client disconnects; here the
    generator is closed as soon as the response ends, however it ends, and the metrics
    record the outcome. A store failure mid-stream ends the response without its last
    chunk, so the server cuts the connection off: the client's read fails, and no file
    that looks whole is left behind.
    """

    def __init__(
        self,
        plan: ExportPlan,
        *,
        store: TimeSeriesStore,
        slot: Slot,
        metrics: Metrics,
        headers: dict[str, str],
    ) -> None:
        self._plan = plan
        self._slot = slot
        # Sent or not, the slot comes back: also if this response is dropped without a call.
        weakref.finalize(self, slot.release)
        self._metrics = metrics
        self._rows = 0
        self._finished = False
        self._chunks = export_chunks(
            plan, store=store, generated_at=datetime.now(UTC), on_rows=self._count
        )
        super().__init__(self._body(), headers=headers, media_type=plan.media_type)

    def _count(self, rows: int) -> None:
        self._rows += rows
        self._metrics.export_rows.inc(rows)

    async def _body(self) -> AsyncIterator[bytes]:
        # Each step is a cancellation point: a disconnect stops the export between two blocks.
        while (chunk := await anyio.to_thread.run_sync(next, self._chunks, None)) is not None:
            if chunk:
                yield chunk
        self._finished = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the export; close the generator (stopping the store read) and free the slot."""
        self._metrics.exports_in_progress.inc()
        started = time.monotonic()
        outcome = "failed"
        failure: RetryableError | None = None
        try:
            await super().__call__(scope, receive, send)
            outcome = "completed" if self._finished else "aborted"
        except RetryableError as exc:  # the headers are out: end without the last chunk
            failure = exc
            _cut_off.set(True)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._chunks.close)
            self._slot.release()
            self._metrics.exports_in_progress.dec()
            self._metrics.exports.labels(self._plan.request.format.value, outcome).inc()
            self._log(outcome, failure, time.monotonic() - started)

    def _log(self, outcome: str, failure: RetryableError | None, seconds: float) -> None:
        plan = self._plan
        if failure is not None:
            log.warning(
                "export failed, response cut off: %s, format %s, sensor %s, after %d rows, "
                "%.1f s: store: %s",
                plan.filename,
                plan.request.format.value,
                _sensor_of(failure),
                self._rows,
                seconds,
                failure,
            )
            return
        log.info(
            "export %s: %s, %d sensors, %d rows, %.1f s",
            outcome,
            plan.filename,
            len(plan.sensors),
            self._rows,
            seconds,
        )


def _sensor_of(failure: RetryableError) -> str:
    """The sensor whose rows were being read when the store failed ("-" if not known)."""
    return failure.sensor_id if isinstance(failure, SensorReadFailed) else "-"


def exports_router(runtime: Runtime, *, admit: Admit, source_ip: SourceIp) -> APIRouter:
    """The export routes; `admit` authenticates and rate-limits the caller (401, 429)."""
    router = APIRouter()
    metrics = runtime.metrics
    slots = Slots(runtime.settings.exports.max_concurrent)
    _quiet_cut_offs()

    async def plan(request: Request) -> tuple[ExportPlan, Slot]:
        """Check the request, take a slot, plan the export (ExportRefused: what to answer).

        The slot is taken after the checks of the request itself (400, 401, 403, 429), before
        the store is asked anything; the caller releases it.
        """
        principal = await admit(request)
        params: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            params.setdefault(name, []).append(value)
        trail = AuditTrail(client_id=principal.client_id, source_ip=source_ip(request))
        try:
            export = parse_export_request(params, limits=runtime.settings.exports)
            principal.require(EXPORT_READ)
        except Exception as exc:
            _refuse_or_raise(exc)
        slot = slots.take()
        if slot is None:
            metrics.exports_busy.inc()
            raise ExportRefused(
                503,
                "UNAVAILABLE",
                f"this server is streaming its most exports at once ({slots.limit}); "
                f"try again in {BUSY_RETRY_AFTER_SECONDS} s",
                retry_after=BUSY_RETRY_AFTER_SECONDS,
            )
        try:
            planned = await asyncio.to_thread(
                plan_export,
                catalog=runtime.catalog,
                store=runtime.store,
                principal=principal,
                request=export,
                licence=runtime.settings.exports.licence,
                audit=trail,
            )
        except BaseException as exc:  # also cancelled: the slot comes back
            slot.release()
            _refuse_or_raise(exc)
        return planned, slot

    @router.get(EXPORT_PATH, include_in_schema=False)
    async def export_observations(request: Request) -> Response:
        try:
            export, slot = await plan(request)
        except ExportRefused as refused:
            return refused.response()
        return ExportResponse(
            export, store=runtime.store, slot=slot, metrics=metrics, headers=_headers(export)
        )

    @router.get(MANIFEST_PATH, include_in_schema=False)
    async def export_observations_manifest(request: Request) -> Response:
        try:
            export, slot = await plan(request)
        except ExportRefused as refused:
            return refused.response()
        data = DescribedData(export, store=runtime.store, generated_at=datetime.now(UTC))
        metrics.exports_in_progress.inc()
        try:
            while await anyio.to_thread.run_sync(next, data.chunks, None) is not None:
                if await request.is_disconnected():
                    return Response(status_code=499)
        except RetryableError as exc:  # nothing sent yet: the contract's 503, not a bare 500
            log.warning(
                "export manifest failed, answered 503: %s, format %s, sensor %s, %d rows read: "
                "store: %s",
                export.filename,
                export.request.format.value,
                _sensor_of(exc),
                data.rows,
                exc,
            )
            return _unavailable(exc).response()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(data.chunks.close)
            slot.release()
            metrics.exports_in_progress.dec()
        return JSONResponse(data.manifest(), headers={"Cache-Control": "no-store"})

    return router


def _headers(plan: ExportPlan) -> dict[str, str]:
    """Content-Disposition, the manifest link, the expected rows (raw exports), no caching."""
    query = urlencode(plan.request.query_params())
    headers = {
        "Content-Disposition": f'attachment; filename="{plan.filename}"',
        "Link": f'<{MANIFEST_PATH}?{query}>; rel="describedby"; type="application/json"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if plan.request.windows is None:  # exact; for windows only an upper bound is known
        headers[EXPECTED_ROWS_HEADER] = str(plan.expected_rows)
    return headers
