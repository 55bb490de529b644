"""`cityos serve` and `cityos ingest`."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from cityos.platform.cli.stack import mqtt_endpoint, redact_url, running_worker, serve_http
from cityos.platform.config import load_settings
from cityos.platform.domain.errors import CityosError
from cityos.platform.runtime import Runtime


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


def ingest(
    mqtt_port: Annotated[
        int, typer.Option("--mqtt-port", help="port of the embedded broker (no CITYOS__MQTT__URL)")
    ] = 1883,
) -> None:
    """Run the MQTT ingestion worker until Ctrl-C / SIGTERM."""
    runtime = Runtime.open(load_settings())
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with (
            mqtt_endpoint(runtime, host="127.0.0.1", port=mqtt_port) as (url, _broker),
            running_worker(runtime, url) as worker,
        ):
            typer.echo(f"ingesting from {redact_url(url)} using {worker.protocol}; Ctrl-C stops")
            while not stop.wait(1.0):
                if not worker.healthy:
                    raise CityosError(
                        "the ingest writer stopped; exiting so a supervisor restarts it"
                    )
    finally:
        runtime.close()
