"""Chunked InfluxQL reads: one statement's rows streamed as column blocks, memory flat.

With `chunked=true&chunk_size=N` InfluxDB 1.x sends one JSON object per line, each holding
at most N rows of one series, and marks every result but the last `partial`. Lines are parsed
one at a time as they arrive and turned into columns with bulk operations (`zip(*rows)`), so
neither the whole answer nor an object per row is ever held.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from typing import Any

from cityos.adapters.influxdb.http import InfluxHttp, InfluxQueryError, excerpt
from cityos.platform.domain.model import Quality
from cityos.platform.ports import ObservationBlock

_KNOWN_QUALITIES = frozenset(quality.value for quality in Quality)
_UNKNOWN_QUALITY = Quality.SUSPECT.value  # what query_range makes of an unknown quality

Rows = list[list[Any]]


def stream_rows(
    http: InfluxHttp, statement: str, *, db: str, chunk_size: int, context: str
) -> Generator[tuple[list[str], Rows], None, None]:
    """(columns, rows) of each non-empty chunk of one statement's answer, as it arrives.

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
                body = json.loads(line)
            except ValueError as exc:
                text = line.decode(errors="replace")
                raise InfluxQueryError(
                    f"InfluxDB at {http.url} sent a chunk that is not JSON while {context}: "
                    f"{excerpt(text)}",
                    statement=excerpt(statement),
                    server_error=text,
                ) from exc
            for result in http.results_of(body, status=200, statement=statement, context=context):
                more_to_come = bool(result.get("partial"))
                for series in result.get("series") or ():
                    rows = series.get("values")
                    if rows:
                        yield series.get("columns") or [], rows
        if more_to_come:
            raise http.partial_result(statement, context=context)
    finally:
        lines.close()


def _floats(values: Sequence[Any]) -> Sequence[float]:
    """The values as floats (Go writes a whole float like 7.0 as the JSON integer 7)."""
    return list(map(float, values))


def _qualities(qualities: Sequence[Any]) -> Sequence[str]:
    """The stored quality strings; anything unknown reads as suspect, as in query_range."""
    if _KNOWN_QUALITIES.issuperset(qualities):
        return qualities
    return [q if q in _KNOWN_QUALITIES else _UNKNOWN_QUALITY for q in qualities]


def observation_blocks(
    chunks: Generator[tuple[list[str], Rows], None, None], *, sensor_id: str, block_size: int
) -> Generator[ObservationBlock, None, None]:
    """Blocks of at most `block_size` observations from `(columns, rows)` chunks of
    `SELECT "value", "quality"` (epoch ns); closing it closes `chunks`."""
    try:
        for columns, rows in chunks:
            at_time = columns.index("time")
            at_value = columns.index("value")
            at_quality = columns.index("quality")
            for first in range(0, len(rows), block_size):
                part = rows if len(rows) <= block_size else rows[first : first + block_size]
                columns_of_part = list(zip(*part, strict=True))
                yield ObservationBlock(
                    sensor_id=sensor_id,
                    times_ns=columns_of_part[at_time],
                    values=_floats(columns_of_part[at_value]),
                    qualities=_qualities(columns_of_part[at_quality]),
                )
    finally:
        chunks.close()
