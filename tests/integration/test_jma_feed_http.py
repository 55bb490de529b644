"""The jma connector over HTTP against a local server serving the recorded files (no network).

Feeds are fetched conditionally (ETag -> 304), messages from the feed's own origin, transient
failures retried with backoff, and the checkpoint makes scheduled runs read only what is new.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cityos.adapters.sql.catalog import SqlCatalog, create_catalog
from cityos.connectors.jma import JmaConnector
from cityos.connectors.jma.feed import HttpFetcher
from cityos.platform.config import Settings
from cityos.platform.domain.errors import InvalidInput, RetryableError
from cityos.platform.imports import import_facilities
from cityos.platform.ports import (
    AlertRecord,
    CheckpointRecord,
    ConnectorItem,
    RejectedRecord,
    SkippedRecord,
)

JMA = Path(__file__).resolve().parent.parent / "fixtures" / "jma"
LONG_FEED = (JMA / "feeds" / "feed_extra_l_2022-07-14_kai3150.xml").read_bytes()
TSUNAMI = JMA / "messages" / "32-39_11_02_250206_VTSE41.xml"
HEAT = JMA / "messages" / "57_03_01_240401_VPFT50.xml"
WARNINGS = JMA / "messages" / "15_14_01_170216_VPWW54.xml"
FEED_PATH = "/developer/xml/feed/extra.xml"
DATA = "/developer/xml/data/"


@dataclass
class Server:
    """Files by path, with ETags; records requests; can fail a path a number of times."""

    files: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fetched(self, prefix: str) -> list[str]:
        return [path for path, _ in self.requests if path.startswith(prefix)]


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                state.requests.append((self.path, self.headers.get("if-none-match")))
                failing = state.failures.get(self.path, 0)
                if failing:
                    state.failures[self.path] = failing - 1
            if failing:
                self.send_response(503)
                self.send_header("retry-after", "0")
                self.end_headers()
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("if-none-match") == etag:
                self.send_response(304)
                self.send_header("etag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-type", "application/xml")
            self.send_header("etag", etag)
            self.send_header("last-modified", "Thu, 14 Jul 2022 07:41:07 GMT")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def entry(name: str, title: str, updated: str, author: str = "静岡地方気象台") -> str:
    # links point at JMA, as in JMA's own feeds: they are followed on the feed's origin
    link = f"https://www.data.jma.go.jp{DATA}{name}"
    return (
        f"<entry><title>{title}</title><id>{link}</id><updated>{updated}</updated>"
        f"<author><name>{author}</name></author>"
        f'<link type="application/xml" href="{link}"/><content type="text">x</content></entry>'
    )


def feed(*entries: str) -> bytes:
    """A feed made here (derived, not JMA output) in the form of JMA's extra.xml."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'lang="ja"><title>随時</title><id>test</id><updated>2026-07-01T00:00:00+09:00</updated>'
        + "".join(entries)
        + "</feed>"
    ).encode()


TSUNAMI_NAME = "20110311054959_0_VTSE41_010000.xml"
HEAT_NAME = "20240810194521_0_VPFT50_110000.xml"
W54 = "20170126082047_0_VPWW54_130000.xml"
W53 = "20170126082047_0_VPWW53_130000.xml"
FJ50 = "20170126082047_0_VPFJ50_130000.xml"
ENTRIES = (
    entry(TSUNAMI_NAME, "津波警報・注意報・予報a", "2011-03-11T05:49:59Z", "気象庁"),
    entry(HEAT_NAME, "熱中症警戒アラート", "2024-08-10T19:45:21Z", "環境省 気象庁"),
    entry(W54, "気象警報・注意報（Ｈ２７）", "2017-01-26T08:20:47Z", "気象庁本庁"),
    entry(W53, "気象特別警報・警報・注意報", "2017-01-26T08:20:47Z", "気象庁本庁"),
    entry(FJ50, "府県気象情報", "2017-01-26T08:20:47Z", "気象庁本庁"),
)


