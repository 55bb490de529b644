"""The InfluxDB TimeSeriesStore on the v1-compatible HTTP API (docs/timeseries-schema.md)."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from contextlib import closing
from datetime import datetime, timedelta
from typing import Any

from cityos.adapters.influxdb.chunked import observation_blocks, stream_chunks
from cityos.adapters.influxdb.http import (
    InfluxHttp,
    InfluxQueryError,
    excerpt,
    redact,
)
from cityos.adapters.influxdb.influxql import (
    duration,
    quote_ident,
    quote_string,
    regex_any_of,
    time_literal,
    timedelta_ns,
)
from cityos.adapters.influxdb.latest_index import (
    LatestIndex,
    from_ns,
    index_rows,
    read_statements,
)
from cityos.adapters.influxdb.lineprotocol import (
    MAX_NS,
    MEASUREMENT,
    MIN_NS,
    SENSOR_TAG,
    encode_tag_value,
    to_ns,
)
from cityos.adapters.influxdb.writer import PipelinedWriter, create_help
from cityos.platform.config import Settings
from cityos.platform.domain.errors import ConfigError, InvalidInput
from cityos.platform.domain.model import Observation, Quality, Sensor
from cityos.platform.ports import (
    AGGREGATE_FUNCTIONS,
    STREAM_BLOCK_SIZE,
    ObservationBlock,
    WindowAggregate,
)

LATEST_IDS_PER_STATEMENT = 1_000  # ids per regex; the statements share one request
_QUALITY_OF: dict[str, Quality] = {quality.value: quality for quality in Quality}
_FIELDS = '"value", "quality", "ingested_at"'
_STREAMED_FIELDS = '"value", "quality"'
_FROM = "FROM " + quote_ident(MEASUREMENT)


def _bound_ns(moment: datetime) -> int:
    """A query bound in epoch ns, clamped to InfluxDB's range (so datetime.min works)."""
    return min(max(to_ns(moment), MIN_NS), MAX_NS)


def _sensor_is(sensor_id: str) -> str:
    return f"{quote_ident(SENSOR_TAG)} = {quote_string(encode_tag_value(sensor_id))}"


def _rows(result: Mapping[str, Any]) -> Iterable[tuple[dict[str, str], list[str], list[Any]]]:
    """(tags, columns, row) of every row of one statement's result."""
    for series in result.get("series") or []:
        tags = series.get("tags") or {}
        columns = series.get("columns") or []
        for row in series.get("values") or []:
            yield tags, columns, row


def _observation(sensor_id: str, columns: list[str], row: list[Any]) -> Observation | None:
    """The row's observation; None while its value is not visible yet.

    InfluxDB 1.x can answer a query that runs during a write with a row of that write whose
    other fields are still null (measured: a few to 2,000 rows in 100,000 under 4 readers). A
    point without its value is read as not written yet; one without its quality as suspect
    (as a point of another writer without a quality is).
    """
    record = dict(zip(columns, row, strict=True))
    if record.get("value") is None:
        return None
    ingested = record.get("ingested_at")
    return Observation(
        sensor_id=sensor_id,
        time=from_ns(int(record["time"])),
        value=float(record["value"]),
        quality=_QUALITY_OF.get(str(record.get("quality")), Quality.SUSPECT),
        ingested_at=None if ingested is None else from_ns(int(ingested)),
    )


