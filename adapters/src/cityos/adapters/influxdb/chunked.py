"""Chunked InfluxQL reads: one statement's rows streamed as column blocks, memory flat.

With `chunked=true&chunk_size=N` InfluxDB 1.x sends one JSON object per line, each holding
at most N rows of one series, and marks every result but the last `partial`. Lines are parsed
one at a time as they arrive and turned into columns by slicing, so neither the whole answer
nor an object per row is ever held.

Parsing `"values":[[t,v,"q"],[t,v,"q"],...]` as JSON makes a list per row, and a list is an
object the cyclic garbage collector tracks: in a server process with a large heap (the API's
modules) its collections then cost 5-10x the parsing (measured: 2.7 us a row against 0.25).
So a chunk of one series is read as its envelope (the line with the values cut out) plus its
rows flattened into one list (`],[` -> `,`), which holds only numbers and strings. A `],[`
inside a string (a quality) changes the row count, and anything unexpected fails a check;
then the line is parsed whole instead.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from cityos.adapters.influxdb.http import InfluxHttp, InfluxQueryError, excerpt
from cityos.platform.domain.model import Quality
from cityos.platform.ports import ObservationBlock

_KNOWN_QUALITIES = frozenset(quality.value for quality in Quality)
_UNKNOWN_QUALITY = Quality.SUSPECT.value  # what query_range makes of an unknown quality
_VALUES = b'"values":['
_ROW_BREAK = b"],["


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows of one series: `columns`, and the rows' cells one after another (row-major)."""

    columns: list[str]
    cells: list[Any]

    @property
    def rows(self) -> int:
        """Number of rows."""
        return len(self.cells) // len(self.columns)

    def column(self, name: str, first: int, stop: int) -> list[Any]:
        """The cells of one column in rows [first, stop)."""
        width = len(self.columns)
        return self.cells[self.columns.index(name) + first * width : stop * width : width]


def _flat_parse(line: bytes) -> tuple[Any, list[Any]] | None:
    """(the answer with its one series' values emptied, the values' cells), else None."""
    start = line.find(_VALUES)
    end = line.rfind(b"]]") + 2
    if start < 0 or end < start or line.find(_VALUES, start + 1) >= 0:
        return None
    start += len(_VALUES) - 1  # at the values' "["
    rows = line[start + 1 : end - 1]  # "[t,v,q],[t,v,q],...,[t,v,q]"
    try:
        body = json.loads(line[:start] + b"[]" + line[end:])
        cells = json.loads(rows.replace(_ROW_BREAK, b","))
        results = body["results"]
        (series,) = results[0]["series"]
        width = len(series["columns"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    expected = (rows.count(_ROW_BREAK) + 1) * width
    if len(results) != 1 or series.get("values") != [] or len(cells) != expected:
        return None
    return body, cells


def _chunks_of(line: bytes) -> tuple[Any, list[Chunk]]:
    """The parsed answer of one line and the non-empty chunks it holds."""
    flat = _flat_parse(line)
    if flat is not None:
        body, cells = flat
        series = body["results"][0]["series"][0]
        return body, [Chunk(list(series["columns"]), cells)]
    body = json.loads(line)
    chunks = []
    for result in (body.get("results") or []) if isinstance(body, dict) else []:
        for series in result.get("series") or ():
            columns, rows = series.get("columns") or [], series.get("values") or []
            if not rows:
                continue
            if not columns or any(len(row) != len(columns) for row in rows):
                raise ValueError(f"rows do not match the columns {columns}")
            chunks.append(Chunk(list(columns), list(itertools.chain.from_iterable(rows))))
    return body, chunks


def stream_chunks(
    http: InfluxHttp, statement: str, *, db: str, chunk_size: int, context: str
) -> Generator[Chunk, None, None]:
    """Each non-empty chunk of one statement's answer, as it arrives.

    Errors are classified as for `InfluxHttp.query`, also mid-stream; an answer that ends
    while InfluxDB still announced more (`partial`) raises InfluxQueryError. Closing the
    generator closes the response, which makes InfluxDB stop the query.
    """
    params = {"db": db, "epoch": "ns", "chunked": "true", "chunk_size": str(int(chunk_size))}
    lines = http.stream_lines("/query", params=params, data={"q": statement}, context=context)
    more_to_come = False
    try:
        for line in lines:
            try:
                body, chunks = _chunks_of(line)
            except ValueError as exc:
                text = line.decode(errors="replace")
                raise InfluxQueryError(
                    f"InfluxDB at {http.url} sent a chunk that is not the JSON expected while "
                    f"{context} ({exc}): {excerpt(text)}",
                    statement=excerpt(statement),
                    server_error=text,
                ) from exc
            for result in http.results_of(body, status=200, statement=statement, context=context):
                more_to_come = bool(result.get("partial"))
            yield from chunks
        if more_to_come:
            raise http.partial_result(statement, context=context)
    finally:
        lines.close()


def _floats(values: Sequence[Any]) -> Sequence[float]:
    """The values as floats (Go writes a whole float like 7.0 as the JSON integer 7)."""
    return list(map(float, values))


def _qualities(qualities: list[Any]) -> Sequence[str]:
    """The stored quality strings; anything unknown reads as suspect, as in query_range."""
    if _KNOWN_QUALITIES.issuperset(qualities):
        return qualities
    return [q if q in _KNOWN_QUALITIES else _UNKNOWN_QUALITY for q in qualities]


def _with_values(
    times: list[Any], values: list[Any], qualities: list[Any]
) -> tuple[list[Any], list[Any], list[Any]]:
    """The rows that have a value: a query running during a write can see a point of it whose
    value is still null, which is read as not written yet (as `query_range` does)."""
    keep = [i for i, value in enumerate(values) if value is not None]
    return [times[i] for i in keep], [values[i] for i in keep], [qualities[i] for i in keep]


def observation_blocks(
    chunks: Generator[Chunk, None, None], *, sensor_id: str, block_size: int
) -> Generator[ObservationBlock, None, None]:
    """Blocks of at most `block_size` observations from chunks of `SELECT "value", "quality"`
    (epoch ns); closing it closes `chunks`."""
    try:
        for chunk in chunks:
            rows = chunk.rows
            for first in range(0, rows, block_size):
                stop = min(rows, first + block_size)
                times = chunk.column("time", first, stop)
                values = chunk.column("value", first, stop)
                qualities = chunk.column("quality", first, stop)
                if None in values:
                    times, values, qualities = _with_values(times, values, qualities)
                    if not times:
                        continue
                yield ObservationBlock(
                    sensor_id=sensor_id,
                    times_ns=times,
                    values=_floats(values),
                    qualities=_qualities(qualities),
                )
    finally:
        chunks.close()