def serve_samples(server: Server) -> None:
    server.files[FEED_PATH] = feed(*ENTRIES)
    server.files[DATA + TSUNAMI_NAME] = TSUNAMI.read_bytes()
    server.files[DATA + HEAT_NAME] = HEAT.read_bytes()
    server.files[DATA + W54] = WARNINGS.read_bytes()


def connector(sleeps: list[float] | None = None) -> JmaConnector:
    record = sleeps if sleeps is not None else []
    return JmaConnector(fetcher=HttpFetcher(sleep=record.append))


def checkpoint_of(items: list[ConnectorItem]) -> dict[str, Any]:
    (checkpoint,) = [item for item in items if isinstance(item, CheckpointRecord)]
    assert isinstance(items[-1], CheckpointRecord)
    value: dict[str, Any] = json.loads(checkpoint.value)
    return value


def test_feed_then_not_modified(server: Server) -> None:
    serve_samples(server)
    jma, url = connector(), server.url(FEED_PATH)
    first = list(jma.fetch_since(url, None))
    alerts = [item for item in first if isinstance(item, AlertRecord)]
    assert Counter(a.message_id.rsplit("/", 1)[-1] for a in alerts) == {
        TSUNAMI_NAME: 43,
        HEAT_NAME: 1,
        W54: 7,
    }
    assert Counter(item.kind for item in first if isinstance(item, SkippedRecord)) == {
        "VPWW53": 1,
        "VPFJ50": 1,
    }
    # messages came from the feed's own origin; the twin and the skipped type were not fetched
    assert sorted(server.fetched(DATA)) == sorted(DATA + n for n in (TSUNAMI_NAME, HEAT_NAME, W54))
    saved = checkpoint_of(first)
    assert saved["feed"] == url
    assert str(saved["etag"]).startswith('"')
    assert saved["last_modified"] == "Thu, 14 Jul 2022 07:41:07 GMT"
    assert len(saved["seen"]) == 5

    server.requests.clear()
    again = list(jma.fetch_since(url, json.dumps(saved)))
    assert again == []  # 304: nothing new, the stored checkpoint stays
    assert server.requests == [(FEED_PATH, saved["etag"])]


def test_a_changed_feed_reads_only_its_new_entries(server: Server) -> None:
    serve_samples(server)
    jma, url = connector(), server.url(FEED_PATH)
    saved = checkpoint_of(list(jma.fetch_since(url, None)))
    server.files[FEED_PATH] = feed(
        *ENTRIES, entry("x_VPZJ50_010000.xml", "全般気象情報", "2026-07-01T00:00:00Z")
    )
    server.requests.clear()
    items = list(jma.fetch_since(url, json.dumps(saved)))
    assert [type(item) for item in items] == [SkippedRecord, CheckpointRecord]
    assert server.fetched(DATA) == []
    assert len(checkpoint_of(items)["seen"]) == 6


def test_a_checkpoint_of_another_feed_is_ignored(server: Server) -> None:
    serve_samples(server)
    url = server.url(FEED_PATH)
    foreign = json.dumps({"version": 1, "feed": "http://elsewhere/x.xml", "etag": "x", "seen": []})
    items = list(connector().fetch_since(url, foreign))
    assert sum(isinstance(item, AlertRecord) for item in items) == 51
    assert server.requests[0] == (FEED_PATH, None)


def test_transient_failures_are_retried_with_backoff(server: Server) -> None:
    serve_samples(server)
    server.failures[DATA + HEAT_NAME] = 2  # 503 twice, then 200
    sleeps: list[float] = []
    items = list(connector(sleeps).fetch_since(server.url(FEED_PATH), None))
    assert sum(isinstance(item, AlertRecord) for item in items) == 51
    assert sleeps == [0.5, 1.0]
    assert server.fetched(DATA + HEAT_NAME) == [DATA + HEAT_NAME] * 3


