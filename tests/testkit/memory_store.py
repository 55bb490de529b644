"""An in-memory TimeSeriesStore for unit tests of the exports (streams are watched), and a
wrapper whose streams fail or stall on cue (exports through HTTP)."""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cityos.platform.domain.errors import RetryableError
from cityos.platform.domain.model import Observation, Sensor
from cityos.platform.observations.windows import window_floor
from cityos.platform.ports import STREAM_BLOCK_SIZE, ObservationBlock, WindowAggregate

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FUNCTIONS: dict[str, Callable[[list[float]], float]] = {
    "mean": lambda vs: math.fsum(vs) / len(vs),
    "sum": math.fsum,
    "count": lambda vs: float(len(vs)),
    "min": min,
    "max": max,
    "first": lambda vs: vs[0],
    "last": lambda vs: vs[-1],
}


def to_ns(moment: datetime) -> int:
    """Epoch nanoseconds of an aware datetime (microsecond precision)."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


class MemoryStore:
    """Observations in a dict; `stream_range` counts the streams open, started and closed."""

    name = "memory"

    def __init__(self, observations: Sequence[Observation] = ()) -> None:
        self.rows: dict[str, dict[datetime, Observation]] = {}
        self._times: dict[str, list[datetime]] = {}
        self.open_streams = 0
        self.closed_streams = 0
        self.aggregate_calls = 0
        self.down = False
        self.write(observations)

    def write(
        self, observations: Sequence[Observation], *, sensors: Mapping[str, Sensor] | None = None
    ) -> None:
        """Keep observations (the same sensor and time once)."""
        for o in observations:
            self.rows.setdefault(o.sensor_id, {})[o.time] = o
            self._times.pop(o.sensor_id, None)

    def _range(self, sensor_id: str, start: datetime, end: datetime) -> list[Observation]:
        self._check()
        rows = self.rows.get(sensor_id, {})
        times = self._times.get(sensor_id)
        if times is None:
            times = self._times[sensor_id] = sorted(rows)
        low, high = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
        return [rows[t] for t in times[low:high]]

    def _check(self) -> None:
        if self.down:
            raise RetryableError("memory store is down", service="memory")

    def query_range(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        after: datetime | None = None,
    ) -> list[Observation]:
        """Raw observations in [start, end) after `after`, oldest first."""
        rows = self._range(sensor_id, start, end)
        return [o for o in rows if after is None or o.time > after][:limit]

    def count_range(self, *, sensor_id: str, start: datetime, end: datetime) -> int:
        """How many observations are in [start, end)."""
        return len(self._range(sensor_id, start, end))

    def stream_range(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        block_size: int = STREAM_BLOCK_SIZE,
    ) -> Generator[ObservationBlock, None, None]:
        """Blocks of at most `block_size`, as lists; watched while open."""
        rows = self._range(sensor_id, start, end)
        return self._stream(sensor_id, rows, block_size)

    def _stream(
        self, sensor_id: str, rows: list[Observation], block_size: int
    ) -> Generator[ObservationBlock, None, None]:
        self.open_streams += 1
        try:
            for first in range(0, len(rows), block_size):
                part = rows[first : first + block_size]
                yield ObservationBlock(
                    sensor_id,
                    [to_ns(o.time) for o in part],
                    [o.value for o in part],
                    [o.quality.value for o in part],
                )
        finally:
            self.open_streams -= 1
            self.closed_streams += 1

    def latest(self, sensor_ids: Sequence[str]) -> dict[str, Observation]:
        """Newest observation per sensor."""
        found = {}
        for sensor_id in sensor_ids:
            rows = self.rows.get(sensor_id)
            if rows:
                found[sensor_id] = rows[max(rows)]
        return found

    def aggregate(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        every: timedelta,
        offset: timedelta,
        functions: frozenset[str],
    ) -> list[WindowAggregate]:
        """Fixed windows by the port's definition."""
        self.aggregate_calls += 1
        groups: dict[datetime, list[float]] = {}
        for o in self._range(sensor_id, start, end):
            groups.setdefault(window_floor(o.time, every=every, offset=offset), []).append(o.value)
        return [
            WindowAggregate(w, {f: _FUNCTIONS[f](vs) for f in functions})
            for w, vs in sorted(groups.items())
        ]

    def ping(self) -> None:
        """RetryableError while `down`."""
        self._check()

    def close(self) -> None:
        """Nothing to release."""


class ScriptedStore:
    """Another store, whose streams fail or stall on cue; everything else is passed through.

    Streams read `block_size` rows a block. With `fail_after = n`, each stream raises
    RetryableError instead of its block n+1. `hold(sensor_id)` makes that sensor's streams
    wait after their first block until the returned event is set (`waiting` names the
    sensors whose streams wait right now). Thread-safe.
    """

    def __init__(self, store: Any, *, block_size: int = 1000) -> None:
        self.store = store
        self.block_size = block_size
        self.fail_after: int | None = None
        self.waiting: set[str] = set()
        self.open_streams = 0
        self.closed_streams = 0
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def hold(self, sensor_id: str) -> threading.Event:
        """Stall `sensor_id`'s streams after their first block until the event is set."""
        gate = self._gates[sensor_id] = threading.Event()
        return gate

    def wait_until_waiting(self, *sensor_ids: str, seconds: float = 30) -> None:
        """Return once the streams of these sensors wait at their gates (AssertionError if not)."""
        deadline = time.monotonic() + seconds
        while not set(sensor_ids) <= self.waiting:
            assert time.monotonic() < deadline, f"only {self.waiting} are waiting"
            time.sleep(0.01)

    def stream_range(
        self, *, sensor_id: str, start: datetime, end: datetime, block_size: int = 0
    ) -> Generator[ObservationBlock, None, None]:
        """The store's stream in blocks of `self.block_size`, failing or stalling as set."""
        inner = self.store.stream_range(
            sensor_id=sensor_id, start=start, end=end, block_size=self.block_size
        )
        return self._scripted(sensor_id, inner)

    def _scripted(
        self, sensor_id: str, inner: Iterator[ObservationBlock]
    ) -> Generator[ObservationBlock, None, None]:
        with self._lock:
            self.open_streams += 1
        try:
            for number, block in enumerate(inner):
                if self.fail_after is not None and number >= self.fail_after:
                    raise RetryableError("the store went away mid-stream", service="scripted")
                if number == 1 and sensor_id in self._gates:
                    self._wait(sensor_id, self._gates[sensor_id])
                yield block
        finally:
            close = getattr(inner, "close", None)
            if callable(close):
                close()
            with self._lock:
                self.open_streams -= 1
                self.closed_streams += 1

    def _wait(self, sensor_id: str, gate: threading.Event) -> None:
        with self._lock:
            self.waiting.add(sensor_id)
        try:
            if not gate.wait(timeout=60):
                raise TimeoutError(f"the stream of {sensor_id} was held and never let go")
        finally:
            with self._lock:
                self.waiting.discard(sensor_id)