class InfluxDbTimeSeriesStore:
    """TimeSeriesStore on one InfluxDB database (measurement `observations`)."""

    name = "influxdb"

    def __init__(self, http: InfluxHttp, database: str) -> None:
        self._http = http
        self.database = database
        self._index = LatestIndex()
        self._writer = PipelinedWriter(http, database, self._index, self._newest_stored)

    # ------------------------------------------------------------ writes

    def write(
        self,
        observations: Sequence[Observation],
        *,
        sensors: Mapping[str, Sensor] | None = None,
    ) -> None:
        """Write in pipelined chunks plus latest-index rows; refusals raise RejectedPoints."""
        if observations:
            self._writer.write(observations, sensors)

    # ------------------------------------------------------------ reads

    def _query(self, statement: str, context: str) -> list[dict[str, Any]]:
        return self._http.query(statement, db=self.database, context=context)

    def query_range(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        limit: int,
        after: datetime | None = None,
    ) -> list[Observation]:
        """Raw observations with start <= time < end (and time > after), oldest first."""
        low, high = _bound_ns(start), _bound_ns(end)
        if after is not None:
            low = max(low, _bound_ns(after) + 1)
        if limit <= 0 or low >= high:
            return []
        statement = (
            f"SELECT {_FIELDS} {_FROM} WHERE {_sensor_is(sensor_id)} "
            f"AND time >= {time_literal(low)} AND time < {time_literal(high)} "
            f"ORDER BY time ASC LIMIT {int(limit)}"
        )
        # Chunked even for one page: InfluxDB 1.x marks a non-chunked series of more than
        # 10,000 rows "partial" although it is whole (and max-row-limit cuts only those).
        chunks = stream_chunks(
            self._http,
            statement,
            db=self.database,
            chunk_size=STREAM_BLOCK_SIZE,
            context=f"reading a range of {sensor_id!r}",
        )
        observations: list[Observation] = []
        with closing(chunks):
            for chunk in chunks:
                width = len(chunk.columns)
                for at in range(0, len(chunk.cells), width):
                    found = _observation(sensor_id, chunk.columns, chunk.cells[at : at + width])
                    if found is not None:
                        observations.append(found)
        return observations

    def count_range(self, *, sensor_id: str, start: datetime, end: datetime) -> int:
        """Number of observations with start <= time < end."""
        low, high = _bound_ns(start), _bound_ns(end)
        if low >= high:
            return 0
        statement = (
            f'SELECT count("value") {_FROM} WHERE {_sensor_is(sensor_id)} '
            f"AND time >= {time_literal(low)} AND time < {time_literal(high)}"
        )
        (result,) = self._query(statement, f"counting a range of {sensor_id!r}")
        return sum(int(row[columns.index("count")]) for _, columns, row in _rows(result))

    def stream_range(
        self,
        *,
        sensor_id: str,
        start: datetime,
        end: datetime,
        block_size: int = STREAM_BLOCK_SIZE,
    ) -> Generator[ObservationBlock, None, None]:
        """Observations with start <= time < end, oldest first, by a chunked query."""
        if block_size <= 0:
            raise InvalidInput(f"block size must be positive, got {block_size}", field="block_size")
        low, high = _bound_ns(start), _bound_ns(end)  # bad bounds fail now, not at next()
        return self._stream(sensor_id, low, high, block_size)

    def _stream(
        self, sensor_id: str, low: int, high: int, block_size: int
    ) -> Generator[ObservationBlock, None, None]:
        if low >= high:
            return
        statement = (
            f"SELECT {_STREAMED_FIELDS} {_FROM} WHERE {_sensor_is(sensor_id)} "
            f"AND time >= {time_literal(low)} AND time < {time_literal(high)} "
            "ORDER BY time ASC"
        )
        chunks = stream_chunks(
            self._http,
            statement,
            db=self.database,
            chunk_size=block_size,
            context=f"streaming a range of {sensor_id!r}",
        )
        yield from observation_blocks(chunks, sensor_id=sensor_id, block_size=block_size)

    def latest(self, sensor_ids: Sequence[str]) -> dict[str, Observation]:
        """The newest observation of each sensor: the latest index, else its series."""
        wanted = {encode_tag_value(sid): sid for sid in dict.fromkeys(sensor_ids) if sid}
        if not wanted:
            return {}
        found: dict[str, Observation] = {}
        if self._index.enabled:
            statements = read_statements(wanted.values())
            try:
                results = self._query(";".join(statements), "reading the latest index")
            except InfluxQueryError:  # a server that cannot read it: every series instead
                results = []
            found = index_rows(results, wanted)
        missing = {stored: sid for stored, sid in wanted.items() if sid not in found}
        if missing:  # not indexed: no data, written before the index or by other means
            found.update(self._latest_of_series(missing))
        return found

    def _newest_stored(self, sensor_ids: Iterable[str]) -> dict[str, Observation]:
        """The newest point of each sensor's series (ignoring the index)."""
        return self._latest_of_series({encode_tag_value(sid): sid for sid in sensor_ids})

    def _latest_of_series(self, wanted: Mapping[str, str]) -> dict[str, Observation]:
        """The newest point of each series (stored id -> id), one request."""
        stored = list(wanted)
        statements = []
        for first in range(0, len(stored), LATEST_IDS_PER_STATEMENT):
            match = regex_any_of(stored[first : first + LATEST_IDS_PER_STATEMENT])
            # A regex costs InfluxDB 1.x one index scan, where `"sensor" = 'a' OR ...` costs
            # quadratic time (measured: 1,000 ids 400 ms vs 95 ms). ORDER BY time DESC LIMIT 1
            # per group returns one whole point; mixed last() selectors may combine points.
            statements.append(
                f"SELECT {_FIELDS} {_FROM} WHERE {quote_ident(SENSOR_TAG)} =~ {match} "
                f"GROUP BY {quote_ident(SENSOR_TAG)} ORDER BY time DESC LIMIT 1"
            )
        results = self._query(";".join(statements), f"reading the latest of {len(wanted)} sensors")
        found: dict[str, Observation] = {}
        for result in results:
            for tags, columns, row in _rows(result):
                sensor_id = wanted.get(tags.get(SENSOR_TAG, ""))
                if sensor_id is None:
                    continue
                candidate = _observation(sensor_id, columns, row)
                if candidate is None:
                    continue
                if sensor_id not in found or found[sensor_id].time < candidate.time:
                    found[sensor_id] = candidate
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
        """Aggregates in windows `offset + k * every` after the epoch, non-empty ones only."""
        unknown = set(functions) - AGGREGATE_FUNCTIONS
        if unknown or not functions:
            raise InvalidInput(
                f"aggregate functions must be a non-empty subset of {sorted(AGGREGATE_FUNCTIONS)}"
                f", got {sorted(functions)}",
                field="aggregate",
            )
        every_ns = timedelta_ns(every)
        if every_ns <= 0:
            raise InvalidInput(f"window length {every} is not positive", field="every")
        low, high = _bound_ns(start), _bound_ns(end)
        if low >= high:
            return []
        names = sorted(functions)
        selected = ", ".join(f'{name}("value") AS {quote_ident(name)}' for name in names)
        offset_ns = timedelta_ns(offset) % every_ns  # InfluxQL wants 0 <= offset < every
        window = duration(every_ns) + (f", {duration(offset_ns)}" if offset_ns else "")
        statement = (
            f"SELECT {selected} {_FROM} WHERE {_sensor_is(sensor_id)} "
            f"AND time >= {time_literal(low)} AND time < {time_literal(high)} "
            f"GROUP BY time({window}) fill(none)"
        )
        (result,) = self._query(statement, f"aggregating {sensor_id!r}")
        windows: list[WindowAggregate] = []
        for _, columns, row in _rows(result):
            record = dict(zip(columns, row, strict=True))
            values = {name: float(record[name]) for name in names if record.get(name) is not None}
            if values:
                windows.append(WindowAggregate(start=from_ns(int(record["time"])), values=values))
        windows.sort(key=lambda window: window.start)
        return windows

    # ------------------------------------------------------------ lifecycle

    def ping(self) -> None:
        """Raise RetryableError unless InfluxDB answers /ping."""
        self._http.ping()

    def close(self) -> None:
        """Close the HTTP connection pool and the sender (idempotent)."""
        self._http.close()
        self._writer.close()