def test_a_message_still_failing_is_retried_on_the_next_run(server: Server) -> None:
    serve_samples(server)
    server.failures[DATA + HEAT_NAME] = 4  # every attempt of this run fails
    jma, url = connector(), server.url(FEED_PATH)
    items = list(jma.fetch_since(url, None))
    (rejected,) = [item for item in items if isinstance(item, RejectedRecord)]
    assert "HTTP 503" in rejected.reason
    assert HEAT_NAME in rejected.reason
    saved = checkpoint_of(items)
    assert saved["etag"] is None
    assert len(saved["seen"]) == 4
    server.requests.clear()
    retry = list(jma.fetch_since(url, json.dumps(saved)))
    assert server.requests[0] == (FEED_PATH, None)  # no validators: the feed is read again
    assert [a.message_id.rsplit("/", 1)[-1] for a in retry if isinstance(a, AlertRecord)] == [
        HEAT_NAME
    ]
    assert checkpoint_of(retry)["etag"] is not None


def test_the_real_long_feed_fetches_only_handled_types(server: Server) -> None:
    server.files["/developer/xml/feed/extra_l.xml"] = LONG_FEED  # its messages are not at hand
    items = list(connector().fetch_since(server.url("/developer/xml/feed/extra_l.xml"), None))
    assert len(items) == 3647 + 1
    rejected = [item for item in items if isinstance(item, RejectedRecord)]
    assert len(rejected) == 1591
    assert all("HTTP 404" in r.reason for r in rejected)
    fetched = Counter(path.split("_")[-2] for path in server.fetched(DATA))
    assert fetched == {"VPWW54": 1518, "VPFT50": 73}
    assert sum(isinstance(item, SkippedRecord) for item in items) == 2056
    assert len(checkpoint_of(items)["seen"]) == 3647


def test_a_single_message_url(server: Server) -> None:
    server.files[DATA + HEAT_NAME] = HEAT.read_bytes()
    (alert,) = list(connector().fetch(server.url(DATA + HEAT_NAME)))
    assert isinstance(alert, AlertRecord)
    assert alert.area == "110000"


def test_feed_failures(server: Server) -> None:
    with pytest.raises(InvalidInput, match="HTTP 404"):
        list(connector().fetch(server.url("/missing.xml")))
    server.failures["/down.xml"] = 10
    with pytest.raises(RetryableError, match="HTTP 503"):
        list(connector().fetch(server.url("/down.xml")))
    server.files["/broken.xml"] = b"<feed"
    with pytest.raises(InvalidInput, match="not well-formed"):
        list(connector().fetch(server.url("/broken.xml")))


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqlCatalog]:
    cat = create_catalog(Settings(data_dir=tmp_path / "data"))
    cat.migrate()
    yield cat
    cat.close()


def test_scheduled_imports_use_the_stored_checkpoint(server: Server, catalog: SqlCatalog) -> None:
    serve_samples(server)
    jma, url = connector(), server.url(FEED_PATH)
    first = import_facilities(catalog=catalog, connector=jma, source=url)
    assert (first.read, first.inserted, first.skipped) == (51 + 2, 51, 2)
    assert first.skipped_kinds == (("VPFJ50", 1), ("VPWW53", 1))
    (dataset,) = catalog.list_datasets()
    assert (dataset.id, dataset.row_count, dataset.public) == ("jma:extra.xml", 51, True)
    stored = catalog.get_checkpoint("jma:extra.xml")
    assert stored is not None
    assert json.loads(stored)["etag"]
    server.requests.clear()
    later = datetime(2030, 1, 1, tzinfo=UTC)
    second = import_facilities(catalog=catalog, connector=jma, source=url, now=later)
    assert (second.read, second.inserted, second.updated, second.unchanged) == (0, 0, 0, 0)
    assert server.requests == [(FEED_PATH, json.loads(stored)["etag"])]
    (after,) = catalog.list_datasets()
    assert after.fetched_at == later
    assert after.checksum == dataset.checksum
    assert after.row_count == 51
