"""JMA Atom feeds (extra.xml, extra_l.xml, eqvol.xml, ...) and fetching over HTTP.

Fetches have timeouts, retry transient failures (connection errors, timeouts, 429, 5xx)
with exponential backoff (honouring Retry-After up to a cap), and read at most
MAX_XML_BYTES. Feeds are fetched conditionally (If-None-Match / If-Modified-Since with the
validators of the previous run); messages, which JMA never changes, are fetched plainly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit, urlunsplit
from xml.etree.ElementTree import Element

import httpx

from cityos.connectors.jma.message import MessageError, parse_time
from cityos.connectors.jma.xmlsafe import MAX_XML_BYTES

ATOM = "http://www.w3.org/2005/Atom"
FEED_TAG = f"{{{ATOM}}}feed"
USER_AGENT = "cityos-jma-connector/0.1 (+https://github.com/omaezaki-city/cityos)"
TIMEOUT = httpx.Timeout(20.0, connect=5.0)
ATTEMPTS = 4
BACKOFF_SECONDS = 0.5  # then 1, 2: doubled per attempt
MAX_RETRY_AFTER_SECONDS = 30.0
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchFailed(Exception):
    """A fetch failed; `transient` when trying again later may succeed."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Fetched:
    """The answer to a (conditional) GET: body None when the server said 304 Not Modified."""

    url: str
    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry of an Atom feed: a message's id, title, time, link and office."""

    id: str
    title: str
    updated: datetime | None
    link: str
    author: str


def is_url(source: str) -> bool:
    """Whether `source` is an http(s) URL (else it is a path)."""
    return urlsplit(source).scheme.lower() in ("http", "https")


def _child_text(element: Element, tag: str) -> str:
    found = element.find(f"{{{ATOM}}}{tag}")
    return "" if found is None or found.text is None else found.text.strip()


def _link(entry: Element) -> str:
    links = entry.findall(f"{{{ATOM}}}link")
    for link in links:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return str(link.get("href")).strip()
    return ""


def read_feed(root: Element) -> list[FeedEntry]:
    """The entries of an Atom feed root; MessageError when an entry lacks an id or link."""
    entries: list[FeedEntry] = []
    for number, entry in enumerate(root.findall(f"{{{ATOM}}}entry"), start=1):
        entry_id, link = _child_text(entry, "id"), _link(entry)
        if not entry_id or not link:
            raise MessageError(f"feed entry #{number} has no id or no link")
        updated = _child_text(entry, "updated")
        author = entry.find(f"{{{ATOM}}}author")
        entries.append(
            FeedEntry(
                id=entry_id,
                title=_child_text(entry, "title"),
                updated=parse_time(updated, what="entry updated") if updated else None,
                link=link,
                author="" if author is None else _child_text(author, "name"),
            )
        )
    return entries


def on_feed_origin(feed_url: str, link: str) -> str:
    """The URL a feed's link is fetched from: the same path, always on the feed's own origin.

    JMA's links point to the feed's own host; a mirror that serves JMA's feed unchanged
    serves the messages at the same paths beside it. Following links to other hosts would
    let a feed make cityos fetch arbitrary addresses, so that is never done.
    """
    absolute = urlsplit(urljoin(feed_url, link))
    origin = urlsplit(feed_url)
    return urlunsplit((origin.scheme, origin.netloc, absolute.path, absolute.query, ""))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(moment.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_SECONDS)


class HttpFetcher:
    """GETs with timeouts, bounded bodies, retries with backoff and conditional requests."""

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF_SECONDS,
    ) -> None:
        self._client = client or httpx.Client(
            timeout=TIMEOUT, follow_redirects=True, headers={"user-agent": USER_AGENT}
        )
        self._sleep = sleep
        self._attempts = max(1, attempts)
        self._backoff = backoff

    def close(self) -> None:
        """Release connections."""
        self._client.close()

    def get(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched:
        """The body at `url` (None on 304); FetchFailed after the last attempt."""
        headers = {}
        if etag:
            headers["if-none-match"] = etag
        if last_modified:
            headers["if-modified-since"] = last_modified
        failure = FetchFailed(f"GET {url[:200]}: no attempt made", transient=True)
        for attempt in range(self._attempts):
            wait = self._backoff * 2**attempt
            try:
                return self._get_once(url, headers)
            except FetchFailed as exc:
                failure = exc
                if not exc.transient:
                    raise
                wait = max(wait, exc.retry_after or 0.0)
            if attempt + 1 < self._attempts:
                self._sleep(wait)
        raise failure

    def _get_once(self, url: str, headers: dict[str, str]) -> Fetched:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code == 304:
                    return Fetched(url=url, body=None, etag=etag_of(response), last_modified=None)
                if response.status_code != 200:
                    raise FetchFailed(
                        f"GET {url[:200]}: HTTP {response.status_code}",
                        transient=response.status_code in _TRANSIENT_STATUS,
                        retry_after=_retry_after(response),
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_XML_BYTES:
                        raise FetchFailed(
                            f"GET {url[:200]}: larger than {MAX_XML_BYTES} bytes", transient=False
                        )
                return Fetched(
                    url=url,
                    body=bytes(body),
                    etag=etag_of(response),
                    last_modified=response.headers.get("last-modified"),
                )
        except httpx.TransportError as exc:  # connection refused, timeouts, broken reads
            raise FetchFailed(f"GET {url[:200]}: {type(exc).__name__}", transient=True) from exc


def etag_of(response: httpx.Response) -> str | None:
    """The response's ETag header, if any."""
    value: str | None = response.headers.get("etag")
    return value
