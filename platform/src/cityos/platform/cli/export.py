"""`cityos export`: observations for research, from the local store or a remote cityos, to a file.

Both modes write a regular file to a hidden temp file beside it and rename it at the end, so a
failed or interrupted export never leaves a partial file under the requested name. A FIFO, a
device or stdout (`-o -`) is written directly (see export_output).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated

import httpx
import typer

from cityos.platform.audit.service import cli_actor, record_cli_action
from cityos.platform.audit.trail import AuditTrail
from cityos.platform.cli.export_output import (
    STDOUT,
    DirectFile,
    Meter,
    OutputError,
    PartFile,
    Target,
    open_output,
    resolve_target,
)
from cityos.platform.cli.export_remote import (
    Download,
    LineCounter,
    RemoteError,
    Tail,
    fetch_token,
    open_client,
    rows_in_file,
    start_download,
)
from cityos.platform.cli.output import emit_json, fail
from cityos.platform.cli.session import open_runtime
from cityos.platform.config import ExportsSettings, load_settings
from cityos.platform.domain.errors import InvalidInput
from cityos.platform.domain.model import EXPORT_READ, Domain
from cityos.platform.exports.request import ExportFormat, ExportRequest, parse_export_request
from cityos.platform.exports.service import ExportPlan, export_chunks, plan_export
from cityos.platform.runtime import Runtime
from cityos.platform.security import Principal

SECRET_ENV = "CITYOS_CLIENT_SECRET"  # noqa: S105 (the variable's name)
CLIENT_ID_ENV = "CITYOS_CLIENT_ID"
INTERRUPTED_EXIT = 130
"""Exit code after Ctrl-C (or SIGTERM), as shells report an interrupted command."""
OPERATOR = Principal(
    client_id=None, scopes=frozenset({*(domain.read_scope for domain in Domain), EXPORT_READ})
)
"""The operator at the console: every read scope and export:read (local mode)."""
REMOTE_LIMITS = ExportsSettings(max_sensors=1_000_000, max_range_days=1_000_000)
"""Remote mode checks the request's form only; the server applies its own limits."""
_OPTION_OF_FIELD = {
    "sensor": "--sensor",
    "from": "--from",
    "to": "--to",
    "every": "--every",
    "aggregate": "--aggregate",
    "format": "--format",
}
"""The option of each request parameter (InvalidInput.field, the server's error `field`)."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What one export wrote."""

    file: str
    format: ExportFormat
    rows: int
    bytes: int
    seconds: float
    sha256: str

    def document(self) -> dict[str, object]:
        """The --json document."""
        return {
            "file": self.file,
            "format": self.format.value,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "sha256": self.sha256,
        }


class _Interrupted(BaseException):
    """SIGTERM during an export: unwind like Ctrl-C so the temp file is removed."""


def _bad_input(exc: InvalidInput | RemoteError) -> typer.BadParameter:
    return typer.BadParameter(str(exc), param_hint=_OPTION_OF_FIELD.get(exc.field or ""))


