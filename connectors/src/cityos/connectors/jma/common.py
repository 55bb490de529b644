"""What the message parsers share: the source name and the keys of alerts."""

from __future__ import annotations

from cityos.connectors.jma.message import Message

SOURCE = "jma"


def lineage(message: Message, *parts: str) -> str:
    """A key or group of `message`'s alerts; drills live apart and never touch real alerts."""
    prefix = f"{SOURCE}:drill" if message.drill else SOURCE
    return ":".join((prefix, *parts))
