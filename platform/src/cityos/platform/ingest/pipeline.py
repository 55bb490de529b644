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
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cityos.platform.config import IngestSettings
from cityos.platform.domain.errors import PayloadError, RejectedPoints, RetryableError
from cityos.platform.domain.model import Observation, Rejection, Sensor
from cityos.platform.ingest.directory import DeviceDirectory
from cityos.platform.ingest.outcome import (
    EXCERPT_BYTES,
    Batch,
    Outcome,
    Oversized,
    RateLimitedLog,
    clean_text,
    excerpt_of,
)
from cityos.platform.ingest.topics import TTN_FORMAT, device_of_topic, device_of_ttn_topic
from cityos.platform.ingest.validation import ReadingRejected, accept_readings, validate_reading
from cityos.platform.metrics import Metrics
from cityos.platform.ports import DecodeContext, Message, PayloadDecoder, TimeSeriesStore

log = logging.getLogger(__name__)

_STOP = object()
GATHER_SECONDS = 0.005  # while a batch is open, look for new messages this often
QUEUE_BUDGET_BYTES = 256 * 1024 * 1024


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
        queue_budget_bytes: int = QUEUE_BUDGET_BYTES,
    ) -> None:
        self._directory = directory
        self._decoders = decoders
        self._store = store
        self._record_rejections = record_rejections
        self._settings = settings
        self._metrics = metrics
        self._max_future = timedelta(seconds=settings.max_future_seconds)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._budget = queue_budget_bytes
        self._pending_bytes = 0
        self._room = threading.Condition()
        self._waiting = False  # a submit() waits for room: notify it
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._rejection_log = RateLimitedLog()

    # -- intake (called on the message source's thread)

    def submit(self, message: Message) -> None:
        """Queue one message; blocks while the queued payloads exceed the memory budget."""
        size = len(message.payload)
        if size > self._settings.max_payload_bytes:
            head = replace(message, payload=message.payload[:EXCERPT_BYTES])
            self._queue.put(Oversized(head, size))
            return
        with self._room:
            while (
                self._pending_bytes
                and self._pending_bytes + size > self._budget
                and not self._stopping.is_set()
            ):
                self._waiting = True
                self._room.wait(0.5)
            self._pending_bytes += size
        self._queue.put(message)

    # -- lifecycle

    @property
    def healthy(self) -> bool:
        """False once the writer thread has died; the process should then exit and restart."""
        return self._failure is None and self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the writer thread."""
        self._stopping.clear()
        self._failure = None
        self._thread = threading.Thread(target=self._run, name="cityos-ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, write it, ack it, and stop the writer thread."""
        if self._thread is None:
            return
        self._stopping.set()
        with self._room:
            self._room.notify_all()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    # -- processing

    def process(self, message: Message) -> Outcome:
        """Decode and validate one message; RetryableError means: try this message again."""
        outcome = Outcome()
        try:
            self._process_into(message, outcome)
        except RetryableError:
            raise  # e.g. the catalog is briefly unreachable: never dead-letter valid data
        except Exception as exc:  # a decoder bug must not stop ingestion
            log.exception("internal error while processing a message on %s", message.topic[:200])
            outcome = Outcome()
            self._reject(outcome, message, "internal_error", f"internal error: {exc!r}")
        return outcome

    def _process_into(self, message: Message, outcome: Outcome) -> None:
        payload = message.payload
        device_id = device_of_topic(message.topic)
        via_tts = False
        if device_id is None:
            device_id = device_of_ttn_topic(message.topic)  # the TTN integration's uplinks
            via_tts = device_id is not None
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
        if via_tts and entry.device.payload_format != TTN_FORMAT:
            self._reject(
                outcome,
                message,
                "format_mismatch",
                f"device {device_id!r} has format {entry.device.payload_format!r}; "
                f"uplinks from The Things Stack need {TTN_FORMAT!r}",
                device_id,
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
        context = DecodeContext(entry.device, entry.sensors, message.topic, message.received_at)
        try:
            decoded = decoder.decode(payload, context)
        except PayloadError as exc:
            self._reject(outcome, message, "bad_payload", exc.reason, device_id)
            return
        location = decoded.location
        if location is not None and location != entry.device.location:
            if -90 <= location.lat <= 90 and -180 <= location.lon <= 180:
                entry = self._directory.move(entry, location)  # RetryableError: retried
            else:
                self._reject(
                    outcome, message, "bad_location", f"location {location} out of range", device_id
                )
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
        refused = accept_readings(
            decoded.readings,
            sensors=entry.sensors,
            received_at=message.received_at,
            max_future=self._max_future,
            into=outcome.observations,
            used=outcome.sensors,
        )
        for reading in refused:
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
            else:  # pragma: no cover - accept_readings refuses only what this refuses
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
                reason=clean_text(f"{code}: {detail}"[:1000]),
                topic=clean_text(message.topic[:512]),
                excerpt=clean_text(excerpt) if excerpt is not None else excerpt_of(message.payload),
                device_id=device_id,
                quantity=None if quantity is None else clean_text(quantity[:200]),
            )
        )
        self._rejection_log.warn(
            code, "rejected message on %s: %s: %s", message.topic[:200], code, detail
        )

    # -- the writer thread

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # never silently: the worker must notice and exit
            self._failure = exc
            log.critical("ingest writer thread died; no more messages are stored", exc_info=exc)

    def _loop(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        batch = Batch()
        deadline: float | None = None
        received = 0
        while True:
            if deadline is None:
                item = self._queue.get()  # idle: the first message of a batch wakes us
            else:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left > 0:
                        # Let messages gather for a moment instead of being woken by each one:
                        # every wake-up costs this thread and the source's a GIL hand-over
                        # (measured: -10 to -20% CPU per message on the MQTT thread).
                        self._stopping.wait(min(left, GATHER_SECONDS))
                        continue
                    item = None
            if item is _STOP:
                self._metrics.messages_received.inc(received)
                if batch.items:
                    self._flush(batch)
                return
            if item is not None:
                received += 1
                outcome = self._take(item, batch)
                if outcome is None:  # stopping while a dependency is down: leave it unacked
                    self._metrics.messages_received.inc(received)
                    return
                message = item.message if isinstance(item, Oversized) else item
                assert isinstance(message, Message)
                batch.add(message, outcome)
                for code in outcome.codes:
                    self._metrics.rejected.labels(reason=code).inc()
                if deadline is None:
                    deadline = time.monotonic() + interval
            if batch.items and (
                batch.size >= self._settings.batch_size
                or (deadline is not None and time.monotonic() >= deadline)
            ):
                self._metrics.messages_received.inc(received)
                received = 0
                if not self._flush(batch):
                    return
                batch = Batch()
                deadline = None

    def _take(self, item: object, batch: Batch) -> Outcome | None:
        """Process one queued item, retrying while a dependency is down (None: stopping)."""
        if isinstance(item, Oversized):
            outcome = Outcome()
            self._reject(
                outcome,
                item.message,
                "payload_too_large",
                f"payload of {item.size} bytes exceeds the limit of "
                f"{self._settings.max_payload_bytes}",
            )
            return outcome
        assert isinstance(item, Message)
        with self._room:
            self._pending_bytes -= len(item.payload)
            if self._waiting:
                self._waiting = False
                self._room.notify_all()
        delay = 0.1
        while True:
            try:
                return self.process(item)
            except RetryableError as exc:
                if batch.items:  # do not hold earlier messages hostage to this one
                    if not self._flush(batch):
                        return None
                    batch.clear()
                if self._stopping.is_set():
                    log.warning("stopping before a message could be processed (%s)", exc)
                    return None
                log.warning("catalog unavailable, retrying in %.1fs: %s", delay, exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def _flush(self, batch: Batch) -> bool:
        """Write a batch, then ack its messages in order; False if stopped before writing."""
        started = time.monotonic()
        try:
            if not self._write(batch.items):
                return False
        except Exception:  # the store refused something for good: find it, keep the rest
            log.exception("batch of %d messages refused; writing them one by one", len(batch.items))
            for item in batch.items:
                if not self._write_one(item):
                    return False
        self._metrics.write_seconds.observe(time.monotonic() - started)
        observations = sum(len(outcome.observations) for _, outcome in batch.items)
        self._metrics.batch_size.observe(observations)
        self._metrics.readings_stored.inc(observations)
        now = datetime.now(UTC)
        for message, _ in batch.items:
            message.ack()
            self._metrics.ack_lag_seconds.observe((now - message.received_at).total_seconds())
        return True

    def _write(self, items: Sequence[tuple[Message, Outcome]]) -> bool:
        """Write observations, then dead letters (refused points included); False if stopped."""
        observations: list[Observation] = []
        sensors: dict[str, Sensor] = {}
        rejections: list[Rejection] = []
        for _, outcome in items:
            observations += outcome.observations
            sensors.update(outcome.sensors)
            if outcome.rejections:
                rejections += outcome.rejections
        try:
            if not self._retrying(lambda: self._store.write(observations, sensors=sensors)):
                return False
        except RejectedPoints as exc:  # the rest is stored; dead-letter exactly these points
            owners = [message for message, outcome in items for _ in outcome.observations]
            refused = Outcome()
            for index, reason in sorted(exc.rejected.items()):
                point = observations[index]
                self._reject(
                    refused,
                    owners[index],
                    "store_refused",
                    f"{point.sensor_id} at {point.time.isoformat()}: {reason}",
                    device_id=point.sensor_id.partition(".")[0],
                    quantity=point.sensor_id.partition(".")[2],
                )
            self._metrics.rejected.labels(reason="store_refused").inc(len(exc.rejected))
            rejections += refused.rejections
        return not rejections or self._retrying(lambda: self._record_rejections(rejections))

    def _write_one(self, item: tuple[Message, Outcome]) -> bool:
        """Write one message's results; dead-letter it if the store refuses it for good."""
        message, outcome = item
        try:
            return self._write([item])
        except Exception as exc:
            refused = Outcome()
            self._reject(refused, message, "store_refused", f"the store refused it: {exc!r}")
            self._metrics.rejected.labels(reason="store_refused").inc()
            outcome.observations.clear()
            try:
                return self._retrying(lambda: self._record_rejections(refused.rejections))
            except Exception:
                log.exception(
                    "could not even dead-letter a message on %s; dropping it: %r",
                    message.topic[:200],
                    message.payload[:EXCERPT_BYTES],
                )
                return True

    def _retrying(self, write: Callable[[], None]) -> bool:
        """Run a write, retrying with backoff while the store is down; False if stopped first."""
        delay = 0.1
        while True:
            try:
                write()
                return True
            except RetryableError as exc:
                self._metrics.write_failures.inc()
                if self._stopping.is_set():
                    log.warning(
                        "stopping with unacknowledged messages (store unavailable: %s); "
                        "the broker will redeliver them",
                        exc,
                    )
                    return False
                log.warning("store write failed, retrying in %.1fs: %s", delay, exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
