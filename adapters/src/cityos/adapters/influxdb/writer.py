"""Pipelined writes: the caller formats chunk k+1 while one sender thread posts chunk k.

The last request of a write is posted by the caller itself when the sender is idle (the usual
one-request write): no thread switch then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from cityos.adapters.influxdb.http import (
    SERVICE,
    InfluxHttp,
    InfluxQueryError,
    excerpt,
    server_error,
)
from cityos.adapters.influxdb.influxql import quote_ident
from cityos.adapters.influxdb.latest_index import Claim, LatestIndex, seed_statement, tombstone
from cityos.adapters.influxdb.lineprotocol import LineWriter, to_ns
from cityos.platform.domain.errors import ConfigError, RejectedPoints, RetryableError
from cityos.platform.domain.model import Observation, Sensor

log = logging.getLogger(__name__)

# A first request as large as the others: each request costs InfluxDB 1.x an fsync, so a batch
# of up to 5,000 points goes in one request, as a raw client would send it (in a side-by-side
# experiment on the 2-core machine: 0.73-0.76x of raw /write, against 0.62-0.68x with a
# 2,000-line first request; raw /write itself measured ~5.5 ms a request + ~3.5 us a point, so
# splitting a batch to overlap its formatting, ~0.5 us a point, never pays). Writes above
# WRITE_CHUNK_LINES still overlap formatting and sending.
FIRST_CHUNK_LINES = 5_000
WRITE_CHUNK_LINES = 5_000  # each request costs InfluxDB an fsync: few, large ones
WRITE_CHUNK_BYTES = 4_000_000  # well under 1.x's default [http] max-body-size of 25 MB
CHUNK_SLACK = 500  # lines a chunk may take on rather than leave them a request of their own


class _Call:
    """State shared by the chunks of one write() call."""

    def __init__(self) -> None:
        self.failed = False  # a chunk raised: later chunks are not sent
        self.indexed = False  # the index rows were written
        self.rejected = False  # a chunk had refused points: the index is written afterwards


def _chunks(count: int) -> Iterator[tuple[int, int]]:
    """[first, last) of each chunk (the first may differ in size from the others).

    A rest of under CHUNK_SLACK joins the chunk before it: an ingest batch flushed at 5,000
    readings often holds a few more (one message brings several), and a request of its own
    would cost them a whole fsync.
    """
    first = 0
    size = FIRST_CHUNK_LINES
    while first < count:
        last = count if count - first < size + CHUNK_SLACK else first + size
        yield first, last
        first, size = last, WRITE_CHUNK_LINES


def _succeeded(future: Future[bool]) -> bool:
    """Whether a job returned True (waits for it)."""
    try:
        return future.result()
    except BaseException:
        return False


Piece = tuple[list[str], int, bytes, list[str]]  # lines, index of the first, body, index rows


def _pieces(lines: list[str], first: int, extra: list[str]) -> Iterator[Piece]:
    """Requests of at most WRITE_CHUNK_BYTES of lines; the body of the last ends with `extra`."""
    body = "\n".join([*lines, *extra] if extra else lines).encode()  # one copy of the body
    rows = len("\n".join(extra).encode()) + 1 if extra else 0  # the index rows ride along
    if len(body) - rows <= WRITE_CHUNK_BYTES or len(lines) == 1:
        yield lines, first, body, extra
        return
    start, size = 0, 0
    for end, line in enumerate(lines):
        size += len(line.encode()) + 1
        if size > WRITE_CHUNK_BYTES and end > start:
            yield from _pieces(lines[start:end], first + start, [])
            start, size = end, len(line.encode()) + 1
    yield from _pieces(lines[start:], first + start, extra)


class PipelinedWriter:
    """Writes observations and their latest-index rows through one background sender."""

    def __init__(
        self,
        http: InfluxHttp,
        database: str,
        index: LatestIndex,
        newest_stored: Callable[[Iterable[str]], dict[str, Observation]] | None = None,
    ) -> None:
        self._http = http
        self._newest_stored = newest_stored
        self._database = database
        self._lines = LineWriter()
        self.index = index
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="influxdb-writer")
        self._queue = threading.Lock()  # guards _last
        self._last: Future[Any] | None = None  # the job submitted last (FIFO: all before it ran)
        self._closed = False

    def write(
        self, observations: Sequence[Observation], sensors: Mapping[str, Sensor] | None
    ) -> None:
        """Store every point, or raise the first error once every chunk is settled.

        Formatting validates: InvalidInput (naming the first bad point) before any point is
        sent, as the rest of a write of several chunks is checked before its first is sent.
        """
        index = self.index
        now_ns = to_ns(datetime.now(UTC))
        call = _Call()
        futures: list[Future[dict[int, str]]] = []
        newest: dict[str, tuple[int, int]] = {}
        claims: list[Claim] = []
        seed: Future[bool] | None = None
        try:
            if index.enabled and not index.seeded:  # first write: read the index, pipelined
                seed = self._submit(self._seed, call, len(observations))
            lines: list[str] = []
            previous = 0
            for first, last in _chunks(len(observations)):
                if lines:  # the previous chunk: sent while this one is formatted
                    for piece in _pieces(lines, previous, []):
                        futures.append(self._submit(self._send_chunk, call, *piece))
                lines = self._lines.format(observations[first:last], sensors, now_ns, newest, first)
                previous = first
                if first == 0:
                    for start, end in _chunks(len(observations) - last):
                        self._lines.check(observations[last + start : last + end], sensors)
            use_index = seed is None or _succeeded(seed)  # (the seed job takes the lock)
            with index.lock:  # claims and submission in one order: the FIFO sender keeps it
                if index.enabled and use_index:
                    claims = index.claim(newest)
                extra = index.lines(claims, observations, now_ns)
                # the index rows ride in the request of the last chunk: no extra fsync
                for piece in _pieces(lines, previous, extra):
                    futures.append(self._submit(self._send_chunk, call, *piece, inline=True))
        except BaseException:
            call.failed = True
            raise
        finally:
            rejected, error = self._settle([] if seed is None else [seed], futures)
            if claims and (error is not None or rejected or not call.indexed):
                index.release(claims)
        if error is not None:
            raise error
        if rejected:
            self._repair_index(observations, claims, now_ns)
            some = next(iter(rejected.values()))
            raise RejectedPoints(
                f"InfluxDB refused {len(rejected)} of {len(observations)} points "
                f"(e.g. {excerpt(some)}); the rest are stored",
                rejected=rejected,
            )

    def _submit(self, job: Callable[..., Any], *args: Any, inline: bool = False) -> Future[Any]:
        """Queue a job for the sender; `inline`: run it here if the sender is idle.

        Inline saves the two thread switches of a one-request write (each costs most under
        load); callers that need order hold `index.lock`, and the sender has run every job
        queued before, so the order of requests is the same either way.
        """
        with self._queue:
            if self._closed:
                raise self._closed_error()
            here = inline and (self._last is None or self._last.done())
            try:
                future: Future[Any] = Future() if here else self._sender.submit(job, *args)
            except RuntimeError as exc:  # the interpreter shuts down
                raise self._closed_error() from exc
            self._last = future
        if here:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(job(*args))
            except BaseException as exc:
                future.set_exception(exc)
        return future

    def _closed_error(self) -> RetryableError:
        return RetryableError(f"the InfluxDB store for {self._http.url} is closed", service=SERVICE)

    def _settle(
        self, seed: list[Future[bool]], futures: list[Future[dict[int, str]]]
    ) -> tuple[dict[int, str], Any]:
        """Wait for every job: (refused index -> reason, first error or None)."""
        rejected: dict[int, str] = {}
        error: BaseException | None = None
        jobs: list[Future[Any]] = [*seed, *futures]
        for future in jobs:
            try:
                result = future.result()
                if isinstance(result, dict):
                    rejected.update(result)
            except CancelledError:
                error = error or RetryableError(
                    f"the InfluxDB store for {self._http.url} was closed while writing",
                    service=SERVICE,
                )
            except BaseException as exc:
                error = error or exc
        return rejected, error

    def _send_chunk(
        self, call: _Call, lines: list[str], first: int, body: bytes, extra: list[str]
    ) -> dict[int, str]:
        """POST one chunk; its body ends with index rows `extra` (dropped after a refusal)."""
        if call.failed:
            return {}  # an earlier chunk failed: the call raises that error
        if extra and call.rejected:  # the index rows wait for the repair after the write
            body, extra = "\n".join(lines).encode(), []
        elif extra:
            lines = [*lines, *extra]
        try:
            rejected = self._send(lines, first, body)
        except BaseException:
            call.failed = True
            raise
        end = first + len(lines) - len(extra)
        refused_rows = [reason for position, reason in rejected.items() if position >= end]
        if refused_rows:  # e.g. a field type conflict someone caused in `latest`: stop using it
            self.index.enabled = False
            log.warning(
                "InfluxDB refused latest-index rows (%s); latest() reads every series now",
                excerpt(refused_rows[0]),
            )
            rejected = {position: why for position, why in rejected.items() if position < end}
        call.indexed = bool(extra) and not refused_rows
        call.rejected = call.rejected or bool(rejected)
        return rejected

    def _repair_index(
        self, observations: Sequence[Observation], claims: Sequence[Claim], now_ns: int
    ) -> None:
        """After refusals: index rows of the call's sensors from what the store holds."""
        index = self.index
        if not index.enabled or self._newest_stored is None:
            return
        sensor_ids = {obs.sensor_id for obs in observations}
        stored = self._newest_stored(sensor_ids)
        derived = list(stored.values())
        newest = {obs.sensor_id: (to_ns(obs.time), n) for n, obs in enumerate(derived)}
        with index.lock:
            repairs = index.claim(newest)
            lines = index.lines(repairs, derived, now_ns)
            # a row that may name a refused point of a sensor without stored data: unmatch it
            lines += [tombstone(sid) for sid, *_ in claims if sid not in stored]
            future = (
                self._submit(self._send, lines, 0, "\n".join(lines).encode()) if lines else None
            )
        if future is not None:
            try:
                future.result()
            except BaseException:
                index.release(repairs)
                raise

    def _seed(self, call: _Call, count: int) -> bool:
        """Read what the index holds, so this store never moves a sensor's row back in time."""
        context = f"reading the latest index before writing {count} points"
        try:
            (result,) = self._http.query(seed_statement(), db=self._database, context=context)
        except InfluxQueryError:  # e.g. no database: the write itself says what is wrong
            return False
        except BaseException:
            call.failed = True
            raise
        rows = []
        for series in result.get("series") or []:
            columns = series.get("columns") or []
            for row in series.get("values") or []:
                record = dict(zip(columns, row, strict=True))
                if isinstance(record.get("sensor"), str) and record.get("observed_ns") is not None:
                    rows.append((record["sensor"], int(record["observed_ns"])))
        self.index.seed(rows)
        return True

    def _send(self, lines: list[str], first_index: int, body: bytes) -> dict[int, str]:
        """POST lines; on HTTP 400 bisect to find every refused line (index -> reason)."""
        response = self._http.request(
            "POST",
            "/write",
            params={"db": self._database, "precision": "ns"},
            content=body,
            context=f"writing {len(lines)} points to database {self._database!r}",
        )
        status = response.status_code
        if status in (200, 204):
            return {}
        reason = server_error(response)
        if status in (400, 413):
            # 1.x names only the first bad point (and `dropped=N`), so split until each
            # refused point stands alone; rewriting the good ones is harmless (idempotent).
            if len(lines) == 1:
                return {first_index: reason}
            middle = len(lines) // 2
            head, tail = lines[:middle], lines[middle:]
            rejected = self._send(head, first_index, "\n".join(head).encode())
            rejected.update(self._send(tail, first_index + middle, "\n".join(tail).encode()))
            return rejected
        if status == 404:
            raise ConfigError(
                f"InfluxDB at {self._http.url} has no database {self._database!r} ({reason}); "
                + create_help(self._database)
            )
        raise ConfigError(
            f"InfluxDB at {self._http.url} answered a write with HTTP {status} "
            f"({excerpt(reason)}); "
            "is CITYOS__TIMESERIES__URL the v1-compatible API of InfluxDB?"
        )

    def close(self) -> None:
        """Stop the sender (queued chunks fail as retryable; idempotent)."""
        with self._queue:
            self._closed = True
        self._sender.shutdown(wait=False, cancel_futures=True)


def create_help(database: str) -> str:
    """How to create the database on InfluxDB 1.x, 2.x and 3.x."""
    return (
        f"create it: InfluxDB 1.x `CREATE DATABASE {quote_ident(database)}` (and GRANT ALL ON it "
        f"to the configured user); 2.x a bucket plus a DBRP mapping (`influx bucket create "
        f"--name {database}` then `influx v1 dbrp create --db {database} --rp autogen "
        f"--bucket-id <bucket id> --default`); 3.x `influxdb3 create database {database}`"
    )
