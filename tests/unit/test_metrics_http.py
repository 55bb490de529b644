"""The ingest worker's own /metrics endpoint."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from cityos.platform.domain.errors import ConfigError
from cityos.platform.metrics import Metrics
from cityos.platform.metrics_http import serving_metrics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serves_the_process_metrics_and_stops() -> None:
    metrics = Metrics()
    metrics.rejected.labels(reason="bad_payload").inc(3)
    port = free_port()
    with serving_metrics(metrics, host="127.0.0.1", port=port) as bound:
        assert bound == port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'cityos_ingest_rejected_total{reason="bad_payload"} 3.0' in text
        assert "cityos_ingest_messages_received_total 0.0" in text
    with socket.socket() as sock:  # nobody listens any more
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_port_zero_is_off_and_a_taken_port_is_a_clear_error() -> None:
    with serving_metrics(Metrics(), host="127.0.0.1", port=0) as bound:
        assert bound is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(ConfigError, match="CITYOS__INGEST__METRICS_PORT"),
            serving_metrics(Metrics(), host="127.0.0.1", port=port),
        ):
            pass
