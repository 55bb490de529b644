"""The message types the connector handles, and how a message or feed entry is typed.

A type is known from its title (Control/Title, which is also the title of its feed entry)
or else from the file name JMA gives each message (…_VPFJ50_220000.xml). Every other type is
skipped, counted by its code (or by its title when the name carries no code).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from cityos.connectors.jma.heat import parse_heat
from cityos.connectors.jma.message import Message
from cityos.connectors.jma.tsunami import parse_tsunami
from cityos.connectors.jma.weather import parse_warnings
from cityos.platform.ports import AlertGroupRecord, AlertRecord, SkippedRecord

Statement = AlertRecord | AlertGroupRecord | SkippedRecord
Parser = Callable[[Message], Iterator[Statement]]


@dataclass(frozen=True, slots=True)
class MessageType:
    """A handled message type: its code, the titles it goes by, and its parser."""

    code: str
    titles: tuple[str, ...]
    parse: Parser


HANDLED: dict[str, MessageType] = {
    handled.code: handled
    for handled in (
        MessageType(
            "VPWW54", ("気象警報・注意報（Ｈ２７）",), partial(parse_warnings, type_code="VPWW54")
        ),
        MessageType(
            "VPWW53", ("気象特別警報・警報・注意報",), partial(parse_warnings, type_code="VPWW53")
        ),
        MessageType("VTSE41", ("津波警報・注意報・予報a",), parse_tsunami),
        MessageType("VPFT50", ("熱中症警戒アラート", "熱中症特別警戒アラート"), parse_heat),
    )
}
_BY_TITLE = {title: handled.code for handled in HANDLED.values() for title in handled.titles}
_CODE_IN_NAME = re.compile(r"_(?P<code>V[A-Z]{3}\d{2})_[^/\\]*$")


def type_code(*, title: str, ref: str) -> str:
    """The code of a handled title, else the code in JMA's file name, else the title."""
    handled = _BY_TITLE.get(title.strip())
    if handled is not None:
        return handled
    match = _CODE_IN_NAME.search(ref)
    if match is not None:
        return match["code"]
    return title.strip()[:80] or "untitled"


def handler(code: str) -> MessageType | None:
    """The handled type with that code, or None when the type is skipped."""
    return HANDLED.get(code)
