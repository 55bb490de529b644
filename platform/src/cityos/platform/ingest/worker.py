"""The ingest worker: a message source feeding the pipeline, started and stopped together."""

from __future__ import annotations

import logging

from cityos.platform.ingest.pipeline import IngestPipeline
from cityos.platform.ports import MessageSource

log = logging.getLogger(__name__)


class IngestWorker:
    """Runs one subscription into one pipeline."""

    def __init__(self, *, source: MessageSource, pipeline: IngestPipeline) -> None:
        self.source = source
        self.pipeline = pipeline

    @property
    def protocol(self) -> str:
        """The MQTT protocol level the broker gave us."""
        return self.source.protocol

    @property
    def shared_subscription(self) -> bool | None:
        """Whether the source got a shared subscription (None: it cannot tell)."""
        shared = getattr(self.source, "shared_subscription", None)
        return shared if isinstance(shared, bool) else None

    @property
    def healthy(self) -> bool:
        """False once the pipeline's writer has died (the process should exit and restart)."""
        return self.pipeline.healthy

    def start(self) -> None:
        """Start the writer, then subscribe."""
        self.pipeline.start()
        self.source.start(self.pipeline.submit)
        log.info("ingest worker subscribed using %s", self.source.protocol)

    def stop(self) -> None:
        """Write and acknowledge what was received, then disconnect."""
        self.pipeline.stop()
        self.source.stop()