def _parse(params: Mapping[str, Sequence[str]], limits: ExportsSettings) -> ExportRequest:
    try:
        return parse_export_request(params, limits=limits)
    except InvalidInput as exc:
        raise _bad_input(exc) from None


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While exporting, SIGTERM unwinds like Ctrl-C (main thread only; else unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise _Interrupted()

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- local mode


def _plan_local(runtime: Runtime, request: ExportRequest) -> ExportPlan:
    """Plan as the operator; health sensors' reads are on record before any byte is written.

    They are recorded as the command line's (via cli, the OS user), like `record_cli_action`,
    so the audit log tells them from anonymous API reads.
    """
    return plan_export(
        catalog=runtime.catalog,
        store=runtime.store,
        principal=OPERATOR,
        request=request,
        licence=runtime.settings.exports.licence,
        audit=AuditTrail(client_id=None, source_ip=None, details=cli_actor()),
    )


def _write_chunks(chunks: Generator[bytes, None, None], part: PartFile | DirectFile) -> None:
    try:
        for chunk in chunks:
            part.write(chunk)
    finally:
        chunks.close()  # stops the store's read at once when we stop early


def _export_local(request: ExportRequest, target: Target) -> ExportSummary:
    started = time.monotonic()
    with open_runtime() as runtime:
        plan = _plan_local(runtime, request)
        meter = Meter(target.name, points=True, total=plan.expected_rows)
        outcome = "failed"
        try:
            with open_output(target) as part, meter:
                chunks = export_chunks(
                    plan, store=runtime.store, generated_at=datetime.now(UTC), on_rows=meter.advance
                )
                _write_chunks(chunks, part)
                meter.finish()
                part.commit()
            outcome = "ok"
        except (KeyboardInterrupt, _Interrupted):
            outcome = "interrupted"
            raise
        finally:
            record_cli_action(
                runtime.catalog,
                "export",
                request.sensor_ids,
                outcome=outcome,
                query=_query_document(request),
                rows=meter.count,
                file=target.recorded,
            )
    return ExportSummary(
        file=target.given,
        format=request.format,
        rows=meter.count,
        bytes=part.size,
        seconds=time.monotonic() - started,
        sha256=part.sha256,
    )


def _query_document(request: ExportRequest) -> dict[str, object]:
    query: dict[str, object] = {}
    for name, value in request.query_params():
        if name == "sensor":
            continue
        query[name] = value
    return query


# ---------------------------------------------------------------- remote mode


def _expecting(name: str, expected: int | None, *, aggregated: bool) -> str:
    """The bar's description while the bytes of a Parquet file or zip arrive."""
    if expected is None:
        return name
    if aggregated:  # for windows the server's count is a bound
        return f"{name} (at most {expected:,} points)"
    return f"{name} ({expected:,} points expected)"


def _receive(
    download: Download, part: PartFile | DirectFile, request: ExportRequest, name: str
) -> int:
    """Stream the body into `part`; the number of rows (counted, or read from the file's end).

    CSV and NDJSON count points as the lines arrive. Parquet and zip count only at the end (the
    footer, the manifest), so their bar shows bytes, with the server's expected points named.
    """
    export_format = request.format
    if export_format in (ExportFormat.CSV, ExportFormat.NDJSON):
        counter = LineCounter(header=export_format is ExportFormat.CSV)
        with Meter(name, points=True, total=download.expected_rows) as meter:
            for chunk in download.chunks():
                part.write(chunk)
                meter.advance(counter.feed(chunk))
            meter.finish()
        if not counter.complete:
            raise RemoteError(f"the download broke off after {part.size:,} bytes")
        return counter.rows
    tail = Tail()  # the file's end, where the rows are counted, when it cannot be read back
    description = _expecting(name, download.expected_rows, aggregated=request.windows is not None)
    with Meter(description, points=False, total=None) as meter:
        for chunk in download.chunks():
            part.write(chunk)
            if part.path is None:
                tail.feed(chunk)
            meter.advance(len(chunk))
        part.close()
        rows = rows_in_file(tail.file() if part.path is None else part.path, export_format)
        meter.finish(f"{name} ({rows:,} points)")
    return rows


def _export_remote(
    request: ExportRequest, target: Target, *, url: str, client_id: str, client_secret: str
) -> ExportSummary:
    started = time.monotonic()
    try:
        with open_client(url) as http:
            token = fetch_token(http, client_id=client_id, client_secret=client_secret)
            download = start_download(http, token=token, request=request)
            try:
                with open_output(target) as part:
                    rows = _receive(download, part, request, target.name)
                    part.commit()
            finally:
                download.response.close()
    except httpx.ConnectError as exc:
        raise RemoteError(f"cannot connect to {url}: {exc}") from None
    except httpx.TimeoutException:
        raise RemoteError(f"{url} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise RemoteError(f"the connection to {url} failed: {exc}") from None
    return ExportSummary(
        file=target.given,
        format=request.format,
        rows=rows,
        bytes=part.size,
        seconds=time.monotonic() - started,
        sha256=part.sha256,
    )


def _check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) < len("http://x"):
        raise typer.BadParameter(
            "give the server's base URL, e.g. https://cityos.example.jp", param_hint="--url"
        )
    return url.rstrip("/")


def _secret(client_secret: str | None) -> str:
    """The option, else the environment, else asked on a terminal, else a line of stdin."""
    secret = client_secret or os.environ.get(SECRET_ENV)
    if secret:
        return secret
    if sys.stdin.isatty():
        prompted: str = typer.prompt("client secret", hide_input=True, err=True)
        return prompted
    piped = sys.stdin.readline().strip()
    if not piped:
        raise typer.BadParameter(
            f"give the secret: env {SECRET_ENV}, a line on stdin or a terminal to type it in",
            param_hint="--client-secret",
        )
    return piped


# ---------------------------------------------------------------- the command


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _echo(summary: ExportSummary, *, err: bool) -> None:
    rate = summary.rows / summary.seconds if summary.seconds > 0 else 0.0
    shown = "stdout" if summary.file == STDOUT else summary.file
    typer.echo(
        f"wrote {summary.rows:,} rows ({_size(summary.bytes)}, {summary.format.value}) to "
        f"{shown} in {summary.seconds:.1f} s ({rate:,.0f} rows/s)",
        err=err,
    )
    typer.echo(f"sha256 {summary.sha256}", err=err)


def _interrupted(target: Target) -> str:
    if target.direct:
        return (
            f"interrupted: {target.shown} may hold part of the export "
            "(written directly: it cannot be taken back)"
        )
    return f"interrupted: nothing written to {target.given}"


def export(
    sensor: Annotated[
        list[str],
        typer.Option(
            "--sensor",
            metavar="ID",
            help="sensor id, e.g. omaezaki-port.tide_level; repeat for more sensors",
        ),
    ],
    start: Annotated[
        str, typer.Option("--from", metavar="T", help="start (inclusive), RFC 3339 with offset")
    ],
    end: Annotated[
        str, typer.Option("--to", metavar="T", help="end (exclusive), RFC 3339 with offset")
    ],
    export_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="csv, parquet, ndjson or zip (CSV + manifest.json + README.txt)",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help="the file to write, replaced only once the export is complete (a symlink is "
            "followed and kept); '-' for stdout (./- for a file named '-'). A FIFO or device "
            "is written directly, so an interrupted export leaves what was already written",
        ),
    ],
    every: Annotated[
        str | None,
        typer.Option(
            "--every", metavar="D", help="window length, e.g. 10m, 1h, 1d, 1mo (with --aggregate)"
        ),
    ] = None,
    aggregate: Annotated[
        str | None,
        typer.Option(
            "--aggregate",
            metavar="A",
            help="mean, min, max, sum, count, first or last (with --every)",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="export from the cityos at this base URL instead of the local store",
        ),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id",
            metavar="ID",
            help=f"OAuth client id for --url (or env {CLIENT_ID_ENV}); needs export:read and "
            "the domain scopes of the sensors",
            show_default=False,
        ),
    ] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(
            "--client-secret",
            metavar="S",
            help=f"its secret; better: env {SECRET_ENV}; with neither, asked for (hidden) "
            "or read as one line of stdin. Never printed",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="print one JSON summary document on stdout (on stderr with -o -)"
        ),
    ] = False,
) -> None:
    """Export observations of sensors to a file, from the local store or a remote cityos (--url).

    Columns: time, sensor_id, quantity, unit, value, quality (rows sensor by sensor).

    Without --url the configured store is read as the operator; the export is audited.

    A file appears only when complete; Ctrl-C leaves nothing behind (exit 130). A FIFO or
    device is written directly instead. With -o - the export goes to stdout, the summary to
    stderr.
    """
    target = resolve_target(output)
    params: dict[str, list[str]] = {
        "sensor": list(sensor),
        "from": [start],
        "to": [end],
        "format": [export_format],
    }
    if every is not None:
        params["every"] = [every]
    if aggregate is not None:
        params["aggregate"] = [aggregate]
    if url is None and (client_id is not None or client_secret is not None):
        raise typer.BadParameter("--client-id and --client-secret need --url", param_hint="--url")
    try:
        with _sigterm_interrupts():
            if url is None:
                summary = _export_local(_parse(params, load_settings().exports), target)
            else:
                base = _check_url(url)
                request = _parse(params, REMOTE_LIMITS)
                chosen_id = client_id or os.environ.get(CLIENT_ID_ENV)
                if not chosen_id:
                    raise typer.BadParameter(
                        f"--url needs --client-id (or env {CLIENT_ID_ENV})",
                        param_hint="--client-id",
                    )
                summary = _export_remote(
                    request,
                    target,
                    url=base,
                    client_id=chosen_id,
                    client_secret=_secret(client_secret),
                )
    except (KeyboardInterrupt, _Interrupted):
        typer.echo(_interrupted(target), err=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except RemoteError as exc:
        if exc.usage:
            raise _bad_input(exc) from None
        raise fail(str(exc)) from None
    except OutputError as exc:
        raise fail(str(exc)) from None
    if as_json and target.stdout:  # stdout holds the export itself
        typer.echo(json.dumps(summary.document(), ensure_ascii=False, indent=2), err=True)
    elif as_json:
        emit_json(summary.document())
    else:
        _echo(summary, err=target.stdout)
