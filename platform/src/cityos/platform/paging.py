"""Cursor paging (GitHub style `first`/`after`) with opaque cursors and hard caps."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from cityos.platform.domain.errors import InvalidInput, LimitExceeded

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results."""

    items: list[T]
    has_next_page: bool
    end_cursor: str | None
    total_count: int


def check_first(first: int, *, cap: int) -> int:
    """Validate a `first` argument: 0..cap, with a clear error above the cap."""
    if first < 0:
        raise InvalidInput(f"`first` must not be negative (got {first})", field="first")
    if first > cap:
        raise LimitExceeded(
            f"`first` may be at most {cap} (got {first}); page with `after`", field="first"
        )
    return first


def encode_cursor(kind: str, key: str) -> str:
    """An opaque cursor for the item with sort key `key`."""
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode("ascii")


def decode_cursor(kind: str, cursor: str) -> str:
    """The sort key inside a cursor made by `encode_cursor(kind, ...)`; InvalidInput if not."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidInput("malformed cursor in `after`", field="after") from None
    prefix, sep, key = text.partition(":")
    if prefix != kind or not sep:
        raise InvalidInput("cursor in `after` does not belong to this list", field="after")
    return key
