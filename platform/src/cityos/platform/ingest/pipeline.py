"""The ingest pipeline: decode and validate messages, write batches, then acknowledge.

A message is acknowledged only after everything it produced (observations and dead-letter
records) has been written; a store outage therefore holds acks, the broker slows down and
redelivers after a crash, and nothing acknowledged is ever lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cityos.platform.config import IngestSettings
from cityos.platform.domain.errors import PayloadError, RetryableError
from cityos.platform.domain.model import Observation, Rejection
from cityos.platform.ingest.directory import DeviceDirectory
from cityos.platform.ingest.topics import device_of_topic
from cityos.platform.ingest.validation import ReadingRejected, validate_reading
from cityos.platform.metrics import Metrics
from cityos.platform.ports import DecodeContext, Message, PayloadDecoder, TimeSeriesStore

log = logging.getLogger(__name__)

_STOP = object()
EXCERPT_BYTES = 200


@dataclass(slots=True)
class Outcome:
    """What one message produced."""

    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)


def _excerpt(payload: bytes) -> str:
    return payload[:EXCERPT_BYTES].decode("utf-8", "replace")


class IngestPipeline:
    """Turns messages into stored observations and dead letters, acking after the write."""

    def __init__(
        self,
        *,
        directory: DeviceDirectory,
        decoders: Mapping[str, PayloadDecoder],
        store: TimeSeriesStore,
        record_rejections: Callable[[Sequence[Rejection]], None],
        settings: IngestSettings,
        metrics: Metrics,
    ) -> None:
        self._directory = directory
        self._decoders = decoders
        self._store = store
        self._record_rejections = record_rejections
        self._settings = settings
        self._metrics = metrics
        self._max_future = timedelta(seconds=settings.max_future_seconds)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=200_000)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._rejection_log = _RateLimitedLog()

    # -- intake (called on the message source's thread)

    def submit(self, message: Message) -> None:
        """Queue one message for processing (blocks when the queue is full: backpressure)."""
        self._metrics.messages_received.inc()
        self._queue.put(message)

    # -- lifecycle

    def start(self) -> None:
        """Start the writer thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="cityos-ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, write it, ack it, and stop the writer thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    # -- processing

    def process(self, message: Message) -> Outcome:
        """Decode and validate one message (never raises on bad input)."""
        outcome = Outcome()
        try:
            self._process_into(message, outcome)
        except Exception as exc:  # a decoder bug must not stop ingestion
            log.exception("internal error while processing a message on %s", message.topic)
            self._reject(outcome, message, "internal_error", f"internal error: {exc!r}")
        return outcome

    def _process_into(self, message: Message, outcome: Outcome) -> None:
        payload = message.payload
        if len(payload) > self._settings.max_payload_bytes:
            self._reject(
                outcome,
                message,
                "payload_too_large",
                f"payload of {len(payload)} bytes exceeds the limit of "
                f"{self._settings.max_payload_bytes}",
            )
            return
        device_id = device_of_topic(message.topic)
        if device_id is None:
            self._reject(outcome, message, "bad_topic", "topic is not cityos/v1/devices/<id>/up")
            return
        entry = self._directory.lookup(device_id)
        if entry is None:
            self._reject(
                outcome,
                message,
                "unknown_device",
                f"device {device_id!r} is not registered",
                device_id,
            )
            return
        if entry.device.revoked:
            self._reject(
                outcome, message, "revoked_device", f"device {device_id!r} is revoked", device_id
            )
            return
        decoder = self._decoders.get(entry.device.payload_format)
        if decoder is None:
            self._reject(
                outcome,
                message,
                "unsupported_format",
                f"no decoder for payload format {entry.device.payload_format!r}",
                device_id,
            )
            return
        context = DecodeContext(
            device=entry.device,
            sensors=entry.sensors,
            topic=message.topic,
            received_at=message.received_at,
        )
        try:
            decoded = decoder.decode(payload, context)
        except PayloadError as exc:
            self._reject(outcome, message, "bad_payload", exc.reason, device_id)
            return
        for problem in decoded.problems:
            self._reject(
                outcome,
                message,
                "bad_reading",
                problem.reason,
                device_id,
                problem.quantity,
                excerpt=problem.excerpt,
            )
        for reading in decoded.readings:
            result = validate_reading(
                reading,
                sensors=entry.sensors,
                received_at=message.received_at,
                max_future=self._max_future,
            )
            if isinstance(result, ReadingRejected):
                self._reject(
                    outcome, message, result.code, result.detail, device_id, result.quantity
                )
            else:
                outcome.observations.append(result)

    def _reject(
        self,
        outcome: Outcome,
        message: Message,
        code: str,
        detail: str,
        device_id: str | None = None,
        quantity: str | None = None,
        *,
        excerpt: str | None = None,
    ) -> None:
        outcome.codes.append(code)
        outcome.rejections.append(
            Rejection(
                received_at=message.received_at,
                reason=f"{code}: {detail}",
                topic=message.topic[:512],
                excerpt=excerpt if excerpt is not None else _excerpt(message.payload),
                device_id=device_id,
                quantity=quantity,
            )
        )
        self._rejection_log.warn(
            code, "rejected message on %s: %s: %s", message.topic[:200], code, detail
        )

    # -- the writer thread

    def _run(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        batch = _Batch()
        deadline: float | None = None
        stop_seen = False
        while not stop_seen:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                stop_seen = True
            elif isinstance(item, Message):
                outcome = self.process(item)
                batch.add(item, outcome)
                for code in outcome.codes:
                    self._metrics.rejected.labels(reason=code).inc()
                if deadline is None:
                    deadline = time.monotonic() + interval
            self._metrics.queue_depth.set(self._queue.qsize())
            due = deadline is not None and time.monotonic() >= deadline
            if batch.messages and (stop_seen or due or batch.size >= self._settings.batch_size):
                self._flush(batch, final=stop_seen)
                batch = _Batch()
                deadline = None

    def _flush(self, batch: _Batch, *, final: bool) -> None:
        """Write a batch (retrying while the store is down), then ack its messages in order."""
        delay = 0.1
        while True:
            started = time.monotonic()
            try:
                self._store.write(batch.observations)
                if batch.rejections:
                    self._record_rejections(batch.rejections)
            except RetryableError as exc:
                self._metrics.write_failures.inc()
                if final or self._stopping.is_set():
                    log.warning(
                        "stopping with %d unacknowledged messages (store unavailable: %s); "
                        "the broker will redeliver them",
                        len(batch.messages),
                        exc,
                    )
                    return
                log.warning("store write failed, retrying in %.1fs: %s", delay, exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            break
        self._metrics.write_seconds.observe(time.monotonic() - started)
        self._metrics.batch_size.observe(len(batch.observations))
        self._metrics.readings_stored.inc(len(batch.observations))
        now = datetime.now(UTC)
        for message in batch.messages:
            message.ack()
            self._metrics.ack_lag_seconds.observe((now - message.received_at).total_seconds())


@dataclass(slots=True)
class _Batch:
    messages: list[Message] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.observations) + len(self.rejections)

    def add(self, message: Message, outcome: Outcome) -> None:
        self.messages.append(message)
        self.observations.extend(outcome.observations)
        self.rejections.extend(outcome.rejections)


class _RateLimitedLog:
    """Logs at most `burst` rejections per window, then one line with how many were muted."""

    def __init__(self, *, burst: int = 20, window: float = 10.0) -> None:
        self._burst = burst
        self._window = window
        self._window_start = time.monotonic()
        self._count = 0
        self._muted = 0

    def warn(self, code: str, fmt: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._window_start >= self._window:
            if self._muted:
                log.warning(
                    "%d more rejections in the last %.0fs not logged", self._muted, self._window
                )
            self._window_start, self._count, self._muted = now, 0, 0
        self._count += 1
        if self._count <= self._burst:
            log.warning(fmt, *args)
        else:
            self._muted += 1
