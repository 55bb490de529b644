"""What the pipeline carries between processing and writing: outcomes, batches, helpers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from cityos.platform.domain.model import Observation, Rejection, Sensor
from cityos.platform.ports import Message

log = logging.getLogger("cityos.platform.ingest.pipeline")

EXCERPT_BYTES = 200


class Outcome:
    """What one message produced (a plain class: one is made per message)."""

    __slots__ = ("codes", "observations", "rejections", "sensors")

    def __init__(self) -> None:
        self.observations: list[Observation] = []
        self.rejections: list[Rejection] = []
        self.codes: list[str] = []
        self.sensors: dict[str, Sensor] = {}  # of the observations, by id


def clean_text(text: str) -> str:
    """Text safe for any database column (PostgreSQL refuses NUL characters)."""
    return text.replace("\x00", "\ufffd")


def excerpt_of(payload: bytes) -> str:
    return clean_text(payload[:EXCERPT_BYTES].decode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class Oversized:
    """A message refused for its size before queueing; only its head is kept in memory."""

    message: Message
    size: int


@dataclass(slots=True)
class Batch:
    """Messages waiting for one write, with what each produced."""

    items: list[tuple[Message, Outcome]] = field(default_factory=list)
    size: int = 0

    def add(self, message: Message, outcome: Outcome) -> None:
        """Add one processed message."""
        self.items.append((message, outcome))
        self.size += len(outcome.observations) + len(outcome.rejections)

    def clear(self) -> None:
        """Empty the batch after a write."""
        self.items.clear()
        self.size = 0


class RateLimitedLog:
    """Logs at most `burst` rejections per window, then one line with how many were muted."""

    def __init__(self, *, burst: int = 20, window: float = 10.0) -> None:
        self._burst = burst
        self._window = window
        self._window_start = time.monotonic()
        self._count = 0
        self._muted = 0

    def warn(self, code: str, fmt: str, *args: object) -> None:
        """Log one rejection unless this window's burst is used up."""
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
