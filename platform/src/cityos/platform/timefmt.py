"""Times in and out: RFC 3339 with an offset in, `+09:00` out."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cityos.platform.domain.errors import InvalidInput

TOKYO = ZoneInfo("Asia/Tokyo")


def parse_rfc3339(text: str, *, field: str = "time") -> datetime:
    """Parse an RFC 3339 date-time that carries an offset; return it in UTC."""
    if not isinstance(text, str) or len(text) > 40 or "T" not in text.upper():
        raise InvalidInput(
            f"{field}: expected an RFC 3339 date-time with offset, got {str(text)[:50]!r}",
            field=field,
        )
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{field}: not an RFC 3339 date-time: {text[:50]!r}", field=field
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{field}: a time without an offset is rejected: {text[:50]!r}", field=field
        )
    return value.astimezone(UTC)


def format_rfc3339(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 in Asia/Tokyo (`+09:00`), ms when needed."""
    local = value.astimezone(TOKYO)
    if local.microsecond % 1000:
        return local.isoformat(timespec="microseconds")
    if local.microsecond:
        return local.isoformat(timespec="milliseconds")
    return local.isoformat(timespec="seconds")
