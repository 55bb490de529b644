"""A small HTTP endpoint for a process without the API (the ingest worker): GET /metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import start_http_server

from cityos.platform.domain.errors import ConfigError
from cityos.platform.metrics import Metrics

log = logging.getLogger(__name__)


@contextlib.contextmanager
def serving_metrics(metrics: Metrics, *, host: str, port: int) -> Iterator[int | None]:
    """Serve `metrics` in Prometheus format at http://host:port/metrics for the block.

    Port 0 turns the endpoint off (yields None); a port in use is a ConfigError naming it.
    """
    if port == 0:
        yield None
        return
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}; "
            "set CITYOS__INGEST__METRICS_PORT (0 turns the endpoint off)"
        ) from None
    bound = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics", host, bound)
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)
