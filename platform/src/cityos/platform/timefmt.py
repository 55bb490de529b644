"""Times in and out: RFC 3339 with an offset in (one strict parser for all input), +09:00 out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from cityos.platform.domain.errors import InvalidInput

TOKYO = ZoneInfo("Asia/Tokyo")  # calendar grouping (days, months, fiscal years)
# Output offset: always +09:00 as CONTRACT.md says (the zone itself had LMT before 1888 and
# summer time in 1948-51, which would print +09:18:59 or +10:00).
JST = timezone(timedelta(hours=9), "JST")
# What every store can hold (InfluxDB keeps signed 64-bit nanoseconds: 1677-09-21..2262-04-11).
STORABLE_MIN = datetime(1678, 1, 1, tzinfo=UTC)
STORABLE_MAX = datetime(2262, 1, 1, tzinfo=UTC)

# RFC 3339 date-time (section 5.6): full date, time and offset; `T`/`Z` in either case, or a space
# instead of `T` as its note allows. `fromisoformat` alone would also take date-only strings, week
# dates and the basic format (`20261129T00+0900`), which are not RFC 3339.
_RFC3339 = re.compile(
    r"(?P<seconds>[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_rfc3339(
    text: object,
    *,
    field: str = "time",
    earliest: datetime = STORABLE_MIN,
    latest: datetime = STORABLE_MAX,
) -> datetime:
    """Parse an RFC 3339 date-time with an offset into UTC; InvalidInput says why not."""
    shown = str(text)[:60]
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(f"{field}: {shown!r} is not an RFC 3339 date-time", field=field)
    if match["offset"] is None:
        raise InvalidInput(
            f"{field}: {shown!r} has no offset (a time without an offset is rejected)",
            field=field,
        )
    # fromisoformat keeps microseconds at most: cut further digits, don't round them.
    fraction = f".{match['fraction'][:6]}" if match["fraction"] else ""
    normal = f"{match['seconds']}{fraction}{match['offset']}".upper()
    try:
        parsed = datetime.fromisoformat(normal).astimezone(UTC)
    except ValueError:
        raise InvalidInput(f"{field}: {shown!r} is not a valid date-time", field=field) from None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+09:00 is before datetime.min in UTC
        parsed = None
    if parsed is None or not earliest <= parsed < latest:
        raise InvalidInput(
            f"{field}: {shown!r} is outside {earliest.date()}..{latest.date()}", field=field
        )
    return parsed


def format_rfc3339(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 with the +09:00 offset, ms when needed."""
    local = value.astimezone(JST)
    if local.microsecond % 1000:
        return local.isoformat(timespec="microseconds")
    if local.microsecond:
        return local.isoformat(timespec="milliseconds")
    return local.isoformat(timespec="seconds")
