"""Pieces that `demo`, `serve` and `ingest` assemble: ports, broker, worker, HTTP server."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import typer
import uvicorn

from cityos.platform.api.app import create_app
from cityos.platform.ingest.retention import RetentionSweeper
from cityos.platform.ingest.worker import IngestWorker
from cityos.platform.ports import EmbeddedBroker
from cityos.platform.runtime import Runtime, start_embedded_broker

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """A URL safe to print: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def port_or_free(host: str, port: int, what: str) -> int:
    """`port` if it can be bound on `host`, else a free one (said loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return port
        except OSError:
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        free = int(sock.getsockname()[1])
    typer.secho(f"{what} port {port} is taken; using {free} instead", fg="yellow", err=True)
    return free


@contextlib.contextmanager
def mqtt_endpoint(
    runtime: Runtime, *, host: str, port: int
) -> Iterator[tuple[str, EmbeddedBroker | None]]:
    """The configured broker URL, or an embedded broker started for the block."""
    if runtime.settings.mqtt.url is not None:
        yield runtime.settings.mqtt.url.get_secret_value(), None
        return
    broker = start_embedded_broker(
        runtime.settings, host=host, port=port_or_free(host, port, "MQTT")
    )
    try:
        yield broker.url, broker
    finally:
        broker.stop()


@contextlib.contextmanager
def running_worker(runtime: Runtime, url: str) -> Iterator[IngestWorker]:
    """An ingest worker subscribed at `url` for the block."""
    with _started(
        IngestWorker(source=runtime.new_message_source(url), pipeline=runtime.new_pipeline())
    ) as worker:
        yield worker


@contextlib.contextmanager
def running_ttn_worker(runtime: Runtime) -> Iterator[IngestWorker | None]:
    """The TTN integration's worker for the block (None when CITYOS__TTN__URL is unset)."""
    source = runtime.new_ttn_source()
    if source is None:
        yield None
        return
    with _started(IngestWorker(source=source, pipeline=runtime.new_pipeline())) as worker:
        typer.echo(
            f"also ingesting uplinks of The Things Stack application "
            f"{runtime.settings.ttn.application} using {worker.protocol}"
        )
        yield worker


@contextlib.contextmanager
def sweeping_rejections(runtime: Runtime) -> Iterator[RetentionSweeper]:
    """Purge old dead-letter records hourly for the block (INGEST__REJECTED_RETENTION_DAYS)."""
    sweeper = RetentionSweeper(
        runtime.catalog, days=runtime.settings.ingest.rejected_retention_days
    )
    sweeper.start()
    try:
        yield sweeper
    finally:
        sweeper.stop()


@contextlib.contextmanager
def _started(worker: IngestWorker) -> Iterator[IngestWorker]:
    """Start a worker for the block; a failed start stops its writer again."""
    try:
        worker.start()
    except BaseException:
        worker.stop()
        raise
    try:
        yield worker
    finally:
        worker.stop()


class _StopRequested(Exception):
    """SIGINT or SIGTERM arrived: unwind so every component stops cleanly."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise _StopRequested(signum)


def serve_http(
    runtime: Runtime,
    *,
    host: str,
    port: int,
    anonymous_scopes: frozenset[str] = frozenset(),
) -> None:
    """Serve the API until Ctrl-C / SIGTERM, then return so callers can clean up."""
    app = create_app(runtime, anonymous_scopes=anonymous_scopes)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the
    # handler that was installed before it ran. Ours turns that into a normal return, so the
    # embedded broker, worker and stores are stopped instead of the process dying.
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run()
    except _StopRequested:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
