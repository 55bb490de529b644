"""Chunked InfluxDB reads: answers a real influxd seldom gives (cut, failed, malformed,
refused) are classified like the non-streamed path's; blocks are split to block_size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityos.adapters.influxdb.chunked import _chunks_of
from cityos.adapters.influxdb.http import InfluxHttp, InfluxQueryError
from cityos.adapters.influxdb.store import InfluxDbTimeSeriesStore
from cityos.platform.domain.errors import ConfigError, RetryableError
from cityos.platform.ports import ObservationBlock

START = datetime(2024, 4, 1, tzinfo=UTC)
END = datetime(2024, 5, 1, tzinfo=UTC)
COLUMNS = ["time", "value", "quality"]
GO = (",", ":")  # InfluxDB (Go) writes compact JSON


def chunk(rows: list[list[object]], *, partial: bool) -> bytes:
    result: dict[str, object] = {
        "statement_id": 0,
        "series": [{"name": "observations", "columns": COLUMNS, "values": rows}],
    }
    if partial:
        result["partial"] = True
    return json.dumps({"results": [result]}, separators=GO).encode() + b"\n"


def rows_from(first: int, count: int) -> list[list[object]]:
    return [[first + i, first + i, "good"] for i in range(count)]


def store_answering(
    body: Iterator[bytes] | bytes, status: int = 200, seen: list[httpx.Request] | None = None
) -> InfluxDbTimeSeriesStore:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, content=body)

    http = InfluxHttp("http://influx.invalid:8086", transport=httpx.MockTransport(handler))
    return InfluxDbTimeSeriesStore(http, "db")


def read(store: InfluxDbTimeSeriesStore, block_size: int = 4) -> list[ObservationBlock]:
    return list(store.stream_range(sensor_id="d.q", start=START, end=END, block_size=block_size))


def test_the_request_is_a_chunked_post_without_gzip() -> None:
    seen: list[httpx.Request] = []
    read(store_answering(chunk(rows_from(0, 2), partial=False), seen=seen), block_size=7)
    (request,) = seen
    assert request.method == "POST"
    assert dict(request.url.params) == {
        "db": "db",
        "epoch": "ns",
        "chunked": "true",
        "chunk_size": "7",
    }
    assert request.headers["accept-encoding"] == "identity"
    statement = dict(httpx.QueryParams(request.content.decode()))["q"]
    assert statement == (
        'SELECT "value", "quality" FROM "observations" WHERE "sensor" = \'d.q\' '
        "AND time >= 1711929600000000000 AND time < 1714521600000000000 ORDER BY time ASC"
    )


def test_chunks_larger_than_block_size_are_split_and_lines_may_arrive_in_pieces() -> None:
    body = chunk(rows_from(0, 10), partial=True) + chunk(rows_from(10, 3), partial=False)
    pieces = iter([body[i : i + 17] for i in range(0, len(body), 17)])
    blocks = read(store_answering(pieces), block_size=4)
    assert [len(b.times_ns) for b in blocks] == [4, 4, 2, 3]
    assert [t for b in blocks for t in b.times_ns] == list(range(13))
    assert all(type(v) is float for b in blocks for v in b.values)


def test_unknown_qualities_read_as_suspect_like_query_range() -> None:
    body = chunk([[1, 1.0, "good"], [2, 2.0, "weird"], [3, 3.0, None]], partial=False)
    (block,) = read(store_answering(body))
    assert list(block.qualities) == ["good", "suspect", "suspect"]


def test_a_point_whose_value_is_not_visible_yet_is_not_read() -> None:
    # InfluxDB 1.x, read during a write, can show a point of it with its value still null
    body = chunk([[1, 1.0, "good"], [2, None, "good"], [3, 3.0, None]], partial=True)
    body += chunk([[4, None, None]], partial=True) + chunk([[5, 5.0, "bad"]], partial=False)
    blocks = read(store_answering(body))
    assert [t for b in blocks for t in b.times_ns] == [1, 3, 5]
    assert [v for b in blocks for v in b.values] == [1.0, 3.0, 5.0]
    assert [q for b in blocks for q in b.qualities] == ["good", "suspect", "bad"]
    assert all(len(b.times_ns) > 0 for b in blocks)


def test_query_range_skips_a_point_whose_value_is_not_visible_yet() -> None:
    columns = ["time", "value", "quality", "ingested_at"]
    rows = [[10**18, 1.0, "good", 10**18], [10**18 + 1, None, "good", None]]
    result = {"statement_id": 0, "series": [{"name": "o", "columns": columns, "values": rows}]}
    store = store_answering(json.dumps({"results": [result]}, separators=GO).encode() + b"\n")
    got = store.query_range(sensor_id="d.q", start=START.replace(year=2000), end=END, limit=10)
    assert [o.value for o in got] == [1.0]


def test_an_answer_that_ends_while_more_was_announced_is_a_query_error() -> None:
    body = chunk(rows_from(0, 4), partial=True)
    with pytest.raises(InfluxQueryError, match="partial result"):
        read(store_answering(body))


def test_a_statement_error_mid_stream_is_a_query_error() -> None:
    failed = json.dumps({"results": [{"statement_id": 0, "error": "query killed"}]})
    body = chunk(rows_from(0, 4), partial=True) + failed.encode() + b"\n"
    blocks = store_answering(body).stream_range(sensor_id="d.q", start=START, end=END, block_size=4)
    assert len(next(blocks).times_ns) == 4
    with pytest.raises(InfluxQueryError, match="query killed"):
        next(blocks)


def test_a_chunk_that_is_not_json_is_a_query_error() -> None:
    with pytest.raises(InfluxQueryError, match="not the JSON expected"):
        read(store_answering(b"<html>proxy error</html>\n"))


def test_a_refused_statement_is_a_query_error() -> None:
    with pytest.raises(InfluxQueryError, match="error parsing query"):
        read(store_answering(b'{"error":"error parsing query: found x"}', status=400))


def test_5xx_is_retryable_and_401_is_a_config_error() -> None:
    with pytest.raises(RetryableError, match="HTTP 503"):
        read(store_answering(b'{"error":"overloaded"}', status=503))
    with pytest.raises(ConfigError, match="refused the credentials"):
        read(store_answering(b'{"error":"authorization failed"}', status=401))


def test_a_connection_dropped_mid_stream_is_retryable() -> None:
    def body() -> Iterator[bytes]:
        yield chunk(rows_from(0, 4), partial=True)
        raise httpx.RemoteProtocolError("peer closed connection")

    blocks = store_answering(body()).stream_range(
        sensor_id="d.q", start=START, end=END, block_size=4
    )
    next(blocks)
    with pytest.raises(RetryableError, match="unreachable"):
        next(blocks)


def test_an_empty_range_sends_no_request() -> None:
    seen: list[httpx.Request] = []
    store = store_answering(b"", seen=seen)
    assert list(store.stream_range(sensor_id="d.q", start=END, end=START)) == []
    assert seen == []


@pytest.mark.parametrize("error", ["query engine shutdown", "query interrupted"])
def test_a_query_stopped_by_the_server_is_retryable_streamed_or_not(error: str) -> None:
    failed = json.dumps({"results": [{"statement_id": 0, "error": error}]}).encode() + b"\n"
    blocks = store_answering(chunk(rows_from(0, 4), partial=True) + failed).stream_range(
        sensor_id="d.q", start=START, end=END, block_size=4
    )
    next(blocks)
    with pytest.raises(RetryableError, match=error):
        next(blocks)
    with pytest.raises(RetryableError, match=error):
        store_answering(failed).count_range(sensor_id="d.q", start=START, end=END)


# ---------------------------------------------------------------- the flat parse


def whole_parse(line: bytes) -> list[tuple[list[str], list[object]]]:
    """(columns, cells row after row) of each series, from plain json.loads."""
    found = []
    for result in json.loads(line)["results"]:
        for series in result.get("series") or ():
            if series.get("values"):
                cells = [cell for row in series["values"] for cell in row]
                found.append((series["columns"], cells))
    return found


def flat_parse(line: bytes) -> list[tuple[list[str], list[object]]]:
    _, chunks = _chunks_of(line)
    return [(chunk.columns, chunk.cells) for chunk in chunks]


TRICKY = ["],[", "]]", "[[", '"values":[', '\\"],["', "],[],[", "good", "}]}", "\n"]
cells = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.sampled_from(TRICKY),
    st.text(alphabet=st.sampled_from('],["\\{}:valuesgod '), max_size=12),
    st.text(max_size=8),
)


@given(
    rows=st.lists(st.lists(cells, min_size=3, max_size=3), min_size=1, max_size=30),
    partial=st.booleans(),
    messages=st.lists(st.text(alphabet=st.sampled_from("],[ab"), max_size=6), max_size=2),
    compact=st.booleans(),
)
def test_the_flat_parse_equals_json_loads_whatever_the_cells(
    rows: list[list[object]], partial: bool, messages: list[str], compact: bool
) -> None:
    result: dict[str, object] = {
        "statement_id": 0,
        "series": [{"name": "observations", "columns": COLUMNS, "values": rows}],
    }
    if partial:
        result["partial"] = True
    if messages:
        result["messages"] = [{"level": "warning", "text": text} for text in messages]
    line = json.dumps({"results": [result]}, separators=GO if compact else None).encode()
    assert flat_parse(line) == whole_parse(line)


def test_the_flat_parse_is_taken_for_influxdb_chunks_and_left_for_others() -> None:
    from cityos.adapters.influxdb.chunked import _flat_parse

    assert _flat_parse(chunk(rows_from(0, 3), partial=True).strip()) is not None
    odd = [[1, 1.0, "a],[b"], [2, 2.0, "good"]]  # a row break inside a string
    assert _flat_parse(chunk(odd, partial=False).strip()) is None
    assert flat_parse(chunk(odd, partial=False)) == [(COLUMNS, [1, 1.0, "a],[b", 2, 2.0, "good"])]
    two = json.dumps(
        {
            "results": [
                {
                    "statement_id": 0,
                    "series": [
                        {"name": "a", "columns": COLUMNS, "values": [[1, 1, "good"]]},
                        {"name": "b", "columns": COLUMNS, "values": [[2, 2, "good"]]},
                    ],
                }
            ]
        },
        separators=GO,
    ).encode()
    assert _flat_parse(two) is None
    assert flat_parse(two) == whole_parse(two)


def test_rows_that_do_not_match_the_columns_are_a_query_error() -> None:
    with pytest.raises(InfluxQueryError, match="do not match the columns"):
        read(store_answering(chunk([[1, 1.0, "good"], [2, 2.0]], partial=False)))


def test_spaced_json_from_another_server_reads_the_same() -> None:
    body = json.dumps(
        {
            "results": [
                {"statement_id": 0, "series": [{"columns": COLUMNS, "values": [[5, 7, "bad"]]}]}
            ]
        }
    ).encode()
    (block,) = read(store_answering(body))
    assert (list(block.times_ns), list(block.values), list(block.qualities)) == (
        [5],
        [7.0],
        ["bad"],
    )