def ensure_database(http: InfluxHttp, database: str) -> None:
    """Make sure the database exists: use it, else create it, else a ConfigError saying how."""
    try:
        http.query(
            f"SHOW RETENTION POLICIES ON {quote_ident(database)}",
            db=None,
            context=f"looking for the database {database!r}",
        )
        return
    except (InfluxQueryError, ConfigError) as exc:
        missing = str(getattr(exc, "server_error", exc))
    try:
        http.query(
            f"CREATE DATABASE {quote_ident(database)}",
            db=None,
            context=f"creating the database {database!r}",
        )
    except (InfluxQueryError, ConfigError) as exc:
        refused = str(getattr(exc, "server_error", exc))
        raise ConfigError(
            f"InfluxDB at {http.url} has no database {database!r} that cityos can use "
            f"({excerpt(missing)}) and refused to create it ({excerpt(refused)}); "
            + create_help(database)
            + "; or set CITYOS__TIMESERIES__DATABASE / the credentials to ones that exist"
        ) from exc


def create_store(settings: Settings) -> InfluxDbTimeSeriesStore:
    """Connect to the configured InfluxDB, check it answers and that the database exists."""
    config = settings.timeseries
    if not config.url:
        raise ConfigError(
            "CITYOS__TIMESERIES__BACKEND=influxdb needs CITYOS__TIMESERIES__URL, "
            "e.g. http://localhost:8086 (the v1-compatible API of InfluxDB 1.x, 2.x or 3.x)"
        )
    if not config.url.startswith(("http://", "https://")):
        raise ConfigError(
            "CITYOS__TIMESERIES__URL must be an http:// or https:// URL, "
            f"got {redact(config.url)!r}"
        )
    if not config.database:
        raise ConfigError("CITYOS__TIMESERIES__DATABASE must name the InfluxDB database")
    http = InfluxHttp(
        config.url,
        token=config.token.get_secret_value() if config.token is not None else None,
        username=config.username,
        password=config.password.get_secret_value() if config.password is not None else None,
    )
    try:
        http.ping()
        ensure_database(http, config.database)
    except BaseException:
        http.close()
        raise
    return InfluxDbTimeSeriesStore(http, config.database)
