"""Prometheus metrics of one cityos process (own registry, so tests can build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The counters and histograms cityos exposes at GET /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages_received = Counter(
            "cityos_ingest_messages_received",
            "MQTT messages received by the ingest worker",
            registry=self.registry,
        )
        self.readings_stored = Counter(
            "cityos_ingest_readings_stored", "Readings written to the store", registry=self.registry
        )
        self.rejected = Counter(
            "cityos_ingest_rejected",
            "Messages or readings refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "cityos_ingest_batch_readings",
            "Readings per batch written",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000),
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "cityos_ingest_write_seconds",
            "Time to write one batch durably",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.ack_lag_seconds = Histogram(
            "cityos_ingest_ack_lag_seconds",
            "Time from receipt of a message to its acknowledgement",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.write_failures = Counter(
            "cityos_ingest_write_failures",
            "Batch writes that failed and will be retried",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "cityos_ingest_queue_depth", "Messages waiting to be processed", registry=self.registry
        )
        self.exports_in_progress = Gauge(
            "cityos_exports_in_progress",
            "Exports (and export manifests) reading from the store right now",
            registry=self.registry,
        )
        self.export_rows = Counter(
            "cityos_export_rows", "Rows written by exports", registry=self.registry
        )
        self.exports = Counter(
            "cityos_exports",
            "Exports ended, by format and outcome (completed, aborted, failed)",
            ["format", "outcome"],
            registry=self.registry,
        )
        self.exports_busy = Counter(
            "cityos_exports_busy",
            "Exports and manifests refused with 503 because the process was streaming "
            "exports.max_concurrent already",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample (0 if never set); handy for tests and the CLI."""
        sample = self.registry.get_sample_value(name, labels or {})
        return 0.0 if sample is None else sample
