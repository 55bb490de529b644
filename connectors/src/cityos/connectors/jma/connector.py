"""The `jma` connector: a feed, a message or a directory of messages -> alert statements.

`--source` may be
- an Atom feed URL (JMA's extra.xml, extra_l.xml, eqvol.xml, ... or a mirror of one): the
  messages of handled types are fetched from the feed's own origin; the feed is fetched
  conditionally with the previous run's validators, and entries already read are skipped
  (the checkpoint);
- a message URL, a message file, or a feed file (its messages are looked up by file name
  beside it or in a `data/` folder beside it);
- a directory of message files (`*.xml`; feeds in it are not followed).
Messages of types not handled are skipped and counted by type; the VPWW53 twin of a
VPWW54 entry in a feed is not fetched. Broken or unsafe XML is rejected, never parsed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cityos.connectors.jma.feed import (
    FEED_TAG,
    FeedEntry,
    Fetched,
    FetchFailed,
    HttpFetcher,
    is_url,
    on_feed_origin,
    read_feed,
)
from cityos.connectors.jma.message import TEST, MessageError, read_message
from cityos.connectors.jma.registry import handler, type_code
from cityos.connectors.jma.xmlsafe import MAX_XML_BYTES, XmlRefused, parse_xml
from cityos.platform.config import Settings
from cityos.platform.domain.errors import InvalidInput, RetryableError
from cityos.platform.ports import (
    CheckpointRecord,
    ConnectorItem,
    RejectedRecord,
    SkippedRecord,
)

NAME = "jma"
LICENCE = (
    "気象庁ホームページ利用規約 (公共データ利用規約 第1.0版 (PDL1.0) 準拠, CC BY 4.0 互換; "
    "出典: 気象庁)"
)
FILE_SUFFIXES = (".xml",)
CHECKPOINT_VERSION = 1
WARNING_PAIR = ("VPWW53", "VPWW54")  # the older format's twin is skipped beside the newer


@dataclass(frozen=True, slots=True)
class FeedCheckpoint:
    """A feed's validators (ETag, Last-Modified) and the ids of the entries already read."""

    feed: str
    etag: str | None = None
    last_modified: str | None = None
    seen: frozenset[str] = frozenset()

    def to_text(self) -> str:
        """The checkpoint as stored (JSON)."""
        return json.dumps(
            {
                "version": CHECKPOINT_VERSION,
                "feed": self.feed,
                "etag": self.etag,
                "last_modified": self.last_modified,
                "seen": sorted(self.seen),
            },
            ensure_ascii=False,
        )

    @classmethod
    def of(cls, text: str | None, feed: str) -> FeedCheckpoint:
        """The stored checkpoint for `feed`; an empty one when absent, unreadable or foreign."""
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return cls(feed=feed)
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            return cls(feed=feed)
        if data.get("feed") != feed:
            return cls(feed=feed)
        seen = data.get("seen")
        return cls(
            feed=feed,
            etag=data.get("etag") if isinstance(data.get("etag"), str) else None,
            last_modified=data.get("last_modified")
            if isinstance(data.get("last_modified"), str)
            else None,
            seen=frozenset(s for s in seen if isinstance(s, str))
            if isinstance(seen, list)
            else frozenset(),
        )


@dataclass(slots=True)
class _FeedRun:
    """What reading one feed did: entries done for good, and whether any may be retried."""

    done: set[str] = field(default_factory=set)
    retry_later: int = 0


def _rejected(number: int, ref: str, reason: str) -> RejectedRecord:
    return RejectedRecord(line=number, reason=f"{ref[:200]}: {reason}")


def message_items(data: bytes, *, ref: str, number: int = 1) -> Iterator[ConnectorItem]:
    """The statements of one message (`number` locates it in the run for rejections)."""
    try:
        root = parse_xml(data, what="message")
        if root.tag == FEED_TAG:
            yield SkippedRecord(
                kind="Atom feed",
                reason="a feed inside a directory or feed is not followed (give it as --source)",
                ref=ref,
            )
            return
        message = read_message(root, ref=ref)
        if message.status == TEST:
            yield SkippedRecord(kind=TEST, reason="a test message (Control/Status 試験)", ref=ref)
            return
        code = type_code(title=message.title, ref=ref)
        handled = handler(code)
        if handled is None:
            yield SkippedRecord(kind=code, reason="message type not handled", ref=ref)
            return
        items = list(handled.parse(message))
    except (XmlRefused, MessageError) as exc:
        yield _rejected(number, ref, str(exc))
        return
    yield from items


def _twins(entries: list[FeedEntry]) -> set[str]:
    """Ids of VPWW53 entries with a VPWW54 entry of the same office and time."""
    newer = {
        (entry.author, entry.updated)
        for entry in entries
        if type_code(title=entry.title, ref=entry.link) == WARNING_PAIR[1]
    }
    return {
        entry.id
        for entry in entries
        if type_code(title=entry.title, ref=entry.link) == WARNING_PAIR[0]
        and (entry.author, entry.updated) in newer
    }


def feed_items(
    entries: list[FeedEntry],
    *,
    resolve: Callable[[FeedEntry], bytes],
    seen: frozenset[str],
    run: _FeedRun,
) -> Iterator[ConnectorItem]:
    """The statements of a feed's entries not `seen` before, fetching handled messages."""
    twins = _twins(entries)
    for number, entry in enumerate(entries, start=1):
        if entry.id in seen:
            continue
        code = type_code(title=entry.title, ref=entry.link)
        if handler(code) is None or entry.id in twins:
            reason = (
                "the VPWW53 twin of a VPWW54 message (same office and time)"
                if entry.id in twins
                else "message type not handled"
            )
            yield SkippedRecord(kind=code, reason=reason, ref=entry.link)
            run.done.add(entry.id)
            continue
        try:
            data = resolve(entry)
        except FetchFailed as exc:
            yield _rejected(number, entry.link, str(exc))
            if exc.transient:
                run.retry_later += 1
            else:
                run.done.add(entry.id)
            continue
        yield from message_items(data, ref=entry.link, number=number)
        run.done.add(entry.id)


