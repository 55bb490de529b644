"""`cityos serve` and `cityos ingest` (one worker, or `--workers N` under a supervisor)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Annotated

import typer

from cityos.platform.cli.stack import (
    mqtt_endpoint,
    redact_url,
    running_ttn_worker,
    running_worker,
    serve_http,
    sweeping_rejections,
)
from cityos.platform.config import load_settings
from cityos.platform.domain.errors import CityosError, ConfigError
from cityos.platform.ingest.supervisor import WorkerSupervisor, worker_client_id
from cityos.platform.metrics_http import serving_metrics
from cityos.platform.runtime import Runtime

log = logging.getLogger(__name__)

_CHILD_ENTRY = "from cityos.platform.cli import main; main()"


def serve(
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP port")] = 8000,
) -> None:
    """Run the HTTP/GraphQL API and the import scheduler (anonymous: public data only)."""
    runtime = Runtime.open(load_settings())
    try:
        scheduler = runtime.new_scheduler()
        scheduler.start()
        try:
            typer.echo(f"cityos API on http://{host}:{port}/graphql (healthz: /healthz)")
            serve_http(runtime, host=host, port=port)
        finally:
            scheduler.stop()
    finally:
        runtime.close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def ingest(
    mqtt_port: Annotated[
        int, typer.Option("--mqtt-port", help="port of the embedded broker (no CITYOS__MQTT__URL)")
    ] = 1883,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="worker processes sharing the MQTT v5 shared subscription "
            "(client ids <CITYOS__MQTT__CLIENT_ID>-1 .. -N)",
        ),
    ] = 1,
    worker_index: Annotated[int | None, typer.Option("--worker-index", hidden=True)] = None,
    ready_fd: Annotated[int | None, typer.Option("--ready-fd", hidden=True)] = None,
) -> None:
    """Run the MQTT ingestion worker(s) until Ctrl-C / SIGTERM."""
    if workers > 1 and worker_index is None:
        _supervise(workers, mqtt_port)
    else:
        _run_worker(mqtt_port, worker_index, ready_fd)


def _run_worker(mqtt_port: int, index: int | None, ready_fd: int | None) -> None:
    """One worker in this process (`index`: one of a supervisor's workers)."""
    label = "" if index is None else f"worker {index}: "
    if index is not None:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(
                logging.Formatter(
                    f"%(asctime)s %(levelname)-7s [worker {index}] %(name)s: %(message)s",
                    datefmt="%H:%M:%S",
                )
            )
    settings = load_settings()
    runtime = Runtime.open(settings)
    stop = _stop_on_signals()
    supervisor = os.getppid()
    first = index is None or index == 1  # the one that also runs the TTN integration and retention
    metrics_port = settings.ingest.metrics_port
    if metrics_port and index is not None:
        metrics_port += index - 1  # supervised workers: one port each, from METRICS_PORT up
    try:
        with (
            serving_metrics(
                runtime.metrics, host=settings.ingest.metrics_host, port=metrics_port
            ) as metrics_at,
            mqtt_endpoint(runtime, host="127.0.0.1", port=mqtt_port) as (url, _broker),
            running_worker(runtime, url) as worker,
            running_ttn_worker(runtime) if first else contextlib.nullcontext() as ttn,
            sweeping_rejections(runtime) if first else contextlib.nullcontext(),
        ):
            if metrics_at is not None:
                typer.echo(
                    f"{label}metrics on http://{settings.ingest.metrics_host}:{metrics_at}/metrics"
                )
            if index is not None and worker.shared_subscription is False:
                raise ConfigError(
                    f"{label}the broker refused the shared subscription; several workers would "
                    "each store every message (use a broker with MQTT v5 shared subscriptions, "
                    "e.g. mosquitto 2, or run one worker)"
                )
            typer.echo(
                f"{label}ingesting from {redact_url(url)} using {worker.protocol}; Ctrl-C stops"
            )
            if ready_fd is not None:
                os.write(ready_fd, b"1")
                os.close(ready_fd)
            while not stop.wait(1.0):
                if not worker.healthy or (ttn is not None and not ttn.healthy):
                    raise CityosError(
                        "the ingest writer stopped; exiting so a supervisor restarts it"
                    )
                if index is not None and os.getppid() != supervisor:
                    log.warning("the ingest supervisor is gone; stopping")
                    break
    finally:
        runtime.close()


def _worker_argv(index: int, ready_fd: int) -> list[str]:
    """The command line of a supervised worker."""
    return [
        sys.executable, "-c", _CHILD_ENTRY, "ingest",
        "--worker-index", str(index), "--ready-fd", str(ready_fd),
    ]  # fmt: skip


def _supervise(count: int, mqtt_port: int) -> None:
    """Run `count` worker processes on one shared subscription until Ctrl-C / SIGTERM."""
    settings = load_settings()
    runtime = Runtime.open(settings)  # checks the configuration and migrates the catalog once
    stop = _stop_on_signals()
    try:
        with mqtt_endpoint(runtime, host="127.0.0.1", port=mqtt_port) as (url, broker):
            if broker is not None and broker.name == "amqtt":
                raise ConfigError(
                    "--workers needs MQTT v5 shared subscriptions, which the embedded amqtt "
                    "broker lacks; install mosquitto or set CITYOS__MQTT__URL"
                )
            client_id = settings.mqtt.client_id
            supervisor = WorkerSupervisor(
                count=count,
                client_id=client_id,
                argv=_worker_argv,
                env={**os.environ, "CITYOS__MQTT__URL": url},
                stop=stop,
            )
            ids = ", ".join(worker_client_id(client_id, i) for i in range(1, count + 1))
            typer.echo(
                f"supervising {count} ingest workers on $share/{settings.mqtt.share_group}/"
                f"cityos/v1/devices/+/up at {redact_url(url)} (client ids {ids}); Ctrl-C stops"
            )
            code = supervisor.run(on_ready=lambda: typer.echo(f"all {count} workers subscribed"))
            if code != 0:
                raise CityosError("an ingest worker could not start (see its output above)")
    finally:
        runtime.close()
