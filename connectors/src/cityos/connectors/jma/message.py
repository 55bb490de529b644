"""The common parts of a JMA message: Control and Head (情報の管理部・ヘッダ部)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from xml.etree.ElementTree import Element

JMX = "http://xml.kishou.go.jp/jmaxml1/"
HEAD = "http://xml.kishou.go.jp/jmaxml1/informationBasis1/"
METEOROLOGY = "http://xml.kishou.go.jp/jmaxml1/body/meteorology1/"
SEISMOLOGY = "http://xml.kishou.go.jp/jmaxml1/body/seismology1/"
ELEMENT_BASIS = "http://xml.kishou.go.jp/jmaxml1/elementBasis1/"
REPORT_TAG = f"{{{JMX}}}Report"

NORMAL = "通常"
DRILL = "訓練"
TEST = "試験"
ISSUE = "発表"
CORRECTION = "訂正"
RETRACTION = "取消"
INFO_TYPES = frozenset({ISSUE, CORRECTION, RETRACTION})
STATUSES = frozenset({NORMAL, DRILL, TEST})
_MAX_TEXT = 4000


class MessageError(ValueError):
    """A message lacks what its type requires, or holds a value that cannot be read."""


def text(element: Element | None, path: str = "", *, ns: str = HEAD) -> str:
    """The stripped text at `path` (steps in namespace `ns`) below `element`, or ""."""
    if element is None:
        return ""
    found = element.find(_qualify(path, ns)) if path else element
    return "" if found is None or found.text is None else found.text.strip()


_STEP = re.compile(r"\{[^}]*\}[^/]+|[^/]+")


def _qualify(path: str, ns: str) -> str:
    steps = _STEP.findall(path)
    return "/".join(step if step.startswith("{") else f"{{{ns}}}{step}" for step in steps)


def find(element: Element | None, path: str, *, ns: str) -> Element | None:
    """The first element at `path` (steps in namespace `ns`), or None."""
    return None if element is None else element.find(_qualify(path, ns))


def findall(element: Element | None, path: str, *, ns: str) -> list[Element]:
    """Every element at `path` (steps in namespace `ns`)."""
    return [] if element is None else element.findall(_qualify(path, ns))


def parse_time(value: str, *, what: str) -> datetime:
    """An ISO 8601 time with an offset (JMA writes +09:00 or Z); MessageError otherwise."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MessageError(f"{what} is not a time: {value[:40]!r}") from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise MessageError(f"{what} has no offset: {value[:40]!r}")
    return parsed


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed message: what every type shares, and the root for type-specific parsing."""

    ref: str  # where it was read from (file name or URL): the message id
    title: str  # Control/Title: names the message type
    status: str  # 通常, 訓練 (drill) or 試験 (test)
    editorial_office: str
    head_title: str
    reported_at: datetime
    info_type: str  # 発表, 訂正 or 取消
    event_id: str
    headline: str | None
    root: Element

    @property
    def drill(self) -> bool:
        """Whether this is a drill (訓練)."""
        return self.status == DRILL

    @property
    def name(self) -> str:
        """The file name part of `ref`."""
        return re.split(r"[/\\]", self.ref)[-1]


def read_message(root: Element, *, ref: str) -> Message:
    """The Control and Head of a message root; MessageError when they are incomplete."""
    if root.tag != REPORT_TAG:
        raise MessageError(f"not a JMA message (root element {root.tag[:80]!r})")
    control = root.find(f"{{{JMX}}}Control")
    head = root.find(f"{{{HEAD}}}Head")
    if control is None or head is None:
        raise MessageError("no Control or Head")
    status = text(control, "Status", ns=JMX)
    if status not in STATUSES:
        raise MessageError(f"unknown Control/Status {status[:20]!r}")
    info_type = text(head, "InfoType")
    if info_type not in INFO_TYPES:
        raise MessageError(f"unknown Head/InfoType {info_type[:20]!r}")
    reported = text(head, "ReportDateTime")
    if not reported:
        raise MessageError("no Head/ReportDateTime")
    headline = text(head, "Headline/Text")[:_MAX_TEXT] or None
    return Message(
        ref=ref,
        title=text(control, "Title", ns=JMX),
        status=status,
        editorial_office=text(control, "EditorialOffice", ns=JMX),
        head_title=text(head, "Title"),
        reported_at=parse_time(reported, what="Head/ReportDateTime"),
        info_type=info_type,
        event_id=text(head, "EventID"),
        headline=headline,
        root=root,
    )