def _read_file(path: Path) -> bytes:
    if path.stat().st_size > MAX_XML_BYTES:
        raise XmlRefused(f"{path.name}: larger than {MAX_XML_BYTES} bytes")
    return path.read_bytes()


def _local_resolver(feed_path: Path) -> Callable[[FeedEntry], bytes]:
    """Messages of a feed file, by file name beside it or in `data/` beside it."""

    def resolve(entry: FeedEntry) -> bytes:
        name = entry.link.rstrip("/").rsplit("/", 1)[-1]
        for folder in (feed_path.parent, feed_path.parent / "data"):
            candidate = folder / name
            if name and candidate.is_file():
                return _read_file(candidate)
        raise FetchFailed("message not available beside the feed file", transient=False)

    return resolve


class JmaConnector:
    """JMA disaster XML: weather warnings, tsunami warnings, heat-stroke alerts."""

    name = NAME
    title = (
        "気象庁防災情報XML: 気象警報 (VPWW54/53), 津波警報 (VTSE41), 熱中症警戒アラート (VPFT50)"
    )
    default_licence = LICENCE
    file_suffixes = FILE_SUFFIXES
    records = "alerts"

    def __init__(self, fetcher: HttpFetcher | None = None) -> None:
        self._fetcher = fetcher

    def _http(self) -> HttpFetcher:
        if self._fetcher is None:
            self._fetcher = HttpFetcher()
        return self._fetcher

    def close(self) -> None:
        """Release the HTTP connections, if any were opened."""
        if self._fetcher is not None:
            self._fetcher.close()

    def fetch(self, source: str) -> Iterator[ConnectorItem]:
        """Every statement read from `source` (no checkpoint)."""
        return self.fetch_since(source, None)

    def fetch_since(self, source: str, checkpoint: str | None) -> Iterator[ConnectorItem]:
        """The statements read from `source` that the checkpoint does not say were read."""
        if is_url(source):
            return self._from_url(source, FeedCheckpoint.of(checkpoint, source))
        path = Path(source)
        if path.is_dir():
            return self._from_directory(path)
        if path.is_file():
            return self._from_file(path)
        raise InvalidInput(f"no such file or directory: {source[:200]}", field="source")

    def _from_directory(self, folder: Path) -> Iterator[ConnectorItem]:
        files = sorted(
            child
            for child in folder.iterdir()
            if child.is_file()
            and not child.name.startswith(".")
            and child.suffix.lower() in FILE_SUFFIXES
        )
        if not files:
            raise InvalidInput(f"no *.xml files in {str(folder)[:200]}", field="source")
        for number, child in enumerate(files, start=1):
            try:
                data = _read_file(child)
            except XmlRefused as exc:
                yield _rejected(number, child.name, str(exc))
                continue
            yield from message_items(data, ref=child.name, number=number)

    def _from_file(self, path: Path) -> Iterator[ConnectorItem]:
        try:
            data = _read_file(path)
            root = parse_xml(data, what="source")
        except XmlRefused as exc:
            yield _rejected(1, path.name, str(exc))
            return
        if root.tag != FEED_TAG:
            yield from message_items(data, ref=path.name)
            return
        try:
            entries = read_feed(root)
        except MessageError as exc:
            raise InvalidInput(f"{path.name}: {exc}", field="source") from exc
        run = _FeedRun()
        yield from feed_items(entries, resolve=_local_resolver(path), seen=frozenset(), run=run)

    def _get(self, url: str, previous: FeedCheckpoint) -> Fetched:
        try:
            return self._http().get(url, etag=previous.etag, last_modified=previous.last_modified)
        except FetchFailed as exc:
            if exc.transient:
                raise RetryableError(str(exc), service=NAME, attempt_context=url[:200]) from exc
            raise InvalidInput(str(exc), field="source") from exc

    def _from_url(self, url: str, previous: FeedCheckpoint) -> Iterator[ConnectorItem]:
        fetched = self._get(url, previous)
        body = fetched.body
        if body is None:  # 304 Not Modified: nothing new since the previous run
            return
        try:
            root = parse_xml(body, what="source")
        except XmlRefused as exc:
            raise InvalidInput(f"{url[:200]}: {exc}", field="source") from exc
        if root.tag != FEED_TAG:
            yield from message_items(body, ref=url)
            return
        try:
            entries = read_feed(root)
        except MessageError as exc:
            raise InvalidInput(f"{url[:200]}: {exc}", field="source") from exc
        run = _FeedRun()

        def resolve(entry: FeedEntry) -> bytes:
            fetched = self._http().get(on_feed_origin(url, entry.link))
            if fetched.body is None:
                raise FetchFailed("HTTP 304 without a conditional request", transient=False)
            return fetched.body

        yield from feed_items(entries, resolve=resolve, seen=previous.seen, run=run)
        current = {entry.id for entry in entries}
        complete = run.retry_later == 0
        yield CheckpointRecord(
            FeedCheckpoint(
                feed=url,
                # without the validators the next run reads the feed again and retries
                etag=fetched.etag if complete else None,
                last_modified=fetched.last_modified if complete else None,
                seen=frozenset((previous.seen | run.done) & current),
            ).to_text()
        )


def create_connector(settings: Settings) -> JmaConnector:
    """Entry point of the `cityos.connectors` group."""
    return JmaConnector()
